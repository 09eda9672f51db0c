use super::*;
use crate::testts::{Frame, TsBuilder, AUDIO_PID, VIDEO_PID};
use crate::ts::PTS_MODULO;

const SECOND: u64 = 90_000;
const FRAME: u64 = 3_600; // 25 fps

fn config(target: u64) -> CutterConfig {
    CutterConfig {
        target,
        first_number: 0,
        first_discontinuity: false,
    }
}

/// Runs the cutter over `input` in chunks of `chunk` bytes; returns the segments' bytes and metas.
fn cut(input: &[u8], target: u64, chunk: usize) -> (Vec<Vec<u8>>, Vec<SegmentMeta>, CutterStats) {
    let mut cutter = TsCutter::new(config(target));
    let mut outputs = Vec::new();
    for c in input.chunks(chunk.max(1)) {
        outputs.extend(cutter.push(c));
    }
    outputs.extend(cutter.finish());
    let (mut segments, mut metas, mut current) = (Vec::new(), Vec::new(), Vec::new());
    for o in outputs {
        match o {
            Output::Data(d) => current.extend_from_slice(&d),
            Output::End(meta) => {
                assert_eq!(
                    meta.size,
                    current.len() as u64,
                    "size of segment {}",
                    meta.number
                );
                segments.push(std::mem::take(&mut current));
                metas.push(meta);
            }
        }
    }
    assert!(current.is_empty(), "bytes after the last segment");
    (segments, metas, cutter.stats())
}

/// A feed of `seconds` at 25 fps with a keyframe every `gop` frames, PAT/PMT before each keyframe.
fn feed(b: &mut TsBuilder, first_pts: u64, frames: u64, gop: u64) -> Vec<usize> {
    let mut keyframe_offsets = Vec::new();
    for i in 0..frames {
        let pts = (first_pts + i * FRAME) % PTS_MODULO;
        if i % gop == 0 {
            keyframe_offsets.push(b.len());
            b.pat();
            b.pmt(&[(0x1B, VIDEO_PID), (0x0F, AUDIO_PID)]);
            b.video(pts, Frame::Idr { rai: true }, 700);
        } else {
            b.video(pts, Frame::P, 300);
        }
        b.audio(pts, 200);
    }
    keyframe_offsets
}

#[test]
fn cuts_right_before_the_psi_run_of_a_keyframe_and_concatenation_equals_input() {
    let mut b = TsBuilder::new();
    let keys = feed(&mut b, 126_000, 250, 25); // 10 s, keyframe every second
    let input = b.finish();
    for chunk in [1, 100, 188, 1000, 1 << 20] {
        let (segments, metas, stats) = cut(&input, 2 * SECOND, chunk);
        assert_eq!(segments.concat(), input, "chunk {chunk}");
        assert_eq!(metas.len(), 5);
        let mut offset = 0;
        for (i, (seg, meta)) in segments.iter().zip(&metas).enumerate() {
            assert_eq!(
                offset,
                keys[2 * i],
                "segment {i} starts at the PAT before keyframe {}",
                2 * i
            );
            assert_eq!(meta.number, i as u64);
            assert_eq!(meta.media_start, 126_000 + 2 * SECOND * i as u64);
            assert_eq!(meta.duration, 2 * SECOND);
            assert!(!meta.forced && !meta.discontinuity);
            offset += seg.len();
        }
        assert_eq!(stats.bytes_skipped, 0);
        assert_eq!(stats.forced_cuts, 0);
    }
}

#[test]
fn cuts_at_the_pes_packet_when_no_psi_precedes_the_keyframe() {
    let mut b = TsBuilder::new();
    b.pat();
    b.pmt(&[(0x1B, VIDEO_PID)]);
    let mut keys = Vec::new();
    for i in 0..100u64 {
        if i % 25 == 0 {
            keys.push(b.len());
        }
        let frame = if i % 25 == 0 {
            Frame::Idr { rai: true }
        } else {
            Frame::P
        };
        b.video(i * FRAME, frame, 400);
    }
    let input = b.finish();
    let (segments, metas, _) = cut(&input, SECOND, 4096);
    assert_eq!(metas.len(), 4);
    assert_eq!(segments[0].len(), keys[1]);
    assert_eq!(segments[0].len() + segments[1].len(), keys[2]);
}

