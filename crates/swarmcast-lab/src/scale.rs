//! A closed-form model of what a stream costs from 10 to 10^5 viewers (issue 21;
//! docs/experiments.md, "Beyond one machine: a model").
//!
//! Per segment, the publisher sends the payload (a number of copies, measured flat in the
//! audience while its uplink is not saturated), its manifests and its tracker answers; each
//! viewer needs the manifest, then peers, then the first piece. [`Costs`] holds these per-segment
//! costs as straight lines in the audience, fitted ([`fit_line`]) to the net lab's measured
//! points at 10-100 viewers; [`Limits`] holds what runs out (the publisher's uplink and open
//! connections, the mirrors' uplinks, the DHT nodes closest to a segment's info hash);
//! [`predict`] gives, for a scheme ([`Scheme`]) and an audience, the load on each and the first
//! one exhausted. Pure arithmetic, no I/O.

/// A line `a + b·n`, in whatever unit its use says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Line {
    /// At zero viewers.
    pub a: f64,
    /// Per viewer.
    pub b: f64,
}

impl Line {
    /// The line at `n` viewers.
    pub fn at(&self, n: f64) -> f64 {
        self.a + self.b * n
    }
}

/// The least-squares line through `points` (viewers, value); `None` with fewer than two
/// distinct audiences.
pub fn fit_line(points: &[(f64, f64)]) -> Option<Line> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    if points.len() < 2 || sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let b = sxy / sxx;
    Some(Line { a: my - b * mx, b })
}

/// Per-segment costs, fitted to the lab (bytes per segment, ms).
#[derive(Clone, Debug, PartialEq)]
pub struct Costs {
    /// The segment duration, s.
    pub target_s: f64,
    /// Publisher payload bytes per segment (copies times the segment's size): flat in the
    /// audience in the lab's unsaturated range.
    pub payload: Line,
    /// Manifest bytes the publisher's HTTP server sends per segment when every viewer long-polls
    /// it (bodies and headers).
    pub http_manifests: Line,
    /// Tracker answer bytes per segment (the embedded tracker).
    pub tracker: Line,
    /// Manifest bytes the publisher sends per segment with manifests carried by the swarm
    /// (pushes, answers, and the HTTP backup's share).
    pub swarm_manifests: Line,
    /// Publication to the last viewer holding a manifest, HTTP (ms).
    pub http_last_ms: Line,
    /// The same with swarm-carried manifests: `a + b·log2(n)` (a push tree's depth grows with the
    /// log of the audience), ms.
    pub swarm_last_ms: Line,
    /// Bytes of one DHT peer-lookup reply (BEP 5 `get_peers` with values).
    pub dht_reply_bytes: f64,
    /// Peer lookups each viewer makes per segment (librqbit-dht 0002: about 0, 1, 3, 7, 15 s
    /// while the segment is live).
    pub dht_lookups_per_segment: f64,
}

/// What runs out.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// The publisher's uplink, bytes/s.
    pub publisher_uplink: f64,
    /// Connections the publisher's HTTP server holds at once (its file limit's share: every
    /// long-polling viewer holds one).
    pub publisher_connections: f64,
    /// Mirrors (static servers carrying the manifest), and each one's uplink, bytes/s.
    pub mirrors: f64,
    /// See `mirrors`.
    pub mirror_uplink: f64,
    /// DHT nodes that answer lookups for one info hash (BEP 5's k = 8 closest).
    pub dht_closest: f64,
    /// What one DHT node sends at most, bytes/s (libtorrent's `dht_upload_rate_limit` default:
    /// 8,000).
    pub dht_node_uplink: f64,
}

/// How manifests reach viewers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Every viewer long-polls the publisher, and announces to its tracker.
    Http,
    /// Viewers long-poll mirrors; the publisher serves the mirrors and the tracker.
    Mirrors,
    /// The DHT pointer and swarm-carried manifests; peers from the DHT, no tracker.
    SwarmDht,
}

/// The load at one audience.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Viewers.
    pub viewers: f64,
    /// The publisher's upload, bytes/s.
    pub publisher_bps: f64,
    /// Of it, manifests and tracker (the part that depends on the scheme), bytes/s.
    pub publisher_control_bps: f64,
    /// Connections the publisher holds.
    pub publisher_connections: f64,
    /// Each mirror's upload, bytes/s (0 without mirrors).
    pub mirror_bps: f64,
    /// Each of the DHT nodes closest to a segment's info hash, bytes/s (0 without the DHT).
    pub dht_node_bps: f64,
    /// Publication to the last viewer holding a manifest, ms.
    pub last_viewer_ms: f64,
    /// The resources used beyond their limit, worst first, with the ratio (use / limit).
    pub exhausted: Vec<(&'static str, f64)>,
}

