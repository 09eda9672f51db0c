//! A byte rate limit for what swarmcast sends or receives outside librqbit (HTTP segment bodies,
//! the wire seeder's pieces, the publisher's manifests), so the HTTP baseline and the swarm run
//! under the same caps. librqbit limits its own traffic.
//!
//! A [`ByteLimiter::paced`] limiter has a burst of [`PACE_SLICE`] bytes, and callers write each
//! slice as soon as it is granted, so what reaches the sockets is a steady stream at the limit,
//! not a second's worth at once. (A home uplink has a queue of about 100 ms behind its cap; a burst
//! larger than that queue is dropped there, and the retransmissions cost more of the same uplink.)
//! The publisher's one upload budget is a [`ByteLimiter::wire`] limiter: paced, and counting what
//! each write costs on the wire ([`wire_cost`]), not its payload alone.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use governor::{DefaultDirectRateLimiter, Quota};

/// The most bytes taken from the bucket at once; also its burst.
pub const SLICE: usize = 16 * 1024;

/// The lowest byte rate a limit may have, bytes per second: librqbit moves 16 KiB chunks, and
/// cannot upload or fetch under one chunk per second (two, to leave it room).
pub const MIN_RATE: u32 = 32 * 1024;

/// Checks a `--<flag>` byte rate against [`MIN_RATE`]; the error names the flag and the rule.
pub fn check_rate(flag: &str, rate: u32) -> Result<(), String> {
    if rate < MIN_RATE {
        Err(format!(
            "--{flag} {rate} is below {MIN_RATE} bytes/s: librqbit cannot move data under one \
             16 KiB chunk per second"
        ))
    } else {
        Ok(())
    }
}

/// A number with an optional `k`/`K` (×1,000) or `M` (×1,000,000) suffix, as rates are written
/// on command lines: `800000`, `800k`, `2.5M`. None if it is not one (or not finite).
pub fn parse_si(s: &str) -> Option<f64> {
    let s = s.trim();
    let (number, scale) = match s.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1e3),
        None => match s.strip_suffix('M') {
            Some(n) => (n, 1e6),
            None => (s, 1.0),
        },
    };
    let v = number.parse::<f64>().ok()? * scale;
    v.is_finite().then_some(v)
}

/// The slice and burst of a [`ByteLimiter::paced`] limiter: three full-size TCP segments.
pub const PACE_SLICE: usize = 4 * 1024;

/// TCP/IP header bytes of one packet, as [`ByteLimiter::wire`] counts them: IPv4 (20), TCP (20)
/// and its timestamp option (12).
pub const PACKET_HEADER: usize = 52;
/// Payload bytes of a full TCP packet on a 1500-byte path with timestamps.
pub const PACKET_PAYLOAD: usize = 1448;

/// What `len` bytes written at once cost on the wire, as [`ByteLimiter::wire`] counts them: the
/// headers of the packets they fill, and one packet more (the ACK the message answers or causes:
/// the publisher's uplink also carries ACKs of what it receives, which it cannot see).
pub fn wire_cost(len: usize) -> usize {
    len + PACKET_HEADER * (len.div_ceil(PACKET_PAYLOAD) + 1)
}

/// A token bucket of bytes per second (governor's GCRA), shared by every transfer it is given to.
#[derive(Debug)]
pub struct ByteLimiter {
    limiter: DefaultDirectRateLimiter,
    bytes_per_sec: u32,
    slice: usize,
    /// Counts [`wire_cost`] instead of bytes.
    wire: bool,
    /// [`take`](Self::take)s waiting now; [`take_low`](Self::take_low) waits while there are any.
    waiting: AtomicUsize,
    none_waiting: Notify,
}

/// Counts a [`ByteLimiter::take`] while it waits.
struct Waiting<'a>(&'a ByteLimiter);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.0.waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.none_waiting.notify_waiters();
        }
    }
}

impl ByteLimiter {
    /// A limit of `bytes_per_sec` (`None` for 0), with a burst of [`SLICE`] bytes.
    pub fn new(bytes_per_sec: u32) -> Option<Self> {
        Self::with_burst(bytes_per_sec, SLICE as u32, SLICE)
    }

