//! Players on a viewer's `--http-out` (docs/players.md): a real browser (Debian's Chromium
//! through playwright-core, `tests/browser/play.mjs`) plays `/watch` with hls.js; ffmpeg decodes
//! `/live.m3u8` and `/stream.ts`; the `m3u8` package parses the playlist; promtool and
//! `prometheus_client` read the publisher's and the viewer's `/metrics`. The feed is ffmpeg's
//! (libx264 `testsrc`, 25 fps, a keyframe every segment), paced in real time into `swarmcast
//! publish` on stdin.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::HANG_GUARD;
use crate::util::{http_get, swarmcast, tool};

mod ffmpeg;
mod hls;

/// The repository: the browser script and the viewer's hls.js (`node_modules`) are found here.
pub(super) const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Processes a test started, killed (SIGKILL) when it ends, however it ends: by id those
/// handed on (waited for where they went), and those it owns, then reaped.
#[derive(Default)]
pub(super) struct Procs {
    /// Processes and their start times: one already reaped is not killed (its id may name
    /// another process by then).
    pids: Vec<(u32, Option<u64>)>,
    /// Process groups: a process and everything it started (Node and its Chromium).
    groups: Vec<u32>,
    owned: Vec<Child>,
}

impl Procs {
    pub(super) fn guard(&mut self, child: &Child) {
        self.pids
            .push((child.id(), crate::util::start_time(child.id())));
    }

    /// A child started as the leader of its own process group (`process_group(0)`): the
    /// group is killed. (Node's Chromium leads a group of its own, as playwright-core starts it
    /// detached; it exits by itself when Node's end of its control pipe closes: checked by
    /// killing Node with SIGKILL.)
    pub(super) fn guard_group(&mut self, child: &Child) {
        self.groups.push(child.id());
    }

