//! `swarmcast segment` and `swarmcast synth` against ffmpeg: ffmpeg's output is cut into
//! segments each of which ffmpeg decodes on its own, and the synthetic feed decodes cleanly.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{run, swarmcast, tool};

/// `ffmpeg -v error` decodes `file` with no complaint.
pub(crate) fn assert_decodes(file: &Path) {
    let out = run(
        Command::new(tool("ffmpeg"))
            .args(["-v", "error", "-i"])
            .arg(file)
            .args(["-f", "null", "-"]),
        true,
    );
    assert!(
        out.stderr.is_empty(),
        "{}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Video decoding timestamps of `file`, in seconds.
pub(crate) fn video_dts(file: &Path) -> Vec<f64> {
    let out = run(
        Command::new(tool("ffprobe"))
            .args([
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "packet=dts_time",
                "-of",
                "csv=p=0",
            ])
            .arg(file),
        true,
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim_end_matches(',').parse().ok())
        .collect()
}

/// Flags of the first video packet of `file` (`K` marks a keyframe).
fn first_video_flags(file: &Path) -> String {
    let out = run(
        Command::new(tool("ffprobe"))
            .args([
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "packet=flags",
                "-of",
                "csv=p=0",
            ])
            .arg(file),
        true,
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Parses `segment NNNNNNNN start=S duration=D size=N ... path=P` lines.
pub(crate) fn segment_lines(stdout: &[u8]) -> Vec<(u64, f64, f64, u64, PathBuf)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with("segment "))
        .map(|l| {
            let field = |k: &str| {
                l.split(' ')
                    .find_map(|w| w.strip_prefix(k))
                    .unwrap()
                    .to_owned()
            };
            (
                l[8..16].parse().unwrap(),
                field("start=").parse().unwrap(),
                field("duration=").parse().unwrap(),
                field("size=").parse().unwrap(),
                PathBuf::from(field("path=")),
            )
        })
        .collect()
}

fn ffmpeg_feed(path: &Path, seconds: u32) {
    run(
        Command::new(tool("ffmpeg"))
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240:rate=25",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                &seconds.to_string(),
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-g",
                "50",
                "-keyint_min",
                "50",
                "-sc_threshold",
                "0",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                "64k",
                "-f",
                "mpegts",
            ])
            .arg(path),
        true,
    );
}

#[test]
fn ffmpeg_output_is_cut_into_segments_that_each_decode_alone() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    ffmpeg_feed(&input, 7);
    let bytes = std::fs::read(&input).unwrap();

    let out = run(
        swarmcast()
            .arg("segment")
            .arg(&input)
            .args(["--segment-secs", "2", "--out"])
            .arg(dir.path().join("a")),
        true,
    );
    let segments = segment_lines(&out.stdout);
    assert_eq!(
        segments.len(),
        4,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut joined = Vec::new();
    for (i, (number, start, duration, size, path)) in segments.iter().enumerate() {
        assert_eq!(*number, i as u64);
        let seg = std::fs::read(path).unwrap();
        assert_eq!(seg.len() as u64, *size);
        joined.extend_from_slice(&seg);
        assert_decodes(path);
        assert!(
            first_video_flags(path).starts_with('K'),
            "segment {i} does not start with a keyframe"
        );
        if i < 3 {
            assert!(
                (duration - 2.0).abs() < 1e-9,
                "segment {i} lasts {duration}"
            );
        }
        if i > 0 {
            let (_, prev_start, prev_duration, _, _) = segments[i - 1];
            assert!(
                (prev_start + prev_duration - start).abs() < 1e-9,
                "segments {} and {i} are not contiguous",
                i - 1
            );
        }
    }
    assert_eq!(joined, bytes, "the segments' concatenation is the input");

    // The same feed through stdin gives the same segments.
    let b = dir.path().join("b");
    let out = run(
        swarmcast()
            .arg("segment")
            .args(["--segment-secs", "2", "--out"])
            .arg(&b)
            .stdin(std::fs::File::open(&input).unwrap()),
        true,
    );
    assert_eq!(segment_lines(&out.stdout).len(), 4);
    for (_, _, _, _, path) in &segments {
        assert_eq!(
            std::fs::read(path).unwrap(),
            std::fs::read(b.join(path.file_name().unwrap())).unwrap()
        );
    }
}

