//! Sweep planning (pure): a [`SweepSpec`] of lists becomes the [`RunSpec`]s to execute, grouped
//! so the swarm run and its HTTP baseline of the same configuration run side by side (same
//! machine conditions, half the wall time), with an up-front estimate of how long it all takes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
}

impl Transport {
    /// `swarm` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Swarm => "swarm",
            Self::Http => "http",
        }
    }
}

impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "swarm" => Ok(Self::Swarm),
            "http" => Ok(Self::Http),
            other => Err(format!("transport {other:?}: expected swarm or http")),
        }
    }
}

/// Which changes of swarmcast's librqbit patch series a swarm run turns off (docs/librqbit.md).
///
/// Spelled `patched` (every change on, the default), `upstream` (every change off: librqbit
/// 9.1.0's own behaviour), `no-<change>[+<change>...]` (those off) or `only-<change>[+...]`
/// (only those on); changes are named as `swarmcast publish --librqbit-off` takes them. A
/// `librqbit` prefix (`librqbit`, `librqbit-no-steal`, ...) runs the publisher with `--seeder
/// librqbit` (a librqbit session, super-seeding by patch 0007) instead of the default wire
/// seeder; `upstream` implies it, and a `wire` prefix names the default explicitly. The viewers
/// are librqbit sessions either way.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Variant {
    /// The name as given (first: variants compare and sort by it; the rest follows from it).
    name: String,
    /// The publisher runs a librqbit session (`publish --seeder librqbit`), not the wire seeder.
    librqbit_seeder: bool,
    /// The changes turned off, as `--librqbit-off` names them.
    off: Vec<String>,
    /// The publisher's `--super-seed-reveal`, from an `@reveal=` suffix.
    reveal: Option<String>,
}

/// How a recorded run's variant is read back (`run.json`, `plan.json`): like a `--variants`
/// name, except that a change the patch series has since dropped is kept by name rather than
/// refused, so that results recorded before regenerate (a variant only names its runs there).
impl TryFrom<String> for Variant {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Variant::parse(&s, false)
    }
}

impl From<Variant> for String {
    fn from(v: Variant) -> Self {
        v.name
    }
}

impl Default for Variant {
    fn default() -> Self {
        Self {
            name: "patched".into(),
            librqbit_seeder: false,
            off: Vec::new(),
            reveal: None,
        }
    }
}

impl Variant {
    /// The variant's name, as given.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// Whether this is the default (`patched`).
    pub fn is_default(&self) -> bool {
        self.name == "patched"
    }

    /// The changes turned off, as `--librqbit-off` takes them (empty for `patched`).
    pub fn librqbit_off(&self) -> String {
        self.off.join(",")
    }

    /// The publisher's seeder, as `publish --seeder` takes it: `wire` or `librqbit`.
    pub fn seeder(&self) -> &'static str {
        if self.librqbit_seeder {
            "librqbit"
        } else {
            "wire"
        }
    }

    /// The publisher's `--super-seed-reveal` (seconds, or `never`), from an `@reveal=` suffix.
    pub fn super_seed_reveal(&self) -> Option<&str> {
        self.reveal.as_deref()
    }
}

/// A variant's name and its publisher options: `<name>@reveal=SECS|never` (the super-seeding
/// reveal, `publish --super-seed-reveal`), or the name alone.
fn split_options(s: &str) -> (&str, Option<&str>) {
    match s.split_once('@') {
        Some((name, options)) => (name, Some(options)),
        None => (s, None),
    }
}

/// Checks a variant's options (after `@`).
fn check_options(s: &str, options: &str) -> Result<(), String> {
    let ok = options
        .strip_prefix("reveal=")
        .is_some_and(|v| v == "never" || v.parse::<f64>().is_ok_and(|x| x.is_finite() && x > 0.0));
    match ok {
        true => Ok(()),
        false => Err(format!(
            "variant {s:?}: expected @reveal=SECS or @reveal=never after the name, found \
             {options:?}"
        )),
    }
}

/// The seeder a variant's publisher runs (`publish --seeder`), and the changes part of its name:
/// a `wire` or `librqbit` prefix names the seeder (alone, it means `patched`); without one, the
/// default seeder (`wire`), except for `upstream`, which is librqbit as published, the
/// publisher's seeding included.
fn split_seeder(s: &str) -> (&'static str, &str) {
    for seeder in ["wire", "librqbit"] {
        if s == seeder {
            return (seeder, "patched");
        }
        if let Some(rest) = s.strip_prefix(seeder).and_then(|r| r.strip_prefix('-')) {
            return (seeder, rest);
        }
    }
    match s {
        "upstream" => ("librqbit", s),
        _ => ("wire", s),
    }
}

