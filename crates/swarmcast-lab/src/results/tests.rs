//! Aggregation and checks on a fixture of raw records: a real smoke run (1 s segments, 2 viewers,
//! the swarm and the HTTP baseline), copied from `swarmcast lab` output without its logs.

use std::path::{Path, PathBuf};

use super::*;

mod network;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/test/lab")
}

/// A writable copy of the fixture.
pub(crate) fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for run in ["s001-n002-http-r1", "s001-n002-swarm-r1"] {
        let to = dir.path().join("runs").join(run);
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(fixture().join("runs").join(run)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
    dir
}

fn summary_of(dir: &Path, run: &str) -> RunSummary {
    summarize(&RunRecords::load(&dir.join("runs").join(run)).unwrap())
}

/// Replaces `from` by `to` in one line of a node's counters: the line of `kind` for `seg`.
pub(crate) fn tamper(
    dir: &Path,
    run: &str,
    node: &str,
    kind: &str,
    seg: u64,
    from: &str,
    to: &str,
) {
    let path = dir.join("runs").join(run).join(format!("{node}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut hit = 0;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.contains(&format!("\"seg\":{seg},")) && l.contains(&format!("\"kind\":\"{kind}\""))
            {
                assert!(l.contains(from), "{l} lacks {from}");
                hit += 1;
                l.replacen(from, to, 1)
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_eq!(hit, 1, "{kind} of segment {seg} in {}", path.display());
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
}

/// Adds `fields` (JSON members, comma-separated) to `node`'s `completed` record of segment `seg`,
/// after its last field of the fixture's format (`from_http`).
pub(crate) fn add_to_completed(dir: &Path, run: &str, node: &str, seg: u64, fields: &str) {
    tamper(
        dir,
        run,
        node,
        "completed",
        seg,
        "\"from_http\":0",
        &format!("\"from_http\":0,{fields}"),
    );
}

#[test]
fn the_fixture_adds_up() {
    let all = load_results(&fixture()).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].run.spec.id, "s001-n002-http-r1", "sorted by id");

    let s = summary_of(&fixture(), "s001-n002-swarm-r1");
    assert!(s.consistent(), "{:#?}", s.checks);
    assert_eq!(s.checks.len(), 9);
    assert_eq!((s.segments, s.played), (3, 6));
    // Cut sizes 129156 + 125020 + 120884; the publisher's last `uploaded` counts per segment.
    let segment_bytes = 129_156 + 125_020 + 120_884;
    assert_eq!(s.publisher_bytes, 258_312 + 250_040 + 241_768);
    assert_eq!(
        s.publisher_copies,
        s.publisher_bytes as f64 / segment_bytes as f64
    );
    assert_eq!(
        s.publisher_copies, 2.0,
        "each of 2 viewers got its own copy"
    );
    assert_eq!(s.publisher_per_viewer, 1.0);
    assert_eq!((s.peer_share, s.duplicate_ratio), (0.0, 1.0));
    assert_eq!((s.stalls, s.skips, s.fallbacks), (0, 0, 0));
    assert_eq!(s.setup_ms.len(), 6);
    assert!(s.setup_median_ms > 0.0 && s.setup_fraction == s.setup_median_ms / 1000.0);
    assert!(s.behind_live_median_ms > 0.0 && s.startup_median_ms > 0.0);

    let h = summary_of(&fixture(), "s001-n002-http-r1");
    assert!(h.consistent(), "{:#?}", h.checks);
    assert_eq!(h.transport, Transport::Http);
    assert_eq!(h.publisher_copies, 2.0, "HTTP sends every viewer a copy");
    assert_eq!(h.peer_share, 0.0);
}

/// The names of the checks of `run` in `dir` that fail.
fn failed_checks(dir: &Path, run: &str) -> Vec<&'static str> {
    summary_of(dir, run)
        .checks
        .into_iter()
        .filter(|c| !c.ok)
        .map(|c| c.name)
        .collect()
}

