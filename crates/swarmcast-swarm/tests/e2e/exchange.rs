//! Manifests carried by the swarm, on loopback: the wire seeder answers a `want` from a client
//! that has only the stream key and a segment's info hash, pushes each new manifest to a
//! librqbit viewer it serves, that viewer spreads it to another, a forged document is refused
//! by type and spread to nobody, a viewer dials the peers it met for the next segment, and a
//! document too large for one message goes in parts.

use std::sync::Arc;
use std::time::Duration;

use swarmcast_core::gossip::{GossipConfig, Message, PART};
use swarmcast_core::{
    Manifest, ManifestError, SegmentEntry, SegmentTorrent, SignedManifest, StreamSecret,
};
use swarmcast_swarm::exchange::{fetch_manifest, Exchange, ExchangeEvent, FetchError};
use swarmcast_swarm::wire::manifests::ManifestHub;
use swarmcast_swarm::wire::{WireConfig, WireSeeder};
use swarmcast_swarm::{ExtensionSlot, Swarm, SwarmConfig};
use swarmcast_tasks::Tasks;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::wire::{info_hash, segment, HANG_GUARD};

fn doc(secret: &StreamSecret, seq: u64) -> Vec<u8> {
    doc_with(secret, seq, vec![])
}

/// What the publisher offers its hub: the manifest, verified.
fn signed(doc: &[u8], secret: &StreamSecret) -> SignedManifest {
    swarmcast_core::manifest::verify(doc, &secret.public()).unwrap()
}

/// A document of three parts: a window of ten segments of 160 pieces each (one-minute
/// segments at about 350 kbit/s).
fn big_doc(secret: &StreamSecret, seq: u64) -> Vec<u8> {
    window_doc(secret, seq, 0)
}

/// [`big_doc`]'s window starting at segment `first`.
fn window_doc(secret: &StreamSecret, seq: u64, first: u64) -> Vec<u8> {
    let len = 160 * 16_384;
    let data: Vec<u8> = (0..len).map(|i| (i * 13 + i / 509) as u8).collect();
    let t = SegmentTorrent::build(&data[..], len as u64, "x.ts", Some(16_384), vec![]).unwrap();
    let window = (first..first + 10)
        .map(|number| SegmentEntry {
            number,
            media_start: number * 180_000,
            duration: 180_000,
            size: len as u64,
            discontinuity: number == 0,
            published_ms: 1_700_000_000_000,
            info_hash: t.info_hash(),
            info: t.info_bytes().to_vec(),
        })
        .collect();
    let d = doc_with(secret, seq, window);
    assert!(d.len() > 2 * PART, "{} bytes", d.len());
    d
}

fn doc_with(secret: &StreamSecret, seq: u64, segments: Vec<SegmentEntry>) -> Vec<u8> {
    Manifest {
        key: secret.public(),
        seq,
        issued_ms: 1_700_000_000_000 + seq,
        target_duration: 180_000,
        peers: vec![],
        trackers: vec![],
        end_of_stream: false,
        segments,
    }
    .sign(secret)
    .unwrap()
    .bytes
}

async fn viewer_with_exchange(
    dir: &std::path::Path,
    secret: &StreamSecret,
    tasks: &Tasks,
) -> (Swarm, Exchange, mpsc::Receiver<ExchangeEvent>) {
    std::fs::create_dir_all(dir).unwrap();
    let (tx, rx) = mpsc::channel(16);
    let (exchange, handler) = Exchange::start(secret.public(), GossipConfig::viewer(), tx, tasks);
    let swarm = Swarm::start(SwarmConfig {
        default_dir: dir.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        upload_limit: None,
        download_limit: None,
        announce: false,
        super_seed: None,
        peer_limit: None,
        punch_ports: None,
        extension: Some(ExtensionSlot(handler)),
        dht_bootstrap: None,
    })
    .await
    .unwrap();
    (swarm, exchange, rx)
}

/// The next manifest the exchange reports (refusals are returned as errors).
async fn next_manifest(rx: &mut mpsc::Receiver<ExchangeEvent>) -> Result<u64, ManifestError> {
    match tokio::time::timeout(HANG_GUARD, rx.recv()).await {
        Ok(Some(ExchangeEvent::Manifest { manifest, .. })) => Ok(manifest.manifest.seq),
        Ok(Some(ExchangeEvent::Refused { error, .. })) => Err(error),
        other => panic!("no report from the exchange: {other:?}"),
    }
}

