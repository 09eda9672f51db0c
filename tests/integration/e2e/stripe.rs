//! `striped-fec` (docs/striped-fec.md): a publisher striping 1 s segments into 4 substreams,
//! and `swarmcast stripe-node`s on loopback pulling each substream down its own tree. Every
//! node's output is the published segments, byte for byte, from the first it rebuilt to the
//! end; when an interior node is killed, its descendants lose at most its home substream and
//! still rebuild every segment from the other three.

use std::path::Path;
use std::time::{Duration, Instant};

use super::procs::{free_port, json_lines, listening_node, publish, stream_dir, KillOnDrop};

const HANG_GUARD: Duration = Duration::from_secs(120);

fn node(dir: &Path, name: &str, link: &str, directory: &str) -> KillOnDrop {
    let args = [
        "stripe-node",
        "--link",
        link,
        "--directory",
        directory,
        "--node",
        name,
    ];
    listening_node(dir, name, &args, free_port(), HANG_GUARD)
}

fn played(dir: &Path, name: &str) -> u64 {
    json_lines(&dir.join(format!("{name}.jsonl")))
        .iter()
        .filter(|e| e["kind"] == "stream_bytes")
        .filter_map(|e| e["total"].as_u64())
        .max()
        .unwrap_or(0)
}

fn log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

/// Which published segments `output` is, if it is a run of whole consecutive segments.
fn segments_of(files: &[Vec<u8>], output: &[u8]) -> Option<std::ops::Range<usize>> {
    if output.is_empty() {
        return Some(0..0);
    }
    (0..files.len()).find_map(|first| {
        let mut at = 0;
        for (i, f) in files.iter().enumerate().skip(first) {
            if at == output.len() {
                return Some(first..i);
            }
            if !output[at..].starts_with(f) {
                return None;
            }
            at += f.len();
        }
        (at == output.len()).then_some(first..files.len())
    })
}

#[test]
fn striped_nodes_rebuild_the_stream_and_survive_an_interior_node_leaving() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let http = free_port();
    let (_publisher, link) = publish(
        dir,
        &[
            "--synth",
            "--synth-secs",
            "14",
            "--bitrate",
            "1M",
            "--segment-secs",
            "1",
            "--http",
            &format!("127.0.0.1:{http}"),
            "--linger",
            "6",
            "--keep-segments",
            "--stripes",
            "4",
            "--stripe-source",
            &format!("http://127.0.0.1:{http}/stripe"),
        ],
    );
    let directory = format!("http://127.0.0.1:{http}/stripes");
    // Homes are dealt in join order: n0 home 0 (the source's one slot in tree 0), n1..n3 homes
    // 1..3, n4 and n5 homes 0 and 1. Every node but n0 takes substream 0 from n0 or n4.
    let names: Vec<String> = (0..6).map(|i| format!("n{i}")).collect();
    let mut nodes: Vec<Option<KillOnDrop>> = Vec::new();
    for name in &names {
        nodes.push(Some(node(dir, name, &link, &directory)));
        // One at a time, so that the homes are as the comment says.
        let start = Instant::now();
        while !log(dir, name).contains("joined the stripe directory") {
            assert!(
                start.elapsed() < HANG_GUARD,
                "{name} never joined: {}",
                log(dir, name)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Mid-stream: n0 (interior in tree 0) is killed once the others play.
    let start = Instant::now();
    while names[1..].iter().any(|n| played(dir, n) < 1_000_000) {
        assert!(
            start.elapsed() < HANG_GUARD,
            "hang guard: nodes did not play: {}",
            log(dir, "n1")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let took_parent = json_lines(&dir.join("n1.jsonl"))
        .iter()
        .any(|e| e["kind"] == "parent_changed");
    assert!(took_parent, "n1 took no parent");
    drop(nodes[0].take());
    for (name, child) in names.iter().zip(nodes.iter_mut()).skip(1) {
        let child = child.as_mut().unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < HANG_GUARD,
                "hang guard: {name} did not end: {}",
                log(dir, name)
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            status.success(),
            "{name} exited {status:?}: {}",
            log(dir, name)
        );
    }
    let seg = stream_dir(dir);
    let mut files = Vec::new();
    while let Ok(b) = std::fs::read(seg.join(format!("{:08}.ts", files.len()))) {
        files.push(b);
    }
    assert!(files.len() >= 12, "{} segments published", files.len());
    for name in &names[1..] {
        let out = std::fs::read(dir.join(format!("{name}.ts"))).unwrap();
        let range = segments_of(&files, &out).unwrap_or_else(|| {
            panic!(
                "{name}'s output is not whole consecutive published segments: {}",
                log(dir, name)
            )
        });
        // Nothing lost after the departure: every node played to the last segment.
        assert_eq!(
            range.end,
            files.len(),
            "{name} stopped at {range:?}: {}",
            log(dir, name)
        );
        assert!(range.len() >= 8, "{name} played only {range:?}");
        let lost = json_lines(&dir.join(format!("{name}.jsonl")))
            .iter()
            .filter(|e| e["kind"] == "stream_lost")
            .count();
        assert_eq!(lost, 0, "{name} gave up segments: {}", log(dir, name));
    }
    // Someone had n0 as a parent and lost it: it moved, with a detection time.
    let moved = names[1..].iter().any(|n| {
        json_lines(&dir.join(format!("{n}.jsonl"))).iter().any(|e| {
            e["kind"] == "parent_changed"
                && e["from"].as_str().is_some_and(|u| u.ends_with("/stripe/0"))
                && e["detect_us"].as_u64().is_some_and(|d| d > 0)
        })
    });
    assert!(moved, "nobody moved off n0 in tree 0");
}
