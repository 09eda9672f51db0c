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
    /// What one DHT node near a segment's info hash sends per viewer and segment, as measured in
    /// the lab's `@manifests=dht` runs (the DHT host's bytes / viewers / its nodes: on a DHT of
    /// 24 nodes every lookup asks nearly all of them, as a lookup on the public DHT asks every
    /// one of the closest); `None` without such runs: then `dht_lookups_per_segment ·
    /// dht_reply_bytes / dht_closest`, an estimate.
    pub dht_node_bytes_per_viewer: Option<f64>,
    /// With peers carried: what one DHT node near the stream's peer key sends for one viewer's
    /// lookup of it (its `get_peers` rounds and the announce's answer; one at join, then one
    /// every [`Limits::key_every_s`]).
    pub dht_key_node_bytes: f64,
    /// With peers carried: what one DHT node near the stream's pointer sends for one viewer's
    /// join (its `get`s of the pointer until it finds the stream).
    pub dht_join_node_bytes: f64,
}

impl Costs {
    /// What one DHT node near a segment's info hash sends per viewer and segment: measured, or
    /// the estimate (see [`Costs::dht_node_bytes_per_viewer`]).
    pub fn dht_node_bytes(&self, l: &Limits) -> f64 {
        self.dht_node_bytes_per_viewer
            .unwrap_or(self.dht_lookups_per_segment * self.dht_reply_bytes / l.dht_closest)
    }
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
    /// Connections the publisher's seeder serves at once (the wire seeder's 1,024): with the DHT
    /// and swarm-carried manifests, its BitTorrent control traffic grows with the audience up
    /// to that many viewers, then stays.
    pub seeder_connections: f64,
    /// What one DHT node sends at most, bytes/s (libtorrent's `dht_upload_rate_limit` default:
    /// 8,000).
    pub dht_node_uplink: f64,
    /// With peers carried: how often a viewer looks the stream's peer key up, s
    /// (`swarmcast_core::carry::KEY_EVERY`).
    pub key_every_s: f64,
    /// With peers carried: how long a viewer watches on average, s (an assumption: viewers
    /// come and go, and each arrival is a join on the DHT).
    pub mean_watch_s: f64,
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
    /// The same with peers carried from segment to segment (`watch`'s default): the DHT
    /// sees joins and each viewer's lookup of the stream's peer key every few minutes, not a
    /// lookup per viewer and segment.
    SwarmDhtCarried,
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
    /// Each of the DHT nodes closest to a segment's info hash (with peers carried: to the
    /// stream's busier key, its peer key or its pointer), bytes/s (0 without the DHT).
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
        Scheme::SwarmDht | Scheme::SwarmDhtCarried => (
            // No tracker: the fitted other control (tracker and BitTorrent messages) is an upper
            // bound of what is left, the seeder's connections' messages.
            per_s(c.swarm_manifests.at(n) + c.tracker.at(n.min(l.seeder_connections))),
            0.0,
            0.0,
            if scheme == Scheme::SwarmDht {
                per_s(n * c.dht_node_bytes(l))
            } else {
                carried_dht_node_bps(c, l, n)
            },
            c.swarm_last_ms.at(n.max(1.0).log2()),
        ),
    };
    let publisher_bps = payload + control;
    let mut exhausted = vec![
        ("publisher uplink", publisher_bps / l.publisher_uplink),
        ("publisher connections", conns / l.publisher_connections),
        ("mirror uplink", mirror_bps / l.mirror_uplink),
        (
            if scheme == Scheme::SwarmDhtCarried {
                "DHT nodes closest to the stream's keys"
            } else {
                "DHT nodes closest to a segment"
            },
            dht_bps / l.dht_node_uplink,
        ),
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

/// With peers carried, what each of the DHT nodes closest to the stream's busier key sends,
/// bytes/s: the peer key's nodes answer every viewer's lookup every [`Limits::key_every_s`] and
/// every join's; the pointer's nodes answer the joins. Viewers arrive at `n / mean_watch_s` a
/// second, the audience steady.
pub fn carried_dht_node_bps(c: &Costs, l: &Limits, n: f64) -> f64 {
    let joins_per_s = n / l.mean_watch_s;
    let peer_key = n * c.dht_key_node_bytes / l.key_every_s + joins_per_s * c.dht_key_node_bytes;
    let pointer = joins_per_s * c.dht_join_node_bytes;
    peer_key.max(pointer)
}

/// What a run says about manifests (issue 21): what the publisher sent of them, and how long a
/// manifest took to reach the first and the last viewer.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestFigures {
    /// Viewers.
    pub viewers: usize,
    /// Segments published.
    pub segments: usize,
    /// Manifest bytes the publisher's HTTP server sent (bodies), per segment.
    pub http_per_segment: f64,
    /// Manifest exchange bytes the publisher sent (payloads and 6 bytes of framing per message),
    /// per segment.
    pub swarm_per_segment: f64,
    /// For each manifest published once every viewer was in (and before the end of the
    /// stream): publication to the last viewer holding it, ms.
    pub last_ms: Vec<f64>,
    /// The same manifests: the first viewer holding it to the last, ms.
    pub spread_ms: Vec<f64>,
    /// Each viewer: its process's start to its first manifest verified (over HTTP, or found on
    /// the DHT and fetched from a peer), ms.
    pub first_manifest_ms: Vec<f64>,
    /// IP bytes the run's DHT host sent (every DHT node's answers), per segment; `None` without
    /// a DHT host (`@manifests=dht`) or without the emulator.
    pub dht_sent_per_segment: Option<f64>,
}

