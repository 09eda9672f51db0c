//! The command lines of a run's processes: `swarmcast publish` and `swarmcast watch` with the
//! run's files, caps, variant and network addresses.

use std::path::Path;

use swarmcast_netlab::topo::Net;

use crate::netrun;
use crate::plan::{RunSpec, Transport};

/// The limit a process applies itself: the cap on loopback; on a network, the self-limit's share
/// of its link's cap, if any (never under [`crate::plan::MIN_LIMIT`]).
pub(super) fn process_limit(cap: Option<u32>, spec: &RunSpec) -> Option<u32> {
    let cap = cap?;
    let Some(point) = &spec.net else {
        return Some(cap);
    };
    let share = point.self_limit?;
    Some(((f64::from(cap) * share) as u32).max(crate::plan::MIN_LIMIT))
}

/// The `swarmcast publish` arguments of a run: the synthetic feed, the run's files, its caps and
/// variant, and, on loopback (every viewer at 127.0.0.1), no per-address caps.
pub(crate) fn publisher_args(spec: &RunSpec, dir: &Path, net: Option<&Net>) -> Vec<String> {
    let publisher_host = net.and_then(|n| n.host("publisher"));
    let (http_addr, listen_addr) = match publisher_host {
        Some(h) => (
            format!("{}:{}", h.addr, netrun::HTTP_PORT),
            format!("{}:{}", h.addr, netrun::PEER_PORT),
        ),
        None => ("127.0.0.1:0".to_string(), "127.0.0.1:0".to_string()),
    };
    let path = |p: &str| dir.join(p).to_string_lossy().into_owned();
    let mut args: Vec<String> = [
        "publish",
        "--synth",
        "--bitrate",
        &spec.bitrate.to_string(),
        "--synth-secs",
        &spec.duration_secs.to_string(),
        "--segment-secs",
        &spec.segment_secs.to_string(),
        "--http",
        &http_addr,
        "--listen",
        &listen_addr,
        "--key",
        &path("publisher/stream.key"),
        "--data-dir",
        &path("publisher"),
        "--keep-segments",
        "--linger",
        "3600",
        "--metrics-out",
        &path("publisher.jsonl"),
        "--node",
        "publisher",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // On a network, caps are on the links (wire bytes), and in the processes too with a
    // self-limit; on loopback, in the processes.
    if let Some(l) = process_limit(spec.publisher_upload_limit, spec) {
        args.extend(["--upload-limit".into(), l.to_string()]);
    }
    let librqbit_off = spec.variant.librqbit_off();
    if !librqbit_off.is_empty() {
        args.extend(["--librqbit-off".into(), librqbit_off.clone()]);
    }
    args.extend(["--seeder".into(), spec.variant.seeder().into()]);
    if let Some(reveal) = spec.variant.super_seed_reveal() {
        args.extend(["--super-seed-reveal".into(), reveal.into()]);
    }
    if spec.variant.swarm_manifests() {
        args.push("--swarm-manifests".into());
    }
    if let Some(n) = spec.variant.manifest_push() {
        args.extend(["--manifest-push".into(), n.to_string()]);
    }
    // On loopback every viewer comes from 127.0.0.1: the per-address caps (there to stop one
    // address filling the seeder's slots or the HTTP server's) would cap the audience. On a
    // network each viewer has an address of its own, and the caps stay as a user has them.
    if net.is_none() {
        args.extend(["--peer-conns-per-address".into(), "0".into()]);
        args.extend(["--http-conns-per-address".into(), "0".into()]);
    }
    args
}

/// The `swarmcast watch` arguments of viewer `i` of a run, following `link`.
pub(crate) fn viewer_args(
    spec: &RunSpec,
    dir: &Path,
    net: Option<&Net>,
    link: &str,
    i: usize,
) -> Vec<String> {
    let node = format!("viewer-{i}");
    let path = |p: &str| dir.join(p).to_string_lossy().into_owned();
    let listen = match net.and_then(|n| n.host(&node)) {
        Some(h) => format!("{}:{}", h.addr, netrun::PEER_PORT),
        None => "127.0.0.1:0".into(),
    };
    let mut a: Vec<String> = vec![
        "watch".into(),
        link.to_owned(),
        "--out".into(),
        path(&format!("{node}.ts")),
        "--listen".into(),
        listen,
        "--data-dir".into(),
        path(&format!("{node}.d")),
        "--metrics-out".into(),
        path(&format!("{node}.jsonl")),
        "--node".into(),
        node,
        "--transport".into(),
        spec.transport.as_str().into(),
    ];
    if let Some(l) = process_limit(spec.viewer_upload_limit, spec) {
        a.extend(["--upload-limit".into(), l.to_string()]);
    }
    if let Some(l) = process_limit(spec.viewer_download_limit, spec) {
        a.extend(["--download-limit".into(), l.to_string()]);
    }
    if !spec.http_fallback && spec.transport == Transport::Swarm {
        a.push("--no-http-fallback".into());
    }
    let librqbit_off = spec.variant.librqbit_off();
    if !librqbit_off.is_empty() {
        a.extend(["--librqbit-off".into(), librqbit_off]);
    }
    if spec.variant.swarm_manifests() && spec.transport == Transport::Swarm {
        a.push("--swarm-manifests".into());
    }
    if let (Some(n), Transport::Swarm) = (spec.variant.viewer_manifest_push(), spec.transport) {
        a.extend(["--manifest-push".into(), n.to_string()]);
    }
    // Said either way on the DHT path, whatever `watch`'s default: without `@carry=on` a run
    // looks every segment up, as every run recorded under a variant without the option did.
    if spec.transport == Transport::Swarm && (spec.variant.dht() || spec.variant.carry_peers()) {
        a.push(if spec.variant.carry_peers() {
            "--carried-peers".into()
        } else {
            "--no-carried-peers".into()
        });
    }
    a
}
