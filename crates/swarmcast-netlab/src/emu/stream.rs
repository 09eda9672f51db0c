//! Per-connection state behind [`super::classify`]: which bytes of a TCP direction are new
//! ([`SeqTracker`]), and which of the new bytes are payload: BitTorrent piece data
//! ([`BtStream`]) or an HTTP answer's body ([`HttpAnswer`]).

/// Most holes remembered per direction; past that the oldest is forgotten (its bytes, should
/// they come, count as retransmitted).
const MAX_HOLES: usize = 256;

/// Which bytes of one TCP direction were already seen: everything below `next` but the holes.
#[derive(Clone, Debug)]
pub(crate) struct SeqTracker {
    next_seq: u32,
    next: u64,
    holes: Vec<(u64, u64)>,
}

/// What [`SeqTracker::add`] found in a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NewBytes {
    /// Bytes seen for the first time.
    pub(crate) count: u32,
    /// Where the segment's first byte is in the stream (bytes from its start; 0 for bytes from
    /// before it).
    pub(crate) at: u64,
}

impl SeqTracker {
    /// A direction whose next byte is `seq`.
    pub(crate) fn new(seq: u32) -> Self {
        Self {
            next_seq: seq,
            next: 0,
            holes: Vec::new(),
        }
    }

    fn abs(&self, seq: u32) -> i64 {
        self.next as i64 + i64::from(seq.wrapping_sub(self.next_seq) as i32)
    }

    /// A segment carrying bytes `[seq, seq + len)`.
    pub(crate) fn add(&mut self, seq: u32, len: u32) -> NewBytes {
        let s = self.abs(seq).max(0) as u64;
        let e = (self.abs(seq) + i64::from(len)).max(0) as u64;
        let mut count = 0u64;
        // Holes it fills.
        let mut i = 0;
        while i < self.holes.len() {
            let (a, b) = self.holes[i];
            let (x, y) = (a.max(s), b.min(e));
            if x < y {
                count += y - x;
                self.holes.remove(i);
                if a < x {
                    self.holes.insert(i, (a, x));
                    i += 1;
                }
                if y < b {
                    self.holes.insert(i, (y, b));
                    i += 1;
                }
            } else {
                i += 1;
            }
        }
        if e > self.next {
            if s > self.next {
                self.holes.push((self.next, s));
                if self.holes.len() > MAX_HOLES {
                    self.holes.remove(0);
                }
            }
            count += e - s.max(self.next);
            self.next_seq = seq.wrapping_add(len);
            self.next = e;
        }
        NewBytes {
            count: count as u32,
            at: s,
        }
    }
}

/// Most bytes of one direction held back by [`Reorder`] before it gives up.
const MAX_WAITING: usize = 256 << 10;

/// Puts one direction's bytes back in order for a parser. The kernel can hand the emulator a
/// sender's segments out of order (two CPUs forwarding its packets): a segment past a gap waits,
/// copied, until the gap is filled, and its bytes then reach the parser with the segment that
/// filled it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reorder {
    /// Bytes of the stream handed to the parser.
    fed: u64,
    /// Segments past a gap, by where they start.
    waiting: std::collections::BTreeMap<u64, Vec<u8>>,
    waiting_bytes: usize,
}

/// More than [`MAX_WAITING`] bytes waited behind a gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TooMuchWaiting;

impl Reorder {
    /// A segment whose first byte is at `at` in the stream: hands `feed` every run of bytes that
    /// now extends the stream in order (none if it is past a gap, or old).
    pub(crate) fn push(
        &mut self,
        at: u64,
        data: &[u8],
        mut feed: impl FnMut(&[u8]),
    ) -> Result<(), TooMuchWaiting> {
        let end = at + data.len() as u64;
        if end <= self.fed {
            return Ok(());
        }
        if at > self.fed {
            let slot = self.waiting.entry(at).or_default();
            if slot.len() < data.len() {
                self.waiting_bytes += data.len() - slot.len();
                *slot = data.to_vec();
            }
            return if self.waiting_bytes > MAX_WAITING {
                Err(TooMuchWaiting)
            } else {
                Ok(())
            };
        }
        feed(&data[(self.fed - at) as usize..]);
        self.fed = end;
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() > self.fed {
                break;
            }
            let (start, bytes) = entry.remove_entry();
            self.waiting_bytes -= bytes.len();
            let end = start + bytes.len() as u64;
            if end > self.fed {
                feed(&bytes[(self.fed - start) as usize..]);
                self.fed = end;
            }
        }
        Ok(())
    }
}

