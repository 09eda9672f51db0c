//! A static mirror: the publisher's `--mirror-dir` served by Debian's nginx, and viewers whose
//! link names only the mirror.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::procs::{
    assert_last_published, assert_played_identical, external, free_port, json_lines, publish,
    stream_dir, wait_listening, wait_viewers, watch, KillOnDrop,
};

/// The run takes about 30 s (12 s of stream, start-up, playout delay, linger); 4x that.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// The nginx configuration documented in docs/publish.md ("Mirrors"), with its files in `dir`:
/// `root` serves the mirror directory; the manifest is `no-cache` (it changes every segment;
/// caches must revalidate), segment files and torrents are immutable (a number names one
/// segment for good).
fn nginx_conf(dir: &Path, port: u16, root: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {d}/nginx-access.log;
    client_body_temp_path {d}/nginx-tmp;
    proxy_temp_path {d}/nginx-tmp;
    fastcgi_temp_path {d}/nginx-tmp;
    uwsgi_temp_path {d}/nginx-tmp;
    scgi_temp_path {d}/nginx-tmp;
    types {{ video/mp2t ts; application/x-bittorrent torrent; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location = /manifest {{
            default_type application/x-bittorrent-swarmcast-manifest;
            add_header Cache-Control \"no-cache\" always;
        }}
        location /segments/ {{
            add_header Cache-Control \"public, max-age=31536000, immutable\";
        }}
    }}
}}
",
        root = root.display()
    )
}

/// A GET over loopback: the status, the response head (lowercase) and the body (nginx sends
/// static files with a Content-Length, and closes with `Connection: close`).
fn get(port: u16, path: &str) -> (u16, String, Vec<u8>) {
    crate::util::http_request(
        &format!("127.0.0.1:{port}"),
        path,
        &[],
        Duration::from_secs(30),
    )
}

/// A publisher writing its mirror directory, Debian's nginx serving it, and 2 viewers whose
/// link names only nginx's manifest URL: they poll the static manifest (it cannot hold a
/// request), take the segments from the publisher's swarm, and a segment the publisher never
/// seeds (`--withhold-segment`) from the mirror's segment files, over their HTTP fallback (at
/// least one of them; the other may take it from that one's swarm). Each
/// plays the whole finite stream byte-identical to the published segments; nginx answers the
/// manifest with `Cache-Control: no-cache` and segment files with a long, immutable one.
#[test]
fn viewers_of_a_link_naming_only_an_nginx_mirror_play_the_whole_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    std::fs::create_dir_all(dir.path().join("nginx-tmp")).unwrap();
    let port = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir.path(), port, &mirror)).unwrap();
    let withheld = 2u64;
    let (_publisher, link) = publish(
        dir.path(),
        &[
            "--synth",
            "--synth-secs",
            "12",
            "--segment-secs",
            "2",
            "--http",
            "127.0.0.1:0",
            "--keep-segments",
            "--mirror-dir",
            mirror.to_str().unwrap(),
            "--withhold-segment",
            &withheld.to_string(),
        ],
    );
    let log = dir.path().join("nginx-start.log");
    let nginx = external("/usr/sbin/nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("nginx-error.log"))
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut nginx = KillOnDrop(nginx);
    wait_listening(&mut nginx.0, port, "nginx", &log, HANG_GUARD);

    // The same key, the mirror's manifest as the only source.
    let published: swarmcast_core::StreamLink = link.parse().unwrap();
    let manifest_url: url::Url = format!("http://127.0.0.1:{port}/manifest").parse().unwrap();
    let mirror_link = swarmcast_core::StreamLink::new(published.key, vec![manifest_url])
        .unwrap()
        .to_string();
    assert!(!mirror_link.contains(&published.sources[0].to_string()));

    // The mirror's first manifest, and nginx's headers on it and on a segment file.
    let start = Instant::now();
    while !mirror.join("manifest").exists() {
        assert!(
            start.elapsed() < HANG_GUARD,
            "hang guard: no manifest in the mirror"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, head, _) = get(port, "/manifest");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("\r\ncache-control: no-cache\r\n"), "{head}");
    let (status, head, body) = get(port, "/segments/00000000.ts");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("\r\ncache-control: public, max-age=31536000, immutable\r\n")
            && head.contains("\r\ncontent-type: video/mp2t\r\n"),
        "{head}"
    );
    assert_eq!(
        body,
        std::fs::read(stream_dir(dir.path()).join("00000000.ts")).unwrap()
    );

    let names: Vec<String> = (0..2).map(|i| format!("viewer-{i}")).collect();
    let mut viewers: Vec<KillOnDrop> = names
        .iter()
        .map(|n| watch(dir.path(), n, &mirror_link))
        .collect();
    wait_viewers(dir.path(), &names, &mut viewers, HANG_GUARD, || {});

    let segments = stream_dir(dir.path());
    // 6 segments of 2 s.
    let last = 5;
    assert_last_published(dir.path(), last);
    for name in &names {
        let played = assert_played_identical(dir.path(), name, &segments);
        assert_eq!(
            played.last(),
            Some(&last),
            "{name} did not play to the end: {played:?}"
        );
        assert!(played.contains(&withheld), "{name}: {played:?}");
    }
    // Nobody seeds the withheld segment at first: a viewer's HTTP fallback takes it from the
    // mirror, and the other may then take it from that viewer (seen in CI) or the mirror too.
    let over_http: Vec<&String> = names
        .iter()
        .filter(|name| {
            json_lines(&dir.path().join(format!("{name}.jsonl")))
                .iter()
                .any(|e| e["kind"] == "completed" && e["seg"] == withheld && e["via"] == "http")
        })
        .collect();
    assert!(
        !over_http.is_empty(),
        "the withheld segment {withheld} came over HTTP to no viewer"
    );
    let access = std::fs::read_to_string(dir.path().join("nginx-access.log")).unwrap();
    assert!(
        access.contains(&format!("GET /segments/{withheld:08}.ts HTTP/1.1\" 200")),
        "{access}"
    );
    assert!(access.contains("GET /manifest"), "{access}");
}