/// Checks 1-3, on the viewers' records.
#[test]
fn tampered_records_fail_their_check() {
    let run = "s001-n002-swarm-r1";

    let d = fixture_copy();
    tamper(
        d.path(),
        run,
        "viewer-0",
        "played",
        0,
        "\"bytes\":129156",
        "\"bytes\":129155",
    );
    assert_eq!(
        failed_checks(d.path(), run),
        ["played bytes equal the published segment sizes"]
    );

    let d = fixture_copy();
    tamper(
        d.path(),
        run,
        "viewer-1",
        "completed",
        1,
        "\"kind\":\"completed\"",
        "\"kind\":\"skipped\"",
    );
    let f = failed_checks(d.path(), run);
    assert!(
        f.contains(
            &"every played segment has learned, added, completed and played records, in order"
        ),
        "{f:?}"
    );

    let d = fixture_copy();
    tamper(
        d.path(),
        run,
        "viewer-0",
        "completed",
        1,
        "\"from_publisher\":125020",
        "\"from_publisher\":125000",
    );
    assert_eq!(
        failed_checks(d.path(), run),
        ["payload received covers every completed segment"]
    );
}

/// Checks 4-6, on the byte counts between nodes.
#[test]
fn tampered_byte_counts_fail_their_check() {
    let run = "s001-n002-swarm-r1";

    let d = fixture_copy();
    // Bytes the publisher sent on a connection it dialled, counted by a viewer as a peer's:
    // moved back to the publisher.
    tamper(
        d.path(),
        run,
        "viewer-1",
        "completed",
        1,
        "\"from_publisher\":125020,\"from_peers\":0",
        "\"from_publisher\":108636,\"from_peers\":16384",
    );
    tamper(
        d.path(),
        run,
        "publisher",
        "uploaded",
        1,
        "\"http_bytes\":0",
        "\"http_bytes\":0,\"dialled_bytes\":16384",
    );
    let s = summary_of(d.path(), run);
    assert!(s.consistent(), "{:#?}", s.checks);
    assert_eq!((s.peer_share, s.dialled_bytes), (0.0, 16384));
    // More than viewers counted from peers is inconsistent.
    tamper(
        d.path(),
        run,
        "publisher",
        "uploaded",
        1,
        "\"dialled_bytes\":16384",
        "\"dialled_bytes\":32768",
    );
    assert_eq!(
        failed_checks(d.path(), run),
        ["bytes the publisher sent on connections it dialled <= bytes viewers counted from peers"]
    );

    let d = fixture_copy();
    tamper(
        d.path(),
        run,
        "viewer-0",
        "completed",
        2,
        "\"from_peers\":0",
        "\"from_peers\":20000",
    );
    assert_eq!(
        failed_checks(d.path(), run),
        ["bytes received from peers <= bytes peers report uploading (+ one 16 KiB chunk in flight per receiver and segment)"]
    );

    let d = fixture_copy();
    tamper(
        d.path(),
        run,
        "viewer-0",
        "completed",
        0,
        "\"from_publisher\":129156",
        "\"from_publisher\":200000",
    );
    assert_eq!(
        failed_checks(d.path(), run),
        ["bytes received from the publisher <= bytes it reports sending"]
    );
}

/// Checks 7 and 8, on the processes.
#[test]
fn tampered_outcomes_fail_their_check() {
    let run = "s001-n002-swarm-r1";

    let d = fixture_copy();
    let rf = d.path().join("runs").join(run).join(RUN_FILE);
    let text = std::fs::read_to_string(&rf).unwrap();
    std::fs::write(
        &rf,
        text.replacen("\"identical\"", "\"segment 0 differs\"", 1)
            .replacen("\"exit\": 0", "\"exit\": 1", 1),
    )
    .unwrap();
    assert_eq!(
        failed_checks(d.path(), run),
        [
            "every viewer's output is byte-identical to the segments it played",
            "every process exited cleanly"
        ]
    );
}

#[test]
fn failed_dials_are_averaged_over_the_completions_that_record_them() {
    let run = "s001-n002-swarm-r1";
    let s = summary_of(&fixture(), run);
    assert!(
        s.failed_dials_per_segment.is_nan(),
        "recorded before the field"
    );
    assert!(s.connect_errors_per_segment.is_nan());

    let d = fixture_copy();
    let add =
        |node: &str, seg: u64, fields: &str| add_to_completed(d.path(), run, node, seg, fields);
    add(
        "viewer-0",
        0,
        "\"connect_attempts\":4,\"connect_errors\":5,\"failed_dials\":3",
    );
    add(
        "viewer-1",
        0,
        "\"connect_attempts\":2,\"connect_errors\":1,\"failed_dials\":0",
    );
    // A completion recorded between the two fields: it counts for errors only.
    add("viewer-1", 1, "\"connect_attempts\":2,\"connect_errors\":3");
    let s = summary_of(d.path(), run);
    assert!(s.consistent(), "{:#?}", s.checks);
    assert_eq!(s.failed_dials_per_segment, 1.5);
    assert_eq!(s.connect_errors_per_segment, 3.0);
    assert_eq!(s.connect_attempts_per_segment, 8.0 / 3.0);
}