    pub(super) fn own(&mut self, child: Child) {
        self.owned.push(child);
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (pid, started) in &self.pids {
            crate::util::kill_if_same(*pid, *started);
        }
        for pgid in &self.groups {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .stderr(Stdio::null())
                .status();
        }
        for child in &mut self.owned {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A stream: ffmpeg's real-time feed of `secs` seconds piped into a publisher (`segment`
/// seconds per segment). Returns the link, the publisher's HTTP address and the publisher.
pub(super) fn publish(
    procs: &mut Procs,
    dir: &Path,
    secs: u32,
    segment: u32,
    extra: &[&str],
) -> (String, String, Child) {
    let gop = (25 * segment).to_string();
    let mut ffmpeg = Command::new(tool("ffmpeg"))
        .args(["-v", "error", "-re", "-f", "lavfi", "-i"])
        .arg("testsrc=size=320x240:rate=25")
        .args([
            "-t",
            &secs.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
        ])
        .args(["-pix_fmt", "yuv420p", "-g", &gop, "-force_key_frames"])
        .arg(format!("expr:gte(t,n_forced*{segment})"))
        .args(["-f", "mpegts", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let feed = ffmpeg.stdout.take().unwrap();
    procs.own(ffmpeg);
    let mut publisher = swarmcast()
        .args(["publish", "--segment-secs", &segment.to_string()])
        .args(["--linger", "30"])
        .args(if extra.is_empty() {
            &["--http", "127.0.0.1:0"][..]
        } else {
            extra
        })
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--key")
        .arg(dir.join("k"))
        .stdin(feed)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    procs.guard(&publisher);
    let mut line = String::new();
    BufReader::new(publisher.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let link = line.trim().to_owned();
    let parsed: swarmcast_core::StreamLink = link
        .parse()
        .unwrap_or_else(|e| panic!("not a link: {link:?}: {e}"));
    let source = &parsed.sources[0];
    let http = format!("{}:{}", source.host_str().unwrap(), source.port().unwrap());
    (link, http, publisher)
}

/// A viewer of `link` with `args`, started in the repository (where it finds hls.js); returns
/// it and the address its stderr announces after `marker` (`playing at http://` or
/// `metrics at http://`).
pub(super) fn viewer(
    procs: &mut Procs,
    link: &str,
    args: &[&str],
    marker: &str,
) -> (Child, String) {
    let mut child = swarmcast()
        .args(["watch", link, "--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(REPO)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    procs.guard(&child);
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(HANG_GUARD)
            .expect("hang guard: the viewer announced no address");
        if let Some(rest) = line.split(marker).nth(1) {
            break rest
                .split(['/', ' '])
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_owned();
        }
    };
    // Keep draining stderr, so the viewer never blocks on it.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    (child, addr)
}

/// A GET with an `Accept` header: status, content type and body (`Connection: close`).
pub(super) fn get_accept(addr: &str, path: &str, accept: &str) -> (u16, String, Vec<u8>) {
    let (status, head, body) =
        crate::util::http_request(addr, path, &[("Accept", accept)], HANG_GUARD);
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_owned();
    (status, content_type, body)
}

/// Polls `url` (bounded by the hang guard) until it answers 200 and `done` holds for the body.
pub(super) fn wait_for(url: &str, what: &str, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let start = Instant::now();
    loop {
        let (status, body) = http_get(url);
        if status == 200 && done(&body) {
            return body;
        }
        assert!(start.elapsed() < HANG_GUARD, "hang guard: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Samples of a metrics text without labels: name → value.
pub(super) fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Runs `child` to its end within `limit`; its output.
pub(super) fn finish(child: Child, what: &str, limit: Duration) -> std::process::Output {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("hang guard: {what} did not finish"))
        .unwrap()
}

/// Chromium plays the viewer's page with hls.js: 8 s of media across 3 segment joins, 180
/// frames decoded, no hls.js or media error (tests/browser/play.mjs). The overlay's figures
/// agree with `/metrics` scraped just before and just after they were read: the counters that
/// only grow lie between the two scrapes (stalls equal when both scrapes agree), and so does the
/// share of bytes from peers. A second viewer shares the swarm. With
/// `SWARMCAST_UPDATE_SCREENSHOT=1` the screenshot becomes docs/players.png.
#[test]
fn a_browser_plays_the_viewers_page_with_hls_js() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut procs = Procs::default();
    let (link, _, publisher) = publish(&mut procs, dir.path(), 60, 2, &[]);
    procs.own(publisher);
    let (other, _) = viewer(
        &mut procs,
        &link,
        &["-o", "/dev/null", "--metrics-addr", "127.0.0.1:0"],
        "metrics at http://",
    );
    procs.own(other);
    let (viewer, addr) = viewer(
        &mut procs,
        &link,
        &["--http-out", "127.0.0.1:0"],
        "playing at http://",
    );
    procs.own(viewer);
    let shot = dir.path().join("players.png");
    let node = Command::new(tool("node"))
        .arg(Path::new(REPO).join("tests/browser/play.mjs"))
        .arg(format!("http://{addr}"))
        .arg(&shot)
        .current_dir(REPO)
        // Its own process group: the guard kills Chromium with it. Chromium's profile goes in
        // the test's directory, removed even if the script is killed.
        .process_group(0)
        .env("TMPDIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    procs.guard_group(&node);
    let out = finish(node, "the browser script", HANG_GUARD + HANG_GUARD / 2);
    let after = samples(&String::from_utf8_lossy(
        &http_get(&format!("http://{addr}/metrics")).1,
    ));
    assert!(
        out.status.success(),
        "play.mjs: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!(
        "browser: {} s played, {} joins, {} frames ({} dropped), segments {}, overlay {}",
        report["advanced_s"],
        report["joins"],
        report["frames"],
        report["dropped"],
        report["segments"],
        report["overlay"]["text"]
    );
    assert_eq!(report["playback"], "hls.js");
    assert!(report["advanced_s"].as_f64().unwrap() >= 8.0);
    assert!(report["joins"].as_u64().unwrap() >= 3);
    assert!(report["frames"].as_u64().unwrap() >= 180);
    assert!(report["segments"].as_array().unwrap().len() >= 4);

    check_overlay(&report, &after);

    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    if std::env::var_os("SWARMCAST_UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        std::fs::write(Path::new(REPO).join("docs/players.png"), &png).unwrap();
    }
    println!("run time {:.1} s", started.elapsed().as_secs_f64());
}

/// The overlay's figures lie between the scrape of `/metrics` the script made before reading
/// them (`report.metrics_before`) and `after`: stalls (equal when both scrapes agree), the
/// share from peers (between the lowest and the highest the byte counters allow), the setup
/// time (equal when both agree); the buffer ahead is in range, peers shown.
fn check_overlay(report: &serde_json::Value, after: &HashMap<String, f64>) {
    // The overlay between the two scrapes.
    let before = samples(report["metrics_before"].as_str().unwrap());
    let overlay = &report["overlay"];
    let m = |s: &HashMap<String, f64>, name: &str| {
        *s.get(&format!("swarmcast_viewer_{name}"))
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    let stalls = overlay["stalls"].as_f64().expect("stalls shown");
    let (s0, s1) = (m(&before, "stalls_total"), m(after, "stalls_total"));
    assert!(
        s0 <= stalls && stalls <= s1,
        "stalls {s0} <= {stalls} <= {s1}"
    );
    if s0 == s1 {
        assert_eq!(stalls, s0);
    }
    let (p0, p1) = (
        m(&before, "from_peers_bytes_total"),
        m(after, "from_peers_bytes_total"),
    );
    let (q0, q1) = (
        m(&before, "from_publisher_bytes_total"),
        m(after, "from_publisher_bytes_total"),
    );
    let share = overlay["share_pct"].as_f64().expect("share shown");
    let (low, high) = (100.0 * p0 / (p0 + q1), 100.0 * p1 / (p1 + q0));
    assert!(
        low.floor() <= share && share <= high.ceil(),
        "share from peers {share}% outside {low:.1}..{high:.1}%"
    );
    let setup = m(&before, "last_setup_seconds");
    if setup == m(after, "last_setup_seconds") {
        assert_eq!(overlay["setup_ms"].as_f64(), Some((setup * 1000.0).round()));
    }
    let buffer = overlay["buffer_s"].as_f64().expect("buffer shown");
    assert!((0.0..=12.0).contains(&buffer), "buffer ahead {buffer} s");
    assert!(overlay["peers"].as_f64().is_some());
}

/// Without hls.js (a viewer started away from any `node_modules`), the page says how to install
/// it (`npm ci`, `bash scripts/install-deps.sh`, `--hls-js`) and `/hls.min.js` answers 404 with
/// the same text; the viewer plays on (its source here never answers).
#[test]
fn the_page_says_how_to_install_hls_js_when_it_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mut procs = Procs::default();
    let out = crate::util::run(
        swarmcast()
            .args(["keygen", "--out"])
            .arg(dir.path().join("k")),
        true,
    );
    let key = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .unwrap()
        .to_owned();
    let closed = super::free_port();
    let link = format!("swarmcast:?pk={key}&xs=http%3A%2F%2F127.0.0.1%3A{closed}%2Fmanifest");
    // The binary is run from a copy (a hard link) outside the checkout: from `target/debug` it
    // would find the checkout's node_modules among its directory's ancestors.
    let exe = dir.path().join("swarmcast");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_swarmcast"), &exe).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_swarmcast"), &exe).unwrap();
    }
    let mut viewer = Command::new(&exe);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SWARMCAST_") {
            viewer.env_remove(key);
        }
    }
    let mut child = viewer
        .env("SWARMCAST_LOG", "warn")
        .args([
            "watch",
            &link,
            "--listen",
            "127.0.0.1:0",
            "--http-out",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    procs.guard(&child);
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    procs.own(child);
    // Read to its end (the viewer never blocks on it), the address sent on.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("playing at http://").nth(1) {
                let _ = tx.send(rest.split('/').next().unwrap_or_default().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(HANG_GUARD)
        .expect("hang guard: the viewer announced no address");
    let node = Command::new(tool("node"))
        .arg(Path::new(REPO).join("tests/browser/play.mjs"))
        .args(["--missing-hls-js", &format!("http://{addr}")])
        .current_dir(REPO)
        .process_group(0)
        .env("TMPDIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    procs.guard_group(&node);
    let out = finish(node, "the browser script", HANG_GUARD);
    assert!(
        out.status.success(),
        "play.mjs --missing-hls-js: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["hls_js_status"], 404);
}
