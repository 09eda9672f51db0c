//! The wire seeder's side of the manifest exchange (docs/manifest.md, "Manifests carried by
//! the swarm"): one [`Gossip`] for every connection, keyed by the peer's id and address (a
//! viewer's connections of several segments are one peer), in the publisher's role
//! ([`GossipConfig::publisher`]: each new manifest is pushed to a fixed number of peers, and
//! answers to `want`s; nothing else).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use swarmcast_core::gossip::{Gossip, GossipConfig, GossipStats, Reassembly, MAX_DOCUMENT, PART};
use swarmcast_core::SignedManifest;
use tokio::sync::mpsc;

use super::lock;

/// Exchange messages (a document sent in parts is several) queued for one connection at most.
/// The publisher sends a peer one push per manifest and one answer per `want`ed document: a
/// connection with this many unwritten is not reading, and is passed over; a peer whose every
/// connection is, leaves the exchange (the next connection that announces it brings it back).
pub(super) const EXT_QUEUE: usize = 64;
// Room for at least two documents of the largest size.
const _: () = assert!(EXT_QUEUE >= 2 * MAX_DOCUMENT.div_ceil(PART));

/// A peer of the exchange: its peer id and IP address (the id is the peer's to choose: with the
/// address, another host cannot speak for it).
pub(super) type Peer = ([u8; 20], std::net::IpAddr);

/// The peers of the exchange and where their connections take messages.
#[derive(Debug)]
pub struct ManifestHub {
    state: Mutex<HubState>,
}

#[derive(Debug)]
struct HubState {
    gossip: Gossip<Peer>,
    /// Per peer: its connections that announced the exchange (connection id, sender).
    conns: HashMap<Peer, Vec<(u64, mpsc::Sender<Bytes>)>>,
    /// Per peer: its documents sent in parts, being put together.
    parts: HashMap<Peer, Reassembly>,
    /// The newest manifest offered (what the next one's delta applies to).
    last: Option<SignedManifest>,
    /// Messages from peers that do not parse.
    malformed: u64,
}

impl ManifestHub {
    /// A hub spreading manifests as `config` says.
    pub fn new(config: GossipConfig) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(HubState {
                gossip: Gossip::new(config.seeded()),
                conns: HashMap::new(),
                parts: HashMap::new(),
                last: None,
                malformed: 0,
            }),
        })
    }

    /// A newly published manifest: pushed to the peers the gossip picks, as a delta from the
    /// one offered before it to those known to hold that one, whole to the others.
    pub fn offer(&self, m: &SignedManifest) {
        let mut s = lock(&self.state);
        let HubState { gossip, last, .. } = &mut *s;
        gossip.accept_manifest(m, last.as_ref(), None);
        if s.gossip.newest_seq() == Some(m.manifest.seq) {
            s.last = Some(m.clone());
        }
        s.flush();
    }

    /// The exchange's counters, and messages refused as malformed.
    pub fn stats(&self) -> (GossipStats, u64) {
        let s = lock(&self.state);
        (s.gossip.stats(), s.malformed)
    }

    /// Connection `conn` of peer `peer` announced the exchange; messages for it go to `tx`
    /// (bounded: [`EXT_QUEUE`]).
    pub(super) fn join(&self, peer: Peer, conn: u64, tx: mpsc::Sender<Bytes>) {
        let mut s = lock(&self.state);
        s.conns.entry(peer).or_default().push((conn, tx));
        s.gossip.add_peer(peer);
        s.flush();
    }

    /// Connection `conn` of peer `peer` ended.
    pub(super) fn leave(&self, peer: Peer, conn: u64) {
        let mut s = lock(&self.state);
        let now_empty = match s.conns.get_mut(&peer) {
            Some(list) => {
                list.retain(|(id, _)| *id != conn);
                list.is_empty()
            }
            None => false,
        };
        if now_empty {
            s.conns.remove(&peer);
            s.parts.remove(&peer);
            s.gossip.remove_peer(peer);
        }
    }

    /// A message from peer `peer`.
    pub(super) fn on_payload(&self, peer: Peer, payload: &[u8]) {
        let mut s = lock(&self.state);
        match s.parts.entry(peer).or_default().push(payload) {
            Ok(Some((msg, len))) => {
                // The publisher holds the newest manifest: what a peer sends is never newer, so
                // it only updates what the peer is known to hold.
                let _ = s.gossip.on_message(peer, msg, len, Instant::now());
                s.flush();
            }
            Ok(None) => {}
            Err(_) => s.malformed += 1,
        }
    }
}

