//! Shutdown leaves nothing running: each seeder on a runtime of its own, seeding and serving,
//! then shut down; the runtime's count of live tasks says what is left.

use std::time::Duration;

use librqbit_peer_protocol::{Message, Request};
use tokio::net::TcpStream;

use crate::wire::{info_hash, next_but_keepalives, seeder, segment, Raw, HANG_GUARD};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The runtime's live tasks once they are `want` (or `within` passed): a task whose future ended
/// is released by its worker thread a moment after whoever waited for it saw it end.
fn alive_tasks(runtime: &tokio::runtime::Runtime, want: usize, within: Duration) -> usize {
    let start = std::time::Instant::now();
    while runtime.metrics().num_alive_tasks() != want && start.elapsed() < within {
        std::thread::sleep(Duration::from_millis(1));
    }
    runtime.metrics().num_alive_tasks()
}

/// A super-seeding wire seeder (accept loop, reveal timer) with a connection mid-download and
/// one that sent nothing: four tasks, and none once it is shut down.
#[test]
fn a_shut_down_wire_seeder_leaves_no_task_alive() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (_, torrent) = segment(dir.path(), 100_000);
    runtime.block_on(async {
        let w = seeder(Some(Duration::from_secs(600)), None).await;
        let _t = w.seed(&torrent, "00000001.ts", dir.path()).await.unwrap();
        let mut c = Raw::connect(&w, info_hash(&torrent)).await;
        c.handshake().await.unwrap();
        assert_eq!(c.next().await.unwrap().0, "unchoke");
        // Two offers, then the first block of the first one.
        assert_eq!(c.next().await.unwrap(), ("have", 0, 0, 0));
        assert_eq!(c.next().await.unwrap(), ("have", 1, 0, 0));
        c.send(Message::Request(Request::new(0, 0, 16_384))).await;
        assert_eq!(next_but_keepalives(&mut c).await, ("piece", 0, 0, 16_384));
        let _silent = TcpStream::connect(w.listen_addr()).await.unwrap();
        // The accept loop, the reveal timer and the two connections.
        assert_eq!(alive_tasks(&runtime, 4, HANG_GUARD), 4);
        w.shutdown().await;
        assert_eq!(w.connections(), 0);
    });
    assert_eq!(alive_tasks(&runtime, 0, HANG_GUARD), 0);
}

/// The same check on a librqbit session seeding (`Swarm::shutdown` is librqbit's
/// `Session::stop`): its tasks end too.
#[test]
fn a_shut_down_librqbit_session_leaves_no_task_alive() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (_, torrent) = segment(dir.path(), 100_000);
    let before = runtime.block_on(async {
        let s = crate::session(dir.path(), None).await;
        s.seed(&torrent, "00000001.ts", dir.path(), HANG_GUARD)
            .await
            .unwrap();
        let before = runtime.metrics().num_alive_tasks();
        s.shutdown().await;
        before
    });
    let start = std::time::Instant::now();
    let after = alive_tasks(&runtime, 0, HANG_GUARD);
    eprintln!(
        "librqbit session: {before} tasks alive while seeding, {after} {:?} after shutdown",
        start.elapsed()
    );
    assert!(before > 0, "the session runs tasks");
    assert_eq!(after, 0);
}
