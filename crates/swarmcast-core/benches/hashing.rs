//! Hot paths of the core, each beside its baseline in the same run:
//! - piece hashing through [`hash_pieces`] (a fixed 64 KiB buffer) against the raw `sha1` crate
//!   hashing the same bytes piece by piece from memory;
//! - building a whole segment torrent;
//! - signing and verifying a manifest with a window of 8 segments.
//!
//! Run: `cargo bench -p swarmcast-core --bench hashing`. docs/benchmarks.md has the figures.

// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sha1::{Digest, Sha1};
use swarmcast_core::manifest::{self, Manifest, SegmentEntry};
use swarmcast_core::torrent::hash_pieces;
use swarmcast_core::{SegmentTorrent, StreamSecret};

fn data(len: usize) -> Vec<u8> {
    swarmcast_core::testdata::pseudo_random(len, 1)
}

fn hashing(c: &mut Criterion) {
    let bytes = data(16 << 20);
    let mut group = c.benchmark_group("hash 16 MiB");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.sample_size(20);
    for piece in [32 * 1024usize, 1 << 20] {
        group.bench_with_input(
            BenchmarkId::new("raw sha1 per piece", piece),
            &piece,
            |b, &piece| {
                b.iter(|| {
                    let mut out = Vec::with_capacity(bytes.len() / piece * 20 + 20);
                    for chunk in bytes.chunks(piece) {
                        out.extend_from_slice(&Sha1::digest(chunk));
                    }
                    black_box(out)
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("hash_pieces", piece),
            &piece,
            |b, &piece| b.iter(|| black_box(hash_pieces(&bytes[..], piece as u64).unwrap())),
        );
    }
    group.bench_function("SegmentTorrent::build", |b| {
        b.iter(|| {
            black_box(
                SegmentTorrent::build(&bytes[..], bytes.len() as u64, "00000000.ts", None, vec![])
                    .unwrap(),
            )
        })
    });
    group.finish();
}

fn manifests(c: &mut Criterion) {
    let secret = StreamSecret::from_seed(&[1; 32]);
    let segment = data(4 << 20);
    let segments = (0..8u64)
        .map(|n| {
            let t = SegmentTorrent::build(
                &segment[..],
                segment.len() as u64,
                &format!("{n:08}.ts"),
                None,
                vec![],
            )
            .unwrap();
            SegmentEntry {
                number: n,
                media_start: n * 5_400_000,
                duration: 5_400_000,
                size: segment.len() as u64,
                discontinuity: false,
                published_ms: 1_700_000_000_000,
                info_hash: t.info_hash(),
                info: t.info_bytes().to_vec(),
            }
        })
        .collect();
    let m = Manifest {
        key: secret.public(),
        seq: 1,
        issued_ms: 1_700_000_000_000,
        target_duration: 5_400_000,
        peers: vec!["127.0.0.1:6881".into()],
        trackers: vec!["http://127.0.0.1:8080/announce".into()],
        end_of_stream: false,
        segments,
    };
    let doc = m.sign(&secret).unwrap().bytes;
    let mut group = c.benchmark_group("manifest, 8 segments of 4 MiB");
    group.throughput(Throughput::Bytes(doc.len() as u64));
    group.bench_function("sign", |b| b.iter(|| black_box(m.sign(&secret).unwrap())));
    group.bench_function("verify", |b| {
        b.iter(|| black_box(manifest::verify(&doc, &secret.public()).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, hashing, manifests);
criterion_main!(benches);
