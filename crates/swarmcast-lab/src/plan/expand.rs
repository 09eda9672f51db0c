//! A sweep expanded into runs ([`plan`]), step by step: its lists checked, the caps resolved
//! and combined with the network points into conditions, the kinds of run (one per swarm
//! variant, one HTTP), then every segment length × audience × condition × repeat × kind, named
//! and grouped.

use super::net::net_points;
use super::{
    range, JoinPattern, Limit, NetPoint, Plan, PlanError, RunSpec, SweepSpec, Transport, Variant,
    MAX_EMULATED_HOSTS, MIN_LIMIT,
};

/// Turns a sweep into runs: for each segment length, each audience, each repeat, one group with
/// one run per transport.
pub fn plan(spec: &SweepSpec) -> Result<Plan, PlanError> {
    check_lists(spec)?;
    let conditions = conditions(spec)?;
    let runs = expand(spec, &kinds(spec), &conditions)?;
    Ok(Plan {
        spec: spec.clone(),
        runs,
    })
}

/// Checks the sweep's lists and scalars: none empty, each value in its range.
fn check_lists(spec: &SweepSpec) -> Result<(), PlanError> {
    if spec.segment_secs.is_empty() {
        return Err(PlanError::Empty("segment-secs"));
    }
    if spec.viewers.is_empty() {
        return Err(PlanError::Empty("viewers"));
    }
    if spec.transports.is_empty() {
        return Err(PlanError::Empty("transports"));
    }
    if spec.variants.is_empty() {
        return Err(PlanError::Empty("variants"));
    }
    if spec.repeats == 0 {
        return Err(range("repeats", 0, "at least 1"));
    }
    for &s in &spec.segment_secs {
        if !(0.5..=600.0).contains(&s) {
            return Err(range("segment-secs", s, "from 0.5 to 600 seconds"));
        }
    }
    for &n in &spec.viewers {
        if !(1..=200).contains(&n) {
            return Err(range("viewers", n, "from 1 to 200"));
        }
    }
    if let Some(d) = spec.duration_secs {
        if !(d > 0.0 && d <= 24.0 * 3600.0) {
            return Err(range("duration", d, "more than 0 and at most a day"));
        }
    }
    match spec.join {
        JoinPattern::All => {}
        JoinPattern::Staggered { every_secs } | JoinPattern::Churn { every_secs } => {
            if !(every_secs > 0.0 && every_secs.is_finite()) {
                return Err(range("join", spec.join, "a positive interval"));
            }
        }
        JoinPattern::Exodus { at_secs, percent } => {
            let valid = at_secs > 0.0 && at_secs.is_finite() && (1..=100).contains(&percent);
            if !valid {
                return Err(range(
                    "join",
                    spec.join,
                    "a positive time and a share from 1 to 100%",
                ));
            }
        }
    }
    if !(1..=16).contains(&spec.fanout) {
        return Err(range("fanout", spec.fanout, "from 1 to 16"));
    }
    if !(spec.back_buffer_secs > 0.0 && spec.back_buffer_secs <= 3600.0) {
        return Err(range(
            "back-buffer",
            spec.back_buffer_secs,
            "more than 0 and at most an hour",
        ));
    }
    if !(spec.playout_buffer_secs > 0.0 && spec.playout_buffer_secs <= 600.0) {
        return Err(range(
            "playout-buffer",
            spec.playout_buffer_secs,
            "more than 0 and at most 600 seconds",
        ));
    }
    if !(0.0..=100.0).contains(&spec.churn_pct) {
        return Err(range(
            "churn",
            spec.churn_pct,
            "a share from 0 to 100% per minute",
        ));
    }
    if spec.churn_pct > 0.0 && spec.join != JoinPattern::All {
        return Err(range(
            "join",
            spec.join,
            "all with --churn (--churn replaces the churn pattern and needs everyone to start together)",
        ));
    }
    let relays = spec.transports.iter().any(|t| {
        matches!(
            t,
            Transport::RelayTree | Transport::RelayResume | Transport::StripedFec
        )
    });
    if relays && spec.net.is_none() {
        return Err(range(
            "transports",
            "relay-tree, relay-resume or striped-fec",
            "an emulated (or plain) network: every relay is a host with an address of its own",
        ));
    }
    Ok(())
}

/// A cap list resolved against the bitrate, each cap with its run-id tag; a cap below
/// [`MIN_LIMIT`] or an empty list is an error naming `field`.
fn caps(
    field: &'static str,
    ls: &[Option<Limit>],
    bitrate: u64,
) -> Result<Vec<(Option<u32>, String)>, PlanError> {
    let limit = |l: Option<Limit>| -> Result<Option<u32>, PlanError> {
        match l.map(|l| l.resolve(bitrate)) {
            Some(b) if b < MIN_LIMIT => Err(range(
                field,
                format!("{b} bytes/s"),
                format!("at least {MIN_LIMIT} bytes/s (librqbit cannot move 16 KiB chunks slower)"),
            )),
            other => Ok(other),
        }
    };
    if ls.is_empty() {
        return Err(PlanError::Empty(field));
    }
    ls.iter().map(|&l| Ok((limit(l)?, limit_tag(l)))).collect()
}

/// One combination of caps and network: publisher upload, viewer upload and viewer download
/// caps, the network point, and the run-id part that names them.
type Condition = (
    Option<u32>,
    Option<u32>,
    Option<u32>,
    Option<NetPoint>,
    String,
);

