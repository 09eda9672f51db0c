//! `swarmcast lab`'s flags.

use std::path::PathBuf;

use clap::Args;

/// Arguments of `swarmcast lab`.
#[derive(Debug, Args)]
pub(crate) struct LabArgs {
    /// Segment lengths to sweep, seconds (comma-separated).
    #[arg(long, env = "SWARMCAST_SEGMENT_SECS", value_delimiter = ',', default_value = "2,10,60", value_parser = crate::parse::parse_secs)]
    pub(crate) segment_secs: Vec<f64>,
    /// Audience sizes to sweep (comma-separated).
    #[arg(
        long,
        env = "SWARMCAST_VIEWERS",
        value_delimiter = ',',
        default_value = "1,5,20"
    )]
    pub(crate) viewers: Vec<usize>,
    /// Transports (comma-separated): `swarm`, `http` (the baseline), `relay-tree` (Icecast
    /// relays in a tree of fan-out --fanout, the seed's method (a)) and `relay-resume`
    /// (`swarmcast relay` with a back buffer, method (d)) and `striped-fec` (4 RaptorQ
    /// substreams down disjoint trees of `swarmcast stripe-node`s, method (c)). The relay
    /// transports need --net emulated or plain.
    #[arg(
        long,
        env = "SWARMCAST_TRANSPORTS",
        value_delimiter = ',',
        default_value = "swarm,http"
    )]
    pub(crate) transports: Vec<swarmcast_lab::plan::Transport>,
    /// Variants of swarmcast's librqbit patch series for the swarm runs (comma-separated):
    /// `patched` (every change on), `upstream` (every change off), `no-<change>[+<change>...]`
    /// or `only-<change>[+...]`; changes: have, wake, random, window, cancel, nodelay, superseed,
    /// steal, pace, slots, nopex, urgent, ban, lowat, keep, dhtdone.
    /// A `librqbit-` prefix (or `librqbit` alone, for patched) runs the publisher with `--seeder
    /// librqbit` (`upstream` implies it); `wire-` names the default seeder explicitly. Options
    /// follow, each after an `@`: `@reveal=SECS|never` (the publisher's `--super-seed-reveal`),
    /// `@manifests=swarm|dht|http` (`--swarm-manifests` on both sides; also the stream found on
    /// a DHT host of the run's own, without HTTP manifests or tracker; or neither), `@push=N` and
    /// `@vpush=N` (the publisher's and the viewers' `--manifest-push`), `@carry=on` (viewers
    /// with `--carried-peers`; without it they run with `--no-carried-peers`, although `watch`
    /// carries by default), e.g. `patched@manifests=swarm@push=8`.
    #[arg(
        long,
        env = "SWARMCAST_VARIANTS",
        value_delimiter = ',',
        default_value = "patched"
    )]
    pub(crate) variants: Vec<swarmcast_lab::plan::Variant>,
    /// Runs of every configuration.
    #[arg(long, env = "SWARMCAST_REPEATS", default_value_t = 1)]
    pub(crate) repeats: u32,
    /// Bitrate of the synthetic feed (k and M suffixes allowed; 8k to 1000M).
    #[arg(long, env = "SWARMCAST_BITRATE", default_value = "1M", value_parser = crate::parse::parse_bitrate)]
    pub(crate) bitrate: u64,
    /// Seconds of media per run [default: max(5 segments, 60 s)].
    #[arg(long, env = "SWARMCAST_DURATION", value_parser = crate::parse::parse_secs)]
    pub(crate) duration: Option<f64>,
    /// Join pattern: all at once, staggered (one every --join-every), churn (every
    /// --join-every the longest-running viewer leaves and a new one joins), or exodus (all at
    /// once; --join-every seconds in, --exodus-percent of them are killed at the same moment).
    #[arg(long, env = "SWARMCAST_JOIN", value_enum, default_value_t = JoinArg::All)]
    pub(crate) join: JoinArg,
    /// Seconds between joins (staggered), between leave-and-joins (churn), or before the
    /// exodus.
    #[arg(long, env = "SWARMCAST_JOIN_EVERY", default_value_t = 2.0, value_parser = crate::parse::parse_secs)]
    pub(crate) join_every: f64,
    /// With --join exodus: the share of the audience killed at once, percent (1 to 100).
    #[arg(long, env = "SWARMCAST_EXODUS_PERCENT", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) exodus_percent: u32,
    /// The publisher's upload caps to sweep (comma-separated): bytes/s (k, M suffixes), a multiple
    /// of the bitrate (`1.5x`), or `none`. At least 32768 bytes/s. Applies to the swarm and to
    /// HTTP alike; on loopback the processes limit their payload, on an emulated network the
    /// link limits wire bytes.
    #[arg(
        long,
        env = "SWARMCAST_PUBLISHER_UPLOAD_LIMIT",
        value_delimiter = ',',
        default_value = "none"
    )]
    pub(crate) publisher_upload_limit: Vec<crate::parse::Cap>,
    /// Each viewer's upload caps to sweep (as --publisher-upload-limit).
    #[arg(
        long,
        env = "SWARMCAST_VIEWER_UPLOAD_LIMIT",
        value_delimiter = ',',
        default_value = "none"
    )]
    pub(crate) viewer_upload_limit: Vec<crate::parse::Cap>,
    /// Each viewer's download caps to sweep (as --publisher-upload-limit).
    #[arg(
        long,
        env = "SWARMCAST_VIEWER_DOWNLOAD_LIMIT",
        value_delimiter = ',',
        default_value = "none"
    )]
    pub(crate) viewer_download_limit: Vec<crate::parse::Cap>,
    /// Where nodes run: `loopback` (processes on 127.0.0.1), `emulated` (each node in its own
    /// network namespace behind an emulated access link: caps, round trip, jitter, loss, NAT;
    /// needs root), or `plain` (the same namespaces with plain kernel forwarding: the control).
    #[arg(long, env = "SWARMCAST_NET", value_enum, default_value_t = NetArg::Loopback)]
    pub(crate) net: NetArg,
    /// Round-trip times to sweep, ms (comma-separated; half each way). Needs --net emulated.
    #[arg(long, env = "SWARMCAST_RTT", value_delimiter = ',')]
    pub(crate) rtt: Option<Vec<f64>>,
    /// Jitter per direction to sweep, ms: each packet's delay varies uniformly by up to this
    /// much, without reordering a path. Needs --net emulated.
    #[arg(long, env = "SWARMCAST_JITTER", value_delimiter = ',')]
    pub(crate) jitter: Option<Vec<f64>>,
    /// Loss per direction to sweep, percent (end to end). Needs --net emulated.
    #[arg(long, env = "SWARMCAST_LOSS", value_delimiter = ',')]
    pub(crate) loss: Option<Vec<f64>>,
    /// Shares of viewers behind NAT to sweep, 0 to 1 (each behind its own NAT: it can dial out,
    /// nobody can dial in). Needs --net emulated (or plain).
    #[arg(long, env = "SWARMCAST_NAT", value_delimiter = ',')]
    pub(crate) nat: Option<Vec<f64>>,
    /// The queue behind each emulated cap, ms at the cap's rate (drop-tail).
    #[arg(long, env = "SWARMCAST_QUEUE_MS", default_value_t = swarmcast_lab::plan::DEFAULT_QUEUE_MS)]
    pub(crate) queue_ms: f64,
    /// Share of the viewers behind NAT whose NAT is symmetric, 0 to 1: a random port for every
    /// connection (as carrier-grade NATs do), so hole punching fails through it; the others keep
    /// the host's port (docs/netlab.md). Not swept.
    #[arg(long, env = "SWARMCAST_SYMMETRIC_NAT", default_value_t = 0.0)]
    pub(crate) symmetric_nat: f64,
    /// On an emulated network, also give each capped process its own limiter at this share of
    /// its link's cap (--upload-limit, --download-limit), as a user who told swarmcast their
    /// upload would. Default: only the links limit.
    #[arg(long, env = "SWARMCAST_SELF_LIMIT")]
    pub(crate) self_limit: Option<f64>,
    /// Calibrate the emulated network instead of running a sweep: round trip, loss and
    /// throughput between two emulated hosts, against what was asked (--rtt, --loss, and the
    /// first --viewer-upload-limit as the cap).
    #[arg(long)]
    pub(crate) net_check: bool,
    /// Remove every namespace (and its processes) that any emulated run left behind, and exit.
    #[arg(long)]
    pub(crate) cleanup: bool,
    /// Relay transports: each relay's children, at most (the seed's "a couple more peers").
    #[arg(long, env = "SWARMCAST_FANOUT", default_value_t = swarmcast_lab::plan::DEFAULT_FANOUT)]
    pub(crate) fanout: usize,
    /// relay-resume: each relay's back buffer, seconds.
    #[arg(long, env = "SWARMCAST_BACK_BUFFER", default_value_t = swarmcast_lab::plan::DEFAULT_BACK_BUFFER_SECS, value_parser = crate::parse::parse_secs)]
    pub(crate) back_buffer: f64,
    /// This share of the nodes (viewers, relays) leaves per minute, percent, each replaced at
    /// once by a new node: chosen at random from --churn-seed, the same schedule for every
    /// transport; a departure kills every process of the node's host (SIGKILL). Needs --join all.
    #[arg(long, env = "SWARMCAST_CHURN", default_value_t = 0.0)]
    pub(crate) churn: f64,
    /// The seed of the --churn schedule.
    #[arg(long, env = "SWARMCAST_CHURN_SEED", default_value_t = 1)]
    pub(crate) churn_seed: u64,
    /// The simulated player's buffer for the figures every transport shares (stalls, startup,
    /// glass to glass), seconds: it starts, and resumes after a stall, once this much media is
    /// there.
    #[arg(long, env = "SWARMCAST_PLAYOUT_BUFFER", default_value_t = swarmcast_lab::plan::DEFAULT_PLAYOUT_BUFFER_SECS, value_parser = crate::parse::parse_secs)]
    pub(crate) playout_buffer: f64,
    /// Swarm viewers never fetch late segments over HTTP.
    #[arg(long, env = "SWARMCAST_NO_HTTP_FALLBACK")]
    pub(crate) no_http_fallback: bool,
    /// Run one run at a time, instead of the swarm and HTTP runs of a configuration side by side.
    #[arg(long, env = "SWARMCAST_ONE_AT_A_TIME")]
    pub(crate) one_at_a_time: bool,
    /// Results directory [default: lab-results/<unix time>].
    #[arg(long, short, env = "SWARMCAST_LAB_OUT")]
    pub(crate) out: Option<PathBuf>,
    /// Keep segment files and viewer outputs (large) in the results.
    #[arg(long, env = "SWARMCAST_KEEP_MEDIA")]
    pub(crate) keep_media: bool,
    /// Print the plan and its estimated time, and run nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `--net`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum NetArg {
    /// Every process on 127.0.0.1.
    Loopback,
    /// Network namespaces behind emulated links.
    Emulated,
    /// Network namespaces, plain forwarding (the control).
    Plain,
}

/// `--join`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum JoinArg {
    /// Every viewer starts with the publisher.
    All,
    /// One viewer every --join-every seconds.
    Staggered,
    /// Viewers leave and join at a set rate.
    Churn,
    /// A share of the viewers is killed at once mid-stream.
    Exodus,
}
