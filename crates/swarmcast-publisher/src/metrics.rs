//! `GET /metrics`: the publisher's counters in the OpenMetrics text format, encoded by
//! `prometheus-client` (no exposition text is written here).
//!
//! The counters live where they are counted, each component's in a documented struct:
//! [`HttpCounters`](crate::http::HttpCounters) (the HTTP endpoints),
//! [`ConnCounters`](crate::serve::ConnCounters) (the HTTP server's connections),
//! [`FeedHealth`](swarmcast_segmenter::source::FeedHealth) (input dropped),
//! [`TrackerCounters`](crate::tracker::TrackerCounters) (the embedded tracker),
//! [`WireCounters`](swarmcast_swarm::wire::WireCounters) (the wire seeder's connections), and
//! the seeder's samples kept in [`Shared`]. [`Metrics`] reads them at each scrape as a
//! `prometheus-client` [`Collector`]. Names follow its conventions: a `swarmcast_` prefix,
//! `_total` on counters, `_bytes` for byte counts (base units).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::http::Shared;

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

/// Encodes one metric at a time.
struct Out<'a>(DescriptorEncoder<'a>);

impl Out<'_> {
    /// A counter; a name ending in `_bytes` is given the unit bytes.
    fn counter(&mut self, name: &str, help: &str, value: u64) -> std::fmt::Result {
        let (name, unit) = match name.strip_suffix("_bytes") {
            Some(base) => (base, Some(Unit::Bytes)),
            None => (name, None),
        };
        let metric = ConstCounter::new(value);
        metric.encode(
            self.0
                .encode_descriptor(name, help, unit.as_ref(), metric.metric_type())?,
        )
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) -> std::fmt::Result {
        let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
        metric.encode(
            self.0
                .encode_descriptor(name, help, None, metric.metric_type())?,
        )
    }
}

