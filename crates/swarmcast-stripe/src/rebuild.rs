//! The viewer's side: verified symbols in, segments out, in order.
//!
//! raptorq's decoder asserts on what it is given (a packet of another block, a payload of the
//! wrong length) and would panic. So nothing reaches it that was not checked here first: the
//! substream's header is signed ([`crate::Deframer`] verified it), the symbol's id is in range
//! and belongs to that substream, its payload is T bytes and hashes to what the header lists.
//! After decoding, the segment's SHA-256 is checked against the header's too.
//!
//! The caller decides when a segment is too late ([`Rebuilder::abandon_next`]): it plays on a
//! clock, this type has none. A segment given up is reported as [`Lost`], with how many symbols
//! arrived and how many were needed.
//!
//! Symbols lost are counted per segment: of the N symbols the publisher sent for it, those that
//! had not arrived by the time it was played or given up, or within [`ACCOUNT_BEHIND`] segments
//! after (a symbol on a slow substream still arrives after the segment decoded from the others;
//! it is late, not lost). A segment of which no header arrived is lost, but its symbols are not
//! counted: how many there were is unknown.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use raptorq::{EncodingPacket, ObjectTransmissionInformation, PayloadId, SourceBlockDecoder};
use sha2::{Digest, Sha256};

use crate::code::{symbol_hash, ALIGNMENT};
use crate::frame::{HeaderFields, StripeHeader, Symbol};

/// How many segments past the next one to play a rebuilder keeps at most.
pub const MAX_AHEAD: u64 = 64;
/// How many segments behind the next one to play a played or given-up segment's symbols are
/// still counted as arrived, not lost.
pub const ACCOUNT_BEHIND: u64 = 8;

/// A segment rebuilt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rebuilt {
    /// The segment.
    pub seq: u64,
    /// Its start in stream time, µs.
    pub media_start_us: u64,
    /// Its duration, µs.
    pub duration_us: u32,
    /// Its bytes.
    pub data: Vec<u8>,
    /// K.
    pub source_symbols: u32,
    /// Verified symbols received when it decoded.
    pub symbols_used: u32,
    /// Time spent in the decoder for it (all attempts).
    pub decode_time: Duration,
}

/// A segment given up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost {
    /// The segment.
    pub seq: u64,
    /// Verified symbols received.
    pub symbols_received: u32,
    /// K (none if no header of it arrived).
    pub source_symbols: Option<u32>,
    /// Substreams whose header arrived.
    pub headers: u8,
    /// The segment's length, if a header of it arrived.
    pub bytes: Option<u32>,
}

/// What became of an accepted symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// Kept; the block needs more.
    Stored,
    /// The block decoded with it.
    Decoded,
    /// The block had decoded already (the symbol is overhead, not an error).
    Redundant,
}

/// Why a symbol was refused. None of these reaches the decoder.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    /// No header of its segment (the reader joined mid-segment).
    #[error("segment {seq}: no header yet")]
    UnknownSegment {
        /// The segment.
        seq: u64,
    },
    /// Its substream's header has not arrived.
    #[error("segment {seq}, symbol {esi}: no header for its substream {stripe}")]
    NoHeader {
        /// The segment.
        seq: u64,
        /// The symbol.
        esi: u32,
        /// Its substream.
        stripe: u8,
    },
    /// Id beyond N.
    #[error("segment {seq}, symbol {esi}: beyond the block's {total} symbols")]
    OutOfRange {
        /// The segment.
        seq: u64,
        /// The symbol.
        esi: u32,
        /// N.
        total: u32,
    },
    /// Payload not T bytes.
    #[error("segment {seq}, symbol {esi}: {found} bytes, expected {expected}")]
    WrongLength {
        /// The segment.
        seq: u64,
        /// The symbol.
        esi: u32,
        /// T.
        expected: usize,
        /// Its length.
        found: usize,
    },
    /// Hash differs from the signed one.
    #[error(
        "segment {seq}, symbol {esi}: hash differs from the signed header's (forged or corrupt)"
    )]
    Forged {
        /// The segment.
        seq: u64,
        /// The symbol.
        esi: u32,
    },
    /// Already received.
    #[error("segment {seq}, symbol {esi}: duplicate")]
    Duplicate {
        /// The segment.
        seq: u64,
        /// The symbol.
        esi: u32,
    },
    /// Its segment was played or given up.
    #[error("segment {seq}: already played or given up")]
    Late {
        /// The segment.
        seq: u64,
    },
}

