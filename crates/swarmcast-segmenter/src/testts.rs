//! Building MPEG-TS in tests: PAT, PMT, video and audio PES with chosen timestamps, keyframe
//! signalling and discontinuities, packetised with correct continuity counters and CRCs.

use std::collections::HashMap;

use crate::ts::{PACKET, PAT_PID, SYNC};

pub(crate) const PMT_PID: u16 = 0x1000;
pub(crate) const VIDEO_PID: u16 = 0x100;
pub(crate) const AUDIO_PID: u16 = 0x101;

/// The kind of video frame to write.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Frame {
    /// An IDR frame (AUD, SPS, PPS, IDR slice); `rai` sets the random access indicator.
    Idr { rai: bool },
    /// An IDR frame whose slice comes after a 300-byte SEI (so past the PES's first packet), and
    /// no random access indicator.
    IdrAfterSei,
    /// A non-IDR slice.
    P,
}

pub(crate) struct TsBuilder {
    out: Vec<u8>,
    cc: HashMap<u16, u8>,
    discontinuity_next: bool,
}

pub(crate) fn pts_bytes(marker: u8, pts: u64) -> [u8; 5] {
    [
        (marker << 4) | (((pts >> 30) & 0x07) as u8) << 1 | 1,
        (pts >> 22) as u8,
        (((pts >> 15) & 0x7F) as u8) << 1 | 1,
        (pts >> 7) as u8,
        ((pts & 0x7F) as u8) << 1 | 1,
    ]
}

fn with_crc(mut section: Vec<u8>) -> Vec<u8> {
    let crc = mpeg2ts_reader::mpegts_crc::sum32(&section);
    section.extend_from_slice(&crc.to_be_bytes());
    section
}

impl TsBuilder {
    pub(crate) fn new() -> Self {
        Self {
            out: Vec::new(),
            cc: HashMap::new(),
            discontinuity_next: false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.out.len()
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.out
    }

    /// The next video PES's first packet carries the discontinuity indicator.
    pub(crate) fn discontinuity_next(&mut self) {
        self.discontinuity_next = true;
    }

    pub(crate) fn pat(&mut self) {
        let section = with_crc(vec![
            0x00,
            0xB0,
            13,
            0,
            1,
            0xC1,
            0,
            0,
            0,
            1,
            0xE0 | (PMT_PID >> 8) as u8,
            PMT_PID as u8,
        ]);
        self.psi(PAT_PID, &section);
    }

    pub(crate) fn pmt(&mut self, streams: &[(u8, u16)]) {
        let pcr = streams.first().map_or(0x1FFF, |s| s.1);
        let len = 9 + 5 * streams.len() + 4;
        let mut s = vec![
            0x02,
            0xB0 | (len >> 8) as u8,
            len as u8,
            0,
            1,
            0xC1,
            0,
            0,
            0xE0 | (pcr >> 8) as u8,
            pcr as u8,
            0xF0,
            0,
        ];
        for &(ty, pid) in streams {
            s.extend_from_slice(&[ty, 0xE0 | (pid >> 8) as u8, pid as u8, 0xF0, 0]);
        }
        self.psi(PMT_PID, &with_crc(s));
    }

    fn psi(&mut self, pid: u16, section: &[u8]) {
        let mut payload = vec![0u8];
        payload.extend_from_slice(section);
        self.emit(pid, &payload, 0);
    }

    pub(crate) fn video(&mut self, pts: u64, frame: Frame, size: usize) {
        let mut es = vec![0, 0, 0, 1, 0x09, 0xF0];
        let mut af_flags = 0u8;
        match frame {
            Frame::Idr { rai } => {
                es.extend_from_slice(&[
                    0, 0, 0, 1, 0x67, 0x4D, 0x40, 0x1E, 0, 0, 0, 1, 0x68, 0xEE, 0x3C, 0x80,
                ]);
                es.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88]);
                if rai {
                    af_flags |= 0x40;
                }
            }
            Frame::IdrAfterSei => {
                es.extend_from_slice(&[0, 0, 0, 1, 0x06]);
                es.extend(std::iter::repeat_n(0x55, 300));
                es.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88]);
            }
            Frame::P => es.extend_from_slice(&[0, 0, 0, 1, 0x41, 0x9A]),
        }
        es.resize(es.len().max(size), 0xAB);
        if std::mem::take(&mut self.discontinuity_next) {
            af_flags |= 0x80;
        }
        let pes = pes(0xE0, pts, &es, false);
        self.emit(VIDEO_PID, &pes, af_flags);
    }

    pub(crate) fn audio(&mut self, pts: u64, size: usize) {
        let mut es = vec![0xFF, 0xF1, 0x50, 0x80];
        es.resize(size, 0xCD);
        let pes = pes(0xC0, pts, &es, true);
        self.emit(AUDIO_PID, &pes, 0);
    }

    /// Packetises `payload` on `pid`; `first_flags` are adaptation-field flags for the first packet.
    fn emit(&mut self, pid: u16, mut payload: &[u8], first_flags: u8) {
        let mut flags = first_flags;
        let mut first = true;
        while !payload.is_empty() {
            let want_af = flags != 0;
            let header_af = if want_af { 2 } else { 0 };
            let take = payload.len().min(184 - header_af);
            let af_total = 184 - take; // adaptation field bytes, length byte included
            let mut packet = Vec::with_capacity(PACKET);
            let cc = self.cc.entry(pid).or_insert(15);
            *cc = (*cc + 1) & 0x0F;
            let afc = if af_total > 0 { 0x30 } else { 0x10 };
            packet.extend_from_slice(&[
                SYNC,
                (u8::from(first) << 6) | (pid >> 8) as u8,
                pid as u8,
                afc | *cc,
            ]);
            if af_total > 0 {
                packet.push((af_total - 1) as u8);
                if af_total > 1 {
                    packet.push(flags);
                    packet.extend(std::iter::repeat_n(0xFF, af_total - 2));
                }
            }
            packet.extend_from_slice(&payload[..take]);
            debug_assert_eq!(packet.len(), PACKET);
            self.out.extend_from_slice(&packet);
            payload = &payload[take..];
            flags = 0;
            first = false;
        }
    }
}

fn pes(stream_id: u8, pts: u64, es: &[u8], bounded: bool) -> Vec<u8> {
    let header_len = 3 + 5;
    let length = if bounded {
        (header_len + es.len()) as u16
    } else {
        0
    };
    let mut p = vec![
        0,
        0,
        1,
        stream_id,
        (length >> 8) as u8,
        length as u8,
        0x80,
        0x80,
        5,
    ];
    p.extend_from_slice(&pts_bytes(0x2, pts));
    p.extend_from_slice(es);
    p
}
