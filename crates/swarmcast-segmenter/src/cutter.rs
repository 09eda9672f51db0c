//! Deciding where segments end: bytes in, data and cut decisions out, no I/O and no clock.
//!
//! [`TsCutter`] cuts MPEG-TS on packet boundaries at keyframes (docs/segmenting.md has the rule);
//! [`ClockCutter`] cuts any other byte stream by wall-clock time that the caller passes in. Both
//! emit [`Output`]s: the bytes of the current segment and, at each cut, the finished segment's
//! [`SegmentMeta`]. Concatenating every `Data` gives the input minus the garbage the framer skipped.

use crate::framer::Framer;
use crate::timeline::Timeline;
use crate::ts::{self, Codec, PacketInfo, PACKET, PAT_PID, SDT_PID};

/// A PSI run longer than this many packets is not held back any more.
const MAX_PSI_RUN: usize = 16;
/// Packets held back while looking for the first slice NAL unit of a PES before giving up.
const MAX_NAL_SEARCH: usize = 32;

/// What is known about a segment when it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentMeta {
    /// Segment number.
    pub number: u64,
    /// Media time of its start (unwrapped, 90 kHz ticks).
    pub media_start: u64,
    /// Media duration (90 kHz ticks).
    pub duration: u64,
    /// Size in bytes.
    pub size: u64,
    /// It starts a discontinuity (timestamp jump, flagged discontinuity, or the first segment after
    /// a restart when so configured).
    pub discontinuity: bool,
    /// The segment starts without a keyframe: no keyframe came within twice the target, so the
    /// cut was forced at a frame boundary.
    pub forced: bool,
}

/// A cutter's output, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Bytes that belong to the current segment.
    Data(Vec<u8>),
    /// The current segment ends here; the next bytes belong to the next one.
    End(SegmentMeta),
}

/// How to cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CutterConfig {
    /// Target segment duration, 90 kHz ticks.
    pub target: u64,
    /// Number of the first segment (continuing after a restart).
    pub first_number: u64,
    /// Mark the first segment as a discontinuity (a publisher restart).
    pub first_discontinuity: bool,
}

/// Counters of what the cutter met.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CutterStats {
    /// Whole packets read.
    pub packets: u64,
    /// Bytes dropped while resynchronising (and a trailing partial packet).
    pub bytes_skipped: u64,
    /// Times sync was lost.
    pub resyncs: u64,
    /// Cuts made without a keyframe.
    pub forced_cuts: u64,
    /// Timestamp discontinuities met (flagged or detected).
    pub discontinuities: u64,
}

/// The segment being built.
#[derive(Debug)]
struct Current {
    number: u64,
    size: u64,
    start: Option<u64>,
    discontinuity: bool,
    forced: bool,
}

impl Current {
    /// The first segment of a run.
    fn first(config: &CutterConfig) -> Self {
        Self {
            number: config.first_number,
            size: 0,
            start: None,
            discontinuity: config.first_discontinuity,
            forced: false,
        }
    }
}

#[derive(Debug)]
enum Hold {
    /// Nothing held back.
    None,
    /// A run of PSI packets that may precede a keyframe.
    PsiRun,
    /// A PES start of the primary stream whose keyframe status is still unknown.
    AwaitNal {
        pts: Option<u64>,
        es: Vec<u8>,
        packets: usize,
    },
}

/// Cuts MPEG-TS at keyframes; see the module documentation.
#[derive(Debug)]
pub struct TsCutter {
    target: u64,
    framer: Framer,
    pmt_pids: Vec<u16>,
    primary: Option<(u16, Codec)>,
    timeline: Timeline,
    current: Current,
    /// A discontinuity happened since the current segment started: cut at the next keyframe.
    cut_for_discontinuity: bool,
    held: Vec<u8>,
    hold: Hold,
    out: Vec<Output>,
    stats: CutterStats,
}

impl TsCutter {
    /// A cutter with nothing seen yet.
    pub fn new(config: CutterConfig) -> Self {
        Self {
            target: config.target.max(1),
            framer: Framer::new(),
            pmt_pids: Vec::new(),
            primary: None,
            timeline: Timeline::default(),
            current: Current::first(&config),
            cut_for_discontinuity: false,
            held: Vec::new(),
            hold: Hold::None,
            out: Vec::new(),
            stats: CutterStats::default(),
        }
    }

    /// What the cutter has met so far.
    pub fn stats(&self) -> CutterStats {
        CutterStats {
            bytes_skipped: self.framer.bytes_skipped(),
            resyncs: self.framer.resyncs(),
            ..self.stats.clone()
        }
    }

    /// The PID and kind of the stream cuts are aligned to, once the PMT has been read.
    pub fn primary(&self) -> Option<(u16, Codec)> {
        self.primary
    }

    /// Feeds input bytes; returns what is decided so far.
    pub fn push(&mut self, data: &[u8]) -> Vec<Output> {
        let mut framer = std::mem::take(&mut self.framer);
        framer.push(data, |p| self.packet(p));
        self.framer = framer;
        std::mem::take(&mut self.out)
    }

