//! Machine-side measurements taken while a lab run is going: how busy the CPU is, and what
//! round-trip time the kernel sees on live TCP connections.
//!
//! - [`CpuSampler`] reads the aggregate `cpu` line of `/proc/stat` every interval and records the
//!   machine's idle share of it; [`CpuStats`] summarises a run and says whether it was
//!   [saturated](is_saturated), in which case the run measured the machine as much as swarmcast.
//! - [`RttSampler`] runs `ip netns exec <ns> ss -tinH state established` in each of the emulated
//!   network's namespaces in turn and records every connection's smoothed RTT (`TCP_INFO`'s
//!   `srtt`, as `ss` prints it), so a run can show what delay its peers actually saw.
//!
//! The parsing ([`parse_cpu_line`], [`idle_share`], [`parse_ss`]) and the saturation rule
//! ([`is_saturated`]) are pure functions; the samplers are small tokio tasks around them.

use std::collections::HashSet;
use std::io;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

// ---------------------------------------------------------------------------------------------
// CPU saturation
// ---------------------------------------------------------------------------------------------

/// Where the kernel's CPU counters are.
const PROC_STAT: &str = "/proc/stat";

/// The default [`CpuSampler`] interval.
pub const DEFAULT_CPU_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest interval either sampler accepts (shorter ones are raised to it).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

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

/// Locks a mutex whose holder may have panicked (the data is plain samples: still good).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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

/// Samples the machine's idle CPU share every interval until [stopped](CpuSampler::stop).
///
/// Where `/proc/stat` cannot be read (not Linux), it logs one warning and records nothing.
/// Dropping it without `stop` ends the task too.
#[derive(Debug)]
pub struct CpuSampler {
    interval: Duration,
    cores: usize,
    state: Arc<Mutex<CpuState>>,
    task: JoinHandle<()>,
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
        let task = tokio::spawn(cpu_task(interval, Arc::clone(&state)));
        CpuSampler {
            interval,
            cores,
            state,
            task,
        }
    }

    /// Ends the sampling and summarises it. The interval in progress counts as a sample when at
    /// least half of it has passed.
    pub fn stop(self) -> CpuStats {
        self.task.abort();
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
        self.task.abort();
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

// ---------------------------------------------------------------------------------------------
// TCP round-trip times
// ---------------------------------------------------------------------------------------------

/// How long one `ss` may take before it is killed.
pub const SS_TIMEOUT: Duration = Duration::from_secs(5);

/// One established TCP connection's round-trip times, from `ss -ti` (the kernel's `TCP_INFO`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TcpRtt {
    /// Smoothed RTT (`rtt:<srtt>/<rttvar>`), milliseconds.
    pub srtt_ms: f64,
    /// Minimum RTT seen (`minrtt:`), milliseconds, when `ss` printed it.
    pub minrtt_ms: Option<f64>,
    /// Local address and port as `ss` prints them (`10.0.0.2:40144`, `[::1]:9090`).
    pub local: String,
    /// Peer address and port as `ss` prints them.
    pub peer: String,
}

/// A millisecond value (`0.034`, `50.512`): finite and not negative.
fn parse_ms(text: &str) -> Option<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// A leading column that is not a number: the state (`ESTAB`, `CLOSE-WAIT`) or the netid (`tcp`).
fn is_word(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
}

/// If these are the tokens of a connection's address line (`[netid] [state] recv-q send-q local
/// peer ...`), its local and peer addresses and how many tokens they took.
fn address_line<'a>(tokens: &[&'a str]) -> Option<(&'a str, &'a str, usize)> {
    let skip = tokens.iter().take(2).take_while(|t| is_word(t)).count();
    let rest = tokens.get(skip..)?;
    let [recv_q, send_q, local, peer, ..] = rest else {
        return None;
    };
    recv_q.parse::<u64>().ok()?;
    send_q.parse::<u64>().ok()?;
    if !local.contains(':') || !peer.contains(':') {
        return None;
    }
    Some((local, peer, skip + 4))
}

/// A connection being read: its addresses, and what its info said so far.
struct Pending {
    local: String,
    peer: String,
    srtt_ms: Option<f64>,
    minrtt_ms: Option<f64>,
}