/// Takes the exchange's reports until it reports manifest `want` (each one before it older, none
/// refused), bounded by the hang guard of each report.
async fn until(rx: &mut mpsc::Receiver<ExchangeEvent>, want: u64) {
    for _ in 0..64 {
        let seq = next_manifest(rx).await.unwrap();
        assert!(seq <= want, "{seq} is newer than {want}");
        if seq == want {
            return;
        }
    }
    panic!("manifest {want} never reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_go_from_the_seeder_to_a_viewer_to_another_and_forgeries_stop() {
    let dir = tempfile::tempdir().unwrap();
    let secret = StreamSecret::from_seed(&[4; 32]);
    let (data, torrent) = segment(dir.path(), 200_000);
    let hub = ManifestHub::new(GossipConfig::publisher());
    let w = WireSeeder::start(WireConfig {
        manifests: Some(hub.clone()),
        ..WireConfig::new("127.0.0.1:0".parse().unwrap())
    })
    .await
    .unwrap();
    w.seed(&torrent, "00000001.ts", dir.path()).await.unwrap();
    let ih = info_hash(&torrent);
    hub.offer(&signed(&doc(&secret, 1), &secret));

    // A client with only the key and the info hash asks the seeder.
    let got = fetch_manifest(w.listen_addr(), ih, [1; 20], 1, HANG_GUARD)
        .await
        .unwrap();
    assert_eq!(got, doc(&secret, 1));

    // Viewer A downloads from the seeder; once connected, the next manifest is pushed to it.
    let tasks = Tasks::new("exchange test");
    let (a, a_ex, mut a_rx) = viewer_with_exchange(&dir.path().join("a"), &secret, &tasks).await;
    let at = a
        .download(
            &torrent,
            "00000001.ts",
            &dir.path().join("a"),
            vec![w.listen_addr()],
            vec![],
        )
        .await
        .unwrap();
    a.wait(&at, "downloaded", HANG_GUARD).await.unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("a/00000001.ts")).unwrap(),
        data
    );
    // The seeder's connection may take a moment to see A's extended handshake: offer until A
    // reports it (each offer is a newer manifest), bounded.
    // Every offer is a newer manifest; the reports are drained until one is in (a push that
    // arrives late is taken at the next turn), bounded.
    let mut seq = 1;
    let first = loop {
        seq += 1;
        assert!(seq < 50, "the seeder never pushed a manifest to the viewer");
        hub.offer(&signed(&doc(&secret, seq), &secret));
        if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(300), a_rx.recv()).await {
            break ev;
        }
    };
    let ExchangeEvent::Manifest { manifest, from, .. } = first else {
        panic!("refused: {first:?}");
    };
    // One of the manifests offered (a late push of an earlier one is as good).
    assert!(
        (2..=seq).contains(&manifest.manifest.seq),
        "{}",
        manifest.manifest.seq
    );
    let seq = manifest.manifest.seq.max(seq);
    assert_eq!(from.port(), w.listen_addr().port(), "from the seeder");
    let (stats, malformed) = hub.stats();
    assert_eq!(malformed, 0);
    assert!(stats.manifests_sent >= 2, "{stats:?}");

    // Viewer B downloads from A only; A then gets a newer manifest from elsewhere (as if by
    // HTTP) and spreads it to B.
    let (b, b_ex, mut b_rx) = viewer_with_exchange(&dir.path().join("b"), &secret, &tasks).await;
    let bt = b
        .download(
            &torrent,
            "00000001.ts",
            &dir.path().join("b"),
            vec![a.listen_addr()],
            vec![],
        )
        .await
        .unwrap();
    b.wait(&bt, "downloaded", HANG_GUARD).await.unwrap();
    // On meeting B, A announced what it holds, and B, holding nothing, asked for it at once.
    until(&mut b_rx, seq).await;
    // A is told the seeder is the stream's source (as a viewer is, from the manifest): of its
    // two peers, it pushes the next manifest to B alone, and tells the seeder with a `have`.
    a_ex.set_sources(vec![w.listen_addr()]);
    let before = a_ex.stats();
    let offered = seq + 100;
    a_ex.offer(Arc::from(doc(&secret, offered)));
    until(&mut b_rx, offered).await;
    let after = a_ex.stats();
    assert_eq!(
        (
            after.manifests_sent - before.manifests_sent,
            after.haves_sent - before.haves_sent
        ),
        (1, 1),
        "{before:?} then {after:?}"
    );

    // Each knows where the other listens, whoever dialled: B dialled A, and A has B's listen
    // port from B's extended handshake (BEP 10's `p`), not the connection's source port. The
    // seeder, a source, is not listed.
    assert_eq!(a_ex.live_peers(), vec![b.listen_addr()]);
    assert_eq!(b_ex.live_peers(), vec![a.listen_addr()]);
    // The next segment, held by A alone: B dials only the peers it carries, with no DHT
    // lookup, and gets it whole.
    let (a2, b2) = (dir.path().join("a2"), dir.path().join("b2"));
    std::fs::create_dir_all(&a2).unwrap();
    let (data2, torrent2) = segment(&a2, 150_000);
    a.seed(&torrent2, "00000001.ts", &a2, HANG_GUARD)
        .await
        .unwrap();
    let how = swarmcast_swarm::Download {
        initial_peers: b_ex.live_peers(),
        skip_dht: true,
        ..Default::default()
    };
    let bt2 = b
        .download_with(&torrent2, "00000001.ts", &b2, how)
        .await
        .unwrap();
    b.wait(&bt2, "downloaded", HANG_GUARD).await.unwrap();
    assert_eq!(std::fs::read(b2.join("00000001.ts")).unwrap(), data2);

    // A forger connects to B and sends a document signed by another key, then a genuine but
    // older one: both refused by type, neither reported as a manifest.
    let mut raw = raw_peer(b.listen_addr(), ih, b"d1:md18:swarmcast_manifesti9eee").await;
    let forged = doc(&StreamSecret::from_seed(&[5; 32]), offered + 10);
    let replay = doc(&secret, 2);
    for (seq, d) in [(offered + 10, forged), (offered + 11, replay)] {
        send_manifest(&mut raw, seq, d).await;
    }
    assert!(matches!(
        next_manifest(&mut b_rx).await,
        Err(ManifestError::WrongStream { .. } | ManifestError::BadSignature)
    ));
    assert!(matches!(
        next_manifest(&mut b_rx).await,
        Err(ManifestError::StaleSequence { .. })
    ));
    // More forgeries, up to MAX_REFUSALS in all: each refused and reported; then the forger is
    // ignored: even a genuine newer manifest from it is neither taken nor reported.
    let more = swarmcast_swarm::exchange::MAX_REFUSALS as u64 - 2;
    for i in 0..more {
        let seq = offered + 12 + i;
        send_manifest(&mut raw, seq, doc(&StreamSecret::from_seed(&[5; 32]), seq)).await;
        assert!(matches!(
            next_manifest(&mut b_rx).await,
            Err(ManifestError::WrongStream { .. } | ManifestError::BadSignature)
        ));
    }
    send_manifest(&mut raw, offered + 19, doc(&secret, offered + 19)).await;
    let t0 = tokio::time::Instant::now();
    while b_ex.messages_ignored() == 0 {
        assert!(
            t0.elapsed() < HANG_GUARD,
            "the forger's message was not ignored"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        matches!(b_rx.try_recv(), Err(mpsc::error::TryRecvError::Empty)),
        "nothing reported from the forger once ignored"
    );

    // A document of three parts: from A to B (librqbit both ends), and from the wire seeder to
    // a client with only the key.
    let big = big_doc(&secret, offered + 20);
    a_ex.offer(Arc::from(big.clone()));
    match tokio::time::timeout(HANG_GUARD, b_rx.recv()).await {
        Ok(Some(ExchangeEvent::Manifest {
            manifest, bytes, ..
        })) => {
            assert_eq!(manifest.bytes, big);
            assert!(
                bytes as usize > big.len(),
                "{bytes} bytes for all the parts"
            );
        }
        other => panic!("the large document did not come: {other:?}"),
    }
    // The next one (the window moved by a segment) goes from A to B as a delta: B held the one
    // it applies to.
    let next = window_doc(&secret, offered + 21, 1);
    a_ex.offer(Arc::from(next.clone()));
    match tokio::time::timeout(HANG_GUARD, b_rx.recv()).await {
        Ok(Some(ExchangeEvent::Manifest {
            manifest, bytes, ..
        })) => {
            assert_eq!(manifest.bytes, next, "rebuilt byte for byte");
            assert!(
                (bytes as usize) < next.len() / 4,
                "{bytes} bytes for a document of {}",
                next.len()
            );
        }
        other => panic!("the delta did not come: {other:?}"),
    }
    assert!(a_ex.stats().deltas_sent >= 1, "{:?}", a_ex.stats());
    let big = big_doc(&secret, seq + 1_000);
    hub.offer(&signed(&big, &secret));
    let got = fetch_manifest(w.listen_addr(), ih, [2; 20], seq + 1_000, HANG_GUARD)
        .await
        .unwrap();
    assert_eq!(got, big);
    tasks.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
    w.shutdown().await;
}

