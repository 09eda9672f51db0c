//! The publisher's side: a segment becomes one RaptorQ source block, dealt over n substreams.
//!
//! A segment of L bytes is cut into K = ⌈L/T⌉ source symbols of T bytes (the last one padded
//! with zeros). RaptorQ is systematic: encoding symbols 0..K are the source symbols themselves,
//! K.. are repair symbols. The encoder makes N encoding symbols and deals symbol `e` to substream
//! `e mod n`. Any n−1 substreams then hold N − ⌈N/n⌉ = ⌊N(n−1)/n⌋ symbols, so with
//! N = ⌈(K+h)·n/(n−1)⌉ they hold at least K+h.
//!
//! RaptorQ decodes K symbols with probability about 99%, K+1 about 99.99%, K+2 about 99.9999%
//! (RFC 6330, annex B); that is a probability over which symbols arrive, not over the data:
//! the decoding matrix depends only on K and on the symbols' ids. So the encoder checks, once per
//! block length K, that each of the n sets "every substream but one" decodes (with symbols of 8
//! bytes, which is cheap), and raises h from [`StripeParams::min_extra`] until they all do. The
//! guarantee "any n−1 substreams rebuild the segment" is then a fact checked for that K, not a
//! probability.

use std::collections::HashMap;

use raptorq::{
    EncodingPacket, ObjectTransmissionInformation, PayloadId, SourceBlockDecoder,
    SourceBlockEncoder,
};
use sha2::{Digest, Sha256};
use swarmcast_core::keys::StreamSecret;

use crate::frame::{StripeHeader, Symbol, SYMBOL_HASH_LEN};

/// RFC 6330's largest source block, in symbols (raptorq asserts it).
pub const MAX_SOURCE_SYMBOLS: u32 = 56_403;
/// The symbol alignment (RFC 6330's Al). Symbol sizes are multiples of it.
pub const ALIGNMENT: u8 = 8;
/// The most substreams a stream may have.
pub const MAX_SUBSTREAMS: u8 = 64;
/// The most extra symbols the decodability check may add before it gives up. With
/// RaptorQ's failure probability of about 1% per missing-symbol-free set at h = 0, falling a
/// hundredfold per extra symbol, 16 is never reached in practice; it bounds the loop.
pub const MAX_EXTRA: u32 = 16;

/// How a stream is striped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripeParams {
    /// n: the number of substreams (at least 2).
    pub substreams: u8,
    /// T: the symbol size in bytes, a multiple of [`ALIGNMENT`].
    pub symbol_size: u16,
    /// h: the extra symbols (beyond K) any n−1 substreams must hold, at least. The encoder may
    /// add more when its decodability check asks for them.
    pub min_extra: u32,
}

impl Default for StripeParams {
    /// n = 4 substreams of T = 1,280-byte symbols (fits a 1,500-byte MTU with IP, TCP and our
    /// framing), h = 0 (the check adds what a given K needs).
    fn default() -> Self {
        Self {
            substreams: 4,
            symbol_size: 1280,
            min_extra: 0,
        }
    }
}

impl StripeParams {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if !(2..=MAX_SUBSTREAMS).contains(&self.substreams) {
            return Err(EncodeError::Substreams(self.substreams));
        }
        if !valid_symbol_size(self.symbol_size) {
            return Err(EncodeError::SymbolSize(self.symbol_size));
        }
        if self.min_extra > MAX_EXTRA {
            return Err(EncodeError::Extra(self.min_extra));
        }
        Ok(())
    }
}

/// Whether T is a positive multiple of [`ALIGNMENT`] (raptorq asserts it).
pub fn valid_symbol_size(symbol_size: u16) -> bool {
    symbol_size != 0 && symbol_size.is_multiple_of(u16::from(ALIGNMENT))
}

