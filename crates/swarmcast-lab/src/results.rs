//! A run's raw records (its `run.json` and every node's JSON lines), what they add up to
//! ([`RunSummary`]), and the consistency checks between the nodes' figures ([`Check`]).
//!
//! Everything here is computed from the raw files alone, so `swarmcast report DIR` can regenerate
//! any table from a results directory.
//!
//! A run on an emulated (or plain) network also has the emulator's and the hosts' byte counts
//! (`outcome.net`) and the machine's CPU (`outcome.cpu`): its summary then splits the publisher's
//! bytes on the wire into payload, control and TCP/IP, gives the viewers' control bytes, and adds
//! checks that the byte counts agree (the balance; with the emulator, also its count of each host
//! and the kernel's queue: `results/net.rs`). Runs without them summarise as before, with the
//! same nine checks.
//!
//! [`summarize`] goes in named steps, each in its own file: `results/publisher.rs` (segment sizes
//! and the publisher's byte counts), `results/timeline.rs` (one viewer's records per segment),
//! `results/tally.rs` (byte accounting and the figures quantiles are taken over, over every
//! viewer), `results/checks.rs` (the nine checks) and `results/net.rs` (the network's).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use swarmcast_metrics::{read_events, Event};

use crate::plan::{NetPoint, RunSpec, Transport};

mod checks;
mod common;
mod net;
mod publisher;
mod tally;
mod timeline;

pub(crate) use net::describe as describe_net;
use publisher::PublisherCounts;
use tally::Tally;
use timeline::{Timeline, ViewerCounters};

/// librqbit's request and upload unit, bytes.
const CHUNK: u64 = 16 * 1024;

/// A run's file in its directory.
pub const RUN_FILE: &str = "run.json";

/// How one process of a run ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessOutcome {
    /// Node name (its counters are `<node>.jsonl`).
    pub node: String,
    /// Exit code (None: killed by a signal, or never started).
    pub exit: Option<i32>,
    /// Stopped by the lab: churn (Ctrl-C), exodus (SIGKILL), or still fetching when the run's
    /// time was up (Ctrl-C).
    pub stopped: bool,
    /// Left by the churn pattern, or killed by the exodus pattern.
    #[serde(default)]
    pub churned: bool,
    /// Killed (SIGKILL) by the exodus pattern: it wrote no end, and its output may end in part
    /// of a segment.
    #[serde(default)]
    pub killed: bool,
    /// Seconds after the run started that it started.
    pub started_secs: f64,
    /// Viewers: `identical` if its output equals the published segments it played, else why not.
    pub output: Option<String>,
}

/// What happened when a run was executed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// The stream link.
    pub link: String,
    /// Wall time of the run, seconds.
    pub wall_secs: f64,
    /// A process ignored two Ctrl-Cs and was killed.
    pub hang_guard: bool,
    /// The publisher.
    pub publisher: Option<ProcessOutcome>,
    /// The viewers, in start order.
    pub viewers: Vec<ProcessOutcome>,
    /// Processes a transport runs beside the publisher on its host (relay-tree's source Icecast,
    /// relay-resume's root relay).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sides: Vec<ProcessOutcome>,
    /// Why the run failed before it could measure anything, if it did.
    pub error: Option<String>,
    /// The network, on an emulated (or plain) network.
    #[serde(default)]
    pub net: Option<crate::netrun::NetOutcome>,
    /// The machine's CPU use during the run.
    #[serde(default)]
    pub cpu: Option<crate::sampler::CpuStats>,
}

/// `run.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFile {
    /// What was run.
    pub spec: RunSpec,
    /// What happened.
    pub outcome: RunOutcome,
}

/// A run's raw records.
#[derive(Clone, Debug)]
pub struct RunRecords {
    /// Its directory.
    pub dir: PathBuf,
    /// `run.json`.
    pub run: RunFile,
    /// The publisher's events.
    pub publisher: Vec<Event>,
    /// Each viewer's events, by node name.
    pub viewers: BTreeMap<String, Vec<Event>>,
}

