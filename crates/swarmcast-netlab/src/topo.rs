//! The emulated internet's topology: network namespaces, veth links, addresses, NAT.
//!
//! # Layout
//!
//! Every name carries a per-run prefix `swc-<tag>-`, where the tag is the lab's pid (`swc-<pid>-`;
//! a second [`Net`] in the same process gets `swc-<pid>_<n>-`). In the order the hosts are given,
//! host `i` (1-based, at most [`MAX_HOSTS`]) lives in namespace `swc-<tag>-h<i>` and, if it sits
//! behind a NAT, its NAT router in `swc-<tag>-n<i>`. One core router, `swc-<tag>-core`, forwards
//! between all of them.
//!
//! - Host without NAT: veth `c<i>` (core, 10.77.i.1/24) ↔ `eth0` (host, 10.77.i.2/24); the host's
//!   default route is via 10.77.i.1. Its address and public address are both 10.77.i.2.
//! - Host behind NAT: veth `c<i>` (core, 10.77.i.1/24) ↔ `eth0` (NAT, 10.77.i.2/24, the public
//!   address), and `lan0` (NAT, 10.78.i.1/24) ↔ `eth0` (host, 10.78.i.2/24). Default routes: host
//!   via 10.78.i.1, NAT via 10.77.i.1. The NAT masquerades out of `eth0` and admits inbound
//!   packets (forwarded or to itself) only when conntrack knows them (`ESTABLISHED,RELATED`); the
//!   rest hit a `DROP` rule whose counters are the host's `nat_dropped_*`. It answers nothing
//!   unsolicited, and filters by address and port (a mapping opened towards one peer does not
//!   admit another). Conntrack is liberal with TCP windows, so that emulated loss and reordering
//!   do not make the NAT drop packets on top of the emulator.
//! - Core and NATs forward (`ip_forward=1`, no ICMP redirects). With `emulate`, the core sends
//!   every forwarded packet to NFQUEUE 0 (no bypass: without the emulator, nothing is forwarded).
//! - Everywhere: `lo` up, IPv6 disabled, `rp_filter` off. Every veth end has MTU 1500, TSO, GSO,
//!   UDP segmentation and GRO off (so every packet counted, delayed or lost is a real ≤1500-byte
//!   packet), a deterministic MAC `02:77:<i hi>:<i lo>:<side>:00` (side 0 core `c<i>`, 1 its peer,
//!   2 NAT `lan0`, 3 its peer), ARP off and a permanent neighbour entry for its peer: the only
//!   frames on the links are the IP packets, so bytes balance exactly (Σ sent = Σ received + NAT
//!   drops, for traffic between hosts that the emulator does not drop).
//!
//! Building runs few processes: one `ip -batch` in the root namespace adds the namespaces, one adds
//! every veth pair directly into its namespaces, then per namespace one `ip -batch`, one `ethtool`
//! per interface and, for routers, one `iptables-restore`, on a few threads that enter the
//! namespaces themselves ([`in_ns`]); sysctls are written from such threads too.
//!
//! Namespaces of dead runs (`swc-<pid>-…` whose pid no longer exists) are removed by
//! [`Net::create`]; [`cleanup_all`] removes every `swc-` namespace; dropping a [`Net`] removes its
//! own. Removal kills the processes in a namespace first, then deletes it.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

use build::{ip, NAT_FROM_LAN, NAT_TO_LAN};
pub(crate) use sys::enter_ns;
use sys::{list_namespaces, par_in_ns, parse_drop_counters, parse_net_dev, parse_rule_counters};
use sys::{pid_alive, pid_of, remove_namespaces, run};

mod build;
mod sys;

/// Every namespace any run creates starts with this.
pub const PREFIX: &str = "swc-";
/// The most hosts a [`Net`] holds (addresses are 10.77.i.0/24 and 10.78.i.0/24).
pub const MAX_HOSTS: usize = 250;
/// Bytes of Ethernet header on every frame, taken off the interface counters.
const ETH_HEADER: u64 = 14;

/// A host to build: its node name and whether it sits behind its own NAT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpec {
    /// The lab's node name: "publisher", "viewer-3", "tracker"…
    pub node: String,
    /// Behind its own NAT router.
    pub nat: bool,
    /// Its NAT maps each connection to a random port (a symmetric NAT, as carrier-grade NATs
    /// are), rather than keeping the host's port: nothing dialled from outside ever finds the
    /// mapping, so hole punching fails through it. Only with `nat`.
    #[serde(default)]
    pub random_ports: bool,
}

impl HostSpec {
    /// A host with a public address.
    pub fn public(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            nat: false,
            random_ports: false,
        }
    }

    /// A host behind its own NAT.
    pub fn behind_nat(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            nat: true,
            random_ports: false,
        }
    }

    /// A host behind its own symmetric NAT (random ports; see [`HostSpec::random_ports`]).
    pub fn behind_symmetric_nat(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            nat: true,
            random_ports: true,
        }
    }
}

