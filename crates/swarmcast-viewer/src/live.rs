//! What a viewer is doing now, for whoever shows it while it runs: the terminal status line, the
//! playback HTTP server (its HLS playlist, its page's overlay, its `/metrics`).
//!
//! The viewer owns a [`Live`] and updates it as things happen (a manifest accepted or refused, a
//! segment verified, played or forgotten) and once a second ([`TICK`]: peers and download rate,
//! sampled from the swarm). Readers take a [`LiveSnapshot`] (a copy) or wait for the next change
//! with [`Live::subscribe`]. The figures that only grow are exactly the ones of the
//! [`WatchSummary`](crate::WatchSummary) at that moment.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

/// How often the viewer samples its swarm for [`LiveSnapshot::peers`],
/// [`LiveSnapshot::connections`] and [`LiveSnapshot::download_rate`].
pub const TICK: Duration = Duration::from_secs(1);

/// The window the download rate is averaged over.
pub const RATE_WINDOW_MS: u64 = 5_000;

/// A segment the viewer has verified (every piece checked against the signed info) and not yet
/// forgotten: its file is at [`path`](Self::path) until then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveSegment {
    /// Segment number.
    pub number: u64,
    /// Media duration, 90 kHz ticks (from the manifest).
    pub duration: u64,
    /// The manifest flags a discontinuity before it.
    pub discontinuity: bool,
    /// When the publisher published it (its clock), ms since the Unix epoch.
    pub published_ms: u64,
    /// Size in bytes.
    pub size: u64,
    /// Its file.
    #[serde(skip)]
    pub path: PathBuf,
}

/// The viewer's figures at one moment. Byte counts are payload bytes, counted as the summary
/// counts them (a segment's swarm bytes when it completes, or when it is forgotten for bytes
/// received after that).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LiveSnapshot {
    /// The last segment written to the output.
    pub playing: Option<u64>,
    /// Segments written to the output.
    pub played: u64,
    /// Bytes written to the output.
    pub bytes_out: u64,
    /// Media time (ms) of the verified segments not yet written to the output, counted from the
    /// next one to play while they follow one another: what playback can go on with if the swarm
    /// stops now.
    pub buffer_ahead_ms: u64,
    /// The viewers this one trades with: in each segment's swarm it holds, the peers other than
    /// the publisher that it received payload from or sent payload to, the most over those
    /// segments (sampled each [`TICK`]). Not the connections open now: with segments of a few
    /// seconds, a segment's swarm is often done (every connection between two peers that both
    /// hold the segment closed) when the sample is taken.
    pub peers: u64,
    /// Peer connections open now over every segment's swarm, the publisher's included (a peer in
    /// two segments' swarms counts twice; sampled each [`TICK`]).
    pub connections: u64,
    /// Payload bytes received per second over the last [`RATE_WINDOW_MS`] (swarm and HTTP).
    pub download_rate: u64,
    /// Payload bytes received from the publisher.
    pub from_publisher: u64,
    /// Payload bytes received from other peers.
    pub from_peers: u64,
    /// Bytes received over HTTP (fallback or the HTTP transport).
    pub from_http: u64,
    /// Payload bytes uploaded to other viewers by segments already forgotten.
    pub uploaded: u64,
    /// Late segments.
    pub stalls: u64,
    /// Time playback waited, ms.
    pub stall_ms: u64,
    /// HTTP fallbacks started.
    pub fallbacks: u64,
    /// Segments skipped.
    pub skipped: u64,
    /// The last segment's setup time from the swarm: added → first verified piece, ms.
    pub last_setup_ms: Option<f64>,
    /// Manifests accepted.
    pub manifests: u64,
    /// Manifest bytes fetched.
    pub manifest_bytes: u64,
    /// Manifests refused.
    pub manifests_refused: u64,
    /// The stream's target segment duration, 90 kHz ticks (from the first manifest).
    pub target_duration: Option<u64>,
    /// The newest manifest said the stream has ended.
    pub end_of_stream: bool,
    /// Verified segments not yet forgotten, in order.
    pub segments: Vec<LiveSegment>,
}

impl LiveSnapshot {
    /// The share of swarm payload bytes that came from other peers, 0 to 1 (`None` before any).
    pub fn peer_share(&self) -> Option<f64> {
        let swarm = self.from_publisher + self.from_peers;
        (swarm > 0).then(|| self.from_peers as f64 / swarm as f64)
    }
}

/// The viewer's live state: cheap to clone, shared by the viewer (which writes it) and its
/// readers.
#[derive(Clone, Debug)]
pub struct Live {
    tx: Arc<watch::Sender<LiveSnapshot>>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(LiveSnapshot::default())),
        }
    }
}

impl Live {
    /// A copy of the figures now.
    pub fn snapshot(&self) -> LiveSnapshot {
        self.tx.borrow().clone()
    }

