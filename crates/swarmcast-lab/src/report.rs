//! Tables and plots from run summaries: `summary.csv` (one row per run), `summary.md` (each
//! configuration with the spread over its repeats, swarm beside HTTP, the consistency checks) and
//! SVG plots under `plots/` (by audience size; also by variant, `by_variant_*.svg`, where one
//! configuration was measured with several librqbit variants). [`write_report`] regenerates all
//! of them from a results directory's raw files alone; its output depends on nothing else (no
//! clock, no host name), so running it twice gives the same bytes.
//!
//! Runs are grouped by configuration: segment length, audience, caps and network point (so runs
//! at different RTTs or caps are never averaged together). Columns only some results have appear
//! only when a run has the figure (failed dials, viewer caps, the network figures, the machine's
//! idle CPU), so older results regenerate byte for byte; a run whose machine was saturated is
//! marked in every table it appears in.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor;

use crate::plan::Transport;
use crate::results::{io_err, load_results, summarize, ResultsError, RunSummary};

mod groups;

use self::groups::{caps_label, condition, mark_saturated, net_label, Condition, Table, Varies};

/// The files a report writes, relative to the results directory.
pub const SUMMARY_CSV: &str = "summary.csv";
/// See [`SUMMARY_CSV`].
pub const SUMMARY_MD: &str = "summary.md";
/// See [`SUMMARY_CSV`].
pub const PLOTS_DIR: &str = "plots";

/// What [`write_report`] produced.
#[derive(Clone, Debug)]
pub struct Report {
    /// Every run's summary, sorted by id.
    pub runs: Vec<RunSummary>,
    /// The Markdown table (as written to `summary.md`).
    pub markdown: String,
    /// Files written.
    pub files: Vec<PathBuf>,
}

impl Report {
    /// True when every run's checks hold.
    pub fn consistent(&self) -> bool {
        self.runs.iter().all(RunSummary::consistent)
    }
}

/// Reads `dir/runs/*` and writes `summary.csv`, `summary.md` and `plots/*.svg` into `dir`.
pub fn write_report(dir: &Path) -> Result<Report, ResultsError> {
    let records = load_results(dir)?;
    let runs: Vec<RunSummary> = records.iter().map(summarize).collect();
    let mut files = Vec::new();
    let csv_path = dir.join(SUMMARY_CSV);
    std::fs::write(&csv_path, csv(&runs)).map_err(io_err(&csv_path))?;
    files.push(csv_path);
    let markdown = markdown(&runs);
    let md_path = dir.join(SUMMARY_MD);
    std::fs::write(&md_path, &markdown).map_err(io_err(&md_path))?;
    files.push(md_path);
    let plots = dir.join(PLOTS_DIR);
    std::fs::create_dir_all(&plots).map_err(io_err(&plots))?;
    files.extend(write_plots(&plots, &runs)?);
    Ok(Report {
        runs,
        markdown,
        files,
    })
}

fn num(v: f64, digits: usize) -> String {
    if v.is_nan() {
        String::new()
    } else {
        format!("{v:.digits$}")
    }
}

/// [`num`] for tables: `-` where the figure does not exist.
fn cell(v: f64, digits: usize) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        num(v, digits)
    }
}

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

/// A configuration ([`Condition`]) and the run kind.
type ConfigKey = (Condition, String);

/// Runs by configuration and kind (the rows of the tables).
fn by_config(runs: &[RunSummary]) -> BTreeMap<ConfigKey, Vec<&RunSummary>> {
    let mut m: BTreeMap<ConfigKey, Vec<&RunSummary>> = BTreeMap::new();
    for r in runs {
        m.entry((condition(r), r.kind.clone())).or_default().push(r);
    }
    m
}

