//! `swarmcast watch` on a terminal and into a player (issue 18, items 4 and 5).
//!
//! The terminal is a detached tmux session on a private server (`tmux -S <temporary socket>`,
//! never the user's), removed with `kill-server` by a drop guard whatever happens; its pane is
//! read with `capture-pane` in bounded loops, and everything the viewer drew is kept by
//! `pipe-pane`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{json_lines, scopeguard, HANG_GUARD};
use crate::util::{run, swarmcast, tool};

/// What marks the status line (the summary and log lines never say it).
const STATUS_MARK: &str = " · buffer ";

/// A publisher of the synthetic feed in 1 s segments, killed when dropped.
struct Publisher {
    child: Child,
    link: String,
    dir: tempfile::TempDir,
}

impl Publisher {
    /// `secs` of the synthetic feed (then the end-of-stream manifest, served for 30 s).
    fn start(secs: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = swarmcast()
            .args([
                "publish",
                "--synth",
                "--synth-secs",
                secs,
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
        let stdout = child.stdout.take().unwrap();
        let mut publisher = Self {
            child,
            link: String::new(),
            dir,
        };
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        publisher.link = line.trim().to_owned();
        assert!(
            publisher.link.starts_with("swarmcast:?"),
            "no link: {line:?}"
        );
        publisher
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private tmux server, killed when dropped: its socket is a file of the test's temporary
/// directory (`-S`, like `-L` a server of its own, and removed with the directory). Panes stay
/// after their command exits (`remain-on-exit`), so the summary can be read.
struct Tmux {
    socket: PathBuf,
    config: PathBuf,
}

impl Tmux {
    fn new(dir: &Path, name: &str) -> Self {
        let config = dir.join(format!("tmux-{name}.conf"));
        std::fs::write(
            &config,
            "set -g remain-on-exit on\nset -g history-limit 10000\n",
        )
        .unwrap();
        Self {
            socket: dir.join(format!("tmux-{name}.sock")),
            config,
        }
    }

    /// A tmux command on this server, with no `SWARMCAST_*` variable (or outer tmux) leaking
    /// into the sessions it starts.
    fn command(&self) -> Command {
        let mut cmd = Command::new(tool("tmux"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWARMCAST_") {
                cmd.env_remove(key);
            }
        }
        cmd.env_remove("TMUX").env("TERM", "xterm-256color");
        cmd.arg("-S").arg(&self.socket).arg("-f").arg(&self.config);
        cmd
    }

    /// Runs `shell_command` in a new 200x50 session `name`; every byte it draws is appended to
    /// `log` (`pipe-pane`, in the same tmux command as the session, so nothing is missed).
    fn start(&self, name: &str, shell_command: &str, log: &Path) {
        run(
            self.command().args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "200",
                "-y",
                "50",
                shell_command,
                ";",
                "pipe-pane",
                "-o",
                "-t",
                name,
                &format!("cat >> '{}'", log.display()),
            ]),
            true,
        );
    }

    /// The pane's text, history included, wrapped lines joined.
    fn screen(&self, name: &str) -> String {
        let out = run(
            self.command()
                .args(["capture-pane", "-p", "-J", "-S", "-", "-t", name]),
            true,
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (bounded by the hang guard) until the pane shows a line for which `found` is true.
    fn wait_for(&self, name: &str, what: &str, found: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen(name);
            if let Some(line) = screen.lines().find(|l| found(l)) {
                return line.to_owned();
            }
            assert!(
                !screen.contains("Pane is dead"),
                "no {what} on the terminal, and the command exited:\n{screen}"
            );
            assert!(
                start.elapsed() < HANG_GUARD,
                "hang guard: no {what} on the terminal after {HANG_GUARD:?}; it shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .command()
            .arg("kill-server")
            .stderr(Stdio::null())
            .status();
    }
}

/// `swarmcast watch LINK ... ARGS` as a shell command line for a tmux pane.
fn watch_line(link: &str, env: &str, args: &str) -> String {
    format!(
        "{env} exec '{}' watch '{link}' --from-start --listen 127.0.0.1:0 -o /dev/null {args}",
        env!("CARGO_BIN_EXE_swarmcast")
    )
}

/// The fields of a status line (`⠋ segment 4 · buffer 2.0 s · ...`), checked one by one; the
/// segment number.
fn check_status_line(line: &str) -> u64 {
    let text = line
        .trim()
        .split_once(' ')
        .map_or("", |(_spinner, text)| text);
    let fields: Vec<&str> = text.split(" · ").collect();
    assert!(fields.len() >= 6, "not a status line: {line:?}");
    let number = |field: &str, prefix: &str, suffixes: &[&str]| -> String {
        let rest = field
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{field:?} does not start with {prefix:?} in {line:?}"));
        let value = suffixes
            .iter()
            .find_map(|s| rest.strip_suffix(s))
            .unwrap_or_else(|| panic!("{field:?} does not end with {suffixes:?} in {line:?}"));
        value.to_owned()
    };
    let segment: u64 = number(fields[0], "segment ", &[""])
        .parse()
        .unwrap_or_else(|_| panic!("no segment number in {line:?}"));
    let buffer = number(fields[1], "buffer ", &[" s"]);
    assert!(
        buffer.parse::<f64>().is_ok() && buffer.split_once('.').is_some_and(|(_, d)| d.len() == 1),
        "buffer {buffer:?} in {line:?}"
    );
    let peers = number(fields[2], "", &[" peers", " peer"]);
    assert!(peers.parse::<u64>().is_ok(), "peers {peers:?} in {line:?}");
    let share = number(fields[3], "", &[" from peers"]);
    assert!(
        share == "–"
            || share == "<1%"
            || share
                .strip_suffix('%')
                .and_then(|p| p.parse::<u8>().ok())
                .is_some_and(|p| p <= 100),
        "share {share:?} in {line:?}"
    );
    let stalls = number(fields[4], "", &[" stalls", " stall"]);
    assert!(
        stalls.parse::<u64>().is_ok(),
        "stalls {stalls:?} in {line:?}"
    );
    let rate = number(fields[5], "", &[" B/s", " kB/s", " MB/s", " GB/s"]);
    assert!(rate.parse::<f64>().is_ok(), "rate {rate:?} in {line:?}");
    segment
}

/// On a terminal, `watch` keeps a status line (segment, buffer, peers, share from peers, stalls,
/// download rate) that follows playback; log lines scroll above it whole; it is cleared before
/// the summary.
#[test]
fn on_a_terminal_watch_keeps_a_status_line_that_log_lines_scroll_above() {
    let publisher = Publisher::start("8");
    let tmux = Tmux::new(publisher.dir.path(), "status");
    let log = publisher.path("pane.log");
    tmux.start(
        "watch",
        &watch_line(&publisher.link, "SWARMCAST_LOG=info", ""),
        &log,
    );

    // A status line with a segment number, then one with a later segment: it follows playback.
    let first = tmux.wait_for("watch", "status line with a segment number", |l| {
        l.contains(STATUS_MARK) && !l.contains("segment –")
    });
    let first_segment = check_status_line(&first);
    let later = tmux.wait_for("watch", "status line with a later segment", |l| {
        l.contains(STATUS_MARK)
            && l.split(" · ").next().is_some_and(|f| {
                f.rsplit(' ')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n > first_segment)
            })
    });
    check_status_line(&later);

    // The end of the stream: the summary, and the line taken off the screen before it.
    tmux.wait_for("watch", "summary", |l| l.starts_with("watched: joined at"));
    let screen = tmux.screen("watch");
    let summary_at = screen
        .lines()
        .position(|l| l.starts_with("watched: joined at"))
        .unwrap();
    assert!(
        !screen
            .lines()
            .skip(summary_at)
            .any(|l| l.contains(STATUS_MARK)),
        "the status line is still shown after the summary:\n{screen}"
    );
    assert!(
        screen.contains("; the stream ended"),
        "not to the end:\n{screen}"
    );
    // Log lines were written while the line was shown, each whole on a line of its own: none
    // holds a piece of the status line, and the status line holds no piece of a log line.
    let logs: Vec<&str> = screen.lines().filter(|l| l.contains(" INFO ")).collect();
    assert!(logs.len() > 3, "no log lines to check:\n{screen}");
    for line in screen.lines() {
        if line.contains(" INFO ") || line.contains(" WARN ") {
            assert!(
                line.starts_with("20") && !line.contains('·'),
                "a log line garbled by the status line: {line:?}\n{screen}"
            );
        }
    }
    let drawn = std::fs::read(&log).unwrap();
    let drawn = String::from_utf8_lossy(&drawn);
    let status_draws = drawn.matches(STATUS_MARK).count();
    assert!(
        status_draws >= 4,
        "the status line was drawn {status_draws} times"
    );
    // (Raw bytes: the level is between colour codes.)
    let first_status = drawn.find(STATUS_MARK).unwrap();
    let last_status = drawn.rfind(STATUS_MARK).unwrap();
    assert!(
        drawn[first_status..last_status].contains("INFO"),
        "no log line was written while the status line was shown"
    );
}

/// `--quiet`, `SWARMCAST_QUIET`, and a stderr that is not a terminal: no status line at all,
/// from start to summary.
#[test]
fn no_status_line_when_quiet_or_when_stderr_is_not_a_terminal() {
    let publisher = Publisher::start("4");
    let tmux = Tmux::new(publisher.dir.path(), "quiet");
    let (flag_log, env_log) = (publisher.path("flag.log"), publisher.path("env.log"));
    tmux.start(
        "flag",
        &watch_line(&publisher.link, "SWARMCAST_LOG=warn", "--quiet"),
        &flag_log,
    );
    tmux.start(
        "env",
        &watch_line(&publisher.link, "SWARMCAST_LOG=warn SWARMCAST_QUIET=1", ""),
        &env_log,
    );
    // A pipe: stderr read to its end.
    let piped = swarmcast()
        .args([
            "watch",
            &publisher.link,
            "--from-start",
            "--listen",
            "127.0.0.1:0",
            "-o",
            "/dev/null",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let piped = wait_output(piped, "the piped viewer");
    assert!(piped.status.success(), "{piped:?}");
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(stderr.contains("; the stream ended"), "{stderr}");
    assert!(
        !stderr.contains(STATUS_MARK) && !stderr.contains('\r') && !stderr.contains('\x1b'),
        "a status line on a pipe:\n{stderr:?}"
    );

    for (name, log) in [("flag", &flag_log), ("env", &env_log)] {
        tmux.wait_for(name, "summary", |l| l.starts_with("watched: joined at"));
        let screen = tmux.screen(name);
        assert!(
            screen.contains("; the stream ended"),
            "{name}: not to the end:\n{screen}"
        );
        let drawn = String::from_utf8_lossy(&std::fs::read(log).unwrap()).into_owned();
        assert!(drawn.contains("watched: joined at"), "{name}: {drawn:?}");
        assert!(
            !drawn.contains(STATUS_MARK),
            "{name}: a status line was drawn:\n{drawn:?}"
        );
    }
}

/// Waits for `child` to exit (bounded by the hang guard) and returns its output.
fn wait_output(child: Child, what: &str) -> Output {
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    let guard = scopeguard(pid);
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(HANG_GUARD)
        .unwrap_or_else(|_| panic!("hang guard: {what} did not exit"))
        .unwrap();
    drop(guard);
    out
}

/// `--player`: ffmpeg (standing in for mpv, VLC or ffplay) decodes the stream to its end and the
/// viewer exits 0; a second player gets exactly the bytes the viewer played; a player that
/// cannot start, an empty one, and one given with `--out` are refused naming the problem.
#[test]
fn a_player_gets_the_stream_to_its_end_and_a_bad_one_is_named() {
    let publisher = Publisher::start("4");
    let link = publisher.link.as_str();

    let out = run(
        swarmcast().args(["watch", link, "--player", "swarmcast-no-such-player --flag"]),
        false,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot start the player `swarmcast-no-such-player --flag`")
            && stderr.contains("No such file or directory"),
        "{stderr}"
    );
    for (args, says) in [
        (&["--player", ""][..], "the player command is empty"),
        (&["--player", "mpv 'x"][..], "a quote is not closed"),
        (
            &["--player", "mpv -", "-o", "x.ts"][..],
            "cannot be used with",
        ),
        (
            &["--player", "mpv -", "--http-out", "127.0.0.1:0"][..],
            "cannot be used with",
        ),
    ] {
        let out = run(swarmcast().args(["watch", link]).args(args), false);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }

    let ffmpeg_line = format!("{} -v error -nostats -i - -f null -", tool("ffmpeg"));
    let copy = publisher.path("copy.ts");
    let cat_line = format!("sh -c 'cat > \"{}\"'", copy.display());
    let spawn = |player: &str| {
        swarmcast()
            .args([
                "watch",
                link,
                "--from-start",
                "--listen",
                "127.0.0.1:0",
                "--player",
                player,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (ffmpeg, cat) = (spawn(&ffmpeg_line), spawn(&cat_line));
    let (ffmpeg, cat) = (
        wait_output(ffmpeg, "the viewer into ffmpeg"),
        wait_output(cat, "the viewer into cat"),
    );
    for (out, line) in [(&ffmpeg, &ffmpeg_line), (&cat, &cat_line)] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{line}: {:?}\n{stderr}", out.status);
        assert!(stderr.contains("; the stream ended"), "{line}:\n{stderr}");
        assert!(
            stderr.contains(&format!("the player `{line}` exited (exit status: 0)")),
            "{line}:\n{stderr}"
        );
        // ffmpeg says nothing at `-v error` unless it fails to decode; the viewer logs warnings.
        for l in stderr.lines() {
            assert!(
                l.starts_with("watched: ")
                    || l.starts_with("  ")
                    || l.starts_with("the player ")
                    || l.contains(" WARN "),
                "{line}: unexpected output {l:?}\n{stderr}"
            );
        }
    }
    // The bytes the viewer played, and no others.
    let stderr = String::from_utf8_lossy(&cat.stderr);
    let played: u64 = stderr
        .split_once(" segments (")
        .and_then(|(_, rest)| rest.split_once(" bytes)"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no bytes played in {stderr}"));
    let copy = std::fs::read(&copy).unwrap();
    assert!(played > 0);
    assert_eq!(copy.len() as u64, played);
    assert!(copy.chunks(188).all(|p| p[0] == 0x47), "not MPEG-TS");
}

/// A player that quits early (`head -c 1000`) stops the viewer at once: exit 0, the summary
/// says the output was closed, and the player got the stream's first 1,000 bytes.
#[test]
fn a_player_that_quits_stops_the_viewer_at_once() {
    // Ten minutes of stream: the viewer stops because its player quit, not because it ended.
    let publisher = Publisher::start("600");
    let mut viewer = swarmcast()
        .args([
            "watch",
            &publisher.link,
            "--listen",
            "127.0.0.1:0",
            "--player",
            "head -c 1000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = scopeguard(viewer.id());
    // Beside it, a player that quits failing: the viewer stops as well, and exits 1 naming it.
    let failing_line = "sh -c 'head -c 1000 > /dev/null; exit 3'";
    let failing = swarmcast()
        .args([
            "watch",
            &publisher.link,
            "--listen",
            "127.0.0.1:0",
            "--player",
            failing_line,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Guarded at once: an assertion below must not leave it running.
    let failing_guard = scopeguard(failing.id());
    let mut stdout = viewer.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let _ = stdout.read_to_end(&mut got);
        let _ = tx.send(got);
    });
    // head's stdout (the viewer's, inherited) ends when head exits.
    let got = rx
        .recv_timeout(HANG_GUARD)
        .expect("hang guard: the player never finished");
    let quit = Instant::now();
    assert_eq!(got.len(), 1000);
    assert_eq!(got[0], 0x47, "not MPEG-TS");
    std::mem::forget(guard); // `wait_output` guards it from here
    let out = wait_output(viewer, "the viewer");
    let after = quit.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    assert!(
        stderr.contains("stopped: the output was closed (its reader quit)")
            && stderr.contains("the player `head -c 1000` exited (exit status: 0)"),
        "{stderr}"
    );
    // A hang guard, not a timing figure: it stopped, with nearly ten minutes of stream left.
    assert!(
        after < Duration::from_secs(20),
        "stopped {after:?} after the player"
    );

    std::mem::forget(failing_guard); // `wait_output` guards it from here
    let out = wait_output(failing, "the viewer of the failing player");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("stopped: the output was closed (its reader quit)")
            && stderr.contains(&format!(
                "error: the player `{failing_line}` failed: exit status: 3"
            )),
        "{stderr}"
    );
}

/// A player still running 10 s after the end of the stream closed its input is killed, and
/// the viewer exits 0 saying so.
#[test]
fn a_player_that_outlives_the_stream_is_stopped() {
    let publisher = Publisher::start("2");
    // It reads the stream to its end, then would sleep for ten minutes (as itself: `exec`).
    let line = "sh -c 'cat > /dev/null; exec sleep 600'";
    let viewer = swarmcast()
        .args([
            "watch",
            &publisher.link,
            "--from-start",
            "--listen",
            "127.0.0.1:0",
            "--player",
            line,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let player = player_of(viewer.id());
    let _player_guard = scopeguard(player);
    let out = wait_output(viewer, "the viewer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    assert!(
        stderr.contains("; the stream ended")
            && stderr.contains(&format!(
                "the player `{line}` was stopped (it did not exit within 10 s of the end of the stream): signal: 9 (SIGKILL)"
            )),
        "{stderr}"
    );
    assert!(
        !Path::new(&format!("/proc/{player}")).exists(),
        "the player {player} is still there"
    );
}

/// The pid of `viewer`'s child, the player (listed by the thread that started it), waited for
/// within the hang guard.
fn player_of(viewer: u32) -> u32 {
    let start = Instant::now();
    loop {
        let children = std::fs::read_dir(format!("/proc/{viewer}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
            .collect::<String>();
        if let Some(pid) = children.split_whitespace().next() {
            return pid.parse().unwrap();
        }
        assert!(start.elapsed() < HANG_GUARD, "hang guard: no player");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ctrl-C stops the viewer and kills its player at once, even one that reads nothing (whose
/// full pipe would otherwise hold the viewer in a write).
#[test]
fn ctrl_c_kills_the_player() {
    let publisher = Publisher::start("600");
    let metrics = publisher.path("viewer.jsonl");
    let viewer = swarmcast()
        .args([
            "watch",
            &publisher.link,
            "--listen",
            "127.0.0.1:0",
            "--player",
            "sleep 600",
        ])
        .arg("--metrics-out")
        .arg(&metrics)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = scopeguard(viewer.id());
    let player = player_of(viewer.id());
    let start = Instant::now();
    let _player_guard = scopeguard(player);
    // Playing: segments written into the pipe.
    while !json_lines(&metrics).iter().any(|e| e["kind"] == "played") {
        assert!(start.elapsed() < HANG_GUARD, "hang guard: nothing played");
        std::thread::sleep(Duration::from_millis(100));
    }
    run(
        Command::new("kill").args(["-INT", &viewer.id().to_string()]),
        true,
    );
    std::mem::forget(guard); // `wait_output` guards it from here
    let out = wait_output(viewer, "the viewer after Ctrl-C");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    assert!(
        stderr.contains("the player `sleep 600` was stopped (interrupted)"),
        "{stderr}"
    );
    // Killed and reaped: its process is gone.
    assert!(
        !Path::new(&format!("/proc/{player}")).exists(),
        "the player {player} is still there"
    );
}
