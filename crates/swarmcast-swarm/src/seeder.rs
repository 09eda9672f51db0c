//! What seeds the publisher's segments: a librqbit session ([`Swarm`], super-seeding inside
//! librqbit by patch 0007) or the [`WireSeeder`] (super-seeding in swarmcast, on librqbit's
//! wire-protocol crate). `publish --seeder` picks one; docs/librqbit.md compares them.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::wire::{WireSeeder, WireTorrent};
use crate::{Swarm, SwarmError, Torrent};

/// The publisher's seeder.
#[derive(Debug)]
pub enum Seeder {
    /// A librqbit session.
    Librqbit(Swarm),
    /// The wire seeder.
    Wire(WireSeeder),
}

/// A segment being seeded by a [`Seeder`].
#[derive(Clone, Debug)]
pub enum Seeded {
    /// In the librqbit session.
    Librqbit(Torrent),
    /// By the wire seeder.
    Wire(WireTorrent),
}

impl Seeder {
    /// The address peers reach the seeder at.
    pub fn listen_addr(&self) -> SocketAddr {
        match self {
            Self::Librqbit(s) => s.listen_addr(),
            Self::Wire(w) => w.listen_addr(),
        }
    }

    /// Seeds the segment `folder/<name>` described by `torrent`; returns once it is served.
    pub async fn seed(
        &self,
        torrent: &[u8],
        name: &str,
        folder: &Path,
        timeout: Duration,
    ) -> Result<Seeded, SwarmError> {
        match self {
            Self::Librqbit(s) => Ok(Seeded::Librqbit(
                s.seed(torrent, name, folder, timeout).await?,
            )),
            Self::Wire(w) => Ok(Seeded::Wire(w.seed(torrent, name, folder).await?)),
        }
    }

    /// The wire seeder's connection counters (None for a librqbit session).
    pub fn wire_counters(&self) -> Option<std::sync::Arc<crate::wire::WireCounters>> {
        match self {
            Self::Librqbit(_) => None,
            Self::Wire(w) => Some(w.counters_handle()),
        }
    }

    /// Peer connections being served now (the wire seeder's; None for a librqbit session).
    pub fn connections(&self) -> Option<usize> {
        match self {
            Self::Librqbit(_) => None,
            Self::Wire(w) => Some(w.connections()),
        }
    }

    /// Pieces the wire seeder found late and offered to another peer, and how many of those
    /// arrived after all ([`crate::wire::WireCounters`]); `(0, 0)` for a librqbit session.
    pub fn late_pieces(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        match self {
            Self::Librqbit(_) => (0, 0),
            Self::Wire(w) => (
                w.counters().late_pieces.load(Relaxed),
                w.counters().late_arrived.load(Relaxed),
            ),
        }
    }

    /// Payload bytes of `t` sent to peers so far.
    pub fn uploaded(&self, t: &Seeded) -> u64 {
        match (self, t) {
            (Self::Librqbit(s), Seeded::Librqbit(t)) => s.stats(t).uploaded,
            (_, Seeded::Wire(t)) => t.uploaded(),
            (Self::Wire(_), Seeded::Librqbit(_)) => 0,
        }
    }

    /// Payload bytes of `t` sent on connections the seeder dialled (the wire seeder never
    /// dials).
    pub fn dialled_bytes(&self, t: &Seeded) -> u64 {
        match (self, t) {
            (Self::Librqbit(s), Seeded::Librqbit(t)) => s
                .peer_bytes(t)
                .iter()
                .filter(|p| p.dialled > 0)
                .map(|p| p.uploaded)
                .sum(),
            _ => 0,
        }
    }

    /// Stops seeding `t`, keeping its file.
    pub async fn forget(&self, t: &Seeded) {
        match (self, t) {
            (Self::Librqbit(s), Seeded::Librqbit(t)) => s.forget(t).await,
            (Self::Wire(w), Seeded::Wire(t)) => w.forget(t).await,
            _ => {}
        }
    }

    /// Stops: closes the listener and every connection; returns once the seeder's tasks ended.
    pub async fn shutdown(&self) {
        match self {
            Self::Librqbit(s) => s.shutdown().await,
            Self::Wire(w) => w.shutdown().await,
        }
    }
}
