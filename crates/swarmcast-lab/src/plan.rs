//! Sweep planning (pure): a [`SweepSpec`] of lists becomes the [`RunSpec`]s to execute, grouped
//! so the swarm run and its HTTP baseline of the same configuration run side by side (same
//! machine conditions, half the wall time), with an up-front estimate of how long it all takes.
//!
//! This file holds the types; `plan/expand.rs` checks a sweep and expands it, step by step, into
//! runs; `plan/variant.rs` parses the librqbit variants, `plan/net.rs` the emulated networks.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod churn;
mod expand;
mod net;
#[cfg(test)]
mod tests;
mod variant;

pub use expand::plan;
pub use net::{NetMode, NetPoint, NetSweep, DEFAULT_QUEUE_MS};
pub use variant::Variant;

/// The smallest rate cap: librqbit moves 16 KiB chunks, and below two a second its limiter stalls.
pub const MIN_LIMIT: u32 = swarmcast_swarm::ratelimit::MIN_RATE;

/// How viewers fetch segments in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// From the swarm (`swarmcast watch`).
    Swarm,
    /// Over plain HTTP from the publisher (`swarmcast watch --transport http`).
    Http,
    /// The seed's method (a): a tree of Icecast relays of fan-out k, each node an `icecast2`
    /// relaying its parent and playing the stream (`swarmcast icecast-node`).
    RelayTree,
    /// The seed's method (d): swarmcast's own relays with a back buffer, resuming where they
    /// left off when they switch parent (`swarmcast relay`).
    RelayResume,
    /// The seed's method (c): the stream striped into 4 RaptorQ substreams, each relayed down
    /// its own tree, interior nodes disjoint (`swarmcast stripe-node`, docs/striped-fec.md).
    StripedFec,
}

impl Transport {
    /// `swarm`, `http`, `relay-tree`, `relay-resume` or `striped-fec`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Swarm => "swarm",
            Self::Http => "http",
            Self::RelayTree => "relay-tree",
            Self::RelayResume => "relay-resume",
            Self::StripedFec => "striped-fec",
        }
    }

    /// Every transport.
    pub const ALL: [Transport; 5] = [
        Self::Swarm,
        Self::Http,
        Self::RelayTree,
        Self::RelayResume,
        Self::StripedFec,
    ];
}

impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "swarm" => Ok(Self::Swarm),
            "http" => Ok(Self::Http),
            "relay-tree" | "relay_tree" => Ok(Self::RelayTree),
            "relay-resume" | "relay_resume" => Ok(Self::RelayResume),
            "striped-fec" | "striped_fec" => Ok(Self::StripedFec),
            other => Err(format!(
                "transport {other:?}: expected swarm, http, relay-tree, relay-resume or striped-fec"
            )),
        }
    }
}

/// `swarm`, `http`, or `swarm-<variant>` (what tables and plots call a run's transport).
pub fn kind(transport: Transport, variant: &Variant) -> String {
    match variant.is_default() {
        true => transport.as_str().to_owned(),
        false => format!("{}-{}", transport.as_str(), variant.as_str()),
    }
}

/// When viewers join and leave.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "pattern", rename_all = "snake_case")]
pub enum JoinPattern {
    /// Every viewer starts with the publisher.
    All,
    /// Viewer `i` starts `i × every_secs` after the publisher.
    Staggered {
        /// Seconds between joins.
        every_secs: f64,
    },
    /// All start with the publisher; then every `every_secs` the longest-running viewer leaves
    /// (Ctrl-C) and a new one joins, so the audience stays at N.
    Churn {
        /// Seconds between a leave-and-join.
        every_secs: f64,
    },
    /// All start with the publisher; `at_secs` later, `percent` of them (rounded, at least one,
    /// viewers `0..k`) are killed (SIGKILL) at the same moment, mid-stream, and none replaces
    /// them: the rest play on.
    Exodus {
        /// Seconds from the publisher's start.
        at_secs: f64,
        /// Share of the audience killed, 1 to 100.
        percent: u32,
    },
}

impl JoinPattern {
    /// Viewers an [`JoinPattern::Exodus`] of `viewers` kills (0 for other patterns).
    pub fn killed(self, viewers: usize) -> usize {
        match self {
            Self::Exodus { percent, .. } => {
                ((viewers * percent as usize + 50) / 100).clamp(1, viewers)
            }
            _ => 0,
        }
    }
}

