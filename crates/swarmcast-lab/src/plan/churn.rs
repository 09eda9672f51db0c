//! `--churn PCT` (pure): that share of the N nodes leaves per minute, at random times and chosen
//! at random from a seed, each replaced at once by a new node, so the audience stays at N.
//!
//! The schedule depends only on N, the media duration, the share and the seed: every transport
//! of a sweep gets the same departures (times and audience slots), relays included. Departures
//! per minute are `N × PCT / 100`, the fraction carried to the next minute (a last, partial
//! minute gets its share), at uniformly random times within the minute; the node leaving is the
//! one in a uniformly random slot of the audience. A departure is abrupt (the lab kills every
//! process of the node's host with SIGKILL); this replaces `--join churn`'s fixed pattern (the
//! oldest viewer leaves with Ctrl-C every few seconds) for runs that compare transports.

/// One departure and its replacement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Departure {
    /// Seconds after the run's start.
    pub at_secs: f64,
    /// The audience slot, `0..N`.
    pub slot: usize,
    /// The node leaving (`viewer-<i>`).
    pub leaving: usize,
    /// The node replacing it (`viewer-<i>`, numbered on from N).
    pub joining: usize,
}

/// splitmix64: a small, fixed generator, so schedules never change with a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n.saturating_sub(1))
    }
}

/// The departures of `nodes` nodes over `duration_secs` at `pct` percent a minute, in time order.
pub fn schedule(nodes: usize, duration_secs: f64, pct: f64, seed: u64) -> Vec<Departure> {
    if nodes == 0 || pct.is_nan() || pct <= 0.0 || duration_secs.is_nan() || duration_secs <= 0.0 {
        return Vec::new();
    }
    let mut rng = Rng(seed);
    let per_minute = nodes as f64 * pct / 100.0;
    let mut times = Vec::new();
    let mut due = 0.0;
    let mut start = 0.0;
    while start < duration_secs {
        let len = (duration_secs - start).min(60.0);
        due += per_minute * len / 60.0;
        let k = (due + 1e-9).floor();
        due -= k;
        for _ in 0..k as usize {
            times.push(start + rng.unit() * len);
        }
        start += 60.0;
    }
    times.sort_by(f64::total_cmp);
    let mut slots: Vec<usize> = (0..nodes).collect();
    times
        .into_iter()
        .enumerate()
        .map(|(k, at_secs)| {
            let slot = rng.below(nodes);
            let joining = nodes + k;
            let leaving = std::mem::replace(&mut slots[slot], joining);
            Departure {
                at_secs: (at_secs * 1000.0).round() / 1000.0,
                slot,
                leaving,
                joining,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_the_share_per_minute() {
        // 20 nodes, 10% a minute, 5 minutes: 2 a minute.
        let s = schedule(20, 300.0, 10.0, 7);
        assert_eq!(s.len(), 10);
        for m in 0..5 {
            let in_minute = s
                .iter()
                .filter(|d| d.at_secs >= 60.0 * m as f64 && d.at_secs < 60.0 * (m + 1) as f64)
                .count();
            assert_eq!(in_minute, 2, "minute {m}: {s:?}");
        }
        // 10 nodes, 10%, 90 s: one in the first minute, half of one in the last half minute.
        assert_eq!(schedule(10, 90.0, 10.0, 1).len(), 1);
        assert_eq!(schedule(10, 120.0, 10.0, 1).len(), 2);
        assert!(schedule(10, 120.0, 0.0, 1).is_empty());
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_differs() {
        let a = schedule(50, 180.0, 10.0, 42);
        assert_eq!(a, schedule(50, 180.0, 10.0, 42));
        assert_ne!(a, schedule(50, 180.0, 10.0, 43));
    }

    #[test]
    fn the_leaving_node_is_the_one_in_its_slot_now() {
        let s = schedule(3, 600.0, 50.0, 5);
        let mut slots: Vec<usize> = (0..3).collect();
        for (k, d) in s.iter().enumerate() {
            assert_eq!(d.leaving, slots[d.slot]);
            assert_eq!(d.joining, 3 + k);
            slots[d.slot] = d.joining;
        }
        assert!(s.windows(2).all(|w| w[0].at_secs <= w[1].at_secs));
        assert!(s.iter().all(|d| d.at_secs < 600.0));
    }
}
