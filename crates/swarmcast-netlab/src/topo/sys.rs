//! Processes, namespaces and counters: the system calls and commands under [`super`].

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{NetError, PREFIX};

/// Where `ip netns` keeps its namespaces.
const RUN_DIR: &str = "/run/netns";
/// Threads that configure namespaces concurrently (each mostly waits for a child process).
const WORKERS: usize = 6;

fn ns_path(ns: &str) -> PathBuf {
    PathBuf::from(RUN_DIR).join(ns)
}

/// Moves the calling thread into namespace `ns`.
pub(crate) fn enter_ns(ns: &str) -> Result<(), NetError> {
    let err = |source: std::io::Error| NetError::Namespace {
        ns: ns.to_string(),
        source,
    };
    let file = File::open(ns_path(ns)).map_err(err)?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| err(e.into()))
}

/// The pid in a run's namespace name (`swc-<pid>-…` or `swc-<pid>_<n>-…`).
pub(super) fn pid_of(ns: &str) -> Option<i32> {
    let rest = ns.strip_prefix(PREFIX)?;
    let end = rest.find(['-', '_'])?;
    rest[..end].parse::<i32>().ok().filter(|&p| p > 0)
}

pub(super) fn pid_alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None) != Err(Errno::ESRCH)
}

/// Every namespace named `swc-…`, sorted.
pub(super) fn list_namespaces() -> Result<Vec<String>, NetError> {
    let dir = match std::fs::read_dir(RUN_DIR) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        dir => dir?,
    };
    let mut names = Vec::new();
    for entry in dir {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(PREFIX) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Kills the processes in those of `names` that exist (waiting up to 2 s for them to go), then
/// deletes the namespaces.
pub(super) fn remove_namespaces(names: &[String]) -> Result<(), NetError> {
    let names: Vec<&String> = names.iter().filter(|ns| ns_path(ns).exists()).collect();
    if names.is_empty() {
        return Ok(());
    }
    let mut inodes = HashSet::new();
    for ns in &names {
        if let Ok(m) = std::fs::metadata(ns_path(ns)) {
            inodes.insert((m.dev(), m.ino()));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let pids = pids_in(&inodes);
        if pids.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            tracing::warn!(?pids, "processes still in the namespaces after SIGKILL");
            break;
        }
        for &pid in &pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let dels: String = names.iter().map(|ns| format!("netns del {ns}\n")).collect();
    run(Command::new("ip").args(["-batch", "-"]), Some(&dels), None).map(drop)
}

/// SIGKILLs every process (other than this one) in namespace `ns`; the pids signalled.
pub(super) fn kill_all_in(ns: &str) -> Vec<i32> {
    let Ok(m) = std::fs::metadata(ns_path(ns)) else {
        return Vec::new();
    };
    let pids = pids_in(&HashSet::from([(m.dev(), m.ino())]));
    for &pid in &pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    pids
}

/// Processes (other than this one) with a thread in one of the namespaces `inodes`.
fn pids_in(inodes: &HashSet<(u64, u64)>) -> Vec<i32> {
    let me = std::process::id();
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let pids = proc_dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
    let in_ns = |pid: u32| {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        tasks.flatten().any(|t| {
            let m = std::fs::metadata(t.path().join("ns/net"));
            m.is_ok_and(|m| inodes.contains(&(m.dev(), m.ino())))
        })
    };
    pids.filter(|&p| p != me && in_ns(p))
        .filter_map(|p| i32::try_from(p).ok())
        .collect()
}

/// Runs `f(job)` for every `(namespace, job)` on up to [`WORKERS`] threads, each of which enters
/// the job's namespace first; results in the order of `jobs`, or the first error.
pub(super) fn par_in_ns<J: Send, R: Send>(
    jobs: Vec<(String, J)>,
    f: impl Fn(J) -> Result<R, NetError> + Sync,
) -> Result<Vec<R>, NetError> {
    let count = jobs.len();
    let queue = Mutex::new(jobs.into_iter().enumerate());
    let results = Mutex::new((0..count).map(|_| None).collect::<Vec<Option<R>>>());
    let error = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..WORKERS.min(count) {
            s.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                let failed = error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some();
                let Some((i, (ns, job))) = next.filter(|_| !failed) else {
                    break;
                };
                match enter_ns(&ns).and_then(|()| f(job)) {
                    Ok(r) => results.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(r),
                    Err(e) => {
                        error
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = error.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(e);
    }
    let results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    Ok(results.into_iter().flatten().collect())
}

/// Runs a command to completion, feeding it `input`; its stdout, or [`NetError::Command`].
/// `ns` names the namespace it runs in, for the error.
pub(super) fn run(
    cmd: &mut Command,
    input: Option<&str>,
    ns: Option<&str>,
) -> Result<String, NetError> {
    let mut desc = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(ns) = ns {
        desc += &format!(" (in {ns})");
    }
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.map_err(|e| NetError::Command {
        cmd: desc.clone(),
        status: "not started".into(),
        stderr: format!("{e} (needs iproute2, iptables and ethtool: apt-get install -y iproute2 iptables ethtool)"),
    })?;
    let out = std::thread::scope(|s| {
        if let (Some(text), Some(mut pipe)) = (input, child.stdin.take()) {
            s.spawn(move || pipe.write_all(text.as_bytes()));
        }
        child.wait_with_output()
    })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    // `ip -batch` names the failing line as "-:<n>": quote it.
    let line = stderr
        .rsplit_once("-:")
        .and_then(|(_, n)| n.trim().parse::<usize>().ok());
    if let (Some(n), Some(text)) = (line, input) {
        if let Some(l) = text.lines().nth(n.saturating_sub(1)) {
            stderr += &format!(" [line {n}: {l}]");
        }
    }
    Err(NetError::Command {
        cmd: desc,
        status: out.status.to_string(),
        stderr,
    })
}

/// `(rx bytes, rx packets, tx bytes, tx packets)` of `dev` in `/proc/net/dev` text.
pub(super) fn parse_net_dev(text: &str, dev: &str) -> Result<(u64, u64, u64, u64), NetError> {
    let bad = |detail: &str| NetError::Parse {
        what: "/proc/net/dev".into(),
        detail: detail.into(),
    };
    let line = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim() == dev);
    let (_, fields) = line.ok_or_else(|| bad(&format!("no interface {dev}")))?;
    let f: Vec<u64> = fields
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    if f.len() < 10 {
        return Err(bad(&format!("short line for {dev}")));
    }
    Ok((f[0], f[1], f[8], f[9]))
}

/// `(packets, bytes)` summed over the `DROP` rules of `iptables-save -c` output.
pub(super) fn parse_drop_counters(save: &str) -> Result<(u64, u64), NetError> {
    sum_counters(save, |rule| rule.ends_with("-j DROP"))
}

/// The counters `[packets:bytes]` of the rule `rule` (as `iptables-save` prints it, after the
/// counters) in `iptables-save -c` output; (0, 0) if the table has no such rule.
pub(super) fn parse_rule_counters(save: &str, rule: &str) -> Result<(u64, u64), NetError> {
    sum_counters(save, |r| r == rule)
}

/// `(packets, bytes)` summed over the rules of `iptables-save -c` output that `which` picks (by
/// the rule's text after its counters).
fn sum_counters(save: &str, which: impl Fn(&str) -> bool) -> Result<(u64, u64), NetError> {
    let mut sum = (0, 0);
    for line in save.lines().filter(|l| l.starts_with('[')) {
        let (counts, rule) = line[1..].split_once("] ").unwrap_or((&line[1..], ""));
        if !which(rule) {
            continue;
        }
        let parsed = counts
            .split_once(':')
            .and_then(|(p, b)| Some((p.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
        let (p, b) = parsed.ok_or_else(|| NetError::Parse {
            what: "iptables-save -c".into(),
            detail: line.into(),
        })?;
        sum = (sum.0 + p, sum.1 + b);
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_in_names() {
        assert_eq!(pid_of("swc-1234-h3"), Some(1234));
        assert_eq!(pid_of("swc-1234_2-core"), Some(1234));
        assert_eq!(pid_of("swc-0-core"), None);
        assert_eq!(pid_of("swc-probe-a"), None);
        assert_eq!(pid_of("other-12-a"), None);
    }

    #[test]
    fn parses_counters() {
        let dev = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes\n\
                   lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n  eth0: 1140 10 0 0 0 0 0 0 2280 20 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(dev, "eth0").unwrap(), (1140, 10, 2280, 20));
        assert!(parse_net_dev(dev, "eth1").is_err());
        let save = "*filter\n:INPUT ACCEPT [0:0]\n[3:180] -A INPUT -i eth0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
                    [2:120] -A INPUT -i eth0 -j DROP\n[1:60] -A FORWARD -i eth0 -j DROP\nCOMMIT\n";
        assert_eq!(parse_drop_counters(save).unwrap(), (3, 180));
        let save = "*filter\n[7:420] -A INPUT -i lan0\n[2:120] -A INPUT -i eth0 -j DROP\n\
                    [3:160] -A OUTPUT -o lan0\nCOMMIT\n";
        assert_eq!(
            parse_rule_counters(save, "-A INPUT -i lan0").unwrap(),
            (7, 420)
        );
        assert_eq!(
            parse_rule_counters(save, "-A OUTPUT -o lan0").unwrap(),
            (3, 160)
        );
        assert_eq!(
            parse_rule_counters(save, "-A INPUT -i eth1").unwrap(),
            (0, 0)
        );
        assert!(parse_rule_counters("[x:1] -A INPUT -i lan0\n", "-A INPUT -i lan0").is_err());
    }
}