#[test]
fn keyframes_are_found_in_the_nal_units_without_the_random_access_flag() {
    let mut b = TsBuilder::new();
    let mut keys = Vec::new();
    for i in 0..100u64 {
        if i % 25 == 0 {
            keys.push(b.len());
            b.pat();
            b.pmt(&[(0x1B, VIDEO_PID)]);
            // A long SEI before the IDR slice pushes the slice into the PES's second packet.
            b.video(i * FRAME, Frame::IdrAfterSei, 900);
        } else {
            b.video(i * FRAME, Frame::P, 300);
        }
    }
    let input = b.finish();
    let (segments, metas, _) = cut(&input, SECOND, 777);
    assert_eq!(metas.len(), 4);
    assert_eq!(segments[0].len(), keys[1]);
    assert_eq!(segments.concat(), input);
}

#[test]
fn garbage_and_lost_sync_are_skipped_counted_and_survived() {
    let mut clean = TsBuilder::new();
    feed(&mut clean, 0, 100, 25);
    let clean = clean.finish();
    // Same packets, with garbage in front, a torn packet in the middle, junk at the end.
    let packets: Vec<&[u8]> = clean.chunks(PACKET).collect();
    let mut dirty = b"\x00\x47junk before".to_vec();
    let mut skipped = dirty.len();
    for (i, p) in packets.iter().enumerate() {
        if i == packets.len() / 2 {
            dirty.extend_from_slice(&[0x47, 0x00, 0x11, 0x10, 0xAA]);
            skipped += 5;
        }
        dirty.extend_from_slice(p);
    }
    dirty.extend_from_slice(&[0x47; 20]);
    skipped += 20;
    for chunk in [1, 333, 65536] {
        let (segments, metas, stats) = cut(&dirty, SECOND, chunk);
        assert_eq!(segments.concat(), clean, "chunk {chunk}");
        assert_eq!(stats.bytes_skipped, skipped as u64);
        assert_eq!(stats.resyncs, 1);
        assert_eq!(metas.len(), 4);
    }
}

#[test]
fn a_missing_keyframe_forces_a_cut_at_twice_the_target_and_is_counted() {
    let mut b = TsBuilder::new();
    feed(&mut b, 0, 250, 1000); // one keyframe, then 10 s of P frames
    let input = b.finish();
    let (segments, metas, stats) = cut(&input, 2 * SECOND, 4096);
    assert_eq!(segments.concat(), input);
    assert_eq!(stats.forced_cuts, 2);
    assert_eq!(metas[0].duration, 4 * SECOND);
    assert!(!metas[0].forced);
    assert!(
        metas[1].forced,
        "the next segment starts without a keyframe"
    );
    assert_eq!(metas[1].media_start, 4 * SECOND);
}

#[test]
fn pts_wrap_around_keeps_durations_and_a_growing_timeline() {
    let mut b = TsBuilder::new();
    let start = PTS_MODULO - 3 * SECOND; // wraps 3 s in
    feed(&mut b, start, 250, 25);
    let input = b.finish();
    let (_, metas, stats) = cut(&input, 2 * SECOND, 4096);
    assert_eq!(stats.discontinuities, 0);
    assert_eq!(metas.len(), 5);
    for (i, m) in metas.iter().enumerate() {
        assert_eq!(m.media_start, start + 2 * SECOND * i as u64, "segment {i}");
        assert_eq!(m.duration, 2 * SECOND);
    }
}

