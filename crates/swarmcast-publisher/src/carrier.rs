//! Manifests beyond the publisher's HTTP server (docs/manifest.md): carried by the swarm (the
//! seeder speaks the manifest exchange and pushes each new manifest to a few peers), and
//! pointed at on the mainline DHT (a BEP 44 item signed with the stream key, and each segment
//! announced by BEP 5), so that a viewer with only the key finds the stream.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use swarmcast_core::dht_item::{segment_to_name, Pointer};
use swarmcast_core::gossip::{GossipConfig, GossipStats};
use swarmcast_core::{SignedManifest, StreamKey, StreamSecret};
use swarmcast_swarm::exchange::{Exchange, Handler};
use swarmcast_swarm::wire::manifests::ManifestHub;
use swarmcast_tasks::Tasks;
use tokio::sync::mpsc;

use crate::http::Shared;

/// What carries the publisher's manifests in the swarm: the wire seeder's hub or a librqbit
/// session's exchange.
#[derive(Clone, Debug)]
pub enum Carrier {
    /// The wire seeder's (the default seeder).
    Hub(Arc<ManifestHub>),
    /// A librqbit session's (`--seeder librqbit`).
    Exchange(Exchange),
}

impl Carrier {
    /// An exchange in the publisher's role, for a librqbit session; the handler goes in the
    /// session's options. What peers send is never newer than the publisher's own manifests:
    /// its reports are drained.
    pub(crate) fn exchange(
        key: StreamKey,
        gossip: GossipConfig,
        tasks: &Tasks,
    ) -> (Self, Arc<Handler>) {
        let (tx, mut rx) = mpsc::channel(16);
        let (exchange, handler) = Exchange::start(key, gossip, tx, tasks);
        tasks.spawn("manifest-exchange-reports", async move {
            while let Some(report) = rx.recv().await {
                tracing::debug!(?report, "manifest exchange");
            }
        });
        (Self::Exchange(exchange), handler)
    }

    fn offer(&self, m: &SignedManifest) {
        match self {
            Self::Hub(hub) => hub.offer(m),
            Self::Exchange(e) => e.offer(m.bytes.clone().into()),
        }
    }

    /// What it has sent and received.
    pub fn stats(&self) -> GossipStats {
        match self {
            Self::Hub(hub) => hub.stats().0,
            Self::Exchange(e) => e.stats(),
        }
    }
}

