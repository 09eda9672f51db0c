use super::*;
use crate::tracker::NatCheck;
use percent_encoding::{percent_encode, NON_ALPHANUMERIC};
use tokio_util::sync::CancellationToken;

fn compact(bytes: &[u8]) -> Vec<SocketAddr> {
    let v: serde_bencode::value::Value = serde_bencode::from_bytes(bytes).unwrap();
    let serde_bencode::value::Value::Dict(d) = v else {
        panic!("not a dict")
    };
    let Some(serde_bencode::value::Value::Bytes(b)) = d.get(&b"peers"[..]) else {
        panic!("no compact peers: {d:?}")
    };
    b.chunks(6)
        .map(|c| SocketAddr::from(([c[0], c[1], c[2], c[3]], u16::from_be_bytes([c[4], c[5]]))))
        .collect()
}

/// Serves `shared` on a loopback port until `stop` is cancelled.
async fn serve(
    shared: Arc<Shared>,
    stop: &CancellationToken,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<Option<std::io::Result<()>>>,
) {
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = http.local_addr().unwrap();
    let app = router(shared).into_make_service_with_connect_info::<SocketAddr>();
    let stop = stop.clone();
    let server = swarmcast_tasks::Tasks::new("test").spawn("http", async move {
        axum::serve(http, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    (addr, server)
}

#[test]
fn fallbacks_are_limited_only_while_the_swarm_carries_the_stream() {
    // One slot, the swarm uploading 1 s ago: the first body goes, a second is refused.
    assert!(admit_fallback(0, 1, Some(9_000), 10_000));
    assert!(!admit_fallback(1, 1, Some(9_000), 10_000));
    assert!(admit_fallback(1, 2, Some(9_000), 10_000));
    // The swarm silent for SWARM_ACTIVE_MS, or never uploading (the HTTP baseline): no limit.
    assert!(!admit_fallback(
        5,
        1,
        Some(10_000 - SWARM_ACTIVE_MS + 1),
        10_000
    ));
    assert!(admit_fallback(5, 1, Some(10_000 - SWARM_ACTIVE_MS), 10_000));
    assert!(admit_fallback(5, 1, None, 10_000));
    // 0 slots: no limit.
    assert!(admit_fallback(5, 0, Some(10_000), 10_000));
}

#[tokio::test]
async fn a_second_fallback_is_refused_while_one_is_sent_and_the_swarm_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000007.ts");
    let data: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let mut shared = Shared::new("link".into(), None);
    // 32 KiB/s: the body takes about two seconds, so it is in flight while we ask again.
    shared.http_limiter = ByteLimiter::paced(32 * 1024).map(Arc::new);
    shared.fallback_slots = 1;
    // The swarm counts as uploading for the whole test, however slow the machine: its last
    // upload is put in the future of the server's clock.
    shared
        .swarm_active_ms
        .store(shared.now_ms() + 3_600_000, Ordering::Relaxed);
    shared.segments.write().unwrap().insert(
        7,
        Served {
            path,
            torrent: Bytes::new(),
            info_hash: InfoHash([7; 20]),
            size: data.len() as u64,
            in_window: true,
            http_bytes: Arc::default(),
        },
    );
    let shared = Arc::new(shared);
    let stop = CancellationToken::new();
    let (addr, server) = serve(shared.clone(), &stop).await;
    let url = format!("http://{addr}/segments/00000007.ts");
    let client = reqwest::Client::new();
    // The first: its headers are in, its body is still coming.
    let first = client.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let second = client.get(&url).send().await.unwrap();
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");
    let why = second.text().await.unwrap();
    assert!(why.contains("at most 1 at once"), "{why}");
    assert_eq!(shared.counters.segment_refused.load(Ordering::Relaxed), 1);
    // The first body arrives whole; then the slot is free again.
    assert_eq!(first.bytes().await.unwrap(), data);
    let third = client.get(&url).send().await.unwrap();
    assert_eq!(third.status(), 200);
    assert_eq!(third.bytes().await.unwrap(), data);
    // A swarm that never uploaded (the HTTP baseline): no limit.
    shared.swarm_active_ms.store(u64::MAX, Ordering::Relaxed);
    let a = client.get(&url).send().await.unwrap();
    let b = client.get(&url).send().await.unwrap();
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    drop((a, b));
    stop.cancel();
    server.await.unwrap().expect("not cancelled").unwrap();
}

#[tokio::test]
async fn the_tracker_lists_a_peer_once_it_connected_back_and_never_a_closed_port() {
    let ih = [21u8; 20];
    let publisher: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let mut tracker = Tracker::new(10, 1).with_nat_check(NatCheck::default());
    tracker.add_torrent(ih, Some(publisher));
    let stop = CancellationToken::new();
    let mut shared = Shared::new("link".into(), Some(tracker));
    shared.nat_checker = Some(NatChecker::new(
        crate::natcheck::DEFAULT_TIMEOUT,
        swarmcast_tasks::Tasks::with_token("nat-check", stop.child_token()),
    ));
    let shared = Arc::new(shared);
    let (http_addr, server) = serve(shared.clone(), &stop).await;

    // A viewer that listens (the kernel completes the handshake), and one that does not.
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open_addr = open.local_addr().unwrap();
    let closed_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = reqwest::Client::new();
    let announce = |id: u8, port: u16| {
        let url = format!(
            "http://{http_addr}/announce?info_hash={}&peer_id={}&port={port}&left=10&compact=1",
            percent_encode(&ih, NON_ALPHANUMERIC),
            percent_encode(&[id; 20], NON_ALPHANUMERIC)
        );
        let client = client.clone();
        async move { compact(&client.get(url).send().await.unwrap().bytes().await.unwrap()) }
    };
    assert_eq!(announce(1, open_addr.port()).await, vec![publisher]);
    // Viewer 1 may be listed here already: a check on loopback takes well under a millisecond.
    let peers = announce(2, closed_addr.port()).await;
    assert_eq!(peers[0], publisher);
    assert!(peers.len() <= 2 && !peers.contains(&closed_addr));

    // A third viewer re-announcing (as librqbit does every `min interval`) soon sees the one
    // that listens, and never the other.
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let peers = announce(3, 1).await;
            assert!(!peers.contains(&closed_addr), "a closed port was listed");
            if peers == vec![publisher, open_addr] {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(found.is_ok(), "the listening viewer was never listed");
    // The closed port's verdict comes too; it still gets peer lists.
    tokio::time::timeout(Duration::from_secs(10), async {
        while shared
            .tracker
            .as_ref()
            .unwrap()
            .lock()
            .unwrap()
            .counters()
            .nat_unreachable
            == 0
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("no verdict for the closed port");
    assert_eq!(
        announce(2, closed_addr.port()).await,
        vec![publisher, open_addr]
    );
    let metrics = client
        .get(format!("http://{http_addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Three viewers: 1 and 2, and 3 (port 1, closed on loopback).
    assert!(
        metrics.contains("swarmcast_tracker_nat_checks_total 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("swarmcast_tracker_nat_unreachable_total "),
        "{metrics}"
    );
    stop.cancel();
    server.await.unwrap().expect("not cancelled").unwrap();
}

#[test]
fn the_upload_rate_is_the_counters_growth_over_the_last_samples() {
    let mut m = RateMeter::new(5_000);
    // Nothing, or one sample: no rate.
    assert_eq!(m.rate(0), None);
    m.sample(1_000, 100);
    assert_eq!(m.rate(1_000), None);
    // 250 ms apart, 25,000 bytes each: 100,000 bytes/s.
    for i in 1..=8u64 {
        m.sample(1_000 + i * 250, 100 + i * 25_000);
    }
    assert_eq!(m.rate(3_000), Some(100_000));
    // A time that does not grow is ignored.
    m.sample(3_000, 0);
    assert_eq!(m.rate(3_000), Some(100_000));
    // The counter stops: after the window only flat samples remain, and the rate is 0.
    for i in 1..=24u64 {
        m.sample(3_000 + i * 250, 200_100);
    }
    assert_eq!(m.rate(9_000), Some(0));
    // Half the window at 100 kB/s after a flat half: the average over the window.
    for i in 1..=10u64 {
        m.sample(9_000 + i * 250, 200_100 + i * 25_000);
    }
    assert_eq!(m.rate(11_500), Some(250_000 * 1_000 / 5_000));
    // Not sampled for longer than the window: unknown again.
    assert_eq!(m.rate(30_000), None);
    // A counter that goes down (never, but) counts as nothing sent.
    let mut m = RateMeter::new(5_000);
    m.sample(0, 1_000);
    m.sample(1_000, 10);
    assert_eq!(m.rate(1_000), Some(0));
}

/// A manifest of segments 3 and 4, signed by a test key.
fn signed_window() -> Arc<SignedManifest> {
    let secret = swarmcast_core::StreamSecret::from_seed(&[9; 32]);
    let config = swarmcast_core::WindowConfig {
        capacity: 2,
        target_duration: 180_000,
        peers: vec!["127.0.0.1:6881".into()],
        trackers: vec![],
    };
    let mut window = swarmcast_core::Window::new(secret, config, 1).unwrap();
    for number in 3..5u64 {
        let bytes = vec![number as u8; 40_000];
        let t = swarmcast_core::SegmentTorrent::build(
            &bytes[..],
            bytes.len() as u64,
            &format!("{number:08}.ts"),
            None,
            vec![],
        )
        .unwrap();
        window
            .push(swarmcast_core::manifest::SegmentEntry {
                number,
                media_start: number * 180_000,
                duration: 180_000,
                size: bytes.len() as u64,
                discontinuity: false,
                published_ms: 1_700_000_000_000,
                info_hash: t.info_hash(),
                info: t.info_bytes().to_vec(),
            })
            .unwrap();
    }
    Arc::new(window.sign(1_700_000_000_000).unwrap())
}

/// `GET /status.json` has the documented fields with the counters' values, peers from the
/// embedded tracker ("unknown" without it); `GET /` renders the same server-side, with the
/// table, the totals and the script that polls `status.json`.
#[tokio::test]
async fn the_dashboard_serves_its_json_and_a_page_that_polls_it() {
    let signed = signed_window();
    let mut tracker = Tracker::new(10, 5);
    for s in &signed.manifest.segments {
        tracker.add_torrent(s.info_hash.0, None);
    }
    // A viewer in segment 4's swarm.
    let ih4 = signed.manifest.segments[1].info_hash.0;
    let query = format!(
        "info_hash={}&peer_id={}&port=7000&left=10&compact=1",
        percent_encode(&ih4, NON_ALPHANUMERIC),
        percent_encode(&[1; 20], NON_ALPHANUMERIC)
    );
    tracker.handle(&query, "127.0.0.5".parse().unwrap(), 0);
    let shared = Arc::new(Shared::new("swarmcast:?pk=<x>".into(), Some(tracker)));
    shared.serve_manifest(signed.clone());
    let c = &shared.counters;
    c.manifest_bytes.store(1_000, Ordering::Relaxed);
    c.torrent_bytes.store(200, Ordering::Relaxed);
    c.segment_bytes.store(30_000, Ordering::Relaxed);
    // Two samples of the counters, 1 s apart and a minute ahead of the server's clock, so both
    // are within the window whenever the request comes on a loaded machine (the window's end is
    // the request's time; it reaches back 5 s): 50,000 bytes/s for the swarm, nothing more over
    // HTTP.
    let t0 = shared.now_ms() + 60_000;
    shared.uploaded_bytes.store(100_000, Ordering::Relaxed);
    shared.sample_rates(t0);
    shared.uploaded_bytes.store(150_000, Ordering::Relaxed);
    shared.sample_rates(t0 + 1_000);

    let stop = CancellationToken::new();
    let (addr, server) = serve(shared.clone(), &stop).await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{addr}/status.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(json["link"], "swarmcast:?pk=<x>");
    assert_eq!(json["manifest_seq"], signed.manifest.seq);
    assert_eq!(json["end_of_stream"], false);
    assert_eq!(json["embedded_tracker"], true);
    assert!(json["not_taking_segments"].is_null() && json["dropping_input"].is_null());
    assert_eq!(json["swarm_bytes_sent"], 150_000);
    assert_eq!(json["http_bytes_sent"], 31_200);
    assert_eq!(json["http_segment_bytes_sent"], 30_000);
    assert_eq!(json["swarm_upload_rate"], 50_000);
    assert_eq!(json["http_upload_rate"], 0);
    let segments = json["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2);
    assert_eq!(segments[0]["number"], 3);
    assert_eq!(segments[0]["peers"], 0);
    assert_eq!(segments[1]["number"], 4);
    assert_eq!(segments[1]["peers"], 1);
    assert_eq!(segments[1]["bytes"], 40_000);
    assert_eq!(segments[1]["start_s"], 8.0);
    assert_eq!(segments[1]["duration_s"], 2.0);
    assert_eq!(
        segments[1]["info_hash"],
        signed.manifest.segments[1].info_hash.to_string()
    );

    let page = client
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<script>") && page.contains("fetch(\"status.json\""),
        "{page}"
    );
    assert!(page.contains(STATUS_SCRIPT));
    assert!(page.contains("<table id=segments>") && page.contains("<tbody id=segment_rows>"));
    // Rendered on the server: the rows, the totals, the link escaped.
    let hash4 = signed.manifest.segments[1].info_hash.to_string();
    assert!(
        page.contains(&format!(
            "<a href=segments/00000004.torrent>{hash4}</a><td>1<td>0</tr>"
        )),
        "{page}"
    );
    assert!(
        page.contains("<td id=swarm_bytes_sent>150000</tr>"),
        "{page}"
    );
    assert!(
        page.contains("<td id=swarm_upload_rate>50000</tr>"),
        "{page}"
    );
    assert!(page.contains("<td id=http_bytes_sent>31200"), "{page}");
    assert!(page.contains("swarmcast:?pk=&lt;x&gt;"), "{page}");
    assert!(!page.contains("P2P") && !page.contains("from peers"));
    stop.cancel();
    server.await.unwrap().expect("not cancelled").unwrap();

    // Without the embedded tracker the peers are unknown: null, and "-" on the page.
    let shared = Shared::new("link".into(), None);
    shared.serve_manifest(signed);
    let status = shared.status();
    assert!(!status.embedded_tracker);
    assert!(status.segments.iter().all(|s| s.peers.is_none()));
    assert_eq!(status.swarm_upload_rate, None);
    let page = render_status(&status);
    assert!(page.contains("</a><td>-<td>0</tr>"), "{page}");
    assert!(serde_json::to_value(&status).unwrap()["segments"][0]["peers"].is_null());
}
