//! An external tracker: Debian's opentracker, built whitelist-only, fed by the publisher's
//! whitelist hook (`--tracker-whitelist`, `--tracker-reload-pid`).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::procs::{
    assert_last_published, assert_played_identical, external, free_port, publish, stream_dir,
    swarm_bytes, wait_listening, wait_viewers, watch, KillOnDrop,
};
use crate::util::http_get;

/// The run takes about 35 s (20 s of stream, start-up, playout delay and linger); 3x that and
/// more.
const HANG_GUARD: Duration = Duration::from_secs(150);

/// Starts `/usr/bin/opentracker` on a free loopback port with a configuration in `dir`: TCP
/// only, the whitelist `dir/whitelist`, statistics for 127.0.0.1. Returns the process (killed on
/// drop) and its port. Run as root, opentracker drops to `nobody`: `dir` must be readable by
/// everyone.
fn opentracker(dir: &Path) -> (KillOnDrop, u16) {
    let port = free_port();
    let conf = dir.join("opentracker.conf");
    std::fs::write(
        &conf,
        format!(
            "listen.tcp 127.0.0.1:{port}\naccess.whitelist {}\naccess.stats 127.0.0.1\n",
            dir.join("whitelist").display()
        ),
    )
    .unwrap();
    let log = dir.join("opentracker.log");
    let child = external("/usr/bin/opentracker")
        .arg("-f")
        .arg(&conf)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("opentracker.err")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    wait_listening(&mut child.0, port, "opentracker", &log, HANG_GUARD);
    (child, port)
}

