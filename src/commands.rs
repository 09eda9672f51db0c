//! Glue for the verbs that need no library of their own: files and HTTP in, core, text out.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use swarmcast_core::keys::keyfile;
use swarmcast_core::{StreamLink, StreamSecret};
use swarmcast_swarm::ratelimit::check_rate;
use tokio_util::sync::CancellationToken;

pub(crate) fn keygen(out: &Path) -> Result<()> {
    let secret = StreamSecret::generate().context("cannot read the system's random source")?;
    keyfile::write_new(out, &secret)?;
    eprintln!(
        "wrote secret key to {} (mode 0600); keep it private",
        out.display()
    );
    outln!("{}", secret.public());
    Ok(())
}

pub(crate) fn torrent(
    file: &Path,
    piece_length: Option<u64>,
    trackers: Vec<String>,
    out: Option<&Path>,
) -> Result<()> {
    let (out, torrent) =
        swarmcast_publisher::segment_file::write_torrent(file, piece_length, trackers, out)?;
    eprintln!(
        "wrote {} ({} pieces of {} bytes)",
        out.display(),
        torrent.info().piece_count(),
        torrent.info().piece_length
    );
    outln!("{}", torrent.info_hash());
    outln!("{}", torrent.magnet());
    Ok(())
}

pub(crate) async fn inspect(
    target: &str,
    key: Option<&str>,
    cancel: &CancellationToken,
) -> Result<()> {
    use swarmcast_viewer::inspect::{self, Signature};
    let found = inspect::inspect(target, key, cancel).await?;
    out!("{}", found.document);
    match found.signature {
        Signature::None { pinned: false } => Ok(()),
        Signature::None { pinned: true } => {
            bail!("{target} is a .torrent, not a manifest: there is no signature to verify")
        }
        Signature::Pinned(key, verdict) => {
            verdict.with_context(|| format!("manifest refused for stream key {key}"))?;
            outln!("  signature      valid for the pinned key");
            outln!("  (sequence order is checked by viewers, which remember the last manifest they accepted)");
            Ok(())
        }
        Signature::SelfSigned => {
            outln!("  signature      valid for the key the manifest names (not pinned: pass --key to verify)");
            Ok(())
        }
        Signature::Invalid(named) => {
            outln!("  signature      INVALID for the key the manifest names");
            bail!("{target}: the signature does not verify under the key it names ({named})")
        }
    }
}

fn ticks(secs: f64) -> u64 {
    (secs * 90_000.0).round() as u64
}

pub(crate) async fn segment(
    args: crate::cli::SegmentArgs,
    cancel: CancellationToken,
) -> Result<()> {
    use swarmcast_segmenter::source::{Input, SegmentConfig};
    use swarmcast_segmenter::verbs::{self, Feed};
    let config = SegmentConfig::new(
        args.out.clone(),
        swarmcast_segmenter::CutterConfig {
            target: ticks(args.segment_secs),
            first_number: args.first_number,
            first_discontinuity: false,
        },
        args.feed.format(),
    );
    let watching = args.watch_dir.is_some();
    let feed = match (args.watch_dir, args.input) {
        (Some(dir), _) => Feed::WatchDir(dir),
        (None, Some(path)) => Feed::Stream(Input::File {
            path,
            follow: args.feed.follow(),
        }),
        (None, None) => Feed::Stream(Input::Stdin),
    };
    let summary = verbs::segment(feed, config, cancel, |s| {
        let m = &s.meta;
        outln!(
            "segment {:08} start={:.3} duration={:.3} size={}{}{} path={}",
            m.number,
            m.media_start as f64 / 90_000.0,
            m.duration as f64 / 90_000.0,
            m.size,
            if m.discontinuity {
                " discontinuity"
            } else {
                ""
            },
            if m.forced { " forced" } else { "" },
            s.path.display()
        );
    })
    .await?;
    eprintln!("{summary}");
    if watching {
        eprintln!(
            "{} files out of order, {} unusable",
            summary.files_out_of_order, summary.files_unusable
        );
    }
    Ok(())
}