#[test]
fn a_flagged_discontinuity_cuts_at_the_next_keyframe_and_is_marked() {
    let mut b = TsBuilder::new();
    feed(&mut b, 0, 60, 25); // 2.4 s; keyframes at 0, 1, 2 s
    let splice = b.len();
    b.discontinuity_next();
    feed(&mut b, 50 * SECOND, 75, 25); // the encoder restarted at 50 s
    let input = b.finish();
    let (segments, metas, stats) = cut(&input, 5 * SECOND, 4096);
    assert_eq!(segments.concat(), input);
    assert_eq!(stats.discontinuities, 1);
    assert_eq!(metas.len(), 2);
    assert_eq!(segments[0].len(), splice);
    assert!(metas[1].discontinuity && !metas[0].discontinuity);
    assert_eq!(metas[0].duration, 60 * FRAME);
    assert_eq!(
        metas[1].media_start,
        60 * FRAME,
        "the timeline continues, not jumps"
    );
}

#[test]
fn an_unflagged_timestamp_jump_is_a_discontinuity_too() {
    let mut b = TsBuilder::new();
    feed(&mut b, 0, 50, 25);
    let splice = b.len();
    feed(&mut b, 3600 * SECOND, 50, 25);
    let (segments, metas, stats) = cut(&b.finish(), 10 * SECOND, 4096);
    assert_eq!(stats.discontinuities, 1);
    assert_eq!(segments[0].len(), splice);
    assert!(metas[1].discontinuity);
}

#[test]
fn audio_only_feeds_cut_at_an_audio_pes_start() {
    let mut b = TsBuilder::new();
    let mut starts = Vec::new();
    for i in 0..200u64 {
        starts.push(b.len());
        if i % 10 == 0 {
            b.pat();
            b.pmt(&[(0x0F, AUDIO_PID)]);
        }
        b.audio(i * 1920, 300); // AAC frames at 48 kHz
    }
    let input = b.finish();
    let (segments, metas, _) = cut(&input, SECOND, 4096);
    assert_eq!(segments.concat(), input);
    assert!(metas.len() >= 3);
    let mut offset = 0;
    for s in &segments[..segments.len() - 1] {
        offset += s.len();
        assert!(
            starts.contains(&offset),
            "cut at {offset} is not an audio frame start"
        );
    }
    // 1 s is 46.875 frames: the cut lands on the first frame at or past 1 s minus half a frame.
    assert_eq!(metas[0].duration, 47 * 1920);
}

#[test]
fn numbering_continues_and_the_first_segment_can_be_a_discontinuity() {
    let mut b = TsBuilder::new();
    feed(&mut b, 0, 50, 25);
    let mut cutter = TsCutter::new(CutterConfig {
        target: SECOND,
        first_number: 41,
        first_discontinuity: true,
    });
    let mut outputs = cutter.push(&b.finish());
    outputs.extend(cutter.finish());
    let metas: Vec<SegmentMeta> = outputs
        .into_iter()
        .filter_map(|o| {
            if let Output::End(m) = o {
                Some(m)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        metas.iter().map(|m| m.number).collect::<Vec<_>>(),
        vec![41, 42]
    );
    assert!(metas[0].discontinuity && !metas[1].discontinuity);
}

#[test]
fn wall_clock_cutting_of_a_non_ts_stream() {
    let mut c = ClockCutter::new(config(2 * SECOND));
    let mut outputs = Vec::new();
    let mut input = Vec::new();
    for t in 0..50u64 {
        let chunk = vec![t as u8; 100];
        input.extend_from_slice(&chunk);
        outputs.extend(c.push(&chunk, 1_000 + t * 100)); // 10 chunks a second
    }
    outputs.extend(c.finish(6_000));
    let mut data = Vec::new();
    let mut metas = Vec::new();
    for o in outputs {
        match o {
            Output::Data(d) => data.extend(d),
            Output::End(m) => metas.push(m),
        }
    }
    assert_eq!(data, input);
    assert_eq!(metas.len(), 3);
    assert_eq!(
        (metas[0].media_start, metas[0].duration, metas[0].size),
        (0, 2 * SECOND, 2000)
    );
    assert_eq!(
        (metas[1].media_start, metas[1].duration),
        (2 * SECOND, 2 * SECOND)
    );
    assert_eq!(metas[2].media_start + metas[2].duration, 5 * SECOND);
}
