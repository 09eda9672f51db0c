//! The figures every transport shares, for a run: each node's [`NodeFigures`] (read as its
//! transport says, [`crate::transport::node_figures`]) added up, and the network's bytes against
//! the stream's.
//!
//! - publisher upload: IP bytes the publisher's host sent (the publisher, and the source Icecast
//!   or root relay beside it) / bytes of the published stream: copies of the stream it sent;
//! - share from peers: payload bytes nodes received from anyone but the publisher's host / all
//!   payload bytes they received;
//! - protocol overhead: IP bytes every host sent / payload bytes the nodes received (1: none);
//! - stalls, stall time, startup and glass to glass from the simulated player
//!   ([`crate::figures::playout`]), the same buffer for every transport;
//! - bytes lost: published bytes in each node's range it never played, over the bytes in those
//!   ranges.

use super::{quantile, ratio, RunRecords};
use crate::figures::{self, playout::TICKS, NodeFigures};

/// A run's shared figures.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Common {
    pub nodes: Vec<NodeFigures>,
    pub startup_median_ms: f64,
    pub stalls: u64,
    pub stall_ms: f64,
    pub stall_share: f64,
    pub lost_bytes: u64,
    pub lost_share: f64,
    pub foreign_bytes: u64,
    pub never_played: usize,
    pub glass_median_ms: f64,
    pub glass_p95_ms: f64,
    pub publisher_upload_per_stream: f64,
    pub share_from_peers: f64,
    pub wire_per_payload: f64,
}

/// Whether a run has the shared figures (records older than them have no playout buffer).
pub(crate) fn has_common(spec: &crate::plan::RunSpec) -> bool {
    spec.playout_buffer_secs > 0.0
}

impl Common {
    fn none() -> Self {
        Self {
            nodes: Vec::new(),
            startup_median_ms: f64::NAN,
            stalls: 0,
            stall_ms: f64::NAN,
            stall_share: f64::NAN,
            lost_bytes: 0,
            lost_share: f64::NAN,
            foreign_bytes: 0,
            never_played: 0,
            glass_median_ms: f64::NAN,
            glass_p95_ms: f64::NAN,
            publisher_upload_per_stream: f64::NAN,
            share_from_peers: f64::NAN,
            wire_per_payload: f64::NAN,
        }
    }
}

/// The shared figures of a run (NaN for records older than them).
pub(super) fn common(r: &RunRecords) -> Common {
    let spec = &r.run.spec;
    if !has_common(spec) {
        return Common::none();
    }
    let published = figures::published(&r.publisher);
    let buffer = (spec.playout_buffer_secs * TICKS as f64).round() as u64;
    let net = r.run.outcome.net.as_ref();
    let publisher_hosts: Vec<String> = net
        .map(|n| {
            n.hosts
                .iter()
                .filter(|h| super::net::is_broadcaster(&h.node))
                .flat_map(|h| [h.addr.to_string(), h.public.to_string()])
                .collect()
        })
        .unwrap_or_else(|| vec!["127.0.0.1".into()]);
    let left = |node: &str| {
        r.run
            .outcome
            .viewers
            .iter()
            .any(|v| v.node == node && v.churned)
    };
    let reading = crate::transport::Reading {
        transport: spec.transport,
        dir: &r.dir,
        published: &published,
        buffer_ticks: buffer,
        publisher_hosts: &publisher_hosts,
    };
    let nodes: Vec<NodeFigures> = r
        .viewers
        .iter()
        .map(|(node, events)| crate::transport::node_figures(&reading, node, events, left(node)))
        .collect();
    let startup: Vec<f64> = nodes.iter().filter_map(|n| n.startup_ms).collect();
    let glass: Vec<f64> = nodes
        .iter()
        .flat_map(|n| n.playout.glass_ms.iter().copied())
        .collect();
    let sum = |f: fn(&NodeFigures) -> u64| nodes.iter().map(f).sum::<u64>();
    let stall_us = sum(|n| n.playout.stall_us);
    let played_us = sum(|n| n.playout.played_ticks) as f64 * 1e6 / TICKS as f64;
    let payload = sum(|n| n.payload_bytes);
    let (publisher_tx, all_tx) = net.map_or((f64::NAN, f64::NAN), |n| {
        let tx = |f: &dyn Fn(&str) -> bool| {
            n.links
                .iter()
                .filter(|l| f(&l.node))
                .map(|l| l.tx_bytes)
                .sum::<u64>() as f64
        };
        (tx(&super::net::is_broadcaster), tx(&|_| true))
    });
    let lost = sum(|n| n.lost_bytes);
    Common {
        startup_median_ms: quantile(&startup, 0.5),
        stalls: sum(|n| n.playout.stalls),
        stall_ms: stall_us as f64 / 1000.0,
        stall_share: ratio(stall_us as f64, played_us),
        lost_bytes: lost,
        lost_share: ratio(lost as f64, sum(|n| n.range_bytes) as f64),
        foreign_bytes: sum(|n| n.foreign_bytes),
        never_played: nodes
            .iter()
            .filter(|n| n.playout.start_us.is_none() && !left(&n.node))
            .count(),
        glass_median_ms: quantile(&glass, 0.5),
        glass_p95_ms: quantile(&glass, 0.95),
        publisher_upload_per_stream: ratio(publisher_tx, published.bytes() as f64),
        share_from_peers: ratio(
            (payload - sum(|n| n.from_publisher_bytes)) as f64,
            payload as f64,
        ),
        wire_per_payload: ratio(all_tx, payload as f64),
        nodes,
    }
}