pub(crate) async fn synth(args: crate::cli::SynthArgs, cancel: CancellationToken) -> Result<()> {
    let synth = swarmcast_segmenter::synth::Synth::new(args.bitrate, args.start_pts)?;
    eprintln!(
        "synthetic feed: {} bit/s, keyframe every {} frames ({:.3} s)",
        synth.bitrate(),
        synth.gop_frames(),
        synth.loop_duration() as f64 / 90_000.0
    );
    let out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = if args.out.as_os_str() == "-" {
        Box::new(tokio::io::stdout())
    } else {
        Box::new(
            tokio::fs::File::create(&args.out)
                .await
                .with_context(|| format!("cannot create {}", args.out.display()))?,
        )
    };
    let duration = args.seconds.map(ticks);
    swarmcast_segmenter::verbs::write_synth(synth, args.realtime, duration, out, cancel)
        .await
        .context("writing the synthetic feed")
}

pub(crate) async fn publish(
    args: crate::cli::PublishArgs,
    shutdown: swarmcast_tasks::Shutdown,
) -> Result<()> {
    use swarmcast_publisher::{FeedInput, PublishConfig};
    swarmcast_swarm::tweaks::set_off(&args.librqbit_off.0);
    let input = if args.synth {
        FeedInput::Synth {
            bitrate: args.bitrate,
            duration: args.synth_secs.map(ticks),
        }
    } else if let Some(dir) = args.watch_dir {
        FeedInput::WatchDir(dir)
    } else if let Some(path) = args.input {
        FeedInput::File {
            path,
            follow: args.feed.follow(),
        }
    } else {
        FeedInput::Stdin
    };
    let mut config = PublishConfig::new(input);
    config.format = args.feed.format();
    config.key = args.key;
    config.data_dir = args.data_dir;
    config.listen = args.listen;
    config.public_addr = args.public_addr;
    config.http = args.http;
    config.public_url = args.public_url;
    config.mirror_urls = args.mirror_urls;
    config.mirror_dir = args.mirror_dir;
    config.target = ticks(args.segment_secs);
    config.window = args.window;
    config.grace = args.grace.map(std::time::Duration::from_secs_f64);
    config.linger = args.linger.map(std::time::Duration::from_secs_f64);
    config.keep_segments = args.keep_segments;
    config.trackers = args.trackers;
    config.embedded_tracker = !args.no_embedded_tracker;
    config.swarm_manifests = args.swarm_manifests;
    config.manifest_push = usize::from(args.manifest_push);
    config.http_manifests = !args.no_http_manifests;
    config.dht = args.dht.then(|| args.dht_args.options());
    config.tracker_whitelist = args.tracker_whitelist.map(|file| {
        use swarmcast_publisher::whitelist::{Reload, WhitelistConfig};
        WhitelistConfig::new(
            file,
            match (args.tracker_reload_pid, args.tracker_reload_pidfile) {
                (Some(pid), _) => Some(Reload::Pid(pid)),
                (None, Some(path)) => Some(Reload::PidFile(path)),
                (None, None) => None,
            },
        )
    });
    config.nat_check = !args.no_nat_check;
    config.nat_check_timeout = std::time::Duration::from_secs_f64(args.nat_check_timeout);
    config.spare_reachable = !args.list_reachable_to_reachable;
    config.punch_ports = args.punch_ports.0;
    config.fallback_slots = args.fallback_slots;
    config.tracker_interval = args.tracker_interval;
    config.tracker_min_interval = args.tracker_min_interval;
    config.piece_length = args
        .piece_length
        .map(swarmcast_core::torrent::check_piece_length)
        .transpose()?;
    if let Some(limit) = args.upload_limit {
        check_rate("upload-limit", limit).map_err(anyhow::Error::msg)?;
    }
    config.upload_limit = args.upload_limit;
    config.super_seed_reveal = args.super_seed_reveal;
    config.late_piece = args.late_piece.0;
    config.peer_conns_per_address = args.peer_conns_per_address;
    if args.http_max_conns == Some(0) {
        bail!(
            "--http-max-conns 0: expected at least 1 (leave it out for what the file limit allows)"
        );
    }
    config.http_max_connections = args.http_max_conns;
    config.http_conns_per_address = args.http_conns_per_address;
    config.seeder = match args.seeder {
        crate::cli::SeederArg::Librqbit => swarmcast_publisher::SeederKind::Librqbit,
        crate::cli::SeederArg::Wire => swarmcast_publisher::SeederKind::Wire,
    };
    config.super_seed = swarmcast_swarm::tweaks::super_seeding(&args.librqbit_off.0);
    config.metrics_out = args.metrics_out;
    config.node = args.node;
    config.withhold_segment = args.withhold_segment;
    config.fail_segment = args.fail_segment;
    config.icecast = args.icecast;
    config.relay_source = args.relay_source;
    config.fanout = args.fanout;
    config.stripes = args
        .stripe_source
        .map(|source_url| swarmcast_publisher::StripeOutput {
            substreams: args.substreams,
            source_url,
            fanout: args.stripe_fanout.unwrap_or(u32::from(args.substreams) + 1),
            source_fanout: args.stripe_source_fanout,
        });

    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<swarmcast_publisher::Ready>();
    let printer = async move {
        if let Ok(ready) = ready_rx.await {
            eprintln!(
                "serving http://{}/ (status page), peers on {}",
                ready.http, ready.peer
            );
            // The link is for whoever reads it; a closed stdout does not end the stream.
            let _ =
                std::io::Write::write_fmt(&mut std::io::stdout(), format_args!("{}\n", ready.link));
        }
    };
    // The printer ends when the publisher sends its address, or drops the sender unused.
    let (summary, ()) = tokio::join!(
        swarmcast_publisher::run(config, shutdown, Some(ready_tx)),
        printer
    );
    eprintln!("{}", summary?);
    Ok(())
}

