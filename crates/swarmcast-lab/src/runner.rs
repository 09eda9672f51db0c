//! `swarmcast lab`: executes a [`Plan`] with real processes. Each run starts `swarmcast publish`
//! (the synthetic feed) and its viewers (`swarmcast watch`, swarm or HTTP) as child processes of
//! the lab on loopback, by the run's join pattern; collects their counters and logs into
//! `runs/<id>/`; checks each viewer's output against the published segments; then writes the
//! report. Ctrl-C (the cancel token) stops every child: Ctrl-C, again 3 s later, a kill 3 s after that.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use swarmcast_metrics::{read_events, Kind};
use swarmcast_tasks::Tasks;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use swarmcast_netlab::emu::Emulator;
use swarmcast_netlab::topo::{Host, Net};

use crate::netrun::{self, NetHost, NetOutcome};
use crate::plan::{NetMode, NetPoint, Plan, RunSpec, Step, Transport};
use crate::report::{write_report, Report};
use crate::results::{io_err, ProcessOutcome, ResultsError, RunFile, RunOutcome, RUN_FILE};
use crate::sampler::{CpuSampler, RttSampler};
use crate::transport::{self, Ctx, Side};
pub(crate) use args::{publisher_args, viewer_args};

mod args;

/// How a lab runs.
#[derive(Clone, Debug)]
pub struct LabConfig {
    /// What to run.
    pub plan: Plan,
    /// The results directory (created; must not hold runs already).
    pub out: PathBuf,
    /// The `swarmcast` binary the children run (normally this process's own).
    pub exe: PathBuf,
    /// Keep segment files and viewer outputs (large); by default only counters and logs stay.
    pub keep_media: bool,
    /// Draw a progress bar on a terminal (otherwise one line per group).
    pub progress: bool,
}

