//! An endless, playable MPEG-TS feed for demos, tests and the lab, with no encoder needed.
//!
//! It loops a small pre-encoded fixture (`resources/test/gop25.ts`: one closed H.264 GOP of 25
//! frames at 25 fps, 320x240, made by ffmpeg, so a keyframe every second) and rewrites what must
//! keep growing: PTS/DTS and PCR advance by the fixture's duration on every loop, continuity
//! counters continue per PID. To reach a set bitrate it interleaves null packets (PID 0x1FFF),
//! as constant-bitrate muxers do; the bitrate cannot go below the fixture's own (~135 kbit/s).
//!
//! [`Synth`] is sans-IO: it hands out one frame's packets at a time with the frame's media time;
//! the caller paces them (see `source::synth_reader`).

use std::collections::HashMap;

use crate::ts::{self, NULL_PID, PACKET, PTS_MODULO, SYNC};

/// The built-in fixture.
pub const FIXTURE: &[u8] = include_bytes!("../../../resources/test/gop25.ts");

/// The least bitrate a command line accepts, bit/s (the fixture itself needs more: see
/// [`SynthError::BitrateTooLow`]).
pub const MIN_BITRATE: u64 = 8_000;
/// The greatest bitrate the feed produces, bit/s (1 Gbit/s). A frame's packets are built at
/// once, so the rate bounds the feed's buffers: a frame at this rate is about 5 MB (an
/// unbounded rate once grew a publisher by gigabytes in seconds).
pub const MAX_BITRATE: u64 = 1_000_000_000;

/// Why a synthetic feed cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SynthError {
    /// The fixture is not a whole number of TS packets with video timestamps.
    #[error("synthetic feed fixture is unusable: {0}")]
    BadFixture(&'static str),
    /// Asked for less than the fixture needs.
    #[error("bitrate {asked} bit/s is below the synthetic feed's minimum of {min} bit/s")]
    BitrateTooLow {
        /// Requested bit/s.
        asked: u64,
        /// The fixture's own bitrate.
        min: u64,
    },
    /// Asked for more than [`MAX_BITRATE`].
    #[error("bitrate {asked} bit/s is above the synthetic feed's maximum of {MAX_BITRATE} bit/s")]
    BitrateTooHigh {
        /// Requested bit/s.
        asked: u64,
    },
}

/// Where timestamps sit in a fixture packet, found once when the fixture is loaded.
#[derive(Clone, Debug)]
struct FixturePacket {
    pid: u16,
    has_payload: bool,
    /// Offsets of 5-byte PTS/DTS fields inside the packet.
    timestamps: Vec<usize>,
    /// Offset of the 6-byte PCR inside the packet.
    pcr: Option<usize>,
    /// Starts a video frame.
    frame_start: bool,
}

/// The synthetic feed generator.
#[derive(Debug)]
pub struct Synth {
    fixture: Vec<u8>,
    packets: Vec<FixturePacket>,
    base_pts: u64,
    frame: u64,
    frames_per_loop: u64,
    nulls_per_loop: u64,
    start_pts: u64,
    loop_index: u64,
    cursor: usize,
    frame_in_loop: u64,
    cc: HashMap<u16, u8>,
}

/// One frame's worth of output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Media time of the frame, in 90 kHz ticks since the feed's first frame.
    pub offset: u64,
    /// TS packets.
    pub bytes: Vec<u8>,
}

impl Synth {
    /// A feed from the built-in fixture. `bitrate` in bit/s (`None`: the fixture's own);
    /// `start_pts` is the first frame's PTS (set it near 2^33 to exercise wrap-around).
    pub fn new(bitrate: Option<u64>, start_pts: u64) -> Result<Self, SynthError> {
        Self::with_fixture(FIXTURE, bitrate, start_pts)
    }