impl Pending {
    fn scan(&mut self, tokens: &[&str]) {
        for token in tokens {
            if let Some(value) = token.strip_prefix("rtt:") {
                // `rtt:<srtt>/<rttvar>`
                if self.srtt_ms.is_none() {
                    self.srtt_ms = value.split('/').next().and_then(parse_ms);
                }
            } else if let Some(value) = token.strip_prefix("minrtt:") {
                if self.minrtt_ms.is_none() {
                    self.minrtt_ms = parse_ms(value);
                }
            }
        }
    }

    fn finish(self) -> Option<TcpRtt> {
        Some(TcpRtt {
            srtt_ms: self.srtt_ms?,
            minrtt_ms: self.minrtt_ms,
            local: self.local,
            peer: self.peer,
        })
    }
}

/// Parses the output of `ss -tinH` (with or without `state established`, so with or without the
/// state column; with or without a header, which is skipped): each connection's address line,
/// then its `TCP_INFO` tokens, on the next line(s) or the same line, up to the next address line.
/// Connections without a parseable `rtt:` are left out. Never panics.
pub fn parse_ss(text: &str) -> Vec<TcpRtt> {
    let mut out = Vec::new();
    let mut current: Option<Pending> = None;
    for line in text.lines() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let info = match address_line(&tokens) {
            Some((local, peer, used)) => {
                out.extend(current.take().and_then(Pending::finish));
                current = Some(Pending {
                    local: local.to_owned(),
                    peer: peer.to_owned(),
                    srtt_ms: None,
                    minrtt_ms: None,
                });
                &tokens[used..]
            }
            None => &tokens[..],
        };
        if let Some(pending) = current.as_mut() {
            pending.scan(info);
        }
    }
    out.extend(current.and_then(Pending::finish));
    out
}

/// The `ss` command for a namespace (`""`: this process's own).
fn ss_command(ns: &str) -> Command {
    let mut cmd = if ns.is_empty() {
        Command::new("ss")
    } else {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, "ss"]);
        cmd
    };
    cmd.args(["-tinH", "state", "established"]);
    cmd
}

/// Runs an `ss`-like command, killing it after `timeout`, and parses what it printed.
async fn run_ss(mut cmd: Command, timeout: Duration) -> io::Result<Vec<TcpRtt>> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{cmd:?} took more than {timeout:?}"),
            )
        })??;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(io::Error::other(format!(
            "{cmd:?}: {}: {}",
            output.status,
            stderr.trim()
        )));
    }
    Ok(parse_ss(&String::from_utf8_lossy(&output.stdout)))
}

/// The established TCP connections in network namespace `ns` and their RTTs: runs
/// `ip netns exec <ns> ss -tinH state established` (needs root, like `ip netns exec` itself),
/// killed after [`SS_TIMEOUT`]. An empty `ns` means this process's own namespace (plain `ss`,
/// no root needed). A failed or timed-out command is an error.
pub async fn sample_rtts(ns: &str) -> io::Result<Vec<TcpRtt>> {
    run_ss(ss_command(ns), SS_TIMEOUT).await
}

/// One connection's RTT as an [`RttSampler`] saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RttSample {
    /// When its `ss` was started, seconds since the sampler started.
    pub at_secs: f64,
    /// The namespace (`""`: the sampler's own).
    pub ns: String,
    /// Smoothed RTT, milliseconds.
    pub srtt_ms: f64,
    /// Minimum RTT seen, milliseconds, when `ss` printed it.
    pub minrtt_ms: Option<f64>,
    /// Peer address and port as `ss` prints them.
    pub peer: String,
}

/// Samples the RTTs of established TCP connections in some network namespaces until
/// [stopped](RttSampler::stop).
///
/// Every `every` it runs [`sample_rtts`] for each namespace in turn, one command at a time; a
/// round that takes longer than `every` delays the next rather than overlapping it. A namespace
/// whose command fails is logged (once) and retried next round. Dropping it without `stop` ends
/// the task (and kills a command in flight).
#[derive(Debug)]
pub struct RttSampler {
    samples: Arc<Mutex<Vec<RttSample>>>,
    task: JoinHandle<()>,
}