/// Why results cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `run.json` is not a run file.
    #[error("{path}: not a run file: {source}")]
    RunFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A node's counters could not be read.
    #[error(transparent)]
    Metrics(#[from] swarmcast_metrics::MetricsError),
    /// A directory holds no runs.
    #[error("{0}: no runs (expected runs/<id>/run.json)")]
    NoRuns(PathBuf),
    /// A plot could not be drawn.
    #[error("plot {path}: {reason}")]
    Plot {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ResultsError + '_ {
    move |source| ResultsError::Io {
        path: path.to_owned(),
        source,
    }
}

impl RunRecords {
    /// Reads a run directory: `run.json`, `publisher.jsonl` and each viewer's `<node>.jsonl`
    /// (a node whose file is missing has no events: it never started).
    pub fn load(dir: &Path) -> Result<Self, ResultsError> {
        let path = dir.join(RUN_FILE);
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        let run: RunFile = serde_json::from_str(&text).map_err(|source| ResultsError::RunFile {
            path: path.clone(),
            source,
        })?;
        let read = |node: &str| -> Result<Vec<Event>, ResultsError> {
            let p = dir.join(format!("{node}.jsonl"));
            if p.exists() {
                Ok(read_events(&p)?)
            } else {
                Ok(Vec::new())
            }
        };
        let publisher = read("publisher")?;
        let mut viewers = BTreeMap::new();
        for v in &run.outcome.viewers {
            viewers.insert(v.node.clone(), read(&v.node)?);
        }
        Ok(Self {
            dir: dir.to_owned(),
            run,
            publisher,
            viewers,
        })
    }
}

/// Reads every run under `dir/runs/`, sorted by id.
pub fn load_results(dir: &Path) -> Result<Vec<RunRecords>, ResultsError> {
    let runs_dir = dir.join("runs");
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&runs_dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join(RUN_FILE).is_file())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err(&runs_dir)(e)),
    };
    dirs.sort();
    if dirs.is_empty() {
        return Err(ResultsError::NoRuns(dir.to_owned()));
    }
    dirs.iter().map(|d| RunRecords::load(d)).collect()
}

/// One consistency check of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: &'static str,
    /// It holds.
    pub ok: bool,
    /// The figures compared, or the first counterexample.
    pub detail: String,
}