/// Offers every manifest the publisher serves to the swarm, until the publisher stops.
pub(crate) async fn carry(carrier: Carrier, shared: Arc<Shared>) {
    let mut rx = shared.manifest.subscribe();
    loop {
        let current = rx.borrow_and_update().clone();
        if let Some(m) = current {
            carrier.offer(&m);
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Keeps the stream's pointer on the DHT current and announces each segment there (the
/// publisher's seeder at `port`), until the publisher stops. A put takes a DHT lookup (a round
/// trip or so per hop, and the slowest node's timeout): when manifests come faster, the pointer
/// skips to the newest. The pointer names the newest segment whose announce landed
/// ([`segment_to_name`]).
pub(crate) async fn dht_pointer(
    node: swarmcast_dht::Node,
    secret: StreamSecret,
    port: u16,
    shared: Arc<Shared>,
) {
    let bootstrap = async {
        if !node.bootstrapped().await {
            tracing::warn!("the DHT could not be reached: the stream's pointer may not be found");
        }
    };
    // The nodes closest to the pointer, looked up while the node bootstraps and the first
    // segment is cut (a lookup seeds itself from the bootstrap nodes while the routing table is
    // empty): the first put then stores at once (docs/manifest.md, "Updates"). A put that comes
    // first joins this lookup (mainline runs one per target) and stores when it ends.
    let prepare = async {
        let started = tokio::time::Instant::now();
        let key = secret.public();
        match tokio::time::timeout(PREPARE_WAIT, node.prepare_put(&key)).await {
            Ok(items) => tracing::info!(
                items,
                ms = started.elapsed().as_millis() as u64,
                "the DHT nodes closest to the stream's pointer found"
            ),
            Err(_) => tracing::debug!("the lookup of the pointer's nodes did not end in time"),
        }
    };
    tokio::join!(
        bootstrap,
        prepare,
        keep_current(&node, &secret, port, &shared)
    );
}

/// How long [`dht_pointer`] waits for the lookup of the nodes closest to the pointer (a hang
/// guard: mainline ends a lookup once its nodes answered or timed out, seconds).
const PREPARE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Announces each new segment and puts the pointer after each new manifest, until the
/// publisher stops. The two run side by side: an announce of a new segment takes a lookup of
/// its own (2 s and more with a silent node), a put goes to the nodes found at start, and a put
/// waiting for the announces would leave the pointer a segment or two behind.
async fn keep_current(
    node: &swarmcast_dht::Node,
    secret: &StreamSecret,
    port: u16,
    shared: &Shared,
) {
    // The newest segment whose announce landed, plus one (0: none yet).
    let landed = AtomicU64::new(0);
    tokio::join!(
        announce_segments(node, port, shared, &landed),
        put_pointers(node, secret, shared, &landed)
    );
}

/// Announces every segment of every manifest once, each as soon as it is listed (the announces
/// run concurrently), and records in `landed` the newest that landed (its number plus one).
async fn announce_segments(
    node: &swarmcast_dht::Node,
    port: u16,
    shared: &Shared,
    landed: &AtomicU64,
) {
    use futures_util::StreamExt;
    let mut rx = shared.manifest.subscribe();
    let mut announced = BTreeSet::new();
    // Bounded by the window (a segment is announced once) and each announce by the DHT's
    // lookup timeouts.
    let mut running = futures_util::stream::FuturesUnordered::new();
    let mut open = true;
    loop {
        if open {
            let current = rx.borrow_and_update().clone();
            if let Some(m) = current {
                let segments = &m.manifest.segments;
                for s in segments.iter().filter(|s| announced.insert(s.number)) {
                    let (number, info_hash) = (s.number, s.info_hash.0);
                    running.push(async move { (number, node.announce(info_hash, port).await) });
                }
                if let Some(first) = segments.first() {
                    announced.retain(|n| *n >= first.number);
                }
            }
        }
        let counters = &shared.counters;
        tokio::select! {
            changed = rx.changed(), if open => open = changed.is_ok(),
            Some((number, done)) = running.next() => match done {
                Ok(()) => {
                    landed.fetch_max(number + 1, Ordering::Relaxed);
                    counters.dht_announces.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "DHT announce failed");
                    counters.dht_failures.fetch_add(1, Ordering::Relaxed);
                }
            },
            else => return,
        }
    }
}

/// Puts the pointer to each new manifest (the newest when a put ends, skipping those that came
/// while it ran), naming the newest segment whose announce landed ([`segment_to_name`]).
async fn put_pointers(
    node: &swarmcast_dht::Node,
    secret: &StreamSecret,
    shared: &Shared,
    landed: &AtomicU64,
) {
    let mut rx = shared.manifest.subscribe();
    loop {
        let current = rx.borrow_and_update().clone();
        if let Some(m) = current {
            let announced = landed.load(Ordering::Relaxed).checked_sub(1);
            if let Some(named) = segment_to_name(&m.manifest, announced) {
                let pointer = Pointer::to_manifest(m.manifest.seq, &m.bytes, named.info_hash.0);
                let started = tokio::time::Instant::now();
                let counters = &shared.counters;
                match node.put_pointer(secret, &pointer).await {
                    Ok(stored) => {
                        // A put is a lookup (unless mainline holds the nodes), then the
                        // stores: how long the pointer lags, at most.
                        tracing::info!(
                            seq = m.manifest.seq,
                            segment = named.number,
                            stored,
                            ms = started.elapsed().as_millis() as u64,
                            "DHT pointer put"
                        );
                        counters.dht_puts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::warn!(seq = m.manifest.seq, error = %e, "cannot put the stream's pointer on the DHT");
                        counters.dht_failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
