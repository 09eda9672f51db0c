use super::*;
use crate::code::tests::{data, meta, secret};
use crate::code::{Encoder, StripeParams};

fn encoder() -> Encoder {
    Encoder::new(secret(), StripeParams::default()).unwrap()
}

#[test]
fn a_forged_symbol_is_refused_before_the_decoder() {
    let segment = data(50_000, 4);
    let s = encoder().encode(meta(2), &segment).unwrap();
    let mut r = Rebuilder::new();
    for h in &s.headers {
        r.add_header(h.clone()).unwrap();
    }
    // A relay flips one byte of a symbol: refused, and the block still decodes from the rest.
    let mut forged = s.symbols[1][0].clone();
    forged.payload[100] ^= 0x40;
    let esi = forged.esi;
    assert_eq!(
        r.add_symbol(forged),
        Err(SymbolError::Forged { seq: 2, esi })
    );
    // A symbol of the wrong length never reaches raptorq (whose decoder would panic).
    let mut short = s.symbols[2][0].clone();
    short.payload.pop();
    assert!(matches!(
        r.add_symbol(short),
        Err(SymbolError::WrongLength {
            expected: 1280,
            found: 1279,
            ..
        })
    ));
    // An id beyond N, and one whose hash belongs to another id.
    let mut far = s.symbols[0][0].clone();
    far.esi = 1 << 20;
    assert!(matches!(
        r.add_symbol(far),
        Err(SymbolError::OutOfRange { .. })
    ));
    let mut moved = s.symbols[0][0].clone();
    moved.esi = s.symbols[0][1].esi;
    assert!(matches!(
        r.add_symbol(moved),
        Err(SymbolError::Forged { .. })
    ));
    for sym in s.symbols.iter().flatten() {
        let _ = r.add_symbol(sym.clone());
    }
    assert_eq!(r.pop_ready().unwrap().data, segment);
    assert_eq!(r.stats().symbols_forged, 2);
}

#[test]
fn a_block_with_too_few_symbols_is_lost_not_a_panic() {
    let segment = data(50_000, 5);
    let s = encoder().encode(meta(7), &segment).unwrap();
    let k = s.headers[0].fields().source_symbols;
    let mut r = Rebuilder::new();
    // Two substreams of four: about half the symbols.
    for stripe in 0..2 {
        r.add_header(s.headers[stripe].clone()).unwrap();
        for sym in &s.symbols[stripe] {
            assert_eq!(r.add_symbol(sym.clone()), Ok(Added::Stored));
        }
    }
    assert_eq!(r.pop_ready(), None);
    let received = (s.symbols[0].len() + s.symbols[1].len()) as u32;
    assert!(received < k);
    assert_eq!(
        r.abandon_next(),
        Some(Lost {
            seq: 7,
            symbols_received: received,
            source_symbols: Some(k),
            headers: 2,
            bytes: Some(50_000),
        })
    );
    // Late symbols of it are refused, and the next segment plays.
    assert_eq!(
        r.add_symbol(s.symbols[2][0].clone()),
        Err(SymbolError::Late { seq: 7 })
    );
    assert_eq!(r.stats().blocks_lost, 1);
}

#[test]
fn a_segment_never_seen_is_lost_and_playing_goes_on_in_order() {
    let mut enc = encoder();
    let segs: Vec<_> = (10..13)
        .map(|seq| {
            (
                enc.encode(meta(seq), &data(20_000, seq as u8)).unwrap(),
                seq,
            )
        })
        .collect();
    let mut r = Rebuilder::new();
    // Segment 10 complete, 12 complete, 11 nothing: 10 plays, then 11 waits.
    for (s, seq) in &segs {
        if *seq == 11 {
            continue;
        }
        for h in &s.headers {
            r.add_header(h.clone()).unwrap();
        }
        for sym in s.symbols.iter().flatten() {
            let _ = r.add_symbol(sym.clone());
        }
    }
    assert_eq!(r.pop_ready().unwrap().seq, 10);
    assert_eq!(r.pop_ready(), None);
    assert!(r.later_ready());
    assert_eq!(r.held(), 1);
    let lost = r.abandon_next().unwrap();
    assert_eq!(
        (lost.seq, lost.symbols_received, lost.source_symbols),
        (11, 0, None)
    );
    // 12 is rebuilt: giving up on "the next" does not drop it.
    assert_eq!(r.abandon_next(), None);
    let twelve = r.pop_ready().unwrap();
    assert_eq!((twelve.seq, twelve.data), (12, data(20_000, 12)));
    assert_eq!(twelve.media_start_us, 24_000_000);
    // Nothing of 13 arrived: given up, it is lost.
    assert!(!r.later_ready());
    assert_eq!(
        r.abandon_next(),
        Some(Lost {
            seq: 13,
            symbols_received: 0,
            source_symbols: None,
            headers: 0,
            bytes: None,
        })
    );
}

