use super::*;

fn seg(number: u64, secs: f64, discontinuity: bool) -> PlaylistSegment {
    PlaylistSegment {
        number,
        duration: (secs * 90_000.0).round() as u64,
        discontinuity,
        date_ms: 1_764_664_105_123 + number * 2000,
    }
}

fn uri(n: u64) -> String {
    format!("/segments/{n:08}.ts")
}

#[test]
fn the_tags_come_in_order() {
    let p = Playlist {
        target_duration: 4,
        media_sequence: 7,
        discontinuity_sequence: 2,
        segments: vec![seg(7, 2.04, false), seg(8, 1.96, true)],
        end_list: true,
    };
    assert_eq!(
        render(&p, uri),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:7\n\
         #EXT-X-DISCONTINUITY-SEQUENCE:2\n\
         #EXT-X-PROGRAM-DATE-TIME:2025-12-02T08:28:39.123Z\n#EXTINF:2.040,\n/segments/00000007.ts\n\
         #EXT-X-DISCONTINUITY\n\
         #EXT-X-PROGRAM-DATE-TIME:2025-12-02T08:28:41.123Z\n#EXTINF:1.960,\n/segments/00000008.ts\n\
         #EXT-X-ENDLIST\n"
    );
    assert_eq!(p.duration_ms(), 4000);
}

#[test]
fn a_live_playlist_has_no_endlist_and_an_empty_one_starts_at_zero() {
    let p = Playlist {
        target_duration: 1,
        media_sequence: 0,
        discontinuity_sequence: 0,
        segments: vec![],
        end_list: false,
    };
    let text = render(&p, uri);
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{text}");
    assert!(!text.contains("ENDLIST"), "{text}");
    assert!(!text.contains("#EXTINF"), "{text}");
}