impl std::fmt::Display for JoinPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => write!(f, "all"),
            Self::Staggered { every_secs } => write!(f, "staggered/{every_secs}s"),
            Self::Churn { every_secs } => write!(f, "churn/{every_secs}s"),
            Self::Exodus { at_secs, percent } => write!(f, "exodus/{percent}%@{at_secs}s"),
        }
    }
}

/// A rate cap: absolute, or a multiple of the stream's bitrate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// Bytes per second.
    BytesPerSec(u32),
    /// This many times the stream bitrate.
    TimesBitrate(f64),
}

impl Limit {
    /// Bytes per second at `bitrate` (bit/s).
    pub fn resolve(self, bitrate: u64) -> u32 {
        match self {
            Self::BytesPerSec(b) => b,
            Self::TimesBitrate(x) => (x * bitrate as f64 / 8.0).round().min(u32::MAX as f64) as u32,
        }
    }
}

impl std::str::FromStr for Limit {
    type Err = String;
    /// `1.5x` (times the bitrate) or bytes per second with an optional k/M suffix (×1000).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(x) = s.strip_suffix('x') {
            return match x.parse::<f64>() {
                Ok(v) if v > 0.0 && v.is_finite() => Ok(Self::TimesBitrate(v)),
                _ => Err(format!(
                    "limit {s:?}: expected a positive multiple such as 1.5x"
                )),
            };
        }
        match swarmcast_swarm::ratelimit::parse_si(s) {
            Some(v) if v > 0.0 && v <= u32::MAX as f64 => Ok(Self::BytesPerSec(v.round() as u32)),
            _ => Err(format!(
                "limit {s:?}: expected bytes per second (k and M suffixes allowed) or a multiple of the bitrate such as 1.5x"
            )),
        }
    }
}

/// What to sweep: every combination of the lists, `repeats` times.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepSpec {
    /// Segment lengths, seconds.
    pub segment_secs: Vec<f64>,
    /// Audience sizes.
    pub viewers: Vec<usize>,
    /// Transports (the swarm, and HTTP as the baseline).
    pub transports: Vec<Transport>,
    /// Variants of the librqbit patch series for swarm runs (each one a run of its own).
    pub variants: Vec<Variant>,
    /// Repeats of every configuration.
    pub repeats: u32,
    /// Synthetic feed bitrate, bit/s.
    pub bitrate: u64,
    /// Media per run, seconds [default: max(5 segments, 60 s)].
    pub duration_secs: Option<f64>,
    /// Join pattern.
    pub join: JoinPattern,
    /// The publisher's upload caps to sweep (`None`: no cap).
    pub publisher_upload_limit: Vec<Option<Limit>>,
    /// Each viewer's upload caps to sweep.
    pub viewer_upload_limit: Vec<Option<Limit>>,
    /// Each viewer's download caps to sweep.
    pub viewer_download_limit: Vec<Option<Limit>>,
    /// Swarm viewers may fetch late segments over HTTP.
    pub http_fallback: bool,
    /// Run the transports of one configuration side by side (false: one run at a time; always
    /// false on an emulated network).
    pub side_by_side: bool,
    /// Where the nodes run: loopback (`None`), or each in its own network namespace.
    #[serde(default)]
    pub net: Option<NetSweep>,
    /// Relay transports: each relay's children, at most.
    #[serde(default = "default_fanout")]
    pub fanout: usize,
    /// relay-resume: each relay's back buffer, seconds.
    #[serde(default = "default_back_buffer")]
    pub back_buffer_secs: f64,
    /// Share of the nodes that leaves per minute, percent, each replaced at once (0: none).
    #[serde(default)]
    pub churn_pct: f64,
    /// The seed of the churn schedule (the same schedule for every transport of a sweep).
    #[serde(default)]
    pub churn_seed: u64,
    /// The simulated player's buffer for the shared figures, seconds.
    #[serde(default = "default_playout_buffer")]
    pub playout_buffer_secs: f64,
}

/// The seed's "a couple more peers".
pub const DEFAULT_FANOUT: usize = 2;
/// relay-resume's default back buffer, seconds.
pub const DEFAULT_BACK_BUFFER_SECS: f64 = 30.0;
/// The simulated player's default buffer, seconds: what a player's network cache holds (VLC's
/// default is 1 s, hls.js starts on a segment); 2 s is one default segment.
pub const DEFAULT_PLAYOUT_BUFFER_SECS: f64 = 2.0;