impl Collector for Metrics {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let shared = &self.0;
        let mut out = Out(encoder);
        let c = &shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (seq, window) = shared
            .current()
            .map_or((0, 0), |m| (m.manifest.seq, m.manifest.segments.len()));
        let segments = shared
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        out.gauge(
            "manifest_seq",
            "Sequence number of the manifest being served.",
            seq,
        )?;
        out.gauge(
            "window_segments",
            "Segments in the manifest's window.",
            window as u64,
        )?;
        out.gauge(
            "served_segments",
            "Segments seeded and served (window and grace period).",
            segments as u64,
        )?;
        let feed = &shared.feed;
        out.counter("input_dropped_bytes", "Input bytes that went into no published segment (segment files that could not be written or published).", get(&feed.dropped_bytes))?;
        out.counter("input_dropped_segments", "Segments lost to I/O errors (out of files, disk full) or to a publisher too busy to take them.", get(&feed.dropped_segments))?;
        out.counter(
            "input_outages",
            "Times the segment writer started failing.",
            get(&feed.outages),
        )?;
        out.gauge(
            "input_failing",
            "1 while the segment writer is dropping input.",
            u64::from(feed.failing().is_some()),
        )?;
        let conns = &shared.conns;
        out.gauge(
            "http_connections",
            "HTTP connections open now.",
            conns.open.load(Ordering::Relaxed) as u64,
        )?;
        out.counter(
            "http_connections_accepted",
            "HTTP connections accepted and served.",
            get(&conns.accepted),
        )?;
        out.counter(
            "http_refused_per_address",
            "HTTP connections closed on arrival: their address held --http-conns-per-address.",
            get(&conns.refused_per_address),
        )?;
        out.counter("http_refused_full", "HTTP connections closed on arrival: at --http-max-conns, every connection was in a request.", get(&conns.refused_full))?;
        out.counter(
            "http_evicted",
            "Idle HTTP connections closed to make room for a new one.",
            get(&conns.evicted),
        )?;
        out.counter(
            "http_header_timeouts",
            "HTTP connections closed for sending no request head in time (on arrival or idle).",
            get(&conns.header_timeouts),
        )?;
        out.counter(
            "http_write_timeouts",
            "HTTP connections closed for a write that made no progress in time.",
            get(&conns.write_timeouts),
        )?;
        out.counter(
            "http_accept_errors",
            "HTTP accept failures (out of files, say).",
            get(&conns.accept_errors),
        )?;
        out.counter(
            "manifest_responses",
            "Manifest documents sent.",
            get(&c.manifest_responses),
        )?;
        out.counter(
            "manifest_bytes",
            "Manifest bytes sent.",
            get(&c.manifest_bytes),
        )?;
        out.counter(
            "manifest_deltas",
            "Manifest answers sent as a delta (counted in manifest_responses_total too).",
            get(&c.manifest_deltas),
        )?;
        out.counter(
            "manifest_not_modified",
            "Manifest requests answered 304.",
            get(&c.manifest_not_modified),
        )?;
        out.counter(
            "long_polls_woken",
            "Blocking manifest reloads woken by a new manifest.",
            get(&c.long_polls_woken),
        )?;
        out.counter(
            "torrent_responses",
            "Segment .torrent files sent.",
            get(&c.torrent_responses),
        )?;
        out.counter(
            "torrent_bytes",
            "Segment .torrent bytes sent.",
            get(&c.torrent_bytes),
        )?;
        out.counter(
            "segment_requests",
            "Segment file requests over HTTP.",
            get(&c.segment_requests),
        )?;
        out.counter("segment_refused", "Segment requests answered 503: the fallback slots were taken while the swarm carried the stream.", get(&c.segment_refused))?;
        out.counter(
            "segment_http_bytes",
            "Segment bytes sent over HTTP (fallback and the HTTP baseline).",
            get(&c.segment_bytes),
        )?;
        out.counter(
            "swarm_uploaded_bytes",
            "Payload bytes uploaded to peers (the seeder's count).",
            get(&shared.uploaded_bytes),
        )?;
        out.counter("wire_late_pieces", "Pieces written whole to a viewer, unacknowledged after --late-piece, so offered to another viewer.", get(&shared.late_pieces))?;
        out.counter(
            "wire_late_arrived",
            "Of the late pieces, those the viewer acknowledged after all.",
            get(&shared.late_arrived),
        )?;
        if let Some(w) = &shared.wire {
            out.counter(
                "wire_connections_accepted",
                "Peer connections the wire seeder accepted.",
                get(&w.accepted),
            )?;
            out.counter(
                "wire_refused",
                "Peer connections refused: over the seeder's slots or --peer-conns-per-address, no handshake in time, or a torrent not seeded.",
                get(&w.refused),
            )?;
            out.counter(
                "wire_refused_per_address",
                "Of those, closed on arrival for --peer-conns-per-address.",
                get(&w.refused_per_address),
            )?;
            out.counter(
                "wire_violations",
                "Peer connections closed for a protocol violation (bad message, bad request, too many requests).",
                get(&w.violations),
            )?;
        }
        if let Some(tracker) = &shared.tracker {
            let t = tracker.lock().unwrap_or_else(|e| e.into_inner()).counters();
            out.counter(
                "tracker_announces",
                "Tracker announces answered.",
                t.announces,
            )?;
            out.counter("tracker_failures", "Tracker announces refused.", t.failures)?;
            out.counter(
                "tracker_expired",
                "Peers expired by the tracker.",
                t.expired,
            )?;
            out.counter(
                "tracker_nat_checks",
                "NAT checks started (connections back to a peer's listed address).",
                t.nat_checks,
            )?;
            out.counter(
                "tracker_nat_unreachable",
                "NAT checks that found the peer unreachable (never listed to others).",
                t.nat_unreachable,
            )?;
            out.counter("tracker_spared", "Announces from reachable peers answered with the publisher alone, their uplinks kept for peers behind a NAT.", t.spared)?;
            out.counter("tracker_caught_up", "Announces from peers nobody can dial answered with a min interval of 1 s: live reachable peers missing from the answer, or checks in flight.", t.caught_up)?;
            out.counter("tracker_punched", "Announces from peers that failed the NAT check answered with other such peers at the segment's punch port (--punch-ports).", t.punched)?;
            out.counter(
                "tracker_punch_listed",
                "Peers listed at a punch port, over all those announces.",
                t.punch_listed,
            )?;
        }
        out.gauge(
            "degraded",
            "1 when no new segments are taken (see the status page).",
            u64::from(shared.degraded.read().map(|d| d.is_some()).unwrap_or(false)),
        )?;
        Ok(())
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
            ("swarmcast_degraded", 0.0),
            ("swarmcast_wire_refused_per_address_total", 9.0),
        ] {
            assert_eq!(values.get(name), Some(&want), "{name} in\n{text}");
        }
        // Each named once; 42 with the tracker and the wire seeder (a new metric is counted
        // here too).
        assert_eq!(values.len(), scrape.samples.len());
        assert_eq!(values.len(), 42, "{text}");
    }
}
