//! Transmission (Debian's `transmission-cli`), a client we did not write, downloads a live
//! segment given only its .torrent and the publisher's embedded tracker. Transmission refuses
//! peers at 127.x addresses, so the publisher and Transmission each run in a network namespace
//! of their own (swarmcast-netlab, plain forwarding between them); root only, otherwise skipped.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use swarmcast_netlab::topo::{in_ns, HostSpec, Net};

use crate::util::{http_get, tool};

/// Kills the process when dropped (a failed assertion must not leave it running; removing the
/// network kills what is left in its namespaces too).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET url` from inside namespace `ns`: the status and body.
fn get_in(ns: &str, url: String) -> (u16, Vec<u8>) {
    in_ns(ns, move || http_get(&url)).unwrap()
}

/// Counter `name` on the publisher's `/metrics` (fetched from `ns`), and the whole text.
fn counter(ns: &str, http: &str, name: &str) -> (u64, String) {
    let (status, body) = get_in(ns, format!("http://{http}/metrics"));
    assert_eq!(status, 200);
    let metrics = String::from_utf8(body).unwrap();
    let value = metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
        .parse()
        .unwrap();
    (value, metrics)
}

/// The publisher (host 1) publishes 4 s of the synthetic feed in 1 s segments and lingers;
/// `transmission-cli` (host 2), given segment 1's .torrent and nothing else (DHT, PEX, LPD and
/// uTP off), finds the publisher through our tracker at the publisher's 10.77.1.2 and downloads
/// the segment byte for byte from the wire seeder, which counts no protocol violation.
#[test]
fn transmission_downloads_a_live_segment_with_only_its_torrent_and_our_tracker() {
    if !super::netlab::root_or_skip() {
        return;
    }
    let transmission = tool("transmission-cli");
    let dir = tempfile::tempdir().unwrap();
    let net = Net::create(
        &[
            HostSpec::public("publisher"),
            HostSpec::public("transmission"),
        ],
        false,
    )
    .unwrap();
    let (p, t) = (
        net.host("publisher").unwrap().clone(),
        net.host("transmission").unwrap().clone(),
    );
    let http = format!("{}:8080", p.addr);
    let data = dir.path().join("data");
    let publisher = net
        .command(&p, env!("CARGO_BIN_EXE_swarmcast"))
        .env("SWARMCAST_LOG", "warn")
        .args([
            "publish",
            "--synth",
            "--synth-secs",
            "4",
            "--segment-secs",
            "1",
            "--linger",
            "300",
            "--keep-segments",
        ])
        .args(["--http", &http])
        .args(["--listen", &format!("{}:6881", p.addr)])
        .arg("--data-dir")
        .arg(&data)
        .arg("--key")
        .arg(dir.path().join("k"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("publisher.log")).unwrap())
        .spawn()
        .unwrap();
    let _publisher = KillOnDrop(publisher);

    // Segment 1's torrent, once the publisher serves it (fetched from Transmission's host: the
    // route works).
    let started = Instant::now();
    let torrent = loop {
        let (addr, url) = (
            http.parse::<std::net::SocketAddr>().unwrap(),
            format!("http://{http}/segments/00000001.torrent"),
        );
        // Connect first: until the publisher listens, http_get would panic.
        let got = in_ns(&t.ns, move || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                .ok()
                .map(|_| http_get(&url))
        })
        .unwrap();
        if let Some((200, body)) = got {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "hang guard: the publisher never served segment 1's torrent"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let announce = format!("http://{http}/announce");
    assert!(
        torrent
            .windows(announce.len())
            .any(|w| w == announce.as_bytes()),
        "the torrent does not name our tracker at {announce}"
    );
    let torrent_path = dir.path().join("1.torrent");
    std::fs::write(&torrent_path, &torrent).unwrap();

    // Transmission: its settings with every other way to find peers off, a script that marks the
    // download finished, its output to a log.
    let config = dir.path().join("transmission");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("settings.json"),
        r#"{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false, "port-forwarding-enabled": false, "blocklist-enabled": false}"#,
    )
    .unwrap();
    let done = dir.path().join("done");
    let script = dir.path().join("done.sh");
    std::fs::write(&script, format!("#!/bin/sh\ntouch '{}'\n", done.display())).unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let save = dir.path().join("save");
    std::fs::create_dir_all(&save).unwrap();
    let log = dir.path().join("transmission.log");
    let client = net
        .command(&t, &transmission)
        .arg("-g")
        .arg(&config)
        .arg("-w")
        .arg(&save)
        .args(["-et", "-M", "-B", "-D", "-U", "-p", "51413", "-f"])
        .arg(&script)
        .arg(&torrent_path)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("transmission.err")).unwrap())
        .spawn()
        .unwrap();
    let mut client = KillOnDrop(client);
    let started = Instant::now();
    while !done.exists() {
        if let Some(status) = client.0.try_wait().unwrap() {
            panic!(
                "transmission-cli exited {status:?}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "hang guard: transmission did not finish: {}",
            tail(&log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    drop(client);

    let stream_dir = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("the publisher's stream directory");
    let published = std::fs::read(stream_dir.join("00000001.ts")).unwrap();
    assert_eq!(
        std::fs::read(save.join("00000001.ts")).unwrap(),
        published,
        "Transmission's copy differs from the published segment"
    );
    let (announces, metrics) = counter(&t.ns, &http, "swarmcast_tracker_announces_total");
    assert!(announces >= 1, "{metrics}");
    let (violations, metrics) = counter(&t.ns, &http, "swarmcast_wire_violations_total");
    assert_eq!(violations, 0, "{metrics}");
    println!(
        "transmission: {} bytes in {took:?}; {announces} announces, {violations} violations",
        published.len()
    );
    net.remove().unwrap();
}

/// The last lines of a log, for a message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