/// A raw BitTorrent peer (peer id 9...) connected to `addr` for torrent `ih`: its handshake and
/// the extended handshake `extended` sent, the other side's handshake read.
async fn raw_peer(
    addr: std::net::SocketAddr,
    ih: [u8; 20],
    extended: &[u8],
) -> tokio::net::TcpStream {
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut hs = [0u8; 68];
    let n = librqbit_peer_protocol::Handshake::new(
        librqbit_core::hash_id::Id20::new(ih),
        librqbit_core::hash_id::Id20::new([9; 20]),
    )
    .serialize_unchecked_len(&mut hs);
    let mut hello = hs[..n].to_vec();
    hello.extend_from_slice(&frame(0, extended));
    raw.write_all(&hello).await.unwrap();
    let mut theirs = [0u8; 68];
    raw.read_exact(&mut theirs).await.unwrap();
    raw
}

/// Writes a `manifest` message of the exchange, framed as the peer's extension (id 9), on a
/// raw BitTorrent connection.
async fn send_manifest(raw: &mut tokio::net::TcpStream, seq: u64, doc: Vec<u8>) {
    let m = Message::Manifest {
        seq,
        doc: doc.into(),
    };
    raw.write_all(&frame(
        librqbit_peer_protocol::MY_EXTENDED_SWARMCAST_MANIFEST,
        &m.encode(),
    ))
    .await
    .unwrap();
}

