//! What a run on the emulated (or plain) network adds to its summary: the publisher's bytes on
//! the wire split into payload, control and TCP/IP, the viewers' control bytes, the delay TCP
//! saw, the emulator's CPU, and the checks that the hosts', the NATs' and the emulator's byte
//! counts agree.
//!
//! Every wire figure comes from the emulator's count of what crossed each host's link
//! ([`WireBytes`]): `ip_bytes = tcpip + new payload`, where new payload is the TCP payload a
//! connection had not carried before, by class (BitTorrent, manifest, tracker, HTTP), plus the
//! payload of packets that are not TCP. **Payload** is what the emulator found in the sending
//! host's streams: piece data of BitTorrent `piece` messages and bodies of HTTP segment answers
//! (a process's own count of bytes it wrote would include bytes that sat in a socket buffer and
//! never left); a received packet counts as it was classified when sent, so a byte is new at both
//! ends of its first transmission, and every retransmission is TCP/IP at both ends. The rest of
//! the new payload is **control**: BitTorrent messages other than piece data, manifests, tracker
//! announces and answers, HTTP headers, and anything that is not TCP.

use std::collections::BTreeMap;

use swarmcast_netlab::emu::classify::WireBytes;

use super::{quantile, ratio, Check};
use crate::netrun::NetOutcome;
use crate::plan::{NetMode, NetPoint, DEFAULT_QUEUE_MS};

/// Whether a host is one the broadcaster runs (the publisher, a tracker, a mirror): their bytes
/// are the publisher's.
pub(crate) fn is_broadcaster(node: &str) -> bool {
    node == "publisher" || node.starts_with("tracker") || node.starts_with("mirror")
}

/// A figure as the network description writes it: at most 3 decimals, no trailing zeros.
fn short(v: f64) -> String {
    format!("{}", (v * 1000.0).round() / 1000.0)
}

/// `rtt 50 ms, loss 1%, jitter 0 ms, NAT 60%` (and `, queue 200 ms` when the queue behind caps is
/// not the default, `, processes limited to 90% of their caps` with a self-limit); `plain` for
/// the plain network (`plain, NAT 60%` with NAT).
pub(crate) fn describe(p: &NetPoint) -> String {
    let nat = short(100.0 * p.nat);
    match p.mode {
        NetMode::Plain if p.nat > 0.0 => format!("plain, NAT {nat}%"),
        NetMode::Plain => "plain".into(),
        NetMode::Emulated => {
            let mut s = format!(
                "rtt {} ms, loss {}%, jitter {} ms, NAT {nat}%",
                short(p.rtt_ms),
                short(p.loss_pct),
                short(p.jitter_ms)
            );
            if p.queue_ms != DEFAULT_QUEUE_MS {
                s.push_str(&format!(", queue {} ms", short(p.queue_ms)));
            }
            if p.symmetric_nat > 0.0 {
                s.push_str(&format!(
                    " ({}% of them symmetric)",
                    short(100.0 * p.symmetric_nat)
                ));
            }
            if let Some(f) = p.self_limit {
                s.push_str(&format!(
                    ", processes limited to {}% of their caps",
                    short(100.0 * f)
                ));
            }
            s
        }
    }
}

/// New payload of every class, TCP or not: everything but headers and retransmissions.
fn new_payload(w: &WireBytes) -> u64 {
    w.ip_bytes.saturating_sub(w.tcpip)
}

/// The network figures of [`super::RunSummary`] (NaN where the run has none).
#[derive(Clone, Copy, Debug)]
pub(super) struct NetFigures {
    pub(super) publisher_wire_per_byte: f64,
    pub(super) publisher_payload_per_byte: f64,
    pub(super) publisher_control_per_byte: f64,
    pub(super) publisher_tcpip_per_byte: f64,
    pub(super) publisher_queue_dropped_per_byte: f64,
    pub(super) control_bytes_per_viewer_segment: f64,
    pub(super) viewer_overhead_share: f64,
    pub(super) viewer_tcpip_share: f64,
    pub(super) tcp_rtt_median_ms: f64,
    pub(super) emulator_cpu_share: f64,
    pub(super) emulator_lag_p99_ms: f64,
}

