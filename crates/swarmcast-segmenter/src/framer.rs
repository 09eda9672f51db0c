//! Turning a byte stream into whole 188-byte TS packets, resynchronising after garbage.
//!
//! A position is taken as a packet start when it holds the sync byte and so do the two positions
//! 188 and 376 bytes later (fewer at the very end of the input). Once in sync, each packet only
//! has to start with the sync byte and be followed by one that does; otherwise sync is lost and
//! the framer scans forward again. Bytes skipped this way (and a trailing partial packet) are counted, never passed on.

use crate::ts::{PACKET, SYNC};

/// Packets confirmed ahead of a candidate sync position before trusting it.
const CONFIRM: usize = 2;

/// Splits bytes into packets. See the module documentation.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    pos: usize,
    synced: bool,
    skipped: u64,
    resyncs: u64,
}

impl Framer {
    /// A framer that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes dropped so far because they were not part of a packet.
    pub fn bytes_skipped(&self) -> u64 {
        self.skipped
    }

    /// Times sync was lost after it had been found.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Adds bytes; calls `packet` for each whole packet now available, in order.
    pub fn push(&mut self, data: &[u8], mut packet: impl FnMut(&[u8])) {
        self.buf.extend_from_slice(data);
        self.drain(false, &mut packet);
        // Compact: keep memory proportional to what is pending, not to what was seen.
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// The input ended: passes on what can still be framed and counts the rest as skipped.
    pub fn finish(&mut self, mut packet: impl FnMut(&[u8])) {
        self.drain(true, &mut packet);
        self.skipped += (self.buf.len() - self.pos) as u64;
        self.buf.clear();
        self.pos = 0;
    }

    fn drain(&mut self, at_end: bool, packet: &mut impl FnMut(&[u8])) {
        loop {
            let rest = &self.buf[self.pos..];
            if rest.len() < PACKET {
                return;
            }
            if self.synced {
                // One packet of look-ahead: a torn packet that happens to start with the sync
                // byte is caught by the next packet's sync byte being out of place.
                let next = rest.get(PACKET);
                if next.is_none() && !at_end {
                    return;
                }
                if rest[0] == SYNC && next.is_none_or(|&b| b == SYNC) {
                    packet(&rest[..PACKET]);
                    self.pos += PACKET;
                    continue;
                }
                self.synced = false;
                self.resyncs += 1;
            }
            match find_sync(rest, at_end) {
                Some(offset) => {
                    self.skipped += offset as u64;
                    self.pos += offset;
                    self.synced = true;
                }
                None if at_end => return,
                None => {
                    // No confirmed sync yet: everything but the last few packets' worth can go;
                    // a candidate in the tail may still be confirmed by bytes to come.
                    let keep = PACKET * (CONFIRM + 1);
                    let drop = rest.len().saturating_sub(keep);
                    self.skipped += drop as u64;
                    self.pos += drop;
                    return;
                }
            }
        }
    }
}

/// The first offset in `buf` that starts a packet confirmed by the sync bytes after it. At the end
/// of the input, a candidate is confirmed by as many following packets as there are.
fn find_sync(buf: &[u8], at_end: bool) -> Option<usize> {
    (0..buf.len()).find(|&p| {
        if buf[p] != SYNC {
            return false;
        }
        for k in 1..=CONFIRM {
            match buf.get(p + k * PACKET) {
                Some(&b) if b == SYNC => {}
                Some(_) => return false,
                None => return at_end && p + PACKET <= buf.len(),
            }
        }
        true
    })
}

/// Whether `prefix` (the first bytes of an input) looks like MPEG-TS: a sync byte within the first
/// packet confirmed by the next two.
pub fn looks_like_ts(prefix: &[u8]) -> bool {
    (0..PACKET.min(prefix.len()))
        .any(|p| (0..=CONFIRM).all(|k| prefix.get(p + k * PACKET) == Some(&SYNC)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let mut p = vec![i as u8; PACKET];
                p[0] = SYNC;
                p
            })
            .collect()
    }

    fn frame(chunks: &[&[u8]]) -> (Vec<u8>, Framer) {
        let mut f = Framer::new();
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, |p| out.extend_from_slice(p));
        }
        f.finish(|p| out.extend_from_slice(p));
        (out, f)
    }

    #[test]
    fn clean_input_passes_through_in_any_chunking() {
        let input = packets(10);
        for split in [1, 7, 187, 188, 189, 1000] {
            let chunks: Vec<&[u8]> = input.chunks(split).collect();
            let (out, f) = frame(&chunks);
            assert_eq!(out, input, "split {split}");
            assert_eq!(f.bytes_skipped(), 0);
        }
    }

    #[test]
    fn garbage_before_and_between_is_skipped_and_counted() {
        let good = packets(6);
        let mut input = b"garbage\x47\x47 here".to_vec();
        let lead = input.len();
        input.extend_from_slice(&good[..3 * PACKET]);
        input.extend_from_slice(&[0x47, 1, 2, 3, 4, 5, 6]); // a lost sync: a torn packet
        input.extend_from_slice(&good[3 * PACKET..]);
        input.extend_from_slice(&[0x47, 9, 9]); // trailing partial packet
        for split in [1, 100, 4096] {
            let chunks: Vec<&[u8]> = input.chunks(split).collect();
            let (out, f) = frame(&chunks);
            assert_eq!(out, good, "split {split}");
            assert_eq!(f.bytes_skipped(), (lead + 7 + 3) as u64);
            assert_eq!(f.resyncs(), 1);
        }
    }

    #[test]
    fn detects_ts() {
        assert!(looks_like_ts(&packets(3)));
        assert!(looks_like_ts(&[b"xy".as_slice(), &packets(3)].concat()));
        assert!(!looks_like_ts(b"plain text, not a transport stream at all"));
        assert!(!looks_like_ts(&vec![0u8; 2000]));
    }
}
