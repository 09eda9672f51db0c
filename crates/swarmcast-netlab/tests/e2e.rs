//! Root-only tests of the emulated network's topology (`topo`): real namespaces, real sockets.
//!
//! Without root every test prints why and passes. The binary is named `e2e` so that nextest runs
//! it in the serial group; inside it, the tests take one lock, since `cleanup_all` removes every
//! run's namespaces.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use swarmcast_netlab::topo::{cleanup_all, in_ns, require_root, HostSpec, LinkCounters, Net};

static SERIAL: Mutex<()> = Mutex::new(());

/// The lock, or `None` (after saying why) when not root.
fn root_or_skip(test: &str) -> Option<MutexGuard<'static, ()>> {
    if let Err(e) = require_root() {
        eprintln!("skipping {test}: {e}");
        return None;
    }
    Some(SERIAL.lock().unwrap_or_else(PoisonError::into_inner))
}

fn namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

fn with_prefix(prefix: &str) -> Vec<String> {
    namespaces()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

const TIMEOUT: Duration = Duration::from_secs(1);

fn listen(ns: &str, port: u16) -> TcpListener {
    in_ns(ns, move || TcpListener::bind(("0.0.0.0", port)))
        .unwrap()
        .unwrap()
}

fn connect(ns: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    in_ns(ns, move || TcpStream::connect_timeout(&to, TIMEOUT)).unwrap()
}

fn udp(ns: &str) -> UdpSocket {
    let socket = in_ns(ns, || UdpSocket::bind("0.0.0.0:0")).unwrap().unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    socket
}

/// Counters once two snapshots 200 ms apart agree (at most 5 s).
fn quiet_counters(net: &Net) -> Vec<LinkCounters> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = net.counters().unwrap();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = net.counters().unwrap();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[test]
fn public_and_nat_hosts_connect_filter_and_count() {
    let Some(_serial) = root_or_skip("public_and_nat_hosts_connect_filter_and_count") else {
        return;
    };
    let specs = [
        HostSpec::public("publisher"),
        HostSpec::public("viewer-1"),
        HostSpec::behind_nat("viewer-2"),
    ];
    let net = Net::create(&specs, false).unwrap();
    let prefix = net.prefix().to_string();
    let (publ, pub2, natted) = (
        net.host("publisher").unwrap(),
        net.host("viewer-1").unwrap(),
        net.host("viewer-2").unwrap(),
    );
    assert_eq!(net.hosts().len(), 3);
    assert_eq!(publ.addr.to_string(), "10.77.1.2");
    assert_eq!(publ.public, publ.addr);
    assert_eq!(natted.addr.to_string(), "10.78.3.2");
    assert_eq!(natted.public.to_string(), "10.77.3.2");
    assert_eq!(natted.nat_ns.as_deref(), Some(&*format!("{prefix}n3")));
    assert_eq!(net.core_ns(), format!("{prefix}core"));
    assert_eq!(with_prefix(&prefix).len(), 5);

    // Interfaces built as documented: no IPv6, offloads off, no ARP.
    let out = net
        .command(publ, "ip")
        .args(["-d", "link", "show", "eth0"])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&out.stdout);
    assert!(
        link.contains("NOARP") && link.contains("mtu 1500"),
        "{link}"
    );
    let out = net
        .command(publ, "ethtool")
        .args(["-k", "eth0"])
        .output()
        .unwrap();
    let features = String::from_utf8_lossy(&out.stdout);
    for f in [
        "tcp-segmentation-offload: off",
        "generic-segmentation-offload: off",
        "generic-receive-offload: off",
    ] {
        assert!(features.contains(f), "{f} in {features}");
    }
    let out = net
        .command(publ, "cat")
        .args([
            "/proc/sys/net/ipv6/conf/all/disable_ipv6",
            "/proc/sys/net/ipv6/conf/eth0/disable_ipv6",
        ])
        .args([
            "/proc/sys/net/ipv4/conf/eth0/rp_filter",
            "/proc/sys/net/ipv4/ip_forward",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n1\n0\n0\n");
    let core_if = Command::new("ip")
        .args(["netns", "exec", net.core_ns(), "cat"])
        .args([
            "/proc/sys/net/ipv4/conf/c3/rp_filter",
            "/proc/sys/net/ipv4/ip_forward",
        ])
        .args(["/proc/sys/net/ipv6/conf/c3/disable_ipv6"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&core_if.stdout), "0\n1\n1\n");

    // Public to public, with N bytes.
    const N: usize = 1 << 20;
    let listener = listen(&pub2.ns, 7000);
    let mut client = connect(&publ.ns, SocketAddr::new(IpAddr::V4(pub2.public), 7000)).unwrap();
    let (mut server, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), IpAddr::V4(publ.public));
    let writer = std::thread::spawn(move || {
        client.write_all(&vec![7u8; N]).unwrap();
        client
    });
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = vec![0u8; N];
    server.read_exact(&mut got).unwrap();
    drop(writer.join().unwrap());
    drop(server);

    // NAT host out to a public host: the peer is the NAT's public address.
    let listener = listen(&publ.ns, 7001);
    let mut out = connect(&natted.ns, SocketAddr::new(IpAddr::V4(publ.public), 7001)).unwrap();
    let (mut inb, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), IpAddr::V4(natted.public));
    out.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    inb.set_read_timeout(Some(TIMEOUT)).unwrap();
    inb.read_exact(&mut buf).unwrap();
    inb.write_all(b"pong").unwrap();
    out.set_read_timeout(Some(TIMEOUT)).unwrap();
    out.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
    drop((out, inb, listener));

    let before = net.counters().unwrap();
    assert_eq!(before[2].nat_dropped_packets, 0, "{before:?}");

    // Unsolicited inbound to the NAT's public address: dropped, so connecting times out.
    let _nat_listener = listen(&natted.ns, 7002);
    let started = Instant::now();
    let refused = connect(&publ.ns, SocketAddr::new(IpAddr::V4(natted.public), 7002));
    let err = refused.expect_err("connected through the NAT unsolicited");
    assert!(
        matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    // UDP: a mapping opened towards one peer answers it, and only it.
    let inside = udp(&natted.ns);
    let server = udp(&publ.ns);
    let third = udp(&pub2.ns);
    let server_addr = SocketAddr::new(IpAddr::V4(publ.public), server.local_addr().unwrap().port());
    inside.send_to(b"hello", server_addr).unwrap();
    let (n, mapped) = server.recv_from(&mut [0u8; 64]).unwrap();
    assert_eq!((n, mapped.ip()), (5, IpAddr::V4(natted.public)));
    server.send_to(b"reply", mapped).unwrap();
    assert_eq!(inside.recv_from(&mut [0u8; 64]).unwrap().0, 5);
    third.send_to(b"intrude", mapped).unwrap();
    let intrusion = inside.recv_from(&mut [0u8; 64]);
    assert!(
        intrusion.is_err(),
        "a third party got through the NAT: {intrusion:?}"
    );
    drop((inside, server, third));

    // A datagram to the host's own public address ends at its NAT, which answers with an ICMP
    // error: neither crosses the emulator's link, both are counted at the NAT.
    let own = udp(&natted.ns);
    own.send_to(b"self", SocketAddr::new(IpAddr::V4(natted.public), 7003))
        .unwrap();
    drop(own);

    let after = quiet_counters(&net);
    eprintln!("{after:#?}");
    let nat = &after[2];
    assert!(nat.nat_dropped_packets >= 2, "{nat:?}");
    assert!(nat.nat_dropped_bytes > 0);
    // 20 bytes of IP header, 8 of UDP, 4 of payload; the error quotes it after 28 of its own.
    assert_eq!((nat.to_nat_packets, nat.to_nat_bytes), (1, 32), "{nat:?}");
    assert_eq!(
        (nat.from_nat_packets, nat.from_nat_bytes),
        (1, 60),
        "{nat:?}"
    );
    assert!(after[..2]
        .iter()
        .all(|c| c.to_nat_bytes == 0 && c.from_nat_bytes == 0));
    assert!(after[0].tx_bytes >= N as u64, "{:?}", after[0]);
    assert!(after[1].rx_bytes >= N as u64, "{:?}", after[1]);
    let tx: u64 = after.iter().map(|c| c.tx_bytes).sum();
    let rx: u64 = after.iter().map(|c| c.rx_bytes).sum();
    let dropped: u64 = after.iter().map(|c| c.nat_dropped_bytes).sum();
    let (to_nat, from_nat) = (nat.to_nat_bytes, nat.from_nat_bytes);
    assert_eq!(
        tx + from_nat,
        rx + dropped + to_nat,
        "bytes sent = received + dropped (with the NAT's own): {after:#?}"
    );
    let tx_p: u64 = after.iter().map(|c| c.tx_packets).sum();
    let rx_p: u64 = after.iter().map(|c| c.rx_packets).sum();
    let dropped_p: u64 = after.iter().map(|c| c.nat_dropped_packets).sum();
    assert_eq!(
        tx_p + nat.from_nat_packets,
        rx_p + dropped_p + nat.to_nat_packets
    );

    // A process left inside is killed on removal.
    let mut sleeper = net.command(natted, "sleep").arg("60").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    net.remove().unwrap();
    assert!(
        with_prefix(&prefix).is_empty(),
        "{:?}",
        with_prefix(&prefix)
    );
    assert!(!sleeper.wait().unwrap().success());
}

/// Whether a namespace belongs to a run of this process.
fn ours(ns: &str) -> bool {
    let pid = std::process::id();
    ns.starts_with(&format!("swc-{pid}-")) || ns.starts_with(&format!("swc-{pid}_"))
}

/// A pid no process has (well past pid_max, or at least not alive now).
fn dead_pid() -> u32 {
    (4_194_000..4_194_300)
        .rev()
        .find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        .unwrap()
}

#[test]
fn stale_runs_removed_and_cleanup_all() {
    let Some(_serial) = root_or_skip("stale_runs_removed_and_cleanup_all") else {
        return;
    };
    let dead = format!("swc-{}-", dead_pid());
    let add = |name: &str| {
        let status = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .unwrap();
        assert!(status.success());
    };
    add(&format!("{dead}core"));
    add(&format!("{dead}h1"));
    let mut sleeper = Command::new("ip")
        .args(["netns", "exec", &format!("{dead}h1"), "sleep", "60"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let specs = [HostSpec::behind_nat("inside"), HostSpec::public("outside")];
    let net = Net::create(&specs, true).unwrap();
    assert!(
        with_prefix(&dead).is_empty(),
        "stale run left: {:?}",
        with_prefix(&dead)
    );
    assert!(
        !sleeper.wait().unwrap().success(),
        "the stale run's process survived"
    );
    assert_eq!(with_prefix(net.prefix()).len(), 4);
    // With `emulate` and no emulator, the core forwards nothing (fail closed).
    let (inside, outside) = (&net.hosts()[0], &net.hosts()[1]);
    let core = net.core_ns().to_string();
    let listener = listen(&outside.ns, 7100);
    let through = connect(
        &inside.ns,
        SocketAddr::new(IpAddr::V4(outside.public), 7100),
    );
    assert!(through.is_err(), "the core forwarded without an emulator");
    drop(listener);
    let rules = Command::new("ip")
        .args(["netns", "exec", &core, "iptables", "-S", "FORWARD"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&rules.stdout).contains("NFQUEUE --queue-num 0"));

    // `cleanup_all` removes every `swc-` namespace: only when no other live run has some.
    add(&format!("{dead}h9"));
    let foreign: Vec<_> = namespaces()
        .into_iter()
        .filter(|n| n.starts_with("swc-") && !n.starts_with(&dead))
        .filter(|n| !ours(n))
        .collect();
    if foreign.is_empty() {
        let removed = cleanup_all().unwrap();
        assert!(removed >= 4, "{removed}");
        let left: Vec<_> = namespaces()
            .into_iter()
            .filter(|n| n.starts_with("swc-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    } else {
        eprintln!("not running cleanup_all: other runs' namespaces exist: {foreign:?}");
        Command::new("ip")
            .args(["netns", "del", &format!("{dead}h9")])
            .status()
            .unwrap();
    }
    let prefix = net.prefix().to_string();
    net.remove().unwrap();
    assert!(with_prefix(&prefix).is_empty());
}

#[test]
fn hundred_hosts_build_count_and_remove() {
    let Some(_serial) = root_or_skip("hundred_hosts_build_count_and_remove") else {
        return;
    };
    let specs: Vec<_> = (0..100)
        .map(|i| HostSpec {
            node: format!("viewer-{i}"),
            nat: i % 5 < 3,
            random_ports: i % 5 == 2,
        })
        .collect();
    let started = Instant::now();
    let net = Net::create(&specs, true).unwrap();
    let built = started.elapsed();
    let prefix = net.prefix().to_string();
    assert_eq!(with_prefix(&prefix).len(), 161);
    let started = Instant::now();
    let counters = net.counters().unwrap();
    let counted = started.elapsed();
    assert_eq!(counters.len(), 100);
    assert!(
        counters
            .iter()
            .all(|c| c.tx_packets == 0 && c.rx_packets == 0),
        "chatter on quiet links"
    );
    let started = Instant::now();
    net.remove().unwrap();
    let removed = started.elapsed();
    assert!(with_prefix(&prefix).is_empty());
    eprintln!("100 hosts (60 NAT): create {built:?}, counters {counted:?}, remove {removed:?}");
}

/// Dials `to` from local port `port` (SO_REUSEADDR and SO_REUSEPORT, as librqbit's dialler binds
/// a source port) inside `ns`, waiting up to 5 s, and returns the connected stream.
fn dial_from_port(ns: &str, port: u16, to: SocketAddr) -> std::io::Result<TcpStream> {
    in_ns(ns, move || {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
        socket.connect_timeout(&to.into(), Duration::from_secs(5))?;
        Ok(TcpStream::from(socket))
    })
    .unwrap()
}

#[test]
fn two_hosts_behind_nat_connect_by_dialling_each_other_from_the_same_port() {
    let Some(_serial) =
        root_or_skip("two_hosts_behind_nat_connect_by_dialling_each_other_from_the_same_port")
    else {
        return;
    };
    let specs = [HostSpec::behind_nat("a"), HostSpec::behind_nat("b")];
    let net = Net::create(&specs, false).unwrap();
    let (a, b) = (
        net.host("a").unwrap().clone(),
        net.host("b").unwrap().clone(),
    );
    const PORT: u16 = 7100;
    // Neither can be dialled alone: a's SYN into b's NAT is dropped.
    let lone = connect(&a.ns, SocketAddr::new(IpAddr::V4(b.public), PORT));
    assert!(lone.is_err(), "reached a host behind NAT unsolicited");
    let dropped_before = quiet_counters(&net)[1].nat_dropped_packets;
    assert!(dropped_before >= 1, "b's NAT dropped nothing");
    // Both dial, each from PORT to the other's public address and PORT: whichever SYN goes first
    // opens its own NAT for the other's, and TCP's simultaneous open makes one connection.
    let to_b = SocketAddr::new(IpAddr::V4(b.public), PORT);
    let to_a = SocketAddr::new(IpAddr::V4(a.public), PORT);
    let a_ns = a.ns.clone();
    let from_a = std::thread::spawn(move || dial_from_port(&a_ns, PORT, to_b));
    std::thread::sleep(Duration::from_millis(300));
    let mut b_side = dial_from_port(&b.ns, PORT, to_a).expect("b's dial");
    let mut a_side = from_a.join().unwrap().expect("a's dial");
    assert_eq!(a_side.peer_addr().unwrap(), to_b);
    assert_eq!(b_side.peer_addr().unwrap(), to_a);
    a_side.write_all(b"from a").unwrap();
    b_side.write_all(b"from b").unwrap();
    let mut buf = [0u8; 6];
    b_side.set_read_timeout(Some(TIMEOUT)).unwrap();
    b_side.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"from a");
    a_side.set_read_timeout(Some(TIMEOUT)).unwrap();
    a_side.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"from b");
    drop((a_side, b_side));
    net.remove().unwrap();
}

#[test]
fn a_symmetric_nat_defeats_dialling_each_other_from_the_same_port() {
    let Some(_serial) =
        root_or_skip("a_symmetric_nat_defeats_dialling_each_other_from_the_same_port")
    else {
        return;
    };
    // b's NAT gives each connection a random port: a's SYN to b's public address and PORT never
    // matches b's mapping, and b's SYN reaches a from another port than the one a dialled.
    let specs = [
        HostSpec::behind_nat("a"),
        HostSpec::behind_symmetric_nat("b"),
    ];
    let net = Net::create(&specs, false).unwrap();
    let (a, b) = (
        net.host("a").unwrap().clone(),
        net.host("b").unwrap().clone(),
    );
    assert!(!a.random_ports && b.random_ports);
    const PORT: u16 = 7100;
    let to_b = SocketAddr::new(IpAddr::V4(b.public), PORT);
    let to_a = SocketAddr::new(IpAddr::V4(a.public), PORT);
    let a_ns = a.ns.clone();
    let from_a = std::thread::spawn(move || dial_from_port(&a_ns, PORT, to_b));
    std::thread::sleep(Duration::from_millis(300));
    let from_b = dial_from_port(&b.ns, PORT, to_a);
    let from_a = from_a.join().unwrap();
    assert!(
        from_a.is_err() && from_b.is_err(),
        "connected through a symmetric NAT: {from_a:?} {from_b:?}"
    );
    net.remove().unwrap();
    // b still reaches a public host, from a port its NAT chose.
    let specs = [HostSpec::public("p"), HostSpec::behind_symmetric_nat("b")];
    let net = Net::create(&specs, false).unwrap();
    let (p, b) = (
        net.host("p").unwrap().clone(),
        net.host("b").unwrap().clone(),
    );
    let listener = listen(&p.ns, PORT);
    let _out = dial_from_port(&b.ns, PORT, SocketAddr::new(IpAddr::V4(p.public), PORT)).unwrap();
    let (_inb, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), IpAddr::V4(b.public));
    net.remove().unwrap();
}