/// BitTorrent framing of one extension message: length, message id 20, extended id.
const FRAMING: u64 = 6;

/// The manifest figures of one run (`None` without the publisher's `manifests_sent` record at
/// exit, written by builds from issue 21 on). Every node shares the machine's clock (`wall_us`); a
/// viewer holds sequence number s from its first `manifest_fetched` with seq >= s.
pub fn manifest_figures(r: &crate::results::RunRecords) -> Option<ManifestFigures> {
    use swarmcast_metrics::Kind;
    let mut published: std::collections::BTreeMap<u64, u64> = Default::default();
    let (mut segments, mut eos, mut sent) = (0, None, None);
    for e in &r.publisher {
        match &e.kind {
            Kind::Published { seq, .. } => {
                segments += 1;
                published.entry(*seq).or_insert(e.wall_us);
            }
            Kind::EndOfStream { seq } => eos = Some(*seq),
            // The totals at exit (no segment); those written as segments are forgotten cover
            // only part of the run.
            Kind::ManifestsSent {
                http_bytes,
                swarm_bytes,
                swarm_messages,
                ..
            } if e.seg.is_none() => {
                sent = Some((*http_bytes, swarm_bytes + FRAMING * swarm_messages))
            }
            _ => {}
        }
    }
    let (http, swarm) = sent?;
    let holds: Vec<Vec<(u64, u64)>> = r
        .viewers
        .values()
        .map(|events| {
            let mut h: Vec<(u64, u64)> = events
                .iter()
                .filter_map(|e| match &e.kind {
                    Kind::ManifestFetched { seq, .. } => Some((*seq, e.wall_us)),
                    _ => None,
                })
                .collect();
            h.sort_unstable();
            h
        })
        .collect();
    let (mut last_ms, mut spread_ms) = (Vec::new(), Vec::new());
    let all_in = holds
        .iter()
        .map(|h| h.first().map(|f| f.1))
        .collect::<Option<Vec<_>>>();
    if let Some(all_in) = all_in.and_then(|j| j.into_iter().max()) {
        for (&seq, &t_pub) in &published {
            if t_pub <= all_in || eos.is_some_and(|e| seq >= e) {
                continue;
            }
            let times: Option<Vec<u64>> = holds
                .iter()
                .map(|h| h.iter().find(|(s, _)| *s >= seq).map(|(_, t)| *t))
                .collect();
            let Some(times) = times else { continue };
            let (first, last) = (times.iter().min(), times.iter().max());
            if let (Some(&first), Some(&last)) = (first, last) {
                last_ms.push(last.saturating_sub(t_pub) as f64 / 1000.0);
                spread_ms.push((last - first) as f64 / 1000.0);
            }
        }
    }
    let per = |b: u64| b as f64 / segments.max(1) as f64;
    let first_manifest_ms = r
        .viewers
        .values()
        .filter_map(|events| {
            events
                .iter()
                .find(|e| matches!(e.kind, Kind::ManifestFetched { .. }))
                .map(|e| e.mono_us as f64 / 1000.0)
        })
        .collect();
    let dht_sent_per_segment = r
        .run
        .outcome
        .net
        .as_ref()
        .and_then(|n| n.emulator.as_ref())
        .and_then(|e| e.hosts.iter().find(|h| h.node == crate::netrun::DHT_HOST))
        .map(|h| per(h.sent.ip_bytes));
    Some(ManifestFigures {
        viewers: holds.len(),
        segments,
        http_per_segment: per(http),
        swarm_per_segment: per(swarm),
        last_ms,
        spread_ms,
        first_manifest_ms,
        dht_sent_per_segment,
    })
}

