//! A run on the emulated network: which host each node is, what the emulator is told, and what
//! the run's network did ([`NetOutcome`], kept in `run.json`), with the byte-balance check.
//!
//! Every host the broadcaster runs (the publisher, and trackers or mirrors where a run has them)
//! counts as the publisher in the figures; today the publisher's process is that one host.

use std::net::{Ipv4Addr, SocketAddrV4};

use serde::{Deserialize, Serialize};
use swarmcast_netlab::emu::{EmuConfig, EmuHost, EmuReport};
use swarmcast_netlab::model::{LinkSpec, ModelConfig, PathSpec};
use swarmcast_netlab::topo::{HostSpec, LinkCounters, Net};

use crate::plan::{NetMode, NetPoint, RunSpec};

/// The publisher's HTTP port on the emulated network.
pub const HTTP_PORT: u16 = 8080;
/// Every node's peer port on the emulated network.
pub const PEER_PORT: u16 = 6881;

/// A node's place on the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetHost {
    /// Node name.
    pub node: String,
    /// The address it binds.
    pub addr: Ipv4Addr,
    /// The address others see (its NAT's, behind NAT).
    pub public: Ipv4Addr,
    /// Behind NAT.
    pub nat: bool,
    /// Behind a symmetric NAT (random ports).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub random_ports: bool,
    /// Its namespace.
    pub ns: String,
}

/// Σ sent = Σ received + dropped, over every host's own interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// IP bytes every host sent.
    pub sent: u64,
    /// IP bytes every host received.
    pub received: u64,
    /// IP bytes the emulator dropped (queues and loss).
    pub emulator_dropped: u64,
    /// IP bytes NATs dropped (unsolicited inbound).
    pub nat_dropped: u64,
    /// IP bytes hosts sent to their NAT itself (a datagram to their own public address, say):
    /// sent, never received by a host.
    #[serde(default)]
    pub to_nats: u64,
    /// IP bytes NATs themselves sent to their hosts (answers to those): received, sent by no
    /// host.
    #[serde(default)]
    pub from_nats: u64,
}

impl Balance {
    /// Bytes sent that were neither received nor dropped (negative: received more than sent),
    /// a NAT counted as receiving what its host sent to it and as sending its answers.
    pub fn missing(&self) -> i64 {
        (self.sent + self.from_nats) as i64
            - (self.received + self.emulator_dropped + self.nat_dropped + self.to_nats) as i64
    }
}

/// What a run's network did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetOutcome {
    /// Every host.
    pub hosts: Vec<NetHost>,
    /// The emulator's counts (none on the plain network).
    pub emulator: Option<EmuReport>,
    /// Each host's interface counters.
    pub links: Vec<LinkCounters>,
    /// The byte balance.
    pub balance: Balance,
    /// Smoothed RTTs (TCP_INFO) of live connections sampled during the run, ms.
    pub tcp_rtt_ms: Vec<f64>,
    /// Seconds to build the network.
    pub setup_secs: f64,
    /// Seconds to remove it.
    pub teardown_secs: f64,
}

/// The host of a run's DHT nodes (`@manifests=dht`): public, uncapped, neither the
/// broadcaster's nor a viewer.
pub const DHT_HOST: &str = "dht";

/// The hosts of a run: the publisher, then every viewer process it may start (reachable, with
/// no NAT, where the transport's nodes serve others: relays), then the DHT's host where the run
/// has one.
pub fn host_specs(spec: &RunSpec, net: &NetPoint) -> Vec<HostSpec> {
    let public = crate::transport::method(spec.transport).public_nodes();
    let dht = spec.variant.dht() && spec.transport == crate::plan::Transport::Swarm;
    std::iter::once(HostSpec::public("publisher"))
        .chain((0..spec.viewer_processes()).map(|i| HostSpec {
            node: format!("viewer-{i}"),
            nat: !public && net.behind_nat(i),
            random_ports: !public && net.behind_symmetric_nat(i),
        }))
        .chain(dht.then(|| HostSpec::public(DHT_HOST)))
        .collect()
}

