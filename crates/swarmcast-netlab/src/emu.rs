//! The emulator: a thread inside the core router's namespace that takes every forwarded packet
//! from NFQUEUE, feeds it to the [`Model`], gives it its verdict when the model says, and counts
//! what crossed each host's link ([`classify`]).
//!
//! The kernel queues every packet whole ([`COPY_RANGE`]) to user space and holds it until its
//! verdict; the emulator reads its headers, and follows BitTorrent and HTTP streams to tell
//! payload from control. The
//! emulator waits in `ppoll` on the queue's socket until a packet arrives or the model's next
//! deadline, whichever is first (at most [`STOP_CHECK`], to notice a stop), so it costs CPU per
//! packet, not per unit of time; the kernel's timer slack (about 50 µs) is part of each delay.

pub mod classify;
mod report;
mod stream;

pub use report::{Count, EmuReport, HostWire, Lag};

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use self::classify::Classifier;
use crate::model::{DropReason, HostId, LinkSpec, Model, ModelConfig, Verdict};

/// Bytes of each packet copied to user space: all of it (the links' MTU is 1,500 bytes), so
/// BitTorrent and HTTP streams can be followed to tell payload from control.
pub const COPY_RANGE: u16 = 1600;
/// The queue socket's receive buffer: room for about 40,000 whole packets waiting to be read, so
/// a busy moment of the emulator's thread never makes the kernel drop one.
pub const SOCKET_BUFFER: usize = 64 << 20;
/// Packets the kernel may hold for the emulator.
pub const QUEUE_MAX_LEN: u32 = 1 << 16;
/// Packets read from the queue before the model's other releases are given their verdicts (a
/// packet the model releases at once gets its verdict as soon as it is read).
pub const READ_BATCH: usize = 32;
/// The emulator thread's SCHED_FIFO priority (1-99). The network it emulates must not wait for
/// the CPU behind the processes it carries: at normal priority, a busy machine delayed packets
/// by tens of milliseconds (docs/netlab.md, "Real-time priority").
pub const REALTIME_PRIORITY: u8 = 50;
/// Set (to anything) in the lab's environment, the emulator runs at normal priority: how the
/// cost of not being real-time is measured.
pub const NORMAL_PRIORITY_VAR: &str = "SWARMCAST_EMULATOR_NORMAL_PRIORITY";
/// Longest wait before the emulator checks whether it was told to stop.
pub const STOP_CHECK: Duration = Duration::from_millis(50);

/// A host the emulator knows, by the address its packets carry at the core (a NAT's public
/// address for a host behind NAT).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmuHost {
    /// The node's name.
    pub node: String,
    /// Its address at the core.
    pub addr: Ipv4Addr,
    /// Its access link.
    pub link: LinkSpec,
}

/// What the emulator runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmuConfig {
    /// The namespace whose FORWARD chain queues to us.
    pub core_ns: String,
    /// The NFQUEUE number.
    pub queue_num: u16,
    /// Every host.
    pub hosts: Vec<EmuHost>,
    /// Paths and queues.
    pub model: ModelConfig,
    /// TCP servers whose connections are HTTP (the publisher's HTTP address).
    pub http_servers: Vec<SocketAddrV4>,
}

