//! The wire seeder on loopback: librqbit sessions download from it byte for byte, super-seeding
//! sends each piece once to two downloaders that share the rest, and a raw client sees it refuse
//! what it does not seed, close on a bad request and honour Cancel. nextest runs this binary one
//! test at a time; waits are bounded by hang guards, never pass criteria.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

mod client;

use librqbit_peer_protocol::{Message, Request};
use swarmcast_core::SegmentTorrent;
use swarmcast_swarm::wire::{WireConfig, WireSeeder, WireTorrent};
use swarmcast_swarm::Swarm;
use swarmcast_tasks::Tasks;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) use client::{info_hash, next_but_keepalives, reaches, Raw};

pub(crate) const HANG_GUARD: Duration = Duration::from_secs(60);
const PIECE: u64 = 32 * 1024;

/// A segment of `size` bytes in `dir`, and its torrent (32 KiB pieces).
pub(crate) fn segment(dir: &Path, size: usize) -> (Vec<u8>, Vec<u8>) {
    let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(dir.join("00000001.ts"), &data).unwrap();
    let t =
        SegmentTorrent::build(&data[..], size as u64, "00000001.ts", Some(PIECE), vec![]).unwrap();
    (data, t.to_torrent_bytes())
}

pub(crate) async fn seeder(super_seed: Option<Duration>, upload_limit: Option<u32>) -> WireSeeder {
    seeder_late(
        super_seed,
        upload_limit,
        Some(swarmcast_swarm::wire::LATE_AFTER),
    )
    .await
}

async fn seeder_late(
    super_seed: Option<Duration>,
    upload_limit: Option<u32>,
    late_after: Option<Duration>,
) -> WireSeeder {
    WireSeeder::start(WireConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upload_limit: upload_limit
            .and_then(swarmcast_swarm::ratelimit::ByteLimiter::like_librqbit)
            .map(std::sync::Arc::new),
        super_seed,
        late_after,
        ..WireConfig::new("127.0.0.1:0".parse().unwrap())
    })
    .await
    .unwrap()
}

