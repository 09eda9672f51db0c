//! `swarmcast relay` (relay-resume, docs/relay.md): chains of relays behind a publisher of 1 s
//! segments on loopback. A relay that flips a byte is caught; a resume across a relay switch
//! loses nothing; a resume past the back buffer says so and counts the loss exactly; a plain
//! GET of `/stream` is decoded by ffmpeg.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::procs::{
    free_port, json_lines, listening_node, publish, stream_dir, wait_viewers, KillOnDrop,
};
use crate::util::{run, swarmcast, tool};

const HANG_GUARD: Duration = Duration::from_secs(90);

/// A position `<segment>:<offset>`.
fn position(s: &str) -> (u64, u64) {
    let (a, b) = s.split_once(':').expect("a position");
    (a.parse().unwrap(), b.parse().unwrap())
}

/// The published segment files, in order (`--keep-segments`).
fn published(dir: &Path) -> Vec<Vec<u8>> {
    let seg = stream_dir(dir);
    let mut out = Vec::new();
    while let Ok(bytes) = std::fs::read(seg.join(format!("{:08}.ts", out.len()))) {
        out.push(bytes);
    }
    assert!(!out.is_empty(), "no published segment in {}", seg.display());
    out
}

/// The offset of `pos` in the concatenation of `files`.
fn global(files: &[Vec<u8>], (seg, off): (u64, u64)) -> usize {
    files[..seg as usize].iter().map(Vec::len).sum::<usize>() + off as usize
}

/// A `swarmcast relay` named `name` listening on `port`, its output, counters and log under
/// `dir`; waits until it listens.
fn relay(dir: &Path, name: &str, link: &str, port: u16, args: &[&str]) -> KillOnDrop {
    let verb = ["relay", "--link", link, "--node", name];
    listening_node(dir, name, &[&verb[..], args].concat(), port, HANG_GUARD)
}

/// Waits for `relay` to exit by itself (the end of the stream), with success.
fn wait_exit(dir: &Path, name: &str, relay: &mut KillOnDrop) {
    let names = [name.to_owned()];
    wait_viewers(dir, &names, std::slice::from_mut(relay), HANG_GUARD, || {});
}

