//! `swarmcast lab --net-check`: calibrates the emulated network once per combination of the
//! sweep's round trips, losses and viewer upload caps (default 2x the bitrate), on namespaces of
//! its own.

use swarmcast_netlab::calibrate::{self, CheckError, CheckReport, CheckSpec};
use swarmcast_tasks::Tasks;
use tokio_util::sync::CancellationToken;

use crate::plan::{Limit, SweepSpec};

/// Why the calibration could not run.
#[derive(Debug, thiserror::Error)]
pub enum NetCheckError {
    /// A check failed to set up or measure.
    #[error("net-check (rtt {rtt_ms} ms, loss {loss_pct}%, cap {cap} B/s)")]
    Check {
        /// The round trip.
        rtt_ms: f64,
        /// The loss.
        loss_pct: f64,
        /// The cap, bytes per second.
        cap: u64,
        /// Why.
        #[source]
        source: CheckError,
    },
    /// The check's thread panicked.
    #[error("the calibration thread failed: {0}")]
    Thread(String),
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

/// The checks a sweep asks for, in order: every round trip × loss × viewer cap.
pub fn checks(spec: &SweepSpec) -> Vec<CheckSpec> {
    let net = spec.net.clone().unwrap_or_default();
    let caps: Vec<u64> = spec
        .viewer_upload_limit
        .iter()
        .map(|l| {
            l.unwrap_or(Limit::TimesBitrate(2.0))
                .resolve(spec.bitrate)
                .into()
        })
        .collect();
    let mut out = Vec::new();
    for &rtt_ms in &net.rtt_ms {
        for &loss_pct in &net.loss_pct {
            for &cap in &caps {
                out.push(CheckSpec {
                    rtt_ms,
                    loss_pct,
                    cap,
                    queue_ms: net.queue_ms,
                    ..CheckSpec::default()
                });
            }
        }
    }
    out
}

/// Runs every check of `spec` one after the other, calling `starting` before and `done` after
/// each; true if every figure is within tolerance.
pub async fn net_check(
    spec: &SweepSpec,
    cancel: &CancellationToken,
    mut starting: impl FnMut(&CheckSpec),
    mut done: impl FnMut(&CheckReport),
) -> Result<bool, NetCheckError> {
    // A check runs on its own thread (it enters namespaces): not interruptible, but awaited.
    let tasks = Tasks::new("net-check");
    let mut all_ok = true;
    for check in checks(spec) {
        if cancel.is_cancelled() {
            return Err(NetCheckError::Interrupted);
        }
        starting(&check);
        let (rtt_ms, loss_pct, cap) = (check.rtt_ms, check.loss_pct, check.cap);
        let report = tasks
            .spawn_blocking("net-check", move || calibrate::run(check))
            .await
            .map_err(|e| NetCheckError::Thread(e.to_string()))?
            .map_err(|source| NetCheckError::Check {
                rtt_ms,
                loss_pct,
                cap,
                source,
            })?;
        all_ok &= report.ok();
        done(&report);
    }
    Ok(all_ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::NetSweep;

    #[test]
    fn one_check_per_round_trip_loss_and_cap_default_cap_twice_the_bitrate() {
        let spec = SweepSpec {
            bitrate: 500_000,
            viewer_upload_limit: vec![None, Some(Limit::BytesPerSec(100_000))],
            net: Some(NetSweep {
                rtt_ms: vec![20.0, 100.0],
                loss_pct: vec![0.0, 1.0],
                queue_ms: 50.0,
                ..NetSweep::default()
            }),
            ..SweepSpec::default()
        };
        let checks = checks(&spec);
        assert_eq!(checks.len(), 8);
        assert_eq!(
            (checks[0].rtt_ms, checks[0].loss_pct, checks[0].cap),
            (20.0, 0.0, 125_000)
        );
        assert_eq!(
            (checks[7].rtt_ms, checks[7].loss_pct, checks[7].cap),
            (100.0, 1.0, 100_000)
        );
        assert!(checks.iter().all(|c| c.queue_ms == 50.0));
    }
}
