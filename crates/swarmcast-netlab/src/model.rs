//! The link model, sans-IO: packets and a clock (ns, any epoch) go in, verdicts and release
//! times come out. [`crate::emu`] drives it with real packets and real time; the tests drive it
//! with a clock of their own.
//!
//! A packet from host S to host D passes, in order:
//! 1. **S's uplink**: a serialising link at S's upload cap (bytes of the IP packet per second).
//!    It leaves at `max(arrival, when the previous packet left) + len / rate`. Behind the cap is a
//!    drop-tail FIFO of [`ModelConfig::queue`] worth of bytes at that rate (at least
//!    [`ModelConfig::min_queue_bytes`]): a packet that finds it full is dropped
//!    ([`DropReason::UpQueue`]). This queue is the bufferbloat of the emulated access link.
//! 2. **Loss**: dropped with probability [`PathSpec::loss`], independently per packet and per
//!    direction (Bernoulli) ([`DropReason::Loss`]).
//! 3. **The path**: one-way delay [`PathSpec::one_way`] (half the round trip) plus jitter drawn
//!    uniformly from `[-jitter, +jitter]` per packet. Jitter never reorders a path: a packet is
//!    never delivered before the previous packet of the same (S, D) path, so closely spaced
//!    packets queue behind a delayed one (as on a real path, where reordering is rare).
//! 4. **D's downlink**: the same serialising link and drop-tail queue at D's download cap
//!    ([`DropReason::DownQueue`]), entered in the order packets arrive there.
//!
//! An uncapped link has no queue and takes no time. Everything random comes from one seeded
//! generator, so a run of the model is reproducible from its seed and its inputs.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Nanoseconds on the clock the model is driven with.
pub type Nanos = u64;

const SEC: u128 = 1_000_000_000;

/// One host's access link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSpec {
    /// Upload cap, IP bytes per second (`None`: uncapped).
    pub up: Option<u64>,
    /// Download cap, IP bytes per second (`None`: uncapped).
    pub down: Option<u64>,
}

/// What every path between two hosts does, per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PathSpec {
    /// One-way delay (half the round trip), ns.
    pub one_way: Nanos,
    /// Jitter: each packet's delay is `one_way` plus a uniform draw from `[-jitter, +jitter]`, ns.
    pub jitter: Nanos,
    /// Loss probability per packet and direction, 0 to 1.
    pub loss: f64,
}

/// The model's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Every path.
    pub path: PathSpec,
    /// How long a queue behind a cap may be, as time at the cap's rate, ns.
    pub queue: Nanos,
    /// The smallest queue, bytes (so a slow link still holds a few full packets).
    pub min_queue_bytes: u64,
    /// Seed of the generator behind loss and jitter.
    pub seed: u64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            path: PathSpec::default(),
            queue: 100_000_000,
            min_queue_bytes: 8 * 1514,
            seed: 1,
        }
    }
}

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The sender's uplink queue was full.
    UpQueue,
    /// Random loss on the path.
    Loss,
    /// The receiver's downlink queue was full.
    DownQueue,
}

/// A host, as the model knows it.
pub type HostId = u32;

/// What happens to a packet, once decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it now.
    Accept,
    /// Drop it.
    Drop(DropReason),
}

#[derive(Debug, Default)]
struct Link {
    rate: Option<u64>,
    busy_until: Nanos,
}

impl Link {
    fn new(rate: Option<u64>) -> Self {
        Self {
            rate,
            busy_until: 0,
        }
    }

    /// When a packet of `len` bytes entering at `at` leaves, or `None` if the queue is full.
    fn enter(&mut self, at: Nanos, len: u32, queue: Nanos, min_queue_bytes: u64) -> Option<Nanos> {
        let Some(rate) = self.rate else {
            return Some(at);
        };
        let rate = rate.max(1);
        let backlog_ns = self.busy_until.saturating_sub(at) as u128;
        let backlog_bytes = backlog_ns * rate as u128 / SEC;
        let limit = (queue as u128 * rate as u128 / SEC).max(min_queue_bytes as u128);
        if backlog_bytes + len as u128 > limit {
            return None;
        }
        let tx = (len as u128 * SEC).div_ceil(rate as u128) as Nanos;
        self.busy_until = self.busy_until.max(at) + tx;
        Some(self.busy_until)
    }
}