/// Waits until relay `name` has played `bytes` (its `stream_bytes` events).
fn wait_played(dir: &Path, name: &str, bytes: u64) {
    let start = Instant::now();
    loop {
        let played = json_lines(&dir.join(format!("{name}.jsonl")))
            .iter()
            .filter(|e| e["kind"] == "stream_bytes")
            .filter_map(|e| e["total"].as_u64())
            .max()
            .unwrap_or(0);
        if played >= bytes {
            return;
        }
        assert!(
            start.elapsed() < HANG_GUARD,
            "hang guard: {name} played {played} bytes, waiting for {bytes}: {}",
            std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn events(dir: &Path, name: &str, kind: &str) -> Vec<Value> {
    json_lines(&dir.join(format!("{name}.jsonl")))
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// Asserts that relay `name`'s output is exactly the published bytes from where it first
/// connected to the end of the stream, less what its resumes skipped (each `stream_connected`
/// whose position is after the one it asked for); returns the skipped byte counts.
fn assert_output(dir: &Path, name: &str, files: &[Vec<u8>]) -> Vec<usize> {
    let connected = events(dir, name, "stream_connected");
    assert!(!connected.is_empty(), "{name} never connected");
    let all = files.concat();
    let first = global(files, position(connected[0]["position"].as_str().unwrap()));
    let mut skips: Vec<(usize, usize)> = connected
        .iter()
        .filter_map(|e| {
            let from = global(files, position(e["from"].as_str()?));
            let at = global(files, position(e["position"].as_str()?));
            (at != from).then_some((from, at))
        })
        .collect();
    skips.sort();
    let mut want = Vec::new();
    let mut at = first;
    for (from, to) in &skips {
        want.extend_from_slice(&all[at..*from]);
        at = *to;
    }
    want.extend_from_slice(&all[at..]);
    let got = std::fs::read(dir.join(format!("{name}.ts"))).unwrap();
    assert!(
        got == want,
        "{name}: {} bytes played, {} expected (from {first}, skips {skips:?}); first difference at {}",
        got.len(),
        want.len(),
        got.iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()))
    );
    skips.iter().map(|(f, t)| t - f).collect()
}

/// Serves in a thread until dropped.
struct Server {
    stop: Arc<AtomicBool>,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Accepts connections on a fresh port, each handled by `handle` in a thread of its own.
fn serve(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let handle = Arc::new(handle);
    let flag = stop.clone();
    std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((conn, _)) => {
                    conn.set_nonblocking(false).unwrap();
                    let handle = handle.clone();
                    std::thread::spawn(move || handle(conn));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    Server { stop, port }
}

/// Reads a request (or response) head, up to and including the blank line.
fn read_head(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(head)
}

/// A relay directory that always lists only `source_url` as the source (with free slots), and
/// accepts every announce: the relays' directory protocol without a publisher serving it.
fn fake_directory(source_url: String) -> Server {
    let listing = serde_json::json!({
        "relays": [{
            "node": "source", "url": source_url, "parent": null, "depth": 0,
            "children": 0, "capacity": 8, "age_ms": 0
        }],
        "ended": false
    })
    .to_string();
    serve(move |mut conn| {
        let Some(head) = read_head(&mut conn) else {
            return;
        };
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let reply = if head.starts_with("post") {
            // Drain the announce's body.
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = conn.read_exact(&mut body);
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".to_owned()
        } else {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{listing}",
                listing.len()
            )
        };
        let _ = conn.write_all(reply.as_bytes());
    })
}

/// A proxy to `upstream` (a relay) that flips one byte of the first `/stream` response's body
/// (byte `FLIP_AT` of the body as sent: inside the first chunk's data) and passes everything
/// else through.
fn flipping_proxy(upstream: u16) -> Server {
    const FLIP_AT: usize = 1000;
    let flipped = Arc::new(AtomicBool::new(false));
    serve(move |mut client| {
        let Some(head) = read_head(&mut client) else {
            return;
        };
        let is_stream = head.starts_with(b"GET /stream");
        // One request per connection: ask for the connection to close after it.
        let mut request = head[..head.len() - 2].to_vec();
        request.extend_from_slice(b"Connection: close\r\n\r\n");
        let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
            return;
        };
        if up.write_all(&request).is_err() {
            return;
        }
        let Some(resp_head) = read_head(&mut up) else {
            return;
        };
        if client.write_all(&resp_head).is_err() {
            return;
        }
        let flip = is_stream && !flipped.swap(true, Ordering::SeqCst);
        let mut body_at = 0usize;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match up.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if flip && (body_at..body_at + n).contains(&FLIP_AT) {
                buf[FLIP_AT - body_at] ^= 0x01;
            }
            body_at += n;
            if client.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = client.shutdown(std::net::Shutdown::Both);
    })
}

/// The response head of `GET path` from a relay on `port` (the body is not read).
fn head_of(port: u16, path: &str) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(HANG_GUARD)).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    String::from_utf8_lossy(&read_head(&mut conn).expect("a response head")).to_ascii_lowercase()
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_owned())
}

/// A publisher of `secs` seconds of 1 s segments, kept on disk; and a root relay `r0` (the
/// publisher its parent) with a back buffer of `back` seconds.
fn publisher_and_root(dir: &Path, secs: &str, back: &str) -> (KillOnDrop, String, KillOnDrop, u16) {
    publisher_and_root_with(dir, secs, back, &[])
}