impl HubState {
    fn flush(&mut self) {
        while let Some((peer, msg)) = self.gossip.poll_transmit() {
            let payloads: Vec<Bytes> = msg.payloads().into_iter().map(Bytes::from).collect();
            // Every part of a document on one connection, in order, on a connection that is
            // open and has room for them all (only this hub sends there, under its lock, so
            // the room cannot shrink in between): the newest first. The oldest are those of
            // the segments a viewer forgets as soon as a manifest moves the window past them;
            // a message written there as the viewer closes it is lost, and the gossip counts
            // the peer as holding it (the end-of-stream manifest, 3 ms after the last
            // segment's, was lost this way).
            let sent = self.conns.get(&peer).is_some_and(|list| {
                list.iter().rev().any(|(_, tx)| {
                    tx.capacity() >= payloads.len()
                        && payloads.iter().all(|p| tx.try_send(p.clone()).is_ok())
                })
            });
            if !sent {
                tracing::debug!(
                    peer = %peer.1,
                    "manifest exchange: no connection of the peer is open with room; it leaves"
                );
                self.conns.remove(&peer);
                self.parts.remove(&peer);
                self.gossip.remove_peer(peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmcast_core::gossip::Message;
    use swarmcast_core::{Manifest, StreamSecret};

    fn signed(secret: &StreamSecret, seq: u64) -> SignedManifest {
        Manifest {
            key: secret.public(),
            seq,
            issued_ms: 1_700_000_000_000 + seq,
            target_duration: 180_000,
            peers: vec![],
            trackers: vec![],
            end_of_stream: false,
            segments: vec![],
        }
        .sign(secret)
        .unwrap()
    }

    /// A viewer's connections of several segments are one peer; a push goes on the newest. The
    /// oldest belongs to a segment the viewer forgets as soon as a manifest moves the window
    /// past it: a push written there as it closes is lost (the end-of-stream manifest, 3 ms
    /// after the last segment's, was). Once the newest is gone, the next one takes it.
    #[test]
    fn a_push_goes_on_the_peers_newest_connection() {
        let secret = StreamSecret::from_seed(&[7; 32]);
        let hub = ManifestHub::new(GossipConfig::publisher());
        let peer: Peer = ([1; 20], std::net::Ipv4Addr::LOCALHOST.into());
        let (old_tx, mut old_rx) = mpsc::channel(EXT_QUEUE);
        let (new_tx, mut new_rx) = mpsc::channel(EXT_QUEUE);
        hub.join(peer, 1, old_tx);
        hub.join(peer, 2, new_tx);
        hub.offer(&signed(&secret, 1));
        let got = new_rx.try_recv().expect("pushed on the newest connection");
        assert!(
            matches!(Message::decode(&got), Ok(Message::Manifest { seq: 1, .. })),
            "{got:?}"
        );
        assert!(old_rx.try_recv().is_err(), "nothing on the oldest");
        // The newest connection gone: the next push takes the one left.
        drop(new_rx);
        hub.offer(&signed(&secret, 2));
        let got = old_rx.try_recv().expect("pushed on the connection left");
        assert!(
            matches!(
                Message::decode(&got),
                Ok(Message::Manifest { seq: 2, .. } | Message::Delta { seq: 2, .. })
            ),
            "{got:?}"
        );
    }

    /// The sequence number of a pushed document (whole or a delta).
    fn pushed_seq(payload: &[u8]) -> Option<u64> {
        match Message::decode(payload) {
            Ok(Message::Manifest { seq, .. } | Message::Delta { seq, .. }) => Some(seq),
            _ => None,
        }
    }

    /// A connection that does not take its messages holds [`EXT_QUEUE`] at most: once full it
    /// is passed over, and its peer, with no other connection, leaves the exchange until a
    /// connection announces it again.
    #[test]
    fn a_connection_that_does_not_read_is_passed_over_and_its_peer_leaves() {
        let secret = StreamSecret::from_seed(&[7; 32]);
        let hub = ManifestHub::new(GossipConfig::publisher());
        let peer: Peer = ([1; 20], std::net::Ipv4Addr::LOCALHOST.into());
        let (tx, mut rx) = mpsc::channel(EXT_QUEUE);
        hub.join(peer, 1, tx);
        let offers = EXT_QUEUE as u64 + 5;
        for seq in 1..=offers {
            hub.offer(&signed(&secret, seq));
        }
        let mut queued = Vec::new();
        while let Ok(m) = rx.try_recv() {
            queued.push(pushed_seq(&m));
        }
        // The first EXT_QUEUE pushes, in order; the rest were not queued.
        assert_eq!(queued, (1..=EXT_QUEUE as u64).map(Some).collect::<Vec<_>>());
        // The peer has left: with room again, the connection gets nothing more.
        hub.offer(&signed(&secret, offers + 1));
        assert!(rx.try_recv().is_err());
        // A connection that announces the exchange brings it back.
        let (tx2, mut rx2) = mpsc::channel(EXT_QUEUE);
        hub.join(peer, 2, tx2);
        hub.offer(&signed(&secret, offers + 2));
        let got = rx2.try_recv().expect("pushed once the peer is back");
        assert_eq!(pushed_seq(&got), Some(offers + 2));
    }
}