/// Why a header was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// It disagrees with another substream's header of the same segment.
    #[error("segment {seq}: substream {stripe}'s header disagrees with another substream's")]
    Conflict {
        /// The segment.
        seq: u64,
        /// The substream.
        stripe: u8,
    },
    /// Its segment was played or given up.
    #[error("segment {seq}: already played or given up")]
    Late {
        /// The segment.
        seq: u64,
    },
    /// Too far ahead of the segment to play next.
    #[error("segment {seq}: more than {MAX_AHEAD} segments ahead of {next}")]
    TooFarAhead {
        /// The segment.
        seq: u64,
        /// The next to play.
        next: u64,
    },
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RebuildStats {
    /// Symbols checked and kept (before the block decoded).
    pub symbols_used: u64,
    /// Symbols that arrived after their block decoded.
    pub symbols_redundant: u64,
    /// Symbols of a segment already played or given up (overhead, not an error).
    pub symbols_late: u64,
    /// Symbols received twice (a resume after a relay switch repeats a segment's start).
    pub symbols_duplicate: u64,
    /// Symbols refused (any other [`SymbolError`]).
    pub symbols_refused: u64,
    /// Of which: hash mismatches.
    pub symbols_forged: u64,
    /// Segments rebuilt.
    pub blocks_decoded: u64,
    /// Segments given up.
    pub blocks_lost: u64,
    /// Decoder runs that failed for want of symbols (each retried with the next symbol).
    pub failed_attempts: u64,
    /// Time in the decoder.
    pub decode_time: Duration,
    /// Symbols the publisher sent for the segments played or given up (their N, summed).
    pub symbols_expected: u64,
    /// Of which never arrived (see the module's documentation).
    pub symbols_lost: u64,
}

/// A segment played or given up whose late symbols are still counted.
struct Behind {
    have: Vec<bool>,
    arrived: u32,
}

impl Behind {
    fn add_to(&self, stats: &mut RebuildStats) {
        stats.symbols_expected += self.have.len() as u64;
        stats.symbols_lost += (self.have.len() as u64).saturating_sub(u64::from(self.arrived));
    }
}

struct Block {
    fields: HeaderFields,
    headers: Vec<Option<StripeHeader>>,
    decoder: SourceBlockDecoder,
    have: Vec<bool>,
    /// Symbols given to the decoder.
    received: u32,
    /// Distinct symbol ids that arrived, including after it decoded.
    arrived: u32,
    decoded: Option<Vec<u8>>,
    corrupt: bool,
    decode_time: Duration,
}

impl Block {
    fn new(header: StripeHeader) -> Self {
        let f = header.fields().clone();
        let padded = u64::from(f.source_symbols) * u64::from(f.symbol_size);
        // Validated when the header was decoded: T a multiple of the alignment, K in range.
        let oti = ObjectTransmissionInformation::new(padded, f.symbol_size, 1, 1, ALIGNMENT);
        let mut headers = vec![None; usize::from(f.substreams)];
        headers[usize::from(f.stripe)] = Some(header);
        Self {
            decoder: SourceBlockDecoder::new(0, &oti, padded),
            have: vec![false; f.total_symbols as usize],
            headers,
            fields: f,
            received: 0,
            arrived: 0,
            decoded: None,
            corrupt: false,
            decode_time: Duration::ZERO,
        }
    }

    /// Whether another substream's header of the same segment says the same of the segment.
    fn agrees(&self, other: &HeaderFields) -> bool {
        let f = &self.fields;
        f.substreams == other.substreams
            && f.media_start_us == other.media_start_us
            && f.duration_us == other.duration_us
            && f.transfer_length == other.transfer_length
            && f.symbol_size == other.symbol_size
            && f.source_symbols == other.source_symbols
            && f.total_symbols == other.total_symbols
            && f.digest == other.digest
    }
}