/// A run's summary and manifest figures, as [`model_report`] takes them.
pub type RunPoint = (crate::results::RunSummary, ManifestFigures);

/// Audiences the model is shown at.
pub const AUDIENCES: [f64; 5] = [10.0, 100.0, 1_000.0, 10_000.0, 100_000.0];

/// Bytes of one DHT `get_peers` reply with a list of peers (about 100 bytes of KRPC and node
/// list, and 6 bytes per peer, up to the ~100 a reply holds): an estimate, not measured.
pub const DHT_REPLY_BYTES: f64 = 600.0;

/// Peer lookups a viewer makes per segment (librqbit-dht 0002: about 0, 1, 3, 7 and 15 s after
/// it adds the segment, which stays about five segments in its window).
pub const DHT_LOOKUPS_PER_SEGMENT: f64 = 5.0;

/// With peers carried, bytes one DHT node near the stream's peer key sends per viewer's lookup
/// of it: measured, 1,209 and 1,258 in two captures on the lab's DHT host (20 viewers, 24
/// nodes, all of which answered: `scripts/dht-capture.py`; docs/experiments.md, "Eighth
/// session").
pub const DHT_KEY_NODE_BYTES: f64 = 1_250.0;

/// With peers carried, bytes one DHT node near the stream's pointer sends per viewer's join:
/// measured as above, 2,077 and 2,640 (viewers that start with the stream ask again until the
/// first pointer is there; a later join needs one lookup, so this is an upper bound).
pub const DHT_JOIN_NODE_BYTES: f64 = 2_640.0;

/// The model's mean watch time, s: an assumption, not measured.
pub const MEAN_WATCH_S: f64 = 600.0;

fn median(v: &[f64]) -> f64 {
    crate::results::quantile(v, 0.5)
}

/// A table cell of the `q` quantile of `v`, in whole ms, or "—" when `v` is empty.
fn ms_cell(v: &[f64], q: f64) -> String {
    if v.is_empty() {
        "—".to_owned()
    } else {
        format!("{:.0}", crate::results::quantile(v, q))
    }
}

/// Whether a run carried manifests in the swarm (its variant has `@manifests=swarm`).
fn swarm_carried(s: &crate::results::RunSummary) -> bool {
    s.kind.contains("manifests=swarm")
}

/// Whether a run found the stream on the DHT (`@manifests=dht`): shown, not fitted (the fits
/// compare HTTP and swarm-carried manifests with the tracker on).
fn on_dht(s: &crate::results::RunSummary) -> bool {
    s.kind.contains("manifests=dht")
}

