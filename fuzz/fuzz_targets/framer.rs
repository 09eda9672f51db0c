//! The TS framer alone: whole 188-byte packets out of bytes pushed at arbitrary boundaries.
//!
//! Beyond "no panic": every packet is 188 bytes and starts with the sync byte, the packets are an
//! in-order subsequence of the input's bytes, and packets plus skipped bytes are the whole input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmcast_segmenter::framer::{looks_like_ts, Framer};

fuzz_target!(|data: &[u8]| {
    let Some((&control, feed)) = data.split_first() else {
        return;
    };
    let chunk = [1usize, 2, 187, 188, 189, 377, 1024, usize::MAX][control as usize & 7];
    let mut framer = Framer::new();
    let mut out: Vec<u8> = Vec::new();
    for part in feed.chunks(chunk.min(feed.len().max(1))) {
        framer.push(part, |p| {
            assert_eq!(p.len(), 188);
            assert_eq!(p[0], 0x47);
            out.extend_from_slice(p);
        });
    }
    framer.finish(|p| {
        assert_eq!(p.len(), 188);
        assert_eq!(p[0], 0x47);
        out.extend_from_slice(p);
    });
    assert_eq!(out.len() as u64 + framer.bytes_skipped(), feed.len() as u64);
    // Packets are whole runs of the input, in order.
    let mut at = 0;
    for p in out.chunks(188) {
        let found = feed[at..]
            .windows(188)
            .position(|w| w == p)
            .expect("a packet that is not in the input");
        at += found + 188;
    }
    let _ = looks_like_ts(feed);
});
