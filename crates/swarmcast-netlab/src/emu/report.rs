//! What the emulator reports: wire bytes and packets per host and class, drops, and the lag it
//! added.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::classify::WireBytes;

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// Packets.
    pub packets: u64,
    /// IP bytes.
    pub bytes: u64,
}

impl Count {
    pub(crate) fn add(&mut self, bytes: u32) {
        self.packets += 1;
        self.bytes += u64::from(bytes);
    }
}

/// What crossed one host's access link.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostWire {
    /// The node's name.
    pub node: String,
    /// Its address at the core.
    pub addr: Option<Ipv4Addr>,
    /// What it sent (dropped later or not).
    pub sent: WireBytes,
    /// What it received (delivered).
    pub received: WireBytes,
    /// Its packets its uplink queue dropped.
    pub dropped_up_queue: Count,
    /// Its packets lost on the path.
    pub dropped_loss: Count,
    /// Packets to it that its downlink queue dropped.
    pub dropped_down_queue: Count,
}

impl HostWire {
    /// Every byte the emulator dropped that this host sent (uplink queue, loss) or was sent
    /// (downlink queue).
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_up_queue.bytes + self.dropped_loss.bytes + self.dropped_down_queue.bytes
    }
}

/// What the emulator did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EmuReport {
    /// Per host, in the order configured.
    pub hosts: Vec<HostWire>,
    /// Packets from or to an address that is no host (given their verdict at once).
    pub unknown: Count,
    /// Packets that could not be parsed (accepted, uncounted by class).
    pub malformed: u64,
    /// Sent streams whose payload could not be told from control (their bytes count as control).
    #[serde(default)]
    pub streams_lost: u64,
    /// Most packets held at once.
    pub held_max: usize,
    /// Packets still held when stopped (then dropped by the kernel).
    pub held_at_end: usize,
    /// Packets the kernel dropped because the queue or its socket was full
    /// (`/proc/net/netfilter/nfnetlink_queue`); a valid run has none.
    pub kernel_dropped: u64,
    /// CPU time of the emulator's thread, s.
    pub cpu_secs: f64,
    /// Whether the emulator's thread ran at real-time priority ([`REALTIME_PRIORITY`]).
    #[serde(default)]
    pub realtime: bool,
    /// Per packet delivered, the time from the kernel queueing it to the emulator reading it.
    #[serde(default)]
    pub wake_lag: Lag,
    /// Per packet delivered, the time the emulator added beyond the model's delay: its wake lag
    /// plus how late its verdict came after the model's release time.
    #[serde(default)]
    pub lag: Lag,
    /// Wall time, s.
    pub wall_secs: f64,
}

/// A distribution of delays the emulator added, µs (packets without a kernel timestamp are
/// not in it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lag {
    /// Packets measured.
    pub packets: u64,
    /// Median, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Largest, µs.
    pub max_us: u64,
    /// Share of the packets delayed by more than 1 ms.
    pub over_1ms: f64,
}

impl Lag {
    pub(crate) fn of(h: &hdrhistogram::Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            packets: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            over_1ms: 1.0 - h.count_between(0, 1000) as f64 / h.len() as f64,
        }
    }
}