/// The mean of a figure over runs, skipping runs without it (NaN if none has it).
fn mean(runs: &[&RunSummary], f: fn(&RunSummary) -> f64) -> f64 {
    let v: Vec<f64> = runs.iter().map(|r| f(r)).filter(|v| !v.is_nan()).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// `mean` or `mean (min-max)` over runs, skipping runs without the figure.
fn spread(runs: &[&RunSummary], f: impl Fn(&RunSummary) -> f64, digits: usize) -> String {
    let v: Vec<f64> = runs.iter().map(|r| f(r)).filter(|v| !v.is_nan()).collect();
    if v.is_empty() {
        return "-".into();
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let (min, max) = v
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let (lo, hi) = (format!("{min:.digits$}"), format!("{max:.digits$}"));
    if lo == hi {
        format!("{mean:.digits$}")
    } else {
        format!("{mean:.digits$} ({lo}-{hi})")
    }
}

/// `12.5 (10.0-15.0)` → `12.5% (10.0-15.0)`.
fn pct(s: String) -> String {
    if s == "-" {
        return s;
    }
    match s.split_once(' ') {
        Some((mean, rest)) => format!("{mean}% {rest}"),
        None => format!("{s}%"),
    }
}

/// What the network columns mean (written under the introduction when a run was on a network).
const NET_NOTE: &str = "On a network: pub wire / seg byte is the IP bytes the publisher's \
hosts (the publisher, trackers, mirrors) sent / bytes of the segments fetched, the sum of payload \
(piece data and segment bodies on the wire: unlike publisher copies, which counts what the process \
wrote, bytes that never left a socket buffer are not in it), control (manifests, tracker answers, \
BitTorrent messages other than piece data, HTTP headers) and TCP/IP (headers and retransmitted \
payload); dropped at its uplink is the part of it that its own uplink queue dropped (sent into the \
access link, never across it); control / viewer / seg is a viewer's new payload on the wire, sent and received, less \
the verified payload it received and the piece data it sent, in bytes per segment played; viewer overhead is the viewers' control / their new payload on the wire; \
TCP/IP share is the viewers' TCP/IP bytes / their IP bytes; TCP rtt is the median smoothed RTT \
of the connections sampled; emulator cpu is its thread's CPU time / wall time; idle is the \
machine's mean idle CPU.";

/// What the lag column means (after [`NET_NOTE`], when a run measured it).
const LAG_NOTE: &str = " Emulator lag p99 is the 99th percentile of the delay the emulator \
added to a packet beyond the model's (from the kernel queueing it to its verdict), in ms.";

/// The Markdown report.
pub fn markdown(runs: &[RunSummary]) -> String {
    let mut out = String::new();
    let groups = by_config(runs);
    let varies = Varies::of(runs);
    let any_net = runs.iter().any(|r| r.net.is_some());
    let any_cpu = runs.iter().any(|r| !r.idle_mean.is_nan());
    let any_lag = runs.iter().any(|r| !r.emulator_lag_p99_ms.is_nan());
    let joins: std::collections::BTreeSet<&str> = runs.iter().map(|r| r.join.as_str()).collect();
    let caps: std::collections::BTreeSet<u32> = runs.iter().map(|r| r.publisher_cap).collect();
    let bitrates: std::collections::BTreeSet<u64> = runs.iter().map(|r| r.bitrate).collect();
    let _ = writeln!(out, "# swarmcast lab results\n");
    let _ = writeln!(
        out,
        "{} runs; bitrate {}; join {}; publisher upload cap {}. Each cell is the mean over the \
         configuration's runs, with (min-max) when they differ. Times in ms; setup is added -> first \
         verified piece (HTTP: request -> first verified piece); copies is publisher bytes / bytes of \
         the segments fetched.\n",
        runs.len(),
        list(bitrates.iter().map(|b| format!("{:.0} kbit/s", *b as f64 / 1000.0))),
        list(joins.iter().map(|j| j.to_string())),
        list(caps.iter().map(|c| if *c == 0 {
            "none".to_string()
        } else {
            format!("{c} B/s")
        }))
    );
    if any_net {
        let lag_note = if any_lag { LAG_NOTE } else { "" };
        let _ = writeln!(out, "{NET_NOTE}{lag_note}\n");
    } else if any_cpu {
        let _ = writeln!(out, "idle is the machine's mean idle CPU.\n");
    }
    let saturated: Vec<&RunSummary> = runs.iter().filter(|r| r.saturated).collect();
    if !saturated.is_empty() {
        let _ = writeln!(
            out,
            "⚠ The machine was saturated (under 10% idle CPU on average, or under 5% for more than \
             a quarter of the run) during {} of {} runs: {}. Their figures measure the machine, not \
             the protocol; their rows are marked ⚠ saturated.\n",
            saturated.len(),
            runs.len(),
            list(saturated.iter().map(|r| format!("`{}`", r.id)))
        );
    }

    // The columns every table has before its figures: what names the configuration.
    let condition_cols = |t: &mut Table| {
        t.num("segment s");
        t.num("viewers");
    };
    let condition_extra_cols = |t: &mut Table| {
        if varies.caps {
            t.text("caps");
        }
        if any_net {
            t.text("network");
        }
    };
    let condition_extra = |r: &RunSummary| -> Vec<String> {
        let mut cells = Vec::new();
        if varies.caps {
            cells.push(caps_label(condition(r).caps));
        }
        if any_net {
            cells.push(net_label(r).to_owned());
        }
        cells
    };

    let mut t = Table::default();
    condition_cols(&mut t);
    t.text("transport");
    condition_extra_cols(&mut t);
    for c in [
        "runs",
        "publisher copies",
        "copies / viewer",
        "from peers",
        "fetched / needed",
        "setup median",
        "setup p95",
        "setup / segment",
        "complete median",
        "stalls",
        "stall ms",
        "skips",
        "missed",
        "fallbacks",
    ] {
        t.num(c);
    }
    let any_superseded = runs.iter().any(|r| r.fallbacks_superseded > 0);
    if any_superseded {
        t.num("fallbacks the swarm beat");
    }
    let any_refused = runs.iter().any(|r| r.fallbacks_refused > 0);
    if any_refused {
        t.num("fallbacks refused");
    }
    for c in ["failed dials / seg", "startup", "behind live"] {
        t.num(c);
    }
    if any_net {
        for c in [
            "pub wire / seg byte",
            "payload",
            "control",
            "TCP/IP",
            "dropped at its uplink",
            "control / viewer / seg",
            "viewer overhead",
            "TCP/IP share",
            "TCP rtt",
            "emulator cpu",
        ] {
            t.num(c);
        }
        if any_lag {
            t.num("emulator lag p99");
        }
    }
    if any_cpu {
        t.num("idle");
    }
    t.text("consistent");
    for ((c, kind), rs) in &groups {
        let consistent = rs.iter().filter(|r| r.consistent()).count();
        let mut cells = vec![
            mark_saturated(format!("{}", c.segment_ms as f64 / 1000.0), rs),
            c.viewers.to_string(),
            kind.clone(),
        ];
        cells.extend(condition_extra(rs[0]));
        cells.extend([
            rs.len().to_string(),
            spread(rs, |r| r.publisher_copies, 2),
            spread(rs, |r| r.publisher_per_viewer, 2),
            pct(spread(rs, |r| 100.0 * r.peer_share, 1)),
            spread(rs, |r| r.duplicate_ratio, 3),
            spread(rs, |r| r.setup_median_ms, 1),
            spread(rs, |r| r.setup_p95_ms, 1),
            pct(spread(rs, |r| 100.0 * r.setup_fraction, 3)),
            spread(rs, |r| r.complete_median_ms, 0),
            spread(rs, |r| r.stalls as f64, 1),
            spread(rs, |r| r.stall_ms, 0),
            spread(rs, |r| r.skips as f64, 1),
            spread(rs, |r| r.missed as f64, 1),
            spread(rs, |r| r.fallbacks as f64, 1),
        ]);
        if any_superseded {
            cells.push(spread(rs, |r| r.fallbacks_superseded as f64, 1));
        }
        if any_refused {
            cells.push(spread(rs, |r| r.fallbacks_refused as f64, 1));
        }
        cells.extend([
            spread(rs, |r| r.failed_dials_per_segment, 2),
            spread(rs, |r| r.startup_median_ms, 0),
            spread(rs, |r| r.behind_live_median_ms, 0),
        ]);
        if any_net {
            cells.extend([
                spread(rs, |r| r.publisher_wire_per_byte, 3),
                spread(rs, |r| r.publisher_payload_per_byte, 3),
                spread(rs, |r| r.publisher_control_per_byte, 3),
                spread(rs, |r| r.publisher_tcpip_per_byte, 3),
                spread(rs, |r| r.publisher_queue_dropped_per_byte, 3),
                spread(rs, |r| r.control_bytes_per_viewer_segment, 0),
                pct(spread(rs, |r| 100.0 * r.viewer_overhead_share, 2)),
                pct(spread(rs, |r| 100.0 * r.viewer_tcpip_share, 1)),
                spread(rs, |r| r.tcp_rtt_median_ms, 1),
                pct(spread(rs, |r| 100.0 * r.emulator_cpu_share, 1)),
            ]);
            if any_lag {
                cells.push(spread(rs, |r| r.emulator_lag_p99_ms, 2));
            }
        }
        if any_cpu {
            cells.push(pct(spread(rs, |r| 100.0 * r.idle_mean, 1)));
        }
        cells.push(format!("{consistent}/{}", rs.len()));
        t.row(cells);
    }
    out.push_str(&t.render());

    // Swarm beside HTTP, per configuration that has both.
    let mut pairs = Table::default();
    condition_cols(&mut pairs);
    condition_extra_cols(&mut pairs);
    for c in [
        "publisher copies, swarm",
        "publisher copies, HTTP",
        "publisher bytes swarm / HTTP",
        "complete median ms, swarm / HTTP",
        "stalls, swarm / HTTP",
    ] {
        pairs.num(c);
    }
    for ((c, kind), swarm) in &groups {
        if kind != "swarm" {
            continue;
        }
        let Some(http) = groups.get(&(c.clone(), "http".to_owned())) else {
            continue;
        };
        let both: Vec<&RunSummary> = swarm.iter().chain(http).copied().collect();
        let mut cells = vec![
            mark_saturated(format!("{}", c.segment_ms as f64 / 1000.0), &both),
            c.viewers.to_string(),
        ];
        cells.extend(condition_extra(swarm[0]));
        cells.extend([
            cell(mean(swarm, |r| r.publisher_copies), 2),
            cell(mean(http, |r| r.publisher_copies), 2),
            cell(
                mean(swarm, |r| r.publisher_bytes as f64)
                    / mean(http, |r| r.publisher_bytes as f64),
                2,
            ),
            format!(
                "{} / {}",
                cell(mean(swarm, |r| r.complete_median_ms), 0),
                cell(mean(http, |r| r.complete_median_ms), 0)
            ),
            format!(
                "{} / {}",
                cell(mean(swarm, |r| r.stalls as f64), 1),
                cell(mean(http, |r| r.stalls as f64), 1)
            ),
        ]);
        pairs.row(cells);
    }
    if !pairs.is_empty() {
        out.push_str("\n## Swarm against HTTP\n\n");
        out.push_str(&pairs.render());
    }

    // Each variant of the librqbit patch series beside the patched swarm (on against off).
    let mut variants = Table::default();
    condition_cols(&mut variants);
    condition_extra_cols(&mut variants);
    variants.text("variant");
    for c in [
        "publisher copies",
        "from peers %",
        "fetched / needed",
        "setup median ms",
        "stalls",
        "missed",
        "failed dials / segment",
    ] {
        variants.num(c);
    }
    for ((c, kind), off) in &groups {
        let Some(variant) = kind.strip_prefix("swarm-") else {
            continue;
        };
        let Some(on) = groups.get(&(c.clone(), "swarm".to_owned())) else {
            continue;
        };
        let pair = |f: fn(&RunSummary) -> f64, digits: usize| {
            format!(
                "{} / {}",
                cell(mean(on, f), digits),
                cell(mean(off, f), digits)
            )
        };
        let both: Vec<&RunSummary> = on.iter().chain(off).copied().collect();
        let mut cells = vec![
            mark_saturated(format!("{}", c.segment_ms as f64 / 1000.0), &both),
            c.viewers.to_string(),
        ];
        cells.extend(condition_extra(on[0]));
        cells.extend([
            variant.to_owned(),
            pair(|r| r.publisher_copies, 2),
            pair(|r| 100.0 * r.peer_share, 1),
            pair(|r| r.duplicate_ratio, 3),
            pair(|r| r.setup_median_ms, 1),
            pair(|r| r.stalls as f64, 1),
            pair(|r| r.missed as f64, 1),
            pair(|r| r.failed_dials_per_segment, 2),
        ]);
        variants.row(cells);
    }
    if !variants.is_empty() {
        out.push_str("\n## librqbit changes: patched against the variant\n\n");
        out.push_str(&variants.render());
    }

    out.push_str("\n## Consistency\n\n");
    consistency(&mut out, runs);
    out
}

/// The consistency section: the checks every run passed, or each failure. Runs on a network have
/// more checks than runs on loopback; a check only some runs have says how many.
fn consistency(out: &mut String, runs: &[RunSummary]) {
    let failed: Vec<&RunSummary> = runs.iter().filter(|r| !r.consistent()).collect();
    if !failed.is_empty() {
        let _ = writeln!(
            out,
            "{} of {} runs fail a check:\n",
            failed.len(),
            runs.len()
        );
        for r in failed {
            for c in r.checks.iter().filter(|c| !c.ok) {
                let _ = writeln!(out, "- `{}`: {}: {}", r.id, c.name, c.detail);
            }
        }
        return;
    }
    // Every check's name in the order runs list them, with the runs that have it.
    let mut names: Vec<(&str, usize)> = Vec::new();
    for c in runs.iter().flat_map(|r| &r.checks) {
        match names.iter_mut().find(|(n, _)| *n == c.name) {
            Some((_, k)) => *k += 1,
            None => names.push((c.name, 1)),
        }
    }
    let counts: std::collections::BTreeSet<usize> = runs.iter().map(|r| r.checks.len()).collect();
    if counts.len() <= 1 {
        let checks = runs.first().map_or(0, |r| r.checks.len());
        let _ = writeln!(out, "All {} runs pass all {checks} checks:\n", runs.len());
        for c in runs
            .first()
            .map(|r| r.checks.as_slice())
            .unwrap_or_default()
        {
            let _ = writeln!(out, "- {}", c.name);
        }
        return;
    }
    let counts: Vec<String> = counts.iter().map(usize::to_string).collect();
    let _ = writeln!(
        out,
        "All {} runs pass all their checks ({} each):\n",
        runs.len(),
        counts.join(" or ")
    );
    for (name, k) in names {
        if k == runs.len() {
            let _ = writeln!(out, "- {name}");
        } else {
            let _ = writeln!(out, "- {name} ({k} of {} runs)", runs.len());
        }
    }
}

fn list(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// A named line of points.
struct Series {
    name: String,
    /// Every run's value (drawn as dots) ...
    points: Vec<(f64, f64)>,
    /// ... and the line through the means at each x.
    line: Vec<(f64, f64)>,
}

fn series_by(
    runs: &[RunSummary],
    filter: impl Fn(&RunSummary) -> bool,
    name: impl Fn(&RunSummary) -> String,
    x: impl Fn(&RunSummary) -> f64,
    y: impl Fn(&RunSummary) -> f64,
) -> Vec<Series> {
    let mut by_name: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in runs.iter().filter(|r| filter(r)) {
        let (x, y) = (x(r), y(r));
        if x.is_finite() && y.is_finite() {
            by_name.entry(name(r)).or_default().push((x, y));
        }
    }
    by_name
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            let mut line: Vec<(f64, f64)> = Vec::new();
            let mut i = 0;
            while i < points.len() {
                let j = points[i..]
                    .iter()
                    .position(|p| p.0 != points[i].0)
                    .map_or(points.len(), |k| i + k);
                let mean = points[i..j].iter().map(|p| p.1).sum::<f64>() / (j - i) as f64;
                line.push((points[i].0, mean));
                i = j;
            }
            Series { name, points, line }
        })
        .collect()
}

struct Chart<'a> {
    file: &'a str,
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    log_x: bool,
    legend: SeriesLabelPosition,
}

