//! The flags' value parsers: every duration, rate, port range and list the command line takes
//! is checked here, with its range in the error.

/// Parses a positive, finite number of seconds (the lab's flags: its plan checks their ranges).
pub(crate) fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "expected a positive number of seconds, found {s:?}"
        )),
    }
}

/// Parses seconds from `lo` to `hi` (inclusive; a `lo` of 0 admits 0, any other `lo` is the
/// least). Every duration flag outside the lab has its range here, so `inf`, `1e30` or a
/// negative number is refused with the range, never turned into a panic or an unreadable
/// manifest.
pub(crate) fn secs_in(s: &str, lo: f64, hi: f64) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (lo..=hi).contains(&v) => Ok(v),
        _ => Err(format!("expected seconds from {lo} to {hi}, found {s:?}")),
    }
}

/// A day, in seconds.
const DAY: f64 = 86_400.0;

/// `--segment-secs` outside the lab (`segment`, `publish`, `demo`): 0.1 s to an hour.
pub(crate) fn parse_segment_secs(s: &str) -> Result<f64, String> {
    secs_in(s, 0.1, 3600.0)
}

/// The length of a whole feed or an idle wait (`--synth-secs`, `synth --seconds`,
/// `--idle-timeout`): 0.1 s to a year.
pub(crate) fn parse_feed_secs(s: &str) -> Result<f64, String> {
    secs_in(s, 0.1, 365.0 * DAY)
}

/// `publish --grace`: 0.1 s to a day.
pub(crate) fn parse_grace(s: &str) -> Result<f64, String> {
    secs_in(s, 0.1, DAY)
}

/// `publish --linger`: 0 to a day.
pub(crate) fn parse_linger(s: &str) -> Result<f64, String> {
    secs_in(s, 0.0, DAY)
}

/// `publish --nat-check-timeout`: 0.1 to 60 s.
pub(crate) fn parse_nat_check_timeout(s: &str) -> Result<f64, String> {
    secs_in(s, 0.1, 60.0)
}

/// `watch --delay`, `watch --fallback-margin`: 0 to 600 s.
pub(crate) fn parse_play_secs(s: &str) -> Result<f64, String> {
    secs_in(s, 0.0, 600.0)
}

/// `watch --player`: a command line, split into words (an empty one, or an unclosed quote, is
/// refused).
pub(crate) fn parse_player(s: &str) -> Result<crate::player::PlayerCommand, String> {
    s.parse()
}

/// `demo --stagger`: 0 to an hour.
pub(crate) fn parse_stagger(s: &str) -> Result<f64, String> {
    secs_in(s, 0.0, 3600.0)
}

/// Parses `--punch-ports`: `FIRST-LAST` (inclusive, 1-65535, at least one port), or `off`.
pub(crate) fn parse_punch_ports(s: &str) -> Result<PunchPorts, String> {
    if s == "off" {
        return Ok(PunchPorts(None));
    }
    let err = || {
        format!("expected FIRST-LAST (ports 1-65535, FIRST <= LAST, e.g. 52000-52063) or off, found {s:?}")
    };
    let (first, last) = s.split_once('-').ok_or_else(err)?;
    let first: u16 = first.trim().parse().map_err(|_| err())?;
    let last: u16 = last.trim().parse().map_err(|_| err())?;
    if first == 0 || first > last {
        return Err(err());
    }
    Ok(PunchPorts(Some(first..=last)))
}

/// `--punch-ports`: a port range, or off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PunchPorts(pub(crate) Option<std::ops::RangeInclusive<u16>>);

/// Parses `--super-seed-reveal`: seconds, or `never`.
pub(crate) fn parse_reveal(s: &str) -> Result<std::time::Duration, String> {
    match s {
        "never" => Ok(swarmcast_swarm::REVEAL_NEVER),
        _ => secs_in(s, 0.1, 3600.0)
            .map(std::time::Duration::from_secs_f64)
            .map_err(|_| format!("expected seconds from 0.1 to 3600, or never, found {s:?}")),
    }
}

/// `--late-piece`: seconds, or off.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LatePiece(pub(crate) Option<std::time::Duration>);

/// Parses `--late-piece`: a positive number of seconds, or `off`.
pub(crate) fn parse_late_piece(s: &str) -> Result<LatePiece, String> {
    match s {
        "off" => Ok(LatePiece(None)),
        _ => secs_in(s, 0.1, 60.0)
            .map(|v| LatePiece(Some(std::time::Duration::from_secs_f64(v))))
            .map_err(|_| format!("expected seconds from 0.1 to 60, or off, found {s:?}")),
    }
}

/// Parses `--librqbit-off`: comma-separated names of librqbit changes.
pub(crate) fn parse_librqbit_off(s: &str) -> Result<crate::cli::LibrqbitOff, String> {
    swarmcast_swarm::tweaks::parse(s).map(crate::cli::LibrqbitOff)
}

/// Parses a bitrate in bit/s with an optional `k` or `M` suffix, from
/// [`MIN_BITRATE`](swarmcast_segmenter::synth::MIN_BITRATE) to
/// [`MAX_BITRATE`](swarmcast_segmenter::synth::MAX_BITRATE) (the synthetic feed's range: its
/// buffers grow with the rate).
pub(crate) fn parse_bitrate(s: &str) -> Result<u64, String> {
    use swarmcast_segmenter::synth::{MAX_BITRATE, MIN_BITRATE};
    match swarmcast_swarm::ratelimit::parse_si(s) {
        Some(v) if (MIN_BITRATE as f64..=MAX_BITRATE as f64).contains(&v) => Ok(v.round() as u64),
        _ => Err(format!(
            "expected a bitrate in bit/s from 8k to 1000M, such as 800000, 800k or 2.5M, found {s:?}"
        )),
    }
}

/// A cap as `swarmcast lab` takes it in a list: a [`swarmcast_lab::plan::Limit`], or `none`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Cap(pub(crate) Option<swarmcast_lab::plan::Limit>);

impl std::str::FromStr for Cap {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "none" => Ok(Self(None)),
            other => other.parse().map(|l| Self(Some(l))),
        }
    }
}