/// Rebuilds segments from the substreams' frames.
#[derive(Default)]
pub struct Rebuilder {
    blocks: BTreeMap<u64, Block>,
    next: Option<u64>,
    stats: RebuildStats,
    behind: BTreeMap<u64, Behind>,
}

impl Rebuilder {
    /// An empty rebuilder: the first header it sees sets where playing starts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counters so far. Segments played or given up less than [`ACCOUNT_BEHIND`] segments ago
    /// are counted with the symbols they have now.
    pub fn stats(&self) -> RebuildStats {
        let mut stats = self.stats;
        for b in self.behind.values() {
            b.add_to(&mut stats);
        }
        stats
    }

    /// The segment to play next (none before the first header).
    pub fn next_seq(&self) -> Option<u64> {
        self.next.or_else(|| self.blocks.keys().next().copied())
    }

    /// Segments held (received in part, or rebuilt and not yet taken).
    pub fn held(&self) -> usize {
        self.blocks.len()
    }

    /// Whether a segment after the next one is rebuilt: the next one holds playing up.
    pub fn later_ready(&self) -> bool {
        let Some(next) = self.next_seq() else {
            return false;
        };
        self.blocks
            .range(next + 1..)
            .any(|(_, b)| b.decoded.is_some())
    }

    /// Takes a verified header.
    pub fn add_header(&mut self, header: StripeHeader) -> Result<(), HeaderError> {
        let seq = header.fields().seq;
        let stripe = header.fields().stripe;
        if let Some(next) = self.next {
            if seq < next {
                return Err(HeaderError::Late { seq });
            }
            if seq > next + MAX_AHEAD {
                return Err(HeaderError::TooFarAhead { seq, next });
            }
        }
        match self.blocks.get_mut(&seq) {
            None => {
                self.blocks.insert(seq, Block::new(header));
            }
            Some(block) => {
                if !block.agrees(header.fields()) {
                    return Err(HeaderError::Conflict { seq, stripe });
                }
                block.headers[usize::from(stripe)].get_or_insert(header);
            }
        }
        Ok(())
    }

    /// Checks a symbol against its header and, if it passes, gives it to the decoder.
    pub fn add_symbol(&mut self, symbol: Symbol) -> Result<Added, SymbolError> {
        let result = self.check_and_add(symbol);
        match &result {
            Ok(Added::Redundant) => self.stats.symbols_redundant += 1,
            Ok(_) => self.stats.symbols_used += 1,
            Err(SymbolError::Late { .. }) => self.stats.symbols_late += 1,
            Err(SymbolError::Duplicate { .. }) => self.stats.symbols_duplicate += 1,
            Err(e) => {
                self.stats.symbols_refused += 1;
                if matches!(e, SymbolError::Forged { .. }) {
                    self.stats.symbols_forged += 1;
                }
            }
        }
        result
    }