#[test]
fn unreadable_results_are_named() {
    let d = tempfile::tempdir().unwrap();
    let err = load_results(d.path()).unwrap_err().to_string();
    assert!(err.contains("no runs"), "{err}");
    let d = fixture_copy();
    let rf = d.path().join("runs/s001-n002-http-r1").join(RUN_FILE);
    std::fs::write(&rf, "{}").unwrap();
    let err = load_results(d.path()).unwrap_err().to_string();
    assert!(err.contains("run.json: not a run file"), "{err}");
    let d = fixture_copy();
    std::fs::write(
        d.path().join("runs/s001-n002-http-r1/viewer-0.jsonl"),
        "{\"v\":1}\n",
    )
    .unwrap();
    let err = load_results(d.path()).unwrap_err().to_string();
    assert!(err.contains("viewer-0.jsonl, line 1"), "{err}");
}

/// Sets a run's spec field in its `run.json`.
fn set_spec(dir: &Path, run: &str, field: &str, value: serde_json::Value) {
    let path = dir.join("runs").join(run).join(RUN_FILE);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["spec"][field] = value;
    std::fs::write(&path, v.to_string()).unwrap();
}

#[test]
fn old_records_have_no_shared_figures_and_new_ones_do() {
    let dir = fixture_copy();
    let old = summary_of(dir.path(), "s001-n002-swarm-r1");
    assert!(old.glass_median_ms.is_nan() && old.playout_startup_median_ms.is_nan());
    set_spec(
        dir.path(),
        "s001-n002-swarm-r1",
        "playout_buffer_secs",
        1.0.into(),
    );
    let s = summary_of(dir.path(), "s001-n002-swarm-r1");
    // Every viewer played every segment: nothing lost, the player started, glass to glass at
    // least the 1 s segment.
    assert_eq!(s.lost_bytes, 0);
    assert_eq!(s.lost_share, 0.0);
    assert_eq!(s.never_played, 0);
    assert!(s.glass_median_ms >= 1000.0, "{}", s.glass_median_ms);
    assert!(s.playout_startup_median_ms > 0.0);
    assert!((0.0..=1.0).contains(&s.share_from_peers));
    let md = crate::report::markdown(&[s]);
    assert!(md.contains("## Transports side by side"), "{md}");
    // The report plots them by transport, and only for runs that have them.
    let report = crate::report::write_report(dir.path()).unwrap();
    let plots: Vec<String> = report
        .files
        .iter()
        .filter_map(|f| f.file_name()?.to_str().map(String::from))
        .filter(|f| f.starts_with("by_transport_"))
        .collect();
    assert_eq!(plots.len(), 7, "{plots:?}");
    let csv = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
    assert!(csv.lines().next().unwrap().contains("glass_median_ms"));
}