#[test]
fn the_synthetic_feed_decodes_without_errors_or_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("synth.ts");
    let start_pts = (1u64 << 33) - 2 * 90_000; // wraps 2 s in
    run(
        swarmcast()
            .args([
                "synth",
                "--seconds",
                "5",
                "--bitrate",
                "1M",
                "--start-pts",
                &start_pts.to_string(),
                "-o",
            ])
            .arg(&feed),
        true,
    );
    assert_decodes(&feed);
    let dts = video_dts(&feed);
    assert_eq!(dts.len(), 125, "5 s at 25 fps");
    for w in dts.windows(2) {
        // Modulo the 33-bit wrap (95443.7 s), every frame follows the previous by 40 ms.
        let step = (w[1] - w[0]).rem_euclid((1u64 << 33) as f64 / 90_000.0);
        assert!(
            (step - 0.04).abs() < 1e-6,
            "dts step {step} between {} and {}",
            w[0],
            w[1]
        );
    }
    let size = std::fs::metadata(&feed).unwrap().len() as f64;
    assert!(
        (size * 8.0 / 5.0 - 1e6).abs() < 1e6 * 0.01,
        "bitrate {}",
        size * 8.0 / 5.0
    );

    let out = run(
        swarmcast()
            .arg("segment")
            .arg(&feed)
            .args(["--segment-secs", "2", "--out"])
            .arg(dir.path().join("s")),
        true,
    );
    let segments = segment_lines(&out.stdout);
    assert_eq!(
        segments.iter().map(|s| s.2).collect::<Vec<_>>(),
        vec![2.0, 2.0, 1.0]
    );
    for (_, _, _, _, path) in &segments {
        assert_decodes(path);
    }
}

#[test]
fn a_non_ts_input_is_cut_by_wall_clock_and_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("notes.txt");
    std::fs::write(&input, "not a transport stream\n".repeat(1000)).unwrap();
    let out = run(
        swarmcast()
            .arg("segment")
            .arg(&input)
            .args(["--segment-secs", "1", "--out"])
            .arg(dir.path().join("o")),
        true,
    );
    let segments = segment_lines(&out.stdout);
    let joined: Vec<u8> = segments
        .iter()
        .flat_map(|s| std::fs::read(&s.4).unwrap())
        .collect();
    assert_eq!(joined, std::fs::read(&input).unwrap());
    assert!(String::from_utf8_lossy(&out.stderr).contains("raw, cut by wall clock"));
}

#[test]
fn bad_arguments_are_refused_with_the_reason() {
    let err = run(
        swarmcast().args(["segment", "--out", "/tmp/x", "--segment-secs", "0"]),
        false,
    )
    .stderr;
    assert!(String::from_utf8_lossy(&err).contains("expected seconds from 0.1 to 3600"));
    let err = run(
        swarmcast().args([
            "synth",
            "--bitrate",
            "10k",
            "--seconds",
            "1",
            "-o",
            "/dev/null",
        ]),
        false,
    )
    .stderr;
    assert!(String::from_utf8_lossy(&err).contains("below the synthetic feed's minimum"));
    let err = run(
        swarmcast().args(["segment", "/nonexistent/in.ts", "--out", "/tmp/x"]),
        false,
    )
    .stderr;
    assert!(String::from_utf8_lossy(&err).contains("/nonexistent/in.ts"));
}

/// `segment` into a directory that fills up: the segments that fit are written whole, the rest
/// are dropped, and the command fails naming the cause (the segmenter itself goes on past a
/// segment it cannot write, as a publisher must).
#[test]
fn segment_fails_naming_a_full_disk_and_keeps_what_it_wrote() {
    let id = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&id.stdout).trim() != "0" {
        eprintln!("skipped: mounting a small tmpfs needs root (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    ffmpeg_feed(&input, 8);
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=128k", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mounted.success(), "cannot mount a tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());
    let out = run(
        swarmcast()
            .arg("segment")
            .arg(&input)
            .arg("--out")
            .arg(&small)
            .args(["--segment-secs", "2"]),
        false,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("could not be written") && stderr.contains("the disk is full"),
        "{stderr}"
    );
    // What was written is whole: each segment listed decodes on its own.
    let listed: Vec<PathBuf> = segment_lines(&out.stdout)
        .into_iter()
        .map(|(.., path)| path)
        .collect();
    assert!(!listed.is_empty(), "nothing fitted");
    for path in &listed {
        assert_decodes(path);
    }
    let leftovers: Vec<_> = std::fs::read_dir(&small)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !listed.contains(p))
        .collect();
    assert!(leftovers.is_empty(), "partial files left: {leftovers:?}");
}
