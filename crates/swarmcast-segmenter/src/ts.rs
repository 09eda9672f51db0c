//! The parts of MPEG-TS (ISO/IEC 13818-1) the cutter reads, on top of `mpeg2ts-reader`'s packet,
//! PES and PSI views: which PIDs carry what (PAT, PMT), timestamps, random-access and
//! discontinuity flags, and keyframe detection inside H.264 / HEVC payloads.
//!
//! Every function here takes untrusted bytes and returns `None` rather than panicking; the
//! `mpeg2ts-reader` calls are guarded against the few inputs on which they assert.

use mpeg2ts_reader::packet::Packet;
use mpeg2ts_reader::pes::{PesContents, PesHeader, PtsDts};
use mpeg2ts_reader::psi::pat::PatSection;
use mpeg2ts_reader::psi::pmt::PmtSection;

/// Bytes in a TS packet.
pub const PACKET: usize = 188;
/// The sync byte every packet starts with.
pub const SYNC: u8 = 0x47;
/// PID of the program association table.
pub const PAT_PID: u16 = 0x0000;
/// PID of the DVB service description table (ffmpeg writes one).
pub const SDT_PID: u16 = 0x0011;
/// PID of null (padding) packets.
pub const NULL_PID: u16 = 0x1FFF;
/// PTS and DTS are 33-bit counters of a 90 kHz clock.
pub const PTS_MODULO: u64 = 1 << 33;

/// What the cutter needs to know about one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketInfo<'a> {
    /// Packet identifier.
    pub pid: u16,
    /// Payload unit start indicator: a PES packet or PSI section starts here.
    pub unit_start: bool,
    /// Adaptation field's random access indicator.
    pub random_access: bool,
    /// Adaptation field's discontinuity indicator.
    pub discontinuity: bool,
    /// Program clock reference base (90 kHz), if the packet carries one.
    pub pcr_base: Option<u64>,
    /// The payload, if any.
    pub payload: Option<&'a [u8]>,
}

/// Reads a packet's header fields. `buf` must be one whole packet starting with the sync byte;
/// anything else yields `None`.
pub fn packet_info(buf: &[u8]) -> Option<PacketInfo<'_>> {
    if buf.len() != PACKET || buf[0] != SYNC {
        return None;
    }
    let packet = Packet::new(buf);
    let (mut random_access, mut discontinuity, mut pcr_base) = (false, false, None);
    if let Some(af) = packet.adaptation_field() {
        random_access = af.random_access_indicator();
        discontinuity = af.discontinuity_indicator();
        pcr_base = af.pcr().ok().map(|pcr| pcr.base());
    }
    Some(PacketInfo {
        pid: u16::from(packet.pid()),
        unit_start: packet.payload_unit_start_indicator(),
        random_access,
        discontinuity,
        pcr_base,
        payload: packet.payload(),
    })
}

/// The start of a PES packet: stream id, timestamps and the elementary-stream bytes that follow
/// the header in this TS packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PesStart<'a> {
    /// PES stream id (0xE0-0xEF video, 0xC0-0xDF audio, 0xBD private).
    pub stream_id: u8,
    /// Presentation time stamp (33 bits).
    pub pts: Option<u64>,
    /// Decoding time stamp (33 bits).
    pub dts: Option<u64>,
    /// Elementary-stream bytes after the header, in this packet.
    pub es: &'a [u8],
}

/// Parses the PES header at the start of a unit-start payload.
pub fn pes_start(payload: &[u8]) -> Option<PesStart<'_>> {
    // PesHeader::from_bytes checks the start code and length; PesParsedContents needs at least the
    // three fixed bytes of the optional header plus its declared length, which it checks itself.
    if payload.len() < 9 || payload[..3] != [0, 0, 1] {
        return None;
    }
    let header = PesHeader::from_bytes(payload)?;
    let stream_id = payload[3];
    match header.contents() {
        PesContents::Parsed(Some(parsed)) => {
            let (pts, dts) = match parsed.pts_dts() {
                Ok(PtsDts::PtsOnly(Ok(pts))) => (Some(pts.value()), None),
                Ok(PtsDts::Both {
                    pts: Ok(pts),
                    dts: Ok(dts),
                }) => (Some(pts.value()), Some(dts.value())),
                _ => (None, None),
            };
            Some(PesStart {
                stream_id,
                pts,
                dts,
                es: parsed.payload(),
            })
        }
        PesContents::Parsed(None) => None,
        PesContents::Payload(es) => Some(PesStart {
            stream_id,
            pts: None,
            dts: None,
            es,
        }),
    }
}

/// Extracts the section a PSI packet starts (pointer field, section length, CRC-32 checked).
/// Sections longer than one packet are not reassembled: PAT and PMT of a single-program feed fit.
pub fn psi_section(payload: &[u8]) -> Option<&[u8]> {
    let pointer = *payload.first()? as usize;
    let section = payload.get(1 + pointer..)?;
    if section.len() < 3 || section[0] == 0xFF {
        return None;
    }
    let length = (usize::from(section[1] & 0x0F) << 8) | usize::from(section[2]);
    let whole = section.get(..3 + length)?;
    if length < 9 || mpeg2ts_reader::mpegts_crc::sum32(whole) != 0 {
        return None;
    }
    Some(whole)
}