fn frame(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    swarmcast_swarm::wire::conn::extended_message(&mut out, id, payload);
    out
}

/// A peer that never completes the TCP handshake (here a listener whose accept queue is full, so
/// the kernel drops further SYNs, as a NAT drops them for an address nobody can dial) is given
/// up on after `FETCH_CONNECT_WAIT`, with its own error, not after the fetch's whole wait.
#[tokio::test]
async fn a_peer_that_never_answers_the_connection_is_given_up_on_after_the_connect_wait() {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    listener.bind(&any.into()).unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    // Nobody accepts: connections complete until the queue is full and one is not answered.
    let mut held = Vec::new();
    let full = (0..8).any(|_| {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(1500)) {
            Ok(s) => {
                held.push(s);
                false
            }
            Err(_) => true,
        }
    });
    assert!(full, "the accept queue never filled");
    let got = fetch_manifest(addr, [1; 20], [2; 20], 1, HANG_GUARD).await;
    assert!(
        matches!(got, Err(FetchError::ConnectTimeout { peer, .. }) if peer == addr),
        "{got:?}"
    );
}

/// A viewer that a peer sees at an address its host lacks (BEP 10 `yourip`: here 203.0.113.7,
/// a documentation address no test host has) knows it is behind a NAT, and once its exchange is
/// told, its peers get `{"nat": 1}` on the exchange (docs/manifest.md, "Peers behind NAT
/// first"). On loopback, seen at 127.0.0.1, it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_seen_at_an_address_its_host_lacks_is_behind_nat_and_tells_its_peers() {
    let dir = tempfile::tempdir().unwrap();
    let secret = StreamSecret::from_seed(&[3; 32]);
    let tasks = Tasks::new("test");
    let (b, b_ex, _b_rx) = viewer_with_exchange(&dir.path().join("b"), &secret, &tasks).await;
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let (_, torrent) = segment(&src, 50_000);
    let ih = info_hash(&torrent);
    b.seed(&torrent, "00000001.ts", &src, HANG_GUARD)
        .await
        .unwrap();
    assert_eq!(b.behind_nat(), None, "no peer has said where it sees B");

    // `m` names the exchange as our extension 9; `yourip` is where we see B.
    let mut raw = raw_peer(
        b.listen_addr(),
        ih,
        b"d1:md18:swarmcast_manifesti9ee6:yourip4:\xcb\x00\x71\x07e",
    )
    .await;
    let t0 = tokio::time::Instant::now();
    let seen = loop {
        if let Some(at) = b.behind_nat() {
            break at;
        }
        assert!(t0.elapsed() < HANG_GUARD, "B never saw itself behind NAT");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(seen.ip(), std::net::IpAddr::from([203, 0, 113, 7]));

    b_ex.set_behind_nat(true);
    // B's messages to us, until the exchange's `nat` (extended message 20, our id 9).
    let told = tokio::time::timeout(HANG_GUARD, async {
        for _ in 0..1_000 {
            let mut len = [0u8; 4];
            raw.read_exact(&mut len).await.unwrap();
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            raw.read_exact(&mut body).await.unwrap();
            if body.len() > 2 && body[0] == 20 && body[1] == 9 {
                return Message::decode(&body[2..]).unwrap();
            }
        }
        panic!("no exchange message in 1,000 messages");
    })
    .await
    .expect("B never told us");
    assert_eq!(told, Message::BehindNat(true));
    tasks.shutdown().await;
    b.shutdown().await;
}
