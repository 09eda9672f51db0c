//! End-to-end tests with long-lived processes; nextest runs them one at a time.

mod churn;
mod dht;
mod faults;
mod files;
mod icecast;
mod lab;
mod mirrors;
mod netlab;
mod players;
mod procs;
mod relay;
mod stripe;
mod terminal;
mod trackers;
mod transmission;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::segment::{assert_decodes, segment_lines};
use crate::util::{run, swarmcast, tool};
use procs::free_port;

const HANG_GUARD: Duration = Duration::from_secs(60);

/// `swarmcast segment --watch-dir` fed by ffmpeg's segment muxer: every file ffmpeg finishes
/// becomes a segment, in order, byte for byte.
#[test]
fn watch_dir_takes_the_files_of_ffmpegs_segment_muxer() {
    let dir = tempfile::tempdir().unwrap();
    let (enc, out) = (dir.path().join("enc"), dir.path().join("out"));
    std::fs::create_dir(&enc).unwrap();
    let mut child = swarmcast()
        .env("SWARMCAST_LOG", "info")
        .args(["segment", "--watch-dir"])
        .arg(&enc)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = scopeguard(child.id());

    // Wait (by event) until the watch is in place.
    let (err_tx, err_rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
    loop {
        let line = err_rx
            .recv_timeout(HANG_GUARD)
            .expect("hang guard: the watcher never started");
        if line.contains("watching for finished segment files") {
            break;
        }
    }

    run(
        Command::new(tool("ffmpeg"))
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240:rate=25",
                "-t",
                "6",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-g",
                "50",
                "-force_key_frames",
                "expr:gte(t,n_forced*2)",
                "-f",
                "segment",
                "-segment_time",
                "2",
                "-segment_format",
                "mpegts",
            ])
            .arg(enc.join("seg%03d.ts")),
        true,
    );

    // Three segments must come out; read stdout until they have.
    let stdout = child.stdout.take().unwrap();
    let (out_tx, out_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while lines.len() < 3 {
        lines.push(
            out_rx
                .recv_timeout(HANG_GUARD)
                .expect("hang guard: segments did not come"),
        );
    }
    // Ctrl-C: the watcher stops and exits cleanly.
    run(
        Command::new("kill").args(["-INT", &child.id().to_string()]),
        true,
    );
    let status = child.wait().unwrap();
    drop(guard);
    assert!(status.success(), "{status:?}");

    let segments = segment_lines(lines.join("\n").as_bytes());
    for (i, (number, start, duration, _, path)) in segments.iter().enumerate() {
        assert_eq!(*number, i as u64);
        assert_eq!(
            std::fs::read(path).unwrap(),
            std::fs::read(enc.join(format!("seg{i:03}.ts"))).unwrap()
        );
        assert_decodes(path);
        assert!((duration - 2.0).abs() < 0.05, "segment {i}: {duration} s");
        if i > 0 {
            assert!(start > &segments[i - 1].1);
        }
    }
}

/// Kills the process when dropped (a failed assertion must not leave it running).
fn scopeguard(pid: u32) -> impl Drop {
    struct Kill(u32, Option<u64>);
    impl Drop for Kill {
        fn drop(&mut self) {
            crate::util::kill_if_same(self.0, self.1);
        }
    }
    Kill(pid, crate::util::start_time(pid))
}