/// Costs fitted to the runs of one network (one RTT): `None` unless both HTTP and swarm-carried
/// runs at two audiences or more are there.
pub fn fit_costs(points: &[&RunPoint]) -> Option<Costs> {
    let line = |pick: &dyn Fn(&RunPoint) -> Option<(f64, f64)>, swarm: bool| {
        let pts: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| !on_dht(&p.0) && swarm_carried(&p.0) == swarm)
            .filter_map(|p| pick(p))
            .collect();
        fit_line(&pts)
    };
    // The lab's wire figures are per byte of the segments (each segment counted once).
    let per_segment = |p: &RunPoint, per_byte: f64| per_byte * p.0.segment_bytes;
    let target_s = points.first()?.0.segment_secs;
    Some(Costs {
        target_s,
        // Flat in the audience while the publisher is not saturated (super-seeding sends about
        // one copy; the lab's points differ by noise): their mean.
        payload: {
            let all: Vec<f64> = points
                .iter()
                .map(|p| per_segment(p, p.0.publisher_payload_per_byte))
                .collect();
            Line {
                a: all.iter().sum::<f64>() / all.len() as f64,
                b: 0.0,
            }
        },
        http_manifests: line(&|p| Some((p.1.viewers as f64, p.1.http_per_segment)), false)?,
        tracker: line(
            &|p| {
                let control = per_segment(p, p.0.publisher_control_per_byte);
                Some((
                    p.1.viewers as f64,
                    (control - p.1.http_per_segment).max(0.0),
                ))
            },
            false,
        )?,
        swarm_manifests: line(
            &|p| {
                Some((
                    p.1.viewers as f64,
                    p.1.http_per_segment + p.1.swarm_per_segment,
                ))
            },
            true,
        )?,
        http_last_ms: line(
            &|p| (!p.1.last_ms.is_empty()).then(|| (p.1.viewers as f64, median(&p.1.last_ms))),
            false,
        )?,
        swarm_last_ms: line(
            &|p| {
                (!p.1.last_ms.is_empty())
                    .then(|| ((p.1.viewers as f64).log2(), median(&p.1.last_ms)))
            },
            true,
        )?,
        dht_reply_bytes: DHT_REPLY_BYTES,
        dht_lookups_per_segment: DHT_LOOKUPS_PER_SEGMENT,
        dht_node_bytes_per_viewer: {
            let measured: Vec<(&str, f64)> = points
                .iter()
                .filter(|p| on_dht(&p.0) && p.1.viewers > 0)
                .filter_map(|p| {
                    p.1.dht_sent_per_segment.map(|b| {
                        let per = b / p.1.viewers as f64 / f64::from(crate::runner::DHT_NODES);
                        (p.0.kind.as_str(), per)
                    })
                })
                .collect();
            measured_dht_cost(&measured)
        },
        dht_key_node_bytes: DHT_KEY_NODE_BYTES,
        dht_join_node_bytes: DHT_JOIN_NODE_BYTES,
    })
}

/// The DHT's cost per node, viewer and segment, measured: the mean over `runs` (each its
/// variant's kind and the DHT host's bytes / viewers / its nodes). The model counts a peer
/// lookup per viewer and segment, so when runs that carry peers (`@carry=on`) are among them,
/// the others (each segment looked up) are taken; runs recorded before peers were carried (docs/manifest.md,
/// "Peers carried from segment to segment") looked every segment up whatever their name.
fn measured_dht_cost(runs: &[(&str, f64)]) -> Option<f64> {
    let off: Vec<f64> = runs
        .iter()
        .filter(|(kind, _)| !kind.contains("carry=on"))
        .map(|r| r.1)
        .collect();
    let pick = if off.is_empty() {
        runs.iter().map(|r| r.1).collect()
    } else {
        off
    };
    (!pick.is_empty()).then(|| pick.iter().sum::<f64>() / pick.len() as f64)
}

