//! `swarmcast torrent` against mktorrent (byte-identical `info`) and libtorrent (same info hash).

use std::path::Path;

use swarmcast_core::bencode::dict_value_span;
use swarmcast_core::torrent::piece_length_for;

use crate::util::{bytes, run, swarmcast, tool};

const TRACKER: &str = "http://127.0.0.1:6969/announce";

fn info_bytes(torrent: &Path) -> Vec<u8> {
    let file = std::fs::read(torrent).unwrap();
    let span = dict_value_span(&file, b"info").unwrap().expect("no info");
    file[span].to_vec()
}

/// Sizes around piece boundaries, exact multiples included (librqbit gets those wrong).
fn cases() -> Vec<(usize, Option<u64>)> {
    let p = 32 * 1024;
    vec![
        (1, None),
        (p - 1, None),
        (p, None),
        (p + 1, None),
        (3 * p, None),
        (100_000, None),
        (1 << 20, None),
        (100_000, Some(16384)), // 16 KiB pieces: not mktorrent's, libtorrent's
        (64 * p, Some(65536)),
        (64 * p + 5, Some(65536)),
        (2 * 1024 * 1024 * 16 + 3, None), // 32 MiB + 3: the rule moves to 64 KiB pieces
    ]
}

#[test]
fn info_is_byte_identical_to_mktorrent() {
    let mktorrent = tool("mktorrent");
    let dir = tempfile::tempdir().unwrap();
    for (i, (size, piece)) in cases().into_iter().enumerate() {
        let file = dir.path().join(format!("{i:08}.ts"));
        std::fs::write(&file, bytes(size, i as u64)).unwrap();
        let ours = dir.path().join(format!("{i}.ours.torrent"));
        let mut cmd = swarmcast();
        cmd.arg("torrent")
            .arg(&file)
            .args(["--tracker", TRACKER, "-o"])
            .arg(&ours);
        // mktorrent makes pieces of 32 KiB and up (16 KiB torrents are checked against libtorrent
        // and Python's hashlib below).
        if piece.unwrap_or_else(|| piece_length_for(size as u64)) < 32768 {
            continue;
        }
        if let Some(p) = piece {
            cmd.args(["--piece-length", &p.to_string()]);
        }
        let out = run(&mut cmd, true);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let piece_length = piece.unwrap_or_else(|| piece_length_for(size as u64));
        let theirs = dir.path().join(format!("{i}.mk.torrent"));
        run(
            std::process::Command::new(&mktorrent)
                .args([
                    "-l",
                    &piece_length.trailing_zeros().to_string(),
                    "-a",
                    TRACKER,
                    "-o",
                ])
                .arg(&theirs)
                .arg(&file),
            true,
        );
        let (a, b) = (info_bytes(&ours), info_bytes(&theirs));
        assert_eq!(a, b, "size {size}: info differs from mktorrent's");
        let hash = hex::encode(<sha1::Sha1 as sha1::Digest>::digest(&b));
        assert_eq!(
            stdout.lines().next(),
            Some(hash.as_str()),
            "printed info hash"
        );
        assert!(stdout.contains(&format!(
            "magnet:?xt=urn:btih:{hash}&dn={i:08}.ts&xl={size}&tr="
        )));
    }
}

#[test]
fn libtorrent_loads_our_torrents_with_the_same_info_hash() {
    let python = tool("python3");
    let dir = tempfile::tempdir().unwrap();
    let mut expected = String::new();
    let mut paths = Vec::new();
    for (i, (size, piece)) in cases().into_iter().enumerate() {
        let file = dir.path().join(format!("{i:08}.ts"));
        std::fs::write(&file, bytes(size, 100 + i as u64)).unwrap();
        let out_path = dir.path().join(format!("{i}.torrent"));
        let mut cmd = swarmcast();
        cmd.arg("torrent")
            .arg(&file)
            .args(["--tracker", TRACKER, "-o"])
            .arg(&out_path);
        if let Some(p) = piece {
            cmd.args(["--piece-length", &p.to_string()]);
        }
        let out = run(&mut cmd, true);
        let hash = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_owned();
        let pl = piece.unwrap_or_else(|| piece_length_for(size as u64));
        expected.push_str(&format!(
            "{hash} {} {pl} {size} {i:08}.ts {TRACKER}\n",
            (size as u64).div_ceil(pl)
        ));
        paths.push(out_path);
    }
    // libtorrent reads each torrent; Python's hashlib re-hashes the file's pieces against the
    // hashes libtorrent read (16 KiB pieces, which mktorrent cannot make, included).
    let script = r#"
import hashlib, os, sys, libtorrent as lt
for path in sys.argv[1:]:
    ti = lt.torrent_info(path)
    data = open(os.path.join(os.path.dirname(path), ti.name()), "rb").read()
    pl = ti.piece_length()
    for i in range(ti.num_pieces()):
        assert hashlib.sha1(data[i * pl:(i + 1) * pl]).digest() == ti.hash_for_piece(i), (path, i)
    print(ti.info_hashes().v1, ti.num_pieces(), ti.piece_length(), ti.total_size(), ti.name(),
          " ".join(t.url for t in ti.trackers()))
"#;
    let out = run(
        std::process::Command::new(python)
            .arg("-c")
            .arg(script)
            .args(&paths),
        true,
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.ts");
    std::fs::write(&empty, b"").unwrap();
    let err = run(swarmcast().arg("torrent").arg(&empty), false).stderr;
    assert!(String::from_utf8_lossy(&err).contains("segment is empty"));

    let file = dir.path().join("a.ts");
    std::fs::write(&file, b"abc").unwrap();
    let err = run(
        swarmcast()
            .arg("torrent")
            .arg(&file)
            .args(["--piece-length", "40000"]),
        false,
    )
    .stderr;
    assert!(String::from_utf8_lossy(&err).contains("piece length 40000 is invalid"));

    let err = run(
        swarmcast()
            .arg("torrent")
            .arg(dir.path().join("missing.ts")),
        false,
    )
    .stderr;
    assert!(String::from_utf8_lossy(&err).contains("missing.ts"));

    let err = run(
        swarmcast().arg("torrent").arg(&file).arg("-o").arg(&file),
        false,
    )
    .stderr;
    assert!(String::from_utf8_lossy(&err).contains("is the input file"));
    assert_eq!(std::fs::read(&file).unwrap(), b"abc", "input must survive");

    // A device has no length to hash up to: named as what it is, not "empty".
    let err = run(swarmcast().args(["torrent", "/dev/zero"]), false).stderr;
    let err = String::from_utf8_lossy(&err);
    assert!(
        err.contains("/dev/zero is a character device, not a regular file"),
        "{err}"
    );
    let err = run(swarmcast().arg("torrent").arg(dir.path()), false).stderr;
    let err = String::from_utf8_lossy(&err);
    assert!(err.contains("is a directory, not a regular file"), "{err}");
}
