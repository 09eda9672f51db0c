use super::*;
use crate::code::tests::{data, meta, rebuild, secret};
use crate::code::{Encoder, StripeParams};
use proptest::prelude::*;

fn striped(segments: u64, len: usize) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new(secret(), StripeParams::default()).unwrap();
    let mut streams = vec![Vec::new(); 4];
    for seq in 0..segments {
        let s = enc.encode(meta(seq), &data(len, seq as u8)).unwrap();
        for (stripe, stream) in streams.iter_mut().enumerate() {
            stream.extend_from_slice(&s.substream_bytes(stripe as u8));
        }
    }
    streams
}

#[test]
fn header_round_trips_and_costs_what_the_docs_say() {
    let mut enc = Encoder::new(secret(), StripeParams::default()).unwrap();
    let s = enc.encode(meta(9), &data(250_000, 0)).unwrap();
    let header = &s.headers[1];
    let frame = header.to_frame();
    let back = StripeHeader::decode_verified(&frame[PREFIX_LEN..], &secret().public()).unwrap();
    assert_eq!(&back, header);
    // 196 source symbols; the four headers' hash lists together cover every symbol.
    let f = header.fields();
    assert_eq!(f.source_symbols, 196);
    // ⌈196·4/3⌉: h = 0 passed the decodability check for this K.
    assert_eq!(f.total_symbols, 262);
    let all: usize = s.headers.iter().map(|h| h.fields().hashes.len()).sum();
    assert_eq!(all as u32, f.total_symbols);
    let header_bytes: usize = s.headers.iter().map(|h| h.to_frame().len()).sum();
    assert_eq!(
        header_bytes,
        4 * (PREFIX_LEN + HEADER_FIXED_LEN + SIGNATURE_LEN) + all * SYMBOL_HASH_LEN
    );
    assert_eq!(header_bytes, 5_836);
    // Everything sent for the segment, over the stream's bytes: the docs' 1.39x.
    let sent: usize = (0..4u8).map(|stripe| s.substream_bytes(stripe).len()).sum();
    assert_eq!(sent, 262 * (PREFIX_LEN + SYMBOL_FIXED_LEN + 1280) + 5_836);
    assert_eq!(sent, 346_698);
}

#[test]
fn a_tampered_header_or_another_key_is_refused() {
    let mut enc = Encoder::new(secret(), StripeParams::default()).unwrap();
    let s = enc.encode(meta(1), &data(10_000, 0)).unwrap();
    let frame = s.headers[0].to_frame();
    let key = secret().public();
    for at in [
        PREFIX_LEN + 1,
        PREFIX_LEN + 20,
        frame.len() - 70,
        frame.len() - 1,
    ] {
        let mut bad = frame[PREFIX_LEN..].to_vec();
        bad[at - PREFIX_LEN] ^= 1;
        assert_eq!(
            StripeHeader::decode_verified(&bad, &key),
            Err(FrameError::BadSignature),
            "byte {at}"
        );
    }
    let other = swarmcast_core::keys::StreamSecret::from_seed(&[8; 32]).public();
    assert_eq!(
        StripeHeader::decode_verified(&frame[PREFIX_LEN..], &other),
        Err(FrameError::BadSignature)
    );
}

#[test]
fn a_reader_joining_mid_stream_resumes_at_the_next_header() {
    let streams = striped(3, 30_000);
    let (_, first_len) = {
        let mut enc = Encoder::new(secret(), StripeParams::default()).unwrap();
        let s = enc.encode(meta(0), &data(30_000, 0)).unwrap();
        ((), s.substream_bytes(0).len())
    };
    // Start every substream inside segment 0: segments 1 and 2 come out, byte-identical.
    let late: Vec<Vec<u8>> = streams
        .iter()
        .map(|s| s[first_len / 3..].to_vec())
        .collect();
    let (out, rebuilder) = rebuild(&late, 1000);
    assert_eq!(out, vec![data(30_000, 1), data(30_000, 2)]);
    assert_eq!(rebuilder.stats().symbols_refused, 0);
}

#[test]
fn a_cut_mid_frame_loses_sync_and_finds_it_again() {
    let streams = striped(3, 30_000);
    let key = secret().public();
    let mut reader = Deframer::new(key);
    // The first 5,000 bytes, then a jump to the middle of the stream (a relay switch that
    // resumed at the wrong place): the reader must hunt, not misread.
    reader.push(&streams[0][..5000]);
    let mut headers = Vec::new();
    while let Some(e) = reader.next_event() {
        if let Event::Header(h) = e {
            headers.push(h.fields().seq);
        }
    }
    reader.push(&streams[0][streams[0].len() / 2..]);
    while let Some(e) = reader.next_event() {
        match e {
            Event::Header(h) => headers.push(h.fields().seq),
            Event::Symbol(_) => {}
            Event::Refused(e) => panic!("{e}"),
        }
    }
    assert_eq!(headers, vec![0, 2]);
    assert_eq!(reader.resyncs(), 1);
    assert!(reader.skipped_bytes() > 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever arrives, the reader and the rebuilder return errors, never panic: garbage,
    /// frames with flipped bytes, truncated frames.
    #[test]
    fn arbitrary_bytes_never_panic(
        garbage in proptest::collection::vec(any::<u8>(), 0..3000),
        flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..20),
        cut in any::<u16>(),
    ) {
        let mut enc = Encoder::new(secret(), StripeParams { substreams: 3, symbol_size: 64, min_extra: 0 }).unwrap();
        let s = enc.encode(meta(0), &data(1500, 3)).unwrap();
        let mut bytes = garbage.clone();
        bytes.extend_from_slice(&s.substream_bytes(0));
        bytes.extend_from_slice(&garbage);
        bytes.extend_from_slice(&s.substream_bytes(1));
        for (at, x) in flips {
            let i = usize::from(at) % bytes.len();
            bytes[i] ^= x;
        }
        bytes.truncate(bytes.len() - usize::from(cut) % bytes.len().max(1));
        let mut reader = Deframer::new(secret().public());
        let mut rebuilder = crate::Rebuilder::new();
        for chunk in bytes.chunks(97) {
            reader.push(chunk);
            while let Some(e) = reader.next_event() {
                match e {
                    Event::Header(h) => { let _ = rebuilder.add_header(h); }
                    Event::Symbol(s) => { let _ = rebuilder.add_symbol(s); }
                    Event::Refused(_) => {}
                }
            }
        }
        let _ = rebuilder.pop_ready();
        let _ = rebuilder.abandon_next();
    }
}