    /// The input ended: flushes everything and closes the last segment (if it has any bytes).
    pub fn finish(&mut self) -> Vec<Output> {
        self.cut_now()
    }

    /// Ends the current segment here, whatever the target: flushes the framer (a trailing partial
    /// packet is skipped) and anything held back, and closes the segment if it has any bytes. The
    /// cutter stays usable: used when each input file is one segment, so that the media timeline
    /// (and discontinuity detection) carries over from file to file.
    pub fn cut_now(&mut self) -> Vec<Output> {
        let mut framer = std::mem::take(&mut self.framer);
        framer.finish(|p| self.packet(p));
        self.framer = framer;
        self.release_held();
        if self.current.size > 0 {
            let end = self.timeline.end().unwrap_or(0);
            self.end_segment(end);
        }
        std::mem::take(&mut self.out)
    }

    fn packet(&mut self, packet: &[u8]) {
        self.stats.packets += 1;
        let Some(info) = ts::packet_info(packet) else {
            return self.commit(packet);
        };
        self.learn_tables(&info);
        if info.discontinuity
            && (info.pcr_base.is_some() || self.primary.is_some_and(|(pid, _)| pid == info.pid))
        {
            self.timeline.flag_discontinuity();
        }
        let is_psi =
            info.pid == PAT_PID || info.pid == SDT_PID || self.pmt_pids.contains(&info.pid);
        let primary_start = self
            .primary
            .filter(|&(pid, _)| pid == info.pid && info.unit_start);

        match std::mem::replace(&mut self.hold, Hold::None) {
            Hold::AwaitNal {
                pts,
                mut es,
                packets,
            } => {
                let Some((pid, codec)) = self.primary else {
                    self.release_held();
                    return self.packet_unheld(packet, &info, is_psi, primary_start);
                };
                if info.pid == pid && info.unit_start {
                    // A new frame began before a slice was found: the held one was no keyframe.
                    self.frame(false, pts);
                    self.release_held();
                    return self.packet_unheld(packet, &info, is_psi, primary_start);
                }
                self.held.extend_from_slice(packet);
                if info.pid == pid {
                    es.extend_from_slice(info.payload.unwrap_or_default());
                }
                match ts::nal_keyframe(&es, codec) {
                    Some(key) => {
                        self.frame(key, pts);
                        self.release_held();
                    }
                    None if packets + 1 >= MAX_NAL_SEARCH => {
                        self.frame(false, pts);
                        self.release_held();
                    }
                    None => {
                        self.hold = Hold::AwaitNal {
                            pts,
                            es,
                            packets: packets + 1,
                        }
                    }
                }
            }
            Hold::PsiRun if is_psi => {
                self.held.extend_from_slice(packet);
                if self.held.len() >= MAX_PSI_RUN * PACKET {
                    self.release_held();
                } else {
                    self.hold = Hold::PsiRun;
                }
            }
            Hold::PsiRun if primary_start.is_some() => self.primary_start(packet, &info),
            Hold::PsiRun => {
                self.release_held();
                self.packet_unheld(packet, &info, is_psi, primary_start);
            }
            Hold::None => self.packet_unheld(packet, &info, is_psi, primary_start),
        }
    }

    fn packet_unheld(
        &mut self,
        packet: &[u8],
        info: &PacketInfo<'_>,
        is_psi: bool,
        primary_start: Option<(u16, Codec)>,
    ) {
        if is_psi {
            self.held.extend_from_slice(packet);
            self.hold = Hold::PsiRun;
        } else if primary_start.is_some() {
            self.primary_start(packet, info);
        } else {
            self.commit(packet);
        }
    }

    /// A PES of the primary stream starts in `packet`; any held PSI run precedes it.
    fn primary_start(&mut self, packet: &[u8], info: &PacketInfo<'_>) {
        let Some((_, codec)) = self.primary else {
            return self.commit(packet);
        };
        let pes = info.payload.and_then(ts::pes_start);
        let pts = pes.and_then(|p| p.pts);
        self.held.extend_from_slice(packet);
        let key = if codec == Codec::Audio || info.random_access {
            Some(true)
        } else if codec == Codec::OtherVideo {
            Some(false)
        } else {
            pes.and_then(|p| ts::nal_keyframe(p.es, codec))
        };
        match key {
            Some(key) => {
                self.frame(key, pts);
                self.release_held();
            }
            None => {
                let es = pes.map(|p| p.es.to_vec()).unwrap_or_default();
                self.hold = Hold::AwaitNal {
                    pts,
                    es,
                    packets: 1,
                };
            }
        }
    }

