//! `summary.md`: each configuration with the spread over its repeats, swarm beside HTTP, and
//! the consistency checks.

use super::*;

/// What the network columns mean (written under the introduction when a run was on a network).
pub(super) const NET_NOTE: &str = "On a network: pub wire / seg byte is the IP bytes the publisher's \
hosts (the publisher, trackers, mirrors) sent / bytes of the segments fetched, the sum of payload \
(piece data and segment bodies on the wire: unlike publisher copies, which counts what the process \
wrote, bytes that never left a socket buffer are not in it), control (manifests, tracker answers, \
BitTorrent messages other than piece data, HTTP headers) and TCP/IP (headers and retransmitted \
payload); dropped at its uplink is the part of it that its own uplink queue dropped (sent into the \
access link, never across it); control / viewer / seg is a viewer's new payload on the wire, sent and received, less \
the verified payload it received and the piece data it sent, in bytes per segment played; viewer overhead is the viewers' control / their new payload on the wire; \
TCP/IP share is the viewers' TCP/IP bytes / their IP bytes; TCP rtt is the median smoothed RTT \
of the connections sampled; emulator cpu is its thread's CPU time / wall time; idle is the \
machine's mean idle CPU.";

/// What the lag column means (after [`NET_NOTE`], when a run measured it).
pub(super) const LAG_NOTE: &str =
    " Emulator lag p99 is the 99th percentile of the delay the emulator \
added to a packet beyond the model's (from the kernel queueing it to its verdict), in ms.";

/// What every section of the summary reads: the runs, grouped by configuration, and which of the
/// optional columns the tables have.
struct Summary<'a> {
    runs: &'a [RunSummary],
    groups: BTreeMap<ConfigKey, Vec<&'a RunSummary>>,
    varies: Varies,
    any_net: bool,
    any_cpu: bool,
    any_lag: bool,
}

/// The Markdown report.
pub fn markdown(runs: &[RunSummary]) -> String {
    let s = Summary::of(runs);
    let mut out = s.introduction();
    out.push_str(&s.configurations());
    out.push_str(&s.side_by_side());
    out.push_str(&s.swarm_against_http());
    out.push_str(&s.variants());
    out.push_str("\n## Consistency\n\n");
    consistency(&mut out, runs);
    out
}

/// Which of the main table's optional columns some run has a figure for: a column nobody has
/// stays out, so reports of runs recorded before it keep their shape.
struct SomeRuns {
    /// Segments skipped before a viewer played its first (`passed_over`).
    passed_over: bool,
    /// HTTP fallbacks the swarm beat.
    superseded: bool,
    /// HTTP fallbacks refused.
    refused: bool,
}

impl<'a> Summary<'a> {
    /// The runs' groups and which optional columns they need.
    fn of(runs: &'a [RunSummary]) -> Self {
        Self {
            runs,
            groups: by_config(runs),
            varies: Varies::of(runs),
            any_net: runs.iter().any(|r| r.net.is_some()),
            any_cpu: runs.iter().any(|r| !r.idle_mean.is_nan()),
            any_lag: runs.iter().any(|r| !r.emulator_lag_p99_ms.is_nan()),
        }
    }

