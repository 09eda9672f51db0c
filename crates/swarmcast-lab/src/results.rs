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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use swarmcast_metrics::{read_events, Event, Kind, Role};

use crate::plan::{NetPoint, RunSpec, Transport};

mod net;

pub(crate) use net::describe as describe_net;

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
    /// Stopped (Ctrl-C) by the lab: churn, or still fetching when the run's time was up.
    pub stopped: bool,
    /// Left by the churn pattern.
    #[serde(default)]
    pub churned: bool,
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
    /// Segments skipped.
    pub skips: u64,
    /// Segments a viewer did not play between joining and the stream's end (skipped, or not
    /// fetched when the run's time was up); churned viewers miss nothing after leaving.
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

#[derive(Default)]
struct SegView {
    learned_published_ms: Option<u64>,
    added: bool,
    first_piece_us: Option<u64>,
    completed: Option<(u64, u64, u64, u64)>, // since_added_us, from_publisher, from_peers, from_http
    connections: Option<(u64, u64)>,         // attempts, errors (swarm completions)
    failed_dials: Option<u64>,               // (swarm completions)
    played: Option<(u64, u64)>,              // wall_us, bytes
    order_ok: bool,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        f64::NAN
    } else {
        a / b
    }
}

/// Adds up a run and checks it.
pub fn summarize(r: &RunRecords) -> RunSummary {
    let spec = &r.run.spec;
    let mut sizes = BTreeMap::new();
    let mut pub_swarm: BTreeMap<u64, u64> = BTreeMap::new();
    let mut pub_http: BTreeMap<u64, u64> = BTreeMap::new();
    let mut pub_dialled: BTreeMap<u64, u64> = BTreeMap::new();
    for e in r.publisher.iter().filter(|e| e.role == Role::Publisher) {
        match (&e.kind, e.seg) {
            (Kind::Cut { size, .. }, Some(n)) => {
                sizes.insert(n, *size);
            }
            // The last count is the total.
            (
                Kind::Uploaded {
                    bytes,
                    http_bytes,
                    dialled_bytes,
                },
                Some(n),
            ) => {
                pub_swarm.insert(n, *bytes);
                pub_http.insert(n, *http_bytes);
                pub_dialled.insert(n, *dialled_bytes);
            }
            _ => {}
        }
    }
    let mut checks = Vec::new();
    let mut bad_bytes = Vec::new();
    let mut incomplete = Vec::new();
    let mut short = Vec::new();
    let (mut setup, mut complete, mut behind, mut startup) = (vec![], vec![], vec![], vec![]);
    let mut connections = (0u64, 0u64, 0u64); // attempts, errors, segments with the figures
    let mut failed_dials = (0u64, 0u64); // failed dials, segments with the figure
    let (mut stalls, mut stall_us, mut skips, mut fallbacks) = (0u64, 0u64, 0u64, 0u64);
    let (mut fallbacks_superseded, mut fallback_wasted_bytes) = (0u64, 0u64);
    let mut fallbacks_refused = 0u64;
    let mut missed = 0u64;
    let (mut from_publisher, mut from_peers, mut from_http) = (0u64, 0u64, 0u64);
    let mut needed = 0u64;
    let mut played = 0usize;
    let mut manifest_bytes = 0u64;
    let mut refused = 0u64;
    let mut fetched_segments = BTreeSet::new();
    let mut seg_from_pub: BTreeMap<u64, (u64, u64)> = BTreeMap::new(); // swarm, http
    let mut seg_from_peers: BTreeMap<u64, u64> = BTreeMap::new();
    let mut seg_receivers: BTreeMap<u64, u64> = BTreeMap::new();
    let mut seg_peer_uploads: BTreeMap<u64, u64> = BTreeMap::new();
    // Segments each viewer played, by node (the wire figures are per segment played).
    let mut played_by: BTreeMap<String, u64> = BTreeMap::new();
    for (node, events) in &r.viewers {
        let mut segs: BTreeMap<u64, SegView> = BTreeMap::new();
        let mut late: Vec<(u64, u64, u64)> = Vec::new();
        let mut joined_us = None;
        let mut joined_seg = None;
        let mut first_played_us = None;
        for e in events {
            let seg = e.seg;
            match &e.kind {
                Kind::ManifestFetched { bytes, .. } => manifest_bytes += bytes,
                Kind::ManifestRefused { .. } => refused += 1,
                Kind::Joined { .. } => {
                    joined_us.get_or_insert(e.mono_us);
                    if joined_seg.is_none() {
                        joined_seg = e.seg;
                    }
                }
                Kind::Learned { published_ms, .. } => {
                    if let Some(n) = seg {
                        segs.entry(n).or_default().learned_published_ms = Some(*published_ms);
                    }
                }
                Kind::Added => {
                    if let Some(n) = seg {
                        segs.entry(n).or_default().added = true;
                    }
                }
                Kind::FirstPiece { since_added_us } => {
                    if let Some(n) = seg {
                        segs.entry(n).or_default().first_piece_us = Some(*since_added_us);
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
                        let v = segs.entry(n).or_default();
                        v.completed =
                            Some((*since_added_us, *from_publisher, *from_peers, *from_http));
                        v.connections = connect_attempts.zip(*connect_errors);
                        v.failed_dials = *dials;
                    }
                }
                Kind::HttpFallback { ok: true, .. } => fallbacks += 1,
                Kind::HttpFallback {
                    superseded: true,
                    bytes,
                    ..
                } => {
                    fallbacks_superseded += 1;
                    fallback_wasted_bytes += bytes;
                }
                Kind::HttpFallback { refused: true, .. } => fallbacks_refused += 1,
                Kind::Played {
                    stall_us: s, bytes, ..
                } => {
                    if let Some(n) = seg {
                        let v = segs.entry(n).or_default();
                        v.order_ok =
                            v.learned_published_ms.is_some() && v.added && v.completed.is_some();
                        v.played = Some((e.wall_us, *bytes));
                        first_played_us.get_or_insert(e.mono_us);
                        if *s > 0 {
                            stalls += 1;
                            stall_us += s;
                        }
                    }
                }
                Kind::Skipped { count } => skips += count.unwrap_or(1),
                Kind::Forgotten {
                    uploaded_bytes,
                    from_publisher: p,
                    from_peers: q,
                } => {
                    if let Some(n) = seg {
                        *seg_peer_uploads.entry(n).or_default() += uploaded_bytes;
                        // Received after completion, or for a segment never completed.
                        late.push((n, *p, *q));
                    }
                }
                _ => {}
            }
        }
        if let (Some(j), Some(p)) = (joined_us, first_played_us) {
            startup.push(p.saturating_sub(j) as f64 / 1000.0);
        }
        let churned = r
            .run
            .outcome
            .viewers
            .iter()
            .any(|v| &v.node == node && v.churned);
        let played_here = segs.values().filter(|v| v.played.is_some()).count() as u64;
        played_by.insert(node.clone(), played_here);
        if let (Some(first), Some(&last), false) = (joined_seg, sizes.keys().last(), churned) {
            missed += (last + 1).saturating_sub(first).saturating_sub(played_here);
        }
        for (n, p, q) in late {
            from_publisher += p;
            from_peers += q;
            seg_from_pub.entry(n).or_default().0 += p;
            *seg_from_peers.entry(n).or_default() += q;
            if q > 0 {
                *seg_receivers.entry(n).or_default() += 1;
            }
        }
        for (n, v) in &segs {
            if let Some(us) = v.first_piece_us {
                setup.push(us as f64 / 1000.0);
            }
            if let Some((attempts, errors)) = v.connections {
                connections.0 += attempts;
                connections.1 += errors;
                connections.2 += 1;
            }
            if let Some(dials) = v.failed_dials {
                failed_dials.0 += dials;
                failed_dials.1 += 1;
            }
            if let Some((since, p, q, h)) = v.completed {
                complete.push(since as f64 / 1000.0);
                from_publisher += p;
                from_peers += q;
                from_http += h;
                let e = seg_from_pub.entry(*n).or_default();
                e.0 += p;
                e.1 += h;
                *seg_from_peers.entry(*n).or_default() += q;
                if q > 0 {
                    *seg_receivers.entry(*n).or_default() += 1;
                }
                fetched_segments.insert(*n);
                let size = sizes.get(n).copied().unwrap_or(0);
                needed += size;
                if p + q + h < size && short.len() < 3 {
                    short.push(format!("{node} segment {n}: {} of {size}", p + q + h));
                }
            }
            if let Some((wall_us, bytes)) = v.played {
                played += 1;
                if sizes.get(n) != Some(&bytes) && bad_bytes.len() < 3 {
                    bad_bytes.push(format!(
                        "{node} segment {n}: played {bytes}, published {:?}",
                        sizes.get(n)
                    ));
                }
                if !v.order_ok && incomplete.len() < 3 {
                    incomplete.push(format!("{node} segment {n}"));
                }
                if let Some(p) = v.learned_published_ms {
                    behind.push((wall_us / 1000).saturating_sub(p) as f64);
                }
            }
        }
    }

    checks.push(Check {
        name: "played bytes equal the published segment sizes",
        ok: bad_bytes.is_empty(),
        detail: if bad_bytes.is_empty() {
            format!("{played} segments played")
        } else {
            bad_bytes.join("; ")
        },
    });
    checks.push(Check {
        name: "every played segment has learned, added, completed and played records, in order",
        ok: incomplete.is_empty(),
        detail: if incomplete.is_empty() {
            format!("{played} complete records")
        } else {
            format!("incomplete: {}", incomplete.join(", "))
        },
    });
    checks.push(Check {
        name: "payload received covers every completed segment",
        ok: short.is_empty(),
        detail: if short.is_empty() {
            format!(
                "{} bytes received for {needed} needed",
                from_publisher + from_peers + from_http
            )
        } else {
            short.join("; ")
        },
    });
    // The publisher dials viewers it learns by PEX (librqbit has no switch against it); a viewer
    // sees such a connection come from an ephemeral port and counts its bytes as a peer's. The
    // publisher counts what it sent on dialled connections, so they are moved back to it here.
    let mut misattributed = Vec::new();
    for (n, d) in pub_dialled.iter().filter(|(_, d)| **d > 0) {
        let peers = seg_from_peers.entry(*n).or_default();
        if *d > *peers && misattributed.len() < 3 {
            misattributed.push(format!(
                "segment {n}: the publisher sent {d} on connections it dialled, viewers counted only {peers} from peers"
            ));
        }
        let moved = (*d).min(*peers);
        *peers -= moved;
        seg_from_pub.entry(*n).or_default().0 += moved;
        from_peers -= moved;
        from_publisher += moved;
    }
    let dialled: u64 = pub_dialled.values().sum();
    checks.push(Check {
        name: "bytes the publisher sent on connections it dialled <= bytes viewers counted from peers",
        ok: misattributed.is_empty(),
        detail: if misattributed.is_empty() {
            format!("{dialled} bytes moved from peers to the publisher")
        } else {
            misattributed.join("; ")
        },
    });
    // librqbit counts a chunk as uploaded after its write completes: a chunk in flight when the
    // uploader forgets the segment (or stops) reaches the receiver uncounted. One chunk per
    // receiving viewer and segment is allowed for it.
    let slack = |n: &u64| CHUNK * seg_receivers.get(n).copied().unwrap_or(0);
    let over_peers: Vec<String> = seg_from_peers
        .iter()
        .filter(|(n, got)| **got > seg_peer_uploads.get(n).copied().unwrap_or(0) + slack(n))
        .take(3)
        .map(|(n, got)| {
            format!(
                "segment {n}: {got} received from peers, {} uploaded by them (+ {} in flight allowed)",
                seg_peer_uploads.get(n).copied().unwrap_or(0),
                slack(n)
            )
        })
        .collect();
    let in_flight: u64 = seg_from_peers
        .iter()
        .map(|(n, got)| got.saturating_sub(seg_peer_uploads.get(n).copied().unwrap_or(0)))
        .sum();
    checks.push(Check {
        name: "bytes received from peers <= bytes peers report uploading (+ one 16 KiB chunk in flight per receiver and segment)",
        ok: over_peers.is_empty(),
        detail: if over_peers.is_empty() {
            format!(
                "{from_peers} received, {} uploaded; {in_flight} received beyond the uploaders' counts",
                seg_peer_uploads.values().sum::<u64>()
            )
        } else {
            over_peers.join("; ")
        },
    });
    let over_pub: Vec<String> = seg_from_pub
        .iter()
        .filter(|(n, (s, h))| {
            *s > pub_swarm.get(n).copied().unwrap_or(0) || *h > pub_http.get(n).copied().unwrap_or(0)
        })
        .take(3)
        .map(|(n, (s, h))| {
            format!(
                "segment {n}: received {s} (swarm) + {h} (HTTP) from the publisher, which sent {} + {}",
                pub_swarm.get(n).copied().unwrap_or(0),
                pub_http.get(n).copied().unwrap_or(0)
            )
        })
        .collect();
    let publisher_bytes: u64 = pub_swarm.values().sum::<u64>() + pub_http.values().sum::<u64>();
    checks.push(Check {
        name: "bytes received from the publisher <= bytes it reports sending",
        ok: over_pub.is_empty(),
        detail: if over_pub.is_empty() {
            format!(
                "{} received <= {publisher_bytes} sent",
                from_publisher + from_http
            )
        } else {
            over_pub.join("; ")
        },
    });
    let outcome = &r.run.outcome;
    let differs: Vec<String> = outcome
        .viewers
        .iter()
        .filter(|v| v.output.as_deref() != Some("identical"))
        .map(|v| {
            format!(
                "{}: {}",
                v.node,
                v.output.as_deref().unwrap_or("not checked")
            )
        })
        .collect();
    checks.push(Check {
        name: "every viewer's output is byte-identical to the segments it played",
        ok: differs.is_empty() && !outcome.viewers.is_empty(),
        detail: if differs.is_empty() {
            format!("{} outputs", outcome.viewers.len())
        } else {
            differs.join("; ")
        },
    });
    let unclean: Vec<String> = outcome
        .publisher
        .iter()
        .chain(&outcome.viewers)
        .filter(|p| p.exit != Some(0))
        .map(|p| format!("{} exited {:?}", p.node, p.exit))
        .chain(
            outcome
                .hang_guard
                .then(|| "the hang guard fired".to_string()),
        )
        .chain(outcome.error.clone())
        .chain((outcome.publisher.is_none()).then(|| "no publisher".to_string()))
        .collect();
    checks.push(Check {
        name: "every process exited cleanly",
        ok: unclean.is_empty(),
        detail: if unclean.is_empty() {
            format!("{} processes", 1 + outcome.viewers.len())
        } else {
            unclean.join("; ")
        },
    });
    checks.push(Check {
        name: "no manifest was refused",
        ok: refused == 0,
        detail: format!("{refused} refused"),
    });

    let fetched_bytes: u64 = fetched_segments
        .iter()
        .map(|n| sizes.get(n).copied().unwrap_or(0))
        .sum();
    let received = from_publisher + from_peers + from_http;
    let net_figures = match &outcome.net {
        Some(n) => {
            checks.extend(net::checks(n));
            net::figures(n, fetched_bytes, &played_by)
        }
        None => net::NetFigures::none(),
    };
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
        played,
        publisher_bytes,
        publisher_copies: ratio(publisher_bytes as f64, fetched_bytes as f64),
        publisher_per_viewer: ratio(
            publisher_bytes as f64,
            fetched_bytes as f64 * spec.viewers as f64,
        ),
        peer_share: ratio(from_peers as f64, received as f64),
        dialled_bytes: dialled,
        duplicate_ratio: ratio(received as f64, needed as f64),
        setup_median_ms: quantile(&setup, 0.5),
        setup_p95_ms: quantile(&setup, 0.95),
        setup_fraction: quantile(&setup, 0.5) / (spec.segment_secs * 1000.0),
        complete_median_ms: quantile(&complete, 0.5),
        stalls,
        stall_ms: stall_us as f64 / 1000.0,
        skips,
        missed,
        fallbacks,
        fallbacks_superseded,
        fallback_wasted_bytes,
        fallbacks_refused,
        startup_median_ms: quantile(&startup, 0.5),
        behind_live_median_ms: quantile(&behind, 0.5),
        behind_live_p95_ms: quantile(&behind, 0.95),
        manifest_bytes_per_segment: ratio(manifest_bytes as f64, played as f64),
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
        setup_ms: setup,
        checks,
    }
}

#[cfg(test)]
pub(crate) mod tests;
