//! librqbit's per-peer connection counters (patch 0009) seen through [`Swarm::peer_bytes`], on
//! loopback: a dial to a closed port and a dial to a session without the torrent are failed dials
//! that put the peer into the 10 s reconnect backoff; a download from a seed has none; with a
//! first wait of 1 s (patch 0024) a peer that adds the torrent after a refused dial serves it
//! before the backoff grows long. Waits are for the counters to change, bounded by a hang guard;
//! nothing asserts on time.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use swarmcast_core::SegmentTorrent;
use swarmcast_swarm::{PeerBytes, Swarm, Torrent, POLL};

/// Four 32 KiB pieces, the last one short.
const SIZE: usize = 100_000;
const HANG_GUARD: Duration = Duration::from_secs(30);

async fn swarm(dir: &Path) -> Swarm {
    crate::session(dir, None).await
}

/// A segment of `size` bytes written into `dir`, and its torrent.
fn segment(dir: &Path, size: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let t = SegmentTorrent::build(&data[..], size as u64, "00000000.ts", None, vec![]).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("00000000.ts"), &data).unwrap();
    t.to_torrent_bytes()
}

/// An address nothing listens on.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// The counters of peer `addr`, once `done` holds for them (panics after the hang guard).
async fn peer_when(
    swarm: &Swarm,
    t: &Torrent,
    addr: SocketAddr,
    done: impl Fn(&PeerBytes) -> bool,
) -> PeerBytes {
    let start = tokio::time::Instant::now();
    loop {
        let peers = swarm.peer_bytes(t);
        if let Some(p) = peers.iter().find(|p| p.addr == addr.to_string()) {
            if done(p) {
                return p.clone();
            }
        }
        assert!(start.elapsed() < HANG_GUARD, "hang guard: {peers:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// `viewer` starts downloading `torrent` (named `name`) into `out` from `peers`.
async fn fetch(
    viewer: &Swarm,
    torrent: &[u8],
    name: &str,
    out: &Path,
    peers: Vec<SocketAddr>,
) -> Torrent {
    viewer
        .download(torrent, name, out, peers, vec![])
        .await
        .unwrap()
}

/// [`fetch`], then waits (bounded by the hang guard) until the download is done.
async fn fetched(
    viewer: &Swarm,
    torrent: &[u8],
    name: &str,
    out: &Path,
    peers: Vec<SocketAddr>,
) -> Torrent {
    let t = fetch(viewer, torrent, name, out, peers).await;
    viewer.wait(&t, "downloading", HANG_GUARD).await.unwrap();
    t
}

/// `seed` seeds a new segment (its files under `dir/second`), and `viewer` fetches it given
/// `own` first, then the seed: it gets the segment and never dials `own`.
async fn fetch_never_dialling(viewer: &Swarm, seed: &Swarm, dir: &Path, own: SocketAddr) {
    let src = dir.join("second");
    let second = segment(&src, SIZE + 1);
    let _seeding = seed
        .seed(&second, "second", &src, HANG_GUARD)
        .await
        .unwrap();
    let t = fetched(
        viewer,
        &second,
        "second",
        &dir.join("out-second"),
        vec![own, seed.listen_addr()],
    )
    .await;
    let attempts: u64 = viewer
        .peer_bytes(&t)
        .iter()
        .filter(|p| p.addr == own.to_string())
        .map(|p| p.connection_attempts)
        .sum();
    assert_eq!(attempts, 0, "{:?}", viewer.peer_bytes(&t));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dial_is_a_failed_dial() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = segment(&dir.path().join("src"), SIZE);
    let viewer = swarm(&dir.path().join("viewer")).await;
    let closed = closed_port();
    let t = fetch(
        &viewer,
        &torrent,
        "seg",
        &dir.path().join("out"),
        vec![closed],
    )
    .await;
    let p = peer_when(&viewer, &t, closed, |p| {
        p.failed_dials >= 1 && p.long_reconnect_waits >= 1
    })
    .await;
    assert_eq!(p.dialled, 0, "no TCP connection was made: {p:?}");
    assert!(p.connection_attempts >= p.failed_dials, "{p:?}");
    assert!(p.errors >= p.failed_dials, "{p:?}");
    viewer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_to_a_peer_without_the_torrent_is_a_failed_dial() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = segment(&dir.path().join("src"), SIZE);
    // Listens, but has not added the torrent: it accepts the TCP connection and drops it on our
    // handshake (the race of a viewer dialled before it has a segment).
    let empty = swarm(&dir.path().join("empty")).await;
    let viewer = swarm(&dir.path().join("viewer")).await;
    let t = fetch(
        &viewer,
        &torrent,
        "seg",
        &dir.path().join("out"),
        vec![empty.listen_addr()],
    )
    .await;
    let p = peer_when(&viewer, &t, empty.listen_addr(), |p| {
        p.failed_dials >= 1 && p.long_reconnect_waits >= 1
    })
    .await;
    assert!(p.dialled >= 1, "the TCP connection was made: {p:?}");
    assert!(p.errors >= p.failed_dials, "{p:?}");
    viewer.shutdown().await;
    empty.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_from_a_seed_has_no_failed_dials() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let torrent = segment(&src, SIZE);
    let seed = swarm(&dir.path().join("seed")).await;
    let _seeding = seed.seed(&torrent, "seg", &src, HANG_GUARD).await.unwrap();
    let viewer = swarm(&dir.path().join("viewer")).await;
    let t = fetched(
        &viewer,
        &torrent,
        "seg",
        &dir.path().join("out"),
        vec![seed.listen_addr()],
    )
    .await;
    let p = peer_when(&viewer, &t, seed.listen_addr(), |_| true).await;
    assert_eq!(p.fetched, SIZE as u64, "{p:?}");
    assert!(p.connection_attempts >= 1 && p.dialled >= 1, "{p:?}");
    assert_eq!((p.failed_dials, p.long_reconnect_waits), (0, 0), "{p:?}");
    viewer.shutdown().await;
    seed.shutdown().await;
}

/// The race carried peers meet: a viewer dials a peer for a segment before that peer has added
/// it, and is refused. With `reconnect_first_wait` (librqbit patch 0024) it dials again after
/// about a second, not ten: once the peer seeds, the download completes from it with no long
/// reconnect wait counted (without the option: one wait of 10 s or more, checked once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_refused_for_want_of_the_torrent_is_dialled_again_after_the_first_wait() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let torrent = segment(&src, SIZE);
    let late = swarm(&dir.path().join("late")).await;
    let viewer = swarm(&dir.path().join("viewer")).await;
    let how = swarmcast_swarm::Download {
        initial_peers: vec![late.listen_addr()],
        reconnect_first_wait: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let t = viewer
        .download_with(&torrent, "seg", &dir.path().join("out"), how)
        .await
        .unwrap();
    peer_when(&viewer, &t, late.listen_addr(), |p| p.failed_dials >= 1).await;
    // Now it has the segment (seeding 100 kB takes well under the 1-2 s wait: the next dial
    // finds it).
    let _seeding = late.seed(&torrent, "seg", &src, HANG_GUARD).await.unwrap();
    viewer.wait(&t, "downloading", HANG_GUARD).await.unwrap();
    let p = peer_when(&viewer, &t, late.listen_addr(), |p| {
        p.fetched == SIZE as u64
    })
    .await;
    assert!(p.failed_dials >= 1, "{p:?}");
    assert_eq!(p.long_reconnect_waits, 0, "no wait of 10 s or more: {p:?}");
    viewer.shutdown().await;
    late.shutdown().await;
}

/// A session given its own address dials it once: the dial reaches the session itself, is
/// refused at the handshake (a failed dial), and the address is known as its own (librqbit
/// patch 0025): not dialled for the next torrent (nor again for the first: it is not put back
/// in the queue). Peers are dialled in the order given, so once the second torrent is
/// downloaded from the seed listed after the session's own address, that address has had its
/// turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_reaches_itself_never_dials_that_address_again() {
    let dir = tempfile::tempdir().unwrap();
    let viewer = swarm(&dir.path().join("viewer")).await;
    let own = viewer.listen_addr();
    let first = segment(&dir.path().join("first"), SIZE);
    let how = swarmcast_swarm::Download {
        initial_peers: vec![own],
        reconnect_first_wait: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let t = viewer
        .download_with(&first, "first", &dir.path().join("out1"), how)
        .await
        .unwrap();
    let p = peer_when(&viewer, &t, own, |p| p.failed_dials >= 1).await;
    assert_eq!(p.connection_attempts, 1, "{p:?}");
    // The second torrent, from a seed, with the session's own address listed first.
    let seed = swarm(&dir.path().join("seed")).await;
    fetch_never_dialling(&viewer, &seed, dir.path(), own).await;
    assert_eq!(viewer.own_addresses(), vec![own]);
    viewer.shutdown().await;
    seed.shutdown().await;
}

/// The address a peer sees a session at (BEP 10 `yourip`), with the session's port, is its own
/// (librqbit patch 0025): after one download from a seed, the session knows its address, and a
/// torrent given that address never dials it. Behind a NAT this is the session's public
/// address, which the DHT hands it back (its own announce), and a dial there goes to the NAT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_a_peer_sees_is_known_as_the_sessions_own_and_never_dialled() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let first = segment(&src, SIZE);
    let seed = swarm(&dir.path().join("seed")).await;
    let viewer = swarm(&dir.path().join("viewer")).await;
    let _seeding = seed.seed(&first, "seg", &src, HANG_GUARD).await.unwrap();
    let t = fetched(
        &viewer,
        &first,
        "seg",
        &dir.path().join("out1"),
        vec![seed.listen_addr()],
    )
    .await;
    // On loopback the seed sees the viewer at 127.0.0.1, its listen address: learned from the
    // seed's extended handshake (the viewer never dialled itself).
    let own = viewer.listen_addr();
    assert!(
        viewer.own_addresses().contains(&own),
        "{:?}",
        viewer.own_addresses()
    );
    // An address of the host's own (loopback): not behind a NAT.
    assert_eq!(viewer.behind_nat(), None);
    let p = peer_when(&viewer, &t, seed.listen_addr(), |_| true).await;
    assert_eq!(p.failed_dials, 0, "{p:?}");
    // A second torrent given the viewer's own address first, then the seed: own never dialled.
    fetch_never_dialling(&viewer, &seed, dir.path(), own).await;
    viewer.shutdown().await;
    seed.shutdown().await;
}
