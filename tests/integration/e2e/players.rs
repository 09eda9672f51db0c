//! Players on a viewer's `--http-out` (docs/players.md): a real browser (Debian's Chromium
//! through playwright-core, `tests/browser/play.mjs`) plays `/watch` with hls.js; ffmpeg decodes
//! `/live.m3u8` and `/stream.ts`; the `m3u8` package parses the playlist; promtool and
//! `prometheus_client` read the publisher's and the viewer's `/metrics`. The feed is ffmpeg's
//! (libx264 `testsrc`, 25 fps, a keyframe every segment), paced in real time into `swarmcast
//! publish` on stdin.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::HANG_GUARD;
use crate::util::{http_get, swarmcast, tool};

/// The repository: the browser script and the viewer's hls.js (`node_modules`) are found here.
const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Processes a test started, killed (SIGKILL) when it ends, however it ends: by id those
/// handed on (waited for where they went), and those it owns, then reaped.
#[derive(Default)]
struct Procs {
    pids: Vec<u32>,
    owned: Vec<Child>,
}

impl Procs {
    fn guard(&mut self, child: &Child) {
        self.pids.push(child.id());
    }

    fn own(&mut self, child: Child) {
        self.owned.push(child);
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for pid in &self.pids {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
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
fn publish(
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
fn viewer(procs: &mut Procs, link: &str, args: &[&str], marker: &str) -> (Child, String) {
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
fn get_accept(addr: &str, path: &str, accept: &str) -> (u16, String, Vec<u8>) {
    use std::io::Read;
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(HANG_GUARD)).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response[split..].to_vec())
}

/// Polls `url` (bounded by the hang guard) until it answers 200 and `done` holds for the body.
fn wait_for(url: &str, what: &str, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
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
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Runs `child` to its end within `limit`; its output.
fn finish(child: Child, what: &str, limit: Duration) -> std::process::Output {
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
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    procs.guard(&node);
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

    // The overlay between the two scrapes.
    let before = samples(report["metrics_before"].as_str().unwrap());
    let overlay = &report["overlay"];
    let m = |s: &HashMap<String, f64>, name: &str| {
        *s.get(&format!("swarmcast_viewer_{name}"))
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    let stalls = overlay["stalls"].as_f64().expect("stalls shown");
    let (s0, s1) = (m(&before, "stalls_total"), m(&after, "stalls_total"));
    assert!(
        s0 <= stalls && stalls <= s1,
        "stalls {s0} <= {stalls} <= {s1}"
    );
    if s0 == s1 {
        assert_eq!(stalls, s0);
    }
    let (p0, p1) = (
        m(&before, "from_peers_bytes_total"),
        m(&after, "from_peers_bytes_total"),
    );
    let (q0, q1) = (
        m(&before, "from_publisher_bytes_total"),
        m(&after, "from_publisher_bytes_total"),
    );
    let share = overlay["share_pct"].as_f64().expect("share shown");
    let (low, high) = (100.0 * p0 / (p0 + q1), 100.0 * p1 / (p1 + q0));
    assert!(
        low.floor() <= share && share <= high.ceil(),
        "share from peers {share}% outside {low:.1}..{high:.1}%"
    );
    let setup = m(&before, "last_setup_seconds");
    if setup == m(&after, "last_setup_seconds") {
        assert_eq!(overlay["setup_ms"].as_f64(), Some((setup * 1000.0).round()));
    }
    let buffer = overlay["buffer_s"].as_f64().expect("buffer shown");
    assert!((0.0..=12.0).contains(&buffer), "buffer ahead {buffer} s");
    assert!(overlay["peers"].as_f64().is_some());

    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    if std::env::var_os("SWARMCAST_UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        std::fs::write(Path::new(REPO).join("docs/players.png"), &png).unwrap();
    }
    println!("run time {:.1} s", started.elapsed().as_secs_f64());
}

/// The playlist as the `m3u8` package reads it (tests/hls/playlist.py).
fn parse_m3u8(dir: &Path, text: &[u8]) -> serde_json::Value {
    let file = dir.join(format!("{}.m3u8", rand_suffix()));
    std::fs::write(&file, text).unwrap();
    let out = Command::new("python3")
        .arg(Path::new(REPO).join("tests/hls/playlist.py"))
        .arg(&file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "m3u8: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(text)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

/// The builder's playlist with discontinuities (the e2e stream has none) as the `m3u8` package
/// reads it: the tags the unit tests check, seen by an independent parser.
#[test]
fn the_m3u8_package_reads_the_builders_discontinuities() {
    use swarmcast_viewer::http::playlist::{render, HlsTimeline, PlaylistSegment};
    let dir = tempfile::tempdir().unwrap();
    let seg = |number: u64, discontinuity: bool| PlaylistSegment {
        number,
        duration: 2 * 90_000 + 3_600,
        discontinuity,
        published_ms: 1_796_201_030_561 + number * 2_040,
    };
    let mut timeline = HlsTimeline::new();
    timeline.update(5, &[seg(3, false), seg(4, true), seg(5, false)], false);
    let p = timeline.update(5, &[seg(5, false), seg(6, true), seg(7, false)], true);
    let text = render(&p, |n| format!("/segments/{n:08}.ts"));
    let parsed = parse_m3u8(dir.path(), text.as_bytes());
    assert_eq!(parsed["version"], 3);
    assert_eq!(parsed["target_duration"], 5);
    assert_eq!(parsed["media_sequence"], 5);
    assert_eq!(parsed["discontinuity_sequence"], 1, "{text}");
    assert_eq!(parsed["is_endlist"], true);
    let segs = parsed["segments"].as_array().unwrap();
    let flags: Vec<bool> = segs
        .iter()
        .map(|s| s["discontinuity"].as_bool().unwrap())
        .collect();
    assert_eq!(flags, [false, true, false]);
    assert_eq!(segs[0]["uri"], "/segments/00000005.ts");
    assert_eq!(segs[0]["duration"], 2.04);
    assert_eq!(
        segs[0]["program_date_time"],
        "2026-12-02T08:44:00.761+00:00"
    );
}

/// Prometheus text through `promtool check metrics` (exit 0, nothing said).
fn promtool(what: &str, text: &str) {
    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = finish(child, "promtool", HANG_GUARD);
    assert!(
        out.status.success(),
        "promtool on {what}: {:?}\n{}{}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Families and samples as `prometheus_client`'s parser reads them (`openmetrics`: its
/// OpenMetrics parser, else its Prometheus text parser): sample name → value.
fn python_parse(what: &str, text: &str, openmetrics: bool) -> HashMap<String, f64> {
    let module = if openmetrics {
        "prometheus_client.openmetrics.parser"
    } else {
        "prometheus_client.parser"
    };
    let script = format!(
        "import sys, json\nfrom {module} import text_string_to_metric_families as parse\n\
         print(json.dumps({{s.name: s.value for f in parse(sys.stdin.read()) for s in f.samples}}))"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = finish(child, "python3", HANG_GUARD);
    assert!(
        out.status.success(),
        "prometheus_client on {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<HashMap<String, Option<f64>>>(&out.stdout)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
        .collect()
}

/// Video packets' decoding timestamps (90 kHz) of a recording.
fn dts(file: &Path) -> Vec<i64> {
    let out = Command::new(tool("ffprobe"))
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=dts", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim_end_matches(',').parse().ok())
        .collect()
}

/// ffmpeg decodes `/live.m3u8` (joined live, to its `EXT-X-ENDLIST`) and `/stream.ts` without
/// a word at `-v error`; a recording of `/stream.ts` has no video timestamp gap at the segment
/// joins (every decoding timestamp one frame after the last); the `m3u8` package reads the live
/// playlist's tags (target duration, media sequence, program date time, and `EXT-X-ENDLIST` at
/// the end of the stream); promtool and `prometheus_client` read the publisher's and both
/// viewers' `/metrics` (one on `--http-out`, one on `--metrics-addr`).
#[test]
fn ffmpeg_decodes_the_playlist_and_the_stream_and_metrics_parse() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut procs = Procs::default();
    let (link, publisher_http, publisher) = publish(&mut procs, dir.path(), 12, 1, &[]);
    procs.own(publisher);
    let (metrics_viewer, metrics_addr) = viewer(
        &mut procs,
        &link,
        &["-o", "/dev/null", "--metrics-addr", "127.0.0.1:0"],
        "metrics at http://",
    );
    let (http_viewer, addr) = viewer(
        &mut procs,
        &link,
        &["--from-start", "--http-out", "127.0.0.1:0"],
        "playing at http://",
    );
    // /stream.ts recorded from the next segment on, and decoded by ffmpeg, to the end.
    let recording = dir.path().join("stream.ts");
    let recorder = {
        let (url, file) = (format!("http://{addr}/stream.ts"), recording.clone());
        std::thread::spawn(move || {
            let (status, body) = http_get(&url);
            assert_eq!(status, 200);
            std::fs::write(file, body).unwrap();
        })
    };
    let decode = |url: String| {
        let child = Command::new(tool("ffmpeg"))
            .args(["-v", "error", "-i", &url, "-f", "null", "-"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
    };
    let stream_ffmpeg = decode(format!("http://{addr}/stream.ts"));
    procs.guard(&stream_ffmpeg);
    // The playlist, live: once it lists two segments, ffmpeg joins it.
    let live = wait_for(&format!("http://{addr}/live.m3u8"), "no playlist", |b| {
        String::from_utf8_lossy(b).matches("#EXTINF").count() >= 2
    });
    let hls_ffmpeg = decode(format!("http://{addr}/live.m3u8"));
    procs.guard(&hls_ffmpeg);
    let parsed = parse_m3u8(dir.path(), &live);
    assert_eq!(parsed["target_duration"], 2, "ceil(2 x 1 s)");
    assert_eq!(parsed["is_endlist"], false);
    let segs = parsed["segments"].as_array().unwrap();
    let first: u64 = segs[0]["uri"].as_str().unwrap()[10..18].parse().unwrap();
    assert_eq!(parsed["media_sequence"], first);
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(
            s["uri"].as_str().unwrap(),
            format!("/segments/{:08}.ts", first + i as u64)
        );
        let d = s["duration"].as_f64().unwrap();
        assert!(d > 0.5 && d.round() <= 2.0, "EXTINF {d}");
        assert!(s["program_date_time"].as_str().unwrap().ends_with("+00:00"));
    }

    // Metrics, mid-stream: the publisher's (OpenMetrics), the viewers' in both formats.
    let (status, publisher_text) = http_get(&format!("http://{publisher_http}/metrics"));
    assert_eq!(status, 200);
    let publisher_text = String::from_utf8(publisher_text).unwrap();
    let family = python_parse("the publisher", &publisher_text, true);
    assert!(family.contains_key("swarmcast_manifest_responses_total"));
    // promtool reads the Prometheus text format only: the publisher's OpenMetrics in it.
    promtool(
        "the publisher",
        &swarmcast_viewer::http::metrics::prometheus_text(&publisher_text),
    );
    for (what, at) in [("--http-out", &addr), ("--metrics-addr", &metrics_addr)] {
        let (status, content_type, text) = get_accept(at, "/metrics", "*/*");
        assert_eq!(status, 200);
        assert!(content_type.starts_with("text/plain; version=0.0.4"));
        let text = String::from_utf8(text).unwrap();
        promtool(what, &text);
        let old = python_parse(what, &text, false);
        let (status, content_type, om) = get_accept(
            at,
            "/metrics",
            "application/openmetrics-text; version=1.0.0",
        );
        assert_eq!(status, 200);
        assert!(content_type.starts_with("application/openmetrics-text"));
        let om = python_parse(what, &String::from_utf8(om).unwrap(), true);
        for parsed in [&old, &om] {
            assert!(
                parsed["swarmcast_viewer_manifests_fetched_total"] >= 1.0,
                "{what}: {parsed:?}"
            );
            assert!(parsed.contains_key("swarmcast_viewer_buffer_ahead_seconds"));
            assert!(parsed.contains_key("swarmcast_viewer_peers"));
        }
    }
    // The metrics-only server serves nothing else.
    assert_eq!(get_accept(&metrics_addr, "/live.m3u8", "*/*").0, 404);

    // To the end: the playlist ends, ffmpeg finishes both, the viewers exit.
    for (what, child) in [("live.m3u8", hls_ffmpeg), ("stream.ts", stream_ffmpeg)] {
        let out = finish(child, &format!("ffmpeg on {what}"), HANG_GUARD);
        assert!(out.status.success(), "ffmpeg on {what}: {:?}", out.status);
        assert!(
            out.stderr.is_empty(),
            "ffmpeg on {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ended = wait_for(&format!("http://{addr}/live.m3u8"), "no ENDLIST", |b| {
        String::from_utf8_lossy(b).contains("#EXT-X-ENDLIST")
    });
    let parsed = parse_m3u8(dir.path(), &ended);
    assert_eq!(parsed["is_endlist"], true);
    assert_eq!(
        get_accept(&addr, "/segments/99999999.ts", "*/*").0,
        404,
        "unknown segment"
    );
    recorder.join().unwrap();
    for (what, child) in [("--http-out", http_viewer), ("-o", metrics_viewer)] {
        let out = finish(child, &format!("the {what} viewer"), HANG_GUARD);
        assert!(out.status.success(), "the {what} viewer: {:?}", out.status);
    }

    // No timestamp gap: every decoding timestamp one frame (3600 ticks at 25 fps) after the
    // last, over at least 4 segments (3 joins).
    let dts = dts(&recording);
    assert!(dts.len() >= 4 * 25, "{} video packets", dts.len());
    let gaps: Vec<(usize, i64)> = dts
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[1] - w[0] != 3_600)
        .map(|(i, w)| (i, w[1] - w[0]))
        .collect();
    assert!(gaps.is_empty(), "DTS steps other than one frame: {gaps:?}");
    println!("run time {:.1} s", started.elapsed().as_secs_f64());
}

/// Each segment's discontinuity sequence number in a playlist's text: (number, DSN), where the
/// DSN is `EXT-X-DISCONTINUITY-SEQUENCE` plus the `EXT-X-DISCONTINUITY` tags up to it.
fn discontinuity_numbers(text: &str) -> Vec<(u64, u64)> {
    let mut dsn: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:"))
        .expect("a discontinuity sequence")
        .parse()
        .unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        if line == "#EXT-X-DISCONTINUITY" {
            dsn += 1;
        } else if let Some(n) = line
            .strip_prefix("/segments/")
            .and_then(|r| r.strip_suffix(".ts"))
        {
            out.push((n.parse().unwrap(), dsn));
        }
    }
    out
}

/// A publisher killed and restarted (same key, data directory and ports) starts a discontinuity:
/// the playlist tags the first segment after the restart `EXT-X-DISCONTINUITY`, and once it
/// has left, `EXT-X-DISCONTINUITY-SEQUENCE` is 1; across every playlist served, each segment
/// keeps its media sequence number (its position from `EXT-X-MEDIA-SEQUENCE`) and its
/// discontinuity sequence number (RFC 8216 §6.2.2). The `m3u8` package reads the last one.
#[test]
fn a_publishers_restart_is_a_discontinuity_in_the_playlist() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut procs = Procs::default();
    let (http, peer) = (super::free_port(), super::free_port());
    let ports = [
        "--http".to_owned(),
        format!("127.0.0.1:{http}"),
        "--listen".to_owned(),
        format!("127.0.0.1:{peer}"),
    ];
    let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
    let (link, _, mut first) = publish(&mut procs, dir.path(), 60, 1, &ports);
    let (viewer, addr) = viewer(
        &mut procs,
        &link,
        &["--http-out", "127.0.0.1:0"],
        "playing at http://",
    );
    procs.own(viewer);
    let url = format!("http://{addr}/live.m3u8");
    wait_for(&url, "no playlist", |b| {
        String::from_utf8_lossy(b).matches("#EXTINF").count() >= 3
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let (_, _, second) = publish(&mut procs, dir.path(), 60, 1, &ports);
    procs.own(second);
    // Every playlist until the discontinuity has left the playlist.
    let mut seen: Vec<String> = Vec::new();
    let start = Instant::now();
    loop {
        let (status, body) = http_get(&url);
        assert_eq!(status, 200);
        let text = String::from_utf8(body).unwrap();
        let done = text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n");
        if seen.last() != Some(&text) {
            seen.push(text);
        }
        if done {
            break;
        }
        assert!(
            start.elapsed() < HANG_GUARD,
            "hang guard: the discontinuity never left: {seen:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let tagged: Vec<u64> = seen
        .iter()
        .flat_map(|t| {
            let lines: Vec<&str> = t.lines().collect();
            lines
                .windows(4)
                .filter(|w| w[0] == "#EXT-X-DISCONTINUITY")
                .filter_map(|w| w[3].strip_prefix("/segments/")?.strip_suffix(".ts"))
                .map(|n| n.parse::<u64>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!tagged.is_empty(), "no EXT-X-DISCONTINUITY: {seen:#?}");
    assert!(tagged.iter().all(|n| *n == tagged[0]), "{tagged:?}");
    // Each segment's sequence numbers never change from one playlist to the next.
    let mut dsn: HashMap<u64, u64> = HashMap::new();
    for text in &seen {
        let media: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
            .unwrap()
            .parse()
            .unwrap();
        for (i, (n, d)) in discontinuity_numbers(text).into_iter().enumerate() {
            assert_eq!(media + i as u64, n, "media sequence in {text}");
            assert_eq!(*dsn.entry(n).or_insert(d), d, "segment {n}'s DSN in {text}");
            assert_eq!(d, u64::from(n >= tagged[0]), "segment {n} in {text}");
        }
    }
    let parsed = parse_m3u8(dir.path(), seen.last().unwrap().as_bytes());
    assert_eq!(parsed["discontinuity_sequence"], 1);
    assert!(parsed["media_sequence"].as_u64().unwrap() > tagged[0]);
    println!(
        "restart: segment {} tagged, {} playlists, run time {:.1} s",
        tagged[0],
        seen.len(),
        started.elapsed().as_secs_f64()
    );
}