/// The seeder's byte count once it reached `at_least`: the count follows each socket write, so
/// a downloader can have the bytes a moment before the count does (bounded by the hang guard).
async fn settled(t: &WireTorrent, at_least: u64) -> u64 {
    let start = std::time::Instant::now();
    while t.uploaded() < at_least && start.elapsed() < HANG_GUARD {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t.uploaded()
}

async fn viewer(dir: &Path) -> Swarm {
    crate::session(dir, None).await
}

/// A lone librqbit viewer in `dir/viewer` downloads the segment from `seed`; its file's bytes.
async fn download_alone(dir: &Path, torrent: &[u8], seed: std::net::SocketAddr) -> Vec<u8> {
    let vdir = dir.join("viewer");
    let v = viewer(&vdir).await;
    let vt = v
        .download(torrent, "00000001.ts", &vdir, vec![seed], vec![])
        .await
        .unwrap();
    v.wait(&vt, "downloaded", HANG_GUARD).await.unwrap();
    v.shutdown().await;
    std::fs::read(vdir.join("00000001.ts")).unwrap()
}

async fn lone_viewer_downloads(super_seed: Option<Duration>) {
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent) = segment(dir.path(), 300_000);
    let w = seeder(super_seed, None).await;
    let t = w.seed(&torrent, "00000001.ts", dir.path()).await.unwrap();
    assert_eq!(
        download_alone(dir.path(), &torrent, w.listen_addr()).await,
        data
    );
    // One downloader, one source: every byte once, counted exactly.
    assert_eq!(settled(&t, data.len() as u64).await, data.len() as u64);
    assert_eq!(
        w.counters()
            .refused
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(
        w.counters()
            .violations
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_librqbit_session_downloads_byte_for_byte_from_the_super_seeding_wire_seeder() {
    lone_viewer_downloads(Some(Duration::from_secs(600))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_librqbit_session_downloads_byte_for_byte_from_the_plain_wire_seeder() {
    lone_viewer_downloads(None).await;
}

/// Two downloaders that know each other: with super-seeding each piece leaves the seeder for one
/// of them, and each gets pieces from the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn super_seeding_sends_pieces_to_one_downloader_and_they_share_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent) = segment(dir.path(), 1_000_000);
    // A cap slow enough that the downloaders trade pieces long before the seeder could send
    // everything twice; a reveal that never comes during the test.
    let w = seeder(Some(Duration::from_secs(600)), Some(200_000)).await;
    let t = w.seed(&torrent, "00000001.ts", dir.path()).await.unwrap();
    let (adir, bdir) = (dir.path().join("a"), dir.path().join("b"));
    let a = viewer(&adir).await;
    let b = viewer(&bdir).await;
    let at = a
        .download(
            &torrent,
            "00000001.ts",
            &adir,
            vec![w.listen_addr()],
            vec![],
        )
        .await
        .unwrap();
    let bt = b
        .download(
            &torrent,
            "00000001.ts",
            &bdir,
            vec![w.listen_addr(), a.listen_addr()],
            vec![],
        )
        .await
        .unwrap();
    a.wait(&at, "downloaded", HANG_GUARD).await.unwrap();
    b.wait(&bt, "downloaded", HANG_GUARD).await.unwrap();
    assert_eq!(std::fs::read(adir.join("00000001.ts")).unwrap(), data);
    assert_eq!(std::fs::read(bdir.join("00000001.ts")).unwrap(), data);
    let size = data.len() as u64;
    assert!(
        t.uploaded() < size * 3 / 2,
        "the seeder sent {} bytes of a {size}-byte segment to two downloaders",
        t.uploaded()
    );
    let from_other = |s: &Swarm, t, seeder: std::net::SocketAddr| -> u64 {
        s.peer_bytes(t)
            .iter()
            .filter(|p| p.addr != seeder.to_string())
            .map(|p| p.fetched)
            .sum()
    };
    assert!(
        from_other(&a, &at, w.listen_addr()) > 0,
        "a got nothing from b"
    );
    assert!(
        from_other(&b, &bt, w.listen_addr()) > 0,
        "b got nothing from a"
    );
    a.shutdown().await;
    b.shutdown().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torrent_not_seeded_is_refused_and_a_bad_request_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (_, torrent) = segment(dir.path(), 100_000);
    let w = seeder(Some(Duration::from_secs(600)), None).await;
    let t = w.seed(&torrent, "00000001.ts", dir.path()).await.unwrap();

    let mut stranger = Raw::connect(&w, [9; 20]).await;
    assert_eq!(stranger.handshake().await, None);
    assert_eq!(reaches(&w.counters().refused, 1).await, 1);

    let mut c = Raw::connect(&w, info_hash(&torrent)).await;
    assert_eq!(c.handshake().await, Some(info_hash(&torrent)));
    // Super-seeding: no bitfield, an unchoke, then two offers.
    assert_eq!(c.next().await.unwrap().0, "unchoke");
    assert_eq!(c.next().await.unwrap().0, "have");
    assert_eq!(c.next().await.unwrap().0, "have");
    // Piece 3 is the last (100 000 bytes in 32 KiB pieces): 1 696 bytes long.
    c.send(Message::Request(Request::new(3, 0, 16_384))).await;
    assert_eq!(c.next().await, None);
    assert_eq!(reaches(&w.counters().violations, 1).await, 1);
    assert_eq!(t.uploaded(), 0);

    // A bitfield after other messages is taken (aria2 sends its bitfields after its first
    // pieces), twice too: the connection goes on and is served.
    let mut c = Raw::connect(&w, info_hash(&torrent)).await;
    c.handshake().await.unwrap();
    c.send(Message::Interested).await;
    c.send(Message::Bitfield([0x00u8].as_slice().into())).await;
    c.send(Message::Bitfield([0x00u8].as_slice().into())).await;
    assert_eq!(next_but_keepalives(&mut c).await.0, "unchoke");
    let (kind, piece, ..) = next_but_keepalives(&mut c).await;
    assert_eq!(kind, "have");
    c.send(Message::Request(Request::new(piece, 0, 16_384)))
        .await;
    loop {
        match next_but_keepalives(&mut c).await {
            ("piece", index, 0, len) => {
                assert_eq!((index, len), (piece, 16_384));
                break;
            }
            (kind, ..) => assert_eq!(kind, "have"),
        }
    }
    drop(c);
    assert_eq!(w.counters().violations.load(Ordering::Relaxed), 1);

    // A request for a piece it was not offered (super-seeding: no bitfield, two Haves).
    let mut c = Raw::connect(&w, info_hash(&torrent)).await;
    c.handshake().await.unwrap();
    assert_eq!(c.next().await.unwrap().0, "unchoke");
    let offered = [c.next().await.unwrap(), c.next().await.unwrap()].map(|(kind, piece, ..)| {
        assert_eq!(kind, "have");
        piece
    });
    let other = (0..3).find(|p| !offered.contains(p)).unwrap();
    c.send(Message::Request(Request::new(other, 0, 16_384)))
        .await;
    let closed = tokio::time::timeout(HANG_GUARD, async {
        while let Some(m) = c.next().await {
            assert_ne!(m.0, "piece", "served a piece it never offered");
        }
    });
    closed
        .await
        .expect("hang guard: the connection stayed open");
    assert_eq!(reaches(&w.counters().violations, 2).await, 2);

    // A connection closed halfway through its handshake is refused, not lost.
    let mut half = TcpStream::connect(w.listen_addr()).await.unwrap();
    half.write_all(&[19, b'B', b'i', b't']).await.unwrap();
    drop(half);
    assert_eq!(reaches(&w.counters().refused, 2).await, 2);

    // Forgetting the segment refuses new connections to it.
    w.forget(&t).await;
    let mut late = Raw::connect(&w, info_hash(&torrent)).await;
    assert_eq!(late.handshake().await, None);
    assert_eq!(reaches(&w.counters().refused, 3).await, 3);
    w.shutdown().await;
}

/// Connections that claim every piece (an all-ones bitfield) or take offers and never ask withhold
/// nothing: a downloader that comes after them gets every piece from the super-seeding seeder,
/// each piece sent once (to it). Before, the claims counted as copies of every piece and the
/// silent connections kept theirs: the downloader was offered nothing until the reveal, 600 s
/// on, and the hang guard failed the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_offers_never_asked_for_withhold_no_piece() {
    const SIZE: usize = 8 * PIECE as usize;
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent) = segment(dir.path(), SIZE);
    let w = seeder(Some(Duration::from_secs(600)), None).await;
    let t = w.seed(&torrent, "00000001.ts", dir.path()).await.unwrap();
    let mut silent = Vec::new();
    for _ in 0..2 {
        let mut c = Raw::connect(&w, info_hash(&torrent)).await;
        c.handshake().await.unwrap();
        assert_eq!(c.next().await.unwrap().0, "unchoke");
        assert_eq!(c.next().await.unwrap().0, "have", "an offer");
        silent.push(c);
    }
    let mut claimants = Vec::new();
    for _ in 0..3 {
        let mut c = Raw::connect(&w, info_hash(&torrent)).await;
        c.handshake().await.unwrap();
        c.send(Message::Bitfield([0xffu8].as_slice().into())).await;
        c.send(Message::Interested).await;
        assert_eq!(next_but_keepalives(&mut c).await.0, "unchoke");
        claimants.push(c);
    }
    assert_eq!(
        download_alone(dir.path(), &torrent, w.listen_addr()).await,
        data
    );
    // Every piece left the seeder once, for the downloader: nothing for the others.
    assert_eq!(settled(&t, SIZE as u64).await, SIZE as u64);
    assert!(
        w.counters().offers_ignored.load(Ordering::Relaxed) >= 2,
        "each silent connection's offers went to the downloader"
    );
    assert_eq!(w.counters().violations.load(Ordering::Relaxed), 0);
    drop((silent, claimants));
    w.shutdown().await;
}

/// The super-seeding reveal is counted from the segment's first copy, not from when seeding
/// started: a downloader that sits on its offer for twice the reveal delay (as a first copy queued
/// behind a capped uplink does) holds the reveal back, and the other downloader is told of the
/// piece only after the first one received it whole. Counted from the start, the reveal came
/// before the first downloader had asked for anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reveal_is_counted_from_the_first_copy() {
    const REVEAL: Duration = Duration::from_millis(400);
    let dir = tempfile::tempdir().unwrap();
    let (_, torrent) = segment(dir.path(), 30_000); // one piece
                                                    // Offers wait for ever here: the first downloader sits on its offer on purpose.
    let w = WireSeeder::start(WireConfig {
        super_seed: Some(REVEAL),
        offer_wait: None,
        ..WireConfig::new("127.0.0.1:0".parse().unwrap())
    })
    .await
    .unwrap();
    let _t = w.seed(&torrent, "00000001.ts", dir.path()).await.unwrap();
    let mut first = Raw::connect(&w, info_hash(&torrent)).await;
    first.handshake().await.unwrap();
    assert_eq!(first.next().await.unwrap().0, "unchoke");
    assert_eq!(first.next().await.unwrap(), ("have", 0, 0, 0), "the offer");
    let mut other = Raw::connect(&w, info_hash(&torrent)).await;
    other.handshake().await.unwrap();
    assert_eq!(other.next().await.unwrap().0, "unchoke");
    // The other downloader is offered nothing (the only piece is out) until the reveal.
    let tasks = Tasks::new("test");
    let revealed = tasks.spawn("other", async move {
        loop {
            match other.next().await {
                Some(("have", 0, _, _)) => return std::time::Instant::now(),
                Some(("keepalive", ..)) => {}
                m => panic!("before the reveal: {m:?}"),
            }
        }
    });
    tokio::time::sleep(2 * REVEAL).await;
    first
        .send(Message::Request(Request::new(0, 0, 16_384)))
        .await;
    first
        .send(Message::Request(Request::new(0, 16_384, 30_000 - 16_384)))
        .await;
    let mut blocks = 0;
    while blocks < 2 {
        match first.next().await {
            Some(("piece", 0, _, _)) => blocks += 1,
            Some(("keepalive", ..)) => {}
            m => panic!("while downloading: {m:?}"),
        }
    }
    let whole = std::time::Instant::now();
    let revealed = tokio::time::timeout(HANG_GUARD, revealed)
        .await
        .expect("hang guard")
        .unwrap()
        .expect("not cancelled");
    assert!(
        revealed > whole,
        "revealed {:?} before the first copy was out",
        whole - revealed
    );
    w.shutdown().await;
}

/// A piece written whole to its one holder but stuck on its way (here: the holder stops reading,
/// its receive window closes, the bytes stay unacknowledged) is offered to another downloader
/// once it is late, and counted back as the first one's when it arrives after all. Without it
/// (`late_after: None`) the other downloader is offered nothing until the reveal, 600 s on, and
/// the hang guard fails the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piece_stuck_on_its_way_to_its_one_holder_is_offered_to_another_downloader() {
    const LATE: Duration = Duration::from_millis(300);
    const SIZE: usize = 10_000; // one piece, one block: written whole at once
    let dir = tempfile::tempdir().unwrap();
    let (_, torrent) = segment(dir.path(), SIZE);
    let w = seeder_late(Some(Duration::from_secs(600)), None, Some(LATE)).await;
    let t = w.seed(&torrent, "00000001.ts", dir.path()).await.unwrap();

    // The first downloader's receive buffer holds about 2 KB (the kernel's least): once it stops
    // reading, most of the piece stays in the seeder's socket, unacknowledged.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(1024).unwrap();
    let stream = sock.connect(w.listen_addr()).await.unwrap();
    let mut stuck = Raw::over(stream, info_hash(&torrent)).await;
    stuck.handshake().await.unwrap();
    assert_eq!(stuck.next().await.unwrap().0, "unchoke");
    assert_eq!(stuck.next().await.unwrap(), ("have", 0, 0, 0), "the offer");
    let mut other = Raw::connect(&w, info_hash(&torrent)).await;
    other.handshake().await.unwrap();
    assert_eq!(other.next().await.unwrap().0, "unchoke");
    stuck
        .send(Message::Request(Request::new(0, 0, SIZE as u32)))
        .await;
    // Written whole (the write returns with the bytes in the socket), the piece counts as the
    // first downloader's; late, it is offered to the other one, who gets it.
    assert_eq!(settled(&t, SIZE as u64).await, SIZE as u64);
    assert_eq!(next_but_keepalives(&mut other).await, ("have", 0, 0, 0));
    assert_eq!(
        w.counters()
            .late_pieces
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    other
        .send(Message::Request(Request::new(0, 0, SIZE as u32)))
        .await;
    assert_eq!(next_but_keepalives(&mut other).await, ("piece", 0, 0, SIZE));
    // The first downloader reads again: its piece arrives after all, and counts as its own.
    assert_eq!(next_but_keepalives(&mut stuck).await, ("piece", 0, 0, SIZE));
    assert_eq!(reaches(&w.counters().late_arrived, 1).await, 1);
    assert_eq!(settled(&t, 2 * SIZE as u64).await, 2 * SIZE as u64);
    w.shutdown().await;
}

/// A piece whose one holder passes it on to nobody (here: it downloads the piece and never
/// uploads, as a viewer behind NAT that no peer meets) is offered once more, to a downloader that
/// lacks it, once it has been lone for the late-piece delay. Without it the other downloader is
/// offered nothing until the reveal, 600 s on, and the hang guard fails the test: in the lab
/// (20 viewers, half behind NAT), a segment went uncompleted by every viewer that way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piece_its_one_holder_passes_on_to_nobody_is_offered_once_more() {
    const LATE: Duration = Duration::from_millis(300);
    const SIZE: usize = 10_000; // one piece, one block
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent) = segment(dir.path(), SIZE);
    let w = seeder_late(Some(Duration::from_secs(600)), None, Some(LATE)).await;
    let t = w.seed(&torrent, "00000001.ts", dir.path()).await.unwrap();
    let mut hoarder = Raw::connect(&w, info_hash(&torrent)).await;
    hoarder.handshake().await.unwrap();
    assert_eq!(hoarder.next().await.unwrap().0, "unchoke");
    assert_eq!(
        hoarder.next().await.unwrap(),
        ("have", 0, 0, 0),
        "the offer"
    );
    hoarder
        .send(Message::Request(Request::new(0, 0, SIZE as u32)))
        .await;
    assert_eq!(
        next_but_keepalives(&mut hoarder).await,
        ("piece", 0, 0, SIZE)
    );
    assert_eq!(settled(&t, SIZE as u64).await, SIZE as u64);
    // The other downloader comes once the piece is out: nothing fresh for it, until the piece
    // has been lone for the delay.
    let mut other = Raw::connect(&w, info_hash(&torrent)).await;
    other.handshake().await.unwrap();
    assert_eq!(other.next().await.unwrap().0, "unchoke");
    assert_eq!(next_but_keepalives(&mut other).await, ("have", 0, 0, 0));
    other
        .send(Message::Request(Request::new(0, 0, SIZE as u32)))
        .await;
    assert_eq!(next_but_keepalives(&mut other).await, ("piece", 0, 0, SIZE));
    assert_eq!(settled(&t, 2 * SIZE as u64).await, 2 * SIZE as u64);
    assert_eq!(w.counters().stranded_pieces.load(Ordering::Relaxed), 1);
    assert_eq!(w.counters().late_pieces.load(Ordering::Relaxed), 0);
    drop((hoarder, other, data));
    w.shutdown().await;
}