impl NetFigures {
    /// A run without a network.
    pub(super) fn none() -> Self {
        Self {
            publisher_wire_per_byte: f64::NAN,
            publisher_payload_per_byte: f64::NAN,
            publisher_control_per_byte: f64::NAN,
            publisher_tcpip_per_byte: f64::NAN,
            publisher_queue_dropped_per_byte: f64::NAN,
            control_bytes_per_viewer_segment: f64::NAN,
            viewer_overhead_share: f64::NAN,
            viewer_tcpip_share: f64::NAN,
            tcp_rtt_median_ms: f64::NAN,
            emulator_cpu_share: f64::NAN,
            emulator_lag_p99_ms: f64::NAN,
        }
    }
}

/// The figures of a run on a network. `fetched_bytes` is the bytes of the segments any viewer fetched (the denominator
/// of `publisher_copies`), `played_by` each viewer's segments played by node. Without the
/// emulator (the plain network) only the TCP RTT is known.
pub(super) fn figures(
    net: &NetOutcome,
    fetched_bytes: u64,
    played_by: &BTreeMap<String, u64>,
) -> NetFigures {
    let mut f = NetFigures::none();
    f.tcp_rtt_median_ms = quantile(&net.tcp_rtt_ms, 0.5);
    let Some(emu) = &net.emulator else {
        return f;
    };
    f.emulator_cpu_share = ratio(emu.cpu_secs, emu.wall_secs);
    if emu.lag.packets > 0 {
        f.emulator_lag_p99_ms = emu.lag.p99_us as f64 / 1000.0;
    }

    let sent = emu
        .hosts
        .iter()
        .filter(|h| is_broadcaster(&h.node))
        .fold(WireBytes::default(), |a, h| a.plus(&h.sent));
    let per_byte = |v: f64| ratio(v, fetched_bytes as f64);
    // Piece data and segment bodies on the wire.
    let payload = sent.payload as f64;
    f.publisher_wire_per_byte = per_byte(sent.ip_bytes as f64);
    f.publisher_payload_per_byte = per_byte(payload);
    f.publisher_control_per_byte = per_byte(new_payload(&sent) as f64 - payload);
    f.publisher_tcpip_per_byte = per_byte(sent.tcpip as f64);
    let queue_dropped: u64 = emu
        .hosts
        .iter()
        .filter(|h| is_broadcaster(&h.node))
        .map(|h| h.dropped_up_queue.bytes)
        .sum();
    f.publisher_queue_dropped_per_byte = per_byte(queue_dropped as f64);

    let (mut control, mut new, mut tcpip, mut ip) = (0.0, 0u64, 0u64, 0u64);
    let mut per_segment = Vec::new();
    for h in emu.hosts.iter().filter(|h| !is_broadcaster(&h.node)) {
        let Some(&played) = played_by.get(&h.node) else {
            continue;
        };
        let wire = new_payload(&h.sent) + new_payload(&h.received);
        let c = wire as f64 - (h.sent.payload + h.received.payload) as f64;
        control += c;
        new += wire;
        tcpip += h.sent.tcpip + h.received.tcpip;
        ip += h.sent.ip_bytes + h.received.ip_bytes;
        if played > 0 {
            per_segment.push(c / played as f64);
        }
    }
    f.control_bytes_per_viewer_segment = ratio(per_segment.iter().sum(), per_segment.len() as f64);
    f.viewer_overhead_share = ratio(control, new as f64);
    f.viewer_tcpip_share = ratio(tcpip as f64, ip as f64);
    f
}

/// Names of the checks a run on a network adds, in order.
pub(crate) const BALANCE: &str =
    "bytes sent by all hosts = bytes received + bytes the emulator and NATs dropped";
/// See [`BALANCE`].
pub(crate) const PER_HOST: &str = "the emulator counted what crossed each host's interface";
/// See [`BALANCE`].
pub(crate) const KERNEL: &str = "the kernel handed every packet to the emulator";
/// See [`BALANCE`].
pub(crate) const STREAMS: &str =
    "the emulator followed every stream a host sent (payload told from control)";

