//! What a viewer did: [`WatchSummary`], and the summary `swarmcast watch` prints at exit.

/// What a viewer did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchSummary {
    /// The first segment played (the live edge when joining, or the oldest with from-start).
    pub joined_at: Option<u64>,
    /// The newest segment when joining.
    pub newest_at_join: Option<u64>,
    /// Segments written to the sink, in order.
    pub played: Vec<u64>,
    /// Segments skipped (one at a time).
    pub skipped: Vec<u64>,
    /// Numbers skipped in runs of more than one that no manifest listed (a manifest that jumped
    /// ahead), counted rather than listed: [`skipped`](Self::skipped) stays small whatever a
    /// manifest says.
    pub skipped_unlisted: u64,
    /// Of the skipped segments, those skipped before the first was played: where playback
    /// started moved on (no gap opened; [`startup_ms`](Self::startup_ms) counts the wait).
    pub skipped_before_playback: u64,
    /// Late segments.
    pub stalls: u64,
    /// Time playback waited, ms.
    pub stall_ms: u64,
    /// HTTP fallbacks used.
    pub fallbacks: u64,
    /// The playout delay, ms.
    pub delay_ms: Option<u64>,
    /// From start to the first byte written, ms.
    pub startup_ms: Option<u64>,
    /// Bytes written to the sink.
    pub bytes_out: u64,
    /// Payload bytes received from the publisher.
    pub from_publisher: u64,
    /// Payload bytes received from other peers.
    pub from_peers: u64,
    /// Bytes received over HTTP fallback.
    pub from_http: u64,
    /// Payload bytes uploaded to other viewers.
    pub uploaded: u64,
    /// Pieces received that failed their hash check, over all segments.
    pub hash_failures: u64,
    /// Bytes of those pieces, thrown away.
    pub discarded_bytes: u64,
    /// The addresses of the peers that sent them, once each, sorted (each is banned from that
    /// segment's torrent by its IP address).
    pub bad_peers: Vec<String>,
    /// Connections refused because their address was banned, over all segments.
    pub refused_banned: u64,
    /// Manifest bytes fetched.
    pub manifest_bytes: u64,
    /// Segments whose peers the DHT looked up (and which it announced), with the DHT on.
    pub dht_lookups: u64,
    /// Segments added without a DHT lookup, their peers carried from the segments before
    /// (docs/manifest.md, "Peers carried from segment to segment").
    pub dht_skipped: u64,
    /// Lookups of the stream's peer key on the DHT, and the peers they found (each lookup's
    /// distinct peers, summed).
    pub key_lookups: u64,
    /// See `key_lookups`.
    pub key_peers: u64,
    /// Manifests refused.
    pub manifests_refused: u64,
    /// Setup time of each segment fetched from the swarm: added → first verified piece, ms.
    pub setup_ms: Vec<f64>,
    /// Published (the publisher's clock) → first verified piece (ours), ms: valid on a shared
    /// clock only (one machine).
    pub published_to_first_piece_ms: Vec<f64>,
    /// Latency behind live of each played segment: published → played, ms (shared clock).
    pub behind_live_ms: Vec<f64>,
    /// The stream's end was seen.
    pub end_of_stream: bool,
    /// Playback stopped because the output was closed (a pipe whose reader quit, such as a
    /// player or `head`): the viewer stopped there, and its tasks and peers with it.
    pub output_closed: bool,
}

/// `median X ms, p95 Y ms, max Z ms` (nearest rank), or `-`.
fn quantiles(values: &[f64]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!(
        "median {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        q(0.5),
        q(0.95),
        q(1.0)
    )
}

impl std::fmt::Display for WatchSummary {
    /// The summary `swarmcast watch` prints at exit.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self;
        let swarm_bytes = s.from_publisher + s.from_peers;
        write!(
            f,
            "watched: joined at segment {} (newest {}), played {} segments ({} bytes), skipped {} ({} before playback started), {} stalls ({} ms), \
             {} HTTP fallbacks; startup {} ms; delay {} ms\n  setup (added -> first piece): {}\n  \
             published -> first piece (shared clock): {}\n  behind live (published -> played): {}\n  \
             bytes: {} from the publisher, {} from peers ({:.0}% of swarm bytes), {} over HTTP, {} uploaded to others, {} manifest bytes{}{}",
            s.joined_at.map_or("-".into(), |n| n.to_string()),
            s.newest_at_join.map_or("-".into(), |n| n.to_string()),
            s.played.len(),
            s.bytes_out,
            s.skipped.len() as u64 + s.skipped_unlisted,
            s.skipped_before_playback,
            s.stalls,
            s.stall_ms,
            s.fallbacks,
            s.startup_ms.map_or("-".into(), |v| v.to_string()),
            s.delay_ms.map_or("-".into(), |v| v.to_string()),
            quantiles(&s.setup_ms),
            quantiles(&s.published_to_first_piece_ms),
            quantiles(&s.behind_live_ms),
            s.from_publisher,
            s.from_peers,
            100.0 * s.from_peers as f64 / swarm_bytes.max(1) as f64,
            s.from_http,
            s.uploaded,
            s.manifest_bytes,
            if s.end_of_stream { "; the stream ended" } else { "" },
            if s.output_closed {
                "; stopped: the output was closed (its reader quit)"
            } else {
                ""
            }
        )?;
        if s.dht_lookups + s.dht_skipped + s.key_lookups > 0 {
            write!(
                f,
                "\n  DHT: {} segments looked up, {} added with their peers carried from earlier segments; \
                 the stream's peer key looked up {} times, {} peers found",
                s.dht_lookups, s.dht_skipped, s.key_lookups, s.key_peers
            )?;
        }
        if s.hash_failures > 0 {
            write!(
                f,
                "\n  bad pieces: {} failed their hash check ({} bytes discarded), from {}; {} connections from banned addresses refused",
                s.hash_failures,
                s.discarded_bytes,
                s.bad_peers.join(", "),
                s.refused_banned
            )?;
        }
        Ok(())
    }
}
