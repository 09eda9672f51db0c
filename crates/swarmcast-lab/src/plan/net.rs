//! Emulated networks in a sweep: the network parameters to sweep ([`NetSweep`]), one run's
//! network ([`NetPoint`], who sits behind NAT), and the expansion of a sweep into its network
//! points with their run-id suffixes, each parameter checked.

use serde::{Deserialize, Serialize};

use super::{range, PlanError, SweepSpec};

/// How nodes are connected, when not on loopback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetMode {
    /// Namespaces, access links and paths emulated (caps, delay, jitter, loss), NAT.
    Emulated,
    /// The same namespaces and router with plain kernel forwarding and no emulator: the control
    /// that measures the emulator's own cost (no caps, delay, jitter or loss; NAT allowed).
    Plain,
}

/// The network parameters to sweep (every combination).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetSweep {
    /// Emulated, or the plain control.
    pub mode: NetMode,
    /// Round-trip times between any two hosts, ms (half each way).
    pub rtt_ms: Vec<f64>,
    /// Jitter per direction, ms (uniform, never reordering a path).
    pub jitter_ms: Vec<f64>,
    /// Loss per direction, percent.
    pub loss_pct: Vec<f64>,
    /// Shares of viewers behind NAT, 0 to 1.
    pub nat: Vec<f64>,
    /// The queue behind each cap, as ms at the cap's rate.
    pub queue_ms: f64,
    /// Each capped process also limits itself to this share of its link's cap (`None`: only
    /// the link limits it).
    #[serde(default)]
    pub self_limit: Option<f64>,
    /// Share of the viewers behind NAT whose NAT is symmetric (a random port for every
    /// connection, as carrier-grade NATs do): hole punching fails through it. Not swept.
    #[serde(default)]
    pub symmetric_nat: f64,
}

impl Default for NetSweep {
    fn default() -> Self {
        Self {
            mode: NetMode::Emulated,
            rtt_ms: vec![0.0],
            jitter_ms: vec![0.0],
            loss_pct: vec![0.0],
            nat: vec![0.0],
            queue_ms: DEFAULT_QUEUE_MS,
            self_limit: None,
            symmetric_nat: 0.0,
        }
    }
}

/// The default queue behind an emulated cap, ms at the cap's rate.
pub const DEFAULT_QUEUE_MS: f64 = 100.0;

/// One run's network.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetPoint {
    /// Emulated, or the plain control.
    pub mode: NetMode,
    /// Round trip, ms.
    pub rtt_ms: f64,
    /// Jitter per direction, ms.
    pub jitter_ms: f64,
    /// Loss per direction, percent.
    pub loss_pct: f64,
    /// Share of viewers behind NAT.
    pub nat: f64,
    /// Queue behind each cap, ms.
    pub queue_ms: f64,
    /// Each capped process also limits itself to this share of its link's cap, as a user who
    /// told swarmcast their upload would (`None`: only the link limits it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_limit: Option<f64>,
    /// Share of the viewers behind NAT whose NAT is symmetric (random ports).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub symmetric_nat: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Whether position `i` falls in `share`, spread evenly (⌊(i+1)·share⌋ > ⌊i·share⌋).
fn spread(i: usize, share: f64) -> bool {
    ((i + 1) as f64 * share + 1e-9).floor() > (i as f64 * share + 1e-9).floor()
}

impl NetPoint {
    /// Whether viewer `i` of `n` sits behind NAT: the share is spread evenly over the joining
    /// order (viewer i is behind NAT when ⌊(i+1)·share⌋ > ⌊i·share⌋).
    pub fn behind_nat(&self, i: usize) -> bool {
        spread(i, self.nat)
    }

    /// Whether viewer `i` sits behind a symmetric NAT: the symmetric share is spread evenly, the
    /// same way, over the viewers behind NAT in joining order.
    pub fn behind_symmetric_nat(&self, i: usize) -> bool {
        self.behind_nat(i)
            && spread(
                (0..i).filter(|&j| self.behind_nat(j)).count(),
                self.symmetric_nat,
            )
    }
}