    /// The title, what the runs had in common, what the columns mean, and which runs saturated
    /// the machine.
    fn introduction(&self) -> String {
        let runs = self.runs;
        let mut out = String::new();
        let joins: std::collections::BTreeSet<&str> =
            runs.iter().map(|r| r.join.as_str()).collect();
        let caps: std::collections::BTreeSet<u32> = runs.iter().map(|r| r.publisher_cap).collect();
        let bitrates: std::collections::BTreeSet<u64> = runs.iter().map(|r| r.bitrate).collect();
        let _ = writeln!(out, "# swarmcast lab results\n");
        let _ = writeln!(
            out,
            "{} runs; bitrate {}; join {}; publisher upload cap {}. Each cell is the mean over the \
             configuration's runs, with (min-max) when they differ. Times in ms; setup is added -> first \
             verified piece (HTTP: request -> first verified piece); copies is publisher bytes / bytes of \
             the segments fetched.\n",
            runs.len(),
            list(bitrates.iter().map(|b| format!("{:.0} kbit/s", *b as f64 / 1000.0))),
            list(joins.iter().map(|j| j.to_string())),
            list(caps.iter().map(|c| if *c == 0 {
                "none".to_string()
            } else {
                format!("{c} B/s")
            }))
        );
        if self.any_net {
            let lag_note = if self.any_lag { LAG_NOTE } else { "" };
            let _ = writeln!(out, "{NET_NOTE}{lag_note}\n");
        } else if self.any_cpu {
            let _ = writeln!(out, "idle is the machine's mean idle CPU.\n");
        }
        let saturated: Vec<&RunSummary> = runs.iter().filter(|r| r.saturated).collect();
        if !saturated.is_empty() {
            let _ = writeln!(
                out,
                "⚠ The machine was saturated (under 10% idle CPU on average, or under 5% for more than \
                 a quarter of the run) during {} of {} runs: {}. Their figures measure the machine, not \
                 the protocol; their rows are marked ⚠ saturated.\n",
                saturated.len(),
                runs.len(),
                list(saturated.iter().map(|r| format!("`{}`", r.id)))
            );
        }
        out
    }

    /// The columns every table starts with: what names the configuration.
    fn condition_cols(t: &mut Table) {
        t.num("segment s");
        t.num("viewers");
    }

    /// The configuration's columns that only some results have (caps where runs differ in
    /// them, the network where a run was on one), after any kind column.
    fn condition_extra_cols(&self, t: &mut Table) {
        if self.varies.caps {
            t.text("caps");
        }
        if self.any_net {
            t.text("network");
        }
    }

    /// A row's cells for [`Self::condition_extra_cols`].
    fn condition_extra(&self, r: &RunSummary) -> Vec<String> {
        let mut cells = Vec::new();
        if self.varies.caps {
            cells.push(caps_label(condition(r).caps));
        }
        if self.any_net {
            cells.push(net_label(r).to_owned());
        }
        cells
    }

    /// The first two cells of a row: the segment length (marked where one of `runs` saturated
    /// the machine) and the audience.
    fn condition_cells(c: &Condition, runs: &[&RunSummary]) -> Vec<String> {
        vec![
            mark_saturated(format!("{}", c.segment_ms as f64 / 1000.0), runs),
            c.viewers.to_string(),
        ]
    }

    /// The main table: a row per configuration and kind, every figure with its spread.
    fn configurations(&self) -> String {
        let some = SomeRuns {
            passed_over: self.runs.iter().any(|r| r.passed_over > 0),
            superseded: self.runs.iter().any(|r| r.fallbacks_superseded > 0),
            refused: self.runs.iter().any(|r| r.fallbacks_refused > 0),
        };
        let mut t = Table::default();
        Self::condition_cols(&mut t);
        t.text("transport");
        self.condition_extra_cols(&mut t);
        for c in [
            "runs",
            "publisher copies",
            "copies / viewer",
            "from peers",
            "fetched / needed",
            "setup median",
            "setup p95",
            "setup / segment",
            "complete median",
            "stalls",
            "stall ms",
            "skips",
        ] {
            t.num(c);
        }
        if some.passed_over {
            t.num("skipped before playing");
        }
        for c in ["missed", "fallbacks"] {
            t.num(c);
        }
        if some.superseded {
            t.num("fallbacks the swarm beat");
        }
        if some.refused {
            t.num("fallbacks refused");
        }
        for c in ["failed dials / seg", "startup", "behind live"] {
            t.num(c);
        }
        if self.any_net {
            for c in [
                "pub wire / seg byte",
                "payload",
                "control",
                "TCP/IP",
                "dropped at its uplink",
                "control / viewer / seg",
                "viewer overhead",
                "TCP/IP share",
                "TCP rtt",
                "emulator cpu",
            ] {
                t.num(c);
            }
            if self.any_lag {
                t.num("emulator lag p99");
            }
        }
        if self.any_cpu {
            t.num("idle");
        }
        t.text("consistent");
        for ((c, kind), rs) in &self.groups {
            t.row(self.configuration_row(c, kind, rs, &some));
        }
        t.render()
    }

