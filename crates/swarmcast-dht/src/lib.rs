//! swarmcast on the mainline DHT (docs/manifest.md, "The DHT item").
//!
//! [`Node`] is a DHT client (the `mainline` crate) that puts and gets the stream's pointer, a
//! BEP 44 mutable item signed with the stream key ([`swarmcast_core::dht_item`]), and announces
//! and looks up the peers of a segment's torrent (BEP 5). The item's format and its checks are
//! in the core crate; here is only the I/O.
//!
//! Tests and the lab run on a local DHT: [`LocalDht`] starts server nodes on one address (they
//! bootstrap from each other, so that, unlike mainline's [`Testnet`], none hands out client
//! nodes that never answer), and [`Node::start`] with their addresses as bootstrap joins it (no
//! internet).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use futures_util::StreamExt;
use mainline::{Dht, Id, MutableItem};
use swarmcast_core::dht_item::{ItemVerifier, Pointer, SignedItem, SALT};
use swarmcast_core::{ManifestError, StreamKey, StreamSecret};

mod local;

pub use local::LocalDht;
pub use mainline::Testnet;

/// How long [`Node::get_pointer`] goes on collecting items after the first valid one: newer
/// items from nodes answering a little later (the closest ones, which the publisher's put
/// reached) are taken, the lookup's stragglers are not waited for.
pub const POINTER_GRACE: Duration = Duration::from_millis(250);

/// Errors from the DHT.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DhtError {
    /// The node could not start (its UDP socket).
    #[error("cannot start the DHT node: {0}")]
    Start(#[source] std::io::Error),
    /// A put found no node to store the item (or the announce) on.
    #[error("cannot {what} on the DHT: {reason}")]
    Put {
        /// What was put.
        what: &'static str,
        /// mainline's error.
        reason: String,
    },
    /// The item the DHT returned is not the stream's valid pointer.
    #[error("the DHT item is refused: {0}")]
    Refused(#[from] ManifestError),
}

/// How a publisher or viewer joins the DHT (`--dht-bootstrap`, docs/manifest.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhtOptions {
    /// Bootstrap nodes (`host:port`); empty: the public DHT's default routers.
    pub bootstrap: Vec<String>,
    /// The UDP socket's address (0.0.0.0; 127.0.0.1 for a local test DHT).
    pub bind: Ipv4Addr,
    /// How long a query waits for a node's answer (`None`: mainline's 2 s).
    pub request_timeout: Option<Duration>,
}

impl DhtOptions {
    /// Options for the DHT that `bootstrap` nodes belong to.
    pub fn new(bootstrap: Vec<String>) -> Self {
        Self {
            bootstrap,
            bind: Ipv4Addr::UNSPECIFIED,
            request_timeout: None,
        }
    }

    /// Starts a [`Node`] with these options.
    pub fn start(&self) -> Result<Node, DhtError> {
        Node::start_with(&self.bootstrap, self.bind, self.request_timeout)
    }
}

/// A DHT client.
#[derive(Clone, Debug)]
pub struct Node {
    dht: mainline::async_dht::AsyncDht,
}

impl Node {
    /// Starts a client bootstrapping from `bootstrap` (`host:port`; empty: the public DHT's
    /// default routers), bound to `bind` (127.0.0.1 for a local test DHT).
    pub fn start(bootstrap: &[String], bind: Ipv4Addr) -> Result<Self, DhtError> {
        Self::start_with(bootstrap, bind, None)
    }

    /// [`Node::start`], with how long a query waits for a node's answer (mainline's default:
    /// 2 s). A lookup ends when its last node answered or timed out, so on a local test DHT,
    /// where answers take microseconds and a node that went away never answers, a short
    /// timeout makes every operation that much faster.
    pub fn start_with(
        bootstrap: &[String],
        bind: Ipv4Addr,
        request_timeout: Option<Duration>,
    ) -> Result<Self, DhtError> {
        let mut builder = Dht::builder();
        if let Some(t) = request_timeout {
            builder.request_timeout(t);
        }
        if !bootstrap.is_empty() {
            builder.bootstrap(bootstrap);
        }
        let dht = builder
            .bind_address(bind)
            .build()
            .map_err(DhtError::Start)?;
        Ok(Self {
            dht: dht.as_async(),
        })
    }

