//! The TS cutter: bytes in at arbitrary chunk boundaries, segments out.
//!
//! The first byte picks the target duration and how the input is chunked; the rest is the feed.
//! Beyond "no panic": every byte comes out once, in order, or is counted as skipped; segment sizes
//! add up to the bytes out; segment numbers follow each other from the configured first one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmcast_segmenter::{CutterConfig, Output, TsCutter};

fuzz_target!(|data: &[u8]| {
    let Some((&control, feed)) = data.split_first() else {
        return;
    };
    let target = [
        1,
        9_000,
        45_000,
        90_000,
        180_000,
        900_000,
        u64::MAX / 2,
        3_000,
    ][control as usize & 7];
    let chunk = [1, 7, 188, 189, 376, 1000, 4096, usize::MAX][(control >> 3) as usize & 7];
    let first_number = u64::from(control >> 6) * 1000;
    let mut cutter = TsCutter::new(CutterConfig {
        target,
        first_number,
        first_discontinuity: control & 0x20 != 0,
    });
    let mut outputs = Vec::new();
    for part in feed.chunks(chunk.min(feed.len().max(1))) {
        outputs.extend(cutter.push(part));
    }
    outputs.extend(cutter.finish());
    let mut out = Vec::new();
    let mut in_segment = 0u64;
    let mut next = first_number;
    for o in outputs {
        match o {
            Output::Data(d) => {
                in_segment += d.len() as u64;
                out.extend(d);
            }
            Output::End(meta) => {
                assert_eq!(meta.number, next);
                assert_eq!(meta.size, in_segment);
                assert!(meta.size > 0);
                next += 1;
                in_segment = 0;
            }
        }
    }
    assert_eq!(in_segment, 0, "bytes after the last segment's end");
    let stats = cutter.stats();
    assert_eq!(out.len() as u64 + stats.bytes_skipped, feed.len() as u64);
    assert_eq!(out.len() as u64, stats.packets * 188);
    assert!(out.chunks(188).all(|p| p[0] == 0x47));
});