/// How long the publisher may take to print its link.
const READY_GUARD: Duration = Duration::from_secs(30);
/// Between a Ctrl-C and the next step of [`stop`].
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Runs every group of the plan, then writes the report. A run that fails is recorded as such
/// (its checks fail); only the lab's own I/O is an error. Cancelled: stops, and reports what ran.
pub async fn run_lab(config: LabConfig, cancel: CancellationToken) -> Result<Report, ResultsError> {
    let runs_dir = config.out.join("runs");
    if std::fs::read_dir(&runs_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(ResultsError::Io {
            path: runs_dir,
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "holds runs already: choose a new --out (or run `swarmcast report` on it)",
            ),
        });
    }
    std::fs::create_dir_all(&runs_dir).map_err(io_err(&runs_dir))?;
    let plan_path = config.out.join("plan.json");
    let plan_json = serde_json::to_string_pretty(&config.plan).expect("a plan serialises");
    std::fs::write(&plan_path, plan_json + "\n").map_err(io_err(&plan_path))?;

    let estimate = config.plan.estimate();
    let bar = if config.progress {
        ProgressBar::new(estimate.as_secs())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} s (estimated)  {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let say = |line: String| {
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    };
    let started = Instant::now();
    let ticker = Tasks::new("lab-progress");
    {
        let bar = bar.clone();
        ticker.spawn("ticker", async move {
            loop {
                bar.set_position(started.elapsed().as_secs().min(bar.length().unwrap_or(0)));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
    let groups = config.plan.groups();
    for (i, group) in groups.iter().enumerate() {
        if cancel.is_cancelled() {
            break;
        }
        let names: Vec<&str> = group.iter().map(|r| r.id.as_str()).collect();
        bar.set_message(format!(
            "[{}/{}] {}",
            i + 1,
            groups.len(),
            names.join(" + ")
        ));
        say(format!(
            "[{}/{}] {} ({} s of media, {} viewers, {})",
            i + 1,
            groups.len(),
            names.join(" + "),
            group[0].duration_secs,
            group[0].viewers,
            group[0].join
        ));
        let runs = group
            .iter()
            .map(|spec| run_one(spec, &config, cancel.clone()));
        for (spec, result) in group.iter().zip(futures_util::future::join_all(runs).await) {
            let outcome = result?;
            if let Some(e) = &outcome.error {
                say(format!("  {}: {e}", spec.id));
            }
        }
    }
    ticker.shutdown().await;
    bar.finish_and_clear();
    say(format!(
        "ran {} in {:.0} s (estimated {} s); writing the report",
        if cancel.is_cancelled() {
            "until interrupted".to_string()
        } else {
            format!("{} runs", config.plan.runs.len())
        },
        started.elapsed().as_secs_f64(),
        estimate.as_secs()
    ));
    write_report(&config.out)
}

struct Proc {
    outcome: ProcessOutcome,
    child: Option<Child>,
}

/// Starts `exe` with `args`, on a network's host if given ([`Net::command`]: `ip netns exec`
/// execs the program, so the child is the program itself and Ctrl-C reaches it).
fn spawn(
    exe: &Path,
    args: &[String],
    log: &Path,
    stdout: bool,
    on: Option<(&Net, &Host)>,
) -> std::io::Result<Child> {
    let log = std::fs::File::create(log)?;
    let mut cmd = Command::from(match on {
        Some((net, host)) => net.command(host, exe),
        None => std::process::Command::new(exe),
    });
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(if stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
}

fn interrupt(child: &Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGINT,
        );
    }
}

/// Ctrl-C (a graceful end); a second Ctrl-C after [`STOP_GRACE`] (an immediate one, as a user
/// would); a kill after another. The exit code (None if killed).
async fn stop(child: &mut Child) -> Option<i32> {
    for _ in 0..2 {
        interrupt(child);
        if let Ok(Ok(status)) = tokio::time::timeout(STOP_GRACE, child.wait()).await {
            return status.code();
        }
    }
    let _ = child.kill().await;
    None
}

async fn run_one(
    spec: &RunSpec,
    config: &LabConfig,
    cancel: CancellationToken,
) -> Result<RunOutcome, ResultsError> {
    let dir = config.out.join("runs").join(&spec.id);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let mut outcome = RunOutcome::default();
    let t0 = Instant::now();
    let cpu = CpuSampler::start(CPU_SAMPLE);
    let result = match spec.net {
        None => execute(spec, config, &dir, &mut outcome, None, cancel).await,
        Some(point) => execute_on_net(spec, &point, config, &dir, &mut outcome, cancel).await,
    };
    outcome.cpu = Some(cpu.shutdown().await);
    if let Err(e) = result {
        outcome.error.get_or_insert(e);
    }
    outcome.wall_secs = (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    if !config.keep_media {
        for v in &outcome.viewers {
            let _ = std::fs::remove_file(dir.join(format!("{}.ts", v.node)));
            let _ = std::fs::remove_dir_all(dir.join(format!("{}.d", v.node)));
        }
        let _ = std::fs::remove_dir_all(dir.join("publisher"));
    }
    let path = dir.join(RUN_FILE);
    let file = RunFile {
        spec: spec.clone(),
        outcome: outcome.clone(),
    };
    let json = serde_json::to_string_pretty(&file).expect("a run file serialises");
    std::fs::write(&path, json + "\n").map_err(io_err(&path))?;
    Ok(outcome)
}

/// How often the machine's CPU use is sampled during a run.
const CPU_SAMPLE: Duration = Duration::from_secs(1);
/// How often live connections' round trips are sampled on an emulated network.
const RTT_SAMPLE: Duration = Duration::from_secs(2);
/// Viewers whose connections' round trips are sampled (with the publisher).
const RTT_SAMPLED_VIEWERS: usize = 3;
/// Quiet periods waited for at most before a network's counters are read anyway.
const QUIET_TRIES: usize = 30;

/// A run on its own network: builds it, starts the emulator, runs, lets the network go quiet,
/// reads every counter, and removes it all (also on error, and on drop if this future is
/// dropped).
async fn execute_on_net(
    spec: &RunSpec,
    point: &NetPoint,
    config: &LabConfig,
    dir: &Path,
    outcome: &mut RunOutcome,
    cancel: CancellationToken,
) -> Result<(), String> {
    let t = Instant::now();
    let hosts = netrun::host_specs(spec, point);
    let emulate = point.mode == NetMode::Emulated;
    // Namespaces and threads are made and removed off the runtime; not interruptible, awaited.
    let tasks = Tasks::new("lab-network");
    let net = tasks
        .spawn_blocking("net-create", move || Net::create(&hosts, emulate))
        .await
        .map_err(|e| format!("network set-up: {e}"))?
        .map_err(|e| format!("network set-up: {e}"))?;
    let mut net_outcome = NetOutcome {
        hosts: net
            .hosts()
            .iter()
            .map(|h| NetHost {
                node: h.node.clone(),
                addr: h.addr,
                public: h.public,
                nat: h.nat_ns.is_some(),
                random_ports: h.random_ports,
                ns: h.ns.clone(),
            })
            .collect(),
        ..NetOutcome::default()
    };
    let emulator = match netrun::emu_config(spec, point, &net) {
        Some(c) => Some(
            tasks
                .spawn_blocking("emulator-start", move || Emulator::start(c))
                .await
                .map_err(|e| format!("emulator: {e}"))?
                .map_err(|e| format!("emulator: {e}"))?,
        ),
        None => None,
    };
    net_outcome.setup_secs = round3(t.elapsed().as_secs_f64());
    let sampled: Vec<String> = net
        .hosts()
        .iter()
        .take(1 + RTT_SAMPLED_VIEWERS)
        .map(|h| h.ns.clone())
        .collect();
    let rtts = RttSampler::start(sampled, RTT_SAMPLE);
    let result = execute(spec, config, dir, outcome, Some(&net), cancel).await;
    net_outcome.tcp_rtt_ms = rtts.shutdown().await.iter().map(|s| s.srtt_ms).collect();
    // Count once the network is quiet: the processes are gone, but their kernels still close
    // connections (FIN and RST retransmissions), so wait until nothing is held and nothing new
    // came for a while; then the interfaces' counters and the emulator's agree.
    let quiet = Duration::from_secs_f64((2.0 * point.rtt_ms + point.queue_ms) / 1000.0 + 0.3);
    let t = Instant::now();
    let finish = tasks
        .spawn_blocking("net-remove", move || {
            // Without the emulator there is nothing to watch: one quiet period.
            let mut tries = 0;
            let links = loop {
                let before = emulator.as_ref().map(Emulator::activity);
                std::thread::sleep(quiet);
                let links = net.counters();
                tries += 1;
                let quiet_now = match (&emulator, before) {
                    (Some(e), Some((seen, _))) => e.activity() == (seen, 0),
                    _ => true,
                };
                if quiet_now || tries == QUIET_TRIES {
                    break links;
                }
            };
            let emu = emulator.map(Emulator::stop).transpose();
            let removed = net.remove();
            (links, emu, removed)
        })
        .await
        .map_err(|e| format!("network removal: {e}"))?;
    let (links, emu, removed) = finish;
    net_outcome.teardown_secs = round3(t.elapsed().as_secs_f64());
    net_outcome.links = links.map_err(|e| format!("interface counters: {e}"))?;
    net_outcome.emulator = emu.map_err(|e| format!("emulator: {e}"))?;
    net_outcome.balance = netrun::balance(&net_outcome.links, net_outcome.emulator.as_ref());
    outcome.net = Some(net_outcome);
    removed.map_err(|e| format!("network removal: {e}"))?;
    result
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The run itself; an `Err` is why it could not complete (recorded in `run.json`).
async fn execute(
    spec: &RunSpec,
    config: &LabConfig,
    dir: &Path,
    outcome: &mut RunOutcome,
    net: Option<&Net>,
    cancel: CancellationToken,
) -> Result<(), String> {
    let t0 = Instant::now();
    let method = transport::method(spec.transport);
    let ctx = Ctx {
        spec,
        dir,
        net,
        link: None,
        dht: None,
    };
    let mut sides: Vec<Proc> = Vec::new();
    let mut started = start_sides(
        &method.before_publisher(&ctx),
        config,
        dir,
        net,
        t0,
        &mut sides,
    );
    let mut dht = None;
    if started.is_ok() && spec.variant.dht() && spec.transport == Transport::Swarm {
        started = start_dht(config, dir, net)
            .await
            .map(|(p, bootstrap)| {
                sides.push(p);
                dht = Some(bootstrap);
            })
            .map_err(|(p, e)| {
                sides.extend(p);
                e
            });
    }
    let (mut publisher, link) = match started {
        Err(e) => Err((None, e)),
        Ok(()) => start_publisher(spec, config, dir, net, dht.as_deref()).await,
    }
    .map_err(|(publisher, e)| {
        outcome.publisher = publisher;
        e
    })
    .inspect_err(|_| {
        for s in &mut sides {
            if let Some(c) = s.child.as_mut() {
                let _ = c.start_kill();
            }
        }
    })?;
    outcome.link = link.clone();
    let ctx = Ctx {
        link: Some(&link),
        dht: dht.as_deref(),
        ..ctx
    };
    let on_net = |node: &str| net.and_then(|n| n.host(node).map(|h| (n, h)));
    let mut viewers: Vec<Proc> = Vec::new();
    let mut failure = start_sides(
        &method.after_publisher(&ctx),
        config,
        dir,
        net,
        t0,
        &mut sides,
    )
    .err();
    for (at, step) in spec.schedule() {
        if failure.is_some() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep_until(t0 + Duration::from_secs_f64(at)) => {}
            () = cancel.cancelled() => { failure = Some("interrupted".to_string()); break; }
        }
        match step {
            Step::Leave => leave(&mut viewers).await,
            Step::Kill { count } => kill(&mut viewers, count).await,
            Step::Depart(i) => depart(&mut viewers, &format!("viewer-{i}"), net).await,
            Step::Start(i) => {
                let node = format!("viewer-{i}");
                let log = dir.join(format!("{node}.log"));
                let args = method.node_args(&ctx, i);
                let child = match spawn(&config.exe, &args, &log, false, on_net(&node)) {
                    Ok(c) => c,
                    Err(e) => {
                        failure = Some(format!("cannot start {node}: {e}"));
                        break;
                    }
                };
                let started_secs = (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
                viewers.push(Proc::new(node, child, started_secs));
            }
        }
    }
    // Viewers still fetching this long after the start are stopped (Ctrl-C): an overloaded run
    // ends here, and what they did not play counts as missed.
    let drain = Duration::from_secs_f64(spec.duration_secs + 2.0 * spec.segment_secs + 15.0);
    if failure.is_none() {
        failure = wait_for_viewers(&mut viewers, t0 + drain, &cancel).await;
    }
    // Viewers, then what runs beside the publisher, then the publisher.
    for v in viewers
        .iter_mut()
        .chain(sides.iter_mut())
        .chain(std::iter::once(&mut publisher))
    {
        if let Some(mut c) = v.child.take() {
            v.outcome.stopped |= v.outcome.node.starts_with("viewer-");
            v.outcome.exit = stop(&mut c).await;
            outcome.hang_guard |= v.outcome.exit.is_none();
        }
    }
    outcome.sides = sides.into_iter().map(|s| s.outcome).collect();
    check_outputs(dir, &mut viewers, method.continuous());
    outcome.publisher = Some(publisher.outcome);
    outcome.viewers = viewers.into_iter().map(|v| v.outcome).collect();
    match failure {
        Some(f) => Err(f),
        None if outcome.hang_guard => Err("a process ignored Ctrl-C twice and was killed".into()),
        None => Ok(()),
    }
}

impl Proc {
    /// A process just started, `started_secs` after the run's start.
    fn new(node: String, child: Child, started_secs: f64) -> Self {
        Self {
            outcome: ProcessOutcome {
                node,
                exit: None,
                stopped: false,
                churned: false,
                killed: false,
                started_secs,
                output: None,
            },
            child: Some(child),
        }
    }
}

/// Starts the run's publisher and reads the stream link it prints; on failure, its outcome
/// (None if it did not start) and why.
async fn start_publisher(
    spec: &RunSpec,
    config: &LabConfig,
    dir: &Path,
    net: Option<&Net>,
    dht: Option<&str>,
) -> Result<(Proc, String), (Option<ProcessOutcome>, String)> {
    let mut args = publisher_args(spec, dir, net);
    let ctx = Ctx {
        spec,
        dir,
        net,
        link: None,
        dht,
    };
    args.extend(transport::method(spec.transport).publisher_args(&ctx));
    if let Some(bootstrap) = dht {
        args.extend(dht_publisher_args(bootstrap));
    }
    let on = net.and_then(|n| n.host("publisher").map(|h| (n, h)));
    let not_started = |e: String| (None, e);
    std::fs::create_dir_all(dir.join("publisher"))
        .map_err(|e| not_started(format!("{}: {e}", dir.join("publisher").display())))?;
    let child = spawn(&config.exe, &args, &dir.join("publisher.log"), true, on)
        .map_err(|e| not_started(format!("cannot start {}: {e}", config.exe.display())))?;
    let mut publisher = Proc::new("publisher".into(), child, 0.0);
    match first_line(&mut publisher).await {
        Ok(line) if line.starts_with("swarmcast:") => Ok((publisher, line)),
        other => {
            let child = publisher.child.as_mut().expect("just started");
            publisher.outcome.exit = stop(child).await;
            Err((
                Some(publisher.outcome),
                format!("the publisher did not print its link ({other:?}); see publisher.log"),
            ))
        }
    }
}

/// The first line a process started with its stdout piped prints, within [`READY_GUARD`]; `Err`
/// says what came instead (the end of its output, a read error, the guard).
async fn first_line(p: &mut Proc) -> Result<String, String> {
    let child = p.child.as_mut().expect("just started");
    let stdout = child.stdout.take().expect("piped");
    match tokio::time::timeout(READY_GUARD, BufReader::new(stdout).lines().next_line()).await {
        Ok(Ok(Some(line))) => Ok(line),
        other => Err(format!("{other:?}")),
    }
}

/// The DHT host's nodes (`@manifests=dht`): as many as the tests' local DHT.
pub(crate) const DHT_NODES: u16 = 24;

/// Of them, the ones the publisher and the viewers are told to bootstrap from, as a client of
/// the public DHT knows a few routers (mainline's default list has 4, librqbit's 2), not every
/// node. librqbit's DHT starts one lookup of its own id per bootstrap address: given all 24, each
/// viewer's join cost 24 lookups, 64% of what the DHT host sent in a 60 s run with carried peers
/// (docs/netlab.md, "The DHT host").
pub(crate) const DHT_ROUTERS: usize = 4;

/// Starts the run's DHT (`swarmcast dht-testnet` on the `dht` host; on loopback, on 127.0.0.1)
/// and reads its bootstrap list; on failure, its process (if it started) and why.
async fn start_dht(
    config: &LabConfig,
    dir: &Path,
    net: Option<&Net>,
) -> Result<(Proc, String), (Option<Proc>, String)> {
    let on = net.and_then(|n| n.host(netrun::DHT_HOST).map(|h| (n, h)));
    let bind = on.map_or("127.0.0.1".to_owned(), |(_, h)| h.addr.to_string());
    let args = transport::strings(&[
        "dht-testnet",
        "--nodes",
        &DHT_NODES.to_string(),
        "--bind",
        &bind,
    ]);
    let log = dir.join(format!("{}.log", netrun::DHT_HOST));
    let child = spawn(&config.exe, &args, &log, true, on)
        .map_err(|e| (None, format!("cannot start the DHT: {e}")))?;
    let mut dht = Proc::new(netrun::DHT_HOST.into(), child, 0.0);
    match first_line(&mut dht).await {
        Ok(line) => match line.strip_prefix("bootstrap ") {
            Some(list) if !list.is_empty() => {
                let routers: Vec<&str> = list.split(',').take(DHT_ROUTERS).collect();
                Ok((dht, routers.join(",")))
            }
            _ => Err((
                Some(dht),
                format!("the DHT printed {line:?}, not its bootstrap list"),
            )),
        },
        Err(other) => Err((
            Some(dht),
            format!("the DHT did not print its bootstrap list ({other}); see dht.log"),
        )),
    }
}

/// What a publisher adds on the DHT (`@manifests=dht`): its pointer and announces there, no HTTP
/// manifests, no tracker (with `--swarm-manifests`, which the variant gives).
pub(crate) fn dht_publisher_args(bootstrap: &str) -> Vec<String> {
    transport::strings(&[
        "--dht",
        "--dht-bootstrap",
        bootstrap,
        "--no-http-manifests",
        "--no-embedded-tracker",
    ])
}

/// Starts processes beside the publisher, on its host; the first that cannot start is the error.
fn start_sides(
    list: &[Side],
    config: &LabConfig,
    dir: &Path,
    net: Option<&Net>,
    t0: Instant,
    into: &mut Vec<Proc>,
) -> Result<(), String> {
    let on = net.and_then(|n| n.host("publisher").map(|h| (n, h)));
    for side in list {
        let log = dir.join(format!("{}.log", side.name));
        let child = spawn(&config.exe, &side.args, &log, false, on)
            .map_err(|e| format!("cannot start {}: {e}", side.name))?;
        let started_secs = (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        into.push(Proc::new(side.name.clone(), child, started_secs));
    }
    Ok(())
}

/// `--churn`: node `node` leaves abruptly: every process on its host is killed (SIGKILL) at once
/// (on loopback, its process).
async fn depart(viewers: &mut [Proc], node: &str, net: Option<&Net>) {
    let Some(v) = viewers
        .iter_mut()
        .find(|v| v.outcome.node == node && v.child.is_some())
    else {
        return;
    };
    let mut child = v.child.take().expect("running");
    if let Some(net) = net {
        net.kill_host(node);
    }
    let _ = child.start_kill();
    v.outcome.stopped = true;
    v.outcome.churned = true;
    v.outcome.killed = true;
    // Killed: no exit code (a wait that fails leaves the child to kill_on_drop).
    v.outcome.exit = child.wait().await.ok().and_then(|s| s.code());
}

/// Churn: the longest-running viewer still running leaves.
async fn leave(viewers: &mut [Proc]) {
    if let Some(v) = viewers
        .iter_mut()
        .find(|v| v.child.is_some() && !v.outcome.stopped)
    {
        v.outcome.stopped = true;
        v.outcome.churned = true;
        if let Some(mut c) = v.child.take() {
            v.outcome.exit = stop(&mut c).await;
        }
    }
}

/// Exodus: the first `count` viewers still running are killed (SIGKILL), every signal sent
/// before any is waited for, so that they leave at the same moment.
async fn kill(viewers: &mut [Proc], count: usize) {
    let mut killed: Vec<(&mut Proc, Child)> = Vec::new();
    for v in viewers
        .iter_mut()
        .filter(|v| v.child.is_some() && !v.outcome.stopped)
        .take(count)
    {
        let mut child = v.child.take().expect("running");
        let _ = child.start_kill();
        v.outcome.stopped = true;
        v.outcome.churned = true;
        v.outcome.killed = true;
        killed.push((v, child));
    }
    for (v, mut child) in killed {
        // Killed: no exit code (a wait that fails leaves the child to kill_on_drop).
        v.outcome.exit = child.wait().await.ok().and_then(|s| s.code());
    }
}

/// Waits until every viewer has played to the end of the stream and exited, or `deadline`;
/// the failure, if any (interrupted, or a viewer that could not be waited for).
async fn wait_for_viewers(
    viewers: &mut [Proc],
    deadline: Instant,
    cancel: &CancellationToken,
) -> Option<String> {
    let mut failure = None;
    for v in viewers.iter_mut() {
        let Some(child) = v.child.as_mut() else {
            continue;
        };
        tokio::select! {
            status = tokio::time::timeout_at(deadline, child.wait()) => match status {
                Ok(Ok(s)) => { v.outcome.exit = s.code(); v.child = None; }
                Ok(Err(e)) => { failure.get_or_insert(format!("{}: {e}", v.outcome.node)); }
                Err(_) => break,
            },
            () = cancel.cancelled() => return Some("interrupted".into()),
        }
    }
    failure
}

/// Checks each viewer's output against the published segments it played (a continuous stream's:
/// against the published stream, its alignment kept for the figures).
fn check_outputs(dir: &Path, viewers: &mut [Proc], continuous: bool) {
    let stream_dir = std::fs::read_dir(dir.join("publisher")).ok().and_then(|d| {
        d.filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.is_dir())
    });
    if continuous {
        let published = stream_dir.as_deref().map(published_stream);
        for v in viewers.iter_mut() {
            v.outcome.output = Some(match &published {
                Some(Ok(p)) => transport::check_continuous(dir, &v.outcome.node, p),
                Some(Err(e)) => e.clone(),
                None => "the publisher's segments are missing".into(),
            });
        }
        return;
    }
    for v in viewers.iter_mut() {
        v.outcome.output = Some(match &stream_dir {
            Some(s) => check_output(dir, &v.outcome.node, s, v.outcome.killed),
            None => "the publisher's segments are missing".into(),
        });
    }
}

/// The published stream: every segment file the publisher kept, in number order.
fn published_stream(stream_dir: &Path) -> Result<Vec<u8>, String> {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(stream_dir)
        .map_err(|e| format!("cannot read {}: {e}", stream_dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|p| {
            let n = p.file_name()?.to_str()?.strip_suffix(".ts")?.parse().ok()?;
            Some((n, p))
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for (_, p) in files {
        out.extend(std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?);
    }
    Ok(out)
}

/// `identical`, or why the viewer's output differs from the published segments it played. A
/// `killed` viewer's output may end in the start of the segment after (killed while writing it).
fn check_output(dir: &Path, node: &str, stream_dir: &Path, killed: bool) -> String {
    let played: Vec<u64> = match read_events(&dir.join(format!("{node}.jsonl"))) {
        Ok(events) => events
            .iter()
            .filter(|e| matches!(e.kind, Kind::Played { .. }))
            .filter_map(|e| e.seg)
            .collect(),
        Err(e) => return format!("cannot read its counters: {e}"),
    };
    let output = match std::fs::read(dir.join(format!("{node}.ts"))) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && played.is_empty() => Vec::new(),
        Err(e) => return format!("cannot read its output: {e}"),
    };
    let mut at = 0usize;
    for n in &played {
        let seg = match std::fs::read(stream_dir.join(format!("{n:08}.ts"))) {
            Ok(b) => b,
            Err(e) => return format!("cannot read published segment {n}: {e}"),
        };
        let end = at + seg.len();
        if output.get(at..end) != Some(&seg[..]) {
            return format!(
                "segment {n} (output bytes {at}..{end}) differs from the published file"
            );
        }
        at = end;
    }
    if killed && at < output.len() {
        let next = played.last().map_or(0, |n| n + 1);
        let partial = &output[at..];
        return match std::fs::read(stream_dir.join(format!("{next:08}.ts"))) {
            Ok(seg) if seg.starts_with(partial) => "identical".into(),
            _ => format!(
                "{} bytes of output beyond the {} segments it played, not the start of segment {next}",
                partial.len(),
                played.len()
            ),
        };
    }
    if at != output.len() {
        return format!(
            "{} bytes of output beyond the {} segments it played",
            output.len() - at,
            played.len()
        );
    }
    "identical".into()
}

#[cfg(test)]
mod tests;