/// What a run measured. Bytes are payload bytes; times are ms. Medians and p95 are nearest-rank.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    /// Run id.
    pub id: String,
    /// Transport.
    pub transport: Transport,
    /// `swarm`, `http` or `swarm-<variant>` (see [`crate::plan::kind`]).
    pub kind: String,
    /// Segment length, s.
    pub segment_secs: f64,
    /// Viewers.
    pub viewers: usize,
    /// Repeat.
    pub repeat: u32,
    /// Join pattern.
    pub join: String,
    /// Bitrate, bit/s.
    pub bitrate: u64,
    /// The publisher's upload cap, bytes/s (0: none).
    pub publisher_cap: u32,
    /// Each viewer's upload cap, bytes/s (0: none).
    pub viewer_upload_cap: u32,
    /// Each viewer's download cap, bytes/s (0: none).
    pub viewer_download_cap: u32,
    /// Segments published.
    pub segments: usize,
    /// Mean segment size, bytes.
    pub segment_bytes: f64,
    /// Segments viewers played, over all viewers.
    pub played: usize,
    /// Bytes the publisher sent (swarm and HTTP).
    pub publisher_bytes: u64,
    /// Publisher bytes / bytes of the segments any viewer fetched: copies of each segment the
    /// publisher sent (HTTP: N).
    pub publisher_copies: f64,
    /// Publisher bytes / (viewers × bytes of the segments fetched): 1 means the publisher sent
    /// every viewer its own copy, as HTTP does.
    pub publisher_per_viewer: f64,
    /// Bytes received from other viewers / all payload bytes received (bytes the publisher sent
    /// on connections it dialled are counted as the publisher's).
    pub peer_share: f64,
    /// Bytes the publisher sent on connections it dialled (viewers count them as a peer's; the
    /// figures here are corrected).
    pub dialled_bytes: u64,
    /// Payload bytes received / bytes of the segments completed (1: no duplicates).
    pub duplicate_ratio: f64,
    /// Added → first verified piece, median (HTTP: request → first verified piece).
    pub setup_median_ms: f64,
    /// Same, p95.
    pub setup_p95_ms: f64,
    /// Median setup as a share of the segment's duration.
    pub setup_fraction: f64,
    /// Added → complete, median.
    pub complete_median_ms: f64,
    /// Played segments that were late.
    pub stalls: u64,
    /// Total time playback waited.
    pub stall_ms: f64,
    /// Segments skipped once a viewer was playing (or by a viewer that never played one): gaps.
    pub skips: u64,
    /// Segments skipped before a viewer's first played segment by a viewer that then played:
    /// it started playing at a later segment than it joined at, with no gap (its startup time
    /// counts the wait). Counted apart from [`skips`](Self::skips) and not in
    /// [`missed`](Self::missed).
    pub passed_over: u64,
    /// Segments a viewer did not play between where it started playing (its join point, plus
    /// [`passed_over`](Self::passed_over)) and the stream's end (skipped, or not fetched when the
    /// run's time was up); churned viewers miss nothing after leaving.
    pub missed: u64,
    /// Late swarm segments fetched over HTTP.
    pub fallbacks: u64,
    /// HTTP fallbacks the swarm beat: stopped when the segment completed from the swarm
    /// (`http_fallback.superseded`; 0 in records that predate it, where such fetches ran on
    /// unrecorded).
    pub fallbacks_superseded: u64,
    /// The bytes those had received (wasted).
    pub fallback_wasted_bytes: u64,
    /// HTTP fallbacks the publisher refused (503, `http_fallback.refused`; 0 in records that
    /// predate it).
    pub fallbacks_refused: u64,
    /// First manifest accepted → first byte played, median over viewers.
    pub startup_median_ms: f64,
    /// Published → played (shared clock), median.
    pub behind_live_median_ms: f64,
    /// Same, p95.
    pub behind_live_p95_ms: f64,
    /// Manifest bytes fetched per viewer per segment played.
    pub manifest_bytes_per_segment: f64,
    /// Outgoing connection attempts per (viewer, segment completed from the swarm), until it
    /// completed (NaN for records without the figure).
    pub connect_attempts_per_segment: f64,
    /// Connections that ended in an error per (viewer, segment completed from the swarm), before
    /// the viewer recorded the completion: a refused dial or failed handshake, and also a peer
    /// disconnecting once neither side needed anything (librqbit counts both as errors).
    pub connect_errors_per_segment: f64,
    /// Failed dials per (viewer, segment completed from the swarm), before the viewer recorded
    /// the completion: outgoing connection attempts that failed before the BitTorrent handshake
    /// completed, each putting the peer into librqbit's 10 s reconnect backoff (NaN for records
    /// without the figure).
    pub failed_dials_per_segment: f64,
    /// The run's network (None: loopback).
    pub net_point: Option<NetPoint>,
    /// The run's network, described: `rtt 50 ms, loss 1%, jitter 0 ms, NAT 60%`, or `plain`
    /// (None: loopback).
    pub net: Option<String>,
    /// The publisher's bytes on the wire (IP bytes every host the broadcaster runs sent: the
    /// publisher, trackers, mirrors) / bytes of the segments fetched (the denominator of
    /// `publisher_copies`); the sum of the next three (NaN without the emulator).
    pub publisher_wire_per_byte: f64,
    /// Of it, payload: piece data and HTTP segment bodies on the wire (the emulator follows the
    /// publisher's streams; unlike `publisher_copies`, bytes that never left a socket buffer do
    /// not count) / bytes of the segments fetched.
    pub publisher_payload_per_byte: f64,
    /// Of it, control: the publisher's new payload on the wire (TCP payload not sent before, of
    /// every class, and anything not TCP) beyond that payload: BitTorrent messages other than
    /// piece data, manifests, tracker answers, HTTP headers.
    pub publisher_control_per_byte: f64,
    /// Of it, TCP/IP: IP and TCP headers and retransmitted payload.
    pub publisher_tcpip_per_byte: f64,
    /// Of the wire figure, what the publisher's own uplink queue dropped (bytes it put on its
    /// access link that never crossed the cap), per byte of the segments fetched.
    pub publisher_queue_dropped_per_byte: f64,
    /// Control bytes per segment played, mean over viewers: a viewer's new payload on the wire,
    /// sent and received, less the verified payload its counters report receiving (swarm and
    /// HTTP) and the piece data the emulator found in what it sent (NaN without the emulator).
    pub control_bytes_per_viewer_segment: f64,
    /// Σ viewers' control / Σ viewers' new payload on the wire (sent and received): the overhead
    /// above TCP/IP.
    pub viewer_overhead_share: f64,
    /// Σ viewers' TCP/IP bytes / Σ viewers' IP bytes, sent and received.
    pub viewer_tcpip_share: f64,
    /// Median smoothed RTT of the TCP connections sampled during the run, ms.
    pub tcp_rtt_median_ms: f64,
    /// The emulator thread's CPU time / its wall time.
    pub emulator_cpu_share: f64,
    /// The 99th percentile of the delay the emulator added to a packet beyond the model's, ms
    /// (NaN: not measured).
    pub emulator_lag_p99_ms: f64,
    /// The machine's mean idle share during the run, 0..=1 (NaN: not recorded).
    pub idle_mean: f64,
    /// The machine was saturated during the run: its figures measure the machine, not the
    /// protocol (false: not saturated, or not recorded).
    pub saturated: bool,
    /// Relay transports: each relay's children, at most.
    pub fanout: usize,
    /// `--churn`: share of the nodes leaving per minute, percent.
    pub churn_pct: f64,
    /// The simulated player's buffer, seconds (the figures below use it for every transport).
    pub playout_buffer_secs: f64,
    /// Node start → the simulated player's start, median over nodes, ms.
    pub playout_startup_median_ms: f64,
    /// Stalls of the simulated player, over every node.
    pub playout_stalls: u64,
    /// Their total time, ms.
    pub playout_stall_ms: f64,
    /// Stall time / media played, over every node.
    pub playout_stall_share: f64,
    /// Published bytes in the nodes' ranges they never played (for segments, the published
    /// segments missing between the first played and the end; for continuous streams, from the
    /// output's alignment with the published stream), over every node.
    pub lost_bytes: u64,
    /// Of the published bytes in the nodes' ranges.
    pub lost_share: f64,
    /// Output bytes never published at their place (continuous streams; 0: clean).
    pub foreign_bytes: u64,
    /// Nodes whose player never started (nodes that left by churn not counted).
    pub never_played: usize,
    /// Glass to glass (the publisher's input → the simulated player), median over every second
    /// of media played, ms.
    pub glass_median_ms: f64,
    /// Same, p95.
    pub glass_p95_ms: f64,
    /// IP bytes the publisher's host sent / bytes of the published stream (NaN on loopback).
    pub publisher_upload_per_stream: f64,
    /// Payload bytes nodes received from other nodes / all payload bytes they received, for
    /// every transport (the publisher's host counts as the publisher).
    pub share_from_peers: f64,
    /// IP bytes every host sent / payload bytes the nodes received (NaN on loopback).
    pub wire_per_payload: f64,
    /// Setup times of every (viewer, segment), for distributions.
    #[serde(skip)]
    pub setup_ms: Vec<f64>,
    /// The consistency checks.
    pub checks: Vec<Check>,
}

