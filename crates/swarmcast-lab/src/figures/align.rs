//! A continuous node's output aligned with the published stream (pure): which published bytes it
//! played, where, and what it played that was never published.
//!
//! The published stream is the concatenation of the publisher's segment files, whole 188-byte TS
//! packets. A node's output is that stream with gaps (a relay switch, a resume past the back
//! buffer, a departure), and, at a splice where a source stopped mid-packet, possibly a partial
//! packet. [`align`] walks the output: while its bytes equal the published bytes at the current
//! position the run goes on; at the first difference it looks for the next output position where
//! a published packet found nowhere else in the stream starts (every published packet is indexed
//! by its bytes; padding packets, which repeat, cannot place anything), extends the new run
//! backwards from it as far as the bytes agree (over padding and any partial packet), and counts
//! the bytes in between as foreign (never published). A jump forward is a gap (bytes lost), a jump
//! back bytes played twice. Where a splice's first bytes equal the bytes the old run would have
//! continued with (a packet's sync byte and header), the old run first runs on over them; they go
//! to the new run when that makes the old run end on a packet boundary (where sources stop).
//! Otherwise (a source that stopped mid-packet, whose next bytes happen to be the new source's)
//! they stay with the old run, and the gap moves by those few bytes, its size unchanged.

use std::collections::HashMap;

/// TS packet size.
pub const PACKET: usize = 188;

/// A stretch of output equal to the published stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Run {
    /// Where it starts in the output.
    pub out: u64,
    /// Where it starts in the published stream.
    pub published: u64,
    /// Its length, bytes.
    pub len: u64,
}

/// A node's output against the published stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alignment {
    /// The output's size.
    pub output_bytes: u64,
    /// The published stream's size.
    pub published_bytes: u64,
    /// Stretches equal to the published stream, in output order.
    pub runs: Vec<Run>,
    /// Output bytes between runs that are no published packet: never published (must be 0).
    pub foreign_bytes: u64,
    /// Output bytes between runs that are whole published packets found at several places of
    /// the stream (null packets; a looped feed's packets), so that nothing places them: published
    /// bytes, not foreign, but not counted as played either.
    #[serde(default)]
    pub unplaced_bytes: u64,
}

impl Alignment {
    /// The published position of output byte `out`, if it is published (in a run).
    pub fn published_at(&self, out: u64) -> Option<u64> {
        let i = self.runs.partition_point(|r| r.out + r.len <= out);
        let r = self.runs.get(i)?;
        (r.out <= out).then(|| r.published + (out - r.out))
    }

    /// Published ranges `[start, end)` played by output bytes `[from, to)`, in output order.
    pub fn published_ranges(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        let i = self.runs.partition_point(|r| r.out + r.len <= from);
        self.runs[i..]
            .iter()
            .take_while(|r| r.out < to)
            .filter_map(|r| {
                let a = from.max(r.out);
                let b = to.min(r.out + r.len);
                (a < b).then(|| (r.published + (a - r.out), r.published + (b - r.out)))
            })
            .collect()
    }

    /// Distinct published bytes played within `[start, end)` (bytes played twice count once).
    pub fn covered(&self, start: u64, end: u64) -> u64 {
        let mut ranges: Vec<(u64, u64)> = self
            .runs
            .iter()
            .map(|r| (r.published.max(start), (r.published + r.len).min(end)))
            .filter(|(a, b)| a < b)
            .collect();
        ranges.sort_unstable();
        let (mut total, mut reach) = (0, 0);
        for (a, b) in ranges {
            let a = a.max(reach);
            if b > a {
                total += b - a;
            }
            reach = reach.max(b);
        }
        total
    }

    /// Bytes played more than once.
    pub fn duplicate_bytes(&self) -> u64 {
        let played: u64 = self.runs.iter().map(|r| r.len).sum();
        played - self.covered(0, u64::MAX)
    }

