//! `summary.csv`: one row per run.

use super::*;

/// Which of the columns only some runs have the CSV has (see [`csv()`]).
struct Columns {
    dials: bool,
    passed_over: bool,
    superseded: bool,
    refused: bool,
    viewer_caps: bool,
    net: bool,
    lag: bool,
    cpu: bool,
    common: bool,
}

/// One row per run; empty cells where a figure does not exist (no setup for a run nobody played).
/// Columns some runs lack are there only when a run has the figure, so results recorded before
/// them keep their CSV byte for byte: `failed_dials_per_segment`; `passed_over` when a run has a
/// segment skipped before a viewer's first played one; `fallbacks_superseded` and
/// `fallback_wasted_bytes` when a run has a superseded fallback; `fallbacks_refused` when a run
/// has a refused one; the viewers' caps
/// (`viewer_upload_cap`, `viewer_download_cap`, after `publisher_cap`) when a run has one; the
/// network figures (`net` to `emulator_cpu_share`) when a run was on a network; the machine's CPU
/// (`idle_mean`, `saturated`) when a run recorded it; the figures every transport shares
/// (`fanout` to `wire_per_payload`) when a run has them.
pub fn csv(runs: &[RunSummary]) -> String {
    let cols = Columns::of(runs);
    let mut out = cols.header();
    for r in runs {
        cols.row(&mut out, r);
    }
    out
}

impl Columns {
    /// The optional columns `runs` need.
    fn of(runs: &[RunSummary]) -> Self {
        Self {
            dials: runs.iter().any(|r| !r.failed_dials_per_segment.is_nan()),
            passed_over: runs.iter().any(|r| r.passed_over > 0),
            superseded: runs.iter().any(|r| r.fallbacks_superseded > 0),
            refused: runs.iter().any(|r| r.fallbacks_refused > 0),
            viewer_caps: runs
                .iter()
                .any(|r| r.viewer_upload_cap > 0 || r.viewer_download_cap > 0),
            net: runs.iter().any(|r| r.net.is_some()),
            lag: runs.iter().any(|r| !r.emulator_lag_p99_ms.is_nan()),
            cpu: runs.iter().any(|r| !r.idle_mean.is_nan()),
            common: runs.iter().any(|r| r.playout_buffer_secs > 0.0),
        }
    }

    /// The header line.
    fn header(&self) -> String {
        let mut out =
            String::from("id,transport,segment_secs,viewers,repeat,join,bitrate,publisher_cap,");
        if self.viewer_caps {
            out.push_str("viewer_upload_cap,viewer_download_cap,");
        }
        out.push_str(
            "segments,segment_bytes,\
             played,publisher_bytes,publisher_copies,publisher_per_viewer,peer_share,dialled_bytes,duplicate_ratio,\
             setup_median_ms,setup_p95_ms,setup_fraction,complete_median_ms,stalls,stall_ms,skips,missed,\
             fallbacks,startup_median_ms,behind_live_median_ms,behind_live_p95_ms,\
             manifest_bytes_per_segment,connect_attempts_per_segment,connect_errors_per_segment,",
        );
        if self.dials {
            out.push_str("failed_dials_per_segment,");
        }
        if self.passed_over {
            out.push_str("passed_over,");
        }
        if self.superseded {
            out.push_str("fallbacks_superseded,fallback_wasted_bytes,");
        }
        if self.refused {
            out.push_str("fallbacks_refused,");
        }
        if self.net {
            out.push_str(
                "net,publisher_wire_per_byte,publisher_payload_per_byte,publisher_control_per_byte,\
                 publisher_tcpip_per_byte,publisher_queue_dropped_per_byte,\
                 control_bytes_per_viewer_segment,viewer_overhead_share,\
                 viewer_tcpip_share,tcp_rtt_median_ms,emulator_cpu_share,",
            );
        }
        if self.lag {
            out.push_str("emulator_lag_p99_ms,");
        }
        if self.cpu {
            out.push_str("idle_mean,saturated,");
        }
        if self.common {
            out.push_str(
                "fanout,churn_pct,playout_buffer_secs,playout_startup_median_ms,playout_stalls,\
                 playout_stall_ms,playout_stall_share,lost_bytes,lost_share,foreign_bytes,\
                 never_played,glass_median_ms,glass_p95_ms,publisher_upload_per_stream,\
                 share_from_peers,wire_per_payload,",
            );
        }
        out.push_str("consistent,failed_checks\n");
        out
    }

    /// `r`'s cells of the optional columns after `connect_errors_per_segment`, each followed by
    /// a comma.
    fn optional_cells(&self, r: &RunSummary) -> String {
        let mut extra = String::new();
        if self.dials {
            let _ = write!(extra, "{},", num(r.failed_dials_per_segment, 2));
        }
        if self.passed_over {
            let _ = write!(extra, "{},", r.passed_over);
        }
        if self.superseded {
            let _ = write!(
                extra,
                "{},{},",
                r.fallbacks_superseded, r.fallback_wasted_bytes
            );
        }
        if self.refused {
            let _ = write!(extra, "{},", r.fallbacks_refused);
        }
        if self.net {
            extra.push_str(&network_cells(r));
        }
        if self.lag {
            let _ = write!(extra, "{},", num(r.emulator_lag_p99_ms, 3));
        }
        if self.cpu {
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
        if self.common {
            let _ = write!(
                extra,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},",
                r.fanout,
                r.churn_pct,
                r.playout_buffer_secs,
                num(r.playout_startup_median_ms, 0),
                r.playout_stalls,
                num(r.playout_stall_ms, 0),
                num(r.playout_stall_share, 4),
                r.lost_bytes,
                num(r.lost_share, 5),
                r.foreign_bytes,
                r.never_played,
                num(r.glass_median_ms, 0),
                num(r.glass_p95_ms, 0),
                num(r.publisher_upload_per_stream, 3),
                num(r.share_from_peers, 4),
                num(r.wire_per_payload, 4),
            );
        }
        extra
    }

    /// `r`'s line, appended to `out`.
    fn row(&self, out: &mut String, r: &RunSummary) {
        let failed: Vec<&str> = r.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
        let caps = if self.viewer_caps {
            format!(
                "{},{},{}",
                r.publisher_cap, r.viewer_upload_cap, r.viewer_download_cap
            )
        } else {
            r.publisher_cap.to_string()
        };
        let extra = self.optional_cells(r);
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
}

/// `r`'s network cells (`net` to `emulator_cpu_share`), each followed by a comma.
fn network_cells(r: &RunSummary) -> String {
    format!(
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
    )
}
