//! `GET /metrics`: the viewer's figures in the OpenMetrics text format, encoded by
//! `prometheus-client` as a [`Collector`] that reads the live state ([`Live`]) at each scrape,
//! the way the publisher's `/metrics` does. Names: a `swarmcast_viewer_` prefix, `_total` on
//! counters, `_bytes` for byte counts (base units), `_seconds` for times.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use swarmcast_metrics::exposition::Encoder;

use crate::live::{Live, LiveSnapshot};

pub use swarmcast_metrics::exposition::{
    prometheus_text, OPENMETRICS_CONTENT_TYPE as CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE,
};

/// The viewer's metrics, read from the live state at each scrape.
#[derive(Debug)]
struct Metrics(Live);

/// The text of `GET /metrics`.
pub fn render(live: &Live) -> String {
    let mut registry = Registry::with_prefix("swarmcast_viewer");
    registry.register_collector(Box::new(Metrics(live.clone())));
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// Encodes one metric at a time ([`Encoder`]); the figures' methods are its own.
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
        let s: LiveSnapshot = self.0.snapshot();
        let mut out = Out(Encoder(encoder));
        out.counters(&s)?;
        out.gauges(&s)
    }
}

impl Out<'_> {
    /// The figures that only grow.
    fn counters(&mut self, s: &LiveSnapshot) -> std::fmt::Result {
        let out = self;
        out.counter(
            "segments_played",
            "Segments written to the output.",
            s.played,
        )?;
        out.counter(
            "segments_skipped",
            "Segments skipped (left the window before they could be fetched, or numbers no manifest listed).",
            s.skipped,
        )?;
        out.counter("stalls", "Segments that were late for playback.", s.stalls)?;
        out.counter_f64(
            "stall_seconds",
            "Time playback waited for late segments.",
            s.stall_ms as f64 / 1000.0,
        )?;
        out.counter("output_bytes", "Bytes written to the output.", s.bytes_out)?;
        out.counter(
            "from_publisher_bytes",
            "Payload bytes received from the publisher over BitTorrent (counted when a segment completes, or is forgotten).",
            s.from_publisher,
        )?;
        out.counter(
            "from_peers_bytes",
            "Payload bytes received from other viewers (counted as from_publisher).",
            s.from_peers,
        )?;
        out.counter(
            "from_http_bytes",
            "Bytes received over HTTP (fallback, or the HTTP transport).",
            s.from_http,
        )?;
        out.counter(
            "uploaded_bytes",
            "Payload bytes uploaded to other viewers (counted when a segment is forgotten).",
            s.uploaded,
        )?;
        out.counter(
            "http_fallbacks",
            "HTTP fallbacks started for late segments.",
            s.fallbacks,
        )?;
        out.counter("manifests_fetched", "Manifests accepted.", s.manifests)?;
        out.counter(
            "manifest_bytes",
            "Manifest bytes fetched.",
            s.manifest_bytes,
        )?;
        out.counter(
            "manifests_refused",
            "Manifests refused (forged, stale, malformed, another stream's).",
            s.manifests_refused,
        )
    }

    /// The figures of the moment.
    fn gauges(&mut self, s: &LiveSnapshot) -> std::fmt::Result {
        let out = self;
        out.gauge(
            "peers",
            "Other viewers that exchanged payload with this one in one segment's swarm, the most over the segments held (sampled each second).",
            s.peers as f64,
        )?;
        out.gauge(
            "connections",
            "Peer connections open now over every segment's swarm, the publisher's included (sampled each second).",
            s.connections as f64,
        )?;
        out.gauge(
            "buffer_ahead_seconds",
            "Media time verified and not yet played, from the next segment to play on.",
            s.buffer_ahead_ms as f64 / 1000.0,
        )?;
        out.gauge(
            "download_rate_bytes",
            "Bytes received per second over the last 5 s (swarm and HTTP).",
            s.download_rate as f64,
        )?;
        out.gauge(
            "last_setup_seconds",
            "The last segment's setup time from the swarm: added to first verified piece (NaN before any).",
            s.last_setup_ms.map_or(f64::NAN, |ms| ms / 1000.0),
        )?;
        out.gauge(
            "playing_segment",
            "The number of the last segment written to the output (-1 before any).",
            s.playing.map_or(-1.0, |n| n as f64),
        )?;
        out.gauge(
            "verified_segments",
            "Segments verified and not yet forgotten.",
            s.segments.len() as f64,
        )?;
        out.gauge(
            "end_of_stream",
            "1 once a manifest said the stream has ended.",
            f64::from(u8::from(s.end_of_stream)),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Every figure set to a value of its own, rendered, and read back by an independent parser
    /// (`prometheus-parse`): each sample has the value of the figure it names.
    #[test]
    fn what_is_rendered_parses_back_to_the_live_figures() {
        let live = Live::default();
        live.update(|s| {
            s.played = 7;
            s.skipped = 1;
            s.stalls = 2;
            s.stall_ms = 1_500;
            s.bytes_out = 9_000_000_000;
            s.from_publisher = 11;
            s.from_peers = 12;
            s.from_http = 13;
            s.uploaded = 14;
            s.fallbacks = 3;
            s.manifests = 20;
            s.manifest_bytes = 4_096;
            s.manifests_refused = 4;
            s.peers = 5;
            s.connections = 6;
            s.buffer_ahead_ms = 6_250;
            s.download_rate = 125_000;
            s.last_setup_ms = Some(42.0);
            s.playing = Some(8);
            s.end_of_stream = true;
        });
        let text = render(&live);
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
            ("swarmcast_viewer_segments_played_total", 7.0),
            ("swarmcast_viewer_segments_skipped_total", 1.0),
            ("swarmcast_viewer_stalls_total", 2.0),
            ("swarmcast_viewer_stall_seconds_total", 1.5),
            ("swarmcast_viewer_output_bytes_total", 9e9),
            ("swarmcast_viewer_from_publisher_bytes_total", 11.0),
            ("swarmcast_viewer_from_peers_bytes_total", 12.0),
            ("swarmcast_viewer_from_http_bytes_total", 13.0),
            ("swarmcast_viewer_uploaded_bytes_total", 14.0),
            ("swarmcast_viewer_http_fallbacks_total", 3.0),
            ("swarmcast_viewer_manifests_fetched_total", 20.0),
            ("swarmcast_viewer_manifest_bytes_total", 4_096.0),
            ("swarmcast_viewer_manifests_refused_total", 4.0),
            ("swarmcast_viewer_peers", 5.0),
            ("swarmcast_viewer_connections", 6.0),
            ("swarmcast_viewer_buffer_ahead_seconds", 6.25),
            ("swarmcast_viewer_download_rate_bytes", 125_000.0),
            ("swarmcast_viewer_last_setup_seconds", 0.042),
            ("swarmcast_viewer_playing_segment", 8.0),
            ("swarmcast_viewer_verified_segments", 0.0),
            ("swarmcast_viewer_end_of_stream", 1.0),
        ] {
            assert_eq!(values.get(name), Some(&want), "{name} in\n{text}");
        }
        assert_eq!(values.len(), scrape.samples.len());
        assert_eq!(values.len(), 21, "{text}");

        // The same in the Prometheus text format: each family named as its sample.
        let old = prometheus_text(&text);
        assert!(!old.contains("# EOF") && !old.contains("# UNIT"), "{old}");
        assert!(old.contains(
            "# HELP swarmcast_viewer_stalls_total Segments that were late for playback.\n\
             # TYPE swarmcast_viewer_stalls_total counter\nswarmcast_viewer_stalls_total 2\n"
        ));
        assert!(old.contains("# TYPE swarmcast_viewer_peers gauge\nswarmcast_viewer_peers 5.0\n"));
        let scrape =
            prometheus_parse::Scrape::parse(old.lines().map(|l| Ok(l.to_owned()))).expect("parses");
        assert_eq!(scrape.samples.len(), 21);
        assert!(scrape.docs.contains_key("swarmcast_viewer_stalls_total"));
    }
}