fn default_fanout() -> usize {
    DEFAULT_FANOUT
}
fn default_back_buffer() -> f64 {
    DEFAULT_BACK_BUFFER_SECS
}
fn default_playout_buffer() -> f64 {
    DEFAULT_PLAYOUT_BUFFER_SECS
}

impl Default for SweepSpec {
    /// The default sweep: 2, 10 and 60 s segments × 1, 5 and 20 viewers, swarm against HTTP,
    /// 1 Mbit/s, everyone joining at once, no caps.
    fn default() -> Self {
        Self {
            segment_secs: vec![2.0, 10.0, 60.0],
            viewers: vec![1, 5, 20],
            transports: vec![Transport::Swarm, Transport::Http],
            variants: vec![Variant::default()],
            repeats: 1,
            bitrate: 1_000_000,
            duration_secs: None,
            join: JoinPattern::All,
            publisher_upload_limit: vec![None],
            viewer_upload_limit: vec![None],
            viewer_download_limit: vec![None],
            http_fallback: true,
            side_by_side: true,
            net: None,
            fanout: DEFAULT_FANOUT,
            back_buffer_secs: DEFAULT_BACK_BUFFER_SECS,
            churn_pct: 0.0,
            churn_seed: 0,
            playout_buffer_secs: DEFAULT_PLAYOUT_BUFFER_SECS,
        }
    }
}

/// One run: a publisher and its viewers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Unique, sortable, and names the run's directory: `s002-n05-swarm-r1`.
    pub id: String,
    /// Runs of the same group execute concurrently.
    pub group: usize,
    /// Segment length, seconds.
    pub segment_secs: f64,
    /// Viewers (at any one time).
    pub viewers: usize,
    /// Transport.
    pub transport: Transport,
    /// The librqbit variant (swarm runs; `patched` for HTTP runs).
    #[serde(default)]
    pub variant: Variant,
    /// Repeat number, from 1.
    pub repeat: u32,
    /// Media published, seconds.
    pub duration_secs: f64,
    /// Bitrate, bit/s.
    pub bitrate: u64,
    /// Join pattern.
    pub join: JoinPattern,
    /// The publisher's upload cap, bytes/s.
    pub publisher_upload_limit: Option<u32>,
    /// Viewers' upload cap, bytes/s.
    pub viewer_upload_limit: Option<u32>,
    /// Viewers' download cap, bytes/s.
    pub viewer_download_limit: Option<u32>,
    /// HTTP fallback allowed (swarm runs).
    pub http_fallback: bool,
    /// The emulated network, if the run is not on loopback (caps then apply on the links, to wire
    /// bytes, instead of in the processes).
    #[serde(default)]
    pub net: Option<NetPoint>,
    /// Relay transports: each relay's children, at most.
    #[serde(default = "default_fanout")]
    pub fanout: usize,
    /// relay-resume: each relay's back buffer, seconds.
    #[serde(default = "default_back_buffer")]
    pub back_buffer_secs: f64,
    /// Share of the nodes that leaves per minute, percent (0: none).
    #[serde(default)]
    pub churn_pct: f64,
    /// The churn schedule's seed.
    #[serde(default)]
    pub churn_seed: u64,
    /// The simulated player's buffer, seconds (0 in records older than the shared figures: their
    /// reports have none).
    #[serde(default)]
    pub playout_buffer_secs: f64,
}

impl RunSpec {
    /// `swarm`, `http`, or `swarm-<variant>` for a swarm run with librqbit changes off.
    pub fn kind(&self) -> String {
        kind(self.transport, &self.variant)
    }

    /// The configuration without transport and repeat (what results are grouped by).
    pub fn config_key(&self) -> (u64, usize) {
        ((self.segment_secs * 1000.0).round() as u64, self.viewers)
    }

    /// Viewer processes over the whole run (churn adds one per leave-and-join).
    pub fn viewer_processes(&self) -> usize {
        match self.join {
            JoinPattern::Churn { every_secs } => {
                self.viewers + (self.duration_secs / every_secs).floor() as usize
            }
            _ => self.viewers + self.churn().len(),
        }
    }

    /// The `--churn` departures of this run (none without churn).
    pub fn churn(&self) -> Vec<churn::Departure> {
        churn::schedule(
            self.viewers,
            self.duration_secs,
            self.churn_pct,
            self.churn_seed,
        )
    }