    /// A frame of the primary stream starts at the first held byte: decide whether to cut there.
    fn frame(&mut self, key: bool, pts: Option<u64>) {
        let Some(pts) = pts else { return };
        let placed = self.timeline.place(pts);
        if placed.discontinuity {
            self.stats.discontinuities += 1;
            self.cut_for_discontinuity = true;
        }
        let Some(start) = self.current.start else {
            self.current.start = Some(placed.time);
            return;
        };
        if self.current.size == 0 {
            // Nothing committed yet: this frame opens the segment.
            self.current.start = Some(placed.time);
            self.current.discontinuity |= std::mem::take(&mut self.cut_for_discontinuity);
            return;
        }
        let elapsed = placed.time.saturating_sub(start);
        let half_frame = self.timeline.frame() / 2;
        if key && (self.cut_for_discontinuity || elapsed + half_frame >= self.target) {
            self.end_segment(placed.time);
        } else if !key && elapsed >= 2 * self.target {
            self.stats.forced_cuts += 1;
            self.end_segment(placed.time);
            self.current.forced = true;
        }
    }

    fn end_segment(&mut self, next_start: u64) {
        let start = self.current.start.unwrap_or(next_start);
        self.out.push(Output::End(SegmentMeta {
            number: self.current.number,
            media_start: start,
            duration: next_start.saturating_sub(start),
            size: self.current.size,
            discontinuity: self.current.discontinuity,
            forced: self.current.forced,
        }));
        self.current = Current {
            number: self.current.number + 1,
            size: 0,
            start: Some(next_start),
            discontinuity: std::mem::take(&mut self.cut_for_discontinuity),
            forced: false,
        };
    }

    fn release_held(&mut self) {
        self.hold = Hold::None;
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            self.commit(&held);
        }
    }

    fn commit(&mut self, bytes: &[u8]) {
        self.current.size += bytes.len() as u64;
        match self.out.last_mut() {
            Some(Output::Data(data)) => data.extend_from_slice(bytes),
            _ => self.out.push(Output::Data(bytes.to_vec())),
        }
    }

    fn learn_tables(&mut self, info: &PacketInfo<'_>) {
        let is_pat = info.pid == PAT_PID;
        if !(info.unit_start && (is_pat || self.pmt_pids.contains(&info.pid))) {
            return;
        }
        let Some(section) = info.payload.and_then(ts::psi_section) else {
            return;
        };
        if is_pat {
            let programs = ts::pat_programs(section);
            if !programs.is_empty() {
                self.pmt_pids = programs;
            }
            return;
        }
        // The first program's streams: its first video stream, or failing that its first audio.
        let streams: Vec<(u16, Codec)> = ts::pmt_streams(section)
            .into_iter()
            .filter_map(|(ty, pid)| ts::classify(ty).map(|c| (pid, c)))
            .collect();
        let primary = streams
            .iter()
            .find(|(_, c)| *c != Codec::Audio)
            .or_else(|| streams.first())
            .copied();
        if primary.is_some() && primary != self.primary {
            tracing::debug!(?primary, "primary stream");
            self.primary = primary;
        }
    }
}

/// Cuts a byte stream that is not MPEG-TS by wall-clock time: a segment ends at the first input
/// that arrives once the target has passed since it began. Times are passed in (ms, any epoch).
#[derive(Debug)]
pub struct ClockCutter {
    target_ms: u64,
    stream_start_ms: Option<u64>,
    segment_start_ms: u64,
    current: Current,
    out: Vec<Output>,
}

impl ClockCutter {
    /// A cutter with nothing seen yet.
    pub fn new(config: CutterConfig) -> Self {
        Self {
            target_ms: (config.target / 90).max(1),
            stream_start_ms: None,
            segment_start_ms: 0,
            current: Current::first(&config),
            out: Vec::new(),
        }
    }

    /// Feeds bytes that arrived at `now_ms`.
    pub fn push(&mut self, data: &[u8], now_ms: u64) -> Vec<Output> {
        if data.is_empty() {
            return Vec::new();
        }
        let stream_start = *self.stream_start_ms.get_or_insert(now_ms);
        if self.current.size == 0 {
            self.segment_start_ms = now_ms;
        } else if now_ms.saturating_sub(self.segment_start_ms) >= self.target_ms {
            self.end_segment(now_ms, stream_start);
            self.segment_start_ms = now_ms;
        }
        self.current.size += data.len() as u64;
        self.out.push(Output::Data(data.to_vec()));
        std::mem::take(&mut self.out)
    }

    /// The input ended at `now_ms`: closes the last segment.
    pub fn finish(&mut self, now_ms: u64) -> Vec<Output> {
        if self.current.size > 0 {
            let stream_start = self.stream_start_ms.unwrap_or(now_ms);
            self.end_segment(now_ms, stream_start);
        }
        std::mem::take(&mut self.out)
    }

    fn end_segment(&mut self, now_ms: u64, stream_start: u64) {
        let start = (self.segment_start_ms - stream_start) * 90;
        let end = (now_ms.max(self.segment_start_ms) - stream_start) * 90;
        self.out.push(Output::End(SegmentMeta {
            number: self.current.number,
            media_start: start,
            duration: end - start,
            size: self.current.size,
            discontinuity: std::mem::take(&mut self.current.discontinuity),
            forced: false,
        }));
        self.current.number += 1;
        self.current.size = 0;
    }
}

#[cfg(test)]
mod tests;
