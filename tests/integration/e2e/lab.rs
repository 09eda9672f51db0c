//! `swarmcast lab` and `swarmcast report`: the smoke run of the issue (2 viewers, 3 segments of
//! 1 s, the swarm and the HTTP baseline side by side), checked from the raw records themselves.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::util::{run, swarmcast};

fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn of<'a>(events: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    events.iter().filter(move |e| e["kind"] == kind)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

/// `swarmcast lab` with 2 viewers and 1 s segments, `duration` seconds of media, into `out`.
fn small_lab(out: &Path, duration: &str) -> std::process::Command {
    let mut cmd = swarmcast();
    cmd.args([
        "lab",
        "--segment-secs",
        "1",
        "--viewers",
        "2",
        "--duration",
        duration,
    ])
    .arg("--out")
    .arg(out);
    cmd
}

#[test]
fn a_smoke_run_is_consistent_and_its_report_regenerates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let lab = run(&mut small_lab(&out, "3"), true);
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&lab.stdout).trim_end(),
        md.trim_end()
    );
    assert!(md.contains("All 2 runs pass all 9 checks"), "{md}");

    for (run_id, transport) in [
        ("s001-n002-swarm-r1", "swarm"),
        ("s001-n002-http-r1", "http"),
    ] {
        let run_dir = out.join("runs").join(run_id);
        let publisher = events(&run_dir.join("publisher.jsonl"));
        let sizes: BTreeMap<u64, u64> = of(&publisher, "cut")
            .map(|e| (u(&e["seg"]), u(&e["size"])))
            .collect();
        assert_eq!(sizes.len(), 3, "3 segments of 1 s");
        let mut sent: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for e in of(&publisher, "uploaded") {
            sent.insert(u(&e["seg"]), (u(&e["bytes"]), u(&e["http_bytes"])));
        }
        let (mut from_peers, mut peers_uploaded) = (0, 0);
        let mut from_publisher: BTreeMap<u64, u64> = BTreeMap::new();
        for viewer in ["viewer-0", "viewer-1"] {
            let ev = events(&run_dir.join(format!("{viewer}.jsonl")));
            let played: Vec<u64> = of(&ev, "played").map(|e| u(&e["seg"])).collect();
            assert!(
                !played.is_empty() && played.last() == Some(&2),
                "{viewer} played {played:?}"
            );
            assert!(
                played.windows(2).all(|w| w[1] == w[0] + 1),
                "{viewer}: {played:?}"
            );
            for e in of(&ev, "played") {
                let n = u(&e["seg"]);
                // Payload bytes played equal the published segment's size.
                assert_eq!(u(&e["bytes"]), sizes[&n], "{viewer} segment {n}");
                // A complete record: learned, added, completed, then played.
                for kind in ["learned", "added", "completed"] {
                    let at = ev
                        .iter()
                        .position(|x| x["kind"] == kind && x["seg"] == n)
                        .unwrap_or_else(|| panic!("{viewer} segment {n}: no {kind}"));
                    assert!(u(&ev[at]["mono_us"]) <= u(&e["mono_us"]));
                }
            }
            for e in of(&ev, "completed") {
                let n = u(&e["seg"]);
                // A swarm segment comes over HTTP only through a recorded fallback: on a busy
                // machine the swarm may be late, which is the fallback's purpose, not an error.
                let fell_back = of(&ev, "http_fallback").any(|f| f["seg"] == n && f["ok"] == true);
                match (transport, e["via"].as_str()) {
                    ("http", Some("http")) | ("swarm", Some("swarm")) => {}
                    ("swarm", Some("http")) if fell_back => {}
                    (t, via) => panic!("{viewer} segment {n}: {t} run completed via {via:?}"),
                }
                let got = u(&e["from_publisher"]) + u(&e["from_peers"]) + u(&e["from_http"]);
                assert!(
                    got >= sizes[&n],
                    "{viewer} segment {n}: {got} bytes received"
                );
                *from_publisher.entry(n).or_default() +=
                    u(&e["from_publisher"]) + u(&e["from_http"]);
                from_peers += u(&e["from_peers"]);
            }
            peers_uploaded += of(&ev, "forgotten")
                .map(|e| u(&e["uploaded_bytes"]))
                .sum::<u64>();
        }
        // Bytes received from peers <= bytes peers report uploading (librqbit counts chunks the
        // receiver discarded); from the publisher <= what it reports sending.
        assert!(
            from_peers <= peers_uploaded,
            "{run_id}: {from_peers} > {peers_uploaded}"
        );
        for (n, got) in &from_publisher {
            let (swarm, http) = sent[n];
            assert!(
                *got <= swarm + http,
                "{run_id} segment {n}: {got} > {swarm} + {http}"
            );
            if transport == "http" {
                assert_eq!(swarm, 0, "the HTTP baseline uses no swarm");
            }
        }
        let run_json: Value =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap())
                .unwrap();
        for v in run_json["outcome"]["viewers"].as_array().unwrap() {
            assert_eq!(v["output"], "identical", "{run_id}: {v}");
        }
    }

    // The report regenerates the same table and CSV from the raw files alone.
    let csv = std::fs::read(out.join("summary.csv")).unwrap();
    std::fs::remove_file(out.join("summary.md")).unwrap();
    std::fs::remove_file(out.join("summary.csv")).unwrap();
    std::fs::remove_dir_all(out.join("plots")).unwrap();
    run(swarmcast().arg("report").arg(&out), true);
    assert_eq!(std::fs::read_to_string(out.join("summary.md")).unwrap(), md);
    assert_eq!(std::fs::read(out.join("summary.csv")).unwrap(), csv);
    assert!(out.join("plots/setup_cdf.svg").exists());
}

#[test]
fn the_lab_refuses_bad_sweeps_before_starting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        swarmcast()
            .args(["lab", "--publisher-upload-limit", "0.1x", "--out"])
            .arg(dir.path().join("r")),
        false,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--publisher-upload-limit 12500 bytes/s"),
        "{err}"
    );
    assert!(!dir.path().join("r").exists(), "nothing was created");
    // The default sweep says how long it will take, up front.
    let out = run(swarmcast().args(["lab", "--dry-run"]), true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lab: 18 runs in 9 groups, 174 processes; estimated 22 min 12 s"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 9);
    // A results directory without runs is named.
    let out = run(swarmcast().arg("report").arg(dir.path()), false);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no runs"));
}

/// Processes whose command line mentions `needle` (from /proc).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(cmd);
            }
        }
    }
    found
}

#[test]
fn ctrl_c_stops_every_child_process() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let mut lab = small_lab(&out, "60")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until both runs' viewers have written counters: every child is running.
    let needle = out.to_string_lossy().into_owned();
    let started = std::time::Instant::now();
    loop {
        let viewers = processes_mentioning(&needle)
            .iter()
            .filter(|c| c.contains(" watch "))
            .count();
        if viewers == 4 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the children did not start: {:?}",
            processes_mentioning(&needle)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pid = lab.id().to_string();
    run(
        std::process::Command::new("kill").args(["-INT", &pid]),
        true,
    );
    let status = lab.wait().unwrap();
    assert!(!status.success(), "an interrupted lab reports it");
    assert!(
        processes_mentioning(&needle).is_empty(),
        "children left running: {:?}",
        processes_mentioning(&needle)
    );
    // What ran is reported.
    assert!(out.join("summary.md").exists());
}
