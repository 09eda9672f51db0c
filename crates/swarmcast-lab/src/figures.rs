//! The figures every transport shares (pure), computed from a run's records alone: each node's
//! arrival curve, a simulated player over it with the same playout buffer for every transport
//! (stalls, stall time, startup, glass to glass), the bytes it never played, and where its
//! payload came from.
//!
//! - **Segment transports** (swarm, HTTP): a segment is there to play when its `completed` event
//!   is recorded (played segments only; a segment the viewer skipped never arrives); its media
//!   range is the publisher's `cut` event's. Bytes lost: the published segments from the first
//!   it played to the stream's end (to its last played, for a node that left) that it did not
//!   play.
//! - **Continuous transports** (the relays): the node's `stream_bytes` samples say how many
//!   output bytes it had when; its output, aligned with the published stream ([`align`], done
//!   by the lab before it deletes media and kept as `runs/<id>/<node>.align.json`), says which
//!   published bytes those were; a published byte's media time is its segment's start plus the
//!   segment's duration in proportion to the bytes before it in the segment (the synthetic feed
//!   pads every second to the bitrate, so the error is below a second's variation in size; a
//!   sample of 100 ms adds up to 100 ms). Bytes lost: the published bytes from the first it
//!   played to the stream's end (to its last played, for a node that left) that it did not play,
//!   exactly.
//!
//! [`playout`] documents the player; `docs/experiments.md` (Method) the figures.

pub mod align;
pub mod playout;

use serde::{Deserialize, Serialize};
use swarmcast_metrics::{Event, Kind};

use align::Alignment;
use playout::{Chunk, Playout, Published};

/// The published stream from the publisher's `cut` events.
pub fn published(publisher: &[Event]) -> Published {
    Published::new(
        publisher
            .iter()
            .filter_map(|e| match e.kind {
                Kind::Cut {
                    size,
                    media_start,
                    duration,
                    ..
                } => Some((e.seg?, size, media_start, duration, e.wall_us)),
                _ => None,
            })
            .collect(),
    )
}

/// One node's shared figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeFigures {
    /// Node name.
    pub node: String,
    /// The simulated player.
    pub playout: Playout,
    /// Node start → playout start, ms (None: it never started playing).
    pub startup_ms: Option<f64>,
    /// Published bytes in the node's range (first played to the end, or to its last played if
    /// it left).
    pub range_bytes: u64,
    /// Of those, never played.
    pub lost_bytes: u64,
    /// Output bytes that were never published (continuous transports; 0 for segments, whose
    /// outputs are checked byte for byte).
    pub foreign_bytes: u64,
    /// Payload bytes received.
    pub payload_bytes: u64,
    /// Of those, from the publisher's host.
    pub from_publisher_bytes: u64,
}

/// When a node started (wall clock, µs): its first event's wall time less its monotonic time.
fn node_start_us(events: &[Event]) -> Option<u64> {
    events.first().map(|e| e.wall_us.saturating_sub(e.mono_us))
}

fn finish(
    mut f: NodeFigures,
    chunks: &[Chunk],
    events: &[Event],
    buffer: u64,
    p: &Published,
) -> NodeFigures {
    f.playout = playout::simulate(chunks, buffer, p);
    f.startup_ms = match (f.playout.start_us, node_start_us(events)) {
        (Some(s), Some(n)) => Some(s.saturating_sub(n) as f64 / 1000.0),
        _ => None,
    };
    f
}