/// The changes of the librqbit patch series a variant name turns off, or why the name is wrong.
fn changes_off(s: &str, strict: bool) -> Result<Vec<String>, String> {
    let names: Vec<String> = swarmcast_swarm::tweaks::names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let (_, changes) = split_seeder(s);
    let (list, only) = match changes {
        "patched" => return Ok(Vec::new()),
        "upstream" => return Ok(names),
        _ => match (changes.strip_prefix("no-"), changes.strip_prefix("only-")) {
            (Some(list), _) => (list, false),
            (_, Some(list)) => (list, true),
            _ => {
                return Err(format!(
                    "variant {s:?}: expected patched, upstream, no-<change>[+<change>...] or \
                     only-<change>[+...], each optionally prefixed with wire- or librqbit-"
                ))
            }
        },
    };
    let mut listed = Vec::new();
    for name in list.split('+') {
        match names.iter().find(|n| *n == name) {
            Some(n) => listed.push(n.clone()),
            None if !strict && !name.is_empty() => listed.push(name.to_owned()),
            None => {
                return Err(format!(
                    "variant {s:?}: unknown change {name:?}, expected one of {}",
                    names.join(", ")
                ))
            }
        }
    }
    Ok(match only {
        false => listed,
        true => names.into_iter().filter(|n| !listed.contains(n)).collect(),
    })
}

impl std::str::FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Variant::parse(s, true)
    }
}

impl Variant {
    /// `s` parsed; `strict`: a change the patch series does not have is an error.
    fn parse(s: &str, strict: bool) -> Result<Self, String> {
        let (name, options) = split_options(s);
        let off = changes_off(name, strict)?;
        if let Some(o) = options {
            check_options(s, o)?;
        }
        Ok(Self {
            name: s.into(),
            librqbit_seeder: split_seeder(name).0 == "librqbit",
            off,
            reveal: options
                .and_then(|o| o.strip_prefix("reveal="))
                .map(str::to_owned),
        })
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
}

impl std::fmt::Display for JoinPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => write!(f, "all"),
            Self::Staggered { every_secs } => write!(f, "staggered/{every_secs}s"),
            Self::Churn { every_secs } => write!(f, "churn/{every_secs}s"),
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
}

/// How nodes are connected, when not on loopback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetMode {
    /// Namespaces, access links and paths emulated (caps, delay, jitter, loss), NAT.
    Emulated,
    /// The same namespaces and router with plain kernel forwarding and no emulator: the control
    /// that measures the emulator's own cost (no caps, delay, jitter or loss; NAT allowed).
    Plain,
}

/// The network parameters to sweep (every combination).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetSweep {
    /// Emulated, or the plain control.
    pub mode: NetMode,
    /// Round-trip times between any two hosts, ms (half each way).
    pub rtt_ms: Vec<f64>,
    /// Jitter per direction, ms (uniform, never reordering a path).
    pub jitter_ms: Vec<f64>,
    /// Loss per direction, percent.
    pub loss_pct: Vec<f64>,
    /// Shares of viewers behind NAT, 0 to 1.
    pub nat: Vec<f64>,
    /// The queue behind each cap, as ms at the cap's rate.
    pub queue_ms: f64,
    /// Each capped process also limits itself to this share of its link's cap (`None`: only
    /// the link limits it).
    #[serde(default)]
    pub self_limit: Option<f64>,
    /// Share of the viewers behind NAT whose NAT is symmetric (a random port for every
    /// connection, as carrier-grade NATs do): hole punching fails through it. Not swept.
    #[serde(default)]
    pub symmetric_nat: f64,
}

impl Default for NetSweep {
    fn default() -> Self {
        Self {
            mode: NetMode::Emulated,
            rtt_ms: vec![0.0],
            jitter_ms: vec![0.0],
            loss_pct: vec![0.0],
            nat: vec![0.0],
            queue_ms: DEFAULT_QUEUE_MS,
            self_limit: None,
            symmetric_nat: 0.0,
        }
    }
}

/// The default queue behind an emulated cap, ms at the cap's rate.
pub const DEFAULT_QUEUE_MS: f64 = 100.0;

