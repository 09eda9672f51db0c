//! A bare BitTorrent client for the wire seeder's tests, and the waits they share.

use std::time::Duration;

use librqbit_core::hash_id::Id20;
use librqbit_peer_protocol::extended::PeerExtendedMessageIds;
use librqbit_peer_protocol::{Handshake, Message, MessageDeserializeError};
use swarmcast_core::SegmentTorrent;
use swarmcast_swarm::wire::WireSeeder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::HANG_GUARD;

/// A bare BitTorrent connection, speaking librqbit's wire-protocol crate.
pub(crate) struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    /// Connected and handshaken to a seeder that does not super-seed, past its full bitfield
    /// (one byte: a segment of at most 8 pieces) and its unchoke.
    pub(crate) async fn unchoked(w: &WireSeeder, info_hash: [u8; 20]) -> Self {
        let mut c = Self::connect(w, info_hash).await;
        c.handshake().await.unwrap();
        assert_eq!(c.next().await.unwrap(), ("bitfield", 0, 0, 1));
        assert_eq!(c.next().await.unwrap().0, "unchoke");
        c
    }

    pub(crate) async fn connect(w: &WireSeeder, info_hash: [u8; 20]) -> Self {
        let stream = TcpStream::connect(w.listen_addr()).await.unwrap();
        Self::over(stream, info_hash).await
    }

    /// Sends the handshake for `info_hash` on `stream`.
    pub(crate) async fn over(mut stream: TcpStream, info_hash: [u8; 20]) -> Self {
        let mut hs = [0u8; 68];
        let n = Handshake::new(Id20::new(info_hash), Id20::new([7; 20]))
            .serialize_unchecked_len(&mut hs);
        stream.write_all(&hs[..n]).await.unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    pub(crate) async fn send(&mut self, msg: Message<'_>) {
        let mut out = [0u8; 64];
        let n = msg
            .serialize(&mut out, &PeerExtendedMessageIds::default)
            .unwrap();
        self.stream.write_all(&out[..n]).await.unwrap();
    }

    /// Reads the seeder's handshake; `None` if it closed the connection instead.
    pub(crate) async fn handshake(&mut self) -> Option<[u8; 20]> {
        let mut hs = [0u8; 68];
        tokio::time::timeout(HANG_GUARD, self.stream.read_exact(&mut hs))
            .await
            .expect("hang guard")
            .ok()?;
        Some(Handshake::deserialize(&hs).unwrap().0.info_hash.0)
    }

    /// The next message, as (id, index, begin, block length) for the kinds the tests look at;
    /// `None` when the seeder closed the connection.
    pub(crate) async fn next(&mut self) -> Option<(&'static str, u32, u32, usize)> {
        loop {
            match Message::deserialize(&self.buf, &[]) {
                Ok((msg, len)) => {
                    let out = match msg {
                        Message::Have(i) => ("have", i, 0, 0),
                        Message::Piece(p) => ("piece", p.index, p.begin, p.len()),
                        Message::Unchoke => ("unchoke", 0, 0, 0),
                        Message::Bitfield(b) => ("bitfield", 0, 0, b.as_ref().len()),
                        Message::KeepAlive => ("keepalive", 0, 0, 0),
                        _ => ("other", 0, 0, 0),
                    };
                    self.buf.drain(..len);
                    return Some(out);
                }
                Err(MessageDeserializeError::NotEnoughData(..)) => {}
                Err(e) => panic!("bad message from the seeder: {e}"),
            }
            let mut chunk = [0u8; 32 * 1024];
            let n = tokio::time::timeout(HANG_GUARD, self.stream.read(&mut chunk))
                .await
                .expect("hang guard")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A seeder counter once it reached `want`: a connection's end is counted after its socket
/// closed, so the client can see the close first (bounded by the hang guard).
pub(crate) async fn reaches(counter: &std::sync::atomic::AtomicU64, want: u64) -> u64 {
    let read = || counter.load(std::sync::atomic::Ordering::Relaxed);
    let start = std::time::Instant::now();
    while read() < want && start.elapsed() < HANG_GUARD {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    read()
}

pub(crate) fn info_hash(torrent: &[u8]) -> [u8; 20] {
    SegmentTorrent::parse(torrent).unwrap().info_hash().0
}

/// The next message other than a keep-alive (which the seeder sends every 5 s, so a message that
/// never comes would never trip the per-read guard alone).
pub(crate) async fn next_but_keepalives(c: &mut Raw) -> (&'static str, u32, u32, usize) {
    let wait = async {
        loop {
            match c.next().await {
                Some(("keepalive", ..)) => {}
                Some(m) => return m,
                None => panic!("the seeder closed the connection"),
            }
        }
    };
    tokio::time::timeout(HANG_GUARD, wait)
        .await
        .expect("hang guard: the message never came")
}