    /// One row of [`Self::configurations`]: the runs `rs` of configuration `c` and `kind`.
    fn configuration_row(
        &self,
        c: &Condition,
        kind: &str,
        rs: &[&RunSummary],
        some: &SomeRuns,
    ) -> Vec<String> {
        let consistent = rs.iter().filter(|r| r.consistent()).count();
        let mut cells = Self::condition_cells(c, rs);
        cells.push(kind.to_owned());
        cells.extend(self.condition_extra(rs[0]));
        cells.extend([
            rs.len().to_string(),
            spread(rs, |r| r.publisher_copies, 2),
            spread(rs, |r| r.publisher_per_viewer, 2),
            pct(spread(rs, |r| 100.0 * r.peer_share, 1)),
            spread(rs, |r| r.duplicate_ratio, 3),
            spread(rs, |r| r.setup_median_ms, 1),
            spread(rs, |r| r.setup_p95_ms, 1),
            pct(spread(rs, |r| 100.0 * r.setup_fraction, 3)),
            spread(rs, |r| r.complete_median_ms, 0),
            spread(rs, |r| r.stalls as f64, 1),
            spread(rs, |r| r.stall_ms, 0),
            spread(rs, |r| r.skips as f64, 1),
        ]);
        if some.passed_over {
            cells.push(spread(rs, |r| r.passed_over as f64, 1));
        }
        cells.extend([
            spread(rs, |r| r.missed as f64, 1),
            spread(rs, |r| r.fallbacks as f64, 1),
        ]);
        if some.superseded {
            cells.push(spread(rs, |r| r.fallbacks_superseded as f64, 1));
        }
        if some.refused {
            cells.push(spread(rs, |r| r.fallbacks_refused as f64, 1));
        }
        cells.extend([
            spread(rs, |r| r.failed_dials_per_segment, 2),
            spread(rs, |r| r.startup_median_ms, 0),
            spread(rs, |r| r.behind_live_median_ms, 0),
        ]);
        if self.any_net {
            cells.extend(self.network_cells(rs));
        }
        if self.any_cpu {
            cells.push(pct(spread(rs, |r| 100.0 * r.idle_mean, 1)));
        }
        cells.push(format!("{consistent}/{}", rs.len()));
        cells
    }

    /// The network figures of a row of [`Self::configurations`] (with the emulator's lag when a
    /// run measured it).
    fn network_cells(&self, rs: &[&RunSummary]) -> Vec<String> {
        let mut cells = vec![
            spread(rs, |r| r.publisher_wire_per_byte, 3),
            spread(rs, |r| r.publisher_payload_per_byte, 3),
            spread(rs, |r| r.publisher_control_per_byte, 3),
            spread(rs, |r| r.publisher_tcpip_per_byte, 3),
            spread(rs, |r| r.publisher_queue_dropped_per_byte, 3),
            spread(rs, |r| r.control_bytes_per_viewer_segment, 0),
            pct(spread(rs, |r| 100.0 * r.viewer_overhead_share, 2)),
            pct(spread(rs, |r| 100.0 * r.viewer_tcpip_share, 1)),
            spread(rs, |r| r.tcp_rtt_median_ms, 1),
            pct(spread(rs, |r| 100.0 * r.emulator_cpu_share, 1)),
        ];
        if self.any_lag {
            cells.push(spread(rs, |r| r.emulator_lag_p99_ms, 2));
        }
        cells
    }

