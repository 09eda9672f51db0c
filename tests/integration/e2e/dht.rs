//! A stream found and followed without the publisher's HTTP server: a local mainline DHT of 24
//! nodes (mainline's `Testnet`, in this process, 127.0.0.1 only), a publisher with HTTP
//! manifests and its tracker switched off that puts the stream's pointer on the DHT and carries
//! manifests in its swarm, and viewers whose link is the stream key alone.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::procs::{
    assert_last_published, assert_played_identical, json_lines, publish, stream_dir, wait_viewers,
    watch_with, KillOnDrop,
};

/// The run takes about 17 s (12 s of stream, the DHT's first lookups, playout); 5x that.
const HANG_GUARD: Duration = Duration::from_secs(90);
/// DHT nodes.
const NODES: usize = 24;

/// Three viewers with a `pk=`-only link each play the whole stream byte-identical to the
/// published segments. None of them ever fetches a manifest over HTTP (the publisher serves
/// none): each first manifest comes from a peer the DHT named (mode `dht`), every later one
/// from a peer pushing or answering on a segment's connection (mode `swarm`).
#[test]
fn viewers_with_only_the_key_find_the_stream_on_the_dht_and_play_it_whole() {
    run(false);
}

/// The same with `watch`'s default, peers carried: each viewer also looks the stream's peer key
/// up and dials the peers it met for every new segment. Every viewer still gets the
/// end-of-stream manifest and exits: it was lost in about one run in seven when the publisher's
/// seeder pushed it on a viewer's oldest connection, which the viewer was closing
/// (docs/experiments.md). The test above looks every segment up (`--no-carried-peers`).
#[test]
fn viewers_carrying_their_peers_find_the_stream_on_the_dht_and_play_it_whole() {
    run(true);
}

fn run(carry: bool) {
    let net = swarmcast_dht::Testnet::builder(NODES)
        .bind_address(Ipv4Addr::LOCALHOST)
        .build()
        .unwrap();
    let bootstrap = net.bootstrap.join(",");
    let dht = [
        "--dht-bootstrap",
        &bootstrap,
        "--dht-bind",
        "127.0.0.1",
        "--dht-request-timeout-ms",
        "300",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--synth",
        "--synth-secs",
        "12",
        "--segment-secs",
        "2",
        "--http",
        "127.0.0.1:0",
        "--keep-segments",
        "--no-embedded-tracker",
        "--swarm-manifests",
        "--no-http-manifests",
        "--dht",
    ];
    args.extend(dht);
    let (_publisher, link) = publish(dir.path(), &args);
    let parsed: swarmcast_core::StreamLink = link.parse().unwrap();
    assert!(
        parsed.sources.is_empty(),
        "the link is the key alone: {link}"
    );

    let names: Vec<String> = (0..3).map(|i| format!("viewer-{i}")).collect();
    let mut watch_args = dht.to_vec();
    if !carry {
        watch_args.push("--no-carried-peers");
    }
    let mut viewers: Vec<KillOnDrop> = names
        .iter()
        .map(|n| watch_with(dir.path(), n, &link, &watch_args))
        .collect();
    wait_viewers(dir.path(), &names, &mut viewers, HANG_GUARD, || {});

    let segments = stream_dir(dir.path());
    let last = 5;
    assert_last_published(dir.path(), last);
    for name in &names {
        let played = assert_played_identical(dir.path(), name, &segments);
        assert_eq!(played.last(), Some(&last), "{name}: {played:?}");
        let records = json_lines(&dir.path().join(format!("{name}.jsonl")));
        // The viewer's exchange counters, once at exit: what it took on the exchange includes
        // every manifest it fetched there.
        let sent: Vec<_> = records
            .iter()
            .filter(|e| e["kind"] == "manifests_sent")
            .collect();
        assert_eq!(sent.len(), 1, "{name}: {sent:?}");
        let from_swarm: u64 = records
            .iter()
            .filter(|e| e["kind"] == "manifest_fetched" && e["mode"] == "swarm")
            .map(|e| e["bytes"].as_u64().unwrap_or_default())
            .sum();
        // Every segment added is looked up on the DHT: without --carried-peers always, and
        // with it because two other viewers are fewer live peers than
        // swarmcast_core::carry::WANT.
        let added = records.iter().filter(|e| e["kind"] == "added").count() as u64;
        assert!(swarmcast_core::carry::WANT > names.len() - 1);
        assert_eq!(
            sent[0]["dht_announces"].as_u64(),
            Some(added),
            "{name}: {} segments added",
            added
        );
        let received = sent[0]["swarm_bytes_received"].as_u64().unwrap_or_default();
        assert!(
            from_swarm > 0 && received >= from_swarm,
            "{name}: {received} bytes taken on the exchange, {from_swarm} in manifests fetched there"
        );
        let fetched: Vec<(String, u64)> = records
            .into_iter()
            .filter(|e| e["kind"] == "manifest_fetched")
            .map(|e| {
                (
                    e["mode"].as_str().unwrap_or_default().to_owned(),
                    e["seq"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            fetched.first().map(|(m, _)| m.as_str()),
            Some("dht"),
            "{name}: {fetched:?}"
        );
        assert!(
            fetched.iter().skip(1).all(|(m, _)| m == "swarm"),
            "{name}: {fetched:?}"
        );
        assert!(fetched.len() >= 2, "{name}: {fetched:?}");
        // The summary's DHT line (on stderr): the peer key looked up only when carrying.
        let out = std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap();
        let key_lookups: u64 = out
            .split("the stream's peer key looked up ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no DHT line in the summary: {out}"));
        assert_eq!(key_lookups > 0, carry, "{name}: {out}");
    }
}
