//! The playlist's tags as the `m3u8` package reads them: the builder's discontinuities, and a
//! publisher's restart end to end.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{publish, viewer, wait_for, Procs, REPO};
use crate::e2e::HANG_GUARD;
use crate::util::http_get;

/// The playlist as the `m3u8` package reads it (tests/hls/playlist.py).
pub(super) fn parse_m3u8(dir: &Path, text: &[u8]) -> serde_json::Value {
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
        date_ms: 1_796_201_030_561 + number * 2_040,
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
    let (http, peer) = (crate::e2e::free_port(), crate::e2e::free_port());
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
