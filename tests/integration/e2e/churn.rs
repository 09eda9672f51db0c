//! `swarmcast lab --churn` on the emulated network: the same seeded departures for every transport
//! (the swarm, the HTTP baseline, the Icecast relay tree and the relay with a back buffer: each
//! departure kills every process of the node's host, and a new node replaces it at once), and the
//! figures every transport shares in the report. Needs root (CI runs as root);
//! skips without it.

use serde_json::Value;

use super::netlab::root_or_skip;
use crate::util::swarmcast;

fn json(path: &std::path::Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

#[test]
fn churn_departs_the_same_nodes_for_every_transport_and_the_shared_figures_are_reported() {
    if !root_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    // 3 nodes, 100% a minute for 20 s: one departure, at the same time for both transports.
    let lab = swarmcast()
        .args([
            "lab",
            "--net",
            "emulated",
            "--rtt",
            "20",
            "--segment-secs",
            "2",
            "--viewers",
            "3",
            "--transports",
            "swarm,http,relay-tree,relay-resume",
            "--duration",
            "20",
            "--churn",
            "100",
            "--churn-seed",
            "4",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&lab.stderr);
    let md = std::fs::read_to_string(out.join("summary.md"))
        .unwrap_or_else(|e| panic!("no summary: {e}\n{err}"));
    let mut departures = Vec::new();
    let ids = [
        "s002-n003-swarm-r1",
        "s002-n003-http-r1",
        "s002-n003-relay-tree-r1",
        "s002-n003-relay-resume-r1",
    ];
    for id in ids {
        let run = json(&out.join("runs").join(id).join("run.json"));
        let viewers = run["outcome"]["viewers"].as_array().unwrap();
        assert_eq!(viewers.len(), 4, "{id}: {viewers:?}");
        let left: Vec<&Value> = viewers.iter().filter(|v| v["killed"] == true).collect();
        assert_eq!(left.len(), 1, "{id}: {viewers:?}");
        assert_eq!(left[0]["churned"], true);
        let replacement = &viewers[3];
        assert_eq!(replacement["node"], "viewer-3");
        departures.push((
            left[0]["node"].as_str().unwrap().to_owned(),
            replacement["started_secs"].as_f64().unwrap(),
        ));
        for v in viewers {
            assert_eq!(v["output"], "identical", "{id}: {v}\n{md}");
        }
    }
    for d in &departures[1..] {
        assert_eq!(d.0, departures[0].0, "{departures:?}");
        assert!((d.1 - departures[0].1).abs() < 1.0, "{departures:?}");
    }
    // The shared figures: a row per transport, and the CSV's columns.
    assert!(md.contains("## Transports side by side"), "{md}");
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for col in [
        "glass_median_ms",
        "lost_bytes",
        "playout_stalls",
        "share_from_peers",
    ] {
        assert!(header.contains(&col), "{col} missing: {header:?}");
    }
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for line in csv.lines().skip(1) {
        let cells = csv_cells(line);
        let glass: f64 = cells[col("glass_median_ms")].parse().unwrap();
        // Glass to glass covers the playout buffer (2 s; a continuous stream's input times are
        // estimated within a segment by its bytes and sampled every 100 ms, so allow for that:
        // relay-tree measured 1,949 ms once) and at most the run.
        assert!((1500.0..20_000.0).contains(&glass), "{line}");
        // A relay with a back buffer loses nothing to a departure (its children resume
        // elsewhere; the one that left is counted to its last byte).
        if cells[col("transport")] == "relay-resume" {
            assert_eq!(cells[col("lost_bytes")], "0", "{line}");
        }
    }
    // `swarmcast report` regenerates it from runs/ alone. Its exit code is not asserted: it is
    // 1 when a run failed a check, and the emulator's lag check (99% of packets within 2 ms)
    // depends on the machine (a busy CI machine failed it once, 2.7 ms); what this test needs of
    // the runs is asserted above.
    let report = swarmcast().arg("report").arg(&out).output().unwrap();
    assert!(
        matches!(report.status.code(), Some(0 | 1)),
        "swarmcast report: {report:?}"
    );
    assert_eq!(std::fs::read_to_string(out.join("summary.md")).unwrap(), md);
}

/// A CSV line's cells (the network column is quoted and holds commas).
fn csv_cells(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => cells.push(String::new()),
            c => cells.last_mut().expect("one cell").push(c),
        }
    }
    cells
}