/// The network points of a sweep (one `None` on loopback), each with its run-id suffix.
pub(super) fn net_points(spec: &SweepSpec) -> Result<Vec<(Option<NetPoint>, String)>, PlanError> {
    let Some(n) = &spec.net else {
        return Ok(vec![(None, String::new())]);
    };
    check_net(spec, n)?;
    Ok(points(n))
}

/// Checks the network lists of `spec` (its `net`, `n`): none empty, each value in its range, and
/// nothing shaped on the plain network.
fn check_net(spec: &SweepSpec, n: &NetSweep) -> Result<(), PlanError> {
    for (field, list) in [
        ("rtt", &n.rtt_ms),
        ("jitter", &n.jitter_ms),
        ("loss", &n.loss_pct),
        ("nat", &n.nat),
    ] {
        if list.is_empty() {
            return Err(PlanError::Empty(field));
        }
    }
    let check = |field, v: f64, lo: f64, hi: f64, what: &str| {
        if v.is_finite() && (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(range(field, v, what))
        }
    };
    for &v in &n.rtt_ms {
        check("rtt", v, 0.0, 2000.0, "from 0 to 2000 ms")?;
    }
    for &v in &n.jitter_ms {
        check("jitter", v, 0.0, 500.0, "from 0 to 500 ms")?;
    }
    for &v in &n.loss_pct {
        check("loss", v, 0.0, 50.0, "from 0 to 50 percent")?;
    }
    for &v in &n.nat {
        check("nat", v, 0.0, 1.0, "a share from 0 to 1")?;
    }
    check("queue-ms", n.queue_ms, 1.0, 10_000.0, "from 1 to 10000 ms")?;
    check(
        "symmetric-nat",
        n.symmetric_nat,
        0.0,
        1.0,
        "a share of the viewers behind NAT from 0 to 1",
    )?;
    if let Some(f) = n.self_limit {
        check(
            "self-limit",
            f,
            0.05,
            1.0,
            "a share of the cap from 0.05 to 1",
        )?;
    }
    if n.mode == NetMode::Plain {
        let shaped = n
            .rtt_ms
            .iter()
            .chain(&n.jitter_ms)
            .chain(&n.loss_pct)
            .any(|&v| v != 0.0)
            || [
                &spec.publisher_upload_limit,
                &spec.viewer_upload_limit,
                &spec.viewer_download_limit,
            ]
            .iter()
            .any(|l| l.iter().any(Option::is_some));
        if shaped {
            return Err(range(
                "net",
                "plain",
                "the plain network has no emulator: caps, --rtt, --jitter and --loss need --net emulated",
            ));
        }
    }
    Ok(())
}

/// The cartesian product of the network lists, each point with its run-id suffix.
fn points(n: &NetSweep) -> Vec<(Option<NetPoint>, String)> {
    let fmt = |v: f64| format!("{v}");
    let mut out = Vec::new();
    for &rtt_ms in &n.rtt_ms {
        for &jitter_ms in &n.jitter_ms {
            for &loss_pct in &n.loss_pct {
                for &nat in &n.nat {
                    let tag = |name: &str, list: &[f64], v: f64| match list.len() > 1 {
                        true => format!("-{name}{}", fmt(v)),
                        false => String::new(),
                    };
                    out.push((
                        Some(NetPoint {
                            mode: n.mode,
                            rtt_ms,
                            jitter_ms,
                            loss_pct,
                            nat,
                            queue_ms: n.queue_ms,
                            self_limit: n.self_limit,
                            symmetric_nat: n.symmetric_nat,
                        }),
                        tag("rtt", &n.rtt_ms, rtt_ms)
                            + &tag("j", &n.jitter_ms, jitter_ms)
                            + &tag("l", &n.loss_pct, loss_pct)
                            + &tag("nat", &n.nat, nat),
                    ));
                }
            }
        }
    }
    out
}