/// One run's network.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetPoint {
    /// Emulated, or the plain control.
    pub mode: NetMode,
    /// Round trip, ms.
    pub rtt_ms: f64,
    /// Jitter per direction, ms.
    pub jitter_ms: f64,
    /// Loss per direction, percent.
    pub loss_pct: f64,
    /// Share of viewers behind NAT.
    pub nat: f64,
    /// Queue behind each cap, ms.
    pub queue_ms: f64,
    /// Each capped process also limits itself to this share of its link's cap, as a user who
    /// told swarmcast their upload would (`None`: only the link limits it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_limit: Option<f64>,
    /// Share of the viewers behind NAT whose NAT is symmetric (random ports).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub symmetric_nat: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Whether position `i` falls in `share`, spread evenly (⌊(i+1)·share⌋ > ⌊i·share⌋).
fn spread(i: usize, share: f64) -> bool {
    ((i + 1) as f64 * share + 1e-9).floor() > (i as f64 * share + 1e-9).floor()
}

impl NetPoint {
    /// Whether viewer `i` of `n` sits behind NAT: the share is spread evenly over the joining
    /// order (viewer i is behind NAT when ⌊(i+1)·share⌋ > ⌊i·share⌋).
    pub fn behind_nat(&self, i: usize) -> bool {
        spread(i, self.nat)
    }

