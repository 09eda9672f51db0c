//! Manifests carried by the swarm, over a librqbit session: the I/O around
//! [`swarmcast_core::gossip::Gossip`].
//!
//! [`Exchange::start`] returns the handler to give the session ([`SwarmConfig::extension`]) and
//! a handle. librqbit hands every connection whose peer announced `swarmcast_manifest` and every
//! message it sends on it to the handler; one task owns the gossip state, keyed by the peer's
//! address (one remote met in several segment swarms is one peer, reached on any of its live
//! connections). Every document a peer sends is verified with the exchange's own
//! [`Verifier`], pinned to the stream key, exactly as the HTTP poller verifies: a newer one is
//! reported ([`ExchangeEvent::Manifest`]) and spread; a bad one is reported with its typed error
//! ([`ExchangeEvent::Refused`]) and spread to nobody. A manifest the owner got elsewhere (HTTP,
//! the publisher's pipeline) is offered with [`Exchange::offer`].
//!
//! [`SwarmConfig::extension`]: crate::SwarmConfig::extension

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use librqbit::extension::{ExtensionHandler, ExtensionPeer};
use librqbit_core::hash_id::Id20;
use swarmcast_core::gossip::{Gossip, GossipConfig, GossipStats, Message};
use swarmcast_core::{ManifestError, SignedManifest, StreamKey, Verdict, Verifier};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often connections that closed are dropped (and peers left with none forgotten).
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// What the exchange reports to its owner.
#[derive(Debug)]
pub enum ExchangeEvent {
    /// A verified manifest newer than any the exchange held, from a peer.
    Manifest {
        /// The manifest.
        manifest: Arc<SignedManifest>,
        /// The peer that sent it.
        from: SocketAddr,
        /// Bytes of the message that carried it.
        bytes: u64,
    },
    /// A message refused: not a message of the extension, or a document that does not verify.
    Refused {
        /// The peer that sent it.
        from: SocketAddr,
        /// Why.
        error: ManifestError,
    },
}

enum Input {
    Peer(ExtensionPeer),
    Message(SocketAddr, Vec<u8>),
    Offer(Arc<[u8]>),
}

/// The handler librqbit calls (see [`Exchange::start`]).
pub struct Handler {
    tx: mpsc::UnboundedSender<Input>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("exchange::Handler")
    }
}

impl ExtensionHandler for Handler {
    fn on_peer(&self, _info_hash: Id20, peer: ExtensionPeer) {
        let _ = self.tx.send(Input::Peer(peer));
    }

    fn on_message(&self, _info_hash: Id20, addr: SocketAddr, payload: &[u8]) {
        let _ = self.tx.send(Input::Message(addr, payload.to_vec()));
    }
}

/// The owner's handle on a running exchange.
#[derive(Clone, Debug)]
pub struct Exchange {
    tx: mpsc::UnboundedSender<Input>,
    stats: Arc<Mutex<GossipStats>>,
}

impl Exchange {
    /// Starts the exchange for the stream `key` on the current runtime; it runs until `cancel`.
    /// Returns the handle and the handler to put in the session's options.
    pub fn start(
        key: StreamKey,
        config: GossipConfig,
        events: mpsc::Sender<ExchangeEvent>,
        cancel: CancellationToken,
    ) -> (Self, Arc<Handler>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(GossipStats::default()));
        let task = Task {
            gossip: Gossip::new(config),
            verifier: Verifier::new(key),
            conns: HashMap::new(),
            events,
            stats: stats.clone(),
        };
        tokio::spawn(task.run(rx, cancel));
        (
            Self {
                tx: tx.clone(),
                stats,
            },
            Arc::new(Handler { tx }),
        )
    }

    /// A manifest the owner accepted from elsewhere: spread it if newer.
    pub fn offer(&self, doc: Arc<[u8]>) {
        let _ = self.tx.send(Input::Offer(doc));
    }

    /// The exchange's counters.
    pub fn stats(&self) -> GossipStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Task {
    gossip: Gossip<SocketAddr>,
    verifier: Verifier,
    conns: HashMap<SocketAddr, Vec<ExtensionPeer>>,
    events: mpsc::Sender<ExchangeEvent>,
    stats: Arc<Mutex<GossipStats>>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>, cancel: CancellationToken) {
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let timeout = self.gossip.poll_timeout();
            tokio::select! {
                _ = cancel.cancelled() => return,
                input = rx.recv() => match input {
                    None => return,
                    Some(input) => {
                        if self.on_input(input).await.is_err() {
                            return;
                        }
                    }
                },
                _ = async {
                    match timeout {
                        Some(t) => tokio::time::sleep_until(Instant::from_std(t)).await,
                        None => std::future::pending().await,
                    }
                } => self.gossip.handle_timeout(Instant::now().into_std()),
                _ = prune.tick() => self.prune(),
            }
            self.flush();
            *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = self.gossip.stats();
        }
    }

    /// Err: the owner is gone.
    async fn on_input(&mut self, input: Input) -> Result<(), ()> {
        match input {
            Input::Peer(peer) => {
                let addr = peer.addr();
                self.conns.entry(addr).or_default().push(peer);
                self.gossip.add_peer(addr);
            }
            Input::Offer(doc) => {
                // Already verified by the owner; our verifier learns it too (so that an older
                // document from a peer is not reported as newer).
                if let Ok(Verdict::New(m)) = self.verifier.accept(&doc) {
                    self.gossip.accept(m.manifest.seq, doc, None);
                }
            }
            Input::Message(from, payload) => {
                let now = Instant::now().into_std();
                let msg = match Message::decode(&payload) {
                    Ok(m) => m,
                    Err(error) => {
                        return self.report(ExchangeEvent::Refused { from, error }).await;
                    }
                };
                let Some(doc) = self.gossip.on_message(from, msg, payload.len(), now) else {
                    return Ok(());
                };
                match self.verifier.accept(&doc) {
                    Ok(Verdict::New(m)) => {
                        self.gossip.accept(m.manifest.seq, doc, Some(from));
                        let event = ExchangeEvent::Manifest {
                            manifest: Arc::new(m),
                            from,
                            bytes: payload.len() as u64,
                        };
                        return self.report(event).await;
                    }
                    Ok(Verdict::Unchanged) => {}
                    Err(error) => {
                        return self.report(ExchangeEvent::Refused { from, error }).await;
                    }
                }
            }
        }
        Ok(())
    }

    async fn report(&self, event: ExchangeEvent) -> Result<(), ()> {
        self.events.send(event).await.map_err(|_| ())
    }

    fn flush(&mut self) {
        while let Some((addr, msg)) = self.gossip.poll_transmit() {
            let payload = bytes::Bytes::from(msg.encode());
            let conns = self.conns.entry(addr).or_default();
            conns.retain(|c| !c.is_closed());
            // Any live connection to the peer carries it; the first that takes it does.
            let sent = conns.iter().any(|c| c.send(payload.clone()));
            if !sent {
                tracing::debug!(%addr, "manifest exchange: no live connection to the peer");
                self.conns.remove(&addr);
                self.gossip.remove_peer(addr);
            }
        }
    }

    fn prune(&mut self) {
        let mut gone = Vec::new();
        self.conns.retain(|addr, conns| {
            conns.retain(|c| !c.is_closed());
            if conns.is_empty() {
                gone.push(*addr);
            }
            !conns.is_empty()
        });
        for addr in gone {
            self.gossip.remove_peer(addr);
        }
    }
}
