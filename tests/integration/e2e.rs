//! End-to-end tests with long-lived processes; nextest runs them one at a time.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::segment::{assert_decodes, segment_lines};
use crate::util::{run, swarmcast, tool};

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
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
    Kill(pid)
}
