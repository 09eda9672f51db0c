//! `summary.csv`: one row per run.

use super::*;

/// One row per run; empty cells where a figure does not exist (no setup for a run nobody played).
/// Columns some runs lack are there only when a run has the figure, so results recorded before
/// them keep their CSV byte for byte: `failed_dials_per_segment`; `fallbacks_superseded` and
/// `fallback_wasted_bytes` when a run has a superseded fallback; `fallbacks_refused` when a run
/// has a refused one; the viewers' caps
/// (`viewer_upload_cap`, `viewer_download_cap`, after `publisher_cap`) when a run has one; the
/// network figures (`net` to `emulator_cpu_share`) when a run was on a network; the machine's CPU
/// (`idle_mean`, `saturated`) when a run recorded it.
pub fn csv(runs: &[RunSummary]) -> String {
    let dials = runs.iter().any(|r| !r.failed_dials_per_segment.is_nan());
    let superseded = runs.iter().any(|r| r.fallbacks_superseded > 0);
    let refused = runs.iter().any(|r| r.fallbacks_refused > 0);
    let viewer_caps = runs
        .iter()
        .any(|r| r.viewer_upload_cap > 0 || r.viewer_download_cap > 0);
    let net = runs.iter().any(|r| r.net.is_some());
    let cpu = runs.iter().any(|r| !r.idle_mean.is_nan());
    let lag = runs.iter().any(|r| !r.emulator_lag_p99_ms.is_nan());
    let mut out =
        String::from("id,transport,segment_secs,viewers,repeat,join,bitrate,publisher_cap,");
    if viewer_caps {
        out.push_str("viewer_upload_cap,viewer_download_cap,");
    }
    out.push_str(
        "segments,segment_bytes,\
         played,publisher_bytes,publisher_copies,publisher_per_viewer,peer_share,dialled_bytes,duplicate_ratio,\
         setup_median_ms,setup_p95_ms,setup_fraction,complete_median_ms,stalls,stall_ms,skips,missed,\
         fallbacks,startup_median_ms,behind_live_median_ms,behind_live_p95_ms,\
         manifest_bytes_per_segment,connect_attempts_per_segment,connect_errors_per_segment,",
    );
    if dials {
        out.push_str("failed_dials_per_segment,");
    }
    if superseded {
        out.push_str("fallbacks_superseded,fallback_wasted_bytes,");
    }
    if refused {
        out.push_str("fallbacks_refused,");
    }
    if net {
        out.push_str(
            "net,publisher_wire_per_byte,publisher_payload_per_byte,publisher_control_per_byte,\
             publisher_tcpip_per_byte,publisher_queue_dropped_per_byte,\
             control_bytes_per_viewer_segment,viewer_overhead_share,\
             viewer_tcpip_share,tcp_rtt_median_ms,emulator_cpu_share,",
        );
    }
    if lag {
        out.push_str("emulator_lag_p99_ms,");
    }
    if cpu {
        out.push_str("idle_mean,saturated,");
    }
    out.push_str("consistent,failed_checks\n");
    for r in runs {
        let failed: Vec<&str> = r.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
        let caps = if viewer_caps {
            format!(
                "{},{},{}",
                r.publisher_cap, r.viewer_upload_cap, r.viewer_download_cap
            )
        } else {
            r.publisher_cap.to_string()
        };
        let mut extra = String::new();
        if dials {
            let _ = write!(extra, "{},", num(r.failed_dials_per_segment, 2));
        }
        if superseded {
            let _ = write!(
                extra,
                "{},{},",
                r.fallbacks_superseded, r.fallback_wasted_bytes
            );
        }
        if refused {
            let _ = write!(extra, "{},", r.fallbacks_refused);
        }
        if net {
            let _ = write!(
                extra,
                "{},{},{},{},{},{},{},{},{},{},{},",
                r.net
                    .as_deref()
                    .map_or(String::new(), |n| format!("\"{n}\"")),
                num(r.publisher_wire_per_byte, 4),
                num(r.publisher_payload_per_byte, 4),
                num(r.publisher_control_per_byte, 4),
                num(r.publisher_tcpip_per_byte, 4),
                num(r.publisher_queue_dropped_per_byte, 4),
                num(r.control_bytes_per_viewer_segment, 0),
                num(r.viewer_overhead_share, 4),
                num(r.viewer_tcpip_share, 4),
                num(r.tcp_rtt_median_ms, 1),
                num(r.emulator_cpu_share, 4),
            );
        }
        if lag {
            let _ = write!(extra, "{},", num(r.emulator_lag_p99_ms, 3));
        }
        if cpu {
            let _ = write!(
                extra,
                "{},{},",
                num(r.idle_mean, 4),
                if r.idle_mean.is_nan() {
                    String::new()
                } else {
                    r.saturated.to_string()
                }
            );
        }
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{caps},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{extra}{},\"{}\"",
            r.id,
            r.kind,
            r.segment_secs,
            r.viewers,
            r.repeat,
            r.join,
            r.bitrate,
            r.segments,
            num(r.segment_bytes, 0),
            r.played,
            r.publisher_bytes,
            num(r.publisher_copies, 3),
            num(r.publisher_per_viewer, 3),
            num(r.peer_share, 4),
            r.dialled_bytes,
            num(r.duplicate_ratio, 4),
            num(r.setup_median_ms, 1),
            num(r.setup_p95_ms, 1),
            num(r.setup_fraction, 5),
            num(r.complete_median_ms, 1),
            r.stalls,
            num(r.stall_ms, 0),
            r.skips,
            r.missed,
            r.fallbacks,
            num(r.startup_median_ms, 0),
            num(r.behind_live_median_ms, 0),
            num(r.behind_live_p95_ms, 0),
            num(r.manifest_bytes_per_segment, 0),
            num(r.connect_attempts_per_segment, 2),
            num(r.connect_errors_per_segment, 2),
            r.consistent(),
            failed.join("; ")
        );
    }
    out
}