fn draw(dir: &Path, chart: &Chart<'_>, series: &[Series]) -> Result<PathBuf, ResultsError> {
    let path = dir.join(chart.file);
    let err = |e: &dyn std::fmt::Display| ResultsError::Plot {
        path: path.clone(),
        reason: e.to_string(),
    };
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().chain(&s.line).copied())
        .collect();
    let (mut x0, mut x1, mut y1) = all.iter().fold(
        (f64::INFINITY, f64::NEG_INFINITY, 0.0f64),
        |(a, b, c), &(x, y)| (a.min(x), b.max(x), c.max(y)),
    );
    if all.is_empty() {
        (x0, x1, y1) = (1.0, 2.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if chart.log_x {
        x0 = (x0 * 0.8).max(1e-3);
        x1 *= 1.25;
    } else {
        let pad = (x1 - x0) * 0.05;
        x0 -= pad;
        x1 += pad;
    }
    let y1 = if y1 <= 0.0 { 1.0 } else { y1 * 1.1 };
    {
        let root = SVGBackend::new(&path, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut builder = ChartBuilder::on(&root);
        frame(&mut builder, chart.title);
        macro_rules! body {
            ($ctx:expr) => {{
                let mut ctx = $ctx;
                ctx.configure_mesh()
                    .x_desc(chart.x_desc)
                    .y_desc(chart.y_desc)
                    .draw()
                    .map_err(|e| err(&e))?;
                for (i, s) in series.iter().enumerate() {
                    let color = Palette99::pick(i).to_rgba();
                    ctx.draw_series(LineSeries::new(
                        s.line.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| err(&e))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                    ctx.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(|e| err(&e))?;
                }
                if !series.is_empty() {
                    ctx.configure_series_labels()
                        .position(chart.legend.clone())
                        .background_style(WHITE.mix(0.85))
                        .border_style(BLACK)
                        .draw()
                        .map_err(|e| err(&e))?;
                }
            }};
        }
        if chart.log_x {
            body!(builder
                .build_cartesian_2d((x0..x1).log_scale(), 0.0..y1)
                .map_err(|e| err(&e))?);
        } else {
            body!(builder
                .build_cartesian_2d(x0..x1, 0.0..y1)
                .map_err(|e| err(&e))?);
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(path)
}

fn write_plots(dir: &Path, runs: &[RunSummary]) -> Result<Vec<PathBuf>, ResultsError> {
    let swarm = |r: &RunSummary| r.transport == Transport::Swarm;
    let any = |_: &RunSummary| true;
    let n = |r: &RunSummary| r.viewers as f64;
    // A line per kind and segment length, and per cap and network where runs differ in them.
    let varies = Varies::of(runs);
    let label = |r: &RunSummary| format!("{} {}s{}", r.kind, r.segment_secs, varies.suffix(r));
    let mut files = Vec::new();

    // Setup distribution: a CDF per swarm configuration (all repeats pooled).
    let mut cdf: BTreeMap<Condition, (String, Vec<f64>)> = BTreeMap::new();
    for r in runs.iter().filter(|r| swarm(r)) {
        cdf.entry(condition(r))
            .or_insert_with(|| (varies.suffix(r), Vec::new()))
            .1
            .extend(r.setup_ms.iter().copied());
    }
    let cdf_series: Vec<Series> = cdf
        .into_iter()
        .filter(|(_, (_, v))| !v.is_empty())
        .map(|(c, (suffix, mut v))| {
            v.sort_by(f64::total_cmp);
            let len = v.len() as f64;
            let line: Vec<(f64, f64)> = v
                .iter()
                .enumerate()
                .map(|(i, &ms)| (ms, (i + 1) as f64 / len))
                .collect();
            Series {
                name: format!("{}s x {}{suffix}", c.segment_ms as f64 / 1000.0, c.viewers),
                points: Vec::new(),
                line,
            }
        })
        .collect();
    files.push(draw_cdf(dir, &cdf_series)?);

    let charts: Vec<(Chart<'_>, Vec<Series>)> = vec![
        (
            Chart {
                file: "setup_fraction.svg",
                title: "Swarm setup as a share of the segment (median added -> first piece)",
                x_desc: "segment length, s (log)",
                y_desc: "setup / segment duration, %",
                log_x: true,
                legend: SeriesLabelPosition::UpperRight,
            },
            series_by(
                runs,
                swarm,
                |r| format!("{:>3} viewers{}", r.viewers, varies.suffix(r)),
                |r| r.segment_secs,
                |r| 100.0 * r.setup_fraction,
            ),
        ),
        (
            Chart {
                file: "publisher_upload.svg",
                title: "Publisher upload per segment / segment size",
                x_desc: "viewers",
                y_desc: "copies of each segment the publisher sent",
                log_x: false,
                legend: SeriesLabelPosition::UpperLeft,
            },
            series_by(runs, any, label, n, |r| r.publisher_copies),
        ),
        (
            Chart {
                file: "peer_share.svg",
                title: "Share of payload bytes from other viewers (swarm)",
                x_desc: "viewers",
                y_desc: "% of bytes received",
                log_x: false,
                legend: SeriesLabelPosition::UpperLeft,
            },
            series_by(runs, swarm, label, n, |r| 100.0 * r.peer_share),
        ),
        (
            Chart {
                file: "stalls.svg",
                title: "Playback stalls",
                x_desc: "viewers",
                y_desc: "stall time per viewer, ms",
                log_x: false,
                legend: SeriesLabelPosition::UpperLeft,
            },
            series_by(runs, any, label, n, |r| r.stall_ms / r.viewers as f64),
        ),
        (
            Chart {
                file: "startup.svg",
                title: "Startup (first manifest -> first byte played, median)",
                x_desc: "viewers",
                y_desc: "ms",
                log_x: false,
                legend: SeriesLabelPosition::UpperLeft,
            },
            series_by(runs, any, label, n, |r| r.startup_median_ms),
        ),
        (
            Chart {
                file: "behind_live.svg",
                title: "Latency behind live (published -> played, median)",
                x_desc: "viewers",
                y_desc: "ms",
                log_x: false,
                legend: SeriesLabelPosition::UpperLeft,
            },
            series_by(runs, any, label, n, |r| r.behind_live_median_ms),
        ),
        (
            Chart {
                file: "setup_median.svg",
                title: "Setup per segment (median added -> first verified piece)",
                x_desc: "viewers",
                y_desc: "ms",
                log_x: false,
                legend: SeriesLabelPosition::UpperLeft,
            },
            series_by(runs, any, label, n, |r| r.setup_median_ms),
        ),
    ];
    for (chart, series) in &charts {
        files.push(draw(dir, chart, series)?);
    }
    files.extend(write_variant_plots(dir, runs)?);
    Ok(files)
}

fn draw_cdf(dir: &Path, series: &[Series]) -> Result<PathBuf, ResultsError> {
    draw(
        dir,
        &Chart {
            file: "setup_cdf.svg",
            title: "Swarm setup per segment: distribution (added -> first verified piece)",
            x_desc: "ms (log)",
            y_desc: "fraction of segments",
            log_x: true,
            legend: SeriesLabelPosition::LowerRight,
        },
        series,
    )
}

/// Every plot's caption, margin and axis label areas.
fn frame<DB: DrawingBackend>(builder: &mut ChartBuilder<'_, '_, DB>, title: &str) {
    builder
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70);
}

/// The configurations ([`Condition`]: segment length, viewers, caps, network) measured with more
/// than one swarm kind (`swarm` and `swarm-<variant>`), with all their runs (HTTP's too). Plots by
/// kind are written for these; a sweep of one librqbit variant has none.
fn variant_configs(runs: &[RunSummary]) -> BTreeMap<Condition, Vec<&RunSummary>> {
    let mut m: BTreeMap<Condition, Vec<&RunSummary>> = BTreeMap::new();
    for r in runs {
        m.entry(condition(r)).or_default().push(r);
    }
    m.retain(|_, rs| {
        let swarm_kinds: std::collections::BTreeSet<&str> = rs
            .iter()
            .filter(|r| r.transport == Transport::Swarm)
            .map(|r| r.kind.as_str())
            .collect();
        swarm_kinds.len() > 1
    });
    m
}

/// Values of one figure with the run kind as a category: one bar group per kind, one bar per
/// configuration in each group.
struct Bars {
    /// The kinds on the x axis: `swarm`, then `swarm-<variant>` by name, then the others (`http`).
    kinds: Vec<String>,
    /// Per configuration: its name, and per kind (as in `kinds`) every run's value.
    series: Vec<(String, Vec<Vec<f64>>)>,
}

fn bars_by_kind(
    configs: &BTreeMap<Condition, Vec<&RunSummary>>,
    filter: impl Fn(&RunSummary) -> bool,
    y: impl Fn(&RunSummary) -> f64,
) -> Bars {
    let mut kinds: Vec<String> = configs
        .values()
        .flatten()
        .filter(|r| filter(r))
        .map(|r| r.kind.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    kinds.sort_by_key(|k| {
        let rank = match k.as_str() {
            "swarm" => 0,
            k if k.starts_with("swarm-") => 1,
            _ => 2,
        };
        (rank, k.clone())
    });
    // Configurations are named by cap and network where they differ in them.
    let varies = Varies::of(configs.values().flatten().copied());
    let series = configs
        .iter()
        .map(|(c, rs)| {
            let name = format!(
                "{}s x {}{}",
                c.segment_ms as f64 / 1000.0,
                c.viewers,
                varies.suffix(rs[0])
            );
            let values = kinds
                .iter()
                .map(|k| {
                    rs.iter()
                        .filter(|r| filter(r) && &r.kind == k)
                        .map(|r| y(r))
                        .filter(|v| v.is_finite())
                        .collect()
                })
                .collect();
            (name, values)
        })
        .collect();
    Bars { kinds, series }
}

/// A bar chart with the run kind on the x axis.
struct KindChart<'a> {
    file: &'a str,
    title: &'a str,
    y_desc: &'a str,
    log_y: bool,
    /// The figure's target, drawn as a dashed line, and its legend entry.
    target: Option<(f64, &'a str)>,
    /// Digits of the mean written above each bar.
    digits: usize,
    legend: SeriesLabelPosition,
}

/// A categorical x axis: kind `i` is centred on `i`, the axis runs from -0.5 to kinds - 0.5, and
/// each kind's tick is labelled with its name.
struct KindAxis<'a> {
    kinds: &'a [String],
}

impl KindAxis<'_> {
    fn end(&self) -> f64 {
        self.kinds.len().max(1) as f64 - 0.5
    }
}

impl Ranged for KindAxis<'_> {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let share = (value + 0.5) / (self.end() + 0.5);
        limit.0 + ((limit.1 - limit.0) as f64 * share).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (0..self.kinds.len()).map(|i| i as f64).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        -0.5..self.end()
    }
}

impl ValueFormatter<f64> for KindAxis<'_> {
    fn format_ext(&self, value: &f64) -> String {
        let i = value.round();
        match i >= 0.0 {
            true => self.kinds.get(i as usize).cloned().unwrap_or_default(),
            false => String::new(),
        }
    }
}