/// Finds piece data in one direction of a BitTorrent connection, fed its bytes in order: the
/// 68-byte handshake, then length-prefixed messages; the block of a `piece` message (id 7, after
/// its 8 bytes of index and offset) is payload, everything else is control.
#[derive(Clone, Debug)]
pub(crate) struct BtStream {
    handshake_left: u32,
    header: [u8; 13],
    header_have: usize,
    body_left: u32,
    in_piece: bool,
    lost: bool,
}

/// Longest message believed (librqbit refuses longer ones too).
const MAX_MESSAGE: u32 = 1 << 20;

impl Default for BtStream {
    fn default() -> Self {
        Self {
            handshake_left: 68,
            header: [0; 13],
            header_have: 0,
            body_left: 0,
            in_piece: false,
            lost: false,
        }
    }
}

impl BtStream {
    /// Whether the stream could not be followed (not BitTorrent, or a gap).
    pub(crate) fn lost(&self) -> bool {
        self.lost
    }

    /// Gives up following the stream.
    pub(crate) fn lose(&mut self) {
        self.lost = true;
    }

    /// Reads header bytes up to `target`; true once it has them.
    fn header_upto(&mut self, target: usize, bytes: &mut &[u8]) -> bool {
        let take = target.saturating_sub(self.header_have).min(bytes.len());
        self.header[self.header_have..self.header_have + take].copy_from_slice(&bytes[..take]);
        self.header_have += take;
        *bytes = &bytes[take..];
        self.header_have >= target
    }

    /// The next bytes of the stream; returns how many are piece data.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> u32 {
        let mut payload = 0;
        while !bytes.is_empty() && !self.lost {
            if self.handshake_left > 0 {
                if self.handshake_left == 68 && bytes[0] != 19 {
                    self.lost = true;
                    break;
                }
                let take = (self.handshake_left as usize).min(bytes.len());
                self.handshake_left -= take as u32;
                bytes = &bytes[take..];
                continue;
            }
            if self.body_left > 0 {
                let take = (self.body_left as usize).min(bytes.len());
                if self.in_piece {
                    payload += take as u32;
                }
                self.body_left -= take as u32;
                bytes = &bytes[take..];
                continue;
            }
            // A message header: length, id, and for a piece its index and offset.
            if !self.header_upto(4, &mut bytes) {
                continue;
            }
            let len = u32::from_be_bytes(self.header[..4].try_into().expect("4 bytes"));
            if len == 0 {
                // Keep-alive.
                self.header_have = 0;
                continue;
            }
            if len > MAX_MESSAGE {
                self.lost = true;
                break;
            }
            if !self.header_upto(5, &mut bytes) {
                continue;
            }
            let piece = self.header[4] == 7;
            if piece && len < 9 {
                self.lost = true;
                break;
            }
            let header = if piece { 13 } else { 5 };
            if !self.header_upto(header, &mut bytes) {
                continue;
            }
            self.in_piece = piece;
            self.body_left = len - (header as u32 - 4);
            self.header_have = 0;
        }
        payload
    }
}

/// One direction of an HTTP/1.1 connection from the server: each answer's header (up to the
/// blank line) is control, its body payload or control by the request's class. Answers end where
/// the next request starts (our clients do not pipeline), so no length needs parsing.
#[derive(Clone, Debug, Default)]
pub(crate) struct HttpAnswer {
    /// Still in the header of the current answer.
    in_header: bool,
    /// The last bytes of the header seen, to find `\r\n\r\n` across segments.
    tail: [u8; 3],
    lost: bool,
}

impl HttpAnswer {
    /// A new request was sent: the next bytes start its answer's header.
    pub(crate) fn request(&mut self) {
        self.in_header = true;
        self.tail = [0; 3];
        self.lost = false;
    }

    /// Gives up following the stream until the next request.
    pub(crate) fn lose(&mut self) {
        self.lost = true;
    }