/// A segment transport's node: its `completed` and `played` events. `left`: it left the run
/// early (churn), so its range ends at its last played segment.
pub fn segment_node(
    node: &str,
    events: &[Event],
    published: &Published,
    buffer: u64,
    left: bool,
) -> NodeFigures {
    let mut completed = std::collections::BTreeMap::new();
    let mut played = Vec::new();
    let mut f = NodeFigures {
        node: node.to_owned(),
        ..NodeFigures::default()
    };
    for e in events {
        match &e.kind {
            Kind::Completed {
                from_publisher,
                from_peers,
                from_http,
                ..
            } => {
                if let Some(n) = e.seg {
                    completed.entry(n).or_insert(e.wall_us);
                }
                f.payload_bytes += from_publisher + from_peers + from_http;
                f.from_publisher_bytes += from_publisher + from_http;
            }
            Kind::Forgotten {
                from_publisher,
                from_peers,
                ..
            } => {
                f.payload_bytes += from_publisher + from_peers;
                f.from_publisher_bytes += from_publisher;
            }
            Kind::Played { .. } => played.extend(e.seg.map(|n| (n, e.wall_us))),
            _ => {}
        }
    }
    let chunks: Vec<Chunk> = played
        .iter()
        .filter_map(|&(n, played_us)| {
            let s = published.segment(n)?;
            Some(Chunk {
                start: s.media_start,
                end: s.media_start + s.duration,
                at_us: completed.get(&n).copied().unwrap_or(played_us),
            })
        })
        .collect();
    if let Some(first) = played.iter().map(|p| p.0).min() {
        let last = match left {
            true => played.iter().map(|p| p.0).max().unwrap_or(first),
            false => published.segments.last().map_or(first, |s| s.n),
        };
        let played: std::collections::BTreeSet<u64> = played.iter().map(|p| p.0).collect();
        for s in published
            .segments
            .iter()
            .filter(|s| (first..=last).contains(&s.n))
        {
            f.range_bytes += s.size;
            if !played.contains(&s.n) {
                f.lost_bytes += s.size;
            }
        }
    }
    finish(f, &chunks, events, buffer, published)
}

/// The host of a URL (`http://10.0.0.2:8000/live.ts` → `10.0.0.2`).
pub fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', ':', '?']).next().unwrap_or(rest)
}

/// A continuous transport's node: its `stream_connected` and `stream_bytes` events and its
/// output's [`Alignment`]. Bytes received while connected to a URL on one of
/// `publisher_hosts` came from the publisher.
pub fn continuous_node(
    node: &str,
    events: &[Event],
    alignment: &Alignment,
    published: &Published,
    buffer: u64,
    left: bool,
    publisher_hosts: &[String],
) -> NodeFigures {
    let mut f = NodeFigures {
        node: node.to_owned(),
        foreign_bytes: alignment.foreign_bytes,
        ..NodeFigures::default()
    };
    let mut chunks = Vec::new();
    let mut from_publisher = false;
    let mut prev = 0u64;
    for e in events {
        match &e.kind {
            Kind::StreamConnected { url, .. } => {
                from_publisher = publisher_hosts.iter().any(|h| h == url_host(url));
            }
            Kind::StreamBytes { total } if *total > prev => {
                f.payload_bytes += total - prev;
                if from_publisher {
                    f.from_publisher_bytes += total - prev;
                }
                for (a, b) in alignment.published_ranges(prev, *total) {
                    chunks.push(Chunk {
                        start: published.media_at(a),
                        end: published.media_at(b),
                        at_us: e.wall_us,
                    });
                }
                prev = *total;
            }
            _ => {}
        }
    }
    // A striped node has one parent per substream: the publisher's share is its frame bytes'.
    let stripe = events.iter().rev().find_map(|e| match e.kind {
        Kind::StripeBytes {
            received,
            from_source,
        } if received > 0 => Some((received, from_source)),
        _ => None,
    });
    if let Some((received, from_source)) = stripe {
        f.from_publisher_bytes =
            (f.payload_bytes as f64 * from_source as f64 / received as f64).round() as u64;
    }
    // Output written but never sampled (a node killed between samples): no arrival time, so it
    // is neither played nor counted as received.
    if let Some((first, end)) = alignment.span() {
        let last = match left {
            true => end,
            false => published.bytes().max(end),
        };
        f.range_bytes = last - first;
        f.lost_bytes = f.range_bytes - alignment.covered(first, last);
    }
    finish(f, &chunks, events, buffer, published)
}

#[cfg(test)]
mod tests;