    fn check_and_add(&mut self, symbol: Symbol) -> Result<Added, SymbolError> {
        let Symbol { seq, esi, payload } = symbol;
        if self.next.is_some_and(|next| seq < next) {
            if let Some(b) = self.behind.get_mut(&seq) {
                if let Some(have) = b.have.get_mut(esi as usize) {
                    if !std::mem::replace(have, true) {
                        b.arrived += 1;
                    }
                }
            }
            return Err(SymbolError::Late { seq });
        }
        let block = self
            .blocks
            .get_mut(&seq)
            .ok_or(SymbolError::UnknownSegment { seq })?;
        let f = &block.fields;
        if esi >= f.total_symbols {
            return Err(SymbolError::OutOfRange {
                seq,
                esi,
                total: f.total_symbols,
            });
        }
        if block.decoded.is_some() || block.corrupt {
            // Not checked against its hash (it goes nowhere): counted as arrived by its id.
            if std::mem::replace(&mut block.have[esi as usize], true) {
                return Err(SymbolError::Duplicate { seq, esi });
            }
            block.arrived += 1;
            return Ok(Added::Redundant);
        }
        let stripe = (esi % u32::from(f.substreams)) as u8;
        let header = block.headers[usize::from(stripe)]
            .as_ref()
            .ok_or(SymbolError::NoHeader { seq, esi, stripe })?;
        if payload.len() != usize::from(f.symbol_size) {
            return Err(SymbolError::WrongLength {
                seq,
                esi,
                expected: usize::from(f.symbol_size),
                found: payload.len(),
            });
        }
        if header.hash_of(esi) != Some(&symbol_hash(&payload)) {
            return Err(SymbolError::Forged { seq, esi });
        }
        if std::mem::replace(&mut block.have[esi as usize], true) {
            return Err(SymbolError::Duplicate { seq, esi });
        }
        block.received += 1;
        block.arrived += 1;
        let packet = EncodingPacket::new(PayloadId::new(0, esi), payload);
        if block.received < block.fields.source_symbols {
            // Fewer than K: raptorq only stores it.
            let stored = block.decoder.decode([packet]);
            debug_assert!(stored.is_none());
            return Ok(Added::Stored);
        }
        let started = Instant::now();
        let out = block.decoder.decode([packet]);
        let spent = started.elapsed();
        block.decode_time += spent;
        self.stats.decode_time += spent;
        match out {
            None => {
                self.stats.failed_attempts += 1;
                Ok(Added::Stored)
            }
            Some(mut data) => {
                data.truncate(block.fields.transfer_length as usize);
                if <[u8; 32]>::from(Sha256::digest(&data)) == block.fields.digest {
                    block.decoded = Some(data);
                } else {
                    // Every symbol matched its signed hash, so this would be a decoder bug or a
                    // publisher's: the segment is lost, not played wrong.
                    block.corrupt = true;
                }
                Ok(Added::Decoded)
            }
        }
    }

    /// The next segment, if it is rebuilt.
    pub fn pop_ready(&mut self) -> Option<Rebuilt> {
        let seq = self.next_seq()?;
        let block = self.blocks.get_mut(&seq)?;
        let data = block.decoded.take()?;
        let block = self.blocks.remove(&seq).expect("present");
        self.stats.blocks_decoded += 1;
        let rebuilt = Rebuilt {
            seq,
            media_start_us: block.fields.media_start_us,
            duration_us: block.fields.duration_us,
            data,
            source_symbols: block.fields.source_symbols,
            symbols_used: block.received,
            decode_time: block.decode_time,
        };
        self.advance(seq, Some(block));
        Some(rebuilt)
    }

    /// Gives up on the next segment (its deadline passed), unless it is rebuilt: then it is
    /// left for [`Rebuilder::pop_ready`] and `None` is returned.
    pub fn abandon_next(&mut self) -> Option<Lost> {
        let seq = self.next_seq()?;
        if self.blocks.get(&seq).is_some_and(|b| b.decoded.is_some()) {
            return None;
        }
        let block = self.blocks.remove(&seq);
        self.stats.blocks_lost += 1;
        let lost = Lost {
            seq,
            symbols_received: block.as_ref().map_or(0, |b| b.received),
            source_symbols: block.as_ref().map(|b| b.fields.source_symbols),
            headers: block.as_ref().map_or(0, |b| {
                b.headers.iter().filter(|h| h.is_some()).count() as u8
            }),
            bytes: block.as_ref().map(|b| b.fields.transfer_length),
        };
        self.advance(seq, block);
        Some(lost)
    }

    /// `played` was played or given up: later symbols of it are late, and counted as arrived
    /// for [`ACCOUNT_BEHIND`] segments.
    fn advance(&mut self, played: u64, block: Option<Block>) {
        self.next = Some(played + 1);
        self.blocks.retain(|&s, _| s > played);
        if let Some(b) = block {
            self.behind.insert(
                played,
                Behind {
                    have: b.have,
                    arrived: b.arrived,
                },
            );
        }
        while let Some(entry) = self.behind.first_entry() {
            if *entry.key() + ACCOUNT_BEHIND > played {
                break;
            }
            entry.remove().add_to(&mut self.stats);
        }
    }
}

#[cfg(test)]
mod tests;