/// The encoding symbols N for K source symbols, n substreams and h extra symbols:
/// ⌈(K+h)·n/(n−1)⌉, so that any n−1 substreams hold at least K+h symbols.
pub fn total_symbols(source_symbols: u32, substreams: u8, extra: u32) -> u32 {
    let n = u64::from(substreams);
    let need = u64::from(source_symbols) + u64::from(extra);
    // n ≥ 2 and K ≤ MAX_SOURCE_SYMBOLS keep this far inside u32.
    (need * n).div_ceil(n - 1) as u32
}

/// How many of the symbols `0..total` substream `stripe` carries: ⌈(N − s)/n⌉.
pub fn symbols_in_stripe(total: u32, substreams: u8, stripe: u8) -> u32 {
    total
        .saturating_sub(u32::from(stripe))
        .div_ceil(u32::from(substreams))
}

/// Whether every set "all substreams but one" of the symbols `0..total`, dealt `e mod n`,
/// decodes a block of `source_symbols` symbols. Decodes zeros with 8-byte symbols: the answer
/// depends only on K and the symbol ids.
pub fn drop_one_decodes(source_symbols: u32, total: u32, substreams: u8) -> bool {
    let t = u16::from(ALIGNMENT);
    let len = u64::from(source_symbols) * u64::from(t);
    let oti = ObjectTransmissionInformation::new(len, t, 1, 1, ALIGNMENT);
    (0..substreams).all(|dropped| {
        let mut decoder = SourceBlockDecoder::new(0, &oti, len);
        let packets = (0..total)
            .filter(|e| e % u32::from(substreams) != u32::from(dropped))
            .map(|e| EncodingPacket::new(PayloadId::new(0, e), vec![0; usize::from(t)]));
        decoder.decode(packets).is_some()
    })
}

/// What the encoder knows about a segment besides its bytes: its number and its timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentMeta {
    /// The segment's sequence number (the manifest's numbering).
    pub seq: u64,
    /// The segment's start in stream time, µs (from the segmenter's timeline).
    pub media_start_us: u64,
    /// The segment's duration, µs.
    pub duration_us: u32,
}

/// One segment, striped: per substream, its signed header and its symbols.
#[derive(Clone, Debug)]
pub struct StripedSegment {
    /// `headers[s]`: substream s's header.
    pub headers: Vec<StripeHeader>,
    /// `symbols[s]`: substream s's symbols, in increasing id.
    pub symbols: Vec<Vec<Symbol>>,
}

impl StripedSegment {
    /// Substream `stripe`'s bytes for this segment: its header frame, then its symbol frames.
    pub fn substream_bytes(&self, stripe: u8) -> Vec<u8> {
        let s = usize::from(stripe);
        let mut out = self.headers[s].to_frame();
        for symbol in &self.symbols[s] {
            out.extend_from_slice(&symbol.to_frame());
        }
        out
    }
}

/// Stripes segments. Remembers, per block length K, the N its decodability check settled on.
pub struct Encoder {
    params: StripeParams,
    secret: StreamSecret,
    totals: HashMap<u32, u32>,
}

impl Encoder {
    /// An encoder signing with the stream's secret.
    pub fn new(secret: StreamSecret, params: StripeParams) -> Result<Self, EncodeError> {
        params.validate()?;
        Ok(Self {
            params,
            secret,
            totals: HashMap::new(),
        })
    }

    /// The parameters.
    pub fn params(&self) -> StripeParams {
        self.params
    }

    /// N for a block of K source symbols: the smallest ⌈(K+h)·n/(n−1)⌉ with h ≥
    /// [`StripeParams::min_extra`] for which every n−1 substreams decode. Checked once per K.
    pub fn total_for(&mut self, source_symbols: u32) -> Result<u32, EncodeError> {
        if let Some(&n) = self.totals.get(&source_symbols) {
            return Ok(n);
        }
        let substreams = self.params.substreams;
        let total = (self.params.min_extra..=MAX_EXTRA)
            .map(|h| total_symbols(source_symbols, substreams, h))
            .find(|&total| drop_one_decodes(source_symbols, total, substreams))
            .ok_or(EncodeError::Undecodable(source_symbols))?;
        self.totals.insert(source_symbols, total);
        Ok(total)
    }

