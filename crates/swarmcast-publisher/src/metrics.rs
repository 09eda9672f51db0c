//! `GET /metrics`: the publisher's counters in the OpenMetrics text format, encoded by
//! `prometheus-client` (no exposition text is written here).
//!
//! The counters live where they are counted, each component's in a documented struct:
//! [`HttpCounters`] (the HTTP endpoints), [`ConnCounters`] (the HTTP server's connections),
//! [`FeedHealth`] (input dropped), [`TrackerCounters`] (the embedded tracker), [`WireCounters`]
//! (the wire seeder's connections), and the seeder's samples kept in [`Shared`]. [`Metrics`]
//! reads them at each scrape as a `prometheus-client` [`Collector`], one component at a time.
//! Names follow its conventions: a `swarmcast_` prefix, `_total` on counters, `_bytes` for byte
//! counts (base units).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use swarmcast_metrics::exposition::Encoder;

use swarmcast_segmenter::source::FeedHealth;
use swarmcast_swarm::wire::WireCounters;

use crate::http::{HttpCounters, Shared};
use crate::serve::ConnCounters;
use crate::tracker::TrackerCounters;

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The publisher's metrics, read from [`Shared`] at each scrape.
#[derive(Debug)]
pub struct Metrics(pub Arc<Shared>);

/// The text of `GET /metrics`.
pub fn render(shared: &Arc<Shared>) -> String {
    let mut registry = Registry::with_prefix("swarmcast");
    registry.register_collector(Box::new(Metrics(shared.clone())));
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// Encodes one metric at a time ([`Encoder`]); the components' methods are its own.
struct Out<'a>(Encoder<'a>);

impl<'a> std::ops::Deref for Out<'a> {
    type Target = Encoder<'a>;
    fn deref(&self) -> &Encoder<'a> {
        &self.0
    }
}

impl std::ops::DerefMut for Out<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Collector for Metrics {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let shared = &self.0;
        let mut out = Out(Encoder(encoder));
        out.manifest_window(shared)?;
        out.feed(&shared.feed)?;
        out.connections(&shared.conns)?;
        out.http(&shared.counters)?;
        out.seeder(shared)?;
        if let Some(w) = &shared.wire {
            out.wire(w)?;
        }
        if let Some(tracker) = &shared.tracker {
            let t = tracker.lock().unwrap_or_else(|e| e.into_inner()).counters();
            out.tracker(&t)?;
        }
        out.gauge_int(
            "degraded",
            "1 when no new segments are taken (see the status page).",
            u64::from(shared.degraded.read().map(|d| d.is_some()).unwrap_or(false)),
        )
    }
}

