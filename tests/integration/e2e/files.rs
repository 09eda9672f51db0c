//! A publisher's file descriptors under attack (docs/reliability.md, "Idle HTTP connections"):
//! the publisher runs under `prlimit` at 256 open files, and idle connections from ten addresses,
//! more than the limit in all and reopened as soon as they are closed, try to take them.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{free_port, json_lines, scopeguard, HANG_GUARD};
use crate::util::{http_get, swarmcast, tool};

/// Connections that send nothing, `count` at once from 127.0.0.2 onwards (`addresses` of them),
/// each reopened once the server closes it, until stopped.
struct Attack {
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
    closed: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Attack {
    fn start(to: SocketAddr, count: usize, addresses: u8) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (opened, closed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, o, c) = (stop.clone(), opened.clone(), closed.clone());
        let thread = std::thread::spawn(move || {
            let open = |i: usize| -> Option<std::net::TcpStream> {
                let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                    .ok()?;
                let from = SocketAddr::from(([127, 0, 0, 2 + (i % addresses as usize) as u8], 0));
                sock.bind(&from.into()).ok()?;
                sock.connect_timeout(&to.into(), Duration::from_secs(1))
                    .ok()?;
                sock.set_nonblocking(true).ok()?;
                o.fetch_add(1, Ordering::Relaxed);
                Some(sock.into())
            };
            let mut held: Vec<Option<std::net::TcpStream>> = (0..count).map(open).collect();
            // Bounded: the test stops it long before.
            let start = Instant::now();
            let mut buf = [0u8; 1024];
            while !s.load(Ordering::Relaxed) && start.elapsed() < 5 * HANG_GUARD {
                for (i, slot) in held.iter_mut().enumerate() {
                    let gone = match slot {
                        None => true,
                        Some(conn) => !matches!(
                            conn.read(&mut buf),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
                        ),
                    };
                    if gone {
                        if slot.is_some() {
                            c.fetch_add(1, Ordering::Relaxed);
                        }
                        *slot = open(i);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self {
            stop,
            opened,
            closed,
            thread: Some(thread),
        }
    }

    /// Stops, closing every connection; (opened, closed by the server).
    fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.opened.load(Ordering::Relaxed),
            self.closed.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A publisher of 1 s segments at 256 open files; its link and HTTP address.
fn publisher(dir: &std::path::Path, extra: &[&str]) -> (Child, SocketAddr) {
    let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut cmd = std::process::Command::new(tool("prlimit"));
    // The environment `swarmcast()` gives its commands.
    for (key, value) in swarmcast().get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    let mut child = cmd
        .arg("--nofile=256:256")
        .arg(env!("CARGO_BIN_EXE_swarmcast"))
        .args([
            "publish",
            "--synth",
            "--synth-secs",
            "600",
            "--segment-secs",
            "1",
        ])
        .args(["--http", &http.to_string(), "--listen", "127.0.0.1:0"])
        .args(["--linger", "1"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--key")
        .arg(dir.join("k"))
        .arg("--metrics-out")
        .arg(dir.join("pub.jsonl"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("swarmcast:"), "no link: {line:?}");
    (child, http)
}

/// A counter of the publisher's `/metrics` (asked from 127.0.0.1; panics if it does not answer).
fn metric(http: SocketAddr, name: &str) -> u64 {
    let (status, body) = http_get(&format!("http://{http}/metrics"));
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("swarmcast_{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .parse()
        .unwrap()
}

/// Waits (bounded by the hang guard) until the manifest's sequence number reaches `seq`, asking
/// `/manifest` and `/metrics` each time: both must answer.
fn until_seq(http: SocketAddr, seq: u64, during: &str) {
    let start = Instant::now();
    loop {
        // 503 until the first manifest is signed. The counter is read first: read after, it
        // could count a manifest signed between the two requests (a CI run saw it).
        let before = metric(http, "manifest_seq");
        let (status, _) = http_get(&format!("http://{http}/manifest"));
        assert!(
            status == 200 || (status == 503 && before == 0),
            "/manifest {during}: {status} (manifest_seq {before} before the request)"
        );
        if metric(http, "manifest_seq") >= seq {
            return;
        }
        assert!(
            start.elapsed() < HANG_GUARD,
            "hang guard: the manifest stopped at seq {} {during}",
            metric(http, "manifest_seq")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn interrupt(mut child: Child) {
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < HANG_GUARD,
            "hang guard: publish did not end"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(child.wait().unwrap().success());
}

/// 400 idle connections from ten addresses (40 each, under the per-address cap) against a
/// publisher at 256 open files: `/manifest` answers all along, segments keep being published
/// during the attack and after, and the connections never take the pipeline's files. Before,
/// `accept` failed for good and the segment writer with it.
#[test]
fn idle_connections_beyond_the_file_limit_neither_stop_the_stream_nor_keep_viewers_out() {
    let dir = tempfile::tempdir().unwrap();
    let (child, http) = publisher(dir.path(), &[]);
    let _guard = scopeguard(child.id());
    until_seq(http, 2, "before the attack");

    let attack = Attack::start(http, 400, 10);
    // The attack is on: the server has been closing idle connections to make room.
    let start = Instant::now();
    while attack.closed.load(Ordering::Relaxed) < 400 {
        assert!(start.elapsed() < HANG_GUARD, "hang guard: nothing closed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let seq = metric(http, "manifest_seq");
    until_seq(http, seq + 3, "during the attack");
    let (opened, closed) = attack.stop();
    assert!(opened > 400 && closed >= 400, "{opened} {closed}");

    let seq = metric(http, "manifest_seq");
    until_seq(http, seq + 2, "after the attack");
    assert!(metric(http, "http_evicted_total") >= 400);
    assert_eq!(metric(http, "http_accept_errors_total"), 0);
    assert_eq!(metric(http, "input_dropped_segments_total"), 0);
    assert_eq!(metric(http, "input_failing"), 0);
    interrupt(child);
}

/// A segment that cannot be published (as an I/O error would fail it, injected here with the
/// testing flag `--fail-segment`) is dropped and counted; the publisher goes on, the next
/// segment takes its number as a discontinuity, and the window stays contiguous.
#[test]
fn a_segment_that_cannot_be_published_is_dropped_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (child, http) = publisher(dir.path(), &["--fail-segment", "2"]);
    let _guard = scopeguard(child.id());
    until_seq(http, 6, "after the failure");
    assert_eq!(metric(http, "input_dropped_segments_total"), 1);
    interrupt(child);
    let events = json_lines(&dir.path().join("pub.jsonl"));
    let published: Vec<u64> = events
        .iter()
        .filter(|e| e["kind"] == "published")
        .filter_map(|e| e["seg"].as_u64())
        .collect();
    assert!(published.len() >= 5, "{published:?}");
    assert!(
        published.iter().enumerate().all(|(i, n)| *n == i as u64),
        "numbers not contiguous: {published:?}"
    );
    let cut = |n: u64| {
        events
            .iter()
            .rfind(|e| e["kind"] == "cut" && e["seg"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no cut record of {n}"))
    };
    // Segment 2 is the input's third: its media starts a second later than 2 s.
    assert_eq!(cut(1)["discontinuity"], false);
    assert_eq!(cut(2)["discontinuity"], true, "{}", cut(2));
    assert_eq!(cut(3)["discontinuity"], false);
    let start = |n: u64| cut(n)["media_start"].as_u64().unwrap();
    assert!(
        start(2) - start(1) > cut(1)["duration"].as_u64().unwrap(),
        "{} {}",
        cut(1),
        cut(2)
    );
}