/// See [`BALANCE`].
pub(crate) const LAG: &str =
    "the emulator added at most 2 ms to 99% of the packets it delivered, and 10 ms to 99.9%";
/// The bounds of [`LAG`], µs. 2 ms is 4% of the base point's 50 ms round trip; 10 ms on one packet
/// in a thousand is a burst that came faster than the emulator forwards (about 85,000 packets a
/// second). Past them, the machine, not the model, shapes the traffic.
pub(crate) const MAX_LAG_P99_US: u64 = 2_000;
/// See [`MAX_LAG_P99_US`].
pub(crate) const MAX_LAG_P999_US: u64 = 10_000;

/// The checks of a run on a network: the byte balance, and with the emulator, its count of each
/// host against the host's interface, and the kernel's queue. For a `continuous` transport the
/// emulator following every stream is not required: it tells payload from control in BitTorrent
/// and HTTP segment answers only, and the shared figures count a continuous stream's payload from
/// the nodes' records.
pub(super) fn checks(net: &NetOutcome, continuous: bool) -> Vec<Check> {
    let b = &net.balance;
    let missing = b.missing();
    let mut checks = vec![Check {
        name: BALANCE,
        ok: missing == 0,
        detail: format!(
            "{} sent, {} received, {} dropped by the emulator, {} by NATs; {} sent to NATs \
             themselves, {} sent by them{}",
            b.sent,
            b.received,
            b.emulator_dropped,
            b.nat_dropped,
            b.to_nats,
            b.from_nats,
            match missing {
                0 => String::new(),
                m if m > 0 => format!("; {m} missing"),
                m => format!("; {} more received than sent", -m),
            }
        ),
    }];
    let Some(emu) = &net.emulator else {
        return checks;
    };
    let mut differ = Vec::new();
    let mut bytes = 0u64;
    for h in &emu.hosts {
        bytes += h.sent.ip_bytes;
        match net.links.iter().find(|l| l.node == h.node) {
            // What the host sent to its NAT itself never reached the emulator.
            Some(l) if l.tx_bytes.checked_sub(l.to_nat_bytes) == Some(h.sent.ip_bytes) => {}
            Some(l) => differ.push(format!(
                "{}: the emulator counted {} sent, its interface {}{}",
                h.node,
                h.sent.ip_bytes,
                l.tx_bytes,
                match l.to_nat_bytes {
                    0 => String::new(),
                    n => format!(" ({n} of them to its NAT itself)"),
                }
            )),
            None => differ.push(format!("{}: no interface counters", h.node)),
        }
    }
    checks.push(Check {
        name: PER_HOST,
        ok: differ.is_empty(),
        detail: if differ.is_empty() {
            format!("{} hosts, {bytes} bytes sent", emu.hosts.len())
        } else {
            differ.into_iter().take(3).collect::<Vec<_>>().join("; ")
        },
    });
    checks.push(Check {
        name: KERNEL,
        ok: emu.kernel_dropped == 0 && emu.held_at_end == 0,
        detail: format!(
            "{} dropped by the kernel's queue, {} held when the emulator stopped",
            emu.kernel_dropped, emu.held_at_end
        ),
    });
    checks.push(Check {
        name: STREAMS,
        ok: emu.streams_lost == 0 || continuous,
        detail: match continuous && emu.streams_lost > 0 {
            true => format!(
                "{} streams could not be followed (not required for a continuous stream, whose \
                 payload the nodes count)",
                emu.streams_lost
            ),
            false => format!("{} streams could not be followed", emu.streams_lost),
        },
    });
    // Runs recorded before the emulator measured its lag have no such check.
    let lag = &emu.lag;
    if lag.packets > 0 {
        checks.push(Check {
            name: LAG,
            ok: lag.p99_us <= MAX_LAG_P99_US && lag.p999_us <= MAX_LAG_P999_US,
            detail: format!(
                "of {} packets: median {} µs, 99% within {} µs, 99.9% within {} µs, most {} µs{}",
                lag.packets,
                lag.p50_us,
                lag.p99_us,
                lag.p999_us,
                lag.max_us,
                if emu.realtime {
                    ""
                } else {
                    " (the emulator ran at normal priority)"
                }
            ),
        });
    }
    checks
}