/// The most peers opentracker tracks now in one torrent, over the torrents of the whitelist
/// file (each scraped: `/scrape?info_hash=`, its `complete` plus `incomplete`). The publisher
/// (the wire seeder) never announces, so these are viewers.
fn most_peers_in_one_torrent(port: u16, whitelist: &std::path::Path) -> u64 {
    let hashes = std::fs::read_to_string(whitelist).unwrap_or_default();
    let mut most = 0;
    for hex in hashes.lines().filter(|l| l.len() == 40) {
        let escaped: String = (0..20)
            .map(|i| format!("%{}", &hex[2 * i..2 * i + 2]))
            .collect();
        let (status, body) = http_get(&format!(
            "http://127.0.0.1:{port}/scrape?info_hash={escaped}"
        ));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let body = String::from_utf8_lossy(&body);
        let count = |key: &str| -> u64 {
            body.split(key)
                .nth(1)
                .and_then(|rest| rest.split('e').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        most = most.max(count("8:completei") + count("10:incompletei"));
    }
    most
}

/// The peers opentracker tracks now, over all torrents (`/stats?mode=peer`: peers, then seeds).
fn tracked_peers(port: u16) -> u64 {
    let (status, body) = http_get(&format!("http://127.0.0.1:{port}/stats?mode=peer"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    String::from_utf8_lossy(&body)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("opentracker's stats: {}", String::from_utf8_lossy(&body)))
}

/// A publisher whose torrents name only opentracker (no embedded tracker), which tracks nothing
/// it was not told of: the publisher writes each segment's info hash to the whitelist and sends
/// opentracker SIGHUP before listing the segment. The publisher's upload is capped at 1.6x the
/// stream, so 4 viewers of 20 s of 1 Mbit/s in 2 s segments must trade: each plays the stream
/// byte-identical to the published segments, together they get at least half their swarm bytes
/// from each other, and opentracker tracked all four at once (they found each other through
/// it: the manifest names only the publisher, and the viewers exchange no peers). Without the
/// hook, opentracker refuses every announce and this fails.
#[test]
fn opentracker_fed_by_the_whitelist_hook_lets_four_capped_viewers_trade() {
    let dir = tempfile::tempdir().unwrap();
    // opentracker runs as nobody: it must read the whitelist.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (tracker, port) = opentracker(dir.path());
    assert_eq!(tracked_peers(port), 0);
    let pid = tracker.0.id().to_string();
    let announce = format!("http://127.0.0.1:{port}/announce");
    let whitelist = dir.path().join("whitelist");
    let whitelist = whitelist.to_str().unwrap();
    let (publisher, link) = publish(
        dir.path(),
        &[
            "--synth",
            "--bitrate",
            "1M",
            "--synth-secs",
            "20",
            "--segment-secs",
            "2",
            "--http",
            "127.0.0.1:0",
            "--upload-limit",
            "200000",
            "--keep-segments",
            "--no-embedded-tracker",
            "--tracker",
            &announce,
            "--tracker-whitelist",
            whitelist,
            "--tracker-reload-pid",
            &pid,
        ],
    );
    let names: Vec<String> = (0..4).map(|i| format!("viewer-{i}")).collect();
    let mut viewers: Vec<KillOnDrop> = names.iter().map(|n| watch(dir.path(), n, &link)).collect();
    let mut most_tracked = 0;
    let whitelist_path = std::path::PathBuf::from(whitelist);
    wait_viewers(dir.path(), &names, &mut viewers, HANG_GUARD, || {
        most_tracked = most_tracked.max(most_peers_in_one_torrent(port, &whitelist_path));
    });
    drop(publisher);

    let segments = stream_dir(dir.path());
    // 10 segments of 2 s.
    let last = 9;
    assert_last_published(dir.path(), last);
    let (mut from_publisher, mut from_peers) = (0, 0);
    for name in &names {
        // Byte-identical, contiguous, to the end of the stream (from the first segment: they
        // join from the start).
        let played = assert_played_identical(dir.path(), name, &segments);
        assert_eq!(
            (played.first(), played.last()),
            (Some(&0), Some(&last)),
            "{name} did not play the whole stream: {played:?}"
        );
        let (p, v) = swarm_bytes(dir.path(), name);
        println!("{name}: played {played:?}; {p} bytes from the publisher, {v} from peers");
        from_publisher += p;
        from_peers += v;
    }
    println!("opentracker tracked at most {most_tracked} peers at once in one segment's torrent");
    assert!(
        most_tracked >= 4,
        "opentracker tracked at most {most_tracked} peers in one torrent: the viewers' announces did not reach it \
         (whitelist: {:?})",
        std::fs::read_to_string(whitelist).unwrap_or_default()
    );
    assert!(
        from_peers * 2 >= from_publisher + from_peers,
        "{from_peers} of {} swarm bytes from peers: under half",
        from_publisher + from_peers
    );
    // The whitelist holds 40-character hex hashes, one a line.
    let text = std::fs::read_to_string(whitelist).unwrap();
    assert!(
        !text.is_empty()
            && text
                .lines()
                .all(|l| l.len() == 40 && l.bytes().all(|b| b.is_ascii_hexdigit())),
        "{text:?}"
    );
}

/// The whitelist hook's flags refused with the reason, before anything starts: a process id that
/// names a group, a process that does not exist, a whitelist in a directory that does not.
#[test]
fn tracker_whitelist_flags_are_refused_with_the_reason() {
    use crate::util::{run, swarmcast};
    let dir = tempfile::tempdir().unwrap();
    let base = |extra: &[&str]| {
        let mut cmd = swarmcast();
        // A short stream: were a flag wrongly taken, the publisher would end by itself.
        cmd.args(["publish", "--synth", "--synth-secs", "1", "--linger", "0"])
            .args(["--http", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("d"))
            .arg("--key")
            .arg(dir.path().join("k"))
            .args(extra);
        cmd
    };
    let whitelist = dir.path().join("whitelist");
    let whitelist = whitelist.to_str().unwrap();
    let out = run(
        &mut base(&[
            "--tracker-whitelist",
            whitelist,
            "--tracker-reload-pid",
            "0",
        ]),
        false,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tracker-reload-pid") && err.contains("process groups"),
        "{err}"
    );
    // A process id above the kernel's largest: no process has it, now or later (a reaped
    // child's id could be reused, and the publisher would signal whoever got it).
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = (pid_max + 1).to_string();
    let out = run(
        &mut base(&[
            "--tracker-whitelist",
            whitelist,
            "--tracker-reload-pid",
            &pid,
        ]),
        false,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("process {pid}")) && err.contains("No such process"),
        "{err}"
    );
    let missing = dir.path().join("no/such/dir/whitelist");
    let out = run(
        &mut base(&["--tracker-whitelist", missing.to_str().unwrap()]),
        false,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("does not exist"),
        "{err}"
    );
    // A pid without a whitelist is refused by the flags' rules.
    let out = run(&mut base(&["--tracker-reload-pid", "1"]), false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tracker-whitelist"), "{err}");
    assert!(!dir.path().join("whitelist").exists());
}