#[derive(Debug)]
struct Pending {
    dst: HostId,
    len: u32,
}

/// The model; see the module documentation.
#[derive(Debug)]
pub struct Model {
    config: ModelConfig,
    rng: SmallRng,
    up: HashMap<HostId, Link>,
    down: HashMap<HostId, Link>,
    path_last: HashMap<(HostId, HostId), Nanos>,
    /// Packets on their way to a downlink, by arrival time there (then by order of entry).
    arriving: BinaryHeap<Reverse<(Nanos, u64)>>,
    /// Packets through their downlink, by release time.
    leaving: BinaryHeap<Reverse<(Nanos, u64)>>,
    pending: HashMap<u64, Pending>,
}

impl Model {
    /// A model with no hosts.
    pub fn new(config: ModelConfig) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(config.seed),
            config,
            up: HashMap::new(),
            down: HashMap::new(),
            path_last: HashMap::new(),
            arriving: BinaryHeap::new(),
            leaving: BinaryHeap::new(),
            pending: HashMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Adds (or replaces) a host's access link.
    pub fn add_host(&mut self, id: HostId, link: LinkSpec) {
        self.up.insert(id, Link::new(link.up));
        self.down.insert(id, Link::new(link.down));
    }

    /// Packets held (not yet given a verdict).
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// A packet of `len` IP bytes from `src` to `dst` reached the emulator at `now`. `Err` is an
    /// immediate drop; otherwise its verdict comes from [`Model::poll`] (`token` names it).
    /// Packets between unknown hosts pass through the path alone (no caps).
    pub fn push(
        &mut self,
        now: Nanos,
        token: u64,
        src: HostId,
        dst: HostId,
        len: u32,
    ) -> Result<(), DropReason> {
        let (queue, min_q) = (self.config.queue, self.config.min_queue_bytes);
        let left = match self.up.get_mut(&src) {
            Some(link) => link
                .enter(now, len, queue, min_q)
                .ok_or(DropReason::UpQueue)?,
            None => now,
        };
        let path = self.config.path;
        if path.loss > 0.0 && self.rng.random::<f64>() < path.loss {
            return Err(DropReason::Loss);
        }
        let jitter = if path.jitter > 0 {
            self.rng
                .random_range(-(path.jitter as i64)..=path.jitter as i64)
        } else {
            0
        };
        let mut arrive = (left + path.one_way)
            .saturating_add_signed(jitter)
            .max(left);
        let last = self.path_last.entry((src, dst)).or_insert(0);
        arrive = arrive.max(*last);
        *last = arrive;
        self.pending.insert(token, Pending { dst, len });
        self.arriving.push(Reverse((arrive, token)));
        Ok(())
    }

    /// Verdicts due at `now`, in the order they fall due, appended to `out` as (token, verdict,
    /// when it fell due).
    pub fn poll(&mut self, now: Nanos, out: &mut Vec<(u64, Verdict, Nanos)>) {
        let (queue, min_q) = (self.config.queue, self.config.min_queue_bytes);
        loop {
            let a = self.arriving.peek().map(|r| r.0);
            let l = self.leaving.peek().map(|r| r.0);
            // The earlier event first; a release before an arrival at the same instant.
            let take_arrival = match (a, l) {
                (Some(a), Some(l)) => a.0 < l.0,
                (Some(_), None) => true,
                _ => false,
            };
            if take_arrival {
                let (at, token) = a.expect("peeked");
                if at > now {
                    break;
                }
                self.arriving.pop();
                let Some(p) = self.pending.get(&token) else {
                    continue;
                };
                let (dst, len) = (p.dst, p.len);
                match self.down.get_mut(&dst) {
                    Some(link) => match link.enter(at, len, queue, min_q) {
                        Some(t) => self.leaving.push(Reverse((t, token))),
                        None => {
                            self.pending.remove(&token);
                            out.push((token, Verdict::Drop(DropReason::DownQueue), at));
                        }
                    },
                    None => self.leaving.push(Reverse((at, token))),
                }
            } else {
                let Some((at, token)) = l else { break };
                if at > now {
                    break;
                }
                self.leaving.pop();
                if self.pending.remove(&token).is_some() {
                    out.push((token, Verdict::Accept, at));
                }
            }
        }
    }