/// A seed for the emulator's generator from the run's id, so a run's loss and jitter draws are
/// the same every time it is run.
fn seed(id: &str) -> u64 {
    // FNV-1a.
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// What the emulator is told for a run; `None` on the plain network.
pub fn emu_config(spec: &RunSpec, point: &NetPoint, net: &Net) -> Option<EmuConfig> {
    if point.mode != NetMode::Emulated {
        return None;
    }
    let ms = |v: f64| (v * 1e6).round() as u64;
    let hosts = net
        .hosts()
        .iter()
        .map(|h| EmuHost {
            node: h.node.clone(),
            addr: h.public,
            link: if h.node == "publisher" {
                LinkSpec {
                    up: spec.publisher_upload_limit.map(u64::from),
                    down: None,
                }
            } else if h.node == DHT_HOST {
                // DHT nodes in the wild are many hosts: no access link of one home.
                LinkSpec {
                    up: None,
                    down: None,
                }
            } else {
                LinkSpec {
                    up: spec.viewer_upload_limit.map(u64::from),
                    down: spec.viewer_download_limit.map(u64::from),
                }
            },
        })
        .collect();
    let publisher = net.host("publisher")?;
    Some(EmuConfig {
        core_ns: net.core_ns().to_owned(),
        queue_num: 0,
        hosts,
        model: ModelConfig {
            path: PathSpec {
                one_way: ms(point.rtt_ms / 2.0),
                jitter: ms(point.jitter_ms),
                loss: point.loss_pct / 100.0,
            },
            queue: ms(point.queue_ms),
            seed: seed(&spec.id),
            ..ModelConfig::default()
        },
        http_servers: vec![SocketAddrV4::new(publisher.public, HTTP_PORT)],
    })
}

/// The byte balance from the hosts' interface counters and the emulator's drops.
pub fn balance(links: &[LinkCounters], emu: Option<&EmuReport>) -> Balance {
    Balance {
        sent: links.iter().map(|l| l.tx_bytes).sum(),
        received: links.iter().map(|l| l.rx_bytes).sum(),
        emulator_dropped: emu.map_or(0, |e| e.hosts.iter().map(|h| h.dropped_bytes()).sum()),
        nat_dropped: links.iter().map(|l| l.nat_dropped_bytes).sum(),
        to_nats: links.iter().map(|l| l.to_nat_bytes).sum(),
        from_nats: links.iter().map(|l| l.from_nat_bytes).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_by_run_and_stay_put() {
        assert_eq!(seed("s002-n020-swarm-r1"), seed("s002-n020-swarm-r1"));
        assert_ne!(seed("s002-n020-swarm-r1"), seed("s002-n020-swarm-r2"));
    }

    #[test]
    fn the_balance_counts_every_drop() {
        let links = vec![
            LinkCounters {
                node: "a".into(),
                tx_bytes: 1000,
                rx_bytes: 300,
                ..LinkCounters::default()
            },
            LinkCounters {
                node: "b".into(),
                tx_bytes: 500,
                rx_bytes: 900,
                nat_dropped_bytes: 100,
                ..LinkCounters::default()
            },
        ];
        let b = balance(&links, None);
        assert_eq!(b.missing(), 1500 - 1300);
        let mut emu = EmuReport::default();
        emu.hosts.push(swarmcast_netlab::emu::HostWire {
            dropped_loss: swarmcast_netlab::emu::Count {
                packets: 2,
                bytes: 200,
            },
            ..Default::default()
        });
        assert_eq!(balance(&links, Some(&emu)).missing(), 0);
        // A datagram to the host's own public address (60 bytes), ended at its NAT, which
        // answered (88 bytes): still balanced.
        let mut links = links;
        links[1].tx_bytes += 60;
        links[1].rx_bytes += 88;
        links[1].to_nat_bytes = 60;
        links[1].from_nat_bytes = 88;
        assert_eq!(balance(&links, Some(&emu)).missing(), 0);
        links[1].to_nat_bytes = 0;
        assert_eq!(balance(&links, Some(&emu)).missing(), 60);
    }
}
