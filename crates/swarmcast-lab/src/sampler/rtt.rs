//! TCP round-trip times: `ss -tinH` output parsed ([`parse_ss`]) into each established
//! connection's `TCP_INFO` RTTs, `ss` run in a network namespace with a timeout
//! ([`sample_rtts`]), and [`RttSampler`], the task that does so for each namespace every interval.

use std::collections::HashSet;
use std::io;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use swarmcast_tasks::Tasks;
use tokio::process::Command;
use tokio::time::MissedTickBehavior;

use super::{lock, MIN_INTERVAL};

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
pub(super) fn ss_command(ns: &str) -> Command {
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
pub(super) async fn run_ss(mut cmd: Command, timeout: Duration) -> io::Result<Vec<TcpRtt>> {
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
/// [shut down](RttSampler::shutdown).
///
/// Every `every` it runs [`sample_rtts`] for each namespace in turn, one command at a time; a
/// round that takes longer than `every` delays the next rather than overlapping it. A namespace
/// whose command fails is logged (once) and retried next round. Dropping it without `shutdown`
/// cancels the task (and kills a command in flight) without waiting for it.
#[derive(Debug)]
pub struct RttSampler {
    samples: Arc<Mutex<Vec<RttSample>>>,
    tasks: Tasks,
}

impl RttSampler {
    /// Spawns the sampling task; the first round starts now. `every` is at least 10 ms. Must be
    /// called within a tokio runtime.
    pub fn start(namespaces: Vec<String>, every: Duration) -> RttSampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let tasks = Tasks::new("rtt-sampler");
        tasks.spawn(
            "rtt",
            rtt_task(namespaces, every.max(MIN_INTERVAL), Arc::clone(&samples)),
        );
        RttSampler { samples, tasks }
    }

    /// Ends the sampling: cancels the task (killing a command in flight), waits until it has
    /// ended, and returns every sample, in order.
    pub async fn shutdown(self) -> Vec<RttSample> {
        self.tasks.shutdown().await;
        std::mem::take(&mut *lock(&self.samples))
    }
}

impl Drop for RttSampler {
    fn drop(&mut self) {
        self.tasks.cancel();
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
