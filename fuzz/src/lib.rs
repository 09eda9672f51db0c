//! Shared parts of swarmcast's fuzz targets: the fixed key and manifests the manifest target checks
//! against (the seed corpus is signed with the same key, so the fuzzer starts from documents that
//! verify), and two parsers compiled straight from their source files.
//!
//! The wire connection (`crates/swarmcast-swarm/src/wire/conn.rs`) and the tracker's query parser
//! (`crates/swarmcast-publisher/src/tracker/query.rs`) are sans-IO and depend on nothing heavy,
//! but their crates depend on librqbit, tokio's runtime and axum, whose instrumented cold build
//! alone would not fit in CI's fuzzing budget. So the two files are compiled here as modules of
//! their own (`#[path]`): the fuzzer runs the very code the crates compile, not a copy. A parser
//! that grows a dependency on the rest of its crate fails this build, which CI runs.

use swarmcast_core::manifest::{Manifest, SegmentEntry, SignedManifest};
use swarmcast_core::{SegmentTorrent, StreamSecret};

/// The wire seeder's module as far as its connection needs it.
pub mod wire;

/// The tracker's announce parser.
#[rustfmt::skip]
#[path = "../../crates/swarmcast-publisher/src/tracker/query.rs"]
pub mod query;

/// The key every seed manifest is signed with, and the manifest target pins.
pub fn secret() -> StreamSecret {
    StreamSecret::from_seed(&[7; 32])
}

/// A window entry for segment `number`, `len` bytes of made-up content, from the real builder.
pub fn entry(number: u64, len: usize) -> SegmentEntry {
    let bytes: Vec<u8> = (0..len as u64)
        .map(|i| ((i * 31 + number) % 251) as u8)
        .collect();
    let t = SegmentTorrent::build(
        &bytes[..],
        len as u64,
        &format!("{number:08}.ts"),
        None,
        vec!["http://127.0.0.1:8080/announce".into()],
    )
    .expect("a valid segment");
    SegmentEntry {
        number,
        media_start: number * 180_000,
        duration: 180_000,
        size: len as u64,
        discontinuity: number == 0,
        published_ms: 1_700_000_000_000 + number * 2000,
        info_hash: t.info_hash(),
        info: t.info_bytes().to_vec(),
    }
}

/// A signed manifest of sequence number `seq` listing segments `numbers`.
pub fn signed(seq: u64, numbers: std::ops::Range<u64>) -> SignedManifest {
    let secret = secret();
    Manifest {
        key: secret.public(),
        seq,
        issued_ms: 1_700_000_000_000 + seq,
        target_duration: 180_000,
        peers: vec!["127.0.0.1:6881".into(), "publisher.example:6881".into()],
        trackers: vec!["http://127.0.0.1:8080/announce".into()],
        end_of_stream: false,
        segments: numbers
            .map(|n| entry(n, 1000 + 40_000 * (n as usize % 2)))
            .collect(),
    }
    .sign(&secret)
    .expect("a valid manifest")
}

/// The document the manifest target's verifier has accepted before each input (deltas apply to
/// it): sequence 10, segments 3 to 5.
pub fn base() -> SignedManifest {
    signed(10, 3..6)
}
