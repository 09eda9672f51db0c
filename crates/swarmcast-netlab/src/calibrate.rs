//! `swarmcast lab --net-check`: what the emulator delivers between two emulated hosts, against
//! what was asked, in three phases on one network (each with its own emulator):
//!
//! 1. **Round trip**: [`CheckSpec::connects`] TCP connects from A to B (a connect returns after
//!    SYN → SYN-ACK: one round trip); the median, to within max(10%, 1 ms).
//! 2. **Loss**: [`CheckSpec::probes`] numbered UDP datagrams from B to A, paced; the share that
//!    never arrived, to within 20% of the asked loss (a 0% loss must measure 0).
//! 3. **Throughput**: one TCP flow from A to B for [`CheckSpec::throughput_secs`] under A's upload
//!    cap, at the asked round trip and 0% loss; the receiver's goodput after the first second,
//!    turned into wire bytes with the emulator's own count of what B received (IP bytes per byte
//!    the application read, retransmissions included), to within 10% of the cap.

use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::emu::{EmuConfig, EmuHost, Emulator};
use crate::model::{LinkSpec, ModelConfig, PathSpec};
use crate::topo::{in_ns, Host, HostSpec, Net, NetError};

/// What to check.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckSpec {
    /// Round trip asked, ms.
    pub rtt_ms: f64,
    /// Loss asked per direction, percent.
    pub loss_pct: f64,
    /// Upload cap of A asked, bytes/s.
    pub cap: u64,
    /// Queue behind the cap, ms.
    pub queue_ms: f64,
    /// TCP connects timed.
    pub connects: usize,
    /// UDP probes sent.
    pub probes: usize,
    /// Seconds of the throughput flow.
    pub throughput_secs: f64,
}

impl Default for CheckSpec {
    fn default() -> Self {
        Self {
            rtt_ms: 50.0,
            loss_pct: 1.0,
            cap: 250_000,
            queue_ms: 100.0,
            connects: 50,
            probes: 30_000,
            throughput_secs: 6.0,
        }
    }
}

/// One figure against what was asked.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Asked.
    pub asked: f64,
    /// Measured.
    pub measured: f64,
    /// Largest allowed difference.
    pub tolerance: f64,
}

impl Measured {
    /// Within tolerance.
    pub fn ok(&self) -> bool {
        (self.measured - self.asked).abs() <= self.tolerance
    }
}

/// The calibration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// What was asked.
    pub spec: CheckSpec,
    /// Round trip (median of the connects), ms.
    pub rtt_ms: Measured,
    /// Smallest and largest connect time, ms.
    pub rtt_range_ms: (f64, f64),
    /// Loss, percent.
    pub loss_pct: Measured,
    /// Probes received of those sent.
    pub probes_received: usize,
    /// Wire throughput under the cap, bytes/s.
    pub throughput: Measured,
    /// Goodput (TCP payload) under the cap, bytes/s.
    pub goodput: f64,
    /// CPU the emulator's thread used per second of the throughput phase, s/s.
    pub emulator_cpu_share: f64,
}

impl CheckReport {
    /// All three within tolerance.
    pub fn ok(&self) -> bool {
        self.rtt_ms.ok() && self.loss_pct.ok() && self.throughput.ok()
    }

    /// A few lines for a terminal.
    pub fn text(&self) -> String {
        let mark = |m: &Measured| if m.ok() { "ok" } else { "OUT OF TOLERANCE" };
        format!(
            "round trip: asked {:.1} ms, measured {:.2} ms (median of {} connects, {:.2}-{:.2}), tolerance {:.2} ms: {}\n\
             loss:       asked {:.2}%, measured {:.3}% ({} of {} probes arrived), tolerance {:.3}%: {}\n\
             throughput: cap {:.0} B/s, measured {:.0} B/s on the wire ({:.0} B/s goodput), tolerance {:.0}: {}\n\
             emulator:   {:.1}% of a core during the throughput phase\n",
            self.rtt_ms.asked,
            self.rtt_ms.measured,
            self.spec.connects,
            self.rtt_range_ms.0,
            self.rtt_range_ms.1,
            self.rtt_ms.tolerance,
            mark(&self.rtt_ms),
            self.loss_pct.asked,
            self.loss_pct.measured,
            self.probes_received,
            self.spec.probes,
            self.loss_pct.tolerance,
            mark(&self.loss_pct),
            self.throughput.asked,
            self.throughput.measured,
            self.goodput,
            self.throughput.tolerance,
            mark(&self.throughput),
            100.0 * self.emulator_cpu_share,
        )
    }
}