/// `swarmcast publish`: the link on a line of its own; the first Ctrl-C ends the stream (an
/// end-of-stream manifest is served while it lingers); the second exits at once.
#[test]
fn publish_prints_the_link_ends_on_ctrl_c_and_exits_on_the_second() {
    use crate::util::http_get;
    use swarmcast_core::{StreamLink, Verdict, Verifier};

    let dir = tempfile::tempdir().unwrap();
    let mut child = swarmcast()
        .args([
            "publish",
            "--synth",
            "--segment-secs",
            "1",
            "--http",
            "127.0.0.1:0",
            "--linger",
            "600",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--key")
        .arg(dir.path().join("k"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = scopeguard(child.id());
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let link: StreamLink = line
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("not a link: {line:?}: {e}"));
    let manifest_url = link.sources[0].to_string();
    let mut verifier = Verifier::new(link.key);

    // The first manifest, by blocking reload.
    let (status, body) = http_get(&format!("{manifest_url}?after=0"));
    assert_eq!(status, 200);
    let Verdict::New(first) = verifier.accept(&body).unwrap() else {
        panic!("not new")
    };
    assert!(!first.manifest.end_of_stream);

    run(
        Command::new("kill").args(["-INT", &child.id().to_string()]),
        true,
    );
    let mut seq = first.manifest.seq;
    let mut ended = false;
    for _ in 0..100 {
        let (status, body) = http_get(&format!("{manifest_url}?after={seq}"));
        assert_eq!(status, 200);
        if let Verdict::New(m) = verifier.accept(&body).unwrap() {
            seq = m.manifest.seq;
            if m.manifest.end_of_stream {
                ended = true;
                break;
            }
        }
    }
    assert!(ended, "no end-of-stream manifest after the first Ctrl-C");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the publisher must linger after the end of stream"
    );

    run(
        Command::new("kill").args(["-INT", &child.id().to_string()]),
        true,
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(HANG_GUARD)
        .expect("hang guard: no exit after the second Ctrl-C")
        .unwrap();
    drop(guard);
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("published "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Start-up refusals name the problem and leave nothing running.
#[test]
fn publish_refuses_bad_start_up_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = run(
        swarmcast()
            .args([
                "publish",
                "--synth",
                "--http",
                &busy.local_addr().unwrap().to_string(),
            ])
            .arg("--data-dir")
            .arg(dir.path().join("d"))
            .arg("--key")
            .arg(dir.path().join("k")),
        false,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen for HTTP") && err.contains("in use"),
        "{err}"
    );

    let out = run(
        swarmcast()
            .args([
                "publish",
                "--synth",
                "--listen",
                "0.0.0.0:0",
                "--http",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("d"))
            .arg("--key")
            .arg(dir.path().join("k")),
        false,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--public-addr"));

    let out = run(
        swarmcast().args(["publish", "--synth", "--upload-limit", "1000"]),
        false,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("below 32768"));
}

/// `watch --peer-limit` under 2 is refused with the reason: a swarm of one peer (the publisher
/// alone) is no swarm.
#[test]
fn watch_refuses_a_peer_limit_under_two() {
    let out = run(
        swarmcast().args(["watch", "swarmcast:?pk=x", "--peer-limit", "1"]),
        false,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--peer-limit") && err.contains("2.."), "{err}");
}

#[test]
fn watch_refuses_urgent_first_without_an_upload_limit() {
    let out = run(
        swarmcast().args(["watch", "swarmcast:?pk=x", "--urgent-first"]),
        false,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--urgent-first") && err.contains("no upload limit"),
        "{err}"
    );
}

#[test]
fn punch_ports_must_be_a_range_or_off() {
    for (cmd, bad) in [
        ("watch", "52000"),
        ("watch", "52010-52000"),
        ("publish", "0-63"),
        ("publish", "52000-70000"),
    ] {
        let out = run(
            swarmcast().args([cmd, "swarmcast:?pk=x", "--punch-ports", bad]),
            false,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--punch-ports")
                && err.contains("expected FIRST-LAST")
                && err.contains(bad),
            "{cmd} --punch-ports {bad}: {err}"
        );
    }
}

#[test]
fn late_piece_must_be_seconds_or_off() {
    for bad in ["0", "-1", "soon", "inf", "61"] {
        let flag = format!("--late-piece={bad}");
        let out = run(swarmcast().args(["publish", flag.as_str()]), false);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--late-piece")
                && err.contains("seconds from 0.1 to 60, or off")
                && err.contains(bad),
            "publish --late-piece {bad}: {err}"
        );
    }
}

/// Every duration and rate flag has a range: a value outside it (infinite, huge, negative) is
/// refused before anything starts, with the flag, the range and the value, never a panic or an
/// unreadable manifest (`--segment-secs 1e30` once made one) or a runaway feed
/// (`--bitrate 1000000M` once grew a publisher by gigabytes).
#[test]
fn duration_and_rate_flags_outside_their_range_are_refused() {
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["publish", "--linger", "inf"],
            "--linger",
            "seconds from 0 to 86400",
        ),
        (
            &["publish", "--linger", "1e30"],
            "--linger",
            "seconds from 0 to 86400",
        ),
        (
            &["publish", "--grace", "1e30"],
            "--grace",
            "seconds from 0.1 to 86400",
        ),
        (
            &["publish", "--segment-secs", "1e30"],
            "--segment-secs",
            "seconds from 0.1 to 3600",
        ),
        (
            &["segment", "-o", "x", "--segment-secs=-1"],
            "--segment-secs",
            "seconds from 0.1 to 3600",
        ),
        (
            &["publish", "--synth", "--bitrate", "1000000M"],
            "--bitrate",
            "from 8k to 1000M",
        ),
        (
            &["synth", "--bitrate", "1001M"],
            "--bitrate",
            "from 8k to 1000M",
        ),
        (
            &["publish", "--synth", "--synth-secs", "inf"],
            "--synth-secs",
            "seconds from 0.1 to",
        ),
        (
            &["publish", "--nat-check-timeout", "1e9"],
            "--nat-check-timeout",
            "seconds from 0.1 to 60",
        ),
        (
            &["publish", "--tracker-interval", "0"],
            "--tracker-interval",
            "1..=3600",
        ),
        (
            &["publish", "--super-seed-reveal", "1e30"],
            "--super-seed-reveal",
            "from 0.1 to 3600, or never",
        ),
        (
            &["watch", "swarmcast:?pk=x", "--delay", "1e30"],
            "--delay",
            "seconds from 0 to 600",
        ),
        (
            &["watch", "swarmcast:?pk=x", "--fallback-margin", "NaN"],
            "--fallback-margin",
            "seconds from 0 to 600",
        ),
        (
            &["demo", "--stagger=-2"],
            "--stagger",
            "seconds from 0 to 3600",
        ),
        (&["demo", "--seconds", "0"], "--seconds", "1..=86400"),
    ];
    for (args, flag, range) in cases {
        let out = run(swarmcast().args(*args), false);
        let err = String::from_utf8_lossy(&out.stderr);
        let last = args.last().unwrap();
        let value = last.split_once('=').map_or(*last, |(_, v)| v);
        assert!(
            err.contains(flag)
                && err.contains(range)
                && err.contains(value)
                && !err.contains("panicked"),
            "swarmcast {}: {err}",
            args.join(" ")
        );
    }
}

/// `swarmcast watch` into a player: ffmpeg (standing in for mpv, VLC or ffplay) decodes the stdout
/// pipe of one viewer and the `--http-out` stream of another, without an error, to the end.
#[test]
fn watch_plays_into_a_pipe_and_an_http_stream_that_ffmpeg_decodes() {
    use crate::util::tool;

    let dir = tempfile::tempdir().unwrap();
    let mut publisher = swarmcast()
        .args([
            "publish",
            "--synth",
            "--synth-secs",
            "6",
            "--segment-secs",
            "1",
            "--http",
            "127.0.0.1:0",
            "--linger",
            "30",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--key")
        .arg(dir.path().join("k"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _publisher_guard = scopeguard(publisher.id());
    let mut line = String::new();
    BufReader::new(publisher.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let link = line.trim().to_owned();

    // Viewer 1: stdout into ffmpeg.
    let mut pipe_viewer = swarmcast()
        .args(["watch", &link, "--from-start", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _pipe_guard = scopeguard(pipe_viewer.id());
    let ffmpeg_pipe = Command::new(tool("ffmpeg"))
        .args(["-v", "error", "-i", "-", "-f", "null", "-"])
        .stdin(pipe_viewer.stdout.take().unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Viewer 2: an HTTP stream, opened by ffmpeg as a player would.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut http_viewer = swarmcast()
        .env("SWARMCAST_LOG", "info")
        .args([
            "watch",
            &link,
            "--from-start",
            "--listen",
            "127.0.0.1:0",
            "--http-out",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _http_guard = scopeguard(http_viewer.id());
    let (tx, rx) = mpsc::channel();
    let stderr = http_viewer.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(HANG_GUARD)
            .expect("hang guard: no playback server");
        if line.contains("playing at http://") {
            break;
        }
    }
    let ffmpeg_http = Command::new(tool("ffmpeg"))
        .args([
            "-v",
            "error",
            "-i",
            &format!("http://127.0.0.1:{port}/"),
            "-f",
            "null",
            "-",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    for (name, child) in [("pipe", ffmpeg_pipe), ("http", ffmpeg_http)] {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = rx
            .recv_timeout(HANG_GUARD)
            .unwrap_or_else(|_| panic!("hang guard: ffmpeg on the {name} did not finish"))
            .unwrap();
        assert!(out.status.success(), "ffmpeg ({name}): {:?}", out.status);
        assert!(
            out.stderr.is_empty(),
            "ffmpeg ({name}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(pipe_viewer.wait().unwrap().success());
    assert!(http_viewer.wait().unwrap().success());
    let _ = publisher.kill();
    let _ = publisher.wait();
}

/// The JSON lines of a counters file, as values (an unreadable line is skipped: a live file's
/// last line may be half written).
fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A publisher killed with SIGKILL and restarted 4 s later, on the same ports and data
/// directory, with two viewers (2 s segments): each viewer plays on with one bounded gap (its
/// segment numbers without a hole or a skip, at most one stall, under 12 s), rebuilds its
/// playout buffer, and takes the segments after the restart from the swarm (at least 90% of
/// those from the third on). Before, both fetched nearly every one over HTTP the moment it was
/// published: after the stall their deadlines had no slack left.
#[test]
fn viewers_rejoin_the_swarm_after_a_publisher_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (http, peer) = (free_port(), free_port());
    let publish = |secs: &str, metrics: &str| {
        swarmcast()
            .args([
                "publish",
                "--synth",
                "--synth-secs",
                secs,
                "--segment-secs",
                "2",
            ])
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(["--listen", &format!("127.0.0.1:{peer}"), "--linger", "30"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--key")
            .arg(dir.path().join("k"))
            .arg("--metrics-out")
            .arg(dir.path().join(metrics))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = publish("600", "pub1.jsonl");
    let first_guard = scopeguard(first.id());
    let mut line = String::new();
    BufReader::new(first.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let link = line.trim().to_owned();
    let logs: Vec<_> = (0..2)
        .map(|i| dir.path().join(format!("viewer-{i}.jsonl")))
        .collect();
    let mut viewers: Vec<_> = logs
        .iter()
        .map(|log| {
            swarmcast()
                .args(["watch", &link, "-o", "/dev/null", "--listen", "127.0.0.1:0"])
                .arg("--metrics-out")
                .arg(log)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let _viewer_guards: Vec<_> = viewers.iter().map(|v| scopeguard(v.id())).collect();
    // Wait (by event, bounded) until each viewer has played three segments.
    let played = |path: &std::path::Path| {
        json_lines(path)
            .iter()
            .filter(|e| e["kind"] == "played")
            .count()
    };
    let start = std::time::Instant::now();
    while logs.iter().any(|l| played(l) < 3) && start.elapsed() < HANG_GUARD {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        logs.iter().all(|l| played(l) >= 3),
        "the viewers never played"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    drop(first_guard);
    // The outage: part of the scenario (the viewers' buffers run dry), not a pass criterion.
    std::thread::sleep(Duration::from_secs(4));
    let mut second = publish("30", "pub2.jsonl");
    let _second_guard = scopeguard(second.id());
    // The restarted stream ends after 30 s: the viewers play to its end and exit.
    let start = std::time::Instant::now();
    for viewer in &mut viewers {
        let status = loop {
            if let Some(s) = viewer.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < 3 * HANG_GUARD, "a viewer did not end");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(status.success(), "viewer exited {status:?}");
    }
    let _ = second.kill();
    let _ = second.wait();
    // The restarted publisher's first segment, and how each viewer completed each from there.
    let restart = json_lines(&dir.path().join("pub2.jsonl"))
        .iter()
        .filter(|e| e["kind"] == "published")
        .filter_map(|e| e["seg"].as_u64())
        .min()
        .expect("the restarted publisher published");
    for log in &logs {
        // One bounded gap: the numbers run on without a hole or a skip, and playback waited at
        // most once, for less than the outage (4 s) plus the restart and its first segment.
        let events = json_lines(log);
        let played: Vec<(u64, u64)> = events
            .iter()
            .filter(|e| e["kind"] == "played")
            .filter_map(|e| Some((e["seg"].as_u64()?, e["stall_us"].as_u64()?)))
            .collect();
        assert!(
            played.windows(2).all(|w| w[1].0 == w[0].0 + 1),
            "{}: a hole in {:?}",
            log.display(),
            played.iter().map(|p| p.0).collect::<Vec<_>>()
        );
        assert!(
            !events.iter().any(|e| e["kind"] == "skipped"),
            "{}: skipped a segment",
            log.display()
        );
        let stalls: Vec<&(u64, u64)> = played.iter().filter(|p| p.1 > 0).collect();
        println!(
            "{}: played {}..={}, stalls (segment, µs) {stalls:?}",
            log.display(),
            played[0].0,
            played.last().unwrap().0
        );
        assert!(
            stalls.len() <= 1 && stalls.iter().all(|s| s.1 < 12_000_000),
            "{}: stalls (segment, µs) {stalls:?}",
            log.display()
        );
        let via: Vec<(u64, String)> = events
            .iter()
            .filter(|e| e["kind"] == "completed")
            .filter_map(|e| Some((e["seg"].as_u64()?, e["via"].as_str()?.to_owned())))
            .filter(|(n, _)| *n >= restart + 2)
            .collect();
        let swarm = via.iter().filter(|(_, v)| v == "swarm").count();
        assert!(
            via.len() >= 10 && swarm * 10 >= via.len() * 9,
            "{}: from segment {} on, {swarm} of {} from the swarm: {via:?}",
            log.display(),
            restart + 2,
            via.len()
        );
    }
}
