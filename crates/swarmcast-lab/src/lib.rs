//! swarmcast's lab: the whole system on one machine.
//!
//! - [`demo`] runs the synthetic feed through a publisher and a few staggered viewers in one
//!   process on loopback, checks that every viewer's output is byte-identical to the published
//!   segments it played, and reports what the new swarm per segment cost ([`DemoReport::table`]).
//! - [`run_lab`] (`swarmcast lab`) measures that cost: a [`plan::Plan`] of runs, each one publisher
//!   and N viewers as separate processes, fetching from the swarm or, as the baseline, over plain
//!   HTTP; every node's counters go into a results directory ([`results`]), which
//!   [`report::write_report`] (`swarmcast report`) turns into a CSV, a Markdown table and SVG plots.
//!
//! It is the one library that knows both the publisher and the viewer.

pub mod figures;
pub mod netcheck;
pub mod netrun;
pub mod plan;
pub mod report;
pub mod results;
mod runner;
pub mod sampler;
pub mod scale;
pub mod transport;

pub use runner::{run_lab, LabConfig};

use std::path::{Path, PathBuf};
use std::time::Duration;

use swarmcast_metrics::{read_events, Kind};
use swarmcast_publisher::{FeedInput, PublishConfig, Summary};
use swarmcast_tasks::{Shutdown, Tasks};
use swarmcast_viewer::{SinkConfig, WatchConfig, WatchSummary};
use tokio_util::sync::CancellationToken;

/// What to run.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Viewers.
    pub viewers: usize,
    /// Segment length, seconds.
    pub segment_secs: f64,
    /// Media to publish, seconds.
    pub seconds: u64,
    /// Synthetic feed bitrate, bit/s.
    pub bitrate: u64,
    /// Delay between viewers joining.
    pub stagger: Duration,
    /// Where everything goes (kept); default: a temporary directory (removed).
    pub dir: Option<PathBuf>,
    /// Publisher upload cap, bytes/s.
    pub publisher_upload_limit: Option<u32>,
    /// Testing: a segment the publisher lists but never seeds (viewers must use HTTP fallback).
    pub withhold_segment: Option<u64>,
    /// Viewers may fetch late segments over HTTP.
    pub http_fallback: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            viewers: 3,
            segment_secs: 2.0,
            seconds: 24,
            bitrate: 1_000_000,
            stagger: Duration::from_secs(2),
            dir: None,
            publisher_upload_limit: None,
            withhold_segment: None,
            http_fallback: true,
        }
    }
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// The publisher failed.
    #[error("publisher")]
    Publisher(#[from] swarmcast_publisher::PublishError),
    /// A viewer failed.
    #[error("viewer {0}")]
    Viewer(usize, #[source] swarmcast_viewer::WatchError),
    /// The run did not finish in time.
    #[error("hang guard: the demo did not finish within {0:?}")]
    Hang(Duration),
    /// Files could not be read or written.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
}

/// One viewer's outcome.
#[derive(Clone, Debug)]
pub struct ViewerReport {
    /// Its name.
    pub name: String,
    /// What it did.
    pub summary: WatchSummary,
    /// Why its output differs from the published segments it played, if it does.
    pub mismatch: Option<String>,
}

/// What the demo measured.
#[derive(Clone, Debug)]
pub struct DemoReport {
    /// The publisher's summary.
    pub publisher: Summary,
    /// Cut → in a served manifest, per segment, ms.
    pub publish_ms: Vec<f64>,
    /// Each viewer.
    pub viewers: Vec<ViewerReport>,
    /// Where the files are (if kept).
    pub dir: Option<PathBuf>,
}

impl DemoReport {
    /// True when every viewer's output is byte-identical to what it played.
    pub fn outputs_identical(&self) -> bool {
        self.viewers.iter().all(|v| v.mismatch.is_none())
    }

    /// A text table of the figures.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let p = &self.publisher;
        out.push_str(&format!(
            "publisher: {} segments, {} bytes; uploaded {} payload bytes = {:.2} x the segment bytes; publish (cut -> served) {}\n\n",
            p.segments,
            p.segment_bytes,
            p.uploaded_bytes,
            p.uploaded_bytes as f64 / p.segment_bytes.max(1) as f64,
            quantiles(&self.publish_ms)
        ));
        out.push_str(&format!(
            "{:<9} {:>6} {:>6} {:>6} {:>7} {:>9} {:>5} {:>9} {:>8} {:>27} {:>10} {:>11} {}\n",
            "viewer",
            "joined",
            "newest",
            "played",
            "skipped",
            "stalls",
            "http",
            "startup",
            "delay",
            "setup: added->1st piece",
            "from peers",
            "behind live",
            "output"
        ));
        for v in &self.viewers {
            let s = &v.summary;
            let swarm = s.from_publisher + s.from_peers;
            out.push_str(&format!(
                "{:<9} {:>6} {:>6} {:>6} {:>7} {:>9} {:>5} {:>9} {:>8} {:>27} {:>10} {:>11} {}\n",
                v.name,
                s.joined_at.map_or("-".into(), |n| n.to_string()),
                s.newest_at_join.map_or("-".into(), |n| n.to_string()),
                s.played.len(),
                s.skipped.len() as u64 + s.skipped_unlisted,
                format!("{} ({} ms)", s.stalls, s.stall_ms),
                s.fallbacks,
                s.startup_ms.map_or("-".into(), |v| format!("{v} ms")),
                s.delay_ms.map_or("-".into(), |v| format!("{v} ms")),
                short_quantiles(&s.setup_ms),
                format!("{:.0}%", 100.0 * s.from_peers as f64 / swarm.max(1) as f64),
                median(&s.behind_live_ms).map_or("-".into(), |m| format!("{m:.0} ms")),
                match &v.mismatch {
                    None => "identical".to_string(),
                    Some(why) => format!("DIFFERS: {why}"),
                }
            ));
        }
        let all_setup: Vec<f64> = self
            .viewers
            .iter()
            .flat_map(|v| v.summary.setup_ms.iter().copied())
            .collect();
        out.push_str(&format!(
            "\nall viewers: setup (added -> first verified piece) {}\n",
            quantiles(&all_setup)
        ));
        let all_published: Vec<f64> = self
            .viewers
            .iter()
            .flat_map(|v| v.summary.published_to_first_piece_ms.iter().copied())
            .collect();
        out.push_str(&format!(
            "all viewers: published -> first verified piece (one machine, shared clock) {}\n",
            quantiles(&all_published)
        ));
        out
    }
}