    /// Waits until the node has joined the DHT (its routing table is filled); false if it could
    /// not reach any node.
    pub async fn bootstrapped(&self) -> bool {
        self.dht.bootstrapped().await
    }

    /// Looks the stream's pointer up once, to its end, for the nodes closest to it: mainline
    /// keeps them with their write tokens (5 minutes), and a put within that time stores at
    /// once instead of looking them up first (a lookup ends only when its slowest node answered
    /// or timed out: 2 s for a silent one). A publisher calls this while its first segment is
    /// being cut. Returns how many items the lookup found under the key (an earlier run's).
    /// Bounded by mainline's lookup (its nodes' timeouts).
    pub async fn prepare_put(&self, key: &StreamKey) -> usize {
        self.dht
            .get_mutable(key.as_bytes(), Some(SALT), None)
            .count()
            .await
    }

    /// Puts the stream's pointer, signed with `secret`. Returns how many nodes stored it.
    pub async fn put_pointer(
        &self,
        secret: &StreamSecret,
        pointer: &Pointer,
    ) -> Result<usize, DhtError> {
        // Our BEP 44 signature is mainline's (unit test `our_signature_is_the_one_mainline_makes`).
        self.put_raw(secret.public().as_bytes(), &pointer.sign(secret)?)
            .await
    }

    /// Puts an item as given, signature and all (the stream's pointer as [`Node::put_pointer`]
    /// signs it; in tests, what a forger or a replayer would put: DHT nodes check signatures
    /// and refuse a forged one).
    pub async fn put_raw(&self, key: &[u8; 32], item: &SignedItem) -> Result<usize, DhtError> {
        let item = MutableItem::new_signed_unchecked(
            *key,
            item.signature,
            &item.value,
            item.seq,
            Some(SALT),
        );
        let outcome = self
            .dht
            .put_mutable(item, None)
            .await
            .map_err(|e| DhtError::Put {
                what: "put the stream's pointer",
                reason: e.to_string(),
            })?;
        Ok(outcome.stored_at as usize)
    }

    /// Gets the stream's newest pointer: every item the lookup finds under the stream's target
    /// goes through `verifier` (the newest valid one is returned; each refused one is returned
    /// in the second list with its typed error). `Ok(None)`: no node holds a valid item.
    ///
    /// The lookup is not waited for to its end, which comes only once every node it asked
    /// answered or timed out (mainline's 2 s: one silent node costs that much; in the lab's DHT
    /// a lookup asked 28 nodes and 24 answered): [`POINTER_GRACE`] after the first item that
    /// verifies, the newest found so far is taken. Forged or stale items do not start the grace.
    pub async fn get_pointer(
        &self,
        verifier: &mut ItemVerifier,
        key: &StreamKey,
    ) -> (Option<Pointer>, Vec<ManifestError>) {
        let mut items = self.dht.get_mutable(key.as_bytes(), Some(SALT), None);
        let mut found: Vec<SignedItem> = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let next = match deadline {
                None => items.next().await,
                Some(d) => match tokio::time::timeout_at(d, items.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
            };
            let Some(item) = next else { break };
            let item = SignedItem {
                seq: item.seq(),
                value: item.value().to_vec(),
                signature: *item.signature(),
            };
            if deadline.is_none() && verifier.clone().accept(key.as_bytes(), &item).is_ok() {
                deadline = Some(tokio::time::Instant::now() + POINTER_GRACE);
            }
            found.push(item);
        }
        Self::choose(verifier, key, found)
    }

