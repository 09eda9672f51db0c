//! CPU saturation: the aggregate `cpu` line of `/proc/stat` parsed ([`parse_cpu_line`]), the
//! idle share of an interval between two readings ([`idle_share`]), the saturation rule
//! ([`is_saturated`]) and a run's [`CpuStats`], all pure; and [`CpuSampler`], the task that takes
//! a reading every interval.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use swarmcast_tasks::Tasks;
use tokio::time::MissedTickBehavior;

use super::{lock, MIN_INTERVAL};

/// Where the kernel's CPU counters are.
pub(super) const PROC_STAT: &str = "/proc/stat";

/// The default [`CpuSampler`] interval.
pub const DEFAULT_CPU_INTERVAL: Duration = Duration::from_secs(1);

/// A run is **saturated** when its mean idle share is under this (10%): over the whole run the
/// machine had less than a tenth of its CPU left, so the run measured the machine, not swarmcast.
/// The other half of the rule is [`BURST_IDLE`] / [`BURST_FRACTION`]; see [`is_saturated`].
pub const SATURATED_MEAN_IDLE: f64 = 0.10;

/// An interval whose idle share is under this (5%) is a saturated interval. A run is **saturated**
/// when more than [`BURST_FRACTION`] of its intervals are: a run that saturates only in bursts
/// (say, every segment boundary) measures the machine too, even when its mean looks fine.
pub const BURST_IDLE: f64 = 0.05;

/// A run is **saturated** when more than this fraction (a quarter) of its intervals have an idle
/// share under [`BURST_IDLE`]; see [`is_saturated`].
pub const BURST_FRACTION: f64 = 0.25;

/// One reading of the aggregate `cpu` line of `/proc/stat`, in clock ticks (USER_HZ) since boot.
///
/// Kernels older than 2.6.33 print fewer columns; the missing ones are 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Normal processes in user mode (includes `guest`).
    pub user: u64,
    /// Niced processes in user mode (includes `guest_nice`).
    pub nice: u64,
    /// Kernel mode.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Idle while some I/O was outstanding.
    pub iowait: u64,
    /// Servicing interrupts.
    pub irq: u64,
    /// Servicing softirqs.
    pub softirq: u64,
    /// Stolen by the hypervisor for other guests.
    pub steal: u64,
    /// Running a guest (already counted in `user`).
    pub guest: u64,
    /// Running a niced guest (already counted in `nice`).
    pub guest_nice: u64,
}

impl CpuTimes {
    /// Idle time: `idle + iowait`.
    pub fn idle_all(&self) -> u64 {
        self.idle.saturating_add(self.iowait)
    }

    /// All time: every column but `guest` and `guest_nice`, which `user` and `nice` already
    /// include.
    pub fn total(&self) -> u64 {
        [
            self.user,
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
        ]
        .iter()
        .fold(0u64, |sum, &v| sum.saturating_add(v))
    }
}

/// Parses the aggregate `cpu` line of `/proc/stat` (`cpu  user nice system idle iowait irq
/// softirq steal guest guest_nice`). At least the first four counters must be there; columns a
/// newer kernel may add after `guest_nice` are ignored (but must be numbers). Anything else (a
/// per-CPU `cpu0` line, another line, a non-number) is `None`.
pub fn parse_cpu_line(line: &str) -> Option<CpuTimes> {
    let mut tokens = line.split_whitespace();
    if tokens.next()? != "cpu" {
        return None;
    }
    let values = tokens
        .map(|t| t.parse::<u64>().ok())
        .collect::<Option<Vec<u64>>>()?;
    if values.len() < 4 {
        return None;
    }
    let at = |i: usize| values.get(i).copied().unwrap_or(0);
    Some(CpuTimes {
        user: at(0),
        nice: at(1),
        system: at(2),
        idle: at(3),
        iowait: at(4),
        irq: at(5),
        softirq: at(6),
        steal: at(7),
        guest: at(8),
        guest_nice: at(9),
    })
}

/// Finds and parses the aggregate `cpu` line in the whole text of `/proc/stat`.
pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    text.lines().find_map(parse_cpu_line)
}

