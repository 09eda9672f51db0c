//! ffmpeg on `/live.m3u8` and `/stream.ts`, the live playlist's tags, and both `/metrics` read
//! by promtool and `prometheus_client`.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::hls::parse_m3u8;
use super::{finish, get_accept, publish, viewer, wait_for, Procs};
use crate::e2e::HANG_GUARD;
use crate::util::{http_get, tool};

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
    check_live_playlist(dir.path(), &live);
    check_metrics(&publisher_http, &addr, &metrics_addr);

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

/// A live playlist as `m3u8` reads it: the target duration (`ceil(2 x 1 s)`), no end, the media
/// sequence of the first URI, consecutive URIs, each `EXTINF` rounding to at most the target,
/// and a program date time in UTC on each.
fn check_live_playlist(dir: &Path, live: &[u8]) {
    let parsed = parse_m3u8(dir, live);
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
}

/// The publisher's and each viewer's `/metrics` in both formats (chosen by `Accept`): the
/// Prometheus text format read by promtool and `prometheus_client`'s parser, OpenMetrics by
/// `prometheus_client`'s OpenMetrics parser.
fn check_metrics(publisher_http: &str, addr: &str, metrics_addr: &str) {
    for (what, at, family) in [
        (
            "the publisher",
            publisher_http,
            "swarmcast_manifest_responses_total",
        ),
        (
            "--http-out",
            addr,
            "swarmcast_viewer_manifests_fetched_total",
        ),
        (
            "--metrics-addr",
            metrics_addr,
            "swarmcast_viewer_manifests_fetched_total",
        ),
    ] {
        let (status, content_type, text) = get_accept(at, "/metrics", "*/*");
        assert_eq!(status, 200);
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{what}: {content_type}"
        );
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
            assert!(parsed[family] >= 1.0, "{what}: {parsed:?}");
            if what != "the publisher" {
                assert!(parsed.contains_key("swarmcast_viewer_buffer_ahead_seconds"));
                assert!(parsed.contains_key("swarmcast_viewer_peers"));
            }
        }
    }
    // The metrics-only server serves nothing else.
    assert_eq!(get_accept(metrics_addr, "/live.m3u8", "*/*").0, 404);
}