    /// The newest of `found` that `verifier` accepts, and the errors of the others.
    pub fn choose(
        verifier: &mut ItemVerifier,
        key: &StreamKey,
        mut found: Vec<SignedItem>,
    ) -> (Option<Pointer>, Vec<ManifestError>) {
        found.sort_by_key(|i| i.seq);
        found.dedup();
        let mut best = None;
        let mut refused = Vec::new();
        for item in found {
            match verifier.accept(key.as_bytes(), &item) {
                Ok(p) => best = Some(p),
                Err(e) => refused.push(e),
            }
        }
        (best, refused)
    }

    /// Announces that a peer listens at `port` (this node's IP as the DHT sees it) for
    /// `info_hash`.
    pub async fn announce(&self, info_hash: [u8; 20], port: u16) -> Result<(), DhtError> {
        let id = Id::from_bytes(info_hash).map_err(|e| DhtError::Put {
            what: "announce",
            reason: e.to_string(),
        })?;
        self.dht
            .announce_peer(id, Some(port))
            .await
            .map(|_| ())
            .map_err(|e| DhtError::Put {
                what: "announce a segment",
                reason: e.to_string(),
            })
    }

    /// Peers announced for `info_hash` that the lookup finds within `wait` ([`Node::peer_stream`],
    /// collected until the lookup ends or `wait` passes).
    pub async fn peers(&self, info_hash: [u8; 20], wait: Duration) -> Vec<SocketAddr> {
        self.peer_stream(info_hash)
            .take_until(Box::pin(tokio::time::sleep(wait)))
            .collect()
            .await
    }

    /// Peers announced for `info_hash`, each once, as the lookup finds them: a node's answer
    /// at a time, until the lookup ends (its last node answered or timed out). Callers bound it
    /// in time and count.
    pub fn peer_stream(
        &self,
        info_hash: [u8; 20],
    ) -> impl futures_util::Stream<Item = SocketAddr> + Send + Unpin + 'static {
        let lookup = Id::from_bytes(info_hash)
            .ok()
            .map(|id| self.dht.get_peers(id));
        let mut seen = std::collections::HashSet::new();
        futures_util::stream::iter(lookup)
            .flatten()
            .flat_map(futures_util::stream::iter)
            .map(|p| SocketAddr::V4(SocketAddrV4::new(*p.ip(), p.port())))
            .filter(move |p| std::future::ready(seen.insert(*p)))
    }

    /// The node's own address (for others to bootstrap from).
    pub async fn local_addr(&self) -> SocketAddr {
        SocketAddr::V4(self.dht.info().await.local_addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mainline::SigningKey;

    fn secret() -> StreamSecret {
        StreamSecret::from_seed(&[5; 32])
    }

    fn pointer(seq: u64) -> Pointer {
        Pointer::to_manifest(seq, format!("doc {seq}").as_bytes(), [seq as u8; 20])
    }

    #[test]
    fn our_signature_is_the_one_mainline_makes() {
        let s = secret();
        let signed = pointer(3).sign(&s).unwrap();
        let item = MutableItem::new(
            SigningKey::from_bytes(s.seed()),
            &signed.value,
            signed.seq,
            Some(SALT),
        );
        assert_eq!(item.signature(), &signed.signature);
        assert_eq!(item.key(), s.public().as_bytes());
    }

    #[test]
    fn choose_takes_the_newest_valid_item_and_names_the_refused() {
        let s = secret();
        let key = s.public();
        let forged = pointer(9).sign(&StreamSecret::from_seed(&[6; 32])).unwrap();
        let found = vec![
            pointer(4).sign(&s).unwrap(),
            forged,
            pointer(5).sign(&s).unwrap(),
            pointer(5).sign(&s).unwrap(),
        ];
        let mut v = ItemVerifier::new(key, None);
        let (best, refused) = Node::choose(&mut v, &key, found);
        assert_eq!(best, Some(pointer(5)));
        assert_eq!(refused.len(), 1);
        assert!(matches!(refused[0], ManifestError::BadSignature));
    }
}