/// [`publisher_and_root`] with more flags for the publisher.
fn publisher_and_root_with(
    dir: &Path,
    secs: &str,
    back: &str,
    more: &[&str],
) -> (KillOnDrop, String, KillOnDrop, u16) {
    let (publisher, link) = publish(
        dir,
        &[
            more,
            &[
                "--synth",
                "--synth-secs",
                secs,
                "--bitrate",
                "1M",
                "--segment-secs",
                "1",
                "--http",
                "127.0.0.1:0",
                "--linger",
                "8",
                "--keep-segments",
            ],
        ]
        .concat(),
    );
    let p0 = free_port();
    let r0 = relay(
        dir,
        "r0",
        &link,
        p0,
        // Its children: r1, the child under test, and a player (ffmpeg) in one test; the
        // fan-out is enforced (503 over it).
        &["--parent", &link, "--back-buffer", back, "--fanout", "3"],
    );
    (publisher, link, r0, p0)
}

/// The chain most tests run: the publisher, its root relay `r0`, a relay `r1` under it, a
/// directory that offers `r0`, and the child `c` under test, whose parent is `r1`; returned
/// once `c` has played 250 kB, so that what comes next happens mid-stream.
///
/// Destructure it binding every field (`_publisher`, `_directory` included): fields left to
/// `..` are dropped at the end of the `let`, which would kill the publisher at once.
struct Chain {
    _publisher: KillOnDrop,
    r0: KillOnDrop,
    p0: u16,
    r1: KillOnDrop,
    p1: u16,
    _directory: Server,
    c: KillOnDrop,
}

fn chain(dir: &Path, secs: &str, back: &str, more: &[&str]) -> Chain {
    let (publisher, link, r0, p0) = publisher_and_root_with(dir, secs, back, more);
    let p1 = free_port();
    let r1 = relay(dir, "r1", &link, p1, &["--parent", &url(p0)]);
    let directory = fake_directory(url(p0));
    let c = relay(
        dir,
        "c",
        &link,
        free_port(),
        &[
            "--parent",
            &url(p1),
            "--directory",
            &format!("http://127.0.0.1:{}/relays", directory.port),
        ],
    );
    wait_played(dir, "c", 250_000);
    Chain {
        _publisher: publisher,
        r0,
        p0,
        r1,
        p1,
        _directory: directory,
        c,
    }
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/stream")
}

/// (a) A relay that flips a byte is caught: a child pulling through a proxy that flips one
/// byte of its parent's `/stream` rejects the piece (`piece_rejected`, naming the proxy), takes
/// its next parent from the directory, and its output is still byte-identical to the published
/// segments, with nothing lost. Meanwhile ffmpeg decodes a plain GET of the root's `/stream`
/// (software we did not write) from a segment start to the end, without an error.
#[test]
fn a_relay_that_flips_a_byte_is_caught_and_a_plain_get_is_decoded_by_ffmpeg() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_publisher, link, mut r0, p0) = publisher_and_root(dir, "10", "30");
    let p1 = free_port();
    let mut r1 = relay(dir, "r1", &link, p1, &["--parent", &url(p0)]);
    let proxy = flipping_proxy(p1);
    let directory = fake_directory(url(p0));
    let ffmpeg = Command::new(tool("ffmpeg"))
        .args(["-v", "error", "-i", &url(p0), "-f", "null", "-"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ffmpeg = KillOnDrop(ffmpeg);
    let pc = free_port();
    let mut c = relay(
        dir,
        "c",
        &link,
        pc,
        &[
            "--parent",
            &url(proxy.port),
            "--directory",
            &format!("http://127.0.0.1:{}/relays", directory.port),
        ],
    );
    for (name, r) in [("c", &mut c), ("r1", &mut r1), ("r0", &mut r0)] {
        wait_exit(dir, name, r);
    }
    let files = published(dir);
    let rejected = events(dir, "c", "piece_rejected");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["url"], url(proxy.port).as_str());
    let changed = events(dir, "c", "parent_changed");
    assert_eq!(
        changed.last().unwrap()["to"],
        url(p0).as_str(),
        "{changed:?}"
    );
    assert!(events(dir, "c", "stream_lost").is_empty());
    assert_eq!(assert_output(dir, "c", &files), Vec::<usize>::new());
    for name in ["r0", "r1"] {
        assert!(events(dir, name, "piece_rejected").is_empty());
        assert_output(dir, name, &files);
    }
    let mut err = String::new();
    ffmpeg
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = ffmpeg.0.wait().unwrap();
    assert!(status.success(), "ffmpeg: {status:?}: {err}");
    assert!(err.is_empty(), "ffmpeg: {err}");
}