    /// A feed looping `fixture`, which must start with a keyframe and be one closed GOP.
    pub fn with_fixture(
        fixture: &[u8],
        bitrate: Option<u64>,
        start_pts: u64,
    ) -> Result<Self, SynthError> {
        if fixture.is_empty() || !fixture.len().is_multiple_of(PACKET) {
            return Err(SynthError::BadFixture(
                "not a whole number of 188-byte packets",
            ));
        }
        let mut packets = Vec::new();
        let mut video_pts = Vec::new();
        let mut video_pid = None;
        for raw in fixture.chunks(PACKET) {
            let info = ts::packet_info(raw).ok_or(SynthError::BadFixture("lost sync"))?;
            let payload_offset = info.payload.map(|p| PACKET - p.len());
            let mut timestamps = Vec::new();
            let mut frame_start = false;
            if let (true, Some(payload), Some(offset)) =
                (info.unit_start, info.payload, payload_offset)
            {
                if let Some(pes) = ts::pes_start(payload) {
                    let flags = payload[7] >> 6;
                    if flags & 0b10 != 0 {
                        timestamps.push(offset + 9);
                    }
                    if flags == 0b11 {
                        timestamps.push(offset + 14);
                    }
                    if (0xE0..=0xEF).contains(&pes.stream_id) {
                        video_pid.get_or_insert(info.pid);
                        frame_start = Some(info.pid) == video_pid;
                        if let Some(pts) = pes.pts.filter(|_| frame_start) {
                            video_pts.push(pts);
                        }
                    }
                }
            }
            packets.push(FixturePacket {
                pid: info.pid,
                has_payload: info.payload.is_some(),
                timestamps,
                pcr: info.pcr_base.map(|_| 6),
                frame_start,
            });
        }
        if video_pts.len() < 2 {
            return Err(SynthError::BadFixture("needs video frames with timestamps"));
        }
        let base_pts = *video_pts.iter().min().expect("checked above");
        let frame = video_pts
            .windows(2)
            .map(|w| w[1].abs_diff(w[0]))
            .filter(|&d| d > 0)
            .min()
            .unwrap_or(3600);
        let frames_per_loop = video_pts.len() as u64;
        let loop_ticks = frames_per_loop * frame;
        let natural = packets.len() as u64 * PACKET as u64 * 8 * 90_000 / loop_ticks;
        let nulls_per_loop = match bitrate {
            None => 0,
            Some(asked) if asked < natural => {
                return Err(SynthError::BitrateTooLow {
                    asked,
                    min: natural,
                })
            }
            Some(asked) if asked > MAX_BITRATE => {
                return Err(SynthError::BitrateTooHigh { asked });
            }
            Some(asked) => (asked * loop_ticks)
                .div_ceil(90_000 * PACKET as u64 * 8)
                .saturating_sub(packets.len() as u64),
        };
        Ok(Self {
            fixture: fixture.to_vec(),
            packets,
            base_pts,
            frame,
            frames_per_loop,
            nulls_per_loop,
            start_pts: start_pts % PTS_MODULO,
            loop_index: 0,
            cursor: 0,
            frame_in_loop: 0,
            cc: HashMap::new(),
        })
    }

    /// Media duration of one loop of the fixture (one GOP), 90 kHz ticks.
    pub fn loop_duration(&self) -> u64 {
        self.frames_per_loop * self.frame
    }

    /// Frame duration, 90 kHz ticks.
    pub fn frame_duration(&self) -> u64 {
        self.frame
    }

    /// Frames between keyframes.
    pub fn gop_frames(&self) -> u64 {
        self.frames_per_loop
    }

    /// Output bitrate in bit/s (null padding included).
    pub fn bitrate(&self) -> u64 {
        (self.packets.len() as u64 + self.nulls_per_loop) * PACKET as u64 * 8 * 90_000
            / self.loop_duration()
    }