#[test]
fn program_date_time_is_rfc3339_utc_with_milliseconds() {
    assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339_ms(951_782_400_007), "2000-02-29T00:00:00.007Z");
    assert_eq!(rfc3339_ms(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
    assert_eq!(rfc3339_ms(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
}

#[test]
fn extinf_has_three_decimals_rounded_to_the_millisecond() {
    assert_eq!(seconds_3(90_000), "1.000");
    assert_eq!(seconds_3(3_600), "0.040");
    assert_eq!(seconds_3(45), "0.001"); // 0.5 ms rounds up
    assert_eq!(seconds_3(180_000 + 3_600 * 60), "4.400");
}

/// Twice the target, rounded up: a segment cut at the forced limit (twice the target plus less
/// than a frame) rounds to at most that.
#[test]
fn the_target_duration_bounds_every_segment_the_segmenter_cuts() {
    assert_eq!(target_duration_secs(2 * 90_000), 4);
    assert_eq!(target_duration_secs(60 * 90_000), 120);
    assert_eq!(target_duration_secs(45_000), 1); // 0.5 s
    assert_eq!(target_duration_secs(2 * 90_000 + 1), 5);
    assert_eq!(target_duration_secs(0), 1);
    for target_ms in [500u64, 1000, 1300, 2000, 2250, 2400, 6000, 60_000] {
        let target = target_ms * 90;
        // 25 fps: the forced cut comes less than one frame after twice the target.
        let longest = 2 * target + 3_600 - 1;
        let rounded = (longest + 45_000) / 90_000;
        assert!(rounded <= target_duration_secs(target), "{target_ms} ms");
    }
}

#[test]
fn the_media_sequence_is_the_first_listed_and_a_segment_waits_for_the_one_before() {
    let mut t = HlsTimeline::new();
    // 5 verified before 4: only 3 is listed.
    let p = t.update(4, &[seg(5, 2.0, false), seg(3, 2.0, false)], false);
    assert_eq!(p.segments.iter().map(|s| s.number).collect::<Vec<_>>(), [3]);
    let p = t.update(
        4,
        &[seg(5, 2.0, false), seg(3, 2.0, false), seg(4, 2.0, false)],
        false,
    );
    assert_eq!(
        p.segments.iter().map(|s| s.number).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert!(render(&p, uri).contains("#EXT-X-MEDIA-SEQUENCE:3\n"));
    // 3 forgotten.
    let p = t.update(4, &[seg(4, 2.0, false), seg(5, 2.0, false)], false);
    assert!(render(&p, uri).contains("#EXT-X-MEDIA-SEQUENCE:4\n"));
    assert_eq!(p.discontinuity_sequence, 0);
}

/// RFC 8216 §6.2.2: a segment is never added in front of what was listed, and a playlist left
/// empty for a while (played segments forgotten before the next is verified) keeps its place.
#[test]
fn the_media_sequence_never_goes_back() {
    let mut t = HlsTimeline::new();
    // At a join several segments download at once: 11 verified first is listed...
    let p = t.update(4, &[seg(11, 2.0, false)], false);
    assert_eq!(p.media_sequence, 11);
    // ...and 10, verified after it, is not put in front of it.
    let p = t.update(4, &[seg(10, 2.0, false), seg(11, 2.0, false)], false);
    assert_eq!(p.media_sequence, 11);
    assert_eq!(
        p.segments.iter().map(|s| s.number).collect::<Vec<_>>(),
        [11]
    );
    let p = t.update(4, &[seg(11, 2.0, false), seg(12, 2.0, false)], false);
    assert_eq!(p.segments.len(), 2);
    // Nothing verified for a moment (a stall): the next number, not 0.
    let p = t.update(4, &[], false);
    assert_eq!((p.media_sequence, p.segments.len()), (13, 0));
    assert!(render(&p, uri).contains("#EXT-X-MEDIA-SEQUENCE:13\n"));
    let p = t.update(4, &[seg(13, 2.0, false)], false);
    assert_eq!(p.media_sequence, 13);
    assert!(!p.segments[0].discontinuity, "13 follows 12");
    // Before anything was listed, an empty playlist starts at 0.
    assert_eq!(HlsTimeline::new().update(4, &[], false).media_sequence, 0);
}

#[test]
fn discontinuities_are_counted_as_their_segments_leave() {
    let mut t = HlsTimeline::new();
    let all = [
        seg(10, 2.0, false),
        seg(11, 2.0, true),
        seg(12, 2.0, false),
        seg(13, 2.0, true),
        seg(14, 2.0, false),
    ];
    let p = t.update(4, &all[..3], false);
    assert_eq!(p.discontinuity_sequence, 0);
    let text = render(&p, uri);
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    // 10 leaves: no discontinuity left with it.
    let p = t.update(4, &all[1..4], false);
    assert_eq!(p.discontinuity_sequence, 0);
    assert!(p.segments[0].discontinuity);
    // 11 leaves, with its discontinuity: counted.
    let p = t.update(4, &all[2..5], false);
    assert_eq!(p.discontinuity_sequence, 1);
    let text = render(&p, uri);
    assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{text}");
    // 12 and 13 leave at once.
    let p = t.update(4, &all[4..], false);
    assert_eq!(p.discontinuity_sequence, 2);
    assert!(!p.segments[0].discontinuity);
}

#[test]
fn a_segment_after_a_hole_is_a_discontinuity() {
    let mut t = HlsTimeline::new();
    // The first listed is not one (the viewer joined there).
    let p = t.update(4, &[seg(3, 2.0, false), seg(5, 2.0, false)], false);
    assert_eq!(p.segments.len(), 1);
    assert!(!p.segments[0].discontinuity);
    // 4 was skipped; 3 leaves.
    let p = t.update(4, &[seg(5, 2.0, false), seg(6, 2.0, false)], false);
    assert_eq!(p.segments.len(), 2);
    assert!(p.segments[0].discontinuity);
    assert!(!p.segments[1].discontinuity);
    assert_eq!(p.discontinuity_sequence, 0);
    let p = t.update(4, &[seg(6, 2.0, false)], false);
    assert_eq!(p.discontinuity_sequence, 1);
}

#[test]
fn the_list_ends_when_the_stream_ended_and_the_run_holds_every_segment() {
    let mut t = HlsTimeline::new();
    let p = t.update(4, &[seg(1, 2.0, false), seg(3, 1.0, false)], true);
    assert!(!p.end_list, "3 waits for 2");
    let p = t.update(
        4,
        &[seg(1, 2.0, false), seg(2, 2.0, false), seg(3, 1.0, false)],
        true,
    );
    assert!(p.end_list);
    assert!(render(&p, uri).ends_with("/segments/00000003.ts\n#EXT-X-ENDLIST\n"));
    let p = t.update(4, &[seg(1, 2.0, false), seg(2, 2.0, false)], false);
    assert!(!p.end_list);
}

/// The timeline remembers only what it lists: memory stays bounded however long the stream.
#[test]
fn the_timeline_forgets_what_left() {
    let mut t = HlsTimeline::new();
    for n in 0..10_000u64 {
        let window: Vec<_> = (n.saturating_sub(4)..=n)
            .map(|k| seg(k, 2.0, k % 7 == 0))
            .collect();
        let p = t.update(4, &window, false);
        assert_eq!(p.segments.len(), window.len());
    }
    assert_eq!(t.listed.len(), 5);
    // Discontinuities at 0, 7, 14, ... up to 9995 that left (those below 9996).
    assert_eq!(t.discontinuity_sequence, 9995 / 7 + 1);
}