/// (b) A resume across a relay switch loses nothing: the child's parent is killed mid-stream;
/// the child sees its connection end, takes the root from the directory, resumes where it was
/// (`?from=`), and plays the whole stream from where it joined, byte-identical, with no
/// `stream_lost`.
#[test]
fn a_resume_across_a_relay_switch_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let Chain {
        mut r0,
        p0,
        mut r1,
        p1,
        mut c,
        _publisher,
        _directory,
    } = chain(dir, "12", "30", &[]);
    r1.0.kill().unwrap();
    r1.0.wait().unwrap();
    for (name, r) in [("c", &mut c), ("r0", &mut r0)] {
        wait_exit(dir, name, r);
    }
    let files = published(dir);
    let connected = events(dir, "c", "stream_connected");
    assert_eq!(connected.len(), 2, "{connected:?}");
    assert_eq!(connected[1]["url"], url(p0).as_str());
    assert_eq!(connected[1]["from"], connected[1]["position"]);
    let disconnected = events(dir, "c", "stream_disconnected");
    assert_eq!(disconnected.len(), 1, "{disconnected:?}");
    assert_eq!(disconnected[0]["url"], url(p1).as_str());
    let changed = events(dir, "c", "parent_changed");
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert_eq!(changed[1]["from"], url(p1).as_str());
    assert!(events(dir, "c", "stream_lost").is_empty());
    assert_eq!(assert_output(dir, "c", &files), Vec::<usize>::new());
    let last = position(connected[0]["position"].as_str().unwrap()).0;
    assert!(
        (last as usize) < files.len() - 4,
        "joined at segment {last} of {}: the switch must be mid-stream",
        files.len()
    );
}

/// (c) A resume past the back buffer says so and counts the loss exactly: the child's parent
/// stops (SIGSTOP) mid-stream; after the detection timeout the child resumes at the root,
/// whose back buffer (1 s) no longer holds its position: the root answers from its oldest byte
/// with `X-Swarmcast-Lost`, the child records `stream_lost` with exactly the published bytes
/// between, and its output is the published stream less exactly those bytes. A request for
/// segment 0 at the end names its loss too: every byte of the segments before the answer.
#[test]
fn a_resume_past_the_back_buffer_says_so_and_counts_the_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let Chain {
        mut r0,
        p0,
        r1,
        mut c,
        _publisher,
        _directory,
        ..
    } = chain(dir, "14", "1", &[]);
    run(
        Command::new("kill").args(["-STOP", &r1.0.id().to_string()]),
        true,
    );
    let stopped = Instant::now();
    // The root's answer to an old position, while the stream runs.
    let head = head_of(p0, "/stream?from=0:0");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let at = position(&header(&head, "x-swarmcast-position").expect("a position"));
    let lost: usize = header(&head, "x-swarmcast-lost").unwrap().parse().unwrap();
    let lost_segments: u64 = header(&head, "x-swarmcast-lost-segments")
        .unwrap()
        .parse()
        .unwrap();
    wait_exit(dir, "c", &mut c);
    wait_exit(dir, "r0", &mut r0);
    drop(r1);
    let files = published(dir);
    assert_eq!(at.1, 0, "the root's oldest byte is a segment start");
    assert_eq!(lost, global(&files, at), "bytes before {at:?}");
    assert_eq!(lost_segments, at.0);
    let disconnected = events(dir, "c", "stream_disconnected");
    assert_eq!(disconnected[0]["reason"], "timeout", "{disconnected:?}");
    let changed = events(dir, "c", "parent_changed");
    let detect_us = changed[1]["detect_us"].as_u64().unwrap();
    assert!(
        (3_000_000..3_000_000 + 2_000_000).contains(&detect_us),
        "detected after {detect_us} µs (timeout 3 s; stopped {:?} before the end)",
        stopped.elapsed()
    );
    let skipped = assert_output(dir, "c", &files);
    let recorded: Vec<usize> = events(dir, "c", "stream_lost")
        .iter()
        .map(|e| e["bytes"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(skipped.len(), 1, "one resume past the buffer: {skipped:?}");
    assert!(skipped[0] > 0);
    assert_eq!(recorded, skipped);
}

/// An HTTP chunk of a body: (wall µs when its size line came, wall µs when its last byte came,
/// its bytes).
type TimedChunk = (u64, u64, usize);

/// Reads a relay's plain `/stream` to its end, de-chunking as it goes: the position it started
/// at, and for each HTTP chunk (the relay sends a verified piece per chunk), (wall µs when its
/// size line came, wall µs when its last byte came, its bytes).
fn timed_read(port: u16) -> ((u64, u64), Vec<TimedChunk>) {
    use std::io::BufRead;
    let wall = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64
    };
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(HANG_GUARD)).unwrap();
    write!(
        conn,
        "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let head = String::from_utf8_lossy(&read_head(&mut conn).unwrap()).to_ascii_lowercase();
    let at = position(&header(&head, "x-swarmcast-position").unwrap());
    let mut r = std::io::BufReader::new(conn);
    let mut chunks = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let start = wall();
        let size = usize::from_str_radix(line.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        let mut data = vec![0; size + 2];
        r.read_exact(&mut data).unwrap();
        chunks.push((start, wall(), size));
    }
    (at, chunks)
}

