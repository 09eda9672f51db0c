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
mod stream;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use self::classify::{Classifier, WireBytes};
use crate::model::{DropReason, HostId, LinkSpec, Model, ModelConfig, Verdict};

/// Bytes of each packet copied to user space: all of it (the links' MTU is 1,500 bytes), so
/// BitTorrent and HTTP streams can be followed to tell payload from control.
pub const COPY_RANGE: u16 = 1600;
/// The queue socket's receive buffer: room for about 40,000 whole packets waiting to be read, so
/// a busy moment of the emulator's thread never makes the kernel drop one.
pub const SOCKET_BUFFER: usize = 64 << 20;
/// Packets the kernel may hold for the emulator.
pub const QUEUE_MAX_LEN: u32 = 1 << 16;
/// Packets read from the queue before the due ones get their verdicts.
pub const READ_BATCH: usize = 32;
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

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// Packets.
    pub packets: u64,
    /// IP bytes.
    pub bytes: u64,
}

impl Count {
    fn add(&mut self, bytes: u32) {
        self.packets += 1;
        self.bytes += u64::from(bytes);
    }
}

/// What crossed one host's access link.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostWire {
    /// The node's name.
    pub node: String,
    /// Its address at the core.
    pub addr: Option<Ipv4Addr>,
    /// What it sent (dropped later or not).
    pub sent: WireBytes,
    /// What it received (delivered).
    pub received: WireBytes,
    /// Its packets its uplink queue dropped.
    pub dropped_up_queue: Count,
    /// Its packets lost on the path.
    pub dropped_loss: Count,
    /// Packets to it that its downlink queue dropped.
    pub dropped_down_queue: Count,
}

impl HostWire {
    /// Every byte the emulator dropped that this host sent (uplink queue, loss) or was sent
    /// (downlink queue).
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_up_queue.bytes + self.dropped_loss.bytes + self.dropped_down_queue.bytes
    }
}

/// What the emulator did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EmuReport {
    /// Per host, in the order configured.
    pub hosts: Vec<HostWire>,
    /// Packets from or to an address that is no host (given their verdict at once).
    pub unknown: Count,
    /// Packets that could not be parsed (accepted, uncounted by class).
    pub malformed: u64,
    /// Sent streams whose payload could not be told from control (their bytes count as control).
    #[serde(default)]
    pub streams_lost: u64,
    /// Most packets held at once.
    pub held_max: usize,
    /// Packets still held when stopped (then dropped by the kernel).
    pub held_at_end: usize,
    /// Packets the kernel dropped because the queue or its socket was full
    /// (`/proc/net/netfilter/nfnetlink_queue`); a valid run has none.
    pub kernel_dropped: u64,
    /// CPU time of the emulator's thread, s.
    pub cpu_secs: f64,
    /// Wall time, s.
    pub wall_secs: f64,
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

/// What the emulator's thread shares while it runs.
#[derive(Debug, Default)]
struct Live {
    seen: AtomicU64,
    held: AtomicUsize,
}

fn run(
    config: EmuConfig,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
    ready: std::sync::mpsc::Sender<()>,
) -> Result<EmuReport, EmuError> {
    crate::topo::enter_ns(&config.core_ns)?;
    let num = config.queue_num;
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
    let dropped_before = kernel_dropped(num);

    let mut model = Model::new(config.model);
    let mut ids: HashMap<Ipv4Addr, HostId> = HashMap::new();
    let mut report = EmuReport::default();
    for (i, h) in config.hosts.iter().enumerate() {
        model.add_host(i as HostId, h.link);
        ids.insert(h.addr, i as HostId);
        report.hosts.push(HostWire {
            node: h.node.clone(),
            addr: Some(h.addr),
            ..HostWire::default()
        });
    }
    // Packets are classified once, as sent; a delivered packet counts for its receiver as it
    // was classified for its sender. So a byte is new (and payload, or control) at both ends of
    // its first transmission, and every retransmission is TCP/IP at both ends, whether it
    // repairs a loss or not.
    let mut classifier = Classifier::new(config.http_servers.iter().copied(), true);
    let mut held: HashMap<u64, (nfq::Message, classify::Packet)> = HashMap::new();
    let mut verdicts = Vec::new();
    let start = Instant::now();
    let cpu0 = thread_cpu_secs();
    let _ = ready.send(());
    let now_ns = || start.elapsed().as_nanos() as u64;

    while !stop.load(Ordering::Relaxed) {
        // Read what has arrived, a few packets at a time: packets due now get their verdict
        // before more are read, so a burst is not held back while the rest of it is read.
        // Whether the queue was read empty (else more may wait inside `nfq`, unseen by ppoll).
        let mut drained = false;
        for _ in 0..READ_BATCH {
            let mut msg = match queue.recv() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => {
                    // The kernel could not hand us packets: they are counted in kernel_dropped.
                    continue;
                }
                Err(e) => return Err(qerr("receive")(e)),
            };
            let now = now_ns();
            let token = u64::from(msg.get_packet_id());
            live.seen.fetch_add(1, Ordering::SeqCst);
            let packet = match classifier.classify(msg.get_payload()) {
                Ok(p) => p,
                Err(_) => {
                    report.malformed += 1;
                    msg.set_verdict(nfq::Verdict::Accept);
                    queue.verdict(msg).map_err(qerr("verdict"))?;
                    continue;
                }
            };
            let (src, dst) = (ids.get(&packet.src).copied(), ids.get(&packet.dst).copied());
            let (Some(src), Some(dst)) = (src, dst) else {
                report.unknown.add(packet.len);
                msg.set_verdict(nfq::Verdict::Accept);
                queue.verdict(msg).map_err(qerr("verdict"))?;
                continue;
            };
            report.hosts[src as usize].sent.add(&packet);
            match model.push(now, token, src, dst, packet.len) {
                Ok(()) => {
                    held.insert(token, (msg, packet));
                    report.held_max = report.held_max.max(held.len());
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
                    msg.set_verdict(nfq::Verdict::Drop);
                    queue.verdict(msg).map_err(qerr("verdict"))?;
                }
            }
        }
        model.poll(now_ns(), &mut verdicts);
        for (token, verdict) in verdicts.drain(..) {
            let Some((mut msg, packet)) = held.remove(&token) else {
                continue;
            };
            let dst = ids[&packet.dst] as usize;
            match verdict {
                Verdict::Accept => {
                    report.hosts[dst].received.add(&packet);
                    msg.set_verdict(nfq::Verdict::Accept);
                }
                Verdict::Drop(_) => {
                    report.hosts[dst].dropped_down_queue.add(packet.len);
                    msg.set_verdict(nfq::Verdict::Drop);
                }
            }
            queue.verdict(msg).map_err(qerr("verdict"))?;
        }
        live.held.store(held.len(), Ordering::SeqCst);
        let wait = match model.next_deadline() {
            Some(t) => Duration::from_nanos(t.saturating_sub(now_ns())).min(STOP_CHECK),
            None => STOP_CHECK,
        };
        if drained && !wait.is_zero() {
            wait_readable(&queue, fd, wait)?;
        }
    }
    report.held_at_end = held.len();
    report.streams_lost = classifier.streams_lost();
    report.cpu_secs = thread_cpu_secs() - cpu0;
    report.wall_secs = start.elapsed().as_secs_f64();
    report.kernel_dropped = kernel_dropped(num).saturating_sub(dropped_before);
    // Whatever is still held is dropped when the queue closes.
    drop(held);
    let _ = queue.unbind(num);
    Ok(report)
}