/// The publishers the model is shown for: the lab's (its uplink cap, the default file limit's
/// share of connections) and a server.
pub fn publishers(lab_uplink: f64) -> [(&'static str, Limits); 2] {
    let base = Limits {
        publisher_uplink: lab_uplink,
        publisher_connections: 1_000.0,
        mirrors: 10.0,
        mirror_uplink: 12_500_000.0,
        dht_closest: 8.0,
        dht_node_uplink: 8_000.0,
        seeder_connections: 1_024.0,
        key_every_s: swarmcast_core::carry::KEY_EVERY.as_secs_f64(),
        mean_watch_s: MEAN_WATCH_S,
    };
    [
        ("the lab's publisher", base.clone()),
        (
            "a server (1 Gbit/s, 100,000 connections)",
            Limits {
                publisher_uplink: 125_000_000.0,
                publisher_connections: 100_000.0,
                ..base
            },
        ),
    ]
}

/// The manifest figures of every run, the costs fitted per network, and the model's loads from
/// 10 to 10^5 viewers, as Markdown.
pub fn model_report(points: &[RunPoint]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| run | network | viewers | HTTP manifest B/seg | swarm manifest B/seg | per viewer and segment | pub→last median ms | p95 | first→last median ms | p95 | start→first manifest median ms | p95 | DHT host B/seg (per viewer) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (s, m) in points {
        let total = m.http_per_segment + m.swarm_per_segment;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
            s.kind,
            s.net.as_deref().unwrap_or("loopback"),
            m.viewers,
            m.http_per_segment,
            m.swarm_per_segment,
            total / m.viewers.max(1) as f64,
            ms_cell(&m.last_ms, 0.5),
            ms_cell(&m.last_ms, 0.95),
            ms_cell(&m.spread_ms, 0.5),
            ms_cell(&m.spread_ms, 0.95),
            ms_cell(&m.first_manifest_ms, 0.5),
            ms_cell(&m.first_manifest_ms, 0.95),
            m.dht_sent_per_segment
                .map_or("none".to_owned(), |b| format!(
                    "{b:.0} ({:.0})",
                    b / m.viewers.max(1) as f64
                )),
        );
    }
    if points.iter().any(|(_, m)| m.last_ms.is_empty()) {
        let _ = writeln!(
            out,
            "\n—: no manifest was published while every viewer of the run was in (viewers came \
             and went, or the run ended first), so there is no last viewer to time."
        );
    }
    let mut nets: Vec<&str> = points
        .iter()
        .map(|p| p.0.net.as_deref().unwrap_or("loopback"))
        .collect();
    nets.sort_unstable();
    nets.dedup();
    for net in nets {
        let group: Vec<&RunPoint> = points
            .iter()
            .filter(|p| p.0.net.as_deref().unwrap_or("loopback") == net)
            .collect();
        let Some(c) = fit_costs(&group) else {
            let _ = writeln!(
                out,
                "\n{net}: not enough runs to fit (HTTP and swarm-carried, two audiences each)"
            );
            continue;
        };
        let _ = writeln!(
            out,
            "\n### {net}: costs fitted (bytes per {} s segment; a + b·n)\n\n\
             - publisher payload: {:.0} + {:.1}·n\n\
             - HTTP manifests: {:.0} + {:.1}·n\n\
             - other control (tracker, BitTorrent messages, HTTP headers): {:.0} + {:.1}·n\n\
             - swarm-carried manifests: {:.0} + {:.1}·n\n\
             - publication → last viewer, HTTP: {:.0} + {:.2}·n ms; swarm-carried: {:.0} + {:.0}·log2(n) ms\n",
            c.target_s,
            c.payload.a, c.payload.b,
            c.http_manifests.a, c.http_manifests.b,
            c.tracker.a, c.tracker.b,
            c.swarm_manifests.a, c.swarm_manifests.b,
            c.http_last_ms.a, c.http_last_ms.b,
            c.swarm_last_ms.a, c.swarm_last_ms.b,
        );
        let lab_uplink = group.first().map_or(0.0, |p| p.0.publisher_cap as f64);
        let _ = writeln!(
            out,
            "- each DHT node near a segment's info hash, per viewer: {:.0} bytes a segment ({})",
            c.dht_node_bytes(&publishers(lab_uplink)[0].1),
            match c.dht_node_bytes_per_viewer {
                Some(_) => "measured: the DHT host's bytes of the `@manifests=dht` runs (those without `@carry=on` if any: a lookup per viewer and segment) / viewers / its nodes",
                None => "estimated: lookups a segment × reply bytes / closest nodes; no `@manifests=dht` run",
            }
        );
        let _ = writeln!(
            out,
            "- with peers carried: each DHT node near the stream's peer key, {:.0} bytes per viewer's lookup of it (one at join, one every {:.0} s), near its pointer {:.0} bytes per join (measured by capture, constants); viewers watch {:.0} s on average (assumed)",
            c.dht_key_node_bytes,
            swarmcast_core::carry::KEY_EVERY.as_secs_f64(),
            c.dht_join_node_bytes,
            MEAN_WATCH_S,
        );
        for (who, limits) in publishers(lab_uplink) {
            let _ = writeln!(
                out,
                "\n{who}:\n\n| viewers | scheme | publisher B/s | of it manifests and control | connections | each mirror B/s | each closest DHT node B/s | last viewer ms | runs out first |\n|---:|---|---:|---:|---:|---:|---:|---:|---|"
            );
            for n in AUDIENCES {
                for (name, scheme) in [
                    ("HTTP", Scheme::Http),
                    ("mirrors (10)", Scheme::Mirrors),
                    ("DHT + swarm", Scheme::SwarmDht),
                    ("DHT + swarm, peers carried", Scheme::SwarmDhtCarried),
                ] {
                    let p = predict(&c, &limits, scheme, n);
                    let first = p
                        .exhausted
                        .first()
                        .map_or("nothing".to_owned(), |(r, x)| format!("{r} ({x:.1}x)"));
                    let _ = writeln!(
                        out,
                        "| {n:.0} | {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {first} |",
                        p.publisher_bps,
                        p.publisher_control_bps,
                        p.publisher_connections,
                        p.mirror_bps,
                        p.dht_node_bps,
                        p.last_viewer_ms,
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn costs() -> Costs {
        Costs {
            target_s: 2.0,
            payload: Line {
                a: 300_000.0,
                b: 0.0,
            },
            http_manifests: Line { a: 0.0, b: 2_500.0 },
            tracker: Line { a: 0.0, b: 200.0 },
            swarm_manifests: Line {
                a: 10_000.0,
                b: 0.0,
            },
            http_last_ms: Line { a: 30.0, b: 0.5 },
            swarm_last_ms: Line { a: 30.0, b: 40.0 },
            dht_reply_bytes: 500.0,
            dht_lookups_per_segment: 5.0,
            dht_node_bytes_per_viewer: None,
            dht_key_node_bytes: 1_200.0,
            dht_join_node_bytes: 2_400.0,
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
            seeder_connections: 1_000.0,
            key_every_s: 300.0,
            mean_watch_s: 600.0,
        }
    }

    #[test]
    fn carried_peers_load_the_dht_per_join_and_key_lookup_not_per_segment() {
        let (c, l) = (costs(), limits());
        // 600 viewers: the peer key's nodes answer 2 lookups a second from the audience and 1
        // from joins, 1,200 bytes each; the pointer's 1 join a second, 2,400 bytes.
        let p = predict(&c, &l, Scheme::SwarmDhtCarried, 600.0);
        assert!((p.dht_node_bps - 3_600.0).abs() < 1e-9, "{p:?}");
        assert!(p.exhausted.is_empty(), "{p:?}");
        // Against a lookup per viewer and segment: 5 × 500 / 8 bytes a node and viewer a 2 s
        // segment.
        let looked_up = predict(&c, &l, Scheme::SwarmDht, 600.0).dht_node_bps;
        assert!((looked_up - 93_750.0).abs() < 1e-9, "{looked_up}");
        // Joins weigh more when viewers stay less: at 60 s the pointer's nodes are the busier.
        let short = Limits {
            mean_watch_s: 60.0,
            ..l.clone()
        };
        let p = predict(&c, &short, Scheme::SwarmDhtCarried, 600.0);
        assert!((p.dht_node_bps - 24_000.0).abs() < 1e-9, "{p:?}");
        assert_eq!(p.exhausted[0].0, "DHT nodes closest to the stream's keys");
        // The publisher's side is the DHT scheme's.
        let d = predict(&c, &l, Scheme::SwarmDht, 600.0);
        assert_eq!(
            d.publisher_bps,
            predict(&c, &l, Scheme::SwarmDhtCarried, 600.0).publisher_bps
        );
    }

    #[test]
    fn a_measured_dht_cost_replaces_the_estimate() {
        let (mut c, l) = (costs(), limits());
        // The estimate: 5 lookups × 500 bytes over the 8 closest nodes.
        assert!((c.dht_node_bytes(&l) - 312.5).abs() < 1e-9);
        let estimated = predict(&c, &l, Scheme::SwarmDht, 1_000.0).dht_node_bps;
        c.dht_node_bytes_per_viewer = Some(1_250.0);
        let measured = predict(&c, &l, Scheme::SwarmDht, 1_000.0).dht_node_bps;
        assert!((measured / estimated - 4.0).abs() < 1e-9);
        // Per second: 1,000 viewers × 1,250 bytes a segment / the segment's seconds.
        assert!((measured - 1_000.0 * 1_250.0 / c.target_s).abs() < 1e-6);
    }

    #[test]
    fn the_dht_cost_is_measured_on_runs_that_look_every_segment_up() {
        let carried = "swarm-patched@manifests=dht@carry=on";
        let looked_up = "swarm-patched@manifests=dht";
        assert_eq!(
            measured_dht_cost(&[(carried, 500.0), (looked_up, 1_000.0), (looked_up, 1_200.0)]),
            Some(1_100.0)
        );
        // Only runs that carry: taken, there being nothing else.
        assert_eq!(measured_dht_cost(&[(carried, 500.0)]), Some(500.0));
        assert_eq!(measured_dht_cost(&[]), None);
    }

    #[test]
    fn a_run_without_a_timed_manifest_prints_a_dash_not_nan() {
        // With churn no manifest has every viewer in: the quantiles of nothing are not numbers.
        assert_eq!(ms_cell(&[], 0.5), "—");
        assert_eq!(ms_cell(&[], 0.95), "—");
        assert_eq!(ms_cell(&[120.4, 80.0, 95.0], 0.5), "95");
    }

    #[test]
    fn a_line_is_fitted_exactly_through_points_on_it_and_not_through_one() {
        let l = fit_line(&[(10.0, 25.0), (20.0, 45.0), (40.0, 85.0)]).unwrap();
        assert!(
            (l.a - 5.0).abs() < 1e-9 && (l.b - 2.0).abs() < 1e-9,
            "{l:?}"
        );
        assert_eq!(fit_line(&[(10.0, 1.0)]), None);
        assert_eq!(fit_line(&[(10.0, 1.0), (10.0, 2.0)]), None);
    }

    #[test]
    fn http_manifests_grow_with_the_audience_and_swarm_ones_do_not() {
        let (c, l) = (costs(), limits());
        let http = |n| predict(&c, &l, Scheme::Http, n).publisher_control_bps;
        let swarm = |n| predict(&c, &l, Scheme::SwarmDht, n).publisher_control_bps;
        assert!((http(1000.0) / http(100.0) - 10.0).abs() < 1e-9);
        // Beyond the seeder's connections, nothing grows with the audience.
        assert_eq!(swarm(1_000.0), swarm(100_000.0));
        assert!(swarm(100.0) < swarm(1_000.0));
    }

    #[test]
    fn the_first_resource_exhausted_is_named_at_each_scale() {
        let (c, l) = (costs(), limits());
        // 100 viewers over HTTP: 150 kB/s of payload + 135 kB/s of control, within 1 MB/s.
        assert!(predict(&c, &l, Scheme::Http, 100.0).exhausted.is_empty());
        // 1,000: 1.35 MB/s of control alone: the uplink goes first.
        let p = predict(&c, &l, Scheme::Http, 1000.0);
        assert_eq!(p.exhausted[0].0, "publisher uplink");
        // Swarm and DHT: the publisher stays within its uplink; the DHT's closest nodes are
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