/// Not a test: the store-and-forward cost per hop (docs/relay.md). A chain publisher → r0 →
/// r1 → r2 → r3 on loopback (1 s segments of the synthetic feed at 1 Mbit/s, 20 s); a reader
/// of each relay's plain `/stream` times when each segment's first and last byte arrive, from
/// the segment's publication (the publisher's `published` event). Prints the medians per hop.
/// Run: `cargo nextest run --test integration --run-ignored only -E
/// 'test(measure_store_and_forward)' --no-capture`.
#[test]
#[ignore = "a measurement, not a check"]
fn measure_store_and_forward_latency_per_hop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bitrate = std::env::var("RELAY_BITRATE").unwrap_or_else(|_| "1M".into());
    let (_publisher, link) = publish(
        dir,
        &[
            "--synth",
            "--synth-secs",
            "20",
            "--bitrate",
            &bitrate,
            "--segment-secs",
            "1",
            "--http",
            "127.0.0.1:0",
            "--linger",
            "8",
            "--keep-segments",
        ],
    );
    let mut ports = vec![free_port()];
    let mut relays = vec![relay(dir, "r0", &link, ports[0], &["--parent", &link])];
    for i in 1..4 {
        let port = free_port();
        relays.push(relay(
            dir,
            &format!("r{i}"),
            &link,
            port,
            &["--parent", &url(ports[i - 1])],
        ));
        ports.push(port);
    }
    let readers: Vec<_> = ports
        .iter()
        .map(|p| {
            let p = *p;
            std::thread::spawn(move || timed_read(p))
        })
        .collect();
    let reads: Vec<_> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    for (i, r) in relays.iter_mut().enumerate() {
        wait_exit(dir, &format!("r{i}"), r);
    }
    let files = published(dir);
    let published_us: std::collections::HashMap<u64, u64> =
        json_lines(&dir.join("publisher.jsonl"))
            .iter()
            .filter(|e| e["kind"] == "published")
            .filter_map(|e| Some((e["seg"].as_u64()?, e["wall_us"].as_u64()?)))
            .collect();
    let median = |mut v: Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    println!("hop | segments | first byte after publication, median µs | last byte, median µs");
    for (hop, (at, chunks)) in reads.iter().enumerate() {
        let mut offset = global(&files, *at);
        let mut spans = Vec::new();
        for (s, e, len) in chunks {
            spans.push((offset, offset + len, *s, *e));
            offset += len;
        }
        let (mut firsts, mut lasts) = (Vec::new(), Vec::new());
        for n in at.0 + 2..files.len() as u64 {
            let (start, end) = (global(&files, (n, 0)), global(&files, (n + 1, 0)) - 1);
            let find = |b: usize| spans.iter().find(|(a, z, _, _)| (*a..*z).contains(&b));
            let (Some(f), Some(l), Some(p)) = (find(start), find(end), published_us.get(&n)) else {
                continue;
            };
            firsts.push(f.2.saturating_sub(*p));
            lasts.push(l.3.saturating_sub(*p));
        }
        println!(
            "r{hop} | {} | {} | {}",
            firsts.len(),
            median(firsts),
            median(lasts)
        );
    }
}