    /// The first and the last published byte played (end exclusive), if any.
    pub fn span(&self) -> Option<(u64, u64)> {
        let first = self.runs.first()?.published;
        let end = self.runs.iter().map(|r| r.published + r.len).max()?;
        Some((first, end))
    }

    /// Gaps: places where the output jumps forward in the published stream, with the bytes
    /// skipped.
    pub fn gaps(&self) -> Vec<(u64, u64)> {
        self.runs
            .windows(2)
            .filter_map(|w| {
                let end = w[0].published + w[0].len;
                (w[1].published > end).then(|| (end, w[1].published - end))
            })
            .collect()
    }
}

/// A cheap hash of a packet's bytes (FNV-1a over 8-byte words).
fn packet_key(p: &[u8]) -> u64 {
    p.chunks(8).fold(0xcbf2_9ce4_8422_2325, |h, c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        (h ^ u64::from_le_bytes(w)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Aligns `output` with `published` (see the module documentation).
pub fn align(published: &[u8], output: &[u8]) -> Alignment {
    let mut index: HashMap<u64, Vec<u32>> = HashMap::new();
    for (i, p) in published.chunks_exact(PACKET).enumerate() {
        index.entry(packet_key(p)).or_default().push(i as u32);
    }
    // The published packet whose bytes the output has at `o`, if exactly one has them (padding
    // packets repeat, and a looped feed may repeat others: only a unique packet places the
    // output; the bytes before it are placed by extending backwards from it).
    // The published packets (their indexes) equal to the output's window at `o`.
    let places = |o: usize| {
        let window = output.get(o..o + PACKET);
        window
            .and_then(|w| index.get(&packet_key(w)))
            .into_iter()
            .flatten()
            .filter(move |&&i| Some(&published[i as usize * PACKET..][..PACKET]) == window)
    };
    let find = |o: usize| -> Option<usize> {
        let mut matching = places(o);
        let only = *matching.next()?;
        matching.next().is_none().then_some(only as usize * PACKET)
    };
    // Whether the output has a published packet (at any place, unique or not) at `o`.
    let published_packet = |o: usize| places(o).next().is_some();
    // Output bytes `[from, to)` between runs: those inside a whole published packet (one that
    // may start before `from`, over the end of the last run) are unplaced, the rest foreign.
    let between = |a: &mut Alignment, from: usize, to: usize| {
        let mut unplaced = 0;
        let mut i = from.saturating_sub(PACKET - 1);
        let mut covered_to = from;
        while i < to {
            if published_packet(i) {
                let (s, e) = (i.max(covered_to), (i + PACKET).min(to));
                unplaced += e.saturating_sub(s);
                covered_to = covered_to.max(e);
                i += PACKET;
            } else {
                i += 1;
            }
        }
        a.unplaced_bytes += unplaced as u64;
        a.foreign_bytes += (to - from - unplaced) as u64;
    };
    let mut a = Alignment {
        output_bytes: output.len() as u64,
        published_bytes: published.len() as u64,
        ..Alignment::default()
    };
    let (mut o, mut p) = (0usize, 0usize);
    // The first run: wherever the output's first whole packet is.
    let mut matched = false;
    while o < output.len() {
        if matched {
            let len = output[o..]
                .iter()
                .zip(&published[p.min(published.len())..])
                .take_while(|(x, y)| x == y)
                .count();
            if len > 0 {
                push_run(&mut a.runs, o, p, len);
                o += len;
                p += len;
                continue;
            }
        }
        // Resynchronise: the next output position where a published packet starts.
        let start = o;
        let mut found = None;
        let mut at = o;
        while at + PACKET <= output.len() {
            if let Some(q) = find(at) {
                found = Some((at, q));
                break;
            }
            at += 1;
        }
        let Some((at, q)) = found else {
            between(&mut a, start, output.len());
            break;
        };
        // Extend backwards over a partial packet that came before it.
        let back = (1..=at - start)
            .take_while(|&j| q >= j && output[at - j] == published[q - j])
            .count();
        between(&mut a, start, at - back);
        o = at - back;
        p = q - back;
        if back == at - start {
            (o, p) = reclaim(&mut a.runs, output, published, o, p);
        }
        matched = true;
    }
    a
}

/// At a splice with nothing foreign between the runs, the last run may have run on over bytes
/// that are the new run's (equal at both places: a packet's sync byte and header). If the new
/// run, extended further back, agrees with the output down to a point where the last run ends on
/// a packet boundary (where a source stops), the bytes after that point are given to the new run.
/// The new run's start `(o, p)`, moved back if so.
fn reclaim(
    runs: &mut Vec<Run>,
    output: &[u8],
    published: &[u8],
    o: usize,
    p: usize,
) -> (usize, usize) {
    let Some(last) = runs.last().copied() else {
        return (o, p);
    };
    if last.out + last.len != o as u64 {
        return (o, p);
    }
    let most = (last.len as usize).min(p).min(PACKET);
    let mut best = None;
    for j in 1..=most {
        if output[o - j] != published[p - j] {
            break;
        }
        let old_end = last.published as usize + (o - j - last.out as usize);
        if old_end.is_multiple_of(PACKET) {
            best = Some(j);
        }
    }
    match best {
        Some(j) => {
            let l = runs.last_mut().expect("checked");
            l.len -= j as u64;
            if l.len == 0 {
                runs.pop();
            }
            (o - j, p - j)
        }
        None => (o, p),
    }
}

fn push_run(runs: &mut Vec<Run>, o: usize, p: usize, len: usize) {
    if let Some(last) = runs.last_mut() {
        if last.out + last.len == o as u64 && last.published + last.len == p as u64 {
            last.len += len as u64;
            return;
        }
    }
    runs.push(Run {
        out: o as u64,
        published: p as u64,
        len: len as u64,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A published stream of `n` distinct packets.
    fn stream(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let mut p = vec![0u8; PACKET];
                p[0] = 0x47;
                p[1..9].copy_from_slice(&(i as u64).to_le_bytes());
                p[9..]
                    .iter_mut()
                    .enumerate()
                    .for_each(|(j, b)| *b = (i * 7 + j) as u8);
                p
            })
            .collect()
    }

    #[test]
    fn an_identical_output_is_one_run() {
        let s = stream(50);
        let a = align(&s, &s);
        assert_eq!(
            a.runs,
            vec![Run {
                out: 0,
                published: 0,
                len: s.len() as u64
            }]
        );
        assert_eq!(a.foreign_bytes, 0);
        assert_eq!(a.covered(0, s.len() as u64), s.len() as u64);
        assert!(a.gaps().is_empty());
    }

    #[test]
    fn a_gap_is_found_and_counted_exactly() {
        let s = stream(100);
        // Packets 0..30, then from the middle of packet 40 (a source that resumed mid-packet)
        // to the end.
        let cut = 40 * PACKET + 77;
        let out: Vec<u8> = [&s[..30 * PACKET], &s[cut..]].concat();
        let a = align(&s, &out);
        assert_eq!(a.foreign_bytes, 0);
        assert_eq!(
            a.gaps(),
            vec![(30 * PACKET as u64, (cut - 30 * PACKET) as u64)]
        );
        assert_eq!(
            a.covered(0, s.len() as u64),
            (s.len() - (cut - 30 * PACKET)) as u64
        );
        assert_eq!(a.published_at(30 * PACKET as u64), Some(cut as u64));
    }

    #[test]
    fn a_partial_packet_then_a_jump_is_foreign_only_where_it_differs() {
        let s = stream(60);
        // Half of packet 10, then packet 20 on: the half packet is published bytes, kept.
        let out: Vec<u8> = [&s[..10 * PACKET + 94], &s[20 * PACKET..]].concat();
        let a = align(&s, &out);
        assert_eq!(a.foreign_bytes, 0);
        let played: u64 = a.runs.iter().map(|r| r.len).sum();
        assert_eq!(played, out.len() as u64);
        // Junk between two runs is foreign.
        let out: Vec<u8> = [&s[..10 * PACKET], &[1u8, 2, 3][..], &s[12 * PACKET..]].concat();
        let a = align(&s, &out);
        assert_eq!(a.foreign_bytes, 3);
        assert_eq!(a.covered(0, s.len() as u64), (s.len() - 2 * PACKET) as u64);
    }

    #[test]
    fn repeated_packets_between_runs_are_unplaced_not_foreign() {
        // A looped feed: packets 20..30 repeat packets 0..10 byte for byte.
        let mut s = stream(60);
        let (head, tail) = s.split_at_mut(20 * PACKET);
        tail[..10 * PACKET].copy_from_slice(&head[..10 * PACKET]);
        // Packets 40..45, a splice one byte into packet 45, three repeated packets (from
        // either loop), then packet 50 on.
        let out: Vec<u8> = [
            &s[40 * PACKET..45 * PACKET + 1],
            &s[3 * PACKET + 1..6 * PACKET],
            &s[50 * PACKET..],
        ]
        .concat();
        let a = align(&s, &out);
        assert_eq!(a.foreign_bytes, 0, "{a:?}");
        assert_eq!(a.unplaced_bytes, (3 * PACKET - 1) as u64, "{a:?}");
        // A packet never published among them is foreign.
        let junk = [0x47u8; PACKET];
        let out: Vec<u8> = [
            &s[40 * PACKET..45 * PACKET],
            &s[3 * PACKET..4 * PACKET],
            &junk[..],
            &s[50 * PACKET..],
        ]
        .concat();
        let a = align(&s, &out);
        // (The repeated packet's sync byte continues the first run, as published packet 45's.)
        assert_eq!(
            (a.unplaced_bytes, a.foreign_bytes),
            (PACKET as u64 - 1, PACKET as u64)
        );
    }

    #[test]
    fn a_flipped_byte_is_foreign_and_the_rest_realigns() {
        let s = stream(40);
        let mut out = s.clone();
        out[5 * PACKET + 50] ^= 0xff;
        let a = align(&s, &out);
        // The rest of the damaged packet cannot be told from junk: at most a packet is foreign.
        assert!(
            a.foreign_bytes >= 1 && a.foreign_bytes <= PACKET as u64,
            "{a:?}"
        );
        assert_eq!(
            a.runs.last().unwrap().published + a.runs.last().unwrap().len,
            s.len() as u64
        );
    }

    #[test]
    fn bytes_played_twice_are_duplicates_not_gaps() {
        let s = stream(30);
        let out: Vec<u8> = [&s[..20 * PACKET], &s[15 * PACKET..]].concat();
        let a = align(&s, &out);
        assert_eq!(a.duplicate_bytes(), 5 * PACKET as u64);
        assert_eq!(a.covered(0, s.len() as u64), s.len() as u64);
        assert_eq!(a.foreign_bytes, 0);
    }

    #[test]
    fn ranges_follow_the_runs() {
        let s = stream(20);
        let out: Vec<u8> = [&s[..5 * PACKET], &s[10 * PACKET..]].concat();
        let a = align(&s, &out);
        let r = a.published_ranges(4 * PACKET as u64, 6 * PACKET as u64);
        // Packet 10 starts with the sync byte packet 5 would have: the first run runs on over
        // it, then gives it back, as it ends on a packet boundary without it.
        let p = PACKET as u64;
        assert_eq!(r, vec![(4 * p, 5 * p), (10 * p, 11 * p)]);
        assert_eq!(a.gaps(), vec![(5 * p, 5 * p)]);
        assert_eq!(a.span(), Some((0, s.len() as u64)));
    }

    #[test]
    fn nothing_published_is_all_foreign() {
        let a = align(&stream(3), &[9u8; 500]);
        assert_eq!(a.foreign_bytes, 500);
        assert!(a.runs.is_empty());
        assert_eq!(a.span(), None);
    }
}
