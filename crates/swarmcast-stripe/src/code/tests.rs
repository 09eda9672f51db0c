use super::*;
use crate::frame::{Deframer, Event};
use crate::rebuild::Rebuilder;
use proptest::prelude::*;
use swarmcast_core::keys::StreamSecret;

pub(crate) fn secret() -> StreamSecret {
    StreamSecret::from_seed(&[7; 32])
}

pub(crate) fn meta(seq: u64) -> SegmentMeta {
    SegmentMeta {
        seq,
        media_start_us: seq * 2_000_000,
        duration_us: 2_000_000,
    }
}

/// Bytes that are not all alike (a pattern the decoder could get right by luck).
pub(crate) fn data(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ salt)
        .collect()
}

#[test]
fn any_n_minus_one_substreams_hold_k_plus_h_symbols() {
    for n in 2..=8u8 {
        for k in [1u32, 2, 3, 10, 99, 196, 1000] {
            for h in 0..3 {
                let total = total_symbols(k, n, h);
                let dealt: u32 = (0..n).map(|s| symbols_in_stripe(total, n, s)).sum();
                assert_eq!(dealt, total, "n={n} k={k}");
                let largest = (0..n)
                    .map(|s| symbols_in_stripe(total, n, s))
                    .max()
                    .unwrap();
                assert!(total - largest >= k + h, "n={n} k={k} h={h} total={total}");
                // And N is the least such: one symbol fewer breaks it for some substream.
                let fewer = total - 1;
                let largest = (0..n)
                    .map(|s| symbols_in_stripe(fewer, n, s))
                    .max()
                    .unwrap();
                assert!(
                    fewer - largest < k + h,
                    "n={n} k={k} h={h}: {total} is not minimal"
                );
            }
        }
    }
}

#[test]
fn the_check_finds_an_n_for_every_k_of_a_two_second_segment() {
    // 1 Mbit/s x 2 s = 250 kB = 196 symbols of 1,280 B; the lab's segments vary around it.
    let mut enc = Encoder::new(secret(), StripeParams::default()).unwrap();
    for k in 150..=260 {
        let total = enc.total_for(k).unwrap();
        assert!(total >= total_symbols(k, 4, 0));
        assert!(drop_one_decodes(k, total, 4));
    }
}

#[test]
fn the_check_is_not_vacuous() {
    // With one symbol fewer than K in the smallest drop-one set, nothing decodes.
    let k = 40;
    let total = total_symbols(k, 4, 0) - 2;
    assert!(!drop_one_decodes(k, total, 4));
}

#[test]
fn bad_parameters_and_segments_are_named() {
    let p = |substreams, symbol_size| StripeParams {
        substreams,
        symbol_size,
        min_extra: 0,
    };
    assert_eq!(
        Encoder::new(secret(), p(1, 1280)).err(),
        Some(EncodeError::Substreams(1))
    );
    assert_eq!(
        Encoder::new(secret(), p(4, 1281)).err(),
        Some(EncodeError::SymbolSize(1281))
    );
    let mut enc = Encoder::new(secret(), p(4, 8)).unwrap();
    assert_eq!(enc.encode(meta(3), &[]).err(), Some(EncodeError::Empty(3)));
    let too_big = vec![0; 8 * (MAX_SOURCE_SYMBOLS as usize + 1)];
    let err = enc.encode(meta(4), &too_big).unwrap_err();
    assert!(err.to_string().contains("56403"), "{err}");
}

/// Feeds substreams' bytes, interleaved in chunks, through one deframer each, into one
/// rebuilder; returns the rebuilt segments.
pub(crate) fn rebuild(streams: &[Vec<u8>], chunk: usize) -> (Vec<Vec<u8>>, Rebuilder) {
    let key = secret().public();
    let mut readers: Vec<Deframer> = streams.iter().map(|_| Deframer::new(key)).collect();
    let mut rebuilder = Rebuilder::new();
    let mut out = Vec::new();
    let longest = streams.iter().map(Vec::len).max().unwrap_or(0);
    for at in (0..longest).step_by(chunk.max(1)) {
        for (stream, reader) in streams.iter().zip(&mut readers) {
            if at < stream.len() {
                reader.push(&stream[at..(at + chunk).min(stream.len())]);
            }
            while let Some(event) = reader.next_event() {
                match event {
                    Event::Header(h) => rebuilder.add_header(h).unwrap(),
                    Event::Symbol(s) => match rebuilder.add_symbol(s) {
                        // Symbols of a segment played already: the other substreams' surplus.
                        Ok(_) | Err(crate::rebuild::SymbolError::Late { .. }) => {}
                        Err(e) => panic!("{e}"),
                    },
                    Event::Refused(e) => panic!("refused: {e}"),
                }
                while let Some(r) = rebuilder.pop_ready() {
                    out.push(r.data);
                }
            }
        }
    }
    (out, rebuilder)
}

#[test]
fn a_two_second_segment_survives_the_loss_of_any_substream() {
    let mut enc = Encoder::new(secret(), StripeParams::default()).unwrap();
    let segment = data(250_000, 1);
    let striped = enc.encode(meta(0), &segment).unwrap();
    assert_eq!(striped.headers.len(), 4);
    for dropped in 0..4u8 {
        let streams: Vec<Vec<u8>> = (0..4u8)
            .filter(|&s| s != dropped)
            .map(|s| striped.substream_bytes(s))
            .collect();
        let (out, rebuilder) = rebuild(&streams, 4096);
        assert_eq!(out, vec![segment.clone()], "substream {dropped} dropped");
        assert_eq!(rebuilder.stats().symbols_refused, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Encode, drop one substream, shuffle and duplicate the rest's symbols: the segment comes
    /// back identical.
    #[test]
    fn drop_one_reorder_duplicate_decodes(
        len in 1usize..6000,
        n in 2u8..7,
        dropped in 0u8..7,
        salt in any::<u8>(),
        order in any::<u64>(),
        dups in proptest::collection::vec(any::<u16>(), 0..40),
    ) {
        let params = StripeParams { substreams: n, symbol_size: 64, min_extra: 0 };
        let mut enc = Encoder::new(secret(), params).unwrap();
        let segment = data(len, salt);
        let striped = enc.encode(meta(5), &segment).unwrap();
        let dropped = dropped % n;
        let mut rebuilder = Rebuilder::new();
        for (s, h) in striped.headers.iter().enumerate() {
            if s as u8 != dropped {
                rebuilder.add_header(h.clone()).unwrap();
            }
        }
        let mut symbols: Vec<Symbol> = striped.symbols.iter().enumerate()
            .filter(|(s, _)| *s as u8 != dropped)
            .flat_map(|(_, v)| v.iter().cloned())
            .collect();
        for d in &dups {
            let copy = symbols[usize::from(*d) % symbols.len()].clone();
            symbols.push(copy);
        }
        // A deterministic shuffle from the seed.
        let mut x = order | 1;
        for i in (1..symbols.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            symbols.swap(i, (x % (i as u64 + 1)) as usize);
        }
        for s in symbols {
            // Duplicates are refused (or redundant once decoded), never given twice.
            let _ = rebuilder.add_symbol(s);
        }
        let rebuilt = rebuilder.pop_ready().expect("decodes from n-1 substreams");
        prop_assert_eq!(rebuilt.data, segment);
        prop_assert_eq!(rebuilt.seq, 5);
        prop_assert_eq!(rebuilder.stats().symbols_forged, 0);
    }
}