    /// The next frame's packets (the packets before the first frame belong to the first chunk).
    pub fn next_chunk(&mut self) -> Chunk {
        let offset = self.loop_index * self.loop_duration() + self.frame_in_loop * self.frame;
        let mut bytes = Vec::with_capacity(8 * PACKET);
        let total = self.packets.len() as u64;
        let mut has_frame = false;
        loop {
            let i = self.cursor;
            has_frame |= self.packets[i].frame_start;
            self.emit_fixture_packet(i, &mut bytes);
            // Spread the loop's null packets evenly after the fixture's packets.
            let nulls = (i as u64 + 1) * self.nulls_per_loop / total
                - i as u64 * self.nulls_per_loop / total;
            for _ in 0..nulls {
                self.emit_null(&mut bytes);
            }
            self.cursor += 1;
            if self.cursor == self.packets.len() {
                self.cursor = 0;
                self.loop_index += 1;
                self.frame_in_loop = 0;
                break;
            }
            if has_frame && self.packets[self.cursor].frame_start {
                self.frame_in_loop += 1;
                break;
            }
        }
        Chunk { offset, bytes }
    }

    /// Everything up to media time `until` (90 kHz ticks since the first frame), unpaced: the
    /// bytes a paced reader of the same feed would have produced by then.
    pub fn take(&mut self, until: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let chunk = self.next_chunk();
            if chunk.offset >= until {
                return out;
            }
            out.extend(chunk.bytes);
        }
    }

    fn next_cc(&mut self, pid: u16, has_payload: bool) -> u8 {
        let cc = self.cc.entry(pid).or_insert(15);
        if has_payload {
            *cc = (*cc + 1) & 0x0F;
        }
        *cc
    }

    fn emit_fixture_packet(&mut self, i: usize, out: &mut Vec<u8>) {
        let meta = self.packets[i].clone();
        let mut p = [0u8; PACKET];
        p.copy_from_slice(&self.fixture[i * PACKET..(i + 1) * PACKET]);
        let shift = (self.start_pts + self.loop_index * self.loop_duration() + PTS_MODULO
            - self.base_pts)
            % PTS_MODULO;
        for &at in &meta.timestamps {
            let old = read_timestamp(&p[at..at + 5]);
            write_timestamp(&mut p[at..at + 5], (old + shift) % PTS_MODULO);
        }
        if let Some(at) = meta.pcr {
            let b = &p[at..at + 6];
            let base = (u64::from(b[0]) << 25)
                | (u64::from(b[1]) << 17)
                | (u64::from(b[2]) << 9)
                | (u64::from(b[3]) << 1)
                | (u64::from(b[4]) >> 7);
            let new = (base + shift) % PTS_MODULO;
            p[at] = (new >> 25) as u8;
            p[at + 1] = (new >> 17) as u8;
            p[at + 2] = (new >> 9) as u8;
            p[at + 3] = (new >> 1) as u8;
            p[at + 4] = (p[at + 4] & 0x7F) | (((new & 1) as u8) << 7);
        }
        let cc = self.next_cc(meta.pid, meta.has_payload);
        p[3] = (p[3] & 0xF0) | cc;
        out.extend_from_slice(&p);
    }

    fn emit_null(&mut self, out: &mut Vec<u8>) {
        let cc = self.next_cc(NULL_PID, true);
        out.extend_from_slice(&[SYNC, 0x1F, 0xFF, 0x10 | cc]);
        out.extend(std::iter::repeat_n(0xFF, PACKET - 4));
    }
}

fn read_timestamp(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1) & 0x07) << 30
        | u64::from(b[1]) << 22
        | (u64::from(b[2]) >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4]) >> 1
}