    /// The next bytes of the answer; returns how many are body.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> u32 {
        if self.lost {
            return 0;
        }
        if !self.in_header {
            return bytes.len() as u32;
        }
        let mut window = self.tail.to_vec();
        window.extend_from_slice(bytes);
        match window.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(p) => {
                self.in_header = false;
                // Bytes of `bytes` after the blank line.
                let end_in_window = p + 4;
                (window.len() - end_in_window) as u32
            }
            None => {
                let n = window.len();
                self.tail.copy_from_slice(&window[n - 3..]);
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_bytes_in_order_with_holes_and_retransmissions() {
        let mut t = SeqTracker::new(1000);
        assert_eq!(t.add(1000, 100), NewBytes { count: 100, at: 0 });
        // The same again: nothing new.
        assert_eq!(t.add(1000, 100).count, 0);
        // Half old, half new.
        assert_eq!(t.add(1050, 100), NewBytes { count: 50, at: 50 });
        // A gap: 1150..1200 missing.
        assert_eq!(
            t.add(1200, 100),
            NewBytes {
                count: 100,
                at: 200
            }
        );
        // The hole filled later is new too.
        assert_eq!(t.add(1150, 50), NewBytes { count: 50, at: 150 });
        assert_eq!(t.add(1100, 200).count, 0);
        // Across the wrap.
        let mut t = SeqTracker::new(u32::MAX - 9);
        assert_eq!(t.add(u32::MAX - 9, 10).count, 10);
        assert_eq!(t.add(0, 20), NewBytes { count: 20, at: 10 });
    }

    #[test]
    fn reordered_segments_reach_the_parser_in_order_once() {
        let stream: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        // Segments of 1000 bytes, delivered 0, 2, 1, 1 (again), 4, 3, with an overlapping
        // retransmission of 500..2500 in the middle.
        let seg = |k: usize| (k as u64 * 1000, &stream[k * 1000..(k + 1) * 1000]);
        let mut r = Reorder::default();
        let mut out = Vec::new();
        for (at, data) in [seg(0), seg(2), seg(1), seg(1)] {
            r.push(at, data, |b| out.extend_from_slice(b)).unwrap();
        }
        r.push(500, &stream[500..2500], |b| out.extend_from_slice(b))
            .unwrap();
        for (at, data) in [seg(4), seg(3)] {
            r.push(at, data, |b| out.extend_from_slice(b)).unwrap();
        }
        assert_eq!(out, stream);
        assert_eq!(r.waiting_bytes, 0);
        // A gap never filled: past MAX_WAITING it gives up.
        let mut r = Reorder::default();
        let big = vec![0u8; 1448];
        let mut result = Ok(());
        for k in 1..=(MAX_WAITING / 1448 + 1) as u64 {
            result = r.push(k * 1448, &big, |_| panic!("nothing is in order"));
        }
        assert_eq!(result, Err(TooMuchWaiting));
    }

    fn message(id: u8, body: &[u8]) -> Vec<u8> {
        let mut m = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        m.push(id);
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn piece_blocks_are_payload_wherever_the_segments_cut_them() {
        let mut stream = vec![19u8];
        stream.extend_from_slice(b"BitTorrent protocol");
        stream.extend_from_slice(&[0; 48]);
        stream.extend(message(5, &[0xff; 3])); // bitfield
        stream.extend([0, 0, 0, 0]); // keep-alive
        let mut piece = vec![0, 0, 0, 4, 0, 0, 0x40, 0];
        piece.extend_from_slice(&[0xab; 16384]);
        stream.extend(message(7, &piece));
        stream.extend(message(4, &[0, 0, 0, 9])); // have
        stream.extend(message(7, &piece));
        for cut in [1, 2, 5, 7, 13, 100, 1448, 100_000] {
            let mut bt = BtStream::default();
            let payload: u32 = stream.chunks(cut).map(|c| bt.feed(c)).sum();
            assert_eq!(payload, 2 * 16384, "cut {cut}");
            assert!(!bt.lost());
        }
        // Not BitTorrent: nothing is payload.
        let mut bt = BtStream::default();
        assert_eq!(bt.feed(&[0x5a; 5000]), 0);
        assert!(bt.lost());
    }

    #[test]
    fn an_answers_body_starts_after_the_blank_line() {
        let mut h = HttpAnswer::default();
        h.request();
        assert_eq!(h.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r"), 0);
        assert_eq!(h.feed(b"\n\r\nhel"), 3);
        assert_eq!(h.feed(b"lo"), 2);
        h.request();
        assert_eq!(h.feed(b"HTTP/1.1 304 Not Modified\r\n\r\n"), 0);
        h.request();
        assert_eq!(h.feed(b"HTTP/1.1 200 OK\r\n\r\nabc"), 3);
    }
}
