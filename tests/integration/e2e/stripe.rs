//! `striped-fec` (docs/striped-fec.md): a publisher striping 1 s segments into 4 substreams,
//! and `swarmcast stripe-node`s on loopback pulling each substream down its own tree. Every
//! node's output is the published segments, byte for byte, from the first it rebuilt to the
//! end; when an interior node is killed, its descendants lose at most its home substream and
//! still rebuild every segment from the other three; when an interior node forges symbols, its
//! children refuse them before their decoders, leave it, and still play every segment.

use std::path::Path;
use std::time::{Duration, Instant};

use super::procs::{
    free_port, json_lines, listening_node, publish, stream_dir, wait_viewers, KillOnDrop,
};

const HANG_GUARD: Duration = Duration::from_secs(120);

fn node(
    dir: &Path,
    name: &str,
    link: &str,
    directory: &str,
    extra: &[&str],
    port: u16,
) -> KillOnDrop {
    let mut args = vec![
        "stripe-node",
        "--link",
        link,
        "--directory",
        directory,
        "--node",
        name,
    ];
    args.extend_from_slice(extra);
    listening_node(dir, name, &args, port, HANG_GUARD)
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

/// A publisher and six nodes, joined one at a time; `n0` gets `n0_args`. Homes are dealt in join
/// order: n0 home 0 (the source's one slot in tree 0), n1..n3 homes 1..3, n4 and n5 homes 0
/// and 1. Every node but n0 takes substream 0 from n0 or n4.
struct Six {
    tmp: tempfile::TempDir,
    _publisher: KillOnDrop,
    names: Vec<String>,
    /// n0 (killed by one test).
    n0: Option<KillOnDrop>,
    /// n1..n5.
    others: Vec<KillOnDrop>,
    /// Where n0 serves.
    n0_port: u16,
}

impl Six {
    fn start(n0_args: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let http = free_port();
        let (publisher, link) = publish(
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
                "--substreams",
                "4",
                "--stripe-source",
                &format!("http://127.0.0.1:{http}/stripe"),
            ],
        );
        let directory = format!("http://127.0.0.1:{http}/stripes");
        let names: Vec<String> = (0..6).map(|i| format!("n{i}")).collect();
        let mut nodes = Vec::new();
        let n0_port = free_port();
        for (i, name) in names.iter().enumerate() {
            let (extra, port) = if i == 0 {
                (n0_args, n0_port)
            } else {
                (&[][..], free_port())
            };
            nodes.push(node(dir, name, &link, &directory, extra, port));
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
        Self {
            tmp,
            _publisher: publisher,
            names,
            n0: Some(nodes.remove(0)),
            others: nodes,
            n0_port,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Waits until n1..n5 played `bytes`.
    fn wait_played(&self, bytes: u64) {
        let start = Instant::now();
        while self.names[1..]
            .iter()
            .any(|n| played(self.dir(), n) < bytes)
        {
            assert!(
                start.elapsed() < HANG_GUARD,
                "hang guard: nodes did not play: {}",
                log(self.dir(), "n1")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for n1..n5 to end, and checks that each one's output is whole consecutive
    /// published segments up to the last, with no segment given up.
    fn check_outputs(&mut self) {
        let dir = self.tmp.path().to_owned();
        wait_viewers(&dir, &self.names[1..], &mut self.others, HANG_GUARD, || {});
        let seg = stream_dir(&dir);
        let mut files = Vec::new();
        while let Ok(b) = std::fs::read(seg.join(format!("{:08}.ts", files.len()))) {
            files.push(b);
        }
        assert!(files.len() >= 12, "{} segments published", files.len());
        for name in &self.names[1..] {
            let out = std::fs::read(dir.join(format!("{name}.ts"))).unwrap();
            let range = segments_of(&files, &out).unwrap_or_else(|| {
                panic!(
                    "{name}'s output is not whole consecutive published segments: {}",
                    log(&dir, name)
                )
            });
            // Nothing lost: every node played to the last segment.
            assert_eq!(
                range.end,
                files.len(),
                "{name} stopped at {range:?}: {}",
                log(&dir, name)
            );
            assert!(range.len() >= 8, "{name} played only {range:?}");
            let lost = json_lines(&dir.join(format!("{name}.jsonl")))
                .iter()
                .filter(|e| e["kind"] == "stream_lost")
                .count();
            assert_eq!(lost, 0, "{name} gave up segments: {}", log(&dir, name));
            // The closing line counts the symbols sent for what it played.
            let (symbols_lost, expected) = closing_symbols(&log(&dir, name));
            assert!(
                expected > 0 && symbols_lost <= expected,
                "{name}: {symbols_lost} of {expected} symbols lost"
            );
        }
    }
}

/// `(lost, expected)` from a node's closing line ("..., 12 of 3456 symbols lost").
fn closing_symbols(log: &str) -> (u64, u64) {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("symbols lost"))
        .unwrap_or_else(|| panic!("no closing line: {log}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.len() - 5;
    assert_eq!(words[at + 1], "of", "{line}");
    (words[at].parse().unwrap(), words[at + 2].parse().unwrap())
}

/// The count in a node's closing line ("..., 3 forged symbols refused, ...").
fn closing_forged(log: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("forged symbols refused"))
        .unwrap_or_else(|| panic!("no closing line: {log}"));
    let before = &line[..line.find(" forged symbols refused").unwrap()];
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn striped_nodes_rebuild_the_stream_and_survive_an_interior_node_leaving() {
    let mut six = Six::start(&[]);
    // Mid-stream: n0 (interior in tree 0) is killed once the others play.
    six.wait_played(1_000_000);
    let took_parent = json_lines(&six.dir().join("n1.jsonl"))
        .iter()
        .any(|e| e["kind"] == "parent_changed");
    assert!(took_parent, "n1 took no parent");
    drop(six.n0.take());
    six.check_outputs();
    // Someone had n0 as a parent and lost it: it moved, with a detection time.
    let n0 = format!("127.0.0.1:{}/stripe/0", six.n0_port);
    let moved = six.names[1..].iter().any(|n| {
        json_lines(&six.dir().join(format!("{n}.jsonl")))
            .iter()
            .any(|e| {
                e["kind"] == "parent_changed"
                    && e["from"].as_str().is_some_and(|u| u.ends_with(&n0))
                    && e["detect_us"].as_u64().is_some_and(|d| d > 0)
            })
    });
    assert!(moved, "nobody moved off n0 in tree 0");
}

#[test]
fn a_forging_relay_is_caught_before_the_decoder_and_left() {
    // n0, interior in tree 0, flips a byte in every 40th symbol it relays.
    let mut six = Six::start(&["--forge-every", "40"]);
    six.check_outputs();
    let n0 = format!("127.0.0.1:{}/stripe/0", six.n0_port);
    // Its children refused what it forged (each refusal names n0) and left it.
    let mut refused = 0;
    for name in &six.names[1..] {
        let events = json_lines(&six.dir().join(format!("{name}.jsonl")));
        let rejected = events
            .iter()
            .filter(|e| e["kind"] == "piece_rejected")
            .inspect(|e| {
                assert!(
                    e["url"].as_str().is_some_and(|u| u.ends_with(&n0)),
                    "{name} refused a symbol from an honest parent: {e}"
                )
            })
            .count() as u64;
        assert_eq!(
            rejected,
            closing_forged(&log(six.dir(), name)),
            "{name}: events and closing line disagree"
        );
        if rejected > 0 {
            // Each refusal closed the connection to n0, saying why.
            let left = events
                .iter()
                .filter(|e| {
                    e["kind"] == "stream_disconnected"
                        && e["url"].as_str().is_some_and(|u| u.ends_with(&n0))
                        && e["reason"] == "a symbol failed its signed hash"
                })
                .count() as u64;
            assert_eq!(left, rejected, "{name} refused n0's symbols but stayed");
        }
        refused += rejected;
    }
    assert!(refused > 0, "nobody caught n0's forged symbols");
}
