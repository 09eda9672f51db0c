//! What separates one configuration from another in the tables and plots ([`Condition`]: segment
//! length and audience, as [`crate::plan::RunSpec::config_key`], and also the caps and the network
//! point, so runs at different RTTs or caps are never averaged together), how a configuration is
//! named where the results have several, the saturation marker, and a Markdown table builder.

use std::fmt::Write as _;

use crate::plan::NetMode;
use crate::results::RunSummary;

/// A configuration without its transport, variant and repeat.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Condition {
    /// Segment length, ms.
    pub(super) segment_ms: u64,
    /// Viewers.
    pub(super) viewers: usize,
    /// The publisher's upload, each viewer's upload and download caps, bytes/s (0: none).
    pub(super) caps: [u32; 3],
    /// Loopback (None), else the mode (emulated first) and rtt, loss, jitter, NAT share and
    /// queue, in thousandths (rows sort by these).
    pub(super) net: Option<(u8, [i64; 5])>,
}

/// The grouping key of a run: [`crate::plan::RunSpec::config_key`] extended with the caps and the
/// network point.
pub(super) fn condition(r: &RunSummary) -> Condition {
    let milli = |v: f64| (v * 1000.0).round() as i64;
    Condition {
        segment_ms: (r.segment_secs * 1000.0).round() as u64,
        viewers: r.viewers,
        caps: [r.publisher_cap, r.viewer_upload_cap, r.viewer_download_cap],
        net: r.net_point.map(|p| {
            (
                match p.mode {
                    NetMode::Emulated => 0,
                    NetMode::Plain => 1,
                },
                [
                    milli(p.rtt_ms),
                    milli(p.loss_pct),
                    milli(p.jitter_ms),
                    milli(p.nat),
                    milli(p.queue_ms),
                ],
            )
        }),
    }
}

/// `no cap`, or the caps set: `cap 187500 B/s` (the publisher's), `viewer up 62500 B/s`, `viewer
/// down 250000 B/s`.
pub(super) fn caps_label(caps: [u32; 3]) -> String {
    let parts: Vec<String> = ["cap", "viewer up", "viewer down"]
        .iter()
        .zip(caps)
        .filter(|(_, c)| *c > 0)
        .map(|(name, c)| format!("{name} {c} B/s"))
        .collect();
    if parts.is_empty() {
        "no cap".into()
    } else {
        parts.join(", ")
    }
}

/// A run's network as the tables write it (`loopback` without one).
pub(super) fn net_label(r: &RunSummary) -> &str {
    r.net.as_deref().unwrap_or("loopback")
}

/// Which parts of [`Condition`] beyond segment length and audience differ between some runs:
/// only those name a configuration (so results of one cap on loopback keep their labels).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Varies {
    /// Runs differ in caps.
    pub(super) caps: bool,
    /// Runs differ in network.
    pub(super) net: bool,
}

impl Varies {
    /// What differs between `runs`.
    pub(super) fn of<'a>(runs: impl IntoIterator<Item = &'a RunSummary>) -> Self {
        let mut caps = std::collections::BTreeSet::new();
        let mut nets = std::collections::BTreeSet::new();
        for r in runs {
            let c = condition(r);
            caps.insert(c.caps);
            nets.insert(c.net);
        }
        Self {
            caps: caps.len() > 1,
            net: nets.len() > 1,
        }
    }

    /// `, cap 187500 B/s, rtt 50 ms, …`: what names `r`'s configuration beyond segment length
    /// and audience (empty when nothing differs).
    pub(super) fn suffix(&self, r: &RunSummary) -> String {
        let mut s = String::new();
        if self.caps {
            let c = condition(r).caps;
            let _ = write!(s, ", {}", caps_label(c));
        }
        if self.net {
            let _ = write!(s, ", {}", net_label(r));
        }
        s
    }
}

/// `cell ⚠ saturated` when every run was saturated, `cell ⚠ saturated (k of n)` when some were.
pub(super) fn mark_saturated(cell: String, runs: &[&RunSummary]) -> String {
    let k = runs.iter().filter(|r| r.saturated).count();
    match k {
        0 => cell,
        k if k == runs.len() => format!("{cell} ⚠ saturated"),
        k => format!("{cell} ⚠ saturated ({k} of {})", runs.len()),
    }
}

/// A Markdown table: columns with their alignment, then rows of cells.
#[derive(Default)]
pub(super) struct Table {
    head: Vec<(&'static str, bool)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Adds a right-aligned column (numbers).
    pub(super) fn num(&mut self, name: &'static str) {
        self.head.push((name, true));
    }

    /// Adds a left-aligned column (text).
    pub(super) fn text(&mut self, name: &'static str) {
        self.head.push((name, false));
    }

    /// Adds a row (one cell per column).
    pub(super) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.head.len());
        self.rows.push(cells);
    }

    /// True when it has no rows.
    pub(super) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The header, the alignment line and the rows.
    pub(super) fn render(&self) -> String {
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            format!("| {} |\n", cells.collect::<Vec<_>>().join(" | "))
        };
        let mut out = line(&mut self.head.iter().map(|h| h.0));
        out.push('|');
        for (_, right) in &self.head {
            out.push_str(if *right { "---:|" } else { "---|" });
        }
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(&mut r.iter().map(String::as_str)));
        }
        out
    }
}