impl RttSampler {
    /// Spawns the sampling task; the first round starts now. `every` is at least 10 ms. Must be
    /// called within a tokio runtime.
    pub fn start(namespaces: Vec<String>, every: Duration) -> RttSampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(rtt_task(
            namespaces,
            every.max(MIN_INTERVAL),
            Arc::clone(&samples),
        ));
        RttSampler { samples, task }
    }

    /// Ends the sampling (killing a command in flight) and returns every sample, in order.
    pub fn stop(self) -> Vec<RttSample> {
        self.task.abort();
        std::mem::take(&mut *lock(&self.samples))
    }
}

impl Drop for RttSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The [`RttSampler`]'s task: a round over the namespaces every `every`.
async fn rtt_task(namespaces: Vec<String>, every: Duration, samples: Arc<Mutex<Vec<RttSample>>>) {
    let start = Instant::now();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing: HashSet<String> = HashSet::new();
    loop {
        ticks.tick().await;
        for ns in &namespaces {
            let at_secs = start.elapsed().as_secs_f64();
            match sample_rtts(ns).await {
                Ok(rtts) => {
                    failing.remove(ns);
                    lock(&samples).extend(rtts.into_iter().map(|rtt| RttSample {
                        at_secs,
                        ns: ns.clone(),
                        srtt_ms: rtt.srtt_ms,
                        minrtt_ms: rtt.minrtt_ms,
                        peer: rtt.peer,
                    }));
                }
                Err(error) => {
                    if failing.insert(ns.clone()) {
                        tracing::warn!(ns = %ns, %error, "cannot sample TCP RTTs");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- /proc/stat --------------------------------------------------------------------------

    /// `/proc/stat` as read on the machine these tests were written on (2 CPUs, Linux 6.x).
    const PROC_STAT_TEXT: &str = "\
cpu  60012 0 7550 39105 384 0 52 34 0 0
cpu0 29625 0 3378 20475 66 0 9 15 0 0
cpu1 30386 0 4171 18629 317 0 43 18 0 0
intr 5184219 0 9 0 0 0 0 0 0 0 0
ctxt 10295411
btime 1718000000
processes 40123
procs_running 2
procs_blocked 0
softirq 2716151 0 377522 2 58042 0 0 1218 1232367 0 1047000
";

    #[test]
    fn parses_the_aggregate_line() {
        let t = parse_cpu_line("cpu  60012 0 7550 39105 384 0 52 34 0 0").unwrap();
        assert_eq!(
            t,
            CpuTimes {
                user: 60012,
                nice: 0,
                system: 7550,
                idle: 39105,
                iowait: 384,
                irq: 0,
                softirq: 52,
                steal: 34,
                guest: 0,
                guest_nice: 0,
            }
        );
        assert_eq!(t.idle_all(), 39105 + 384);
        assert_eq!(t.total(), 60012 + 7550 + 39105 + 384 + 52 + 34);
    }

    #[test]
    fn guest_columns_are_not_counted_twice() {
        // proc(5)'s example: a host running guests (guest 175628 is inside user 10132153).
        let t = parse_cpu_line("cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0")
            .unwrap();
        assert_eq!(t.guest, 175628);
        assert_eq!(t.guest_nice, 0);
        assert_eq!(
            t.total(),
            10132153 + 290696 + 3084719 + 46828483 + 16683 + 25195
        );
        let t = parse_cpu_line("cpu 100 20 30 400 5 6 7 8 90 10").unwrap();
        assert_eq!((t.guest, t.guest_nice), (90, 10));
        assert_eq!(t.total(), 100 + 20 + 30 + 400 + 5 + 6 + 7 + 8);
    }

    #[test]
    fn short_and_long_lines() {
        // An old kernel: four columns.
        let t = parse_cpu_line("cpu 1 2 3 4").unwrap();
        assert_eq!((t.user, t.idle, t.iowait, t.steal), (1, 4, 0, 0));
        // A future kernel: an eleventh column is ignored.
        let t = parse_cpu_line("cpu 1 2 3 4 5 6 7 8 9 10 11").unwrap();
        assert_eq!(t.guest_nice, 10);
    }

    #[test]
    fn bad_lines_are_none() {
        for line in [
            "",
            "   ",
            "cpu",
            "cpu 1 2 3",
            "cpu0 29625 0 3378 20475 66 0 9 15 0 0",
            "cpux 1 2 3 4",
            "intr 5184219 0 9 0",
            "cpu 1 2 x 4",
            "cpu 1 2 3 -4",
            "cpu 1.5 2 3 4",
            "cpu 99999999999999999999999 2 3 4",
            "CPU 1 2 3 4",
            "cpu 1 2 3 4 \u{fffd}",
        ] {
            assert_eq!(parse_cpu_line(line), None, "{line:?}");
        }
        assert_eq!(parse_proc_stat(""), None);
        assert_eq!(parse_proc_stat("cpu0 1 2 3 4\nintr 1\n"), None);
        assert_eq!(count_cpus("garbage\n\0\n"), 0);
    }

    #[test]
    fn reads_the_whole_file() {
        let t = parse_proc_stat(PROC_STAT_TEXT).unwrap();
        assert_eq!(t.user, 60012);
        assert_eq!(count_cpus(PROC_STAT_TEXT), 2);
    }

    #[test]
    fn idle_share_of_an_interval() {
        let a = parse_cpu_line("cpu  60012 0 7550 39105 384 0 52 34 0 0").unwrap();
        // 200 ticks pass: 150 busy, 40 idle + 10 iowait.
        let b = parse_cpu_line("cpu  60132 0 7580 39145 394 0 52 34 0 0").unwrap();
        assert_eq!(b.total() - a.total(), 200);
        assert_eq!(idle_share(&a, &b), Some(0.25));
        // No time passed: no sample.
        assert_eq!(idle_share(&a, &a), None);
        // Backwards: no sample.
        assert_eq!(idle_share(&b, &a), None);
        // iowait went backwards but the total moved on: clamped, no panic.
        let c = CpuTimes {
            user: b.user + 100,
            iowait: b.iowait - 5,
            ..b
        };
        assert_eq!(idle_share(&b, &c), Some(0.0));
        // All idle.
        let d = CpuTimes {
            idle: b.idle + 100,
            ..b
        };
        assert_eq!(idle_share(&b, &d), Some(1.0));
        // Huge counters do not overflow.
        let max = CpuTimes {
            user: u64::MAX,
            idle: u64::MAX,
            ..CpuTimes::default()
        };
        assert_eq!(idle_share(&max, &max), None);
    }

    #[test]
    fn saturation_rule() {
        assert!(!is_saturated(&[]));
        assert!(!is_saturated(&[0.5, 0.6, 0.4]));
        // Mean under 10%.
        assert!(is_saturated(&[0.09, 0.09, 0.09]));
        assert!(!is_saturated(&[0.10, 0.10, 0.10]));
        // Bursts: 2 of 4 under 5% (more than a quarter), though the mean is 45%.
        assert!(is_saturated(&[0.0, 0.01, 0.9, 0.9]));
        // Exactly a quarter is not more than a quarter.
        assert!(!is_saturated(&[0.0, 0.9, 0.9, 0.9]));
        // 5% itself is not under 5%.
        assert!(!is_saturated(&[0.05, 0.05, 0.9, 0.9]));
    }

    #[test]
    fn stats_from_samples() {
        let samples: Vec<f64> = (1..=20).map(|i| i as f64 / 20.0).collect();
        let stats = CpuStats::from_samples(samples.clone(), 1.0, 4);
        // Nearest rank: ceil(0.1 * 20) = 2nd smallest.
        assert_eq!(stats.idle_p10, 0.1);
        assert!((stats.idle_mean - 0.525).abs() < 1e-12);
        assert!((stats.busy_cores_mean - 0.475 * 4.0).abs() < 1e-12);
        assert_eq!(stats.cores, 4);
        assert!(!stats.saturated);
        assert_eq!(stats.samples, samples);
        // Three samples: ceil(0.3) = the smallest.
        assert_eq!(
            CpuStats::from_samples(vec![0.7, 0.2, 0.9], 1.0, 1).idle_p10,
            0.2
        );
        let empty = CpuStats::from_samples(Vec::new(), 1.0, 2);
        assert_eq!(
            (empty.idle_mean, empty.idle_p10, empty.busy_cores_mean),
            (0.0, 0.0, 0.0)
        );
        assert!(!empty.saturated);
        let busy = CpuStats::from_samples(vec![0.02; 5], 0.5, 2);
        assert!(busy.saturated);
        let json = serde_json::to_string(&busy).unwrap();
        assert_eq!(serde_json::from_str::<CpuStats>(&json).unwrap(), busy);
    }

    #[tokio::test]
    async fn cpu_sampler_samples() {
        if !std::path::Path::new(PROC_STAT).exists() {
            return;
        }
        let sampler = CpuSampler::start(Duration::from_millis(50));
        // Keep one core a little busy.
        let spin = tokio::task::spawn_blocking(|| {
            let until = Instant::now() + Duration::from_millis(300);
            let mut x = 0u64;
            while Instant::now() < until {
                x = x.wrapping_add(1);
            }
            x
        });
        tokio::time::sleep(Duration::from_millis(330)).await;
        spin.await.unwrap();
        let stats = sampler.stop();
        assert!(stats.samples.len() >= 3, "{stats:?}");
        assert!(stats.samples.iter().all(|s| (0.0..=1.0).contains(s)));
        assert!(stats.cores >= 1);
        assert_eq!(stats.interval_secs, 0.05);
        assert_eq!(stats.saturated, is_saturated(&stats.samples));
    }

    #[tokio::test]
    async fn a_short_run_counts_its_partial_interval() {
        if !std::path::Path::new(PROC_STAT).exists() {
            return;
        }
        let sampler = CpuSampler::start(Duration::from_millis(200));
        tokio::time::sleep(Duration::from_millis(120)).await;
        // Over half an interval passed: it counts as one sample.
        assert_eq!(sampler.stop().samples.len(), 1);
        let sampler = CpuSampler::start(Duration::from_secs(10));
        assert!(sampler.stop().samples.is_empty());
    }

    // ---- ss ----------------------------------------------------------------------------------

    /// `ip netns exec B ss -tinH state established` (iproute2 6.1.0, Linux 6.x): namespace B's two
    /// connections over a veth pair to an HTTP server in namespace A (10.250.0.1:8080).
    const SS_CLIENT: &str = "\
0      0      10.250.0.2:47142 10.250.0.1:8080
\t bbr wscale:10,10 rto:204 rtt:0.034/0.02 mss:1448 pmtu:1500 rcvmss:536 advmss:1448 cwnd:12 bytes_sent:33 bytes_acked:34 segs_out:4 segs_in:3 data_segs_out:2 bbr:(bw:1287111032bps,mrtt:0.009,pacing_gain:2.88672,cwnd_gain:2.88672) send 4088470588bps lastsnd:1348 lastrcv:2348 lastack:1348 pacing_rate 9736867800bps delivery_rate 1287111104bps delivered:3 app_limited rcv_space:14480 rcv_ssthresh:64088 minrtt:0.009 snd_wnd:65536
0      0      10.250.0.2:47154 10.250.0.1:8080
\t bbr wscale:10,10 rto:204 rtt:0.007/0.003 mss:1448 pmtu:1500 rcvmss:536 advmss:1448 cwnd:12 bytes_sent:33 bytes_acked:34 segs_out:4 segs_in:3 data_segs_out:2 bbr:(bw:2316799856bps,mrtt:0.005,pacing_gain:2.88672,cwnd_gain:2.88672) send 19858285714bps lastsnd:1348 lastrcv:2348 lastack:1348 pacing_rate 47293359864bps delivery_rate 2316800000bps delivered:3 app_limited rcv_space:14480 rcv_ssthresh:64088 minrtt:0.005 snd_wnd:65536
";

    /// The same from namespace A (the server side; note the trailing spaces ss left).
    const SS_SERVER: &str = "\
0      0      10.250.0.1:8080 10.250.0.2:47154
\t bbr wscale:10,10 rto:204 rtt:0.008/0.004 ato:40 mss:1448 pmtu:1500 rcvmss:536 advmss:1448 cwnd:10 bytes_received:33 segs_out:2 segs_in:4 data_segs_in:2 bbr:(bw:0bps,mrtt:0.008) send 14480000000bps lastsnd:2360 lastrcv:1360 lastack:1360 pacing_rate 41381690624bps delivered:1 app_limited rcv_space:14480 rcv_ssthresh:64088 minrtt:0.008 snd_wnd:64512
0      0      10.250.0.1:8080 10.250.0.2:47142
\t bbr wscale:10,10 rto:204 rtt:0.021/0.01 ato:40 mss:1448 pmtu:1500 rcvmss:536 advmss:1448 cwnd:10 bytes_received:33 segs_out:2 segs_in:4 data_segs_in:2 bbr:(bw:0bps,mrtt:0.021) send 5516190476bps lastsnd:2360 lastrcv:1360 lastack:1360 pacing_rate 15764452624bps delivered:1 app_limited rcv_space:14480 rcv_ssthresh:64088 minrtt:0.021 snd_wnd:64512  
";

    /// IPv6 on loopback in namespace A.
    const SS_V6: &str = "\
0      0      [::1]:9090  [::1]:54828
\t bbr wscale:10,10 rto:204 rtt:0.017/0.009 ato:40 mss:32768 pmtu:65536 rcvmss:536 advmss:65464 cwnd:11 bytes_sent:2 bytes_acked:2 bytes_received:2 segs_out:2 segs_in:4 data_segs_out:1 data_segs_in:1 bbr:(bw:65536000000bps,mrtt:0.004,pacing_gain:2.88672,cwnd_gain:2.88672) send 169622588235bps lastsnd:836 lastrcv:836 lastack:836 pacing_rate 394299253656bps delivery_rate 65536000000bps delivered:2 app_limited rcv_space:65464 rcv_ssthresh:65464 minrtt:0.004 snd_wnd:65536
0      0      [::1]:54828 [::1]:9090 
\t bbr wscale:10,10 rto:204 rtt:0.051/0.029 ato:40 mss:32768 pmtu:65536 rcvmss:536 advmss:65464 cwnd:11 bytes_sent:2 bytes_acked:3 bytes_received:2 segs_out:4 segs_in:3 data_segs_out:1 data_segs_in:1 bbr:(bw:29127109368bps,mrtt:0.009,pacing_gain:2.88672,cwnd_gain:2.88672) send 56540862745bps lastsnd:836 lastrcv:836 lastack:836 pacing_rate 131288687848bps delivery_rate 29127111104bps delivered:2 app_limited rcv_space:65476 rcv_ssthresh:65476 minrtt:0.009 snd_wnd:65536 
";

    /// `ss -tinH` without a state filter: the state column is there.
    const SS_WITH_STATE: &str = "\
ESTAB 0      0      127.0.0.1:59780 127.0.0.1:50857
\t bbr wscale:10,10 rto:204 rtt:0.023/0.013 ato:40 mss:32768 pmtu:65535 rcvmss:536 advmss:65483 cwnd:11 bytes_sent:2 bytes_acked:3 bytes_received:2 segs_out:4 segs_in:3 data_segs_out:1 data_segs_in:1 bbr:(bw:37449140624bps,mrtt:0.007,pacing_gain:2.88672,cwnd_gain:2.88672) send 125373217391bps lastsnd:844 lastrcv:844 lastack:844 pacing_rate 287904345936bps delivery_rate 37449142856bps delivered:2 app_limited rcv_space:65495 rcv_ssthresh:65495 minrtt:0.007 snd_wnd:65536
ESTAB 0      0      127.0.0.1:50857 127.0.0.1:59780
\t bbr wscale:10,10 rto:204 rtt:0.016/0.009 ato:40 mss:32768 pmtu:65535 rcvmss:536 advmss:65483 cwnd:11 bytes_sent:2 bytes_acked:2 bytes_received:2 segs_out:2 segs_in:4 data_segs_out:1 data_segs_in:1 bbr:(bw:65536000000bps,mrtt:0.004,pacing_gain:2.88672,cwnd_gain:2.88672) send 180224000000bps lastsnd:844 lastrcv:844 lastack:844 pacing_rate 416204775192bps delivery_rate 65536000000bps delivered:2 app_limited rcv_space:65483 rcv_ssthresh:65483 minrtt:0.004 snd_wnd:65536
";

    fn rtt(srtt_ms: f64, minrtt_ms: Option<f64>, local: &str, peer: &str) -> TcpRtt {
        TcpRtt {
            srtt_ms,
            minrtt_ms,
            local: local.into(),
            peer: peer.into(),
        }
    }

    #[test]
    fn parses_ss_from_namespaces() {
        assert_eq!(
            parse_ss(SS_CLIENT),
            vec![
                rtt(0.034, Some(0.009), "10.250.0.2:47142", "10.250.0.1:8080"),
                rtt(0.007, Some(0.005), "10.250.0.2:47154", "10.250.0.1:8080"),
            ]
        );
        assert_eq!(
            parse_ss(SS_SERVER),
            vec![
                rtt(0.008, Some(0.008), "10.250.0.1:8080", "10.250.0.2:47154"),
                rtt(0.021, Some(0.021), "10.250.0.1:8080", "10.250.0.2:47142"),
            ]
        );
        assert_eq!(
            parse_ss(SS_V6),
            vec![
                rtt(0.017, Some(0.004), "[::1]:9090", "[::1]:54828"),
                rtt(0.051, Some(0.009), "[::1]:54828", "[::1]:9090"),
            ]
        );
        assert_eq!(
            parse_ss(SS_WITH_STATE),
            vec![
                rtt(0.023, Some(0.007), "127.0.0.1:59780", "127.0.0.1:50857"),
                rtt(0.016, Some(0.004), "127.0.0.1:50857", "127.0.0.1:59780"),
            ]
        );
    }

    #[test]
    fn parses_ss_info_on_the_address_line() {
        // Older ss printed the info after the addresses; a header line is skipped.
        let text = "\
State Recv-Q Send-Q Local Address:Port Peer Address:Port
ESTAB 0 0 10.0.0.2:40144 10.0.0.1:443 cubic wscale:7,7 rto:252 rtt:50.512/0.3 ato:40 mss:1448 cwnd:10 minrtt:50.1
ESTAB 0 36 10.0.0.2:40146 10.0.0.1:443 users:((\"swarmcast\",pid=7,fd=9)) cubic rtt:120/60 rcv_rtt:4 cwnd:10
";
        assert_eq!(
            parse_ss(text),
            vec![
                rtt(50.512, Some(50.1), "10.0.0.2:40144", "10.0.0.1:443"),
                rtt(120.0, None, "10.0.0.2:40146", "10.0.0.1:443"),
            ]
        );
        // With a netid column (`ss -ti` with other protocols too).
        assert_eq!(
            parse_ss("tcp ESTAB 0 0 10.0.0.2:1 10.0.0.1:2\n\t cubic rtt:1.5/0.75\n"),
            vec![rtt(1.5, None, "10.0.0.2:1", "10.0.0.1:2")]
        );
    }

    #[test]
    fn ss_garbage_never_panics() {
        for text in [
            "",
            "\n\n\t\n",
            "rtt:1/2 minrtt:1",
            "0 0 a:1 b:2",
            "0 0 a:1 b:2\n\t rtt:x/1 minrtt:nan\n",
            "0 0 a:1 b:2\n\t rtt:-1/1\n",
            "0 0 a:1 b:2\n\t rtt:inf/1\n",
            "0 0 a:1\n\t rtt:1/1\n",
            "x y 0 0 a:1 b:2 rtt:",
            "0 0 noport nope\n\t rtt:1/1\n",
            "\u{0}\u{fffd} rtt:/",
        ] {
            assert_eq!(parse_ss(text), Vec::new(), "{text:?}");
        }
        // A connection without rtt is skipped; the next one is still read.
        assert_eq!(
            parse_ss("0 0 a:1 b:2\n\t cubic\n0 0 a:3 b:4\n\t rtt:2/1 minrtt:oops\n"),
            vec![rtt(2.0, None, "a:3", "b:4")]
        );
        // `mrtt:` (bbr) and `rcv_rtt:` are not `rtt:` or `minrtt:`.
        assert_eq!(
            parse_ss("0 0 a:1 b:2\n\t bbr:(mrtt:9) rcv_rtt:8 rtt:3/1\n"),
            vec![rtt(3.0, None, "a:1", "b:2")]
        );
    }

    #[test]
    fn ss_command_lines() {
        let cmd = ss_command("swc-1234-h3");
        let std = cmd.as_std();
        assert_eq!(std.get_program(), "ip");
        let args: Vec<_> = std.get_args().collect();
        assert_eq!(
            args,
            [
                "netns",
                "exec",
                "swc-1234-h3",
                "ss",
                "-tinH",
                "state",
                "established"
            ]
        );
        let cmd = ss_command("");
        assert_eq!(cmd.as_std().get_program(), "ss");
    }

    #[tokio::test]
    async fn run_ss_errors() {
        let mut slow = Command::new("sh");
        slow.args(["-c", "sleep 5"]);
        let started = Instant::now();
        let err = run_ss(slow, Duration::from_millis(100)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(3));

        let mut failing = Command::new("sh");
        failing.args(["-c", "echo oops >&2; exit 3"]);
        let err = run_ss(failing, SS_TIMEOUT).await.unwrap_err();
        assert!(err.to_string().contains("oops"), "{err}");

        let missing = Command::new("/nonexistent/swc-sampler-ss");
        assert!(run_ss(missing, SS_TIMEOUT).await.is_err());

        let mut canned = Command::new("printf");
        canned.args(["%s", SS_CLIENT]);
        assert_eq!(run_ss(canned, SS_TIMEOUT).await.unwrap().len(), 2);
    }

    /// `ss` is installed (iproute2); the tests that run it are skipped where it is not.
    fn have_ss() -> bool {
        std::process::Command::new("ss")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// A loopback connection with a little traffic on it: (client, server-side stream).
    async fn loopback_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4];
        for _ in 0..3 {
            client.write_all(b"ping").await.unwrap();
            server.read_exact(&mut buf).await.unwrap();
            server.write_all(b"pong").await.unwrap();
            client.read_exact(&mut buf).await.unwrap();
        }
        (client, server)
    }

    #[tokio::test]
    async fn samples_this_namespace_with_ss() {
        if !have_ss() {
            return;
        }
        let (client, _server) = loopback_pair().await;
        let local = client.local_addr().unwrap().to_string();
        let peer = client.peer_addr().unwrap().to_string();
        let rtts = sample_rtts("").await.unwrap();
        let ours = rtts
            .iter()
            .find(|r| r.local == local && r.peer == peer)
            .unwrap_or_else(|| panic!("{local} -> {peer} not in {rtts:?}"));
        assert!(ours.srtt_ms.is_finite() && ours.srtt_ms >= 0.0);
        assert!(rtts.iter().any(|r| r.local == peer && r.peer == local));
    }

    #[tokio::test]
    async fn rtt_sampler_rounds() {
        if !have_ss() {
            return;
        }
        let (client, _server) = loopback_pair().await;
        let peer = client.peer_addr().unwrap().to_string();
        let sampler = RttSampler::start(vec![String::new()], Duration::from_millis(50));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let samples = sampler.stop();
        let ours: Vec<_> = samples.iter().filter(|s| s.peer == peer).collect();
        assert!(ours.len() >= 2, "{samples:?}");
        assert!(ours.windows(2).all(|w| w[0].at_secs < w[1].at_secs));
        assert!(ours.iter().all(|s| s.ns.is_empty() && s.srtt_ms >= 0.0));
        let json = serde_json::to_string(&samples).unwrap();
        assert_eq!(
            serde_json::from_str::<Vec<RttSample>>(&json).unwrap(),
            samples
        );
    }

    #[tokio::test]
    async fn rtt_sampler_survives_a_missing_namespace() {
        let sampler = RttSampler::start(
            vec!["swc-sampler-test-does-not-exist".into()],
            Duration::from_millis(20),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(sampler.stop().is_empty());
    }
}