    /// When [`Model::poll`] next has something to do, if ever.
    pub fn next_deadline(&self) -> Option<Nanos> {
        let a = self.arriving.peek().map(|r| r.0 .0);
        let l = self.leaving.peek().map(|r| r.0 .0);
        match (a, l) {
            (Some(a), Some(l)) => Some(a.min(l)),
            (a, l) => a.or(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    fn model(path: PathSpec) -> Model {
        Model::new(ModelConfig {
            path,
            ..ModelConfig::default()
        })
    }

    /// Runs the model to completion on a virtual clock: the release time of each token.
    fn drain(m: &mut Model) -> Vec<(u64, Nanos, Verdict)> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for _ in 0..1_000_000 {
            let Some(t) = m.next_deadline() else { break };
            m.poll(t, &mut buf);
            for (k, v, at) in buf.drain(..) {
                assert_eq!(
                    at, t,
                    "polled at the deadline, everything released falls due then"
                );
                out.push((k, t, v));
            }
        }
        out
    }

    #[test]
    fn an_uncapped_path_delays_by_the_one_way_delay() {
        let mut m = model(PathSpec {
            one_way: 25 * MS,
            ..PathSpec::default()
        });
        m.add_host(1, LinkSpec::default());
        m.add_host(2, LinkSpec::default());
        m.push(1_000, 7, 1, 2, 1500).unwrap();
        let mut out = Vec::new();
        m.poll(1_000 + 25 * MS - 1, &mut out);
        assert!(out.is_empty());
        assert_eq!(m.next_deadline(), Some(1_000 + 25 * MS));
        m.poll(1_000 + 25 * MS, &mut out);
        assert_eq!(out, [(7, Verdict::Accept, 1_000 + 25 * MS)]);
        assert_eq!(m.held(), 0);
    }

    #[test]
    fn a_cap_serialises_packets_at_its_rate() {
        let mut m = model(PathSpec::default());
        m.add_host(
            1,
            LinkSpec {
                up: Some(1_000_000),
                down: None,
            },
        );
        m.add_host(2, LinkSpec::default());
        for k in 0..10 {
            m.push(0, k, 1, 2, 1000).unwrap();
        }
        let got = drain(&mut m);
        let times: Vec<Nanos> = got.iter().map(|g| g.1).collect();
        let want: Vec<Nanos> = (1..=10).map(|k| k * MS).collect();
        assert_eq!(times, want);
        assert!(got.iter().all(|g| g.2 == Verdict::Accept));
    }

    #[test]
    fn a_full_queue_drops_the_tail() {
        let mut m = Model::new(ModelConfig {
            queue: 5 * MS,
            min_queue_bytes: 0,
            ..ModelConfig::default()
        });
        m.add_host(
            1,
            LinkSpec {
                up: Some(1_000_000),
                down: None,
            },
        );
        // 5 ms at 1 MB/s is 5,000 bytes: five 1,000-byte packets fit, the sixth does not.
        let results: Vec<bool> = (0..8).map(|k| m.push(0, k, 1, 2, 1000).is_ok()).collect();
        assert_eq!(results, [true, true, true, true, true, false, false, false]);
        // Once the link has sent two, two more fit.
        assert!(m.push(2 * MS, 100, 1, 2, 1000).is_ok());
        assert!(m.push(2 * MS, 101, 1, 2, 1000).is_ok());
        assert_eq!(m.push(2 * MS, 102, 1, 2, 1000), Err(DropReason::UpQueue));
    }

    #[test]
    fn a_capped_downlink_serialises_two_senders_in_arrival_order() {
        let mut m = model(PathSpec {
            one_way: 10 * MS,
            ..PathSpec::default()
        });
        m.add_host(1, LinkSpec::default());
        m.add_host(2, LinkSpec::default());
        m.add_host(
            3,
            LinkSpec {
                up: None,
                down: Some(1_000_000),
            },
        );
        m.push(0, 1, 1, 3, 1000).unwrap();
        m.push(0, 2, 2, 3, 1000).unwrap();
        m.push(500_000, 3, 1, 3, 1000).unwrap();
        let got: Vec<(u64, Nanos)> = drain(&mut m).iter().map(|g| (g.0, g.1)).collect();
        assert_eq!(got, [(1, 11 * MS), (2, 12 * MS), (3, 13 * MS)]);
    }

    #[test]
    fn loss_is_the_configured_share_and_reproducible() {
        let run = |seed| {
            let mut m = Model::new(ModelConfig {
                path: PathSpec {
                    loss: 0.01,
                    ..PathSpec::default()
                },
                seed,
                ..ModelConfig::default()
            });
            (0..100_000u64)
                .filter(|&k| m.push(k * 1000, k, 1, 2, 100) == Err(DropReason::Loss))
                .count()
        };
        let lost = run(7);
        // 1% of 100,000 with a standard deviation of about 31.
        assert!((850..=1150).contains(&lost), "{lost}");
        assert_eq!(run(7), lost);
        assert_ne!(run(8), lost);
    }

    #[test]
    fn jitter_spreads_delays_but_never_reorders_a_path() {
        let mut m = model(PathSpec {
            one_way: 20 * MS,
            jitter: 5 * MS,
            loss: 0.0,
        });
        // Sparse packets: each sees its own draw.
        for k in 0..1000u64 {
            m.push(k * 100 * MS, k, 1, 2, 100).unwrap();
        }
        let got = drain(&mut m);
        let delays: Vec<i64> = got
            .iter()
            .map(|g| g.1 as i64 - (g.0 * 100 * MS) as i64)
            .collect();
        assert!(delays
            .iter()
            .all(|&d| (15 * MS as i64..=25 * MS as i64).contains(&d)));
        let mean = delays.iter().sum::<i64>() / delays.len() as i64;
        assert!((mean - 20 * MS as i64).abs() < MS as i64 / 2, "{mean}");
        // Dense packets: delivered in order.
        let mut m = model(PathSpec {
            one_way: 20 * MS,
            jitter: 5 * MS,
            loss: 0.0,
        });
        for k in 0..1000u64 {
            m.push(k * 10_000, k, 1, 2, 100).unwrap();
        }
        let order: Vec<u64> = drain(&mut m).iter().map(|g| g.0).collect();
        assert_eq!(order, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn a_saturated_cap_delivers_its_rate() {
        let mut m = model(PathSpec::default());
        m.add_host(
            1,
            LinkSpec {
                up: Some(250_000),
                down: None,
            },
        );
        // Offer twice the cap for 10 s, in 1,500-byte packets.
        let mut out = Vec::new();
        let mut delivered = 0u64;
        let (mut t, mut k) = (0, 0u64);
        while t < 10_000 * MS {
            let _ = m.push(t, k, 1, 2, 1500);
            k += 1;
            t += 3 * MS;
            m.poll(t, &mut out);
            delivered += out.iter().filter(|o| o.1 == Verdict::Accept).count() as u64 * 1500;
            out.clear();
        }
        let rate = delivered as f64 / 10.0;
        assert!((rate - 250_000.0).abs() < 250_000.0 * 0.02, "{rate}");
    }
}