/// Requests queued behind the upload limit are dropped when cancelled: the cancelled block never
/// arrives, the request after it does, and the byte count has only what was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_is_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent) = segment(dir.path(), 200_000);
    // 32 KiB/s with a one-second burst: two blocks go at once, each later one takes 0.5 s.
    let w = seeder(None, Some(32_768)).await;
    let t = w.seed(&torrent, "00000001.ts", dir.path()).await.unwrap();
    let mut c = Raw::unchoked(&w, info_hash(&torrent)).await;
    for (index, begin) in [(0, 0), (0, 16_384), (1, 0), (1, 16_384)] {
        c.send(Message::Request(Request::new(index, begin, 16_384)))
            .await;
    }
    c.send(Message::Cancel(Request::new(1, 16_384, 16_384)))
        .await;
    c.send(Message::Request(Request::new(2, 0, 16_384))).await;
    let mut got = Vec::new();
    while let Some((kind, index, begin, len)) = c.next().await {
        if kind == "piece" {
            assert_eq!(len, 16_384);
            got.push((index, begin));
            if index == 2 {
                break;
            }
        }
    }
    assert_eq!(got, vec![(0, 0), (0, 16_384), (1, 0), (2, 0)]);
    assert_eq!(settled(&t, 4 * 16_384).await, 4 * 16_384);
    assert!(data.len() > 3 * PIECE as usize);
    w.shutdown().await;
}

