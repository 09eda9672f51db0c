//! Helpers of the tests that run a publisher and viewers next to independent servers
//! (opentracker, nginx): processes killed on drop, waits bounded by a hang guard, and the checks
//! of what the viewers played.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::swarmcast;

/// Kills the process when dropped, whatever happens (a failed assertion must not leave it
/// running).
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released for the process under test).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `port` on loopback accepts connections; panics (naming `what` and its log) if
/// `child` exits first or after `guard`.
pub(crate) fn wait_listening(
    child: &mut Child,
    port: u16,
    what: &str,
    log: &Path,
    guard: Duration,
) {
    let start = Instant::now();
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{what} exited {status:?}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < guard,
            "hang guard: {what} never listened on port {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `swarmcast <args>` as node `name` listening on 127.0.0.1:`port`: its output in
/// `dir/<name>.ts`, its counters in `dir/<name>.jsonl`, its log in `dir/<name>.log`; returned
/// once it listens.
pub(crate) fn listening_node(
    dir: &Path,
    name: &str,
    args: &[&str],
    port: u16,
    guard: Duration,
) -> KillOnDrop {
    let log = dir.join(format!("{name}.log"));
    let mut child = swarmcast()
        .env("SWARMCAST_LOG", "info")
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("-o")
        .arg(dir.join(format!("{name}.ts")))
        .arg("--metrics-out")
        .arg(dir.join(format!("{name}.jsonl")))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_listening(&mut child, port, name, &log, guard);
    KillOnDrop(child)
}

/// The JSON lines of a counters file (an unreadable line is skipped: a live file's last line
/// may be half written).
pub(crate) fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `swarmcast publish` with `args` (data, key and counters under `dir`, its log at level info in
/// `dir/publisher.log`), its stdout read up to the stream link: the process (killed on drop)
/// and the link.
pub(crate) fn publish(dir: &Path, args: &[&str]) -> (KillOnDrop, String) {
    let mut child = swarmcast()
        .arg("publish")
        .env("SWARMCAST_LOG", "info")
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--key")
        .arg(dir.join("k"))
        .arg("--metrics-out")
        .arg(dir.join("publisher.jsonl"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("publisher.log")).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = KillOnDrop(child);
    let mut link = String::new();
    BufReader::new(stdout).read_line(&mut link).unwrap();
    assert!(
        link.starts_with("swarmcast:"),
        "no link: {link:?}; {}",
        std::fs::read_to_string(dir.join("publisher.log")).unwrap_or_default()
    );
    (child, link.trim().to_owned())
}

/// A viewer `name` of `link` from the first segment in the window, writing what it plays to
/// `dir/<name>.ts`, its counters to `dir/<name>.jsonl` and its stderr to `dir/<name>.log`.
pub(crate) fn watch(dir: &Path, name: &str, link: &str) -> KillOnDrop {
    watch_with(dir, name, link, &[])
}

/// [`watch`] with more flags.
pub(crate) fn watch_with(dir: &Path, name: &str, link: &str, args: &[&str]) -> KillOnDrop {
    let child = swarmcast()
        .args(["watch", link, "--from-start", "--listen", "127.0.0.1:0"])
        .args(args)
        .arg("-o")
        .arg(dir.join(format!("{name}.ts")))
        .arg("--metrics-out")
        .arg(dir.join(format!("{name}.jsonl")))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
        .spawn()
        .unwrap();
    KillOnDrop(child)
}

/// Waits for every viewer to exit (they do at the end of the stream), calling `tick` about
/// every 100 ms meanwhile; each must exit with success before `guard`.
pub(crate) fn wait_viewers(
    dir: &Path,
    names: &[String],
    viewers: &mut [KillOnDrop],
    guard: Duration,
    mut tick: impl FnMut(),
) {
    let start = Instant::now();
    for (name, viewer) in names.iter().zip(viewers) {
        let status = loop {
            if let Some(s) = viewer.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < guard,
                "hang guard: {name} did not end: {}",
                std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
            );
            tick();
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            status.success(),
            "{name} exited {status:?}: {}",
            std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
        );
    }
}

/// The publisher's segment directory (`dir/data/<key8>`).
pub(crate) fn stream_dir(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir.join("data"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("the publisher's stream directory")
}

/// Asserts that viewer `name`'s output is, byte for byte, the published segments it played
/// (read from `segments`), in order and contiguous; returns their numbers.
pub(crate) fn assert_played_identical(dir: &Path, name: &str, segments: &Path) -> Vec<u64> {
    let played: Vec<u64> = json_lines(&dir.join(format!("{name}.jsonl")))
        .iter()
        .filter(|e| e["kind"] == "played")
        .filter_map(|e| e["seg"].as_u64())
        .collect();
    assert!(!played.is_empty(), "{name} played nothing");
    assert!(
        played.windows(2).all(|w| w[1] == w[0] + 1),
        "{name}: a hole in {played:?}"
    );
    let mut want = Vec::new();
    for n in &played {
        want.extend(
            std::fs::read(segments.join(format!("{n:08}.ts")))
                .unwrap_or_else(|e| panic!("published segment {n}: {e}")),
        );
    }
    let got = std::fs::read(dir.join(format!("{name}.ts"))).unwrap();
    assert!(
        got == want,
        "{name}: {} bytes played, {} in the published segments {played:?}; first difference at {}",
        got.len(),
        want.len(),
        got.iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()))
    );
    played
}

/// Of viewer `name`'s swarm bytes (the `completed` records), (from the publisher, from peers).
pub(crate) fn swarm_bytes(dir: &Path, name: &str) -> (u64, u64) {
    json_lines(&dir.join(format!("{name}.jsonl")))
        .iter()
        .filter(|e| e["kind"] == "completed")
        .fold((0, 0), |(p, v), e| {
            (
                p + e["from_publisher"].as_u64().unwrap_or(0),
                v + e["from_peers"].as_u64().unwrap_or(0),
            )
        })
}

/// A plain `Command` for an external program found by [`crate::util::tool`]'s rule, or an
/// absolute path.
pub(crate) fn external(path: &str) -> Command {
    assert!(
        Path::new(path).exists(),
        "{path} is not installed: run `bash .ci/run` (scripts/install-deps.sh installs it)"
    );
    Command::new(path)
}

/// The last segment the publisher published, from its counters; panics with its log when it
/// is not `want` (a stream that ended early says why there).
pub(crate) fn assert_last_published(dir: &Path, want: u64) {
    let last = json_lines(&dir.join("publisher.jsonl"))
        .iter()
        .filter(|e| e["kind"] == "published")
        .filter_map(|e| e["seg"].as_u64())
        .max();
    if last != Some(want) {
        let log = std::fs::read_to_string(dir.join("publisher.log")).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("segment published"))
            .collect();
        panic!(
            "the publisher's last segment is {last:?}, expected {want}; its log:\n{}",
            lines.join("\n")
        );
    }
}