/// A host as built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// The lab's node name.
    pub node: String,
    /// Its network namespace.
    pub ns: String,
    /// The address of its own interface (`eth0`).
    pub addr: Ipv4Addr,
    /// The address others reach it at (its NAT's, if it has one).
    pub public: Ipv4Addr,
    /// Its NAT router's namespace.
    pub nat_ns: Option<String>,
    /// Its NAT maps each connection to a random port ([`HostSpec::random_ports`]).
    #[serde(default)]
    pub random_ports: bool,
    /// 1-based position in the list given to [`Net::create`]; `i` in its addresses.
    pub index: u16,
}

impl Host {
    /// The name of its link's interface in the core namespace (`c<i>`).
    pub fn core_if(&self) -> String {
        format!("c{}", self.index)
    }
}

/// What crossed a host's own interface, in IP bytes, and what its NAT dropped.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct LinkCounters {
    /// The lab's node name.
    pub node: String,
    /// IP bytes the host sent.
    pub tx_bytes: u64,
    /// Packets the host sent.
    pub tx_packets: u64,
    /// IP bytes the host received.
    pub rx_bytes: u64,
    /// Packets the host received.
    pub rx_packets: u64,
    /// IP bytes the host's NAT dropped (unsolicited inbound); 0 without NAT.
    pub nat_dropped_bytes: u64,
    /// Packets the host's NAT dropped.
    pub nat_dropped_packets: u64,
    /// IP bytes the host sent to its NAT itself (to the NAT's own addresses, say a datagram to
    /// the host's own public address): they never reach the emulator. 0 without NAT.
    #[serde(default)]
    pub to_nat_bytes: u64,
    /// Packets the host sent to its NAT itself.
    #[serde(default)]
    pub to_nat_packets: u64,
    /// IP bytes the NAT itself sent to the host (its answers to those: a reset, an ICMP error):
    /// they never crossed the emulator either. 0 without NAT.
    #[serde(default)]
    pub from_nat_bytes: u64,
    /// Packets the NAT itself sent to the host.
    #[serde(default)]
    pub from_nat_packets: u64,
}

/// Why the emulated network could not be built, read or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Not running as root.
    #[error("the emulated network needs root (network namespaces, iptables): run as root, or use --net loopback")]
    NotRoot,
    /// A command failed or could not start.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line (and the namespace it ran in).
        cmd: String,
        /// Its exit status, or why it did not start.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// More hosts than addresses.
    #[error("{count} hosts asked for, the emulated network holds at most {max}")]
    TooManyHosts {
        /// Hosts asked for.
        count: usize,
        /// [`MAX_HOSTS`].
        max: usize,
    },
    /// Two hosts with the same node name.
    #[error("node {0:?} is given twice")]
    DuplicateNode(String),
    /// A namespace could not be entered.
    #[error("cannot enter network namespace {ns}: {source}")]
    Namespace {
        /// Its name.
        ns: String,
        /// Why.
        source: std::io::Error,
    },
    /// Output of a command or of `/proc` was not as expected.
    #[error("cannot read {what}: {detail}")]
    Parse {
        /// What was read.
        what: String,
        /// What was wrong.
        detail: String,
    },
}

/// The emulated network: removed (processes killed, namespaces deleted) on drop.
#[derive(Debug)]
pub struct Net {
    prefix: String,
    core: String,
    hosts: Vec<Host>,
    removed: bool,
}

impl Net {
    /// Builds the network. `emulate`: install the NFQUEUE rule in the core (else a plain
    /// forwarding router: the control). Removes namespaces of dead runs first.
    pub fn create(hosts: &[HostSpec], emulate: bool) -> Result<Net, NetError> {
        if hosts.len() > MAX_HOSTS {
            return Err(NetError::TooManyHosts {
                count: hosts.len(),
                max: MAX_HOSTS,
            });
        }
        let mut seen = HashSet::new();
        if let Some(dup) = hosts.iter().find(|h| !seen.insert(&h.node)) {
            return Err(NetError::DuplicateNode(dup.node.clone()));
        }
        require_root()?;
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let prefix = match SEQ.fetch_add(1, Ordering::Relaxed) {
            0 => format!("{PREFIX}{pid}-"),
            n => format!("{PREFIX}{pid}_{n}-"),
        };
        // Dead runs, and anything already carrying our prefix (a dead run whose pid was reused).
        let stale: Vec<String> = list_namespaces()?
            .into_iter()
            .filter(|ns| ns.starts_with(&prefix) || pid_of(ns).is_some_and(|p| !pid_alive(p)))
            .collect();
        if !stale.is_empty() {
            tracing::info!(count = stale.len(), "removing namespaces of dead runs");
            // Another run may be removing them too: a failure here is not ours to stop on.
            if let Err(e) = remove_namespaces(&stale) {
                tracing::warn!(error = %e, "could not remove every namespace of dead runs");
            }
        }
        let hosts = (1..)
            .zip(hosts)
            .map(|(i, spec): (u16, &HostSpec)| {
                let public = ip(77, i, 2);
                Host {
                    node: spec.node.clone(),
                    ns: format!("{prefix}h{i}"),
                    addr: if spec.nat { ip(78, i, 2) } else { public },
                    public,
                    nat_ns: spec.nat.then(|| format!("{prefix}n{i}")),
                    random_ports: spec.nat && spec.random_ports,
                    index: i,
                }
            })
            .collect();
        let core = format!("{prefix}core");
        let mut net = Net {
            prefix,
            core,
            hosts,
            removed: false,
        };
        // On error, dropping `net` removes whatever was built.
        net.build(emulate)?;
        Ok(net)
    }