    /// A receiver that sees every later change (`changed().await`).
    pub fn subscribe(&self) -> watch::Receiver<LiveSnapshot> {
        self.tx.subscribe()
    }

    /// Changes the figures and wakes the subscribers.
    pub(crate) fn update(&self, f: impl FnOnce(&mut LiveSnapshot)) {
        self.tx.send_modify(f);
    }

    /// A verified segment: listed (in order; again is a no-op).
    pub(crate) fn verified(&self, seg: LiveSegment) {
        self.update(|s| {
            if let Err(at) = s.segments.binary_search_by_key(&seg.number, |x| x.number) {
                s.segments.insert(at, seg);
            }
        });
    }

    /// A forgotten segment: no longer listed (its file is gone).
    pub(crate) fn forgotten(&self, number: u64) {
        self.update(|s| s.segments.retain(|x| x.number != number));
    }
}

/// Media time (ms) of the segments of `segments` (in order) that follow one another from `next`.
pub fn buffer_ahead_ms(segments: &[LiveSegment], next: Option<u64>) -> u64 {
    let Some(first) = next else { return 0 };
    let (mut want, mut ticks) = (first, 0);
    for s in segments.iter().filter(|s| s.number >= first) {
        if s.number != want {
            break;
        }
        ticks += s.duration;
        want += 1;
    }
    ticks / 90
}

/// The download rate from samples of a counter that only grows: (ms, total bytes) pairs, the
/// last [`RATE_WINDOW_MS`] of them kept. Pure: the times are passed in.
#[derive(Clone, Debug, Default)]
pub struct RateMeter {
    samples: VecDeque<(u64, u64)>,
}

impl RateMeter {
    /// Adds a sample (a time before the last one's is ignored) and returns bytes per second over
    /// the window (0 until two samples span some time).
    pub fn sample(&mut self, now_ms: u64, total: u64) -> u64 {
        if self.samples.back().is_some_and(|&(t, _)| now_ms < t) {
            return self.rate();
        }
        self.samples.push_back((now_ms, total));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|&(t, _)| now_ms - t >= RATE_WINDOW_MS)
        {
            self.samples.pop_front();
        }
        self.rate()
    }

    fn rate(&self) -> u64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, b0)), Some(&(t1, b1))) if t1 > t0 => {
                b1.saturating_sub(b0).saturating_mul(1000) / (t1 - t0)
            }
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(number: u64, secs: u64) -> LiveSegment {
        LiveSegment {
            number,
            duration: secs * 90_000,
            discontinuity: false,
            published_ms: 0,
            size: 1,
            path: PathBuf::new(),
        }
    }

    #[test]
    fn buffer_ahead_counts_the_run_that_follows_the_next_segment() {
        let segs = [seg(3, 2), seg(4, 2), seg(5, 3), seg(7, 2)];
        assert_eq!(buffer_ahead_ms(&segs, Some(4)), 5_000);
        assert_eq!(buffer_ahead_ms(&segs, Some(3)), 7_000);
        // The next one is not verified yet: nothing to play on with.
        assert_eq!(buffer_ahead_ms(&segs, Some(6)), 0);
        assert_eq!(buffer_ahead_ms(&segs, Some(7)), 2_000);
        assert_eq!(buffer_ahead_ms(&segs, None), 0);
    }

    #[test]
    fn the_rate_is_the_growth_over_the_window() {
        let mut m = RateMeter::default();
        assert_eq!(m.sample(0, 0), 0);
        assert_eq!(m.sample(1_000, 100_000), 100_000);
        assert_eq!(m.sample(2_000, 300_000), 150_000);
        // Older samples leave the window: 6 s later only the last 5 s count.
        for t in 3..=7 {
            m.sample(t * 1_000, 300_000 + (t - 2) * 10_000);
        }
        assert_eq!(m.sample(8_000, 360_000), 10_000);
        // A clock going back is ignored.
        assert_eq!(m.sample(1_000, 0), 10_000);
    }

    #[test]
    fn segments_are_listed_in_order_once_and_removed_when_forgotten() {
        let live = Live::default();
        let mut rx = live.subscribe();
        live.verified(seg(5, 1));
        live.verified(seg(3, 1));
        live.verified(seg(5, 1));
        assert!(rx.has_changed().unwrap());
        let numbers = |l: &Live| {
            l.snapshot()
                .segments
                .iter()
                .map(|s| s.number)
                .collect::<Vec<_>>()
        };
        assert_eq!(numbers(&live), [3, 5]);
        live.forgotten(3);
        assert_eq!(numbers(&live), [5]);
        rx.mark_unchanged();
        live.update(|s| s.peers = 2);
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().peers, 2);
    }

    #[test]
    fn the_peer_share_is_of_swarm_bytes() {
        let mut s = LiveSnapshot::default();
        assert_eq!(s.peer_share(), None);
        s.from_publisher = 100;
        s.from_peers = 300;
        s.from_http = 1_000;
        assert_eq!(s.peer_share(), Some(0.75));
    }
}