    /// The "Transports side by side" section: the figures every transport shares, a row per
    /// configuration and transport (empty when no run has them).
    fn side_by_side(&self) -> String {
        let mut t = Table::default();
        Self::condition_cols(&mut t);
        t.text("transport");
        self.condition_extra_cols(&mut t);
        for c in [
            "runs",
            "publisher upload / stream",
            "from peers",
            "stalls / node",
            "stall time",
            "bytes lost",
            "startup",
            "glass to glass",
            "g2g p95",
            "behind live",
            "wire / payload",
            "never played",
        ] {
            t.num(c);
        }
        let mut buffers = std::collections::BTreeSet::new();
        let mut churn = std::collections::BTreeSet::new();
        for ((c, kind), rs) in &self.groups {
            let rs: Vec<&RunSummary> = rs
                .iter()
                .filter(|r| r.playout_buffer_secs > 0.0)
                .copied()
                .collect();
            if rs.is_empty() {
                continue;
            }
            for r in &rs {
                buffers.insert(r.playout_buffer_secs.to_string());
                churn.insert(r.churn_pct.to_string());
            }
            let mut cells = Self::condition_cells(c, &rs);
            cells.push(kind.clone());
            cells.extend(self.condition_extra(rs[0]));
            cells.extend([
                rs.len().to_string(),
                spread(&rs, |r| r.publisher_upload_per_stream, 2),
                pct(spread(&rs, |r| 100.0 * r.share_from_peers, 1)),
                spread(
                    &rs,
                    |r| r.playout_stalls as f64 / r.viewers.max(1) as f64,
                    2,
                ),
                pct(spread(&rs, |r| 100.0 * r.playout_stall_share, 2)),
                pct(spread(&rs, |r| 100.0 * r.lost_share, 3)),
                spread(&rs, |r| r.playout_startup_median_ms, 0),
                spread(&rs, |r| r.glass_median_ms, 0),
                spread(&rs, |r| r.glass_p95_ms, 0),
                spread(&rs, |r| r.behind_live_median_ms, 0),
                spread(&rs, |r| r.wire_per_payload, 3),
                spread(&rs, |r| r.never_played as f64, 1),
            ]);
            t.row(cells);
        }
        if t.is_empty() {
            return String::new();
        }
        format!(
            "\n## Transports side by side\n\nThe figures every transport shares (docs/experiments.md, \
             Method): a simulated player with a {} s buffer over each node's arrival curve; churn {} % \
             of the nodes a minute. publisher upload / stream is the IP bytes the publisher's host sent \
             (with the source Icecast or root relay on it) / bytes of the published stream; from peers \
             is the payload nodes received from anyone but the publisher's host; stalls / node and stall \
             time (over media played) are the simulated player's; bytes lost are published bytes in a \
             node's range it never played; startup is node start -> playout start; glass to glass is \
             the publisher's input -> the simulated player (median and p95 over every second of media \
             played); behind live is the segment transports' published -> played; wire / payload is the \
             IP bytes every host sent / payload bytes the nodes received. Each cell is the mean over \
             the runs (count in runs), with (min-max) when they differ.\n\n{}",
            list(buffers.into_iter()),
            list(churn.into_iter()),
            t.render()
        )
    }

    /// The "Swarm against HTTP" section: swarm beside HTTP, per configuration that has both
    /// (empty when none has).
    fn swarm_against_http(&self) -> String {
        let mut pairs = Table::default();
        Self::condition_cols(&mut pairs);
        self.condition_extra_cols(&mut pairs);
        for c in [
            "publisher copies, swarm",
            "publisher copies, HTTP",
            "publisher bytes swarm / HTTP",
            "complete median ms, swarm / HTTP",
            "stalls, swarm / HTTP",
        ] {
            pairs.num(c);
        }
        for ((c, kind), swarm) in &self.groups {
            if kind != "swarm" {
                continue;
            }
            let Some(http) = self.groups.get(&(c.clone(), "http".to_owned())) else {
                continue;
            };
            let both: Vec<&RunSummary> = swarm.iter().chain(http).copied().collect();
            let mut cells = Self::condition_cells(c, &both);
            cells.extend(self.condition_extra(swarm[0]));
            cells.extend([
                cell(mean(swarm, |r| r.publisher_copies), 2),
                cell(mean(http, |r| r.publisher_copies), 2),
                cell(
                    mean(swarm, |r| r.publisher_bytes as f64)
                        / mean(http, |r| r.publisher_bytes as f64),
                    2,
                ),
                format!(
                    "{} / {}",
                    cell(mean(swarm, |r| r.complete_median_ms), 0),
                    cell(mean(http, |r| r.complete_median_ms), 0)
                ),
                format!(
                    "{} / {}",
                    cell(mean(swarm, |r| r.stalls as f64), 1),
                    cell(mean(http, |r| r.stalls as f64), 1)
                ),
            ]);
            pairs.row(cells);
        }
        if pairs.is_empty() {
            return String::new();
        }
        format!("\n## Swarm against HTTP\n\n{}", pairs.render())
    }