/// Why the emulator failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmuError {
    /// Entering the core namespace failed.
    #[error(transparent)]
    Namespace(#[from] crate::topo::NetError),
    /// NFQUEUE failed.
    #[error("nfqueue {what}: {source}")]
    Queue {
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The emulator's thread panicked or ended early.
    #[error("the emulator thread ended unexpectedly")]
    Thread,
}

/// A running emulator; [`Emulator::stop`] ends it and returns its report.
#[derive(Debug)]
pub struct Emulator {
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
    thread: Option<JoinHandle<Result<EmuReport, EmuError>>>,
}

impl Emulator {
    /// Starts the emulator thread; returns once its queue is bound (packets flow from then on).
    pub fn start(config: EmuConfig) -> Result<Self, EmuError> {
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Live::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("netlab-emulator".into())
                .spawn({
                    let live = live.clone();
                    move || run(config, stop, live, ready_tx)
                })
                .map_err(|source| EmuError::Queue {
                    what: "thread",
                    source,
                })?
        };
        match ready_rx.recv() {
            Ok(()) => Ok(Self {
                stop,
                live,
                thread: Some(thread),
            }),
            // The thread ended before it was ready: its result says why.
            Err(_) => Err(thread
                .join()
                .map_err(|_| EmuError::Thread)?
                .err()
                .unwrap_or(EmuError::Thread)),
        }
    }

    /// Packets it has seen so far, and packets it holds now (for a caller waiting until the
    /// network is quiet, so counters read on both sides of the emulator agree).
    pub fn activity(&self) -> (u64, usize) {
        (
            self.live.seen.load(Ordering::SeqCst),
            self.live.held.load(Ordering::SeqCst),
        )
    }

    /// Stops the emulator and returns what it counted.
    pub fn stop(mut self) -> Result<EmuReport, EmuError> {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take().ok_or(EmuError::Thread)?;
        thread.join().map_err(|_| EmuError::Thread)?
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn qerr(what: &'static str) -> impl Fn(std::io::Error) -> EmuError {
    move |source| EmuError::Queue { what, source }
}

/// Gives a queued packet its verdict (the kernel then forwards or drops it).
fn give(
    queue: &mut nfq::Queue,
    mut msg: nfq::Message,
    verdict: nfq::Verdict,
) -> Result<(), EmuError> {
    msg.set_verdict(verdict);
    queue.verdict(msg).map_err(qerr("verdict"))
}

fn thread_cpu_secs() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
        .unwrap_or(0.0)
}

/// The kernel's drop counters of queue `num` (queue full, and failed sends to user space).
fn kernel_dropped(num: u16) -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/thread-self/net/netfilter/nfnetlink_queue")
    else {
        return 0;
    };
    text.lines()
        .filter_map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (f.len() >= 7 && f[0] == u64::from(num)).then(|| f[5] + f[6])
        })
        .sum()
}

/// The descriptor of `queue`'s netlink socket, found as the one socket `open` created (nfq does
/// not expose it).
fn open_queue() -> Result<(nfq::Queue, i32), EmuError> {
    let sockets = || -> std::collections::BTreeSet<i32> {
        std::fs::read_dir("/proc/thread-self/fd")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
            })
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect()
    };
    let before = sockets();
    let queue = nfq::Queue::open().map_err(qerr("open"))?;
    let new: Vec<i32> = sockets().difference(&before).copied().collect();
    match new[..] {
        [fd] => Ok((queue, fd)),
        _ => Err(qerr("open")(std::io::Error::other(format!(
            "cannot tell the queue's socket among {} new ones",
            new.len()
        )))),
    }
}

/// Runs `f` with the queue's socket, `fd` (see [`open_queue`]).
#[allow(unsafe_code)]
fn with_socket<R>(_queue: &nfq::Queue, fd: i32, f: impl FnOnce(BorrowedFd<'_>) -> R) -> R {
    // SAFETY: `fd` is the socket owned by `_queue`, which is borrowed for this whole call, so
    // the descriptor stays open; the borrow handed to `f` does not outlive the call.
    f(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// Waits until the queue's socket is readable or `timeout` passes.
fn wait_readable(queue: &nfq::Queue, fd: i32, timeout: Duration) -> Result<(), EmuError> {
    use nix::poll::{ppoll, PollFd, PollFlags};
    let ts = nix::sys::time::TimeSpec::from_duration(timeout);
    with_socket(queue, fd, |socket| {
        match ppoll(
            &mut [PollFd::new(socket, PollFlags::POLLIN)],
            Some(ts),
            None,
        ) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(qerr("poll")(std::io::Error::from(e))),
        }
    })
}

/// Puts the calling thread at SCHED_FIFO [`REALTIME_PRIORITY`]; whether it could.
fn set_realtime() -> bool {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, RealtimeThreadSchedulePolicy,
        ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    };
    let Ok(value) = ThreadPriorityValue::try_from(REALTIME_PRIORITY) else {
        return false;
    };
    match set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    ) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = ?e, "the emulator runs at normal priority: its delays may grow with the machine's load");
            false
        }
    }
}