    /// A paced limit of `bytes_per_sec` (`None` for 0): slices and burst of [`PACE_SLICE`] bytes.
    /// Callers that write in [`slice`](Self::slice)-sized pieces, each after its
    /// [`take`](Self::take), never put more than one slice on the wire at once.
    pub fn paced(bytes_per_sec: u32) -> Option<Self> {
        Self::with_burst(bytes_per_sec, PACE_SLICE as u32, PACE_SLICE)
    }

    /// As [`paced`](Self::paced), counting what each take costs on the wire ([`wire_cost`]:
    /// headers, and one packet more per take) against `bytes_per_sec` of wire bytes. The
    /// publisher's budget: with many viewers most of its packets are small (tracker answers,
    /// manifests, the ACKs of requests), and a budget of payload bytes at 90% of an uplink let
    /// its queue overflow from 35 viewers on (docs/experiments.md).
    pub fn wire(bytes_per_sec: u32) -> Option<Self> {
        // The burst is one full slice's wire cost, so a slice's take can always be met.
        let mut l = Self::with_burst(bytes_per_sec, wire_cost(PACE_SLICE) as u32, PACE_SLICE)?;
        l.wire = true;
        Some(l)
    }

    /// The quota librqbit's own upload limit uses (`Quota::per_second`): a burst of one second's
    /// bytes (at least [`SLICE`]). The wire seeder uses it, so that it and a librqbit session
    /// seed under the same limit.
    pub fn like_librqbit(bytes_per_sec: u32) -> Option<Self> {
        Self::with_burst(bytes_per_sec, bytes_per_sec, SLICE)
    }

    fn with_burst(bytes_per_sec: u32, burst: u32, slice: usize) -> Option<Self> {
        let rate = NonZeroU32::new(bytes_per_sec)?;
        // A take is never larger than the slice, so a smaller burst could never be met.
        let burst = NonZeroU32::new(burst.max(slice as u32)).expect("non-zero");
        Some(Self {
            limiter: DefaultDirectRateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            bytes_per_sec,
            slice,
            wire: false,
            waiting: AtomicUsize::new(0),
            none_waiting: Notify::new(),
        })
    }

    /// The most bytes one [`take`](Self::take) waits for at once.
    pub fn slice(&self) -> usize {
        self.slice
    }

    /// The limit, bytes per second.
    pub fn bytes_per_sec(&self) -> u32 {
        self.bytes_per_sec
    }

    /// What `n` bytes taken at once count against the limit.
    fn cost(&self, n: usize) -> usize {
        if self.wire {
            wire_cost(n)
        } else {
            n
        }
    }

