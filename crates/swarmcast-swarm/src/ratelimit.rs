//! A byte rate limit for what swarmcast sends or receives outside librqbit (HTTP segment bodies),
//! so the HTTP baseline and the swarm run under the same caps. librqbit limits its own traffic.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota};

/// The most bytes taken from the bucket at once; also its burst.
pub const SLICE: usize = 16 * 1024;

/// A token bucket of bytes per second (governor's GCRA), shared by every transfer it is given to.
#[derive(Debug)]
pub struct ByteLimiter {
    limiter: DefaultDirectRateLimiter,
    bytes_per_sec: u32,
}

impl ByteLimiter {
    /// A limit of `bytes_per_sec` (`None` for 0), with a burst of [`SLICE`] bytes.
    pub fn new(bytes_per_sec: u32) -> Option<Self> {
        Self::with_burst(bytes_per_sec, SLICE as u32)
    }

    /// The quota librqbit's own upload limit uses (`Quota::per_second`): a burst of one second's
    /// bytes (at least [`SLICE`]). The wire seeder uses it, so that it and a librqbit session
    /// seed under the same limit.
    pub fn like_librqbit(bytes_per_sec: u32) -> Option<Self> {
        Self::with_burst(bytes_per_sec, bytes_per_sec)
    }

    fn with_burst(bytes_per_sec: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(bytes_per_sec)?;
        // A take is never larger than SLICE, so a smaller burst could never be met.
        let burst = NonZeroU32::new(burst.max(SLICE as u32)).expect("non-zero");
        Some(Self {
            limiter: DefaultDirectRateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            bytes_per_sec,
        })
    }

    /// The limit, bytes per second.
    pub fn bytes_per_sec(&self) -> u32 {
        self.bytes_per_sec
    }

    /// Waits until `len` bytes may pass (taken in slices of at most [`SLICE`]).
    pub async fn take(&self, mut len: usize) {
        while len > 0 {
            let n = len.min(SLICE);
            len -= n;
            let cells = NonZeroU32::new(n as u32).expect("n > 0");
            // `n` never exceeds the burst, so this cannot fail.
            let _ = self.limiter.until_n_ready(cells).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_no_limit() {
        assert!(ByteLimiter::new(0).is_none());
        assert_eq!(ByteLimiter::new(32768).unwrap().bytes_per_sec(), 32768);
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