pub(crate) async fn watch(args: crate::cli::WatchArgs, cancel: CancellationToken) -> Result<()> {
    use swarmcast_viewer::{SinkConfig, WatchConfig};
    swarmcast_swarm::tweaks::set_off(&args.librqbit_off.0);
    if args.urgent_first && args.upload_limit.is_none() {
        bail!("--urgent-first orders uploads under --upload-limit, and no upload limit was given (set one a little under the uplink)");
    }
    let link: StreamLink = args.link.parse().context("invalid stream link")?;
    let mut config = WatchConfig::new(link);
    config.sink = match (args.http_out, args.out.as_os_str() == "-") {
        (Some(addr), _) => SinkConfig::Http(addr),
        (None, true) => SinkConfig::Stdout,
        (None, false) => SinkConfig::File {
            path: args.out.clone(),
            overwrite: args.overwrite,
        },
    };
    config.listen = args.listen;
    config.schedule.prefetch = args.prefetch.max(1);
    config.schedule.delay_ms = args.delay.map(|d| (d.max(0.0) * 1000.0) as u64);
    config.schedule.from_start = args.from_start;
    config.schedule.http_fallback = !args.no_http_fallback;
    config.schedule.fallback_margin_ms = (args.fallback_margin.max(0.0) * 1000.0) as u64;
    config.data_dir = args.data_dir;
    config.keep_segments = args.keep_segments;
    config.metrics_out = args.metrics_out;
    config.node = args.node;
    if let Some(limit) = args.upload_limit {
        check_rate("upload-limit", limit).map_err(anyhow::Error::msg)?;
    }
    if let Some(limit) = args.download_limit {
        check_rate("download-limit", limit).map_err(anyhow::Error::msg)?;
    }
    config.upload_limit = args.upload_limit;
    config.download_limit = args.download_limit;
    config.transport = args.transport.into();
    config.manifest_deltas = !args.no_manifest_deltas;
    config.peer_limit = args.peer_limit.map(usize::from);
    config.urgent_first = args.urgent_first;
    config.punch_ports = args.punch_ports.0;
    config.hls_js = args.hls_js;
    config.metrics_addr = args.metrics_addr;
    config.swarm_manifests = args.swarm_manifests;
    config.manifest_push = usize::from(args.manifest_push);
    config.carry_peers = !args.no_carried_peers;
    config.dht =
        (args.dht || !args.dht_args.dht_bootstrap.is_empty()).then(|| args.dht_args.options());
    // The player first: a command that cannot start stops everything before it starts, and
    // from here on the viewer's stdout is the player's stdin.
    let mut player = match &args.player {
        Some(cmd) => Some(crate::player::Player::start(cmd)?),
        None => None,
    };
    let status_line = !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<swarmcast_viewer::WatchReady>();
    let printer = async move {
        let ready = ready_rx.await.ok()?;
        if let Some(http) = ready.http {
            eprintln!("playing at http://{http}/ (open it in mpv, VLC or ffplay; HLS at http://{http}/live.m3u8, a page at http://{http}/watch)");
        } else if let Some(metrics) = ready.metrics {
            eprintln!("metrics at http://{metrics}/metrics");
        }
        status_line.then(|| crate::status::StatusLine::start(ready.live))
    };
    let run = async {
        tokio::join!(
            swarmcast_viewer::watch(config, cancel.clone(), Some(ready_tx)),
            printer
        )
    };
    tokio::pin!(run);
    let (summary, status) = match player.as_mut() {
        Some(player) => tokio::select! {
            r = &mut run => r,
            () = cancel.cancelled() => {
                player.interrupt();
                run.await
            }
        },
        None => run.await,
    };
    // Off the screen before the summary (or the error) is printed.
    if let Some(status) = status {
        status.clear().await;
    }
    // On an error the player is dropped: its input closed, it is killed.
    eprintln!("{}", summary?);
    if let Some(player) = player {
        eprintln!("{}", player.finish(cancel.is_cancelled()).await?);
    }
    Ok(())
}