    /// Waits until `len` bytes may pass (taken in slices of at most [`slice`](Self::slice)).
    pub async fn take(&self, mut len: usize) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(self);
        while len > 0 {
            let n = len.min(self.slice);
            len -= n;
            let cells = NonZeroU32::new(self.cost(n) as u32).expect("n > 0");
            // A slice's cost never exceeds the burst, so this cannot fail.
            let _ = self.limiter.until_n_ready(cells).await;
        }
    }

    /// As [`take`](Self::take), at low priority: each slice waits until no `take` is waiting.
    /// The publisher's HTTP segment bodies use it, so a fallback never delays the swarm's pieces
    /// (each of which viewers pass on) or a manifest: they get what the swarm leaves. A `take`
    /// that arrives while a slice is granted waits for that slice at most. It waits as long as
    /// takes keep coming; dropping the future (an HTTP client that went away) ends the wait.
    pub async fn take_low(&self, mut len: usize) {
        while len > 0 {
            loop {
                let idle = self.none_waiting.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                if self.waiting.load(Ordering::SeqCst) == 0 {
                    break;
                }
                // Bounded, in case a wake-up is missed: check again after a slice's time.
                let slice_time =
                    Duration::from_secs_f64(self.slice as f64 / f64::from(self.bytes_per_sec));
                let _ = tokio::time::timeout(slice_time.max(Duration::from_millis(1)), idle).await;
            }
            let n = len.min(self.slice);
            len -= n;
            let cells = NonZeroU32::new(self.cost(n) as u32).expect("n > 0");
            let _ = self.limiter.until_n_ready(cells).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_with_suffixes_and_are_held_to_the_minimum() {
        assert_eq!(parse_si("800000"), Some(800_000.0));
        assert_eq!(parse_si("800k"), Some(800_000.0));
        assert_eq!(parse_si(" 2.5M "), Some(2_500_000.0));
        assert_eq!(parse_si("2.5G"), None);
        assert_eq!(parse_si("inf"), None);
        assert_eq!(parse_si("k"), None);
        assert!(check_rate("upload-limit", MIN_RATE).is_ok());
        let e = check_rate("upload-limit", MIN_RATE - 1).unwrap_err();
        assert!(
            e.starts_with("--upload-limit 32767 is below 32768 bytes/s"),
            "{e}"
        );
    }

    #[test]
    fn zero_is_no_limit() {
        assert!(ByteLimiter::new(0).is_none());
        assert_eq!(ByteLimiter::new(32768).unwrap().bytes_per_sec(), 32768);
    }

    #[test]
    fn the_wire_cost_counts_each_packets_headers_and_one_packet_more() {
        assert_eq!(wire_cost(0), PACKET_HEADER);
        assert_eq!(wire_cost(250), 250 + 2 * PACKET_HEADER);
        assert_eq!(
            wire_cost(PACKET_PAYLOAD),
            PACKET_PAYLOAD + 2 * PACKET_HEADER
        );
        assert_eq!(wire_cost(PACE_SLICE), PACE_SLICE + 4 * PACKET_HEADER);
    }

    #[tokio::test]
    async fn a_wire_limiter_counts_headers_so_small_messages_go_slower() {
        // 100 messages of 100 bytes at 20,000 B/s: 10,000 bytes of payload (half a second, less
        // the burst, on a payload budget), 20,400 on the wire by the estimate (two packets of 52
        // bytes each): at least (20,400 - one burst of 4,304) / 20,000 = 0.80 s. A lower bound,
        // so not flaky; a payload budget passes them in about 0.3 s.
        let wire = ByteLimiter::wire(20_000).unwrap();
        let start = std::time::Instant::now();
        for _ in 0..100 {
            wire.take(100).await;
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(790), "{elapsed:?}");
    }

    #[tokio::test]
    async fn a_paced_limiter_bursts_one_slice_and_no_more() {
        // At 1 MiB/s a 4 KiB slice is 3.9 ms. From idle, a paced limiter lets one slice through
        // at once, so 20 KiB waits for four more: at least 15.6 ms (a lower bound, so not flaky).
        // The 16 KiB burst of `new` would let four through and wait 3.9 ms.
        let l = ByteLimiter::paced(1 << 20).unwrap();
        assert_eq!(l.slice(), PACE_SLICE);
        let start = std::time::Instant::now();
        l.take(5 * PACE_SLICE).await;
        assert!(start.elapsed() >= std::time::Duration::from_micros(15_600));
    }

    #[tokio::test]
    async fn a_low_priority_take_waits_while_a_take_waits() {
        // 64 KiB/s, paced: a slice every 62.5 ms. Ordering is asserted by events: the low take
        // asks while the normal one waits, yet the normal take's three slices all go before it.
        let l = std::sync::Arc::new(ByteLimiter::paced(64 * 1024).unwrap());
        let tasks = swarmcast_tasks::Tasks::new("test");
        l.take(PACE_SLICE).await; // the burst is spent
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let normal = {
            let (l, order) = (l.clone(), order.clone());
            tasks.spawn("normal", async move {
                for i in 0..3 {
                    l.take(PACE_SLICE).await;
                    order.lock().unwrap().push(format!("normal {i}"));
                }
            })
        };
        tokio::task::yield_now().await;
        let low = {
            let (l, order) = (l.clone(), order.clone());
            tasks.spawn("low", async move {
                l.take_low(PACE_SLICE).await;
                order.lock().unwrap().push("low".to_owned());
            })
        };
        normal.await.unwrap().unwrap();
        low.await.unwrap().unwrap();
        assert_eq!(
            *order.lock().unwrap(),
            ["normal 0", "normal 1", "normal 2", "low"]
        );
        // With nobody else waiting it goes, like a take.
        l.take_low(2 * PACE_SLICE).await;
    }

    #[tokio::test]
    async fn large_takes_are_sliced_not_refused() {
        // A take larger than the burst must wait for the bucket, not fail: at 1 MiB/s, 48 KiB
        // beyond the 16 KiB burst is ~47 ms of waiting (a lower bound, so not flaky).
        let l = ByteLimiter::new(1 << 20).unwrap();
        let start = std::time::Instant::now();
        l.take(64 * 1024).await;
        assert!(start.elapsed() >= std::time::Duration::from_millis(40));
    }
}