impl RunSummary {
    /// True when every check holds.
    pub fn consistent(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// Nearest-rank quantile (NaN for no values).
pub fn quantile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    crate::quantile(&crate::sorted(values), p)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        f64::NAN
    } else {
        a / b
    }
}

/// Adds up a run and checks it, in steps: the publisher's counts per segment, each viewer's
/// records folded into a timeline and added to the run's tally, the nine checks (which move the
/// bytes the publisher sent on connections it dialled back to it), the network's figures and
/// checks, then the summary's ratios and quantiles.
pub fn summarize(r: &RunRecords) -> RunSummary {
    let publisher = PublisherCounts::read(&r.publisher);
    let mut counters = ViewerCounters::default();
    let mut tally = Tally::default();
    for (node, events) in &r.viewers {
        let timeline = Timeline::read(events, &mut counters);
        let churned = r
            .run
            .outcome
            .viewers
            .iter()
            .any(|v| &v.node == node && v.churned);
        tally.add_viewer(node, &timeline, &publisher.sizes, churned);
    }
    let outcome = &r.run.outcome;
    let mut checks = checks::records(&tally);
    checks.extend(checks::bytes(&mut tally.bytes, &counters, &publisher));
    checks.extend(checks::processes(outcome, counters.refused));
    let fetched_bytes: u64 = tally
        .bytes
        .fetched_segments
        .iter()
        .map(|n| publisher.sizes.get(n).copied().unwrap_or(0))
        .sum();
    let net_figures = match &outcome.net {
        Some(n) => {
            let continuous = crate::transport::method(r.run.spec.transport).continuous();
            checks.extend(net::checks(n, continuous));
            net::figures(n, fetched_bytes, &tally.played_by)
        }
        None => net::NetFigures::none(),
    };
    build_summary(
        r,
        &publisher,
        &counters,
        tally,
        fetched_bytes,
        net_figures,
        checks,
    )
}

