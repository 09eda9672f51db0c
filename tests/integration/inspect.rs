//! `swarmcast inspect`: decoding, verification against a pinned key, and fetching by URL or link.

use std::io::{Read, Write};
use std::net::TcpListener;

use swarmcast_core::{
    SegmentEntry, SegmentTorrent, StreamLink, StreamSecret, Window, WindowConfig,
};

use crate::util::{bytes, run, swarmcast};

fn signed_manifest(secret: &StreamSecret, segments: u64) -> Vec<u8> {
    let config = WindowConfig {
        capacity: 4,
        target_duration: 90_000,
        peers: vec!["127.0.0.1:6881".into()],
        trackers: vec!["http://127.0.0.1:8080/announce".into()],
    };
    let mut window = Window::new(secret.clone(), config, 1).unwrap();
    for n in 0..segments {
        let data = bytes(50_000 + n as usize, n);
        let t = SegmentTorrent::build(
            &data[..],
            data.len() as u64,
            &format!("{n:08}.ts"),
            None,
            vec![],
        )
        .unwrap();
        window
            .push(SegmentEntry {
                number: n,
                media_start: n * 90_000,
                duration: 90_000,
                size: data.len() as u64,
                discontinuity: false,
                published_ms: 1_700_000_000_000 + n,
                info_hash: t.info_hash(),
                info: t.info_bytes().to_vec(),
            })
            .unwrap();
    }
    window.sign(1_700_000_000_500).unwrap().bytes
}

/// Serves `body` to the first HTTP request on a loopback port; returns the URL.
fn serve_once(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/manifest", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    url
}

#[test]
fn verifies_against_a_pinned_key_and_names_the_reason_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let secret = StreamSecret::from_seed(&[5; 32]);
    let key = secret.public().to_string();
    let doc = signed_manifest(&secret, 3);
    let path = dir.path().join("manifest");
    std::fs::write(&path, &doc).unwrap();

    let out = run(
        swarmcast().arg("inspect").arg(&path).args(["--key", &key]),
        true,
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let key_line = format!("stream key     {key}");
    for needle in [
        key_line.as_str(),
        "seq            1",
        "3 segments, 0 to 2",
        "valid for the pinned key",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }

    // Without a pin, the fields print and the signature is checked against the named key.
    let out = run(swarmcast().arg("inspect").arg(&path), true);
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("not pinned"));

    let other = StreamSecret::from_seed(&[6; 32]).public().to_string();
    let err = run(
        swarmcast()
            .arg("inspect")
            .arg(&path)
            .env("SWARMCAST_STREAM_KEY", &other),
        false,
    )
    .stderr;
    assert!(
        String::from_utf8_lossy(&err).contains("manifest is for another stream"),
        "{}",
        String::from_utf8_lossy(&err)
    );

    // Tamper with a byte inside the signed body: the seq digit.
    let at = doc.windows(8).position(|w| w == b"3:seqi1e").unwrap() + 6;
    let mut tampered = doc.clone();
    tampered[at] = b'2';
    std::fs::write(&path, &tampered).unwrap();
    let err = run(
        swarmcast().arg("inspect").arg(&path).args(["--key", &key]),
        false,
    )
    .stderr;
    assert!(
        String::from_utf8_lossy(&err).contains("manifest signature is invalid"),
        "{}",
        String::from_utf8_lossy(&err)
    );
    let err = run(swarmcast().arg("inspect").arg(&path), false).stderr;
    assert!(String::from_utf8_lossy(&err).contains("does not verify"));

    std::fs::write(&path, b"not bencode").unwrap();
    let err = run(swarmcast().arg("inspect").arg(&path), false).stderr;
    assert!(String::from_utf8_lossy(&err).contains("not a swarmcast manifest or a .torrent"));
}

#[test]
fn fetches_by_url_and_by_stream_link() {
    let secret = StreamSecret::from_seed(&[7; 32]);
    let doc = signed_manifest(&secret, 2);

    let url = serve_once(doc.clone());
    let out = run(swarmcast().arg("inspect").arg(&url), true);
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("2 segments, 0 to 1"));

    // The link pins the key; its first source is dead, so the mirror must be used.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/manifest", l.local_addr().unwrap())
    };
    let live = serve_once(doc);
    let link = StreamLink::new(
        secret.public(),
        vec![dead.parse().unwrap(), live.parse().unwrap()],
    )
    .unwrap();
    let out = run(swarmcast().arg("inspect").arg(link.to_string()), true);
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("valid for the pinned key"));

    // A link for another stream refuses this stream's manifest.
    let other = StreamSecret::from_seed(&[8; 32]).public();
    let wrong = StreamLink::new(
        other,
        vec![serve_once(signed_manifest(&secret, 1)).parse().unwrap()],
    )
    .unwrap();
    let err = run(swarmcast().arg("inspect").arg(wrong.to_string()), false).stderr;
    assert!(String::from_utf8_lossy(&err).contains("another stream"));
}

/// `swarmcast inspect … | head -5`: a reader that goes away ends the output; the command exits
/// quietly (success, nothing on stderr), not with a panic. The pipe's reading end is closed
/// before the command starts, so its first write meets the closed pipe.
#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("manifest");
    std::fs::write(&doc, signed_manifest(&StreamSecret::generate().unwrap(), 3)).unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = swarmcast()
        .arg("inspect")
        .arg(&doc)
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
