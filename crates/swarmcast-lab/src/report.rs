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

mod bars;
mod csv;
mod groups;
mod markdown;
mod plots;

use self::bars::*;
pub use self::csv::csv;
pub use self::markdown::markdown;
use self::plots::*;

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

/// A configuration ([`Condition`]) and the run kind.
type ConfigKey = (Condition, String);

/// [`num`] for tables: `-` where the figure does not exist.
fn cell(v: f64, digits: usize) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        num(v, digits)
    }
}
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