/// One line of JSON for any record the lab writes (never fails for them: plain data).
pub fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("\"unserialisable: {e}\""))
}

pub(crate) fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn median(v: &[f64]) -> Option<f64> {
    let v = sorted(v);
    (!v.is_empty()).then(|| v[(v.len() - 1) / 2])
}

/// Nearest rank `p` of sorted, non-empty `v`.
pub(crate) fn quantile(v: &[f64], p: f64) -> f64 {
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// `median X ms, p95 Y ms, max Z ms` (nearest rank).
pub fn quantiles(values: &[f64]) -> String {
    let v = sorted(values);
    if v.is_empty() {
        return "-".into();
    }
    format!(
        "median {:.1} ms, p95 {:.1} ms, max {:.1} ms (n={})",
        quantile(&v, 0.5),
        quantile(&v, 0.95),
        quantile(&v, 1.0),
        v.len()
    )
}

fn short_quantiles(values: &[f64]) -> String {
    let v = sorted(values);
    if v.is_empty() {
        return "-".into();
    }
    format!(
        "{:.0}/{:.0}/{:.0} ms",
        quantile(&v, 0.5),
        quantile(&v, 0.95),
        quantile(&v, 1.0)
    )
}

/// Compares a viewer's output with the publisher's files of the segments it played.
/// A demo task's output: an error if it panicked or was cancelled before it ended.
fn joined<T>(what: &str, ended: Result<Option<T>, tokio::task::JoinError>) -> Result<T, LabError> {
    match ended {
        Ok(Some(out)) => Ok(out),
        Ok(None) => Err(LabError::Io(
            format!("{what} task"),
            std::io::Error::other("cancelled"),
        )),
        Err(e) => Err(LabError::Io(
            format!("{what} task"),
            std::io::Error::other(e),
        )),
    }
}

fn check_output(output: &Path, segments: &Path, played: &[u64]) -> Option<String> {
    let got = match std::fs::read(output) {
        Ok(b) => b,
        Err(e) => return Some(format!("cannot read {}: {e}", output.display())),
    };
    let mut want = Vec::new();
    for n in played {
        match std::fs::read(segments.join(format!("{n:08}.ts"))) {
            Ok(b) => want.extend(b),
            Err(e) => return Some(format!("cannot read published segment {n}: {e}")),
        }
    }
    if got == want {
        None
    } else {
        let at = got
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        Some(format!(
            "{} bytes vs {} published, first difference at byte {at}",
            got.len(),
            want.len()
        ))
    }
}

/// Runs the demo; see the crate documentation.
pub async fn demo(config: DemoConfig, cancel: CancellationToken) -> Result<DemoReport, LabError> {
    let (dir, _temp) = match &config.dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = std::env::temp_dir().join(format!("swarmcast-demo-{}", std::process::id()));
            (t.clone(), Some(RemoveOnDrop(t)))
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| LabError::Io(dir.display().to_string(), e))?;
    let publish = demo_publisher(&config, &dir);
    // A fresh stream every run: an old state directory would make this a restart.
    let _ = std::fs::remove_dir_all(&publish.data_dir);

    let shutdown = Shutdown::default();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    // The publisher and the viewers: cancelled and awaited together when the demo ends.
    let tasks = Tasks::new("demo");
    let publisher = tasks.spawn(
        "publisher",
        swarmcast_publisher::run(publish, shutdown.clone(), Some(ready_tx)),
    );
    let Ok(ready) = ready_rx.await else {
        // The publisher stopped before it was serving: its own error says why.
        return Err(match joined("publisher", publisher.await) {
            Ok(Err(e)) => LabError::Publisher(e),
            Ok(Ok(_)) => LabError::Io(
                "publisher".into(),
                std::io::Error::other("ended before it was serving"),
            ),
            Err(e) => e,
        });
    };
    tracing::info!(link = %ready.link, "demo publisher ready");

    let guard = Duration::from_secs(config.seconds * 3 + 120);
    let mut viewers = Vec::new();
    for i in 0..config.viewers {
        if i > 0 {
            tokio::select! {
                () = tokio::time::sleep(config.stagger) => {}
                () = cancel.cancelled() => break,
            }
        }
        let mut w = WatchConfig::new(ready.link.clone());
        w.listen = "127.0.0.1:0".parse().expect("an address");
        w.sink = SinkConfig::File {
            path: dir.join(format!("viewer-{i}.ts")),
            overwrite: false,
        };
        w.data_dir = Some(dir.join(format!("viewer-{i}")));
        w.metrics_out = Some(dir.join(format!("viewer-{i}.jsonl")));
        w.node = format!("viewer-{i}");
        w.schedule.http_fallback = config.http_fallback;
        viewers.push(tasks.spawn(
            "viewer",
            swarmcast_viewer::watch(w, cancel.child_token(), None),
        ));
    }
    let mut reports = Vec::new();
    for (i, v) in viewers.into_iter().enumerate() {
        let summary = match tokio::time::timeout(guard, v).await {
            Err(_) => {
                // Not awaited: something hangs.
                shutdown.abort.cancel();
                tasks.cancel();
                return Err(LabError::Hang(guard));
            }
            Ok(ended) => joined("viewer", ended)?.map_err(|e| LabError::Viewer(i, e))?,
        };
        let mismatch = check_output(
            &dir.join(format!("viewer-{i}.ts")),
            &ready.stream_dir,
            &summary.played,
        );
        reports.push(ViewerReport {
            name: format!("viewer-{i}"),
            summary,
            mismatch,
        });
    }
    shutdown.stop.cancel();
    shutdown.abort.cancel();
    let publisher = joined("publisher", publisher.await)??;
    tasks.shutdown().await;
    let publish_ms = publish_ms(&dir.join("publisher.jsonl"));
    Ok(DemoReport {
        publisher,
        publish_ms,
        viewers: reports,
        dir: config.dir.clone(),
    })
}