/// Table id of a PAT section.
pub const TABLE_PAT: u8 = 0x00;
/// Table id of a PMT section.
pub const TABLE_PMT: u8 = 0x02;

/// The PMT PIDs a PAT section lists (network PID excluded).
pub fn pat_programs(section: &[u8]) -> Vec<u16> {
    if section.first() != Some(&TABLE_PAT) || section.len() < 12 {
        return Vec::new();
    }
    // 3-byte common header, 5-byte table syntax header, programs, 4-byte CRC.
    let body = &section[8..section.len() - 4];
    PatSection::new(body)
        .programs()
        .filter_map(|p| match p {
            mpeg2ts_reader::psi::pat::ProgramDescriptor::Program { pid, .. } => {
                Some(u16::from(pid))
            }
            mpeg2ts_reader::psi::pat::ProgramDescriptor::Network { .. } => None,
        })
        .collect()
}

/// The elementary streams a PMT section lists: `(stream_type, pid)`.
pub fn pmt_streams(section: &[u8]) -> Vec<(u8, u16)> {
    if section.first() != Some(&TABLE_PMT) || section.len() < 16 {
        return Vec::new();
    }
    let body = &section[8..section.len() - 4];
    match PmtSection::from_bytes(body) {
        Ok(pmt) => pmt
            .streams()
            .map(|s| (u8::from(s.stream_type()), u16::from(s.elementary_pid())))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Video codecs whose keyframes the cutter can recognise inside the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// H.264 / AVC (stream type 0x1B).
    H264,
    /// H.265 / HEVC (stream type 0x24).
    Hevc,
    /// Other video (MPEG-1/2 and others): only the random access indicator marks keyframes.
    OtherVideo,
    /// Audio: every PES start is a possible cut.
    Audio,
}

/// Classifies a PMT stream type; `None` for streams the cutter ignores (data, subtitles).
pub fn classify(stream_type: u8) -> Option<Codec> {
    match stream_type {
        0x1B => Some(Codec::H264),
        0x24 => Some(Codec::Hevc),
        0x01 | 0x02 | 0x10 | 0x42 | 0xD1 | 0xEA => Some(Codec::OtherVideo),
        0x03 | 0x04 | 0x0F | 0x11 | 0x81 | 0x87 => Some(Codec::Audio),
        _ => None,
    }
}

/// Looks through elementary-stream bytes for the first slice NAL unit: `Some(true)` if it is a
/// keyframe (H.264 IDR, HEVC IRAP), `Some(false)` if it is another slice, `None` if the bytes end
/// before any slice (the caller may look at more bytes of the same PES).
pub fn nal_keyframe(es: &[u8], codec: Codec) -> Option<bool> {
    let mut i = 0;
    while i + 3 < es.len() {
        if es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1 {
            let header = es[i + 3];
            match codec {
                Codec::H264 => match header & 0x1F {
                    5 => return Some(true),
                    1..=4 => return Some(false),
                    _ => {}
                },
                Codec::Hevc => match (header >> 1) & 0x3F {
                    16..=23 => return Some(true),
                    0..=9 => return Some(false),
                    _ => {}
                },
                Codec::OtherVideo | Codec::Audio => return None,
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nal_scan_finds_the_first_slice() {
        // AUD, SPS, PPS, IDR slice.
        let idr = [
            0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 0x88,
        ];
        assert_eq!(nal_keyframe(&idr, Codec::H264), Some(true));
        let p = [0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x41, 0x9A];
        assert_eq!(nal_keyframe(&p, Codec::H264), Some(false));
        assert_eq!(
            nal_keyframe(&[0, 0, 1, 0x09, 0xF0, 0, 0], Codec::H264),
            None
        );
        // HEVC: IDR_W_RADL is type 19: header byte (19 << 1) = 0x26.
        assert_eq!(
            nal_keyframe(&[0, 0, 1, 0x26, 0x01, 0xAF], Codec::Hevc),
            Some(true)
        );
        assert_eq!(
            nal_keyframe(&[0, 0, 1, 0x02, 0x01, 0xD0], Codec::Hevc),
            Some(false)
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 12345u32;
        for len in [0usize, 1, 5, 9, 20, 188] {
            for _ in 0..2000 {
                let mut buf: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        (x >> 16) as u8
                    })
                    .collect();
                if len == PACKET {
                    buf[0] = SYNC;
                }
                let _ = packet_info(&buf);
                let _ = pes_start(&buf);
                let _ = psi_section(&buf);
                let _ = pat_programs(&buf);
                let _ = pmt_streams(&buf);
                let _ = nal_keyframe(&buf, Codec::H264);
            }
        }
    }
}