/// A socket that asks for receive timestamps, so the kernel stamps every packet on arrival
/// (`None` if it could not be made: packets then carry no stamp, and no lag is measured).
fn enable_timestamps() -> Option<std::os::fd::OwnedFd> {
    use nix::sys::socket::{setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    setsockopt(&fd, sockopt::ReceiveTimestamp, &true).ok()?;
    Some(fd)
}

/// What the emulator's thread shares while it runs.
#[derive(Debug, Default)]
struct Live {
    seen: AtomicU64,
    held: AtomicUsize,
}

/// The emulator's thread: sets up the queue in the core namespace, says when it is `ready`, then
/// gives every packet its verdict until told to `stop`; what it counted.
fn run(
    config: EmuConfig,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
    ready: std::sync::mpsc::Sender<()>,
) -> Result<EmuReport, EmuError> {
    crate::topo::enter_ns(&config.core_ns)?;
    // The A/B of docs/netlab.md ("Real-time priority") runs it at normal priority.
    let realtime = std::env::var_os(NORMAL_PRIORITY_VAR).is_none() && set_realtime();
    // Any socket asking for receive timestamps makes the kernel stamp every packet as it
    // enters a namespace's stack: the stamp the queue hands us with each packet.
    let _stamps = enable_timestamps();
    let num = config.queue_num;
    let (mut queue, fd) = bind_queue(num)?;
    let dropped_before = kernel_dropped(num);

    let mut st = State::new(config.model, &config.hosts);
    // Packets are classified once, as sent; a delivered packet counts for its receiver as it
    // was classified for its sender. So a byte is new (and payload, or control) at both ends of
    // its first transmission, and every retransmission is TCP/IP at both ends, whether it
    // repairs a loss or not.
    let mut classifier = Classifier::new(config.http_servers.iter().copied(), true);
    let start = Instant::now();
    let cpu0 = thread_cpu_secs();
    let _ = ready.send(());
    let now_ns = || start.elapsed().as_nanos() as u64;

    while !stop.load(Ordering::Relaxed) {
        let drained = st.read_batch(&mut queue, &mut classifier, &live, &now_ns)?;
        st.release(&mut queue, now_ns)?;
        live.held.store(st.held.len(), Ordering::SeqCst);
        let wait = match st.model.next_deadline() {
            Some(t) => Duration::from_nanos(t.saturating_sub(now_ns())).min(STOP_CHECK),
            None => STOP_CHECK,
        };
        if drained && !wait.is_zero() {
            wait_readable(&queue, fd, wait)?;
        }
    }
    let mut report = st.report;
    report.held_at_end = st.held.len();
    report.streams_lost = classifier.streams_lost();
    report.cpu_secs = thread_cpu_secs() - cpu0;
    report.realtime = realtime;
    report.wake_lag = Lag::of(&st.wake_lag);
    report.lag = Lag::of(&st.lag);
    report.wall_secs = start.elapsed().as_secs_f64();
    report.kernel_dropped = kernel_dropped(num).saturating_sub(dropped_before);
    // Whatever is still held is dropped when the queue closes.
    drop(st.held);
    let _ = queue.unbind(num);
    Ok(report)
}

/// The queue `num`, bound and set up (whole packets, [`QUEUE_MAX_LEN`], fail closed,
/// [`SOCKET_BUFFER`], non-blocking), and its socket's descriptor (see [`open_queue`]).
fn bind_queue(num: u16) -> Result<(nfq::Queue, i32), EmuError> {
    let (mut queue, fd) = open_queue()?;
    queue.bind(num).map_err(qerr("bind"))?;
    queue
        .set_copy_range(num, COPY_RANGE)
        .map_err(qerr("copy range"))?;
    queue
        .set_queue_max_len(num, QUEUE_MAX_LEN)
        .map_err(qerr("queue length"))?;
    queue.set_fail_open(num, false).map_err(qerr("fail open"))?;
    with_socket(&queue, fd, |s| {
        nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBufForce, &SOCKET_BUFFER)
    })
    .map_err(|e| qerr("receive buffer")(std::io::Error::from(e)))?;
    queue.set_nonblocking(true);
    Ok((queue, fd))
}

/// µs, up to a minute (longer counts as a minute), to 2 significant figures.
fn lag_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid bounds")
}

/// The emulator thread's state between packets.
struct State {
    model: Model,
    ids: HashMap<Ipv4Addr, HostId>,
    report: EmuReport,
    /// Per held packet: the message, what it carries, and its wake lag (ns), if stamped.
    held: HashMap<u64, (nfq::Message, classify::Packet, Option<u64>)>,
    verdicts: Vec<(u64, Verdict, crate::model::Nanos)>,
    wake_lag: hdrhistogram::Histogram<u64>,
    lag: hdrhistogram::Histogram<u64>,
}

impl State {
    /// The model with `hosts`' links, and an empty report listing them.
    fn new(model: ModelConfig, hosts: &[EmuHost]) -> Self {
        let mut st = State {
            model: Model::new(model),
            ids: HashMap::new(),
            report: EmuReport::default(),
            held: HashMap::new(),
            verdicts: Vec::new(),
            wake_lag: lag_histogram(),
            lag: lag_histogram(),
        };
        for (i, h) in hosts.iter().enumerate() {
            st.model.add_host(i as HostId, h.link);
            st.ids.insert(h.addr, i as HostId);
            st.report.hosts.push(HostWire {
                node: h.node.clone(),
                addr: Some(h.addr),
                ..HostWire::default()
            });
        }
        st
    }