pub(crate) async fn relay(args: crate::cli::RelayArgs, cancel: CancellationToken) -> Result<()> {
    use swarmcast_relay::resume::{node::DirectoryConfig, RelayConfig};
    let link: StreamLink = args.link.parse().context("invalid stream link (--link)")?;
    let mut config = RelayConfig::new(link, args.listen);
    config.back_buffer = std::time::Duration::from_secs_f64(args.back_buffer);
    config.parent = args
        .parent
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    config.directory = args.directory.map(|url| DirectoryConfig {
        url,
        fanout: args.fanout,
    });
    config.node = args.node;
    config.out = args.out;
    config.metrics_out = args.metrics_out;
    config.max_children = args.fanout as usize;
    let summary = swarmcast_relay::resume::run(config, cancel).await?;
    eprintln!("{summary}");
    Ok(())
}

pub(crate) async fn stripe_node(
    args: crate::cli::StripeNodeArgs,
    cancel: CancellationToken,
) -> Result<()> {
    use swarmcast_relay::stripe::node::{run, StripeNodeConfig};
    let link: StreamLink = args.link.parse().context("invalid stream link (--link)")?;
    let config = StripeNodeConfig {
        key: link.key,
        directory: args.directory.trim_end_matches('/').to_owned(),
        node: args.node,
        listen: args.listen,
        max_children: args.fanout as usize,
        out: args.out,
        metrics_out: args.metrics_out,
        give_up: Duration::from_secs_f64(args.give_up),
        forge_every: args.forge_every,
    };
    let s = run(config, None, cancel).await?;
    eprintln!(
        "stripe node (home substream {}): played {} bytes in {} segments, {} lost, {} forged \
         symbols refused, {} surplus symbols, {} parent connections, {:.1} ms decoding, {} bytes \
         received, {} sent, {} of {} symbols lost",
        s.home,
        s.played,
        s.segments,
        s.lost_segments,
        s.forged,
        s.surplus,
        s.connections,
        s.decode_time.as_secs_f64() * 1000.0,
        s.received,
        s.sent,
        s.symbols_lost,
        s.symbols_expected
    );
    Ok(())
}