/// A counter's value now.
fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// One component's metrics at a time, in the order they are exposed.
impl Out<'_> {
    /// The manifest being served and the segments served: `manifest_seq`, `window_segments`,
    /// `served_segments`.
    fn manifest_window(&mut self, shared: &Shared) -> std::fmt::Result {
        let (seq, window) = shared
            .current()
            .map_or((0, 0), |m| (m.manifest.seq, m.manifest.segments.len()));
        let segments = shared
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        self.gauge_int(
            "manifest_seq",
            "Sequence number of the manifest being served.",
            seq,
        )?;
        self.gauge_int(
            "window_segments",
            "Segments in the manifest's window.",
            window as u64,
        )?;
        self.gauge_int(
            "served_segments",
            "Segments seeded and served (window and grace period).",
            segments as u64,
        )
    }

    /// The segment writer's input health: `input_*`.
    fn feed(&mut self, feed: &FeedHealth) -> std::fmt::Result {
        self.counter("input_dropped_bytes", "Input bytes that went into no published segment (segment files that could not be written or published).", get(&feed.dropped_bytes))?;
        self.counter("input_dropped_segments", "Segments lost to I/O errors (out of files, disk full) or to a publisher too busy to take them.", get(&feed.dropped_segments))?;
        self.counter(
            "input_outages",
            "Times the segment writer started failing.",
            get(&feed.outages),
        )?;
        self.gauge_int(
            "input_failing",
            "1 while the segment writer is dropping input.",
            u64::from(feed.failing().is_some()),
        )
    }

    /// The HTTP server's connections: `http_connections*`, `http_refused_*`, `http_evicted`,
    /// the timeouts and accept errors.
    fn connections(&mut self, conns: &ConnCounters) -> std::fmt::Result {
        self.gauge_int(
            "http_connections",
            "HTTP connections open now.",
            conns.open.load(Ordering::Relaxed) as u64,
        )?;
        self.counter(
            "http_connections_accepted",
            "HTTP connections accepted and served.",
            get(&conns.accepted),
        )?;
        self.counter(
            "http_refused_per_address",
            "HTTP connections closed on arrival: their address held --http-conns-per-address.",
            get(&conns.refused_per_address),
        )?;
        self.counter("http_refused_full", "HTTP connections closed on arrival: at --http-max-conns, every connection was in a request.", get(&conns.refused_full))?;
        self.counter(
            "http_evicted",
            "Idle HTTP connections closed to make room for a new one.",
            get(&conns.evicted),
        )?;
        self.counter(
            "http_header_timeouts",
            "HTTP connections closed for sending no request head in time (on arrival or idle).",
            get(&conns.header_timeouts),
        )?;
        self.counter(
            "http_write_timeouts",
            "HTTP connections closed for a write that made no progress in time.",
            get(&conns.write_timeouts),
        )?;
        self.counter(
            "http_accept_errors",
            "HTTP accept failures (out of files, say).",
            get(&conns.accept_errors),
        )
    }

    /// The HTTP endpoints: `manifest_*`, `long_polls_woken`, `torrent_*`, `segment_*`.
    fn http(&mut self, c: &HttpCounters) -> std::fmt::Result {
        self.counter(
            "manifest_responses",
            "Manifest documents sent.",
            get(&c.manifest_responses),
        )?;
        self.counter(
            "manifest_bytes",
            "Manifest bytes sent.",
            get(&c.manifest_bytes),
        )?;
        self.counter(
            "manifest_deltas",
            "Manifest answers sent as a delta (counted in manifest_responses_total too).",
            get(&c.manifest_deltas),
        )?;
        self.counter(
            "manifest_not_modified",
            "Manifest requests answered 304.",
            get(&c.manifest_not_modified),
        )?;
        self.counter(
            "long_polls_woken",
            "Blocking manifest reloads woken by a new manifest.",
            get(&c.long_polls_woken),
        )?;
        self.counter(
            "torrent_responses",
            "Segment .torrent files sent.",
            get(&c.torrent_responses),
        )?;
        self.counter(
            "torrent_bytes",
            "Segment .torrent bytes sent.",
            get(&c.torrent_bytes),
        )?;
        self.counter(
            "segment_requests",
            "Segment file requests over HTTP.",
            get(&c.segment_requests),
        )?;
        self.counter("segment_refused", "Segment requests answered 503: the fallback slots were taken while the swarm carried the stream.", get(&c.segment_refused))?;
        self.counter(
            "segment_http_bytes",
            "Segment bytes sent over HTTP (fallback and the HTTP baseline).",
            get(&c.segment_bytes),
        )
    }

    /// The seeder's samples kept in [`Shared`]: `swarm_uploaded_bytes`, `wire_late_*`; and the
    /// external tracker's whitelist: `tracker_whitelist_*`.
    fn seeder(&mut self, shared: &Shared) -> std::fmt::Result {
        self.counter(
            "swarm_uploaded_bytes",
            "Payload bytes uploaded to peers (the seeder's count).",
            get(&shared.uploaded_bytes),
        )?;
        self.counter(
            "tracker_whitelist_updates",
            "External tracker whitelist rewrites and reloads (--tracker-whitelist).",
            get(&shared.whitelist_updates),
        )?;
        self.counter(
            "tracker_whitelist_failures",
            "External tracker whitelist rewrites or reloads that failed (the segment was published anyway).",
            get(&shared.whitelist_failures),
        )?;
        self.counter("wire_late_pieces", "Pieces written whole to a viewer, unacknowledged after --late-piece, so offered to another viewer.", get(&shared.late_pieces))?;
        self.counter(
            "wire_late_arrived",
            "Of the late pieces, those the viewer acknowledged after all.",
            get(&shared.late_arrived),
        )
    }

    /// The wire seeder's connections: `wire_connections_accepted`, `wire_refused*`,
    /// `wire_violations`, `wire_offers_ignored`, `wire_stranded_pieces`.
    fn wire(&mut self, w: &WireCounters) -> std::fmt::Result {
        self.counter(
            "wire_connections_accepted",
            "Peer connections the wire seeder accepted.",
            get(&w.accepted),
        )?;
        self.counter(
            "wire_refused",
            "Peer connections refused: over the seeder's slots or --peer-conns-per-address, no handshake in time, or a torrent not seeded.",
            get(&w.refused),
        )?;
        self.counter(
            "wire_refused_per_address",
            "Of those, closed on arrival for --peer-conns-per-address.",
            get(&w.refused_per_address),
        )?;
        self.counter(
            "wire_violations",
            "Peer connections closed for a protocol violation (bad message, bad request, too many requests).",
            get(&w.violations),
        )?;
        self.counter(
            "wire_offers_ignored",
            "Super-seeding: pieces offered to a viewer that asked for nothing in time, so offered to another viewer.",
            get(&w.offers_ignored),
        )?;
        self.counter(
            "wire_stranded_pieces",
            "Super-seeding: pieces whose one holder passed them on to nobody within --late-piece, so offered once more.",
            get(&w.stranded_pieces),
        )
    }

    /// The embedded tracker: `tracker_*`.
    fn tracker(&mut self, t: &TrackerCounters) -> std::fmt::Result {
        self.counter(
            "tracker_announces",
            "Tracker announces answered.",
            t.announces,
        )?;
        self.counter("tracker_failures", "Tracker announces refused.", t.failures)?;
        self.counter(
            "tracker_expired",
            "Peers expired by the tracker.",
            t.expired,
        )?;
        self.counter(
            "tracker_nat_checks",
            "NAT checks started (connections back to a peer's listed address).",
            t.nat_checks,
        )?;
        self.counter(
            "tracker_nat_unreachable",
            "NAT checks that found the peer unreachable (never listed to others).",
            t.nat_unreachable,
        )?;
        self.counter("tracker_spared", "Announces from reachable peers answered with the publisher alone, their uplinks kept for peers behind a NAT.", t.spared)?;
        self.counter("tracker_caught_up", "Announces from peers nobody can dial answered with a min interval of 1 s: live reachable peers missing from the answer, or checks in flight.", t.caught_up)?;
        self.counter("tracker_punched", "Announces from peers that failed the NAT check answered with other such peers at the segment's punch port (--punch-ports).", t.punched)?;
        self.counter(
            "tracker_punch_listed",
            "Peers listed at a punch port, over all those announces.",
            t.punch_listed,
        )?;
        self.counter(
            "tracker_displaced",
            "Peers displaced by newcomers: their address or their swarm held the most entries it may.",
            t.displaced,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::tracker::Tracker;

    /// Every counter set to a value of its own, rendered, and read back by an independent
    /// parser (`prometheus-parse`): each sample has the value of the counter it names.
    #[test]
    fn what_is_rendered_parses_back_to_the_counters_values() {
        let mut shared = Shared::new("swarmcast:?pk=x".into(), Some(Tracker::new(10, 5)));
        let wire = Arc::new(swarmcast_swarm::wire::WireCounters::default());
        wire.refused_per_address.store(9, Ordering::Relaxed);
        wire.offers_ignored.store(11, Ordering::Relaxed);
        wire.stranded_pieces.store(12, Ordering::Relaxed);
        shared.wire = Some(wire);
        let shared = Arc::new(shared);

        let c = &shared.counters;
        let set = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        set(&c.manifest_responses, 11);
        set(&c.manifest_bytes, 12_345);
        set(&c.segment_bytes, 9_000_000_000);
        set(&shared.uploaded_bytes, 77);
        set(&shared.feed.dropped_segments, 3);
        set(&shared.feed.dropped_bytes, 4_096);
        set(&shared.conns.evicted, 5);
        set(&shared.conns.accept_errors, 6);
        shared.conns.open.store(8, Ordering::Relaxed);

        let text = render(&shared);
        assert!(text.ends_with("# EOF\n"), "{text}");
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("parses");
        let values: HashMap<String, f64> = scrape
            .samples
            .iter()
            .map(|s| {
                let v = match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => panic!("{}: not a single value", s.metric),
                };
                (s.metric.clone(), v)
            })
            .collect();
        for (name, want) in [
            ("swarmcast_manifest_responses_total", 11.0),
            ("swarmcast_manifest_bytes_total", 12_345.0),
            ("swarmcast_segment_http_bytes_total", 9e9),
            ("swarmcast_swarm_uploaded_bytes_total", 77.0),
            ("swarmcast_input_dropped_segments_total", 3.0),
            ("swarmcast_input_dropped_bytes_total", 4_096.0),
            ("swarmcast_http_evicted_total", 5.0),
            ("swarmcast_http_accept_errors_total", 6.0),
            ("swarmcast_http_connections", 8.0),
            ("swarmcast_manifest_seq", 0.0),
            ("swarmcast_tracker_announces_total", 0.0),
            ("swarmcast_tracker_displaced_total", 0.0),
            ("swarmcast_degraded", 0.0),
            ("swarmcast_wire_refused_per_address_total", 9.0),
            ("swarmcast_wire_offers_ignored_total", 11.0),
            ("swarmcast_wire_stranded_pieces_total", 12.0),
        ] {
            assert_eq!(values.get(name), Some(&want), "{name} in\n{text}");
        }
        // Each named once; 46 with the tracker and the wire seeder (a new metric is counted
        // here too).
        assert_eq!(values.len(), scrape.samples.len());
        assert_eq!(values.len(), 47, "{text}");
    }
}
