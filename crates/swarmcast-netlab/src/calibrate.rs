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
use crate::topo::{in_ns, HostSpec, Net, NetError};

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

fn io(what: &'static str) -> impl Fn(std::io::Error) -> CheckError {
    move |source| CheckError::Io { what, source }
}

const PORT: u16 = 9000;

/// Runs the calibration; see the module documentation.
pub fn run(spec: CheckSpec) -> Result<CheckReport, CheckError> {
    let net = Net::create(&[HostSpec::public("a"), HostSpec::public("b")], true)?;
    let a = net.host("a").expect("built").clone();
    let b = net.host("b").expect("built").clone();
    let emu = |loss_pct: f64, cap: Option<u64>| {
        Emulator::start(EmuConfig {
            core_ns: net.core_ns().to_owned(),
            queue_num: 0,
            hosts: vec![
                EmuHost {
                    node: "a".into(),
                    addr: a.public,
                    link: LinkSpec {
                        up: cap,
                        down: None,
                    },
                },
                EmuHost {
                    node: "b".into(),
                    addr: b.public,
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
    };
    let b_addr = SocketAddrV4::new(b.addr, PORT);

    // 1. Round trip.
    let e = emu(0.0, None)?;
    let listener = in_ns(&b.ns, move || TcpListener::bind(b_addr))?.map_err(io("listen"))?;
    let n = spec.connects;
    let acceptor = std::thread::spawn(move || {
        for _ in 0..n {
            if listener.accept().is_err() {
                break;
            }
        }
    });
    let times = in_ns(&a.ns, move || -> std::io::Result<Vec<f64>> {
        let mut times = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            let s = TcpStream::connect_timeout(&SocketAddr::V4(b_addr), Duration::from_secs(5))?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            drop(s);
        }
        Ok(times)
    })?
    .map_err(io("connect"))?;
    let _ = acceptor.join();
    e.stop()?;
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[(sorted.len() - 1) / 2];

    // 2. Loss, B to A.
    let e = emu(spec.loss_pct, None)?;
    let a_addr = SocketAddrV4::new(a.addr, PORT + 1);
    let rx = in_ns(&a.ns, move || UdpSocket::bind(a_addr))?.map_err(io("bind"))?;
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(io("timeout"))?;
    let probes = spec.probes;
    let receiver = std::thread::spawn(move || {
        let mut seen = vec![false; probes];
        let mut buf = [0u8; 64];
        let mut idle = 0;
        // Until nothing has come for a while (bounded: 10 quiet reads).
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
    });
    in_ns(&b.ns, move || -> std::io::Result<()> {
        let tx = UdpSocket::bind(SocketAddrV4::new(b.addr, 0))?;
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
    let loss = 100.0 * (1.0 - received as f64 / probes as f64);

    // 3. Throughput under the cap, A to B.
    let e = emu(0.0, Some(spec.cap))?;
    let b_addr = SocketAddrV4::new(b.addr, PORT + 2);
    let listener = in_ns(&b.ns, move || TcpListener::bind(b_addr))?.map_err(io("listen"))?;
    let secs = spec.throughput_secs;
    let sink = std::thread::spawn(move || -> std::io::Result<(u64, f64, u64)> {
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
    });
    in_ns(&a.ns, move || -> std::io::Result<()> {
        let mut s = TcpStream::connect_timeout(&SocketAddr::V4(b_addr), Duration::from_secs(5))?;
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
    let goodput = counted as f64 / window.max(1e-9);
    // IP bytes B received per byte its application read (what A sent includes packets the
    // queue dropped).
    let wire_per_payload = report.hosts[1].received.ip_bytes as f64 / total.max(1) as f64;
    net.remove()?;
    Ok(CheckReport {
        spec,
        rtt_ms: Measured {
            asked: spec.rtt_ms,
            measured: median,
            tolerance: (0.1 * spec.rtt_ms).max(1.0),
        },
        rtt_range_ms: (sorted[0], sorted[sorted.len() - 1]),
        loss_pct: Measured {
            asked: spec.loss_pct,
            measured: loss,
            tolerance: 0.2 * spec.loss_pct,
        },
        probes_received: received,
        throughput: Measured {
            asked: spec.cap as f64,
            measured: goodput * wire_per_payload,
            tolerance: 0.1 * spec.cap as f64,
        },
        goodput,
        emulator_cpu_share: report.cpu_secs / report.wall_secs.max(1e-9),
    })
}