/// Rewrites a 5-byte PTS/DTS field in place, keeping its 4-bit prefix and marker bits.
fn write_timestamp(b: &mut [u8], ts: u64) {
    b[0] = (b[0] & 0xF1) | ((((ts >> 30) & 0x07) as u8) << 1);
    b[1] = (ts >> 22) as u8;
    b[2] = (((ts >> 15) & 0x7F) as u8) << 1 | (b[2] & 1);
    b[3] = (ts >> 7) as u8;
    b[4] = ((ts & 0x7F) as u8) << 1 | (b[4] & 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cutter::{CutterConfig, Output, TsCutter};

    #[test]
    fn the_fixture_loads_as_one_second_gop() {
        let s = Synth::new(None, 0).unwrap();
        assert_eq!(s.frame_duration(), 3600);
        assert_eq!(s.gop_frames(), 25);
        assert_eq!(s.loop_duration(), 90_000);
        assert!((100_000..200_000).contains(&s.bitrate()), "{}", s.bitrate());
    }

    #[test]
    fn bitrate_is_met_with_null_packets_and_refused_below_the_fixture() {
        let mut s = Synth::new(Some(1_000_000), 0).unwrap();
        let bytes: usize = (0..250).map(|_| s.next_chunk().bytes.len()).sum(); // 10 s
        let bits_per_second = bytes as f64 * 8.0 / 10.0;
        assert!(
            (bits_per_second - 1e6).abs() < 1e6 * 0.002,
            "{bits_per_second}"
        );
        assert!(matches!(
            Synth::new(Some(MAX_BITRATE + 1), 0),
            Err(SynthError::BitrateTooHigh { asked }) if asked == MAX_BITRATE + 1
        ));
        assert!(Synth::new(Some(MAX_BITRATE), 0).is_ok());
        assert!(matches!(
            Synth::new(Some(50_000), 0),
            Err(SynthError::BitrateTooLow { asked: 50_000, .. })
        ));
    }

    #[test]
    fn timestamps_and_continuity_counters_keep_growing_across_loops() {
        let start = PTS_MODULO - 90_000; // wraps during the second loop
        let mut s = Synth::new(Some(400_000), start).unwrap();
        let mut feed = Vec::new();
        let mut offsets = Vec::new();
        for _ in 0..100 {
            let c = s.next_chunk();
            offsets.push(c.offset);
            feed.extend(c.bytes);
        }
        assert_eq!(offsets, (0..100).map(|i| i * 3600).collect::<Vec<_>>());
        // Continuity counters: every payload packet of a PID is one more than the previous one.
        let mut last: HashMap<u16, u8> = HashMap::new();
        let mut video_pts = Vec::new();
        let mut timeline = crate::timeline::Timeline::default();
        for p in feed.chunks(PACKET) {
            let info = ts::packet_info(p).unwrap();
            if info.payload.is_some() {
                let cc = p[3] & 0x0F;
                if let Some(prev) = last.insert(info.pid, cc) {
                    assert_eq!(cc, (prev + 1) & 0x0F, "pid {:#x}", info.pid);
                }
            }
            if let Some(pes) = info
                .payload
                .filter(|_| info.unit_start)
                .and_then(ts::pes_start)
            {
                if (0xE0..=0xEF).contains(&pes.stream_id) {
                    let placed = timeline.place(pes.pts.unwrap());
                    assert!(!placed.discontinuity);
                    video_pts.push(placed.time);
                }
            }
        }
        assert_eq!(
            video_pts,
            (0..100).map(|i| start + i * 3600).collect::<Vec<_>>()
        );
        // And the cutter finds a keyframe every second.
        let mut cutter = TsCutter::new(CutterConfig {
            target: 90_000,
            first_number: 0,
            first_discontinuity: false,
        });
        let mut outs = cutter.push(&feed);
        outs.extend(cutter.finish());
        let durations: Vec<u64> = outs
            .iter()
            .filter_map(|o| {
                if let Output::End(m) = o {
                    Some(m.duration)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(durations, vec![90_000; 4]);
        assert_eq!(cutter.stats().bytes_skipped, 0);
    }

    #[test]
    fn timestamp_fields_round_trip() {
        let mut b = crate::testts::pts_bytes(0x3, 0x1_2345_6789);
        assert_eq!(read_timestamp(&b), 0x1_2345_6789);
        write_timestamp(&mut b, 42);
        assert_eq!(read_timestamp(&b), 42);
        assert_eq!(b[0] >> 4, 0x3);
        assert_eq!(b[0] & 1, 1);
    }
}