/// Draws each configuration's mean per kind as a bar, labelled with its value, every run as a dot
/// where a kind has more than one run, and the target as a dashed line.
fn draw_bars(dir: &Path, chart: &KindChart<'_>, bars: &Bars) -> Result<PathBuf, ResultsError> {
    let path = dir.join(chart.file);
    let err = |e: &dyn std::fmt::Display| ResultsError::Plot {
        path: path.clone(),
        reason: e.to_string(),
    };
    let shown = |v: &f64| v.is_finite() && (!chart.log_y || *v > 0.0);
    let (lo, hi) = bars
        .series
        .iter()
        .flat_map(|(_, per_kind)| per_kind.iter().flatten().copied())
        .chain(chart.target.map(|t| t.0))
        .filter(shown)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    let (y0, y1) = match (chart.log_y, hi.is_finite()) {
        (true, true) => (lo / 2.0, hi * 10.0),
        (true, false) => (1.0, 10.0),
        (false, true) if hi > 0.0 => (0.0, hi * 1.35),
        (false, _) => (0.0, 1.0),
    };
    let k = bars.kinds.len().max(1);
    let slot = 0.8 / bars.series.len().max(1) as f64;
    let x_range = KindAxis { kinds: &bars.kinds };
    let value_style = TextStyle::from(("sans-serif", 12).into_font()).pos(text_anchor::Pos::new(
        text_anchor::HPos::Center,
        text_anchor::VPos::Bottom,
    ));
    {
        let width = (120 + 180 * k).clamp(900, 4000) as u32;
        let root = SVGBackend::new(&path, (width, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut builder = ChartBuilder::on(&root);
        frame(&mut builder, chart.title);
        macro_rules! body {
            ($ctx:expr) => {{
                let mut ctx = $ctx;
                ctx.configure_mesh()
                    .disable_x_mesh()
                    .x_desc("kind: swarm (the default), swarm-<variant> (librqbit changes off, or another seeder), http")
                    .y_desc(chart.y_desc)
                    .draw()
                    .map_err(|e| err(&e))?;
                for (j, (name, per_kind)) in bars.series.iter().enumerate() {
                    let color = Palette99::pick(j).to_rgba();
                    // (bar centre, mean, values) per kind with a value to show.
                    let shown_bars: Vec<(f64, f64, Vec<f64>)> = per_kind
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| {
                            let v: Vec<f64> = v.iter().copied().filter(shown).collect();
                            if v.is_empty() {
                                return None;
                            }
                            let mean = v.iter().sum::<f64>() / v.len() as f64;
                            Some((i as f64 - 0.4 + slot * (j as f64 + 0.5), mean, v))
                        })
                        .collect();
                    ctx.draw_series(shown_bars.iter().map(|(c, mean, _)| {
                        Rectangle::new(
                            [(c - slot * 0.45, y0), (c + slot * 0.45, *mean)],
                            color.filled(),
                        )
                    }))
                    .map_err(|e| err(&e))?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                    });
                    ctx.draw_series(
                        shown_bars
                            .iter()
                            .filter(|(_, _, v)| v.len() > 1)
                            .flat_map(|(c, _, v)| v.iter().map(move |&v| (*c, v)))
                            .map(|p| Circle::new(p, 3, BLACK.filled())),
                    )
                    .map_err(|e| err(&e))?;
                    // The mean above the bar and above every dot.
                    ctx.draw_series(shown_bars.iter().map(|(c, mean, v)| {
                        let top = v.iter().fold(*mean, |a, &b| a.max(b));
                        Text::new(num(*mean, chart.digits), (*c, top), value_style.clone())
                    }))
                    .map_err(|e| err(&e))?;
                }
                if let Some((t, name)) = chart.target {
                    ctx.draw_series(DashedLineSeries::new(
                        [(-0.5, t), (k as f64 - 0.5, t)],
                        8,
                        5,
                        RED.stroke_width(2),
                    ))
                    .map_err(|e| err(&e))?
                    .label(name)
                    .legend(|(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(2))
                    });
                }
                ctx.configure_series_labels()
                    .position(chart.legend.clone())
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| err(&e))?;
            }};
        }
        if chart.log_y {
            body!(builder
                .build_cartesian_2d(x_range, (y0..y1).log_scale())
                .map_err(|e| err(&e))?);
        } else {
            body!(builder
                .build_cartesian_2d(x_range, y0..y1)
                .map_err(|e| err(&e))?);
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(path)
}