/// Under a limit, the seeder serves two pieces at a time, each whole, instead of every requested
/// piece at once: of three downloaders asking for a piece each at once, the one served last gets
/// its first block only after another one has its whole piece (and could pass it on). Without the
/// turns, all three pieces go out interleaved and every first block arrives before any last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_seeder_serves_two_pieces_at_a_time_each_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (_data, torrent) = segment(dir.path(), 200_000);
    // The publisher's paced budget (one 4 KiB slice of burst): with a second's burst, one
    // connection could get its whole piece in the burst, and the test would pass without turns.
    let w = WireSeeder::start(WireConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upload_limit: swarmcast_swarm::ratelimit::ByteLimiter::paced(32_768)
            .map(std::sync::Arc::new),
        ..WireConfig::new("127.0.0.1:0".parse().unwrap())
    })
    .await
    .unwrap();
    let _t = w.seed(&torrent, "00000001.ts", dir.path()).await.unwrap();
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(Raw::unchoked(&w, info_hash(&torrent)).await);
    }
    for (index, c) in clients.iter_mut().enumerate() {
        for begin in [0, 16_384] {
            c.send(Message::Request(Request::new(index as u32, begin, 16_384)))
                .await;
        }
    }
    // Each downloader: when its first and its last block arrived.
    let group = Tasks::new("test");
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            group.spawn("downloader", async move {
                let mut arrived = Vec::new();
                while arrived.len() < 2 {
                    match c.next().await {
                        Some(("piece", _, _, len)) => {
                            assert_eq!(len, 16_384);
                            arrived.push(std::time::Instant::now());
                        }
                        Some(_) => {}
                        None => panic!("the seeder closed a connection"),
                    }
                }
                (arrived[0], arrived[1])
            })
        })
        .collect();
    let mut pieces = Vec::new();
    for t in tasks {
        let got = tokio::time::timeout(HANG_GUARD, t).await.unwrap().unwrap();
        pieces.push(got.expect("not cancelled"));
    }
    pieces.sort();
    let (first_done, last_started) = (pieces[0].1.min(pieces[1].1), pieces[2].0);
    assert!(
        last_started > first_done,
        "the third piece's first block arrived before either of the other two was whole: {pieces:?}"
    );
    w.shutdown().await;
}