/// A resume more than a manifest window behind the live edge still verifies: with a window of
/// 2 segments, the child's parent stops for the detection timeout (3 s), so the manifests the
/// root serves no longer list the segments the child resumes at; the child fetches a signed
/// manifest that lists them (`/manifest?segment=N`), and plays on byte-identical, losing
/// nothing (the root holds 30 s).
#[test]
fn a_resume_more_than_a_window_behind_verifies_with_an_older_signed_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let Chain {
        mut r0,
        r1,
        mut c,
        _publisher,
        _directory,
        ..
    } = chain(dir, "12", "30", &["--window", "2"]);
    run(
        Command::new("kill").args(["-STOP", &r1.0.id().to_string()]),
        true,
    );
    wait_exit(dir, "c", &mut c);
    wait_exit(dir, "r0", &mut r0);
    drop(r1);
    let files = published(dir);
    let connected = events(dir, "c", "stream_connected");
    assert_eq!(
        connected.len(),
        2,
        "{connected:?} {:?} {}",
        events(dir, "c", "stream_disconnected"),
        std::fs::read_to_string(dir.join("c.log")).unwrap()
    );
    assert_eq!(connected[1]["from"], connected[1]["position"]);
    let behind = files.len() as u64 - position(connected[1]["from"].as_str().unwrap()).0;
    assert!(behind > 2, "resumed {behind} segments before the end");
    let log = std::fs::read_to_string(dir.join("c.log")).unwrap();
    assert!(
        log.contains("learnt from an older signed manifest"),
        "{log}"
    );
    assert!(events(dir, "c", "stream_lost").is_empty());
    assert_eq!(assert_output(dir, "c", &files), Vec::<usize>::new());
}

/// Start-up refusals name the problem, before anything runs.
#[test]
fn relay_refuses_bad_start_up_with_the_reason() {
    let link = "swarmcast:?pk=aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4a&xs=http%3A%2F%2F127.0.0.1%3A1%2Fmanifest";
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--link", link, "--listen", "127.0.0.1:0"],
            "needs --parent or --directory",
        ),
        (
            &[
                "--link",
                "nonsense",
                "--listen",
                "127.0.0.1:0",
                "--parent",
                "x",
            ],
            "invalid stream link (--link)",
        ),
        (
            &[
                "--link",
                link,
                "--listen",
                "127.0.0.1:0",
                "--parent",
                "ftp://x/stream",
            ],
            "expected a stream link (swarmcast:?...) or a relay's http URL",
        ),
        (
            &["--link", link, "--listen", &busy, "--parent", link],
            "cannot listen on",
        ),
        (
            &[
                "--link",
                link,
                "--listen",
                "127.0.0.1:0",
                "--back-buffer",
                "1e9",
            ],
            "expected seconds from 0 to 3600",
        ),
        (
            &[
                "--link",
                link,
                "--listen",
                "127.0.0.1:0",
                "--directory",
                "http://x/relays",
            ],
            "--node",
        ),
    ];
    for (args, want) in cases {
        let out = run(swarmcast().arg("relay").args(*args), false);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(want) && !err.contains("panicked"),
            "relay {}: {err}",
            args.join(" ")
        );
    }
}