pub(crate) async fn demo(args: crate::cli::DemoArgs, cancel: CancellationToken) -> Result<()> {
    if let Some(limit) = args.upload_limit {
        check_rate("upload-limit", limit).map_err(anyhow::Error::msg)?;
    }
    let config = swarmcast_lab::DemoConfig {
        viewers: args.viewers,
        segment_secs: args.segment_secs,
        seconds: args.seconds,
        bitrate: args.bitrate,
        stagger: Duration::from_secs_f64(args.stagger.max(0.0)),
        dir: args.dir,
        publisher_upload_limit: args.upload_limit,
        withhold_segment: None,
        http_fallback: true,
    };
    eprintln!(
        "demo: {} s of the synthetic feed at {} bit/s in {} s segments, {} viewers joining {} s apart; about {} s",
        config.seconds,
        config.bitrate,
        config.segment_secs,
        config.viewers,
        args.stagger,
        config.seconds + 2 * config.segment_secs.ceil() as u64 + 2
    );
    let report = swarmcast_lab::demo(config, cancel).await?;
    outln!("{}", report.table());
    if let Some(dir) = &report.dir {
        outln!(
            "files (segments, outputs, counters as JSON lines): {}",
            dir.display()
        );
    }
    if !report.outputs_identical() {
        bail!("a viewer's output differs from the published segments it played");
    }
    Ok(())
}

/// The network part of a sweep from `--net` and its flags.
fn lab_net(args: &crate::cli::LabArgs) -> Result<Option<swarmcast_lab::plan::NetSweep>> {
    use swarmcast_lab::plan::{NetMode, NetSweep};
    let mode = match args.net {
        crate::cli::NetArg::Loopback => {
            let given: Vec<&str> = [
                ("--rtt", args.rtt.is_some()),
                ("--jitter", args.jitter.is_some()),
                ("--loss", args.loss.is_some()),
                ("--nat", args.nat.is_some()),
                ("--self-limit", args.self_limit.is_some()),
                ("--symmetric-nat", args.symmetric_nat != 0.0),
            ]
            .iter()
            .filter(|f| f.1)
            .map(|f| f.0)
            .collect();
            if !given.is_empty() {
                anyhow::bail!(
                    "{} need --net emulated: on loopback there is no round trip, loss, NAT or link cap to set",
                    given.join(", ")
                );
            }
            if args.net_check {
                anyhow::bail!("--net-check calibrates the emulated network: add --net emulated");
            }
            return Ok(None);
        }
        crate::cli::NetArg::Emulated => NetMode::Emulated,
        crate::cli::NetArg::Plain => NetMode::Plain,
    };
    let d = NetSweep::default();
    Ok(Some(NetSweep {
        mode,
        rtt_ms: args.rtt.clone().unwrap_or(d.rtt_ms),
        jitter_ms: args.jitter.clone().unwrap_or(d.jitter_ms),
        loss_pct: args.loss.clone().unwrap_or(d.loss_pct),
        nat: args.nat.clone().unwrap_or(d.nat),
        queue_ms: args.queue_ms,
        self_limit: args.self_limit,
        symmetric_nat: args.symmetric_nat,
    }))
}