/// The load of `scheme` at `n` viewers.
pub fn predict(c: &Costs, l: &Limits, scheme: Scheme, n: f64) -> Prediction {
    let per_s = |bytes_per_segment: f64| bytes_per_segment / c.target_s;
    let payload = per_s(c.payload.at(n));
    let (control, conns, mirror_bps, dht_bps, last) = match scheme {
        Scheme::Http => (
            per_s(c.http_manifests.at(n) + c.tracker.at(n)),
            n,
            0.0,
            0.0,
            c.http_last_ms.at(n),
        ),
        Scheme::Mirrors => {
            // The publisher long-polls like one viewer per mirror; each mirror serves its share.
            let per_viewer = c.http_manifests.b;
            (
                per_s(c.http_manifests.a + per_viewer * l.mirrors + c.tracker.at(n)),
                l.mirrors,
                per_s(per_viewer * n / l.mirrors),
                0.0,
                c.http_last_ms.at(n / l.mirrors),
            )
        }
        Scheme::SwarmDht => (
            per_s(c.swarm_manifests.at(n)),
            0.0,
            0.0,
            per_s(n * c.dht_lookups_per_segment * c.dht_reply_bytes / l.dht_closest),
            c.swarm_last_ms.at(n.max(1.0).log2()),
        ),
    };
    let publisher_bps = payload + control;
    let mut exhausted = vec![
        ("publisher uplink", publisher_bps / l.publisher_uplink),
        ("publisher connections", conns / l.publisher_connections),
        ("mirror uplink", mirror_bps / l.mirror_uplink),
        ("DHT nodes closest to a segment", dht_bps / l.dht_node_uplink),
    ];
    exhausted.retain(|(_, r)| *r > 1.0);
    exhausted.sort_by(|a, b| b.1.total_cmp(&a.1));
    Prediction {
        viewers: n,
        publisher_bps,
        publisher_control_bps: control,
        publisher_connections: conns,
        mirror_bps,
        dht_node_bps: dht_bps,
        last_viewer_ms: last,
        exhausted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn costs() -> Costs {
        Costs {
            target_s: 2.0,
            payload: Line { a: 300_000.0, b: 0.0 },
            http_manifests: Line { a: 0.0, b: 2_500.0 },
            tracker: Line { a: 0.0, b: 200.0 },
            swarm_manifests: Line { a: 10_000.0, b: 0.0 },
            http_last_ms: Line { a: 30.0, b: 0.5 },
            swarm_last_ms: Line { a: 30.0, b: 40.0 },
            dht_reply_bytes: 500.0,
            dht_lookups_per_segment: 5.0,
        }
    }

    fn limits() -> Limits {
        Limits {
            publisher_uplink: 1_000_000.0,
            publisher_connections: 10_000.0,
            mirrors: 10.0,
            mirror_uplink: 1_000_000.0,
            dht_closest: 8.0,
            dht_node_uplink: 8_000.0,
        }
    }

    #[test]
    fn a_line_is_fitted_exactly_through_points_on_it_and_not_through_one() {
        let l = fit_line(&[(10.0, 25.0), (20.0, 45.0), (40.0, 85.0)]).unwrap();
        assert!((l.a - 5.0).abs() < 1e-9 && (l.b - 2.0).abs() < 1e-9, "{l:?}");
        assert_eq!(fit_line(&[(10.0, 1.0)]), None);
        assert_eq!(fit_line(&[(10.0, 1.0), (10.0, 2.0)]), None);
    }

    #[test]
    fn http_manifests_grow_with_the_audience_and_swarm_ones_do_not() {
        let (c, l) = (costs(), limits());
        let http = |n| predict(&c, &l, Scheme::Http, n).publisher_control_bps;
        let swarm = |n| predict(&c, &l, Scheme::SwarmDht, n).publisher_control_bps;
        assert!((http(1000.0) / http(100.0) - 10.0).abs() < 1e-9);
        assert_eq!(swarm(100.0), swarm(100_000.0));
    }

    #[test]
    fn the_first_resource_exhausted_is_named_at_each_scale() {
        let (c, l) = (costs(), limits());
        // 100 viewers over HTTP: 150 kB/s of payload + 135 kB/s of control, within 1 MB/s.
        assert!(predict(&c, &l, Scheme::Http, 100.0).exhausted.is_empty());
        // 1,000: 1.35 MB/s of control alone: the uplink goes first.
        let p = predict(&c, &l, Scheme::Http, 1000.0);
        assert_eq!(p.exhausted[0].0, "publisher uplink");
        // Swarm and DHT: the publisher stays at payload + 5 kB/s; the DHT's closest nodes are
        // what runs out (n · 5 · 500 / 8 / 2 bytes/s > 8,000 from 52 viewers).
        let p = predict(&c, &l, Scheme::SwarmDht, 100.0);
        assert_eq!(p.exhausted.len(), 1);
        assert_eq!(p.exhausted[0].0, "DHT nodes closest to a segment");
        assert!(predict(&c, &l, Scheme::SwarmDht, 50.0).exhausted.is_empty());
        // Mirrors share the long polls: 10,000 viewers put 1.25 MB/s on each of 10 mirrors; the
        // publisher still answers every viewer's tracker announces (1 MB/s): both run out.
        let p = predict(&c, &l, Scheme::Mirrors, 10_000.0);
        assert_eq!(p.exhausted[0].0, "mirror uplink");
        assert_eq!(p.exhausted[1].0, "publisher uplink");
        let tracker = 200.0 * 10_000.0 / 2.0;
        assert!((p.publisher_control_bps - tracker - 2_500.0 * 10.0 / 2.0).abs() < 1e-6);
    }

    #[test]
    fn the_last_viewer_waits_on_queueing_over_http_and_on_hops_in_the_swarm() {
        let (c, l) = (costs(), limits());
        let http = |n| predict(&c, &l, Scheme::Http, n).last_viewer_ms;
        let swarm = |n| predict(&c, &l, Scheme::SwarmDht, n).last_viewer_ms;
        assert_eq!(http(1000.0), 530.0);
        // log2(1024) = 10 doublings of 40 ms.
        assert!((swarm(1024.0) - 430.0).abs() < 1e-9);
    }
}