/// The number of per-CPU lines (`cpu0`, `cpu1`, ...) in the text of `/proc/stat`: the machine's
/// online CPUs.
pub fn count_cpus(text: &str) -> usize {
    text.lines()
        .filter(|line| {
            line.split_whitespace()
                .next()
                .and_then(|t| t.strip_prefix("cpu"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .count()
}

/// The idle share (`idle + iowait` over all time, 0..=1) of the interval between two readings.
/// `None` when no time passed (total delta 0) or the counters went backwards (`b` before `a`).
/// `iowait` alone may go backwards on some kernels; the idle delta is then clamped.
pub fn idle_share(a: &CpuTimes, b: &CpuTimes) -> Option<f64> {
    let total = b.total().checked_sub(a.total())?;
    if total == 0 {
        return None;
    }
    let idle = b.idle_all().saturating_sub(a.idle_all());
    Some((idle as f64 / total as f64).clamp(0.0, 1.0))
}

/// Whether a run whose intervals had these idle shares was **saturated**: its mean idle share is
/// under [`SATURATED_MEAN_IDLE`] (10%), or more than [`BURST_FRACTION`] (a quarter) of its samples
/// are under [`BURST_IDLE`] (5%). No samples: not saturated (nothing says it was).
pub fn is_saturated(samples: &[f64]) -> bool {
    if samples.is_empty() {
        return false;
    }
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let starved = samples.iter().filter(|&&s| s < BURST_IDLE).count() as f64;
    mean < SATURATED_MEAN_IDLE || starved > BURST_FRACTION * n
}

/// The nearest-rank `p`-th percentile (`p` in 0..=1) of `samples`; 0 when there are none.
fn nearest_rank(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What a [`CpuSampler`] saw over a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuStats {
    /// The machine's idle share (`idle + iowait` over all CPU time, 0..=1) of each interval.
    pub samples: Vec<f64>,
    /// The sampling interval, seconds.
    pub interval_secs: f64,
    /// Mean of `samples` (0 when there are none).
    pub idle_mean: f64,
    /// Nearest-rank 10th percentile of `samples`: the idle share of the busiest tenth.
    pub idle_p10: f64,
    /// Mean busy cores: `(1 - idle_mean) * cores` (0 when there are no samples).
    pub busy_cores_mean: f64,
    /// The machine's CPUs (per-CPU lines of `/proc/stat`).
    pub cores: usize,
    /// [`is_saturated`] of `samples`.
    pub saturated: bool,
}

impl CpuStats {
    /// Summarises idle-share samples taken every `interval_secs` on a machine with `cores` CPUs.
    pub fn from_samples(samples: Vec<f64>, interval_secs: f64, cores: usize) -> Self {
        let (idle_mean, busy_cores_mean) = if samples.is_empty() {
            (0.0, 0.0)
        } else {
            let mean = samples.iter().sum::<f64>() / samples.len() as f64;
            (mean, (1.0 - mean) * cores as f64)
        };
        Self {
            idle_p10: nearest_rank(&samples, 0.10),
            saturated: is_saturated(&samples),
            samples,
            interval_secs,
            idle_mean,
            busy_cores_mean,
            cores,
        }
    }
}

/// The CPU sampler's state, shared with its task.
#[derive(Debug, Default)]
struct CpuState {
    /// The last reading and when it was taken.
    last: Option<(CpuTimes, Instant)>,
    /// Idle share per interval.
    samples: Vec<f64>,
}

impl CpuState {
    /// Records a new reading: one sample for the interval since the last one.
    fn record(&mut self, now: CpuTimes, at: Instant) {
        if let Some((prev, _)) = self.last {
            if let Some(share) = idle_share(&prev, &now) {
                self.samples.push(share);
            }
        }
        self.last = Some((now, at));
    }
}

/// Samples the machine's idle CPU share every interval until
/// [shut down](CpuSampler::shutdown).
///
/// Where `/proc/stat` cannot be read (not Linux), it logs one warning and records nothing.
/// Dropping it without `shutdown` cancels the task too (without waiting for it).
#[derive(Debug)]
pub struct CpuSampler {
    interval: Duration,
    cores: usize,
    state: Arc<Mutex<CpuState>>,
    tasks: Tasks,
}

impl CpuSampler {
    /// Takes a first reading now and spawns a task that takes one every `interval` (at least
    /// 10 ms; [`DEFAULT_CPU_INTERVAL`] is 1 s). Must be called within a tokio runtime.
    pub fn start(interval: Duration) -> CpuSampler {
        let interval = interval.max(MIN_INTERVAL);
        let text = std::fs::read_to_string(PROC_STAT);
        let cores = text
            .as_deref()
            .map(count_cpus)
            .ok()
            .filter(|&n| n > 0)
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1);
        let mut state = CpuState::default();
        match text.as_deref().map(parse_proc_stat) {
            Ok(Some(times)) => state.record(times, Instant::now()),
            Ok(None) => tracing::warn!("no aggregate cpu line in {PROC_STAT}: no CPU samples"),
            Err(error) => tracing::warn!(%error, "cannot read {PROC_STAT}: no CPU samples"),
        }
        let state = Arc::new(Mutex::new(state));
        let tasks = Tasks::new("cpu-sampler");
        tasks.spawn("cpu", cpu_task(interval, Arc::clone(&state)));
        CpuSampler {
            interval,
            cores,
            state,
            tasks,
        }
    }

    /// Ends the sampling (cancels the task, then waits until it has ended) and summarises it.
    /// The interval in progress counts as a sample when at least half of it has passed.
    pub async fn shutdown(self) -> CpuStats {
        self.tasks.shutdown().await;
        self.summarize()
    }

    /// The samples so far, plus the interval in progress when at least half of it has passed.
    fn summarize(&self) -> CpuStats {
        let mut state = lock(&self.state);
        if let Some((_, at)) = state.last {
            if at.elapsed() >= self.interval / 2 {
                if let Some(now) = std::fs::read_to_string(PROC_STAT)
                    .ok()
                    .as_deref()
                    .and_then(parse_proc_stat)
                {
                    state.record(now, Instant::now());
                }
            }
        }
        let samples = std::mem::take(&mut state.samples);
        CpuStats::from_samples(samples, self.interval.as_secs_f64(), self.cores)
    }
}

impl Drop for CpuSampler {
    fn drop(&mut self) {
        self.tasks.cancel();
    }
}

/// The [`CpuSampler`]'s task: a reading every `interval`.
async fn cpu_task(interval: Duration, state: Arc<Mutex<CpuState>>) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        ticks.tick().await;
        let reading = tokio::fs::read_to_string(PROC_STAT).await;
        match reading.as_deref().map(parse_proc_stat) {
            Ok(Some(times)) => lock(&state).record(times, Instant::now()),
            Ok(None) | Err(_) if warned => {}
            Ok(None) => {
                warned = true;
                tracing::warn!("no aggregate cpu line in {PROC_STAT}");
            }
            Err(error) => {
                warned = true;
                tracing::warn!(%error, "cannot read {PROC_STAT}");
            }
        }
    }
}