/// Every combination of caps and network, each named in run ids where its list has more than one
/// value.
fn conditions(spec: &SweepSpec) -> Result<Vec<Condition>, PlanError> {
    let publisher_upload_limit = caps(
        "publisher-upload-limit",
        &spec.publisher_upload_limit,
        spec.bitrate,
    )?;
    let viewer_upload_limit = caps(
        "viewer-upload-limit",
        &spec.viewer_upload_limit,
        spec.bitrate,
    )?;
    let viewer_download_limit = caps(
        "viewer-download-limit",
        &spec.viewer_download_limit,
        spec.bitrate,
    )?;
    let nets = net_points(spec)?;
    let tag = |name: &str, many: bool, value: &str| match many {
        true => format!("-{name}{value}"),
        false => String::new(),
    };
    let mut conditions = Vec::new();
    for pu in &publisher_upload_limit {
        for vu in &viewer_upload_limit {
            for vd in &viewer_download_limit {
                for (net, net_tag) in &nets {
                    let id = tag("pu", publisher_upload_limit.len() > 1, &pu.1)
                        + &tag("vu", viewer_upload_limit.len() > 1, &vu.1)
                        + &tag("vd", viewer_download_limit.len() > 1, &vd.1)
                        + net_tag;
                    conditions.push((pu.0, vu.0, vd.0, *net, id));
                }
            }
        }
    }
    Ok(conditions)
}

/// The runs of one configuration: one per swarm variant, one HTTP run.
fn kinds(spec: &SweepSpec) -> Vec<(Transport, Variant)> {
    let mut transports = spec.transports.clone();
    transports.sort();
    transports.dedup();
    let mut variants = spec.variants.clone();
    variants.dedup();
    transports
        .iter()
        .flat_map(|&t| match t {
            Transport::Swarm => variants.iter().map(|v| (t, v.clone())).collect(),
            Transport::Http
            | Transport::RelayTree
            | Transport::RelayResume
            | Transport::StripedFec => {
                vec![(t, Variant::default())]
            }
        })
        .collect()
}

/// Every segment length × audience × condition × repeat × kind, in that order, grouped: the kinds
/// of one repeat run side by side unless the sweep says otherwise or the network is emulated.
fn expand(
    spec: &SweepSpec,
    kinds: &[(Transport, Variant)],
    conditions: &[Condition],
) -> Result<Vec<RunSpec>, PlanError> {
    // Emulated runs never share the machine.
    let side_by_side = spec.side_by_side && spec.net.is_none();
    let mut runs = Vec::new();
    let mut group = 0;
    for &segment_secs in &spec.segment_secs {
        let duration_secs = spec
            .duration_secs
            .unwrap_or_else(|| (5.0 * segment_secs).max(60.0));
        for &viewers in &spec.viewers {
            for (pu, vu, vd, net, condition) in conditions {
                for repeat in 1..=spec.repeats {
                    for (i, (transport, variant)) in kinds.iter().enumerate() {
                        if i > 0 && !side_by_side {
                            group += 1;
                        }
                        let run = RunSpec {
                            id: run_id(
                                segment_secs,
                                viewers,
                                condition,
                                *transport,
                                variant,
                                repeat,
                            ),
                            group,
                            segment_secs,
                            viewers,
                            transport: *transport,
                            variant: variant.clone(),
                            repeat,
                            duration_secs,
                            bitrate: spec.bitrate,
                            join: spec.join,
                            publisher_upload_limit: *pu,
                            viewer_upload_limit: *vu,
                            viewer_download_limit: *vd,
                            http_fallback: spec.http_fallback,
                            net: *net,
                            fanout: spec.fanout,
                            back_buffer_secs: spec.back_buffer_secs,
                            churn_pct: spec.churn_pct,
                            churn_seed: spec.churn_seed,
                            playout_buffer_secs: spec.playout_buffer_secs,
                        };
                        // The publisher, and a DHT's host where the run has one.
                        let others =
                            1 + usize::from(run.variant.dht() && run.transport == Transport::Swarm);
                        if net.is_some() && others + run.viewer_processes() > MAX_EMULATED_HOSTS {
                            return Err(range(
                                "viewers",
                                viewers,
                                format!(
                                    "at most {} viewer processes on an emulated network (joins \
                                     and churn included{})",
                                    MAX_EMULATED_HOSTS - others,
                                    if others > 1 {
                                        "; a DHT run has a DHT host"
                                    } else {
                                        ""
                                    }
                                ),
                            ));
                        }
                        runs.push(run);
                    }
                    group += 1;
                }
            }
        }
    }
    Ok(runs)
}

/// A run's id: `s002-n005<condition>-swarm[-<variant>]-r1` (sortable, unique in a sweep).
fn run_id(
    segment_secs: f64,
    viewers: usize,
    condition: &str,
    transport: Transport,
    variant: &Variant,
    repeat: u32,
) -> String {
    format!(
        "s{:03}{}-n{viewers:03}{condition}-{}{}-r{repeat}",
        segment_secs.trunc() as u64,
        frac_suffix(segment_secs),
        transport.as_str(),
        match variant.is_default() {
            true => String::new(),
            false => format!("-{}", variant.as_str()),
        }
    )
}

/// `none`, `1.5x` or bytes per second: a cap as run ids name it.
fn limit_tag(l: Option<Limit>) -> String {
    match l {
        None => "none".into(),
        Some(Limit::TimesBitrate(x)) => format!("{x}x"),
        Some(Limit::BytesPerSec(b)) => b.to_string(),
    }
}

/// `p5` for 2.5 s segments, so ids stay unique and sortable.
fn frac_suffix(secs: f64) -> String {
    let ms = ((secs.fract()) * 1000.0).round() as u64;
    if ms == 0 {
        String::new()
    } else {
        format!("p{ms:03}")
    }
}