    /// Reads what has arrived, a few packets at a time; a packet due at once (no delay, no
    /// cap) gets its verdict before the next is read, so a burst is not held back while the
    /// rest of it is read. Whether the queue was read empty (else more may wait inside `nfq`,
    /// unseen by ppoll).
    fn read_batch(
        &mut self,
        queue: &mut nfq::Queue,
        classifier: &mut Classifier,
        live: &Live,
        now_ns: &impl Fn() -> u64,
    ) -> Result<bool, EmuError> {
        for _ in 0..READ_BATCH {
            let msg = match queue.recv() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => {
                    // The kernel could not hand us packets: they are counted in kernel_dropped.
                    continue;
                }
                Err(e) => return Err(qerr("receive")(e)),
            };
            self.take(queue, classifier, live, msg, now_ns)?;
        }
        Ok(false)
    }

    /// One packet read from the queue: counted as sent and handed to the model (held, or given
    /// its verdict if the model drops it or releases it at once); a packet that is malformed or
    /// not between two hosts is accepted at once.
    fn take(
        &mut self,
        queue: &mut nfq::Queue,
        classifier: &mut Classifier,
        live: &Live,
        msg: nfq::Message,
        now_ns: &impl Fn() -> u64,
    ) -> Result<(), EmuError> {
        let now = now_ns();
        let wake = msg.get_timestamp().and_then(|t| {
            let d = std::time::SystemTime::now().duration_since(t).ok()?;
            // A stamp from another clock, or a stale one, says nothing of our lag.
            (d < Duration::from_secs(10)).then_some(d.as_nanos() as u64)
        });
        let token = u64::from(msg.get_packet_id());
        live.seen.fetch_add(1, Ordering::SeqCst);
        let Ok(packet) = classifier.classify(msg.get_payload()) else {
            self.report.malformed += 1;
            return give(queue, msg, nfq::Verdict::Accept);
        };
        let (src, dst) = (
            self.ids.get(&packet.src).copied(),
            self.ids.get(&packet.dst).copied(),
        );
        let (Some(src), Some(dst)) = (src, dst) else {
            self.report.unknown.add(packet.len);
            return give(queue, msg, nfq::Verdict::Accept);
        };
        let report = &mut self.report;
        report.hosts[src as usize].sent.add(&packet);
        match self.model.push(now, token, src, dst, packet.len) {
            Ok(()) => {
                self.held.insert(token, (msg, packet, wake));
                report.held_max = report.held_max.max(self.held.len());
                if self.model.next_deadline().is_some_and(|t| t <= now) {
                    self.release(queue, now_ns)?;
                }
                Ok(())
            }
            Err(reason) => {
                match reason {
                    DropReason::UpQueue => {
                        report.hosts[src as usize].dropped_up_queue.add(packet.len)
                    }
                    DropReason::Loss => report.hosts[src as usize].dropped_loss.add(packet.len),
                    DropReason::DownQueue => report.hosts[dst as usize]
                        .dropped_down_queue
                        .add(packet.len),
                }
                give(queue, msg, nfq::Verdict::Drop)
            }
        }
    }

    /// Gives every packet due by now its verdict. A delivered packet's lag is its wake lag plus
    /// the time from its release by the model to the end of its verdict (which hands it to the
    /// receiver's stack).
    fn release(
        &mut self,
        queue: &mut nfq::Queue,
        now_ns: impl Fn() -> u64,
    ) -> Result<(), EmuError> {
        self.model.poll(now_ns(), &mut self.verdicts);
        for (token, verdict, due) in self.verdicts.drain(..) {
            let Some((msg, packet, wake)) = self.held.remove(&token) else {
                continue;
            };
            let dst = self.ids[&packet.dst] as usize;
            let accepted = verdict == Verdict::Accept;
            if accepted {
                self.report.hosts[dst].received.add(&packet);
                give(queue, msg, nfq::Verdict::Accept)?;
            } else {
                self.report.hosts[dst].dropped_down_queue.add(packet.len);
                give(queue, msg, nfq::Verdict::Drop)?;
            }
            if let (true, Some(wake)) = (accepted, wake) {
                let late = now_ns().saturating_sub(due);
                self.wake_lag.saturating_record(wake / 1000);
                self.lag.saturating_record((wake + late) / 1000);
            }
        }
        Ok(())
    }
}