    /// The librqbit section: each variant of the patch series beside the patched swarm (on
    /// against off), per configuration that has both (empty when none has).
    fn variants(&self) -> String {
        let mut variants = Table::default();
        Self::condition_cols(&mut variants);
        self.condition_extra_cols(&mut variants);
        variants.text("variant");
        for c in [
            "publisher copies",
            "from peers %",
            "fetched / needed",
            "setup median ms",
            "stalls",
            "missed",
            "failed dials / segment",
        ] {
            variants.num(c);
        }
        for ((c, kind), off) in &self.groups {
            let Some(variant) = kind.strip_prefix("swarm-") else {
                continue;
            };
            let Some(on) = self.groups.get(&(c.clone(), "swarm".to_owned())) else {
                continue;
            };
            let pair = |f: fn(&RunSummary) -> f64, digits: usize| {
                format!(
                    "{} / {}",
                    cell(mean(on, f), digits),
                    cell(mean(off, f), digits)
                )
            };
            let both: Vec<&RunSummary> = on.iter().chain(off).copied().collect();
            let mut cells = Self::condition_cells(c, &both);
            cells.extend(self.condition_extra(on[0]));
            cells.extend([
                variant.to_owned(),
                pair(|r| r.publisher_copies, 2),
                pair(|r| 100.0 * r.peer_share, 1),
                pair(|r| r.duplicate_ratio, 3),
                pair(|r| r.setup_median_ms, 1),
                pair(|r| r.stalls as f64, 1),
                pair(|r| r.missed as f64, 1),
                pair(|r| r.failed_dials_per_segment, 2),
            ]);
            variants.row(cells);
        }
        if variants.is_empty() {
            return String::new();
        }
        format!(
            "\n## librqbit changes: patched against the variant\n\n{}",
            variants.render()
        )
    }
}

/// The consistency section: the checks every run passed, or each failure. Runs on a network have
/// more checks than runs on loopback; a check only some runs have says how many.
pub(super) fn consistency(out: &mut String, runs: &[RunSummary]) {
    let failed: Vec<&RunSummary> = runs.iter().filter(|r| !r.consistent()).collect();
    if !failed.is_empty() {
        let _ = writeln!(
            out,
            "{} of {} runs fail a check:\n",
            failed.len(),
            runs.len()
        );
        for r in failed {
            for c in r.checks.iter().filter(|c| !c.ok) {
                let _ = writeln!(out, "- `{}`: {}: {}", r.id, c.name, c.detail);
            }
        }
        return;
    }
    // Every check's name in the order runs list them, with the runs that have it.
    let mut names: Vec<(&str, usize)> = Vec::new();
    for c in runs.iter().flat_map(|r| &r.checks) {
        match names.iter_mut().find(|(n, _)| *n == c.name) {
            Some((_, k)) => *k += 1,
            None => names.push((c.name, 1)),
        }
    }
    let counts: std::collections::BTreeSet<usize> = runs.iter().map(|r| r.checks.len()).collect();
    if counts.len() <= 1 {
        let checks = runs.first().map_or(0, |r| r.checks.len());
        let _ = writeln!(out, "All {} runs pass all {checks} checks:\n", runs.len());
        for c in runs
            .first()
            .map(|r| r.checks.as_slice())
            .unwrap_or_default()
        {
            let _ = writeln!(out, "- {}", c.name);
        }
        return;
    }
    let counts: Vec<String> = counts.iter().map(usize::to_string).collect();
    let _ = writeln!(
        out,
        "All {} runs pass all their checks ({} each):\n",
        runs.len(),
        counts.join(" or ")
    );
    for (name, k) in names {
        if k == runs.len() {
            let _ = writeln!(out, "- {name}");
        } else {
            let _ = writeln!(out, "- {name} ({k} of {} runs)", runs.len());
        }
    }
}

/// The items, comma separated.
pub(super) fn list(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}
