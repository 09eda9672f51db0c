//! Striping costs, side by side in one run (docs/striped-fec.md, "Costs"):
//! - `raptorq_block`: raptorq's own encode benchmark's loop (`SourceBlockEncoder::new`, one
//!   repair packet) on the same block: the library's floor;
//! - `encode`: our encoder (all N symbols, the symbol hashes, n signed headers);
//! - `rebuild_n_minus_1`: a viewer's work for one segment from n−1 substreams (deframing,
//!   signature and hash checks, decoding);
//! - `sha1`: SHA-1 over the same bytes (what a BitTorrent v1 peer spends to check them).
//!
//! One 2 s segment at 1 Mbit/s: 250,000 bytes, K = 196 symbols of 1,280 bytes, n = 4.
//!
//! And a minute-long segment at 1 Mbit/s (7,500,000 bytes, K = 5,860): `encode_first`, a new
//! encoder's first segment of that K (it checks once that every n−1 substreams decode, with
//! 8-byte symbols), `encode` the same K again (the check cached), and raptorq's loop.
//! `cargo bench -p swarmcast-stripe --bench stripe`

// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use raptorq::{ObjectTransmissionInformation, SourceBlockEncoder};
use sha1::{Digest, Sha1};
use swarmcast_core::keys::StreamSecret;
use swarmcast_stripe::code::SegmentMeta;
use swarmcast_stripe::{Deframer, Encoder, Event, Rebuilder, StripeParams};

const LEN: usize = 250_000;

fn segment(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0])
        .collect()
}

fn meta() -> SegmentMeta {
    SegmentMeta {
        seq: 1,
        media_start_us: 0,
        duration_us: 2_000_000,
    }
}

/// The baselines, on the same bytes: raptorq's own encode loop (the block's encoder and one
/// repair symbol) and SHA-1.
fn baselines(g: &mut BenchmarkGroup<'_, WallTime>, data: &[u8], params: StripeParams) {
    let t = params.symbol_size as usize;
    let mut padded = data.to_vec();
    padded.resize(data.len().div_ceil(t) * t, 0);
    let oti = ObjectTransmissionInformation::new(0, params.symbol_size, 0, 1, 1);
    g.bench_function("raptorq_block", |b| {
        b.iter(|| {
            let enc = SourceBlockEncoder::new(1, &oti, black_box(&padded));
            black_box(enc.repair_packets(0, 1));
        })
    });
    g.bench_function("sha1", |b| {
        b.iter(|| black_box(Sha1::digest(black_box(data))))
    });
}

fn bench(c: &mut Criterion) {
    let data = segment(LEN);
    let params = StripeParams::default();
    let secret = StreamSecret::from_seed(&[7; 32]);
    let mut g = c.benchmark_group("stripe_2s_segment");
    g.throughput(Throughput::Bytes(LEN as u64));
    baselines(&mut g, &data, params);

    let mut encoder = Encoder::new(secret.clone(), params).unwrap();
    g.bench_function("encode", |b| {
        b.iter(|| black_box(encoder.encode(meta(), black_box(&data)).unwrap()))
    });

    let striped = encoder.encode(meta(), &data).unwrap();
    let streams: Vec<Vec<u8>> = (1..params.substreams)
        .map(|s| striped.substream_bytes(s))
        .collect();
    let key = secret.public();
    g.bench_function("rebuild_n_minus_1", |b| {
        b.iter(|| {
            let mut r = Rebuilder::new();
            for stream in &streams {
                let mut d = Deframer::new(key);
                d.push(stream);
                while let Some(e) = d.next_event() {
                    match e {
                        Event::Header(h) => r.add_header(h).unwrap(),
                        Event::Symbol(s) => {
                            r.add_symbol(s).unwrap();
                        }
                        Event::Refused(e) => panic!("{e}"),
                    }
                }
            }
            black_box(r.pop_ready().expect("decodes"))
        })
    });

    g.finish();
}

fn bench_minute(c: &mut Criterion) {
    const MINUTE: usize = 7_500_000;
    let data = segment(MINUTE);
    let params = StripeParams::default();
    let secret = StreamSecret::from_seed(&[7; 32]);
    let mut g = c.benchmark_group("stripe_60s_segment");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(MINUTE as u64));
    baselines(&mut g, &data, params);
    g.bench_function("encode_first", |b| {
        b.iter(|| {
            let mut encoder = Encoder::new(secret.clone(), params).unwrap();
            black_box(encoder.encode(meta(), black_box(&data)).unwrap())
        })
    });
    let mut encoder = Encoder::new(secret.clone(), params).unwrap();
    g.bench_function("encode", |b| {
        b.iter(|| black_box(encoder.encode(meta(), black_box(&data)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench, bench_minute);
criterion_main!(benches);
