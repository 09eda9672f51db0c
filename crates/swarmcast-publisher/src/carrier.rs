//! Manifests beyond the publisher's HTTP server (docs/manifest.md): carried by the swarm (the
//! seeder speaks the manifest exchange and pushes each new manifest to a few peers), and
//! pointed at on the mainline DHT (a BEP 44 item signed with the stream key, and each segment
//! announced by BEP 5), so that a viewer with only the key finds the stream.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use swarmcast_core::dht_item::Pointer;
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
/// skips to the newest.
pub(crate) async fn dht_pointer(
    node: swarmcast_dht::Node,
    secret: StreamSecret,
    port: u16,
    shared: Arc<Shared>,
) {
    if !node.bootstrapped().await {
        tracing::warn!("the DHT could not be reached: the stream's pointer may not be found");
    }
    let mut rx = shared.manifest.subscribe();
    let mut announced = BTreeSet::new();
    loop {
        let current = rx.borrow_and_update().clone();
        if let Some(m) = current {
            let segments = &m.manifest.segments;
            if let Some(newest) = segments.last() {
                let fresh: Vec<_> = segments
                    .iter()
                    .filter(|s| announced.insert(s.number))
                    .map(|s| node.announce(s.info_hash.0, port))
                    .collect();
                let pointer = Pointer::to_manifest(m.manifest.seq, &m.bytes, newest.info_hash.0);
                let started = tokio::time::Instant::now();
                let (announces, put) = tokio::join!(
                    futures_util::future::join_all(fresh),
                    node.put_pointer(&secret, &pointer)
                );
                let counters = &shared.counters;
                for a in announces {
                    match a {
                        Ok(()) => counters.dht_announces.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            tracing::debug!(error = %e, "DHT announce failed");
                            counters.dht_failures.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
                match put {
                    Ok(stored) => {
                        // A put is a lookup, then the stores: how long the pointer lags.
                        tracing::info!(
                            seq = m.manifest.seq,
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
                if let Some(first) = segments.first() {
                    announced.retain(|n| *n >= first.number);
                }
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