    /// Whether viewer `i` sits behind a symmetric NAT: the symmetric share is spread evenly, the
    /// same way, over the viewers behind NAT in joining order.
    pub fn behind_symmetric_nat(&self, i: usize) -> bool {
        self.behind_nat(i)
            && spread(
                (0..i).filter(|&j| self.behind_nat(j)).count(),
                self.symmetric_nat,
            )
    }
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
            _ => self.viewers,
        }
    }

    /// When viewers start and leave, in seconds from the publisher's start, in order (a leave
    /// before a start at the same time, so the audience never exceeds N).
    pub fn schedule(&self) -> Vec<(f64, Step)> {
        let mut steps: Vec<(f64, Step)> = match self.join {
            JoinPattern::All => (0..self.viewers).map(|i| (0.0, Step::Start(i))).collect(),
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

/// Turns a sweep into runs: for each segment length, each audience, each repeat, one group with
/// one run per transport.
pub fn plan(spec: &SweepSpec) -> Result<Plan, PlanError> {
    if spec.segment_secs.is_empty() {
        return Err(PlanError::Empty("segment-secs"));
    }
    if spec.viewers.is_empty() {
        return Err(PlanError::Empty("viewers"));
    }
    if spec.transports.is_empty() {
        return Err(PlanError::Empty("transports"));
    }
    if spec.variants.is_empty() {
        return Err(PlanError::Empty("variants"));
    }
    if spec.repeats == 0 {
        return Err(range("repeats", 0, "at least 1"));
    }
    for &s in &spec.segment_secs {
        if !(0.5..=600.0).contains(&s) {
            return Err(range("segment-secs", s, "from 0.5 to 600 seconds"));
        }
    }
    for &n in &spec.viewers {
        if !(1..=200).contains(&n) {
            return Err(range("viewers", n, "from 1 to 200"));
        }
    }
    if let Some(d) = spec.duration_secs {
        if !(d > 0.0 && d <= 24.0 * 3600.0) {
            return Err(range("duration", d, "more than 0 and at most a day"));
        }
    }
    match spec.join {
        JoinPattern::All => {}
        JoinPattern::Staggered { every_secs } | JoinPattern::Churn { every_secs } => {
            if !(every_secs > 0.0 && every_secs.is_finite()) {
                return Err(range("join", spec.join, "a positive interval"));
            }
        }
    }
    let limit = |field, l: Option<Limit>| -> Result<Option<u32>, PlanError> {
        match l.map(|l| l.resolve(spec.bitrate)) {
            Some(b) if b < MIN_LIMIT => Err(range(
                field,
                format!("{b} bytes/s"),
                format!("at least {MIN_LIMIT} bytes/s (librqbit cannot move 16 KiB chunks slower)"),
            )),
            other => Ok(other),
        }
    };
    let limits = |field, ls: &[Option<Limit>]| -> Result<Vec<(Option<u32>, String)>, PlanError> {
        if ls.is_empty() {
            return Err(PlanError::Empty(field));
        }
        ls.iter()
            .map(|&l| Ok((limit(field, l)?, limit_tag(l))))
            .collect()
    };
    let publisher_upload_limit = limits("publisher-upload-limit", &spec.publisher_upload_limit)?;
    let viewer_upload_limit = limits("viewer-upload-limit", &spec.viewer_upload_limit)?;
    let viewer_download_limit = limits("viewer-download-limit", &spec.viewer_download_limit)?;
    let nets = net_points(spec)?;
    let mut transports = spec.transports.clone();
    transports.sort();
    transports.dedup();
    let mut variants = spec.variants.clone();
    variants.dedup();
    // One run per swarm variant, one HTTP run.
    let kinds: Vec<(Transport, Variant)> = transports
        .iter()
        .flat_map(|&t| match t {
            Transport::Swarm => variants.iter().map(|v| (t, v.clone())).collect(),
            Transport::Http => vec![(t, Variant::default())],
        })
        .collect();
    // Every combination of caps and network, each named in run ids where its list has more than
    // one value.
    let tag = |name: &str, many: bool, value: &str| match many {
        true => format!("-{name}{value}"),
        false => String::new(),
    };
    let mut conditions = Vec::new();
    for pu in &publisher_upload_limit {
        for vu in &viewer_upload_limit {
            for vd in &viewer_download_limit {
                for (net, net_tag) in &nets {
                    let id = tag("pu", publisher_upload_limit.len() > 1, &pu.1)
                        + &tag("vu", viewer_upload_limit.len() > 1, &vu.1)
                        + &tag("vd", viewer_download_limit.len() > 1, &vd.1)
                        + net_tag;
                    conditions.push((pu.0, vu.0, vd.0, *net, id));
                }
            }
        }
    }
    // Emulated runs never share the machine.
    let side_by_side = spec.side_by_side && spec.net.is_none();

    let mut runs = Vec::new();
    let mut group = 0;
    for &segment_secs in &spec.segment_secs {
        let duration_secs = spec
            .duration_secs
            .unwrap_or_else(|| (5.0 * segment_secs).max(60.0));
        for &viewers in &spec.viewers {
            for (pu, vu, vd, net, condition) in &conditions {
                for repeat in 1..=spec.repeats {
                    for (i, (transport, variant)) in kinds.iter().enumerate() {
                        if i > 0 && !side_by_side {
                            group += 1;
                        }
                        let run = RunSpec {
                            id: format!(
                                "s{:03}{}-n{viewers:03}{condition}-{}{}-r{repeat}",
                                segment_secs.trunc() as u64,
                                frac_suffix(segment_secs),
                                transport.as_str(),
                                match variant.is_default() {
                                    true => String::new(),
                                    false => format!("-{}", variant.as_str()),
                                }
                            ),
                            group,
                            segment_secs,
                            viewers,
                            transport: *transport,
                            variant: variant.clone(),
                            repeat,
                            duration_secs,
                            bitrate: spec.bitrate,
                            join: spec.join,
                            publisher_upload_limit: *pu,
                            viewer_upload_limit: *vu,
                            viewer_download_limit: *vd,
                            http_fallback: spec.http_fallback,
                            net: *net,
                        };
                        if net.is_some() && 1 + run.viewer_processes() > MAX_EMULATED_HOSTS {
                            return Err(range(
                                "viewers",
                                viewers,
                                format!(
                                    "at most {} viewer processes on an emulated network (joins \
                                     and churn included)",
                                    MAX_EMULATED_HOSTS - 1
                                ),
                            ));
                        }
                        runs.push(run);
                    }
                    group += 1;
                }
            }
        }
    }
    Ok(Plan {
        spec: spec.clone(),
        runs,
    })
}

/// Most hosts of an emulated network (the publisher included).
pub const MAX_EMULATED_HOSTS: usize = 250;

/// `none`, `1.5x` or bytes per second: a cap as run ids name it.
fn limit_tag(l: Option<Limit>) -> String {
    match l {
        None => "none".into(),
        Some(Limit::TimesBitrate(x)) => format!("{x}x"),
        Some(Limit::BytesPerSec(b)) => b.to_string(),
    }
}

/// The network points of a sweep (one `None` on loopback), each with its run-id suffix.
fn net_points(spec: &SweepSpec) -> Result<Vec<(Option<NetPoint>, String)>, PlanError> {
    let Some(n) = &spec.net else {
        return Ok(vec![(None, String::new())]);
    };
    for (field, list) in [
        ("rtt", &n.rtt_ms),
        ("jitter", &n.jitter_ms),
        ("loss", &n.loss_pct),
        ("nat", &n.nat),
    ] {
        if list.is_empty() {
            return Err(PlanError::Empty(field));
        }
    }
    let check = |field, v: f64, lo: f64, hi: f64, what: &str| {
        if v.is_finite() && (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(range(field, v, what))
        }
    };
    for &v in &n.rtt_ms {
        check("rtt", v, 0.0, 2000.0, "from 0 to 2000 ms")?;
    }
    for &v in &n.jitter_ms {
        check("jitter", v, 0.0, 500.0, "from 0 to 500 ms")?;
    }
    for &v in &n.loss_pct {
        check("loss", v, 0.0, 50.0, "from 0 to 50 percent")?;
    }
    for &v in &n.nat {
        check("nat", v, 0.0, 1.0, "a share from 0 to 1")?;
    }
    check("queue-ms", n.queue_ms, 1.0, 10_000.0, "from 1 to 10000 ms")?;
    check(
        "symmetric-nat",
        n.symmetric_nat,
        0.0,
        1.0,
        "a share of the viewers behind NAT from 0 to 1",
    )?;
    if let Some(f) = n.self_limit {
        check(
            "self-limit",
            f,
            0.05,
            1.0,
            "a share of the cap from 0.05 to 1",
        )?;
    }
    if n.mode == NetMode::Plain {
        let shaped = n
            .rtt_ms
            .iter()
            .chain(&n.jitter_ms)
            .chain(&n.loss_pct)
            .any(|&v| v != 0.0)
            || [
                &spec.publisher_upload_limit,
                &spec.viewer_upload_limit,
                &spec.viewer_download_limit,
            ]
            .iter()
            .any(|l| l.iter().any(Option::is_some));
        if shaped {
            return Err(range(
                "net",
                "plain",
                "the plain network has no emulator: caps, --rtt, --jitter and --loss need --net emulated",
            ));
        }
    }
    let fmt = |v: f64| format!("{v}");
    let mut out = Vec::new();
    for &rtt_ms in &n.rtt_ms {
        for &jitter_ms in &n.jitter_ms {
            for &loss_pct in &n.loss_pct {
                for &nat in &n.nat {
                    let tag = |name: &str, list: &[f64], v: f64| match list.len() > 1 {
                        true => format!("-{name}{}", fmt(v)),
                        false => String::new(),
                    };
                    out.push((
                        Some(NetPoint {
                            mode: n.mode,
                            rtt_ms,
                            jitter_ms,
                            loss_pct,
                            nat,
                            queue_ms: n.queue_ms,
                            self_limit: n.self_limit,
                            symmetric_nat: n.symmetric_nat,
                        }),
                        tag("rtt", &n.rtt_ms, rtt_ms)
                            + &tag("j", &n.jitter_ms, jitter_ms)
                            + &tag("l", &n.loss_pct, loss_pct)
                            + &tag("nat", &n.nat, nat),
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// `p5` for 2.5 s segments, so ids stay unique and sortable.
fn frac_suffix(secs: f64) -> String {
    let ms = ((secs.fract()) * 1000.0).round() as u64;
    if ms == 0 {
        String::new()
    } else {
        format!("p{ms:03}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emulated_sweep_names_each_varied_factor_and_runs_one_at_a_time() {
        let spec = SweepSpec {
            segment_secs: vec![2.0],
            viewers: vec![20],
            viewer_upload_limit: vec![Some(Limit::TimesBitrate(2.0)), None],
            net: Some(NetSweep {
                rtt_ms: vec![50.0, 150.0],
                nat: vec![0.6],
                ..NetSweep::default()
            }),
            ..SweepSpec::default()
        };
        let p = plan(&spec).unwrap();
        let ids: Vec<&str> = p.runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "s002-n020-vu2x-rtt50-swarm-r1",
                "s002-n020-vu2x-rtt50-http-r1",
                "s002-n020-vu2x-rtt150-swarm-r1",
                "s002-n020-vu2x-rtt150-http-r1",
                "s002-n020-vunone-rtt50-swarm-r1",
                "s002-n020-vunone-rtt50-http-r1",
                "s002-n020-vunone-rtt150-swarm-r1",
                "s002-n020-vunone-rtt150-http-r1",
            ]
        );
        // Side by side is off: every run is a group of its own.
        assert_eq!(p.groups().len(), p.runs.len());
        let r = &p.runs[2];
        assert_eq!(r.viewer_upload_limit, Some(250_000));
        let net = r.net.unwrap();
        assert_eq!(
            (net.rtt_ms, net.nat, net.mode),
            (150.0, 0.6, NetMode::Emulated)
        );
        // 60% of 20 viewers: 12, spread over the joining order.
        let behind: Vec<usize> = (0..20).filter(|&i| net.behind_nat(i)).collect();
        assert_eq!(behind.len(), 12);
        assert!(behind.contains(&0) || behind.contains(&1));
        assert!(behind.contains(&19));
        assert!(!(0..20).any(|i| net.behind_symmetric_nat(i)));
        // Half of those behind symmetric NATs: 6, every other one of the 12.
        let half = NetPoint {
            symmetric_nat: 0.5,
            ..net
        };
        let symmetric: Vec<usize> = (0..20).filter(|&i| half.behind_symmetric_nat(i)).collect();
        assert_eq!(symmetric.len(), 6);
        assert!(symmetric.iter().all(|i| behind.contains(i)));
        let at: Vec<usize> = symmetric
            .iter()
            .map(|i| behind.iter().position(|b| b == i).unwrap())
            .collect();
        assert_eq!(at, [1, 3, 5, 7, 9, 11]);
        // A run file of a loopback run, written before networks existed, still reads.
        let mut old = serde_json::to_value(&p.runs[0]).unwrap();
        old.as_object_mut().unwrap().remove("net");
        let back: RunSpec = serde_json::from_value(old).unwrap();
        assert_eq!(back.net, None);
    }

    #[test]
    fn network_flags_are_checked() {
        let with = |net: NetSweep| SweepSpec {
            net: Some(net),
            ..SweepSpec::default()
        };
        let err = |s: SweepSpec| plan(&s).unwrap_err().to_string();
        assert!(err(with(NetSweep {
            symmetric_nat: 1.5,
            ..NetSweep::default()
        }))
        .contains("symmetric-nat"));
        assert!(err(with(NetSweep {
            loss_pct: vec![120.0],
            ..NetSweep::default()
        }))
        .contains("--loss 120: from 0 to 50 percent"));
        assert!(err(with(NetSweep {
            nat: vec![],
            ..NetSweep::default()
        }))
        .contains("--nat is empty"));
        let plain = NetSweep {
            mode: NetMode::Plain,
            rtt_ms: vec![50.0],
            ..NetSweep::default()
        };
        assert!(err(with(plain)).contains("need --net emulated"));
        let mut capped = with(NetSweep {
            mode: NetMode::Plain,
            ..NetSweep::default()
        });
        capped.publisher_upload_limit = vec![Some(Limit::TimesBitrate(1.5))];
        assert!(err(capped).contains("need --net emulated"));
        let big = SweepSpec {
            viewers: vec![200],
            join: JoinPattern::Churn { every_secs: 1.0 },
            duration_secs: Some(60.0),
            net: Some(NetSweep::default()),
            ..SweepSpec::default()
        };
        assert!(err(big).contains("at most 249 viewer processes"));
    }

    #[test]
    fn variants_name_the_librqbit_changes_they_turn_off() {
        let v = |s: &str| s.parse::<Variant>();
        assert_eq!(v("patched").unwrap().librqbit_off(), "");
        assert_eq!(
            v("upstream").unwrap().librqbit_off(),
            "have,wake,random,window,cancel,nodelay,superseed,steal,pace,slots,nopex,urgent"
        );
        assert_eq!(v("no-random+have").unwrap().librqbit_off(), "random,have");
        assert_eq!(
            v("only-random").unwrap().librqbit_off(),
            "have,wake,window,cancel,nodelay,superseed,steal,pace,slots,nopex,urgent"
        );
        // Run files read back the same, except that a change since dropped from the patch
        // series is kept by name (older results still regenerate); a bad name is refused.
        let back: Variant = serde_json::from_str("\"no-random\"").unwrap();
        assert_eq!(back, v("no-random").unwrap());
        assert_eq!(serde_json::to_string(&back).unwrap(), "\"no-random\"");
        let dropped: Variant = serde_json::from_str("\"no-incoming\"").unwrap();
        assert_eq!(dropped.librqbit_off(), "incoming");
        assert_eq!(dropped.as_str(), "no-incoming");
        assert!(serde_json::from_str::<Variant>("\"fast\"").is_err());
        let err = v("no-rarest").unwrap_err();
        assert!(
            err.contains("\"rarest\"") && err.contains("nodelay"),
            "{err}"
        );
        assert!(v("fast")
            .unwrap_err()
            .contains("expected patched, upstream"));
    }

    #[test]
    fn a_prefix_picks_the_seeder_and_keeps_the_changes() {
        let v = |s: &str| s.parse::<Variant>().unwrap();
        assert_eq!(v("patched").seeder(), "wire");
        assert_eq!(v("no-steal").seeder(), "wire");
        assert_eq!(v("upstream").seeder(), "librqbit");
        let l = v("librqbit");
        assert_eq!((l.seeder(), l.librqbit_off().as_str()), ("librqbit", ""));
        let l = v("librqbit-no-steal");
        assert_eq!(
            (l.seeder(), l.librqbit_off().as_str()),
            ("librqbit", "steal")
        );
        let w = v("wire");
        assert_eq!((w.seeder(), w.librqbit_off().as_str()), ("wire", ""));
        // Publisher options after `@`.
        let r = v("no-steal@reveal=never");
        assert_eq!(
            (r.seeder(), r.librqbit_off().as_str(), r.super_seed_reveal()),
            ("wire", "steal", Some("never"))
        );
        assert_eq!(v("patched@reveal=6").super_seed_reveal(), Some("6"));
        assert_eq!(v("patched").super_seed_reveal(), None);
        assert_eq!(
            kind(Transport::Swarm, &v("patched@reveal=6")),
            "swarm-patched@reveal=6"
        );
        for bad in [
            "patched@reveal=0",
            "patched@reveal=soon",
            "patched@fast",
            "no-rarest@reveal=6",
        ] {
            assert!(bad.parse::<Variant>().is_err(), "{bad}");
        }
        assert_eq!(v("wire-upstream").seeder(), "wire");
        assert_eq!(v("wire-upstream").librqbit_off().split(',').count(), 12);
        assert_eq!(kind(Transport::Swarm, &v("librqbit")), "swarm-librqbit");
        for bad in ["wire-", "librqbit-fast", "wirex", "librqbitno-steal"] {
            assert!(bad.parse::<Variant>().is_err(), "{bad}");
        }
    }

    #[test]
    fn each_variant_is_a_swarm_run_and_http_runs_once() {
        let spec = SweepSpec {
            segment_secs: vec![2.0],
            viewers: vec![4],
            variants: vec!["patched".parse().unwrap(), "upstream".parse().unwrap()],
            ..SweepSpec::default()
        };
        let p = plan(&spec).unwrap();
        let ids: Vec<&str> = p.runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "s002-n004-swarm-r1",
                "s002-n004-swarm-upstream-r1",
                "s002-n004-http-r1"
            ]
        );
        let kinds: Vec<String> = p.runs.iter().map(RunSpec::kind).collect();
        assert_eq!(kinds, ["swarm", "swarm-upstream", "http"]);
        assert!(
            p.runs.iter().all(|r| r.group == p.runs[0].group),
            "side by side"
        );
    }

    #[test]
    fn the_default_sweep_fits_in_thirty_minutes() {
        let p = plan(&SweepSpec::default()).unwrap();
        assert_eq!(p.runs.len(), 18);
        // Swarm and HTTP of one configuration share a group.
        assert_eq!(p.groups().len(), 9);
        assert!(p
            .groups()
            .iter()
            .all(|g| g.len() == 2 && g[0].transport != g[1].transport));
        // max(5 segments, 60 s).
        let d = |s: f64| {
            p.runs
                .iter()
                .find(|r| r.segment_secs == s)
                .unwrap()
                .duration_secs
        };
        assert_eq!((d(2.0), d(10.0), d(60.0)), (60.0, 60.0, 300.0));
        let est = p.estimate();
        assert!(est <= Duration::from_secs(30 * 60), "{est:?}");
        // 3×(60+2+6) + 3×(60+2+6) + 3×(300+2+6) seconds.
        assert_eq!(est, Duration::from_secs(3 * 68 + 3 * 68 + 3 * 308));
        assert_eq!(p.processes(), 2 * 3 * (3 + 1 + 5 + 20));
    }

    #[test]
    fn ids_are_unique_and_sorted_like_the_runs() {
        let mut spec = SweepSpec {
            segment_secs: vec![1.0, 2.5],
            viewers: vec![2, 10],
            repeats: 2,
            ..SweepSpec::default()
        };
        spec.side_by_side = false;
        let p = plan(&spec).unwrap();
        let ids: Vec<&str> = p.runs.iter().map(|r| r.id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        assert_eq!(ids[0], "s001-n002-swarm-r1");
        assert!(ids.contains(&"s002p500-n010-http-r2"));
        // One run at a time: every run its own group.
        assert_eq!(p.groups().len(), p.runs.len());
    }

    #[test]
    fn caps_resolve_against_the_bitrate_and_refuse_below_32_kib() {
        assert_eq!("1.5x".parse::<Limit>().unwrap().resolve(1_000_000), 187_500);
        assert_eq!("64k".parse::<Limit>().unwrap().resolve(1), 64_000);
        assert_eq!(
            "40000".parse::<Limit>().unwrap(),
            Limit::BytesPerSec(40_000)
        );
        assert!("0x".parse::<Limit>().is_err());
        assert!("fast".parse::<Limit>().is_err());
        let spec = SweepSpec {
            publisher_upload_limit: vec![Some(Limit::TimesBitrate(0.2))],
            ..SweepSpec::default()
        };
        let err = plan(&spec).unwrap_err().to_string();
        assert!(
            err.contains("publisher-upload-limit 25000 bytes/s"),
            "{err}"
        );
        assert!(err.contains("at least 32768"), "{err}");
        let spec = SweepSpec {
            publisher_upload_limit: vec![Some(Limit::TimesBitrate(1.5))],
            viewer_download_limit: vec![Some(Limit::BytesPerSec(40_000))],
            ..SweepSpec::default()
        };
        let p = plan(&spec).unwrap();
        assert!(p
            .runs
            .iter()
            .all(|r| r.publisher_upload_limit == Some(187_500)
                && r.viewer_download_limit == Some(40_000)
                && r.viewer_upload_limit.is_none()));
    }

    #[test]
    fn bad_sweeps_name_the_flag() {
        let bad = |f: fn(&mut SweepSpec)| {
            let mut s = SweepSpec::default();
            f(&mut s);
            plan(&s).unwrap_err().to_string()
        };
        assert_eq!(bad(|s| s.viewers.clear()), "--viewers is empty");
        assert!(bad(|s| s.viewers = vec![0]).starts_with("--viewers 0"));
        assert!(bad(|s| s.segment_secs = vec![0.1]).starts_with("--segment-secs 0.1"));
        assert!(bad(|s| s.repeats = 0).starts_with("--repeats 0"));
        assert!(bad(|s| s.join = JoinPattern::Churn { every_secs: 0.0 }).starts_with("--join"));
    }

    #[test]
    fn churn_adds_a_viewer_per_interval() {
        let spec = SweepSpec {
            segment_secs: vec![2.0],
            viewers: vec![5],
            transports: vec![Transport::Swarm],
            duration_secs: Some(20.0),
            join: JoinPattern::Churn { every_secs: 4.0 },
            ..SweepSpec::default()
        };
        let p = plan(&spec).unwrap();
        assert_eq!(p.runs[0].viewer_processes(), 10);
        assert_eq!(p.runs[0].join.to_string(), "churn/4s");
        let s = p.runs[0].schedule();
        assert_eq!(s.len(), 5 + 2 * 5);
        assert_eq!(
            &s[..5],
            &(0..5).map(|i| (0.0, Step::Start(i))).collect::<Vec<_>>()[..]
        );
        assert_eq!(&s[5..7], &[(4.0, Step::Leave), (4.0, Step::Start(5))]);
        assert_eq!(s.last(), Some(&(20.0, Step::Start(9))));
        // The audience never exceeds N.
        let mut live = 0i32;
        for (_, step) in &s {
            live += if *step == Step::Leave { -1 } else { 1 };
            assert!(live <= 5);
        }
    }

    #[test]
    fn staggered_viewers_join_one_by_one() {
        let spec = SweepSpec {
            segment_secs: vec![2.0],
            viewers: vec![3],
            transports: vec![Transport::Http],
            join: JoinPattern::Staggered { every_secs: 2.5 },
            ..SweepSpec::default()
        };
        let p = plan(&spec).unwrap();
        assert_eq!(
            p.runs[0].schedule(),
            [
                (0.0, Step::Start(0)),
                (2.5, Step::Start(1)),
                (5.0, Step::Start(2))
            ]
        );
        assert_eq!(p.runs[0].viewer_processes(), 3);
    }
}