    /// The hosts, in the order given to [`Net::create`].
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The host of a node.
    pub fn host(&self, node: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.node == node)
    }

    /// The core router's namespace.
    pub fn core_ns(&self) -> &str {
        &self.core
    }

    /// This run's prefix of every namespace name (`swc-<tag>-`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every namespace of this network: core, then hosts and their NATs.
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        let hosts = self.hosts.iter();
        std::iter::once(self.core.as_str())
            .chain(hosts.flat_map(|h| std::iter::once(h.ns.as_str()).chain(h.nat_ns.as_deref())))
    }

    /// `ip netns exec <ns> <program>`: a Command that runs `program` inside the host's namespace.
    pub fn command(&self, host: &Host, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.arg("netns").arg("exec").arg(&host.ns).arg(program);
        cmd
    }

    /// Kills (SIGKILL) every process in a host's namespace at once, as a machine that loses power:
    /// the pids signalled (none if the host is unknown or runs nothing).
    pub fn kill_host(&self, node: &str) -> Vec<i32> {
        match self.host(node) {
            Some(h) => sys::kill_all_in(&h.ns),
            None => Vec::new(),
        }
    }

    /// Per host, what crossed its own interface (in its namespace), in IP bytes (the 14-byte
    /// Ethernet header of each frame taken off), and for NAT hosts the bytes their NAT dropped
    /// (unsolicited inbound).
    pub fn counters(&self) -> Result<Vec<LinkCounters>, NetError> {
        let jobs = self
            .hosts
            .iter()
            .map(|h| (h.ns.clone(), (h.node.clone(), h.nat_ns.clone())));
        par_in_ns(jobs.collect(), |(node, nat_ns)| {
            let dev = std::fs::read_to_string("/proc/thread-self/net/dev")?;
            let (rx_bytes, rx_packets, tx_bytes, tx_packets) = parse_net_dev(&dev, "eth0")?;
            let mut c = LinkCounters {
                node,
                tx_bytes: tx_bytes.saturating_sub(ETH_HEADER * tx_packets),
                tx_packets,
                rx_bytes: rx_bytes.saturating_sub(ETH_HEADER * rx_packets),
                rx_packets,
                ..LinkCounters::default()
            };
            if let Some(nat) = nat_ns {
                enter_ns(&nat)?;
                let save = run(
                    Command::new("iptables-save").args(["-c", "-t", "filter"]),
                    None,
                    Some(&nat),
                )?;
                (c.nat_dropped_packets, c.nat_dropped_bytes) = parse_drop_counters(&save)?;
                (c.to_nat_packets, c.to_nat_bytes) = parse_rule_counters(&save, NAT_FROM_LAN)?;
                (c.from_nat_packets, c.from_nat_bytes) = parse_rule_counters(&save, NAT_TO_LAN)?;
            }
            Ok(c)
        })
    }

    /// Removes everything (kills processes left in its namespaces first). Also done on drop
    /// (errors logged); removing twice does nothing.
    pub fn remove(mut self) -> Result<(), NetError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), NetError> {
        if std::mem::replace(&mut self.removed, true) {
            return Ok(());
        }
        remove_namespaces(&self.namespaces().map(String::from).collect::<Vec<_>>())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::error!(prefix = %self.prefix, error = %e, "could not remove the emulated network");
        }
    }
}

/// Runs `f` on a new thread that first enters network namespace `ns` (`setns(CLONE_NEWNET)` on
/// `/run/netns/<ns>`); sockets it creates live in that namespace, and so do processes it spawns.
/// A panic in `f` is resumed on the caller.
pub fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetError> {
    let ns = ns.to_string();
    let thread = std::thread::Builder::new().name(format!("in-{ns}"));
    let handle = thread.spawn(move || enter_ns(&ns).map(|()| f()))?;
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// [`NetError::NotRoot`] unless running as root.
pub fn require_root() -> Result<(), NetError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(NetError::NotRoot)
    }
}

/// `swarmcast lab --cleanup`: removes every namespace (and the processes in it) that any run
/// created (prefix `swc-`), live runs' included. Returns how many namespaces.
pub fn cleanup_all() -> Result<usize, NetError> {
    require_root()?;
    let all = list_namespaces()?;
    remove_namespaces(&all)?;
    Ok(all.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_too_many_hosts_and_duplicates() {
        let many: Vec<_> = (0..=MAX_HOSTS)
            .map(|i| HostSpec::public(format!("v{i}")))
            .collect();
        assert!(matches!(
            Net::create(&many, false),
            Err(NetError::TooManyHosts {
                count: 251,
                max: 250
            })
        ));
        let dup = [HostSpec::public("a"), HostSpec::behind_nat("a")];
        assert!(matches!(Net::create(&dup, false), Err(NetError::DuplicateNode(n)) if n == "a"));
    }
}