/// The plots by kind (`by_variant_*.svg`), for results with more than one swarm kind at one
/// configuration; none otherwise.
fn write_variant_plots(dir: &Path, runs: &[RunSummary]) -> Result<Vec<PathBuf>, ResultsError> {
    let configs = variant_configs(runs);
    if configs.is_empty() {
        return Ok(Vec::new());
    }
    let swarm = |r: &RunSummary| r.transport == Transport::Swarm;
    let any = |_: &RunSummary| true;
    let charts: Vec<(KindChart<'_>, Bars)> = vec![
        (
            KindChart {
                file: "by_variant_publisher_upload.svg",
                title: "Publisher upload per segment / segment size, by variant",
                y_desc: "copies of each segment the publisher sent",
                log_y: false,
                target: Some((1.1, "target: 1.1 copies or fewer")),
                digits: 2,
                legend: SeriesLabelPosition::UpperLeft,
            },
            bars_by_kind(&configs, any, |r| r.publisher_copies),
        ),
        (
            KindChart {
                file: "by_variant_peer_share.svg",
                title: "Share of payload bytes from other viewers, by variant",
                y_desc: "% of bytes received",
                log_y: false,
                target: Some((90.0, "target: 90% or more")),
                digits: 1,
                legend: SeriesLabelPosition::UpperRight,
            },
            bars_by_kind(&configs, swarm, |r| 100.0 * r.peer_share),
        ),
        (
            KindChart {
                file: "by_variant_stalls.svg",
                title: "Playback stalls (late segments over all viewers), by variant",
                y_desc: "stalls per run (target: 0)",
                log_y: false,
                target: None,
                digits: 1,
                legend: SeriesLabelPosition::UpperLeft,
            },
            bars_by_kind(&configs, any, |r| r.stalls as f64),
        ),
        (
            KindChart {
                file: "by_variant_duplicate_ratio.svg",
                title: "Payload received / bytes of the segments completed, by variant",
                y_desc: "fetched / needed",
                log_y: false,
                target: Some((1.05, "target: 1.05 or less")),
                digits: 3,
                legend: SeriesLabelPosition::UpperLeft,
            },
            bars_by_kind(&configs, any, |r| r.duplicate_ratio),
        ),
        (
            KindChart {
                file: "by_variant_setup_median.svg",
                title: "Setup per segment (median added -> first verified piece), by variant",
                y_desc: "ms (log)",
                log_y: true,
                target: Some((100.0, "target: 100 ms or less")),
                digits: 1,
                legend: SeriesLabelPosition::UpperLeft,
            },
            bars_by_kind(&configs, any, |r| r.setup_median_ms),
        ),
    ];
    charts
        .iter()
        .map(|(chart, bars)| draw_bars(dir, chart, bars))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::{add_to_completed, fixture_copy};

    #[test]
    fn the_report_is_regenerated_byte_for_byte() {
        let d = fixture_copy();
        let first = write_report(d.path()).unwrap();
        assert!(first.consistent());
        let read = |files: &[PathBuf]| -> Vec<Vec<u8>> {
            files.iter().map(|f| std::fs::read(f).unwrap()).collect()
        };
        let before = read(&first.files);
        assert_eq!(first.files.len(), 2 + 8, "csv, md and 8 plots");
        assert!(
            !first.files.iter().any(|f| f
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("by_variant_"))),
            "swarm and HTTP alone get no plots by variant: {:?}",
            first.files
        );
        let again = write_report(d.path()).unwrap();
        assert_eq!(again.files, first.files);
        assert_eq!(read(&again.files), before);

        let csv = std::fs::read_to_string(d.path().join(SUMMARY_CSV)).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        // Runs recorded before `failed_dials` keep the columns they had.
        assert_eq!(
            lines[0],
            "id,transport,segment_secs,viewers,repeat,join,bitrate,publisher_cap,segments,segment_bytes,\
             played,publisher_bytes,publisher_copies,publisher_per_viewer,peer_share,dialled_bytes,duplicate_ratio,\
             setup_median_ms,setup_p95_ms,setup_fraction,complete_median_ms,stalls,stall_ms,skips,missed,\
             fallbacks,startup_median_ms,behind_live_median_ms,behind_live_p95_ms,\
             manifest_bytes_per_segment,connect_attempts_per_segment,connect_errors_per_segment,consistent,failed_checks"
        );
        assert!(
            lines[1].starts_with("s001-n002-http-r1,http,1,2,1,all,1000000,0,3,"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains(",2.000,1.000,0.0000,0,1.0000,"),
            "{}",
            lines[2]
        );
        assert!(lines[2].ends_with(",true,\"\""), "{}", lines[2]);
        let md = &first.markdown;
        assert!(
            md.contains("| 1 | 2 | swarm | 1 | 2.00 | 1.00 | 0.0% | 1.000 |"),
            "{md}"
        );
        assert!(md.contains("| 1 | 2 | 2.00 | 2.00 | 1.00 |"), "{md}");
        assert!(md.contains("All 2 runs pass all 9 checks"), "{md}");
        for f in &first.files[2..] {
            let svg = std::fs::read_to_string(f).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.contains("<text"),
                "{}",
                f.display()
            );
        }
    }

    #[test]
    fn failed_dials_get_a_column_once_a_run_has_them() {
        let d = fixture_copy();
        let run = "s001-n002-swarm-r1";
        for (node, seg) in [("viewer-0", 0), ("viewer-1", 2)] {
            add_to_completed(
                d.path(),
                run,
                node,
                seg,
                "\"connect_attempts\":3,\"connect_errors\":2,\"failed_dials\":1",
            );
        }
        let report = write_report(d.path()).unwrap();
        let csv = std::fs::read_to_string(d.path().join(SUMMARY_CSV)).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(
            lines[0].ends_with(
                ",connect_attempts_per_segment,connect_errors_per_segment,failed_dials_per_segment,consistent,failed_checks"
            ),
            "{}",
            lines[0]
        );
        assert!(lines[1].ends_with(",,,,true,\"\""), "http: {}", lines[1]);
        assert!(
            lines[2].ends_with(",3.00,2.00,1.00,true,\"\""),
            "swarm: {}",
            lines[2]
        );
        let md = &report.markdown;
        assert!(md.contains("| failed dials / seg |"), "{md}");
        // Fallbacks, then failed dials: the swarm's, and none for HTTP.
        assert!(md.contains("| 0.0 | 1.00 |"), "{md}");
        assert!(md.contains("| 0.0 | - |"), "{md}");
    }

    #[test]
    fn repeats_show_their_spread_and_failures_are_listed() {
        let d = fixture_copy();
        let mut runs = write_report(d.path()).unwrap().runs;
        let mut again = runs[1].clone();
        again.repeat = 2;
        again.id = "s001-n002-swarm-r2".into();
        again.publisher_copies = 3.0;
        again.checks[0].ok = false;
        again.checks[0].detail = "viewer-0 segment 0: played 1, published Some(2)".into();
        runs.push(again);
        let md = markdown(&runs);
        assert!(
            md.contains("| 1 | 2 | swarm | 2 | 2.50 (2.00-3.00) |"),
            "{md}"
        );
        assert!(md.contains("1/2 |"), "{md}");
        assert!(md.contains("1 of 3 runs fail a check"), "{md}");
        assert!(md.contains("- `s001-n002-swarm-r2`: played bytes equal the published segment sizes: viewer-0 segment 0"), "{md}");
    }

    /// Adds a copy of the fixture's swarm run as a run of `variant`, with `repeat`.
    fn add_variant(dir: &Path, variant: &str, repeat: u32) {
        let from = dir.join("runs").join("s001-n002-swarm-r1");
        let id = format!("s001-n002-swarm-{variant}-r{repeat}");
        let to = dir.join("runs").join(&id);
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(&from).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
        let run = to.join("run.json");
        let text = std::fs::read_to_string(&run).unwrap().replace(
            "\"id\": \"s001-n002-swarm-r1\",",
            &format!("\"id\": \"{id}\",\n    \"variant\": \"{variant}\","),
        );
        let text = text.replace("\"repeat\": 1,", &format!("\"repeat\": {repeat},"));
        std::fs::write(&run, text).unwrap();
    }

    #[test]
    fn variants_at_one_configuration_get_plots_by_variant() {
        let d = fixture_copy();
        add_variant(d.path(), "upstream", 1);
        add_variant(d.path(), "upstream", 2);
        add_variant(d.path(), "no-superseed+window", 1);
        let first = write_report(d.path()).unwrap();
        let kinds: Vec<&str> = first.runs.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "http",
                "swarm-no-superseed+window",
                "swarm",
                "swarm-upstream",
                "swarm-upstream"
            ]
        );
        let names: Vec<String> = first.files[2 + 8..]
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "by_variant_publisher_upload.svg",
                "by_variant_peer_share.svg",
                "by_variant_stalls.svg",
                "by_variant_duplicate_ratio.svg",
                "by_variant_setup_median.svg"
            ]
        );
        for f in &first.files[2 + 8..] {
            let svg = std::fs::read_to_string(f).unwrap();
            assert!(svg.starts_with("<svg"), "{}", f.display());
            for label in [
                "swarm-upstream",
                "swarm-no-superseed+window",
                "\nswarm\n",
                "1s x 2",
            ] {
                assert!(svg.contains(label), "{label} in {}", f.display());
            }
            let http = svg.contains("\nhttp\n");
            let peers = f.ends_with("by_variant_peer_share.svg");
            assert_eq!(http, !peers, "HTTP has no peers: {}", f.display());
        }
        let upload = std::fs::read_to_string(&first.files[2 + 8]).unwrap();
        assert!(upload.contains("target: 1.1 copies or fewer"), "{upload}");
        // Kinds in order: patched, the variants by name, HTTP.
        let at = |s: &str| upload.find(&format!("\n{s}\n")).unwrap();
        assert!(at("swarm") < at("swarm-no-superseed+window"));
        assert!(at("swarm-no-superseed+window") < at("swarm-upstream"));
        assert!(at("swarm-upstream") < at("http"));

        let read = |files: &[PathBuf]| -> Vec<Vec<u8>> {
            files.iter().map(|f| std::fs::read(f).unwrap()).collect()
        };
        let again = write_report(d.path()).unwrap();
        assert_eq!(again.files, first.files);
        assert_eq!(read(&again.files), read(&first.files));
    }

    #[test]
    fn plots_by_variant_need_two_swarm_kinds_at_one_configuration() {
        let d = fixture_copy();
        add_variant(d.path(), "upstream", 1);
        let mut runs = write_report(d.path()).unwrap().runs;
        assert_eq!(variant_configs(&runs).len(), 1);
        // The variant at another audience size: each configuration has one swarm kind.
        runs.iter_mut()
            .filter(|r| r.kind == "swarm-upstream")
            .for_each(|r| r.viewers = 5);
        assert!(variant_configs(&runs).is_empty());
        // Or under another cap.
        runs.iter_mut()
            .filter(|r| r.kind == "swarm-upstream")
            .for_each(|r| {
                r.viewers = 2;
                r.publisher_cap = 187_500;
            });
        assert!(variant_configs(&runs).is_empty());
        let plots = d.path().join("again");
        std::fs::create_dir_all(&plots).unwrap();
        assert!(write_variant_plots(&plots, &runs).unwrap().is_empty());
        assert_eq!(std::fs::read_dir(&plots).unwrap().count(), 0);
    }

    #[test]
    fn plots_name_the_network_where_runs_differ_in_it() {
        let d = fixture_copy();
        let runs = write_report(d.path()).unwrap().runs;
        let at = |r: &RunSummary, rtt: f64| {
            let mut r = r.clone();
            r.net_point = Some(crate::plan::NetPoint {
                mode: crate::plan::NetMode::Emulated,
                rtt_ms: rtt,
                jitter_ms: 0.0,
                loss_pct: 0.0,
                nat: 0.0,
                queue_ms: crate::plan::DEFAULT_QUEUE_MS,
                self_limit: None,
                symmetric_nat: 0.0,
            });
            r.net = r.net_point.as_ref().map(crate::results::describe_net);
            r
        };
        let runs: Vec<RunSummary> = runs
            .iter()
            .flat_map(|r| [at(r, 50.0), at(r, 200.0)])
            .collect();
        let plots = d.path().join("net");
        std::fs::create_dir_all(&plots).unwrap();
        let files = write_plots(&plots, &runs).unwrap();
        for f in &files {
            let svg = std::fs::read_to_string(f).unwrap();
            for rtt in ["rtt 50 ms", "rtt 200 ms"] {
                assert!(svg.contains(rtt), "{rtt} in {}", f.display());
            }
        }
        // One configuration per network point in the tables too.
        let md = markdown(&runs);
        assert!(
            md.contains("| 1 | 2 | swarm | rtt 50 ms, loss 0%, jitter 0 ms, NAT 0% | 1 |"),
            "{md}"
        );
        assert!(
            md.contains("| 1 | 2 | rtt 200 ms, loss 0%, jitter 0 ms, NAT 0% | 2.00 |"),
            "{md}"
        );
    }

    #[test]
    fn bars_without_values_or_with_bad_ones_still_draw() {
        let d = fixture_copy();
        add_variant(d.path(), "upstream", 1);
        let mut runs = write_report(d.path()).unwrap().runs;
        for r in &mut runs {
            r.setup_median_ms = if r.kind == "swarm" { f64::NAN } else { -1.0 };
            r.publisher_copies = f64::INFINITY;
        }
        let plots = d.path().join("bad");
        std::fs::create_dir_all(&plots).unwrap();
        let files = write_variant_plots(&plots, &runs).unwrap();
        assert_eq!(files.len(), 5);
        let empty = Bars {
            kinds: Vec::new(),
            series: Vec::new(),
        };
        let chart = KindChart {
            file: "empty.svg",
            title: "nothing",
            y_desc: "",
            log_y: true,
            target: None,
            digits: 1,
            legend: SeriesLabelPosition::UpperLeft,
        };
        assert!(draw_bars(&plots, &chart, &empty).is_ok());
    }
}
