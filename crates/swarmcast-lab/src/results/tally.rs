//! Run-wide accounting over every viewer's [`Timeline`]: the bytes received per segment and
//! source ([`Bytes`]), the per-(viewer, segment) figures the quantiles are taken over (setup,
//! complete, behind live, startup), connection and dial counts, missed segments, and the first
//! few segments that fail the record checks.

use std::collections::{BTreeMap, BTreeSet};

use super::timeline::{SegView, Timeline};

/// Payload bytes received, in total and per segment.
#[derive(Debug, Default)]
pub(super) struct Bytes {
    /// From the publisher over the swarm.
    pub(super) from_publisher: u64,
    /// From other viewers.
    pub(super) from_peers: u64,
    /// From the publisher over HTTP.
    pub(super) from_http: u64,
    /// Sizes of the segments completed, summed over viewers.
    pub(super) needed: u64,
    /// Segments any viewer completed.
    pub(super) fetched_segments: BTreeSet<u64>,
    /// Per segment, from the publisher: (swarm, HTTP).
    pub(super) seg_from_pub: BTreeMap<u64, (u64, u64)>,
    /// Per segment, from peers.
    pub(super) seg_from_peers: BTreeMap<u64, u64>,
    /// Per segment, viewers that received something from peers.
    pub(super) seg_receivers: BTreeMap<u64, u64>,
}

impl Bytes {
    /// All payload bytes received.
    pub(super) fn received(&self) -> u64 {
        self.from_publisher + self.from_peers + self.from_http
    }

    /// Adds `p` bytes from the publisher (swarm), `q` from peers and `h` over HTTP to segment `n`.
    fn add(&mut self, n: u64, p: u64, q: u64, h: u64) {
        self.from_publisher += p;
        self.from_peers += q;
        self.from_http += h;
        let e = self.seg_from_pub.entry(n).or_default();
        e.0 += p;
        e.1 += h;
        *self.seg_from_peers.entry(n).or_default() += q;
        if q > 0 {
            *self.seg_receivers.entry(n).or_default() += 1;
        }
    }
}

/// What every viewer's timeline adds up to.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Payload received.
    pub(super) bytes: Bytes,
    /// Setup (added → first piece) of every (viewer, segment), ms.
    pub(super) setup: Vec<f64>,
    /// Added → complete of every (viewer, segment), ms.
    pub(super) complete: Vec<f64>,
    /// Published → played of every (viewer, segment), ms.
    pub(super) behind: Vec<f64>,
    /// Joined → first played of every viewer, ms.
    pub(super) startup: Vec<f64>,
    /// Connection attempts, errors, and segments with the figures (swarm completions).
    pub(super) connections: (u64, u64, u64),
    /// Failed dials, and segments with the figure.
    pub(super) failed_dials: (u64, u64),
    /// Segments between where a viewer started playing (its join, plus what it passed over
    /// before its first played segment) and the stream's end it did not play (churned viewers
    /// not counted).
    pub(super) missed: u64,
    /// Segments played, over every viewer.
    pub(super) played: usize,
    /// Segments each viewer played, by node (the wire figures are per segment played).
    pub(super) played_by: BTreeMap<String, u64>,
    /// The first three played segments whose size differs from the published one.
    pub(super) bad_bytes: Vec<String>,
    /// The first three played segments without every record, in order.
    pub(super) incomplete: Vec<String>,
    /// The first three completed segments received short.
    pub(super) short: Vec<String>,
}

impl Tally {
    /// Adds viewer `node`'s timeline; `sizes` are the published segments' sizes, and a
    /// `churned` viewer (stopped by the churn pattern) misses nothing.
    pub(super) fn add_viewer(
        &mut self,
        node: &str,
        t: &Timeline,
        sizes: &BTreeMap<u64, u64>,
        churned: bool,
    ) {
        if let (Some(j), Some(p)) = (t.joined_us, t.first_played_us) {
            self.startup.push(p.saturating_sub(j) as f64 / 1000.0);
        }
        let played_here = t.played();
        self.played_by.insert(node.to_string(), played_here);
        if let (Some(first), Some(&last), false) = (t.joined_seg, sizes.keys().last(), churned) {
            // What it passed over before it started playing is not missed: it started later.
            let from = first.saturating_add(t.passed_over);
            self.missed += (last + 1).saturating_sub(from).saturating_sub(played_here);
        }
        for &(n, p, q) in &t.late {
            self.bytes.add(n, p, q, 0);
        }
        for (&n, v) in &t.segs {
            self.add_segment(node, n, v, sizes);
        }
    }

    /// Adds segment `n` as viewer `node` saw it.
    fn add_segment(&mut self, node: &str, n: u64, v: &SegView, sizes: &BTreeMap<u64, u64>) {
        if let Some(us) = v.first_piece_us {
            self.setup.push(us as f64 / 1000.0);
        }
        if let Some((attempts, errors)) = v.connections {
            self.connections.0 += attempts;
            self.connections.1 += errors;
            self.connections.2 += 1;
        }
        if let Some(dials) = v.failed_dials {
            self.failed_dials.0 += dials;
            self.failed_dials.1 += 1;
        }
        if let Some((since, p, q, h)) = v.completed {
            self.complete.push(since as f64 / 1000.0);
            self.bytes.add(n, p, q, h);
            self.bytes.fetched_segments.insert(n);
            let size = sizes.get(&n).copied().unwrap_or(0);
            self.bytes.needed += size;
            if p + q + h < size && self.short.len() < 3 {
                self.short
                    .push(format!("{node} segment {n}: {} of {size}", p + q + h));
            }
        }
        if let Some((wall_us, bytes)) = v.played {
            self.played += 1;
            if sizes.get(&n) != Some(&bytes) && self.bad_bytes.len() < 3 {
                self.bad_bytes.push(format!(
                    "{node} segment {n}: played {bytes}, published {:?}",
                    sizes.get(&n)
                ));
            }
            if !v.order_ok && self.incomplete.len() < 3 {
                self.incomplete.push(format!("{node} segment {n}"));
            }
            if let Some(p) = v.learned_published_ms {
                self.behind.push((wall_us / 1000).saturating_sub(p) as f64);
            }
        }
    }
}
