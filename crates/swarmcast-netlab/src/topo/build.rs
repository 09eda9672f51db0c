//! Building a [`Net`]: the namespaces, the links and what runs in each namespace.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::sys::{par_in_ns, run};
use super::{Net, NetError};

/// One configuration step, run inside a namespace.
enum Step {
    Sysctls(Vec<(String, &'static str)>),
    IpBatch(String),
    Ethtool(String),
    Iptables(String),
}

impl Net {
    /// Adds the namespaces, sets their sysctls, adds the links, then configures each namespace.
    pub(super) fn build(&mut self, emulate: bool) -> Result<(), NetError> {
        let all = self.namespaces().map(String::from).collect::<Vec<_>>();
        let adds: String = all.iter().map(|ns| format!("netns add {ns}\n")).collect();
        run(Command::new("ip").args(["-batch", "-"]), Some(&adds), None)?;
        // Before any interface exists, so that every interface inherits the defaults.
        // The Linux default congestion control, whatever the machine's own default.
        let mut base = vec![(
            "net/ipv4/tcp_congestion_control".to_string(),
            CONGESTION_CONTROL,
        )];
        let mut router = vec![("net/ipv4/ip_forward".to_string(), "1")];
        for c in ["all", "default"] {
            base.push((format!("net/ipv6/conf/{c}/disable_ipv6"), "1"));
            base.push((format!("net/ipv4/conf/{c}/rp_filter"), "0"));
            router.push((format!("net/ipv4/conf/{c}/send_redirects"), "0"));
        }
        router.extend(base.iter().cloned());
        let _allowed = AllowCongestionControl::ensure(CONGESTION_CONTROL);
        let sysctls = |ns: &str| {
            let r = ns == self.core || self.hosts.iter().any(|h| h.nat_ns.as_deref() == Some(ns));
            (
                ns.to_string(),
                Step::Sysctls(if r { router.clone() } else { base.clone() }),
            )
        };
        run_steps(all.iter().map(|ns| sysctls(ns)).collect())?;

        let veth = |a: &str, a_ns: &str, a_mac: String, b: &str, b_ns: &str, b_mac: String| {
            format!(
                "link add {a} netns {a_ns} address {a_mac} mtu 1500 arp off type veth \
                 peer name {b} netns {b_ns} address {b_mac} mtu 1500 arp off\n"
            )
        };
        let mut links = String::new();
        let mut core_ip = String::from("link set lo up\n");
        let mut steps = Vec::new();
        for h in &self.hosts {
            let (i, c) = (h.index, h.core_if());
            let edge = h.nat_ns.as_deref().unwrap_or(&h.ns);
            links += &veth(&c, &self.core, mac(i, 0), "eth0", edge, mac(i, 1));
            core_ip += &format!(
                "addr add {}/24 dev {c}\nlink set {c} up\n\
                 neigh replace {} lladdr {} dev {c} nud permanent\n",
                ip(77, i, 1),
                ip(77, i, 2),
                mac(i, 1)
            );
            steps.push((self.core.clone(), Step::Ethtool(c)));
            steps.push((edge.to_string(), Step::Ethtool("eth0".into())));
            steps.push((h.ns.clone(), Step::Ethtool("eth0".into())));
            let (gw, gw_mac) = match &h.nat_ns {
                None => (ip(77, i, 1), mac(i, 0)),
                Some(nat) => {
                    links += &veth("lan0", nat, mac(i, 2), "eth0", &h.ns, mac(i, 3));
                    steps.push((nat.clone(), Step::Ethtool("lan0".into())));
                    let script = format!(
                        "link set lo up\naddr add {}/24 dev eth0\naddr add {}/24 dev lan0\n\
                         link set eth0 up\nlink set lan0 up\n\
                         neigh replace {} lladdr {} dev eth0 nud permanent\n\
                         neigh replace {} lladdr {} dev lan0 nud permanent\n\
                         route add default via {}\n",
                        ip(77, i, 2),
                        ip(78, i, 1),
                        ip(77, i, 1),
                        mac(i, 0),
                        ip(78, i, 2),
                        mac(i, 3),
                        ip(77, i, 1)
                    );
                    steps.push((nat.clone(), Step::IpBatch(script)));
                    steps.push((nat.clone(), Step::Iptables(nat_rules(h.random_ports))));
                    (ip(78, i, 1), mac(i, 2))
                }
            };
            let script = format!(
                "link set lo up\naddr add {}/24 dev eth0\nlink set eth0 up\n\
                 neigh replace {gw} lladdr {gw_mac} dev eth0 nud permanent\n\
                 route add default via {gw}\n",
                h.addr
            );
            steps.push((h.ns.clone(), Step::IpBatch(script)));
        }
        run(Command::new("ip").args(["-batch", "-"]), Some(&links), None)?;
        steps.push((self.core.clone(), Step::IpBatch(core_ip)));
        if emulate {
            steps.push((self.core.clone(), Step::Iptables(CORE_RULES.into())));
        }
        run_steps(steps)
    }
}

/// The congestion control of every TCP connection in the network: Linux's default (and that of
/// Windows and macOS), set in each namespace so that the machine's own choice does not leak in.
pub(super) const CONGESTION_CONTROL: &str = "cubic";

/// The machine's list of congestion controls a network namespace may choose.
const ALLOWED_CONGESTION_CONTROL: &str = "/proc/sys/net/ipv4/tcp_allowed_congestion_control";

/// A namespace other than the machine's own may set only a congestion control the machine allows
/// (else `EPERM`); some machines allow only theirs and reno (seen: `reno bbr`). While this lives,
/// [`CONGESTION_CONTROL`] is on the list; dropped, the list is as it was.
struct AllowCongestionControl {
    before: Option<String>,
}

impl AllowCongestionControl {
    fn ensure(cc: &str) -> Self {
        let Ok(list) = std::fs::read_to_string(ALLOWED_CONGESTION_CONTROL) else {
            return Self { before: None };
        };
        let list = list.trim();
        if list.split_whitespace().any(|a| a == cc) {
            return Self { before: None };
        }
        if let Err(e) = std::fs::write(ALLOWED_CONGESTION_CONTROL, format!("{list} {cc}")) {
            tracing::warn!(error = %e, "cannot allow {cc} in network namespaces: setting it will fail");
            return Self { before: None };
        }
        Self {
            before: Some(list.to_string()),
        }
    }
}

impl Drop for AllowCongestionControl {
    fn drop(&mut self) {
        if let Some(old) = &self.before {
            let _ = std::fs::write(ALLOWED_CONGESTION_CONTROL, old);
        }
    }
}

/// The core's rules with `emulate`: every forwarded packet to the emulator, none without it.
const CORE_RULES: &str =
    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
    -A FORWARD -j NFQUEUE --queue-num 0\nCOMMIT\n";

/// A NAT's rules: masquerade out of `eth0` (keeping the host's port where it can, or with
/// `random_ports` a random port for every connection); into it, only what conntrack knows.
/// Two rules only count: what the host sends to the NAT itself ([`NAT_FROM_LAN`]) and what the
/// NAT itself sends to the host ([`NAT_TO_LAN`]), traffic the emulator never sees.
fn nat_rules(random_ports: bool) -> String {
    let masquerade = if random_ports {
        "MASQUERADE --random-fully"
    } else {
        "MASQUERADE"
    };
    NAT_RULES.replace("MASQUERADE", masquerade)
}

/// [`nat_rules`] keeping ports.
const NAT_RULES: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
    :POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n\
    *filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
    -A INPUT -i lan0\n-A OUTPUT -o lan0\n\
    -A INPUT -i eth0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n-A INPUT -i eth0 -j DROP\n\
    -A FORWARD -i eth0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n-A FORWARD -i eth0 -j DROP\n\
    COMMIT\n";

/// The NAT's rule counting what its host sends to the NAT itself (as `iptables-save` prints it).
pub(super) const NAT_FROM_LAN: &str = "-A INPUT -i lan0";
/// The NAT's rule counting what the NAT itself sends to its host.
pub(super) const NAT_TO_LAN: &str = "-A OUTPUT -o lan0";

/// 10.`net`.`i`.`host`.
pub(super) fn ip(net: u8, i: u16, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, net, u8::try_from(i).unwrap_or(u8::MAX), host)
}

/// The MAC of host `i`'s veth end `side` (0 core `c<i>`, 1 its peer, 2 NAT `lan0`, 3 its peer).
fn mac(i: u16, side: u8) -> String {
    format!("02:77:{:02x}:{:02x}:{side:02x}:00", i >> 8, i & 0xff)
}

/// Runs configuration steps, each in its namespace, on a few threads.
fn run_steps(steps: Vec<(String, Step)>) -> Result<(), NetError> {
    let jobs = steps
        .into_iter()
        .map(|(ns, step)| (ns.clone(), (ns, step)))
        .collect();
    par_in_ns(jobs, |(ns, step)| {
        let ns = Some(ns.as_str());
        match step {
            Step::Sysctls(list) => {
                for (key, value) in list {
                    std::fs::write(PathBuf::from("/proc/sys").join(&key), value).map_err(|e| {
                        std::io::Error::new(e.kind(), format!("sysctl {key}={value}: {e}"))
                    })?;
                }
            }
            Step::IpBatch(script) => drop(run(
                Command::new("ip").args(["-batch", "-"]),
                Some(&script),
                ns,
            )?),
            Step::Ethtool(dev) => {
                let offloads = [
                    "tso",
                    "off",
                    "gso",
                    "off",
                    "gro",
                    "off",
                    "tx-udp-segmentation",
                    "off",
                ];
                drop(run(
                    Command::new("ethtool").arg("-K").arg(dev).args(offloads),
                    None,
                    ns,
                )?);
            }
            Step::Iptables(rules) => {
                run(Command::new("iptables-restore").arg("-w"), Some(&rules), ns)?;
                let liberal = "/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal";
                if rules.contains("conntrack") && Path::new(liberal).exists() {
                    std::fs::write(liberal, "1")?;
                }
            }
        }
        Ok(())
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_macs() {
        assert_eq!(mac(3, 1), "02:77:00:03:01:00");
        assert_eq!(mac(250, 3), "02:77:00:fa:03:00");
        assert_eq!(ip(78, 7, 2), Ipv4Addr::new(10, 78, 7, 2));
    }
}
