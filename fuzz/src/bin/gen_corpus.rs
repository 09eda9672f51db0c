//! Writes the seed corpus: valid inputs for each target, made by swarmcast's own builders (a
//! signed manifest and a delta, segment torrents and their info dictionaries, stream links, the
//! synthetic MPEG-TS feed, announces as librqbit sends them, a peer's handshake and messages).
//!
//! `cargo run --release --bin gen_corpus -- DIR` writes `DIR/<target>/seed-<name>`;
//! `scripts/fuzz.sh --seed` runs it, then minimizes each corpus.

use std::path::Path;

use librqbit_core::hash_id::Id20;
use librqbit_peer_protocol::{Handshake, Message, Request};
use swarmcast_core::gossip::{self, PART};
use swarmcast_core::manifest::{delta, Manifest};
use swarmcast_core::{SegmentTorrent, StreamLink};
use swarmcast_fuzz::wire::conn::encode;
use swarmcast_fuzz::{base, secret, signed};
use swarmcast_segmenter::synth::Synth;
// Built with the targets (cargo fuzz builds every binary with coverage instrumentation), so it
// links libFuzzer for the symbols that instrumentation needs; its main is this one.
use libfuzzer_sys as _;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write a seed");
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: gen_corpus DIR");
    let dir = Path::new(&dir);

    // Manifests: the verifier's base, a newer full document, the delta between them, an empty
    // window and an end of stream.
    let base = base();
    let newer = signed(11, 4..8);
    let delta = delta::encode(&base.manifest, &newer).expect("a delta saves something");
    let secret = secret();
    let empty = Manifest {
        segments: vec![],
        seq: 12,
        ..newer.manifest.clone()
    }
    .sign(&secret)
    .expect("valid");
    let ended = Manifest {
        end_of_stream: true,
        seq: 13,
        ..newer.manifest.clone()
    }
    .sign(&secret)
    .expect("valid");
    for (name, doc) in [
        ("base", &base.bytes),
        ("newer", &newer.bytes),
        ("delta", &delta),
        ("empty", &empty.bytes),
        ("ended", &ended.bytes),
    ] {
        write(dir, "manifest", name, doc);
    }

    // Torrents and info dictionaries from the real builder: one piece, several pieces, an exact
    // multiple of the piece length; one tracker, two.
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let mut torrents = Vec::new();
    for (name, len, piece, trackers) in [
        (
            "one-piece",
            1000usize,
            None,
            vec!["http://127.0.0.1:8080/announce"],
        ),
        (
            "pieces",
            100_000,
            Some(16_384),
            vec![
                "http://127.0.0.1:8080/announce",
                "udp://tracker.example:6969",
            ],
        ),
        ("exact", 65_536, Some(32_768), vec![]),
    ] {
        let t = SegmentTorrent::build(
            &content[..len],
            len as u64,
            &format!("{name}.ts"),
            piece,
            trackers.into_iter().map(String::from).collect(),
        )
        .expect("a valid torrent");
        write(dir, "info_dict", &format!("info-{name}"), t.info_bytes());
        write(
            dir,
            "info_dict",
            &format!("torrent-{name}"),
            &t.to_torrent_bytes(),
        );
        torrents.push(t);
    }
    write(dir, "info_dict", "manifest", &base.bytes);

    // The walker gets every bencoded seed, and a few shapes of its own.
    write(dir, "bencode", "manifest", &base.bytes);
    write(dir, "bencode", "delta", &delta);
    write(dir, "bencode", "torrent", &torrents[1].to_torrent_bytes());
    write(
        dir,
        "bencode",
        "values",
        b"d1:ai-3e1:bli0ei42e4:spamde1:cdee",
    );

    // Stream links.
    let link = StreamLink::new(
        secret.public(),
        vec![
            "http://127.0.0.1:8080/manifest".parse().expect("a url"),
            "https://cdn.example/s/manifest?x=1&y=2"
                .parse()
                .expect("a url"),
        ],
    )
    .expect("a valid link");
    write(dir, "link", "two-sources", link.to_string().as_bytes());
    let one = StreamLink::new(secret.public(), link.sources[..1].to_vec()).expect("valid");
    write(
        dir,
        "link",
        "one-source",
        format!("{one}&later=1").as_bytes(),
    );

    // MPEG-TS from the synthetic feed (real H.264 from ffmpeg, looped): 2.5 s, cut at 1 s
    // (control byte 3: target 90,000 ticks, whole input at once); and near the PTS wrap.
    let ts = Synth::new(None, 0).expect("the fixture").take(225_000);
    write(dir, "ts_cutter", "synth", &[&[0x3b][..], &ts].concat());
    let wrap = Synth::new(None, (1 << 33) - 90_000)
        .expect("the fixture")
        .take(180_000);
    write(dir, "ts_cutter", "wrap", &[&[0x12][..], &wrap].concat());
    let mut torn = ts[..20 * 188].to_vec();
    torn.splice(1000..1000, *b"garbage\x47 here");
    write(dir, "framer", "torn", &[&[0x06][..], &torn].concat());
    write(
        dir,
        "framer",
        "clean",
        &[&[0x00][..], &ts[..6 * 188]].concat(),
    );

    // Announces as librqbit and libtorrent send them.
    for (name, query) in [
        (
            "started",
            "info_hash=%AB%CD%EF0123456789abcdefgh&peer_id=-rQ0901-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=4096&event=started&compact=1&numwant=50",
        ),
        (
            "stopped",
            "info_hash=abcdefghij0123456789&peer_id=ABCDEFGHIJ0123456789&port=1&left=0&event=stopped&numwant=999&key=x&ip=10.0.0.1",
        ),
    ] {
        write(dir, "tracker_query", name, query.as_bytes());
    }

    // A peer's session with the wire seeder. Config: 16 KiB pieces, 10 pieces, 16 requests
    // queued at most, a full bitfield announced. Then: its handshake, our acceptance, its
    // bitfield, interested, Have, three requests and a cancel, serving, time passing, its close.
    let mut peer = Vec::new();
    let hs = Handshake {
        reserved: 0,
        info_hash: Id20::new([0xAB; 20]),
        peer_id: Id20::new(*b"-rQ0901-abcdefghijkl"),
    };
    let mut bytes = [0u8; 68];
    let n = hs.serialize_unchecked_len(&mut bytes);
    peer.extend_from_slice(&bytes[..n]);
    let mut messages = Vec::new();
    encode(
        &mut messages,
        Message::Bitfield([0b1010_0000u8, 0].as_slice().into()),
    );
    encode(&mut messages, Message::Interested);
    encode(&mut messages, Message::Have(3));
    for i in 0..3 {
        encode(
            &mut messages,
            Message::Request(Request {
                index: i,
                begin: 0,
                length: 16_384,
            }),
        );
    }
    encode(
        &mut messages,
        Message::Cancel(Request {
            index: 2,
            begin: 0,
            length: 16_384,
        }),
    );
    encode(&mut messages, Message::KeepAlive);
    let mut script = vec![0x00, 9, 0x3c, 0x00, 0x04];
    script.extend([0, peer.len() as u8]);
    script.extend(&peer);
    script.push(2); // accept
    script.push(7); // send
    for chunk in messages.chunks(200) {
        script.extend([0, chunk.len() as u8]);
        script.extend(chunk);
    }
    script.extend([4, 0, 4, 1, 4, 0, 3, 5, 1, 40, 7, 1, 250, 5]);
    write(dir, "wire_conn", "session", &script);
    // Super-seeding (no full bitfield): pieces announced one by one, then requested.
    let mut script = vec![0x00, 9, 0x3c, 0x00, 0x00];
    script.extend([0, peer.len() as u8]);
    script.extend(&peer);
    script.extend([2, 3, 0, 3, 1, 7]);
    let mut requests = Vec::new();
    encode(
        &mut requests,
        Message::Request(Request {
            index: 1,
            begin: 0,
            length: 16_384,
        }),
    );
    script.extend([0, requests.len() as u8]);
    script.extend(&requests);
    script.extend([4, 0, 1, 60, 1, 200, 6]);
    write(dir, "wire_conn", "super-seed", &script);

    // A peer that speaks the manifest exchange (BEP 10, swarmcast_manifest): a connection that
    // speaks it too (config bit 8), the peer's handshake with the extension bit, our acceptance,
    // its extended handshake naming the exchange, a message on it, and one queued our way.
    let mut peer = Vec::new();
    let hs = Handshake {
        reserved: 1 << 20,
        info_hash: Id20::new([0xAB; 20]),
        peer_id: Id20::new(*b"-rQ0901-abcdefghijkl"),
    };
    let mut bytes = [0u8; 68];
    let n = hs.serialize_unchecked_len(&mut bytes);
    peer.extend_from_slice(&bytes[..n]);
    let extended = |id: u8, payload: &[u8]| {
        let mut m = (payload.len() as u32 + 2).to_be_bytes().to_vec();
        m.extend([20, id]);
        m.extend(payload);
        m
    };
    let mut script = vec![0x00, 9, 0x3c, 0x00, 0x0c];
    script.extend([0, peer.len() as u8]);
    script.extend(&peer);
    script.extend([2, 7]);
    let handshake = extended(0, b"d1:md18:swarmcast_manifesti9eee");
    script.extend([0, handshake.len() as u8]);
    script.extend(&handshake);
    let message = extended(
        librqbit_peer_protocol::MY_EXTENDED_SWARMCAST_MANIFEST,
        b"d4:havei7ee",
    );
    script.extend([0, message.len() as u8]);
    script.extend(&message);
    let ours = b"d4:wanti8ee";
    script.extend([248, ours.len() as u8]);
    script.extend(ours);
    script.extend([7, 5]);
    write(dir, "wire_conn", "extension", &script);

    // The manifest exchange's payloads, each after its 2-byte length: a have and a want, a
    // whole document, and one of three parts with a have between its parts.
    let framed = |payloads: &[Vec<u8>]| {
        let mut out = Vec::new();
        for p in payloads {
            out.extend((p.len() as u16).to_be_bytes());
            out.extend(p);
        }
        out
    };
    let whole = gossip::Message::Manifest {
        seq: 10,
        doc: base.bytes.clone().into(),
    };
    write(
        dir,
        "swarm_message",
        "small",
        &framed(&[
            gossip::Message::Have(10).encode(),
            gossip::Message::Want(11).encode(),
            whole.encode(),
        ]),
    );
    let doc: Vec<u8> = base
        .bytes
        .iter()
        .cycle()
        .take(2 * PART + 99)
        .copied()
        .collect();
    let mut parts = gossip::Message::Manifest {
        seq: 12,
        doc: doc.into(),
    }
    .payloads();
    parts.insert(1, gossip::Message::Have(12).encode());
    write(dir, "swarm_message", "parts", &framed(&parts));
}