#[test]
fn a_continuous_run_reads_its_kept_alignment_and_counts_its_gap() {
    use crate::figures::align::{Alignment, Run};
    let dir = fixture_copy();
    let run = "s001-n002-http-r1";
    set_spec(dir.path(), run, "transport", "relay_resume".into());
    set_spec(dir.path(), run, "playout_buffer_secs", 1.0.into());
    let run_dir = dir.path().join("runs").join(run);
    let published = crate::figures::published(&RunRecords::load(&run_dir).unwrap().publisher);
    let total = published.bytes();
    let gap = 10_000;
    for node in ["viewer-0", "viewer-1"] {
        // A relay that played everything but `gap` bytes in the middle of the second segment.
        let a = Alignment {
            output_bytes: total - gap,
            published_bytes: total,
            runs: vec![
                Run {
                    out: 0,
                    published: 0,
                    len: 150_000,
                },
                Run {
                    out: 150_000,
                    published: 150_000 + gap,
                    len: total - gap - 150_000,
                },
            ],
            foreign_bytes: 0,
            unplaced_bytes: 0,
        };
        std::fs::write(
            crate::transport::alignment_file(&run_dir, node),
            crate::json(&a),
        )
        .unwrap();
        let start = published.segments[0].cut_us - 1_000_000;
        let line = |wall: u64, kind: &str| {
            format!(
                "{{\"v\":1,\"node\":\"{node}\",\"role\":\"relay\",\"wall_us\":{wall},\"mono_us\":{},{kind}}}\n",
                wall - start
            )
        };
        let mut text = line(
            start,
            "\"kind\":\"stream_connected\",\"url\":\"http://127.0.0.1:8090/stream\"",
        );
        for (k, s) in published.segments.iter().enumerate() {
            let written = (s.offset + s.size).saturating_sub(if k > 0 { gap } else { 0 });
            text += &line(
                s.cut_us + 200_000,
                &format!("\"kind\":\"stream_bytes\",\"total\":{written}"),
            );
        }
        std::fs::write(run_dir.join(format!("{node}.jsonl")), text).unwrap();
    }
    let s = summary_of(dir.path(), run);
    assert_eq!(s.lost_bytes, 2 * gap);
    assert!((s.lost_share - gap as f64 / total as f64).abs() < 1e-9);
    assert_eq!(s.foreign_bytes, 0);
    // Loopback: the publisher's host is 127.0.0.1, so every byte came from it.
    assert_eq!(s.share_from_peers, 0.0);
    // Each segment there 200 ms after its cut, a 1 s buffer: no stall (the gap is jumped).
    assert_eq!(s.playout_stalls, 0);
    assert!(
        s.glass_median_ms > 1000.0 && s.glass_median_ms < 1500.0,
        "{}",
        s.glass_median_ms
    );
}

/// A viewer's records as `kind` JSON objects (`seg` and the kind's fields), times in order.
fn viewer_events(records: &[&str]) -> Vec<swarmcast_metrics::Event> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let line = format!(
                r#"{{"v":1,"node":"viewer-0","role":"viewer","wall_us":{w},"mono_us":{m},{r}}}"#,
                w = 1_000_000 + i as u64,
                m = i as u64
            );
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
        })
        .collect()
}

/// Segments skipped before a viewer's first played segment are passed over (it started playing
/// later, no gap), not skips, and not missed; skips once it plays, or by a viewer that never
/// plays, are.
#[test]
fn skips_before_the_first_played_segment_are_passed_over_not_missed() {
    let played = r#""kind":"played","deadline_us":0,"stall_us":0,"bytes":10"#;
    let sizes: BTreeMap<u64, u64> = (0..6).map(|n| (n, 10)).collect();
    let tally_of = |events: &[swarmcast_metrics::Event]| {
        let mut counters = timeline::ViewerCounters::default();
        let t = Timeline::read(events, &mut counters);
        let mut tally = tally::Tally::default();
        tally.add_viewer("viewer-0", &t, &sizes, false);
        (counters.skips, counters.passed_over, tally.missed)
    };

    // Joins at 1, skips 1 and 2 before playing 3;
    // plays 3 and 5, skips 4: one gap.
    let events = viewer_events(&[
        r#""seg":1,"kind":"joined","newest":1"#,
        r#""seg":1,"kind":"skipped""#,
        r#""seg":2,"kind":"skipped""#,
        &format!(r#""seg":3,{played}"#),
        r#""seg":4,"kind":"skipped""#,
        &format!(r#""seg":5,{played}"#),
    ]);
    assert_eq!(tally_of(&events), (1, 2, 1), "(skips, passed over, missed)");

    // A run of unlisted numbers before the first play counts by its `count`.
    let events = viewer_events(&[
        r#""seg":0,"kind":"joined","newest":0"#,
        r#""seg":0,"kind":"skipped","count":3"#,
        &format!(r#""seg":3,{played}"#),
        &format!(r#""seg":4,{played}"#),
        &format!(r#""seg":5,{played}"#),
    ]);
    assert_eq!(tally_of(&events), (0, 3, 0));

    // A viewer that never plays: every skip is a gap, and everything from its join is missed.
    let events = viewer_events(&[
        r#""seg":2,"kind":"joined","newest":2"#,
        r#""seg":2,"kind":"skipped""#,
        r#""seg":3,"kind":"skipped""#,
    ]);
    assert_eq!(tally_of(&events), (2, 0, 4));
}