#[test]
fn headers_that_disagree_are_refused() {
    let mut enc = encoder();
    let a = enc.encode(meta(3), &data(20_000, 1)).unwrap();
    let b = enc.encode(meta(3), &data(20_000, 2)).unwrap();
    let mut r = Rebuilder::new();
    r.add_header(a.headers[0].clone()).unwrap();
    // Same segment number, other bytes (both signed: a publisher that restarted).
    assert_eq!(
        r.add_header(b.headers[1].clone()),
        Err(HeaderError::Conflict { seq: 3, stripe: 1 })
    );
}

#[test]
fn symbols_lost_are_those_that_never_arrived_late_ones_are_not() {
    let mut enc = encoder();
    let segs: Vec<_> = (0..ACCOUNT_BEHIND + 3)
        .map(|seq| enc.encode(meta(seq), &data(30_000, seq as u8)).unwrap())
        .collect();
    let n: Vec<u64> = segs
        .iter()
        .map(|s| u64::from(s.headers[0].fields().total_symbols))
        .collect();
    let mut r = Rebuilder::new();
    let feed = |r: &mut Rebuilder, seq: usize, stripes: &[usize]| {
        for &st in stripes {
            let _ = r.add_header(segs[seq].headers[st].clone());
            for sym in &segs[seq].symbols[st] {
                let _ = r.add_symbol(sym.clone());
            }
        }
    };
    // Segment 0: all four substreams, the symbols after decoding included: nothing lost.
    feed(&mut r, 0, &[0, 1, 2, 3]);
    assert_eq!(r.pop_ready().unwrap().seq, 0);
    // Segment 1 decodes from three; the fourth arrives after it played: late, not lost.
    feed(&mut r, 1, &[0, 1, 2]);
    assert_eq!(r.pop_ready().unwrap().seq, 1);
    feed(&mut r, 1, &[3]);
    // Segment 2: substream 3 never arrives: its symbols are lost.
    feed(&mut r, 2, &[0, 1, 2]);
    assert_eq!(r.pop_ready().unwrap().seq, 2);
    let stats = r.stats();
    assert_eq!(stats.symbols_expected, n[0] + n[1] + n[2]);
    assert_eq!(stats.symbols_lost, segs[2].symbols[3].len() as u64);
    assert_eq!(stats.symbols_late, segs[1].symbols[3].len() as u64);
    // Segment 3: only substream 0 (given up): everything else is lost.
    feed(&mut r, 3, &[0]);
    assert!(r.abandon_next().is_some());
    let lost_3 = n[3] - segs[3].symbols[0].len() as u64;
    assert_eq!(
        r.stats().symbols_lost,
        segs[2].symbols[3].len() as u64 + lost_3
    );
    // Once ACCOUNT_BEHIND more segments played, what was missing of segment 2 stays lost:
    // symbols of it that come now are not counted.
    for seq in 4..(ACCOUNT_BEHIND as usize + 3) {
        feed(&mut r, seq, &[0, 1, 2, 3]);
        assert_eq!(r.pop_ready().unwrap().seq, seq as u64);
    }
    feed(&mut r, 2, &[3]);
    let stats = r.stats();
    assert_eq!(
        stats.symbols_expected,
        n.iter().take(ACCOUNT_BEHIND as usize + 3).sum()
    );
    assert_eq!(stats.symbols_lost, segs[2].symbols[3].len() as u64 + lost_3);
    // A symbol that comes twice after its segment played is counted once.
    feed(&mut r, ACCOUNT_BEHIND as usize + 2, &[0]);
    assert_eq!(r.stats().symbols_lost, stats.symbols_lost);
}
