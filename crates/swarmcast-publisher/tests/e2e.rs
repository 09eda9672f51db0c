//! The publisher end to end on loopback: the synthetic feed in 1 s segments, a manifest that
//! verifies, a separate librqbit session (given only the manifest) and libtorrent (given only a
//! .torrent and our tracker) downloading segments byte-identical to the input, and a restart.
//! Waits are bounded by hang guards; ordering is asserted by events (manifest sequence numbers).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use swarmcast_core::manifest::SignedManifest;
use swarmcast_core::{InfoDict, SegmentTorrent, Verdict, Verifier};
use swarmcast_publisher::{run, FeedInput, PublishConfig, Ready, Shutdown, Summary};
use swarmcast_segmenter::synth::Synth;
use swarmcast_swarm::{Swarm, SwarmConfig};
use swarmcast_tasks::Tasks;
use tokio::task::JoinHandle;

const HANG_GUARD: Duration = Duration::from_secs(60);
const BITRATE: u64 = 300_000;

/// The synthetic feed's bytes for `seconds`, exactly as the publisher reads them.
fn synth_bytes(seconds: u64) -> Vec<u8> {
    Synth::new(Some(BITRATE), 0).unwrap().take(seconds * 90_000)
}

fn config(dir: &Path, seconds: u64) -> PublishConfig {
    let mut c = PublishConfig::new(FeedInput::Synth {
        bitrate: Some(BITRATE),
        duration: Some(seconds * 90_000),
    });
    c.key = dir.join("stream.key");
    c.data_dir = dir.join("data");
    c.http = "127.0.0.1:0".parse().unwrap();
    c.target = 90_000;
    c.window = 10;
    c.linger = Some(Duration::from_secs(600)); // ended by the test, not by time
    c.metrics_out = Some(dir.join("publisher.jsonl"));
    c
}

/// A librqbit session standing in for a viewer, with its own directory.
async fn viewer_swarm(dir: &Path) -> (std::path::PathBuf, Swarm) {
    let viewer_dir = dir.join("viewer");
    std::fs::create_dir_all(&viewer_dir).unwrap();
    let swarm = Swarm::start(SwarmConfig {
        default_dir: viewer_dir.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        upload_limit: None,
        download_limit: None,
        announce: true,
        super_seed: None,
        peer_limit: None,
        punch_ports: None,
        extension: None,
        dht_bootstrap: None,
    })
    .await
    .unwrap();
    (viewer_dir, swarm)
}

/// Downloads segment `s` of manifest `m` with `viewer`, told only what the manifest says.
async fn download(
    viewer: &Swarm,
    viewer_dir: &Path,
    m: &swarmcast_core::Manifest,
    s: &swarmcast_core::SegmentEntry,
    peers: &[std::net::SocketAddr],
) -> Vec<u8> {
    let info = InfoDict::decode_strict(&s.info).unwrap();
    let torrent = SegmentTorrent::from_info(info, m.trackers.clone()).to_torrent_bytes();
    let name = format!("{:08}.ts", s.number);
    let t = viewer
        .download(&torrent, &name, viewer_dir, peers.to_vec(), vec![])
        .await
        .unwrap();
    viewer.wait(&t, "downloaded", HANG_GUARD).await.unwrap();
    std::fs::read(viewer_dir.join(&name)).unwrap()
}

async fn start(
    config: PublishConfig,
) -> (
    Ready,
    Shutdown,
    JoinHandle<Option<Result<Summary, swarmcast_publisher::PublishError>>>,
) {
    let shutdown = Shutdown::default();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = Tasks::new("test").spawn("publisher", run(config, shutdown.clone(), Some(tx)));
    let ready = tokio::time::timeout(HANG_GUARD, rx)
        .await
        .expect("hang guard")
        .expect("publisher failed to start");
    (ready, shutdown, task)
}