/// Why the calibration could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The network.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The emulator.
    #[error(transparent)]
    Emu(#[from] crate::emu::EmuError),
    /// A probe socket.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Maps an I/O error of `what` to a [`CheckError`].
fn io(what: &'static str) -> impl Fn(std::io::Error) -> CheckError {
    move |source| CheckError::Io { what, source }
}

const PORT: u16 = 9000;

/// Runs the calibration; see the module documentation.
pub fn run(spec: CheckSpec) -> Result<CheckReport, CheckError> {
    let bench = Bench::create(spec)?;
    let times = bench.round_trip()?;
    let received = bench.loss()?;
    let throughput = bench.throughput()?;
    bench.net.remove()?;
    Ok(verdict(spec, times, received, &throughput))
}

/// The network of the calibration: hosts A and B, each phase under an emulator of its own.
struct Bench {
    spec: CheckSpec,
    net: Net,
    a: Host,
    b: Host,
}

/// What the throughput phase measured.
struct Throughput {
    /// The receiver's goodput after the first second, bytes/s.
    goodput: f64,
    /// IP bytes B received per byte its application read.
    wire_per_payload: f64,
    /// CPU the emulator's thread used per second of the phase, s/s.
    emulator_cpu_share: f64,
}

impl Bench {
    /// The network with hosts A and B (public addresses, emulated).
    fn create(spec: CheckSpec) -> Result<Self, CheckError> {
        let net = Net::create(&[HostSpec::public("a"), HostSpec::public("b")], true)?;
        let a = net.host("a").expect("built").clone();
        let b = net.host("b").expect("built").clone();
        Ok(Self { spec, net, a, b })
    }

    /// An emulator at the asked round trip and queue, with `loss_pct` on the path and A's upload
    /// capped at `cap`.
    fn emulator(&self, loss_pct: f64, cap: Option<u64>) -> Result<Emulator, crate::emu::EmuError> {
        let spec = &self.spec;
        Emulator::start(EmuConfig {
            core_ns: self.net.core_ns().to_owned(),
            queue_num: 0,
            hosts: vec![
                EmuHost {
                    node: "a".into(),
                    addr: self.a.public,
                    link: LinkSpec {
                        up: cap,
                        down: None,
                    },
                },
                EmuHost {
                    node: "b".into(),
                    addr: self.b.public,
                    link: LinkSpec::default(),
                },
            ],
            model: ModelConfig {
                path: PathSpec {
                    one_way: (spec.rtt_ms * 1e6 / 2.0).round() as u64,
                    jitter: 0,
                    loss: loss_pct / 100.0,
                },
                queue: (spec.queue_ms * 1e6).round() as u64,
                ..ModelConfig::default()
            },
            http_servers: vec![],
        })
    }

    /// Phase 1: the times of [`CheckSpec::connects`] TCP connects from A to B, ms, sorted.
    fn round_trip(&self) -> Result<Vec<f64>, CheckError> {
        let b_addr = SocketAddrV4::new(self.b.addr, PORT);
        let e = self.emulator(0.0, None)?;
        let listener =
            in_ns(&self.b.ns, move || TcpListener::bind(b_addr))?.map_err(io("listen"))?;
        let n = self.spec.connects;
        let acceptor = std::thread::spawn(move || {
            for _ in 0..n {
                if listener.accept().is_err() {
                    break;
                }
            }
        });
        let times = in_ns(&self.a.ns, move || -> std::io::Result<Vec<f64>> {
            let mut times = Vec::new();
            for _ in 0..n {
                let t = Instant::now();
                let s =
                    TcpStream::connect_timeout(&SocketAddr::V4(b_addr), Duration::from_secs(5))?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                drop(s);
            }
            Ok(times)
        })?
        .map_err(io("connect"))?;
        let _ = acceptor.join();
        e.stop()?;
        let mut sorted = times;
        sorted.sort_by(f64::total_cmp);
        Ok(sorted)
    }

    /// Phase 2: of [`CheckSpec::probes`] numbered UDP datagrams from B to A at the asked loss,
    /// how many arrived.
    fn loss(&self) -> Result<usize, CheckError> {
        let e = self.emulator(self.spec.loss_pct, None)?;
        let a_addr = SocketAddrV4::new(self.a.addr, PORT + 1);
        let rx = in_ns(&self.a.ns, move || UdpSocket::bind(a_addr))?.map_err(io("bind"))?;
        rx.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(io("timeout"))?;
        let probes = self.spec.probes;
        let receiver = std::thread::spawn(move || count_probes(&rx, probes));
        let b_local = self.b.addr;
        in_ns(&self.b.ns, move || -> std::io::Result<()> {
            let tx = UdpSocket::bind(SocketAddrV4::new(b_local, 0))?;
            let start = Instant::now();
            for k in 0..probes {
                // Paced at 10,000 a second, so no queue ever fills.
                let due = Duration::from_micros(100 * k as u64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
                tx.send_to(&(k as u64).to_be_bytes(), a_addr)?;
            }
            Ok(())
        })?
        .map_err(io("probe"))?;
        let received = receiver.join().unwrap_or(0);
        e.stop()?;
        Ok(received)
    }

    /// Phase 3: one TCP flow from A to B for [`CheckSpec::throughput_secs`] under A's cap, at
    /// 0% loss.
    fn throughput(&self) -> Result<Throughput, CheckError> {
        let e = self.emulator(0.0, Some(self.spec.cap))?;
        let b_addr = SocketAddrV4::new(self.b.addr, PORT + 2);
        let listener =
            in_ns(&self.b.ns, move || TcpListener::bind(b_addr))?.map_err(io("listen"))?;
        let secs = self.spec.throughput_secs;
        let sink = std::thread::spawn(move || sink(&listener));
        in_ns(&self.a.ns, move || -> std::io::Result<()> {
            let mut s =
                TcpStream::connect_timeout(&SocketAddr::V4(b_addr), Duration::from_secs(5))?;
            let chunk = vec![0x5au8; 16 * 1024];
            let start = Instant::now();
            while start.elapsed().as_secs_f64() < secs {
                s.write_all(&chunk)?;
            }
            Ok(())
        })?
        .map_err(io("send"))?;
        let (counted, window, total) = sink
            .join()
            .map_err(|_| io("receive")(std::io::Error::other("receiver panicked")))?
            .map_err(io("receive"))?;
        let report = e.stop()?;
        Ok(Throughput {
            goodput: counted as f64 / window.max(1e-9),
            // IP bytes B received per byte its application read (what A sent includes packets
            // the queue dropped).
            wire_per_payload: report.hosts[1].received.ip_bytes as f64 / total.max(1) as f64,
            emulator_cpu_share: report.cpu_secs / report.wall_secs.max(1e-9),
        })
    }
}

/// Receives numbered probes on `rx` until nothing has come for a while (bounded: 10 quiet
/// reads); how many of the `probes` numbers arrived.
fn count_probes(rx: &UdpSocket, probes: usize) -> usize {
    let mut seen = vec![false; probes];
    let mut buf = [0u8; 64];
    let mut idle = 0;
    while idle < 10 {
        match rx.recv(&mut buf) {
            Ok(8) => {
                idle = 0;
                let k = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes")) as usize;
                if let Some(s) = seen.get_mut(k) {
                    *s = true;
                }
            }
            Ok(_) => {}
            Err(_) => idle += 1,
        }
    }
    seen.iter().filter(|s| **s).count()
}

/// Reads the one connection `listener` accepts to its end: the bytes read after the first
/// second, the seconds they took, and all bytes read.
fn sink(listener: &TcpListener) -> std::io::Result<(u64, f64, u64)> {
    let (mut s, _) = listener.accept()?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = vec![0u8; 64 * 1024];
    let start = Instant::now();
    let (mut counted, mut from, mut total) = (0u64, None, 0u64);
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        // The first second is slow start; count the rest. The read that crosses the second
        // may return bytes buffered before it: the window starts after it.
        if from.is_some() {
            counted += n as u64;
        } else if start.elapsed() >= Duration::from_secs(1) {
            from = Some(Instant::now());
        }
    }
    let window = from.map_or(0.0, |t| t.elapsed().as_secs_f64());
    Ok((counted, window, total))
}

/// The report: each phase's figure against what `spec` asked. `times`: the connect times, ms,
/// sorted.
fn verdict(spec: CheckSpec, times: Vec<f64>, received: usize, t: &Throughput) -> CheckReport {
    let median = times[(times.len() - 1) / 2];
    let loss = 100.0 * (1.0 - received as f64 / spec.probes as f64);
    CheckReport {
        spec,
        rtt_ms: Measured {
            asked: spec.rtt_ms,
            measured: median,
            tolerance: (0.1 * spec.rtt_ms).max(1.0),
        },
        rtt_range_ms: (times[0], times[times.len() - 1]),
        loss_pct: Measured {
            asked: spec.loss_pct,
            measured: loss,
            tolerance: 0.2 * spec.loss_pct,
        },
        probes_received: received,
        throughput: Measured {
            asked: spec.cap as f64,
            measured: t.goodput * t.wire_per_payload,
            tolerance: 0.1 * spec.cap as f64,
        },
        goodput: t.goodput,
        emulator_cpu_share: t.emulator_cpu_share,
    }
}