    /// Stripes one segment.
    pub fn encode(
        &mut self,
        meta: SegmentMeta,
        data: &[u8],
    ) -> Result<StripedSegment, EncodeError> {
        let t = usize::from(self.params.symbol_size);
        let k = data.len().div_ceil(t);
        if data.is_empty() {
            return Err(EncodeError::Empty(meta.seq));
        }
        if k > MAX_SOURCE_SYMBOLS as usize {
            return Err(EncodeError::TooLarge {
                seq: meta.seq,
                len: data.len() as u64,
                symbols: k as u64,
            });
        }
        let k = k as u32;
        let total = self.total_for(k)?;
        let mut padded = Vec::with_capacity(k as usize * t);
        padded.extend_from_slice(data);
        padded.resize(k as usize * t, 0);
        let oti = ObjectTransmissionInformation::new(
            padded.len() as u64,
            self.params.symbol_size,
            1,
            1,
            ALIGNMENT,
        );
        let block = SourceBlockEncoder::new(0, &oti, &padded);
        let mut packets = block.source_packets();
        packets.extend(block.repair_packets(0, total - k));

        let n = self.params.substreams;
        let mut symbols: Vec<Vec<Symbol>> = vec![Vec::new(); usize::from(n)];
        for packet in packets {
            let (id, payload) = packet.split();
            let esi = id.encoding_symbol_id();
            symbols[(esi % u32::from(n)) as usize].push(Symbol {
                seq: meta.seq,
                esi,
                payload,
            });
        }
        let digest: [u8; 32] = Sha256::digest(data).into();
        let headers = (0..n)
            .map(|stripe| {
                let hashes = symbols[usize::from(stripe)]
                    .iter()
                    .map(|s| symbol_hash(&s.payload))
                    .collect();
                StripeHeader::sign(
                    &self.secret,
                    crate::frame::HeaderFields {
                        stripe,
                        substreams: n,
                        seq: meta.seq,
                        media_start_us: meta.media_start_us,
                        duration_us: meta.duration_us,
                        transfer_length: data.len() as u32,
                        symbol_size: self.params.symbol_size,
                        source_symbols: k,
                        total_symbols: total,
                        digest,
                        hashes,
                    },
                )
            })
            .collect();
        Ok(StripedSegment { headers, symbols })
    }
}

/// A symbol's hash in a header: SHA-256 of its payload, truncated to [`SYMBOL_HASH_LEN`] bytes
/// (160 bits: a forger needs a second preimage, about 2^160 work).
pub fn symbol_hash(payload: &[u8]) -> [u8; SYMBOL_HASH_LEN] {
    let full = Sha256::digest(payload);
    let mut out = [0; SYMBOL_HASH_LEN];
    out.copy_from_slice(&full[..SYMBOL_HASH_LEN]);
    out
}

/// Why a segment could not be striped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// n out of range.
    #[error("--substreams {0}: expected 2 to {MAX_SUBSTREAMS}")]
    Substreams(u8),
    /// T not a positive multiple of the alignment.
    #[error("symbol size {0} bytes: expected a positive multiple of {ALIGNMENT}")]
    SymbolSize(u16),
    /// h out of range.
    #[error("{0} extra symbols: expected at most {MAX_EXTRA}")]
    Extra(u32),
    /// An empty segment.
    #[error("segment {0} is empty: nothing to stripe")]
    Empty(u64),
    /// More than one RaptorQ block.
    #[error(
        "segment {seq} is {len} bytes, {symbols} symbols: one RaptorQ block holds at most \
         {MAX_SOURCE_SYMBOLS} (use shorter segments or larger symbols)"
    )]
    TooLarge {
        /// The segment.
        seq: u64,
        /// Its length.
        len: u64,
        /// Its symbols.
        symbols: u64,
    },
    /// The decodability check failed up to [`MAX_EXTRA`] extra symbols.
    #[error(
        "a block of {0} symbols: no N up to {MAX_EXTRA} extra symbols lets every n-1 \
         substreams decode"
    )]
    Undecodable(u32),
}

#[cfg(test)]
pub(crate) mod tests;