/// The sweep `swarmcast lab` is asked for.
fn sweep_spec(args: &crate::cli::LabArgs) -> Result<swarmcast_lab::plan::SweepSpec> {
    use swarmcast_lab::plan::{JoinPattern, SweepSpec};
    let join = match args.join {
        crate::cli::JoinArg::All => JoinPattern::All,
        crate::cli::JoinArg::Staggered => JoinPattern::Staggered {
            every_secs: args.join_every,
        },
        crate::cli::JoinArg::Churn => JoinPattern::Churn {
            every_secs: args.join_every,
        },
        crate::cli::JoinArg::Exodus => JoinPattern::Exodus {
            at_secs: args.join_every,
            percent: args.exodus_percent,
        },
    };
    let net = lab_net(args)?;
    Ok(SweepSpec {
        segment_secs: args.segment_secs.clone(),
        viewers: args.viewers.clone(),
        transports: args.transports.clone(),
        variants: args.variants.clone(),
        repeats: args.repeats,
        bitrate: args.bitrate,
        duration_secs: args.duration,
        join,
        publisher_upload_limit: args.publisher_upload_limit.iter().map(|c| c.0).collect(),
        viewer_upload_limit: args.viewer_upload_limit.iter().map(|c| c.0).collect(),
        viewer_download_limit: args.viewer_download_limit.iter().map(|c| c.0).collect(),
        http_fallback: !args.no_http_fallback,
        side_by_side: !args.one_at_a_time,
        net,
        fanout: args.fanout,
        back_buffer_secs: args.back_buffer,
        churn_pct: args.churn,
        churn_seed: args.churn_seed,
        playout_buffer_secs: args.playout_buffer,
    })
}

/// `lab --dry-run`: each group of runs, with its media length and estimated time.
fn print_groups(plan: &swarmcast_lab::plan::Plan) {
    for g in plan.groups() {
        let ids: Vec<&str> = g.iter().map(|r| r.id.as_str()).collect();
        outln!(
            "{}  ({} s of media, about {} s)",
            ids.join(" + "),
            g[0].duration_secs,
            g.iter()
                .map(|r| r.estimate())
                .max()
                .unwrap_or_default()
                .as_secs()
        );
    }
}