/// The same with super-seeding inside librqbit (patch 0007): a lone downloader is served every
/// piece long before the reveal, though it sends no Have for the pieces the seed offered it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_downloader_of_a_super_seeding_librqbit_session_is_not_held_to_the_reveal() {
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent) = segment(dir.path(), 300_000);
    let s = crate::session(dir.path(), Some(Duration::from_secs(600))).await;
    let t = s
        .seed(&torrent, "00000001.ts", dir.path(), HANG_GUARD)
        .await
        .unwrap();
    assert_eq!(
        download_alone(dir.path(), &torrent, s.listen_addr()).await,
        data
    );
    assert_eq!(s.stats(&t).uploaded, data.len() as u64);
    s.shutdown().await;
}

/// libtorrent (software we did not write) downloads from the super-seeding wire seeder, given
/// only the .torrent and the seeder's address: it understands offers by Have with no bitfield.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libtorrent_downloads_byte_for_byte_from_the_super_seeding_wire_seeder() {
    let python = "/usr/bin/python3";
    let probe = std::process::Command::new(python)
        .args(["-c", "import libtorrent"])
        .output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "python3-libtorrent is missing: run `bash scripts/install-deps.sh`"
    );
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent) = segment(dir.path(), 300_000);
    let w = seeder(Some(Duration::from_secs(600)), None).await;
    let t = w.seed(&torrent, "00000001.ts", dir.path()).await.unwrap();
    let torrent_path = dir.path().join("1.torrent");
    std::fs::write(&torrent_path, &torrent).unwrap();
    let save = dir.path().join("lt");
    std::fs::create_dir_all(&save).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/lt-download.py");
    let port = w.listen_addr().port().to_string();
    let out = Tasks::new("test")
        .spawn_blocking("libtorrent", {
            let (torrent_path, save) = (torrent_path.clone(), save.clone());
            move || {
                std::process::Command::new(python)
                    .arg(script)
                    .arg(&torrent_path)
                    .arg(&save)
                    .arg(&port)
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("True"),
        "libtorrent did not finish: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(save.join("00000001.ts")).unwrap(), data);
    assert_eq!(settled(&t, data.len() as u64).await, data.len() as u64);
    w.shutdown().await;
}

/// One address opens connections that never send a handshake, and reopens each as soon as it
/// is closed (an attacker filling the seeder's slots): with a cap per address, a downloader from
/// another address still downloads the segment, byte for byte, while the attack goes on; the
/// attacker's connections beyond its cap are refused on arrival. (Loopback: the attacker is
/// 127.0.0.2, the downloader 127.0.0.1. Small caps keep the test's file descriptors few.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_fill_the_seeders_slots() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    const SLOTS: usize = 32;
    const PER_ADDRESS: usize = 8;
    const ATTACKERS: usize = 48;
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent) = segment(dir.path(), 300_000);
    let w = WireSeeder::start(WireConfig {
        max_connections: SLOTS,
        per_address: PER_ADDRESS,
        ..WireConfig::new("127.0.0.1:0".parse().unwrap())
    })
    .await
    .unwrap();
    let _t = w.seed(&torrent, "00000001.ts", dir.path()).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let connects = Arc::new(AtomicU64::new(0));
    let mut attackers = Vec::new();
    let tasks = Tasks::new("test");
    for _ in 0..ATTACKERS {
        let (stop, connects, seeder) = (stop.clone(), connects.clone(), w.listen_addr());
        attackers.push(tasks.spawn("attacker", async move {
            // Bounded: 500 connections each.
            for _ in 0..500 {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
                let Ok(mut conn) = socket.connect(seeder).await else {
                    continue;
                };
                connects.fetch_add(1, Ordering::Relaxed);
                // Send nothing; wait for the seeder to close it (or the test to end).
                let mut byte = [0u8; 1];
                tokio::select! {
                    _ = conn.read(&mut byte) => {}
                    () = stop.cancelled() => return,
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    () = stop.cancelled() => return,
                }
            }
        }));
    }
    // The attack is on: the attacker has opened more connections than its cap.
    let start = std::time::Instant::now();
    while connects.load(Ordering::Relaxed) < ATTACKERS as u64 && start.elapsed() < HANG_GUARD {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        download_alone(dir.path(), &torrent, w.listen_addr()).await,
        data
    );
    stop.cancel();
    for a in attackers {
        let _ = a.await;
    }
    let refused = w.counters().refused_per_address.load(Ordering::Relaxed);
    assert!(
        refused >= (ATTACKERS - PER_ADDRESS) as u64,
        "{refused} refused for the address's cap"
    );
    w.shutdown().await;
}