/// Follows the manifest by blocking reloads until the end of the stream; checks every response is
/// newer than the one before (so each reload was released by a publication, not by the end of its
/// hold: segments come every second, the hold is 10 s). A reload returns the latest manifest, so
/// two publications in quick succession may show as one.
async fn follow_to_the_end(ready: &Ready, verifier: &mut Verifier) -> Vec<SignedManifest> {
    let client = reqwest::Client::new();
    let mut seen = Vec::new();
    let mut after = verifier.last_seq().unwrap_or(0);
    for _ in 0..100 {
        let url = format!("http://{}/manifest?after={after}", ready.http);
        let response = tokio::time::timeout(HANG_GUARD, client.get(&url).send())
            .await
            .expect("hang guard")
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.unwrap();
        match verifier.accept(&body).unwrap() {
            Verdict::New(m) => {
                assert!(
                    m.manifest.seq > after,
                    "a blocking reload returned an older manifest"
                );
                after = m.manifest.seq;
                let end = m.manifest.end_of_stream;
                seen.push(m);
                if end {
                    return seen;
                }
            }
            Verdict::Unchanged => {
                panic!("a blocking reload returned the same manifest (held past a publication?)")
            }
        }
    }
    panic!("no end of stream after 100 manifests");
}

async fn stop(
    shutdown: Shutdown,
    task: JoinHandle<Option<Result<Summary, swarmcast_publisher::PublishError>>>,
) -> Summary {
    shutdown.stop.cancel();
    shutdown.abort.cancel();
    tokio::time::timeout(HANG_GUARD, task)
        .await
        .expect("hang guard")
        .unwrap()
        .expect("not cancelled")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_given_only_the_manifest_downloads_every_segment_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (ready, shutdown, task) = start(config(dir.path(), 6)).await;
    let mut verifier = Verifier::new(ready.link.key);
    let manifests = follow_to_the_end(&ready, &mut verifier).await;
    let last = manifests.last().unwrap().manifest.clone();
    assert_eq!(
        last.segments.iter().map(|s| s.number).collect::<Vec<_>>(),
        (0..6).collect::<Vec<_>>()
    );
    assert!(!last.segments[0].discontinuity);
    assert!(manifests.len() >= 2);

    // Info hashes match the files on disk.
    for s in &last.segments {
        let file = ready.stream_dir.join(format!("{:08}.ts", s.number));
        let bytes = std::fs::read(&file).unwrap();
        let t = SegmentTorrent::build(
            &bytes[..],
            bytes.len() as u64,
            &format!("{:08}.ts", s.number),
            None,
            vec![],
        )
        .unwrap();
        assert_eq!(t.info_hash(), s.info_hash, "segment {}", s.number);
    }

    // A separate librqbit session, told only what the manifest says, downloads every segment.
    let (viewer_dir, viewer) = viewer_swarm(dir.path()).await;
    let peers: Vec<std::net::SocketAddr> = last.peers.iter().map(|p| p.parse().unwrap()).collect();
    let mut downloaded = Vec::new();
    for s in &last.segments {
        downloaded.extend(download(&viewer, &viewer_dir, &last, s, &peers).await);
    }
    viewer.shutdown().await;
    assert_eq!(downloaded, synth_bytes(6), "segments differ from the input");

    let summary = stop(shutdown, task).await;
    assert_eq!(summary.segments, 6);
    assert!(
        summary.uploaded_bytes >= downloaded.len() as u64,
        "{summary:?}"
    );

    // The counters name every step of every segment.
    let events = swarmcast_metrics::read_events(&dir.path().join("publisher.jsonl")).unwrap();
    for n in 0..6u64 {
        let kinds: Vec<String> = events
            .iter()
            .filter(|e| e.seg == Some(n))
            .map(|e| {
                serde_json::to_value(e).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        for want in ["cut", "hashed", "seeding", "published", "uploaded"] {
            assert!(
                kinds.iter().any(|k| k == want),
                "segment {n}: no {want} event in {kinds:?}"
            );
        }
    }
}

/// One upload budget holds everything the publisher sends: with an upload limit, a swarm download
/// and HTTP fetches of the same segments, at the same time, take at least as long as their bytes
/// together take at the limit. (With a limiter for the seeder and another for HTTP, as before,
/// each ran at the limit: about half the time.) A lower bound on time, so it cannot flake on a
/// slow machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_upload_budget_holds_the_swarm_and_http_together() {
    const LIMIT: u32 = 48 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 4);
    c.upload_limit = Some(LIMIT);
    let (ready, shutdown, task) = start(c).await;
    let mut verifier = Verifier::new(ready.link.key);
    let last = follow_to_the_end(&ready, &mut verifier)
        .await
        .pop()
        .unwrap()
        .manifest;
    let (viewer_dir, viewer) = viewer_swarm(dir.path()).await;
    let peers: Vec<std::net::SocketAddr> = last.peers.iter().map(|p| p.parse().unwrap()).collect();
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    let http = async {
        let mut bytes = 0;
        for s in &last.segments {
            let name = format!("{:08}.ts", s.number);
            let url = format!("http://{}/segments/{name}", ready.http);
            let body = tokio::time::timeout(HANG_GUARD, async {
                client.get(&url).send().await?.bytes().await
            })
            .await
            .expect("hang guard")
            .unwrap();
            assert_eq!(body, std::fs::read(ready.stream_dir.join(&name)).unwrap());
            bytes += body.len();
        }
        bytes
    };
    let swarm = async {
        let mut bytes = 0;
        for s in &last.segments {
            bytes += download(&viewer, &viewer_dir, &last, s, &peers).await.len();
        }
        bytes
    };
    let (http_bytes, swarm_bytes) = tokio::join!(http, swarm);
    let elapsed = started.elapsed();
    viewer.shutdown().await;
    let summary = stop(shutdown, task).await;
    assert_eq!(http_bytes, swarm_bytes);
    // Everything but one burst (a 4 KiB slice; 16 KiB allowed) waited for the budget.
    let floor =
        Duration::from_secs_f64((http_bytes + swarm_bytes - 16 * 1024) as f64 / f64::from(LIMIT));
    assert!(
        elapsed >= floor,
        "{http_bytes} HTTP + {swarm_bytes} swarm bytes in {elapsed:?}: faster than one budget of \
         {LIMIT} B/s allows ({floor:?}); {summary:?}"
    );
}