pub(crate) async fn lab(args: crate::cli::LabArgs, cancel: CancellationToken) -> Result<()> {
    if args.cleanup {
        let n = swarmcast_netlab::topo::cleanup_all()?;
        eprintln!("lab: removed {n} network namespaces left by emulated runs");
        return Ok(());
    }
    use swarmcast_lab::plan;
    let spec = sweep_spec(&args)?;
    if spec.net.is_some() {
        swarmcast_netlab::topo::require_root()?;
    }
    if args.net_check {
        let all_ok = swarmcast_lab::netcheck::net_check(
            &spec,
            &cancel,
            |c| {
                eprintln!(
                    "net-check: rtt {} ms, loss {}%, cap {} B/s",
                    c.rtt_ms, c.loss_pct, c.cap
                )
            },
            |report| {
                out!("{}", report.text());
                outln!("json: {}", swarmcast_lab::json(report));
            },
        )
        .await?;
        if !all_ok {
            bail!("the emulated network is out of tolerance (see above)");
        }
        return Ok(());
    }
    let plan = plan::plan(&spec)?;
    let estimate = plan.estimate();
    eprintln!(
        "lab: {} runs in {} groups, {} processes; estimated {} min {} s",
        plan.runs.len(),
        plan.groups().len(),
        plan.processes(),
        estimate.as_secs() / 60,
        estimate.as_secs() % 60
    );
    if args.dry_run {
        print_groups(&plan);
        return Ok(());
    }
    let out = match args.out {
        Some(o) => o,
        None => Path::new("lab-results").join(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .to_string(),
        ),
    };
    let config = swarmcast_lab::LabConfig {
        plan,
        out: out.clone(),
        exe: std::env::current_exe().context("cannot find this program's path")?,
        keep_media: args.keep_media,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let report = swarmcast_lab::run_lab(config, cancel.clone()).await?;
    outln!("{}", report.markdown);
    eprintln!("results: {}", out.display());
    if cancel.is_cancelled() {
        bail!("interrupted: the report covers the runs that finished");
    }
    if !report.consistent() {
        bail!(
            "some runs are inconsistent (see the Consistency section of {})",
            out.join("summary.md").display()
        );
    }
    Ok(())
}

pub(crate) fn report(dir: &Path) -> Result<()> {
    let report = swarmcast_lab::report::write_report(dir)?;
    outln!("{}", report.markdown);
    for f in &report.files {
        eprintln!("wrote {}", f.display());
    }
    if !report.consistent() {
        bail!("some runs are inconsistent (see the Consistency section)");
    }
    Ok(())
}

pub(crate) fn scale_model(dirs: &[std::path::PathBuf]) -> Result<()> {
    use swarmcast_lab::results::{load_results, summarize};
    let mut points = Vec::new();
    for dir in dirs {
        for r in load_results(dir)? {
            if let Some(m) = swarmcast_lab::scale::manifest_figures(&r) {
                points.push((summarize(&r), m));
            }
        }
    }
    if points.is_empty() {
        bail!("no run with the publisher's manifests_sent record (lab runs from issue 21 on)");
    }
    outln!("{}", swarmcast_lab::scale::model_report(&points));
    Ok(())
}

pub(crate) async fn icecast_node(
    args: crate::cli::IcecastNodeArgs,
    cancel: CancellationToken,
) -> Result<()> {
    use swarmcast_relay::icecast::node::{self, NodeConfig};
    let mut config = NodeConfig::new(args.directory, args.node, args.listen);
    config.fanout = args.fanout;
    config.out = args.out;
    config.metrics_out = args.metrics_out;
    config.source_password = args.password.filter(|_| args.source);
    config.data_dir = args.data_dir;
    config.icecast_bin = args.icecast_bin;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<String>();
    let printer = async move {
        if let Ok(url) = ready_rx.await {
            // The mount, for whoever reads it; a closed stdout does not end the node.
            let _ = std::io::Write::write_fmt(&mut std::io::stdout(), format_args!("{url}\n"));
        }
    };
    let (summary, ()) = tokio::join!(node::run(config, cancel, Some(ready_tx)), printer);
    let s = summary?;
    eprintln!(
        "{} bytes played ({} skipped at the edges of connections), {} parent changes, {} breaks, {} icecast2 restarts, {}",
        s.bytes,
        s.skipped,
        s.switches,
        s.disconnects,
        s.restarts,
        if s.ended { "the stream ended" } else { "stopped" }
    );
    Ok(())
}

/// `swarmcast dht-testnet`: a local DHT ([`swarmcast_dht::LocalDht`]: server nodes that
/// bootstrap from each other) on one address, for the lab's DHT host; prints its bootstrap list,
/// then waits to be stopped.
/// How long `dht-testnet` waits for its nodes to know each other (they take well under a
/// second).
const DHT_FORM_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

pub(crate) async fn dht_testnet(
    args: crate::cli::DhtTestnetArgs,
    cancel: CancellationToken,
) -> Result<()> {
    let (nodes, bind) = (usize::from(args.nodes), args.bind);
    let tasks = swarmcast_tasks::Tasks::new("dht-testnet");
    let net = tasks
        .spawn_blocking("dht-testnet-start", move || {
            swarmcast_dht::LocalDht::start(nodes, bind, DHT_FORM_WITHIN)
        })
        .await
        .map_err(|e| anyhow::anyhow!("the DHT nodes' start: {e}"))?
        .with_context(|| format!("cannot start {nodes} DHT nodes on {bind}"))?;
    // The lab reads this line from our stdout; a closed stdout does not end the nodes.
    let _ = std::io::Write::write_fmt(
        &mut std::io::stdout(),
        format_args!("bootstrap {}\n", net.bootstrap.join(",")),
    );
    cancel.cancelled().await;
    drop(net);
    Ok(())
}