    /// When viewers start and leave, in seconds from the publisher's start, in order (a leave
    /// before a start at the same time, so the audience never exceeds N).
    pub fn schedule(&self) -> Vec<(f64, Step)> {
        let mut steps: Vec<(f64, Step)> = match self.join {
            JoinPattern::All => {
                let mut s: Vec<(f64, Step)> =
                    (0..self.viewers).map(|i| (0.0, Step::Start(i))).collect();
                for d in self.churn() {
                    s.push((d.at_secs, Step::Depart(d.leaving)));
                    s.push((d.at_secs, Step::Start(d.joining)));
                }
                s
            }
            JoinPattern::Staggered { every_secs } => (0..self.viewers)
                .map(|i| (i as f64 * every_secs, Step::Start(i)))
                .collect(),
            JoinPattern::Churn { every_secs } => {
                let mut s: Vec<(f64, Step)> =
                    (0..self.viewers).map(|i| (0.0, Step::Start(i))).collect();
                for k in 1..=self.viewer_processes() - self.viewers {
                    let t = k as f64 * every_secs;
                    s.push((t, Step::Leave));
                    s.push((t, Step::Start(self.viewers + k - 1)));
                }
                s
            }
            JoinPattern::Exodus { at_secs, .. } => {
                let mut s: Vec<(f64, Step)> =
                    (0..self.viewers).map(|i| (0.0, Step::Start(i))).collect();
                s.push((
                    at_secs,
                    Step::Kill {
                        count: self.join.killed(self.viewers),
                    },
                ));
                s
            }
        };
        // Stable: equal times keep their order (leave, then start).
        steps.sort_by(|a, b| a.0.total_cmp(&b.0));
        steps
    }

    /// Estimated wall time: the media, the playout delay (at most a segment, in practice about a
    /// second) and process start and stop. Staggered and churning viewers join while it runs.
    pub fn estimate(&self) -> Duration {
        // Building and removing namespaces: about 50 ms a host.
        let net = self
            .net
            .map_or(0.0, |_| 4.0 + 0.05 * self.viewer_processes() as f64);
        Duration::from_secs_f64(self.duration_secs + self.segment_secs.min(2.0) + 6.0 + net)
    }
}

/// A step of a run's join pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Start viewer `i` (`viewer-<i>`).
    Start(usize),
    /// The longest-running viewer still running leaves (Ctrl-C).
    Leave,
    /// The first `count` viewers still running are killed (SIGKILL), all at the same moment.
    Kill {
        /// How many.
        count: usize,
    },
    /// `--churn`: node `i` leaves abruptly (every process on its host killed with SIGKILL).
    Depart(usize),
}

/// The runs to execute and how long they should take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The sweep.
    pub spec: SweepSpec,
    /// Every run, in execution order.
    pub runs: Vec<RunSpec>,
}

impl Plan {
    /// Groups in order; the runs of a group run concurrently.
    pub fn groups(&self) -> Vec<Vec<&RunSpec>> {
        let mut out: Vec<Vec<&RunSpec>> = Vec::new();
        for r in &self.runs {
            match out.last_mut() {
                Some(g) if g[0].group == r.group => g.push(r),
                _ => out.push(vec![r]),
            }
        }
        out
    }

    /// The estimated wall time: each group takes as long as its longest run.
    pub fn estimate(&self) -> Duration {
        self.groups()
            .iter()
            .map(|g| g.iter().map(|r| r.estimate()).max().unwrap_or_default())
            .sum()
    }

    /// Processes started over the sweep (publishers and viewers).
    pub fn processes(&self) -> usize {
        self.runs.iter().map(|r| 1 + r.viewer_processes()).sum()
    }
}

/// Why a sweep cannot be planned.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum PlanError {
    /// A list is empty.
    #[error("--{0} is empty")]
    Empty(&'static str),
    /// A value is out of range.
    #[error("--{field} {value}: {expected}")]
    Range {
        /// The flag.
        field: &'static str,
        /// What was given.
        value: String,
        /// What is allowed.
        expected: String,
    },
}

fn range(field: &'static str, value: impl ToString, expected: impl ToString) -> PlanError {
    PlanError::Range {
        field,
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// Most hosts of an emulated network (the publisher included).
pub const MAX_EMULATED_HOSTS: usize = 250;