/// The demo's publisher: the synthetic feed in `dir`, lingering until the demo ends it, no
/// per-address caps (every viewer comes from 127.0.0.1).
fn demo_publisher(config: &DemoConfig, dir: &Path) -> PublishConfig {
    let target = (config.segment_secs * 90_000.0).round() as u64;
    let mut publish = PublishConfig::new(FeedInput::Synth {
        bitrate: Some(config.bitrate),
        duration: Some(config.seconds * 90_000),
    });
    publish.key = dir.join("stream.key");
    publish.data_dir = dir.join("publisher");
    publish.http = "127.0.0.1:0".parse().expect("an address");
    publish.target = target;
    publish.window = 6;
    publish.keep_segments = true;
    publish.linger = Some(Duration::from_secs(3600)); // ended by the demo once every viewer is done
    publish.upload_limit = config.publisher_upload_limit;
    publish.metrics_out = Some(dir.join("publisher.jsonl"));
    publish.withhold_segment = config.withhold_segment;
    // Every viewer of the demo comes from 127.0.0.1: no per-address caps.
    publish.peer_conns_per_address = 0;
    publish.http_conns_per_address = 0;
    publish
}

/// Cut → in a served manifest, per segment, ms, from the publisher's counters.
fn publish_ms(path: &Path) -> Vec<f64> {
    read_events(path)
        .map(|events| {
            events
                .iter()
                .filter_map(|e| match e.kind {
                    Kind::Published {
                        cut_to_published_us,
                        ..
                    } => Some(cut_to_published_us as f64 / 1000.0),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