/// The summary's fields from the run's spec and what [`summarize`]'s steps added up.
fn build_summary(
    r: &RunRecords,
    publisher: &PublisherCounts,
    counters: &ViewerCounters,
    tally: Tally,
    fetched_bytes: u64,
    net_figures: net::NetFigures,
    checks: Vec<Check>,
) -> RunSummary {
    let (spec, outcome) = (&r.run.spec, &r.run.outcome);
    let sizes = &publisher.sizes;
    let publisher_bytes = publisher.sent();
    let received = tally.bytes.received();
    let (setup, connections, failed_dials) = (tally.setup, tally.connections, tally.failed_dials);
    let c = common::common(r);
    RunSummary {
        id: spec.id.clone(),
        transport: spec.transport,
        kind: spec.kind(),
        segment_secs: spec.segment_secs,
        viewers: spec.viewers,
        repeat: spec.repeat,
        join: spec.join.to_string(),
        bitrate: spec.bitrate,
        publisher_cap: spec.publisher_upload_limit.unwrap_or(0),
        viewer_upload_cap: spec.viewer_upload_limit.unwrap_or(0),
        viewer_download_cap: spec.viewer_download_limit.unwrap_or(0),
        segments: sizes.len(),
        segment_bytes: ratio(sizes.values().sum::<u64>() as f64, sizes.len() as f64),
        played: tally.played,
        publisher_bytes,
        publisher_copies: ratio(publisher_bytes as f64, fetched_bytes as f64),
        publisher_per_viewer: ratio(
            publisher_bytes as f64,
            fetched_bytes as f64 * spec.viewers as f64,
        ),
        peer_share: ratio(tally.bytes.from_peers as f64, received as f64),
        dialled_bytes: publisher.dialled.values().sum(),
        duplicate_ratio: ratio(received as f64, tally.bytes.needed as f64),
        setup_median_ms: quantile(&setup, 0.5),
        setup_p95_ms: quantile(&setup, 0.95),
        setup_fraction: quantile(&setup, 0.5) / (spec.segment_secs * 1000.0),
        complete_median_ms: quantile(&tally.complete, 0.5),
        stalls: counters.stalls,
        stall_ms: counters.stall_us as f64 / 1000.0,
        skips: counters.skips,
        passed_over: counters.passed_over,
        missed: tally.missed,
        fallbacks: counters.fallbacks,
        fallbacks_superseded: counters.fallbacks_superseded,
        fallback_wasted_bytes: counters.fallback_wasted_bytes,
        fallbacks_refused: counters.fallbacks_refused,
        startup_median_ms: quantile(&tally.startup, 0.5),
        behind_live_median_ms: quantile(&tally.behind, 0.5),
        behind_live_p95_ms: quantile(&tally.behind, 0.95),
        manifest_bytes_per_segment: ratio(counters.manifest_bytes as f64, tally.played as f64),
        connect_attempts_per_segment: ratio(connections.0 as f64, connections.2 as f64),
        connect_errors_per_segment: ratio(connections.1 as f64, connections.2 as f64),
        failed_dials_per_segment: ratio(failed_dials.0 as f64, failed_dials.1 as f64),
        net_point: spec.net,
        net: spec.net.as_ref().map(describe_net),
        publisher_wire_per_byte: net_figures.publisher_wire_per_byte,
        publisher_payload_per_byte: net_figures.publisher_payload_per_byte,
        publisher_control_per_byte: net_figures.publisher_control_per_byte,
        publisher_tcpip_per_byte: net_figures.publisher_tcpip_per_byte,
        publisher_queue_dropped_per_byte: net_figures.publisher_queue_dropped_per_byte,
        control_bytes_per_viewer_segment: net_figures.control_bytes_per_viewer_segment,
        viewer_overhead_share: net_figures.viewer_overhead_share,
        viewer_tcpip_share: net_figures.viewer_tcpip_share,
        tcp_rtt_median_ms: net_figures.tcp_rtt_median_ms,
        emulator_cpu_share: net_figures.emulator_cpu_share,
        emulator_lag_p99_ms: net_figures.emulator_lag_p99_ms,
        idle_mean: outcome.cpu.as_ref().map_or(f64::NAN, |c| c.idle_mean),
        saturated: outcome.cpu.as_ref().is_some_and(|c| c.saturated),
        fanout: spec.fanout,
        churn_pct: spec.churn_pct,
        playout_buffer_secs: spec.playout_buffer_secs,
        playout_startup_median_ms: c.startup_median_ms,
        playout_stalls: c.stalls,
        playout_stall_ms: c.stall_ms,
        playout_stall_share: c.stall_share,
        lost_bytes: c.lost_bytes,
        lost_share: c.lost_share,
        foreign_bytes: c.foreign_bytes,
        never_played: c.never_played,
        glass_median_ms: c.glass_median_ms,
        glass_p95_ms: c.glass_p95_ms,
        publisher_upload_per_stream: c.publisher_upload_per_stream,
        share_from_peers: c.share_from_peers,
        wire_per_payload: c.wire_per_payload,
        setup_ms: setup,
        checks,
    }
}

#[cfg(test)]
pub(crate) mod tests;