/// Saves segment 1's `.torrent`, as the publisher serves it, in `dir`; its path.
async fn save_first_torrent(ready: &Ready, dir: &Path) -> std::path::PathBuf {
    let torrent = reqwest::get(format!("http://{}/segments/00000001.torrent", ready.http))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let path = dir.join("1.torrent");
    std::fs::write(&path, &torrent).unwrap();
    path
}

/// Counter `name` on the publisher's `/metrics`, and the whole text (for messages).
async fn counter(ready: &Ready, name: &str) -> (u64, String) {
    let metrics = reqwest::get(format!("http://{}/metrics", ready.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
        .parse()
        .unwrap();
    (value, metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libtorrent_downloads_a_live_segment_with_only_its_torrent_and_our_tracker() {
    let dir = tempfile::tempdir().unwrap();
    let (ready, shutdown, task) = start(config(dir.path(), 3)).await;
    let mut verifier = Verifier::new(ready.link.key);
    let manifests = follow_to_the_end(&ready, &mut verifier).await;
    assert!(manifests.last().unwrap().manifest.segments.len() >= 2);

    let torrent_path = save_first_torrent(&ready, dir.path()).await;
    let save = dir.path().join("lt");
    std::fs::create_dir_all(&save).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/lt-download.py");
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| Path::new(p).exists() || *p == "python3")
        .unwrap();
    let out = Tasks::new("test")
        .spawn_blocking("lt-download", {
            let (torrent_path, save) = (torrent_path.clone(), save.clone());
            move || {
                Command::new(python)
                    .arg(script)
                    .arg(&torrent_path)
                    .arg(&save)
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "libtorrent failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("True"),
        "libtorrent did not finish: {stdout}"
    );
    assert!(
        stdout.contains(&format!("http://{}/announce", ready.http)),
        "not via our tracker: {stdout}"
    );
    assert_eq!(
        std::fs::read(save.join("00000001.ts")).unwrap(),
        std::fs::read(ready.stream_dir.join("00000001.ts")).unwrap()
    );
    let (announces, metrics) = counter(&ready, "swarmcast_tracker_announces_total").await;
    assert!(announces >= 1, "{metrics}");
    stop(shutdown, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aria2_downloads_a_live_segment_with_only_its_torrent_and_our_tracker() {
    // aria2 (Debian's `aria2`), a client we did not write, on the wire seeder (the default).
    let aria2c = ["/usr/bin/aria2c", "/usr/local/bin/aria2c"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("aria2c is not installed (apt-get install aria2; .ci/run installs it)");
    let dir = tempfile::tempdir().unwrap();
    let (ready, shutdown, task) = start(config(dir.path(), 3)).await;
    let mut verifier = Verifier::new(ready.link.key);
    follow_to_the_end(&ready, &mut verifier).await;
    let torrent_path = save_first_torrent(&ready, dir.path()).await;
    let save = dir.path().join("aria2");
    let out = Tasks::new("test")
        .spawn_blocking("aria2c", {
            let (torrent_path, save) = (torrent_path.clone(), save.clone());
            move || {
                // Bounded: `timeout` ends it if it hangs (a hang guard, 3x a normal run and more).
                Command::new("timeout")
                    .args(["120", aria2c])
                    .arg(format!("--dir={}", save.display()))
                    .args([
                        "--seed-time=0",
                        "--enable-dht=false",
                        "--enable-dht6=false",
                        "--enable-peer-exchange=false",
                        "--bt-enable-lpd=false",
                        "--follow-torrent=false",
                        "--summary-interval=0",
                        "--console-log-level=warn",
                        "--listen-port=47000-47100",
                    ])
                    .arg(&torrent_path)
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "aria2c failed ({:?}): {} {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(save.join("00000001.ts")).unwrap(),
        std::fs::read(ready.stream_dir.join("00000001.ts")).unwrap()
    );
    // Taken as it speaks: its bitfield after its first pieces is no violation. (Its first
    // connection tries an encrypted handshake, which the seeder refuses; it then speaks plain.)
    let (violations, metrics) = counter(&ready, "swarmcast_wire_violations_total").await;
    assert_eq!(violations, 0, "{metrics}");
    stop(shutdown, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_continues_numbering_reseeds_the_window_and_marks_a_discontinuity() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = config(dir.path(), 3);
    // Long enough to answer the blocking reload that waits for the end-of-stream manifest: with
    // no linger the server may close that reload's connection as the request arrives.
    first.linger = Some(Duration::from_secs(2));
    let (ready, _shutdown, task) = start(first).await;
    let mut verifier = Verifier::new(ready.link.key);
    let before = follow_to_the_end(&ready, &mut verifier).await;
    let summary = tokio::time::timeout(HANG_GUARD, task)
        .await
        .expect("hang guard")
        .unwrap()
        .expect("not cancelled")
        .unwrap();
    assert_eq!(summary.segments, 3);
    let last_seq = before.last().unwrap().manifest.seq;

    // Same key, same data directory.
    let (ready, shutdown, task) = start(config(dir.path(), 2)).await;
    assert_eq!(ready.link.key, *verifier.key());
    let after = follow_to_the_end(&ready, &mut verifier).await;
    // The same verifier accepts the new run: sequence numbers kept growing across the restart.
    assert!(after[0].manifest.seq > last_seq);
    // The first manifest re-serves the re-seeded window; new segments continue at 3.
    assert_eq!(
        after[0]
            .manifest
            .segments
            .iter()
            .map(|s| s.number)
            .collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    let end = &after.last().unwrap().manifest;
    assert_eq!(
        end.segments.iter().map(|s| s.number).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert!(
        end.segments[3].discontinuity,
        "the first segment after a restart starts a discontinuity"
    );
    assert!(!end.segments[4].discontinuity);
    // The re-seeded segments are really seeded: the publisher serves them to a swarm.
    let (viewer_dir, viewer) = viewer_swarm(dir.path()).await;
    let s = &end.segments[0];
    let torrent = SegmentTorrent::from_info(InfoDict::decode_strict(&s.info).unwrap(), vec![])
        .to_torrent_bytes();
    let t = viewer
        .download(
            &torrent,
            "00000000.ts",
            &viewer_dir,
            vec![ready.peer],
            vec![],
        )
        .await
        .unwrap();
    viewer.wait(&t, "downloaded", HANG_GUARD).await.unwrap();
    viewer.shutdown().await;
    assert_eq!(
        std::fs::read(viewer_dir.join("00000000.ts")).unwrap(),
        synth_bytes(3)[..s.size as usize]
    );
    stop(shutdown, task).await;
}

async fn metric(ready: &Ready, name: &str) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", ready.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("swarmcast_{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

/// Polls `/metrics` until `name` reaches `at_least` (bounded in count; each poll 50 ms apart).
async fn wait_metric(ready: &Ready, name: &str, at_least: u64) {
    for _ in 0..1200 {
        if metric(ready, name).await >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("hang guard: {name} never reached {at_least}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_leave_after_their_grace_period_and_http_serves_ranges_etags_and_mirrors() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 5);
    c.window = 2;
    c.grace = Some(Duration::from_millis(500));
    c.mirror_dir = Some(dir.path().join("mirror"));
    let (ready, shutdown, task) = start(c).await;
    let mut verifier = Verifier::new(ready.link.key);
    let manifests = follow_to_the_end(&ready, &mut verifier).await;
    let last = &manifests.last().unwrap().manifest;
    assert_eq!(
        last.segments.iter().map(|s| s.number).collect::<Vec<_>>(),
        vec![3, 4]
    );
    let client = reqwest::Client::new();
    let base = format!("http://{}", ready.http);

    // The mirror holds the manifest being served and the torrents still live.
    let served = client.get(format!("{base}/manifest")).send().await.unwrap();
    let etag = served.headers()["etag"].to_str().unwrap().to_owned();
    let served = served.bytes().await.unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("mirror/manifest")).unwrap(),
        served
    );
    assert!(dir.path().join("mirror/segments/00000004.torrent").exists());

    // ETag: an unchanged manifest is a 304.
    let again = client
        .get(format!("{base}/manifest"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    // Range requests on a live segment.
    let file = std::fs::read(ready.stream_dir.join("00000004.ts")).unwrap();
    let part = client
        .get(format!("{base}/segments/00000004.ts"))
        .header("range", "bytes=100-1099")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), &file[100..1100]);
    // A Range header that does not parse is ignored (RFC 9110, 14.2): the whole body, 200. Only
    // a range the body cannot satisfy is a 416.
    for garbage in ["bytes=oops", "pages=1-2", "bytes=5-1", "bytes"] {
        let whole = client
            .get(format!("{base}/segments/00000004.ts"))
            .header("range", garbage)
            .send()
            .await
            .unwrap();
        assert_eq!(whole.status(), 200, "range {garbage:?}");
        assert_eq!(whole.bytes().await.unwrap(), &file[..], "range {garbage:?}");
    }
    let past_the_end = format!("bytes={}-", file.len() + 10);
    let unsatisfiable = client
        .get(format!("{base}/segments/00000004.ts"))
        .header("range", &past_the_end)
        .send()
        .await
        .unwrap();
    assert_eq!(unsatisfiable.status(), 416);

    // Segments 0-2 left the window; after the grace period they are forgotten: 404, file deleted,
    // gone from the mirror. Only the two in the window stay served.
    for _ in 0..1200 {
        if metric(&ready, "served_segments").await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&ready, "served_segments").await, 2);
    for n in 0..3 {
        let r = client
            .get(format!("{base}/segments/{n:08}.ts"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "segment {n}");
        assert!(
            !ready.stream_dir.join(format!("{n:08}.ts")).exists(),
            "segment {n}'s file is still there"
        );
        assert!(!dir
            .path()
            .join(format!("mirror/segments/{n:08}.torrent"))
            .exists());
    }
    let events = swarmcast_metrics::read_events(&dir.path().join("publisher.jsonl")).unwrap();
    let removed = events
        .iter()
        .filter(|e| matches!(e.kind, swarmcast_metrics::Kind::Removed { .. }))
        .count();
    assert_eq!(removed, 3);
    // As each segment is forgotten, the manifest totals so far (not only at exit): one record
    // per segment, never decreasing, counting the document this test fetched above.
    let sent: Vec<(Option<u64>, u64, u64)> = events
        .iter()
        .filter_map(|e| match e.kind {
            swarmcast_metrics::Kind::ManifestsSent {
                http_responses,
                http_bytes,
                ..
            } => Some((e.seg, http_responses, http_bytes)),
            _ => None,
        })
        .collect();
    assert_eq!(
        sent.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![Some(0), Some(1), Some(2)],
        "{sent:?}"
    );
    assert!(sent[0].1 >= 1 && sent[0].2 > 0, "{sent:?}");
    assert!(
        sent.windows(2)
            .all(|w| w[0].1 <= w[1].1 && w[0].2 <= w[1].2),
        "{sent:?}"
    );
    stop(shutdown, task).await;
}

/// A full disk: new segments are dropped (their input read and counted), what was published
/// stays served whole, the status page names the cause, and once there is room again the
/// stream goes on, the first segment after the loss marked a discontinuity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_drops_new_segments_keeps_serving_the_published_and_recovers() {
    if not_root() {
        eprintln!("skipped: mounting a small tmpfs needs root (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=700k", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mounted.success(), "cannot mount a tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());
    // Room taken by something else, freed below.
    let ballast = small.join("ballast");
    std::fs::write(&ballast, vec![0u8; 300 * 1024]).unwrap();

    let mut c = config(dir.path(), 60);
    c.data_dir = small.clone();
    c.input = FeedInput::Synth {
        bitrate: Some(1_000_000),
        duration: Some(60 * 90_000),
    };
    c.keep_segments = true;
    let (ready, shutdown, task) = start(c).await;
    wait_metric(&ready, "input_failing", 1).await;

    // Still serving: the manifest verifies and every segment it lists is whole.
    let m = served_manifest(&ready).await;
    assert!(!m.segments.is_empty(), "no segment before the disk filled");
    let input = Synth::new(Some(1_000_000), 0).unwrap().take(60 * 90_000);
    let mut offset = 0;
    for s in &m.segments {
        let body = reqwest::get(format!("http://{}/segments/{:08}.ts", ready.http, s.number))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            body,
            &input[offset..offset + s.size as usize],
            "segment {}",
            s.number
        );
        offset += s.size as usize;
    }
    let status = reqwest::get(format!("http://{}/", ready.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        status.contains("Dropping input") && status.contains("the disk is full"),
        "{status}"
    );
    // Room again: segments are published again, numbered on from the last one listed.
    let last = m.segments.last().unwrap().number;
    std::fs::remove_file(&ballast).unwrap();
    wait_metric(&ready, "window_segments", m.segments.len() as u64 + 1).await;
    let after = served_manifest(&ready).await;
    // Numbers run on (the manifest verifies so); where media was lost, a discontinuity.
    assert!(after.segments.iter().any(|s| s.number > last));
    let jumps: Vec<_> = after
        .segments
        .windows(2)
        .filter(|w| w[0].media_start + w[0].duration != w[1].media_start)
        .map(|w| (w[1].number, w[1].discontinuity))
        .collect();
    assert!(!jumps.is_empty(), "no media lost between listed segments");
    assert!(jumps.iter().all(|(_, d)| *d), "{jumps:?}");
    assert!(metric(&ready, "input_dropped_segments_total").await >= 1);
    let summary = stop(shutdown, task).await;
    assert!(summary.degraded.is_none(), "{:?}", summary.degraded);
    assert!(summary.dropped_segments >= 1);
}

/// The manifest the publisher serves now, verified against its key.
async fn served_manifest(ready: &Ready) -> swarmcast_core::manifest::Manifest {
    let doc = reqwest::get(format!("http://{}/manifest", ready.http))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    swarmcast_core::manifest::verify(&doc, &ready.link.key)
        .unwrap()
        .manifest
}

fn not_root() -> bool {
    // `id -u` rather than libc: no unsafe code in this workspace.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() != "0")
        .unwrap_or(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let err = |c: PublishConfig| async move {
        run(c, Shutdown::default(), None)
            .await
            .unwrap_err()
            .to_string()
    };

    let mut c = config(dir.path(), 1);
    c.listen = "0.0.0.0:0".parse().unwrap();
    assert!(err(c).await.contains("pass --public-addr"));

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = config(dir.path(), 1);
    c.http = busy.local_addr().unwrap();
    let e = err(c).await;
    assert!(
        e.contains("cannot listen for HTTP") && e.contains(&busy.local_addr().unwrap().to_string()),
        "{e}"
    );

    let key = dir.path().join("open.key");
    std::fs::write(&key, [1u8; 32]).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let mut c = config(dir.path(), 1);
    c.key = key;
    let e = format!("{:?}", run(c, Shutdown::default(), None).await.unwrap_err());
    assert!(e.contains("Permissions"), "{e}");

    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let mut c = config(dir.path(), 1);
    c.data_dir = blocker.join("data");
    let e = err(c).await;
    assert!(e.contains("a-file/data") && e.contains("not usable"), "{e}");

    let mut c = config(dir.path(), 1);
    c.window = 0;
    assert!(err(c).await.contains("--window 0"));

    let mut c = config(dir.path(), 1);
    c.public_url = Some("mailto:someone@example.org".parse().unwrap());
    assert!(err(c).await.contains("expected an http or https base URL"));

    let mut c = config(dir.path(), 1);
    c.input = FeedInput::File {
        path: dir.path().join("missing.ts"),
        follow: None,
    };
    let e = err(c).await;
    assert!(
        e.contains("cannot read input") && e.contains("missing.ts"),
        "{e}"
    );
}

/// Runs a publisher of two segments with `seeder` on a runtime of its own, a viewer's HTTP
/// connection held open (idle, keep-alive) through the end; the tasks left alive on that runtime
/// once `run` has returned.
fn tasks_left_after_a_run(seeder: swarmcast_publisher::SeederKind) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 2);
    c.seeder = seeder;
    c.linger = Some(Duration::ZERO);
    let summary = runtime.block_on(async {
        let (ready, _shutdown, task) = start(c).await;
        // A keep-alive connection that asked for the status page and stays open, idle.
        let mut held = tokio::net::TcpStream::connect(ready.http).await.unwrap();
        held.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 12];
        held.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        let summary = tokio::time::timeout(HANG_GUARD, task)
            .await
            .expect("hang guard")
            .unwrap()
            .expect("not cancelled")
            .unwrap();
        // Held until the run has ended: the server cut the connection itself.
        drop(held);
        summary
    });
    assert_eq!(summary.segments, 2);
    // A task that has ended is released by the worker that ran it a moment later: a bounded
    // look, not a wait for anything to end.
    let metrics = runtime.metrics();
    for _ in 0..100 {
        if metrics.num_alive_tasks() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    metrics.num_alive_tasks()
}

#[test]
fn no_task_of_the_publisher_outlives_its_run() {
    // The HTTP accept loop and connections, NAT checks, the feed, hashing, state writes and the
    // wire seeder's accept loop, connections and reveal timers: all awaited before run returns.
    assert_eq!(
        tasks_left_after_a_run(swarmcast_publisher::SeederKind::Wire),
        0
    );
    // With a librqbit session, its tasks end with Session::stop too.
    assert_eq!(
        tasks_left_after_a_run(swarmcast_publisher::SeederKind::Librqbit),
        0
    );
}
