//! One viewer's records folded into a per-segment timeline ([`Timeline`]: learned, added, first
//! piece, completed, played, forgotten), plus the run-wide counters its records add to
//! ([`ViewerCounters`]: manifests, fallbacks, stalls, skips, bytes uploaded to peers).

use std::collections::{BTreeMap, BTreeSet};

use swarmcast_metrics::{Event, Kind};

/// One segment as one viewer saw it.
#[derive(Default)]
pub(super) struct SegView {
    pub(super) learned_published_ms: Option<u64>,
    pub(super) added: bool,
    pub(super) first_piece_us: Option<u64>,
    /// since_added_us, from_publisher, from_peers, from_http
    pub(super) completed: Option<(u64, u64, u64, u64)>,
    /// attempts, errors (swarm completions)
    pub(super) connections: Option<(u64, u64)>,
    /// (swarm completions)
    pub(super) failed_dials: Option<u64>,
    /// wall_us, bytes
    pub(super) played: Option<(u64, u64)>,
    /// Learned, added and completed before it was played.
    pub(super) order_ok: bool,
}

/// One viewer's segments and the moments that frame them.
#[derive(Default)]
pub(super) struct Timeline {
    /// Its segments, by number.
    pub(super) segs: BTreeMap<u64, SegView>,
    /// Bytes received after completion, or for a segment never completed: (segment, from the
    /// publisher, from peers), from its `forgotten` records.
    pub(super) late: Vec<(u64, u64, u64)>,
    /// Its first `joined` record's monotonic time.
    pub(super) joined_us: Option<u64>,
    /// The segment it joined at.
    pub(super) joined_seg: Option<u64>,
    /// Its first `played` record's monotonic time.
    pub(super) first_played_us: Option<u64>,
    /// Segments it skipped before it played its first one, when it then played one: where it
    /// started playing moved on, and no gap opened in its playback (its startup time counts the
    /// wait). Skips of a viewer that never played stay skips.
    pub(super) passed_over: u64,
}

/// What every viewer's records add up to over a run, beside the segments.
#[derive(Debug, Default)]
pub(super) struct ViewerCounters {
    /// Manifest bytes fetched.
    pub(super) manifest_bytes: u64,
    /// Manifests refused.
    pub(super) refused: u64,
    /// HTTP fallbacks that delivered their segment.
    pub(super) fallbacks: u64,
    /// HTTP fallbacks stopped because the swarm completed the segment first.
    pub(super) fallbacks_superseded: u64,
    /// Bytes those fetched.
    pub(super) fallback_wasted_bytes: u64,
    /// HTTP fallbacks the publisher refused.
    pub(super) fallbacks_refused: u64,
    /// Played segments that were late.
    pub(super) stalls: u64,
    /// The time playback waited, µs.
    pub(super) stall_us: u64,
    /// Segments skipped during playback (or by a viewer that never played one).
    pub(super) skips: u64,
    /// Segments skipped before a viewer's first played segment ([`Timeline::passed_over`]).
    pub(super) passed_over: u64,
    /// Bytes each segment's viewers report uploading to peers (`forgotten.uploaded_bytes`).
    pub(super) seg_peer_uploads: BTreeMap<u64, u64>,
    /// Segments a viewer added and never forgot (it was killed): what it uploaded for them was
    /// never reported, so received-from-peers cannot be checked against uploads for them.
    pub(super) unreported_uploads: BTreeSet<u64>,
}

impl Timeline {
    /// Folds one viewer's records, in order, into its timeline; the run-wide counts go to
    /// `counters`.
    pub(super) fn read(events: &[Event], counters: &mut ViewerCounters) -> Self {
        let mut t = Self::default();
        let mut open = BTreeSet::new();
        // Skips before the first `played` record: passed over if a segment is played later.
        let mut before_first_play = 0;
        for e in events {
            let seg = e.seg;
            match &e.kind {
                Kind::ManifestFetched { bytes, .. } => counters.manifest_bytes += bytes,
                Kind::ManifestRefused { .. } => counters.refused += 1,
                Kind::Joined { .. } => {
                    t.joined_us.get_or_insert(e.mono_us);
                    if t.joined_seg.is_none() {
                        t.joined_seg = e.seg;
                    }
                }
                Kind::Learned { published_ms, .. } => {
                    if let Some(n) = seg {
                        t.segs.entry(n).or_default().learned_published_ms = Some(*published_ms);
                    }
                }
                Kind::Added => {
                    if let Some(n) = seg {
                        open.insert(n);
                        t.segs.entry(n).or_default().added = true;
                    }
                }
                Kind::FirstPiece { since_added_us } => {
                    if let Some(n) = seg {
                        t.segs.entry(n).or_default().first_piece_us = Some(*since_added_us);
                    }
                }
                Kind::Completed {
                    since_added_us,
                    from_publisher,
                    from_peers,
                    from_http,
                    connect_attempts,
                    connect_errors,
                    failed_dials: dials,
                    ..
                } => {
                    if let Some(n) = seg {
                        let v = t.segs.entry(n).or_default();
                        v.completed =
                            Some((*since_added_us, *from_publisher, *from_peers, *from_http));
                        v.connections = connect_attempts.zip(*connect_errors);
                        v.failed_dials = *dials;
                    }
                }
                Kind::HttpFallback { ok: true, .. } => counters.fallbacks += 1,
                Kind::HttpFallback {
                    superseded: true,
                    bytes,
                    ..
                } => {
                    counters.fallbacks_superseded += 1;
                    counters.fallback_wasted_bytes += bytes;
                }
                Kind::HttpFallback { refused: true, .. } => counters.fallbacks_refused += 1,
                Kind::Played {
                    stall_us: s, bytes, ..
                } => {
                    if let Some(n) = seg {
                        let v = t.segs.entry(n).or_default();
                        v.order_ok =
                            v.learned_published_ms.is_some() && v.added && v.completed.is_some();
                        v.played = Some((e.wall_us, *bytes));
                        if t.first_played_us.is_none() {
                            t.first_played_us = Some(e.mono_us);
                            t.passed_over = std::mem::take(&mut before_first_play);
                            counters.passed_over += t.passed_over;
                        }
                        if *s > 0 {
                            counters.stalls += 1;
                            counters.stall_us += s;
                        }
                    }
                }
                Kind::Skipped { count } if t.first_played_us.is_none() => {
                    before_first_play += count.unwrap_or(1);
                }
                Kind::Skipped { count } => counters.skips += count.unwrap_or(1),
                Kind::Forgotten {
                    uploaded_bytes,
                    from_publisher: p,
                    from_peers: q,
                    ..
                } => {
                    if let Some(n) = seg {
                        open.remove(&n);
                        *counters.seg_peer_uploads.entry(n).or_default() += uploaded_bytes;
                        // Received after completion, or for a segment never completed.
                        t.late.push((n, *p, *q));
                    }
                }
                _ => {}
            }
        }
        // It never played: what it skipped is a gap, not a later start.
        counters.skips += before_first_play;
        counters.unreported_uploads.extend(open);
        t
    }

    /// Segments it played.
    pub(super) fn played(&self) -> u64 {
        self.segs.values().filter(|v| v.played.is_some()).count() as u64
    }
}
