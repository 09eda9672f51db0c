//! A substream's bytes (docs/striped-fec.md, "Wire format").
//!
//! A substream is a sequence of frames: `"SCsf"`, a kind byte, the body's length (u32, big
//! endian), the body. Per segment, a substream carries one header frame, signed with the stream
//! key, then its symbol frames. The header lists the hash of every symbol the substream carries
//! for that segment, so each symbol is checked on arrival, before the decoder sees it.
//!
//! A reader that starts mid-stream, or whose input was cut mid-frame (a relay switch), hunts: it
//! looks for the magic, and accepts a position only when a header frame there is consistent and
//! its signature verifies. It skips symbols until then (it could not check them anyway), so it
//! resumes at the next segment's header.

use std::fmt;

use swarmcast_core::keys::{StreamKey, StreamSecret};

use crate::code::{symbols_in_stripe, valid_symbol_size, MAX_SOURCE_SYMBOLS, MAX_SUBSTREAMS};

/// Every frame starts with these bytes.
pub const MAGIC: [u8; 4] = *b"SCsf";
/// Magic, kind, body length.
pub const PREFIX_LEN: usize = 9;
/// A header frame's kind.
pub const KIND_HEADER: u8 = 1;
/// A symbol frame's kind.
pub const KIND_SYMBOL: u8 = 2;
/// A symbol hash's length in a header.
pub const SYMBOL_HASH_LEN: usize = 20;
/// The header format's version.
pub const VERSION: u8 = 1;
/// A header body's fixed part, before the hashes.
pub const HEADER_FIXED_LEN: usize = 76;
/// An ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// A symbol body's fixed part (sequence number and symbol id), before the payload.
pub const SYMBOL_FIXED_LEN: usize = 12;
/// The most symbols a block may have: RaptorQ's ids are 24-bit (RFC 6330, 3.2).
pub const MAX_TOTAL_SYMBOLS: u32 = (1 << 24) - 1;

/// Signatures over headers start with this, so that no other swarmcast signature (a
/// manifest's) can be passed off as a header's, nor the other way round.
const SIGNING_CONTEXT: &[u8] = b"swarmcast stripe header v1\0";

/// What a header says.
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderFields {
    /// The substream this header opens (0..n).
    pub stripe: u8,
    /// n.
    pub substreams: u8,
    /// The segment's sequence number.
    pub seq: u64,
    /// The segment's start in stream time, µs: the timing a player orders and paces by.
    pub media_start_us: u64,
    /// The segment's duration, µs.
    pub duration_us: u32,
    /// L: the segment's length in bytes.
    pub transfer_length: u32,
    /// T.
    pub symbol_size: u16,
    /// K = ⌈L/T⌉.
    pub source_symbols: u32,
    /// N: symbols 0..N are dealt over the substreams.
    pub total_symbols: u32,
    /// SHA-256 of the segment, checked after decoding (symbols are checked before).
    pub digest: [u8; 32],
    /// The hashes of this substream's symbols, in increasing id (ids `stripe`, `stripe + n`, ...).
    pub hashes: Vec<[u8; SYMBOL_HASH_LEN]>,
}

impl fmt::Debug for HeaderFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderFields")
            .field("stripe", &self.stripe)
            .field("substreams", &self.substreams)
            .field("seq", &self.seq)
            .field("media_start_us", &self.media_start_us)
            .field("duration_us", &self.duration_us)
            .field("transfer_length", &self.transfer_length)
            .field("symbol_size", &self.symbol_size)
            .field("source_symbols", &self.source_symbols)
            .field("total_symbols", &self.total_symbols)
            .field("hashes", &self.hashes.len())
            .finish_non_exhaustive()
    }
}

impl HeaderFields {
    fn body_len(&self) -> usize {
        HEADER_FIXED_LEN + self.hashes.len() * SYMBOL_HASH_LEN + SIGNATURE_LEN
    }

    fn encode_unsigned(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.body_len());
        b.push(VERSION);
        b.push(self.stripe);
        b.push(self.substreams);
        b.push(0);
        b.extend_from_slice(&self.seq.to_be_bytes());
        b.extend_from_slice(&self.media_start_us.to_be_bytes());
        b.extend_from_slice(&self.duration_us.to_be_bytes());
        b.extend_from_slice(&self.transfer_length.to_be_bytes());
        b.extend_from_slice(&self.symbol_size.to_be_bytes());
        b.extend_from_slice(&0u16.to_be_bytes());
        b.extend_from_slice(&self.source_symbols.to_be_bytes());
        b.extend_from_slice(&self.total_symbols.to_be_bytes());
        b.extend_from_slice(&self.digest);
        b.extend_from_slice(&(self.hashes.len() as u32).to_be_bytes());
        debug_assert_eq!(b.len(), HEADER_FIXED_LEN);
        for h in &self.hashes {
            b.extend_from_slice(h);
        }
        b
    }

    /// The consistency a header must have whoever signed it: a publisher's bug must not make
    /// a viewer's decoder panic either.
    fn validate(&self) -> Result<(), FrameError> {
        let bad = |what: &'static str| Err(FrameError::BadHeader(what));
        if !(2..=MAX_SUBSTREAMS).contains(&self.substreams) {
            return bad("substreams out of range");
        }
        if self.stripe >= self.substreams {
            return bad("stripe index not below the substream count");
        }
        if !valid_symbol_size(self.symbol_size) {
            return bad("symbol size not a positive multiple of the alignment");
        }
        if self.source_symbols == 0 || self.source_symbols > MAX_SOURCE_SYMBOLS {
            return bad("source symbols out of range");
        }
        if u64::from(self.transfer_length).div_ceil(u64::from(self.symbol_size))
            != u64::from(self.source_symbols)
        {
            return bad("length and source symbols disagree");
        }
        if self.total_symbols < self.source_symbols || self.total_symbols > MAX_TOTAL_SYMBOLS {
            return bad("total symbols out of range");
        }
        if self.hashes.len() as u64
            != u64::from(symbols_in_stripe(
                self.total_symbols,
                self.substreams,
                self.stripe,
            ))
        {
            return bad("hash count does not match the stripe's symbols");
        }
        Ok(())
    }
}

/// A substream's header for one segment, signed by the stream key. A value of this type was
/// either signed here or verified against a pinned key ([`StripeHeader::decode_verified`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StripeHeader {
    fields: HeaderFields,
    signature: [u8; SIGNATURE_LEN],
}

impl StripeHeader {
    /// Signs the fields.
    pub fn sign(secret: &StreamSecret, fields: HeaderFields) -> Self {
        let mut msg = SIGNING_CONTEXT.to_vec();
        msg.extend_from_slice(&fields.encode_unsigned());
        let signature = secret.sign(&msg);
        Self { fields, signature }
    }

    /// What the header says.
    pub fn fields(&self) -> &HeaderFields {
        &self.fields
    }

    /// The hash of symbol `esi`, if this substream carries it.
    pub fn hash_of(&self, esi: u32) -> Option<&[u8; SYMBOL_HASH_LEN]> {
        let n = u32::from(self.fields.substreams);
        if esi % n != u32::from(self.fields.stripe) {
            return None;
        }
        self.fields.hashes.get((esi / n) as usize)
    }

    /// The header's frame: prefix, body, signature.
    pub fn to_frame(&self) -> Vec<u8> {
        let mut body = self.fields.encode_unsigned();
        body.extend_from_slice(&self.signature);
        let mut out = prefix(KIND_HEADER, body.len());
        out.extend_from_slice(&body);
        out
    }

    /// Reads a header body, verifies its signature under `key`, and checks its consistency.
    pub fn decode_verified(body: &[u8], key: &StreamKey) -> Result<Self, FrameError> {
        if body.len() < HEADER_FIXED_LEN + SIGNATURE_LEN {
            return Err(FrameError::Truncated {
                kind: "header",
                len: body.len(),
            });
        }
        let (signed, sig) = body.split_at(body.len() - SIGNATURE_LEN);
        let mut msg = SIGNING_CONTEXT.to_vec();
        msg.extend_from_slice(signed);
        let signature: [u8; SIGNATURE_LEN] = sig.try_into().expect("split at SIGNATURE_LEN");
        if !key.verify(&msg, &signature) {
            return Err(FrameError::BadSignature);
        }
        let fields = decode_fields(signed)?;
        fields.validate()?;
        Ok(Self { fields, signature })
    }
}

fn decode_fields(b: &[u8]) -> Result<HeaderFields, FrameError> {
    let mut r = Reader(b);
    let version = r.u8()?;
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    let stripe = r.u8()?;
    let substreams = r.u8()?;
    let _reserved = r.u8()?;
    let seq = r.u64()?;
    let media_start_us = r.u64()?;
    let duration_us = r.u32()?;
    let transfer_length = r.u32()?;
    let symbol_size = r.u16()?;
    let _reserved = r.u16()?;
    let source_symbols = r.u32()?;
    let total_symbols = r.u32()?;
    let digest = r.array::<32>()?;
    let count = r.u32()? as usize;
    if r.0.len() != count.saturating_mul(SYMBOL_HASH_LEN) {
        return Err(FrameError::BadHeader(
            "hash list length does not match its count",
        ));
    }
    let hashes =
        r.0.chunks_exact(SYMBOL_HASH_LEN)
            .map(|c| c.try_into().expect("chunks of SYMBOL_HASH_LEN"))
            .collect();
    Ok(HeaderFields {
        stripe,
        substreams,
        seq,
        media_start_us,
        duration_us,
        transfer_length,
        symbol_size,
        source_symbols,
        total_symbols,
        digest,
        hashes,
    })
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError::BadHeader("fixed part truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

/// One encoding symbol of one segment.
#[derive(Clone, PartialEq, Eq)]
pub struct Symbol {
    /// The segment.
    pub seq: u64,
    /// The encoding symbol id (0..K: source, K..N: repair); its substream is `esi mod n`.
    pub esi: u32,
    /// T bytes.
    pub payload: Vec<u8>,
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Symbol")
            .field("seq", &self.seq)
            .field("esi", &self.esi)
            .field("len", &self.payload.len())
            .finish()
    }
}

impl Symbol {
    /// The symbol's frame.
    pub fn to_frame(&self) -> Vec<u8> {
        let mut out = prefix(KIND_SYMBOL, SYMBOL_FIXED_LEN + self.payload.len());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.esi.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}

fn prefix(kind: u8, body_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX_LEN + body_len);
    out.extend_from_slice(&MAGIC);
    out.push(kind);
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
    out
}

/// The largest header body: the most hashes one substream of a block can list.
const MAX_HEADER_BODY: usize =
    HEADER_FIXED_LEN + SIGNATURE_LEN + SYMBOL_HASH_LEN * (MAX_TOTAL_SYMBOLS as usize).div_ceil(2);
/// The largest symbol body.
const MAX_SYMBOL_BODY: usize = SYMBOL_FIXED_LEN + u16::MAX as usize;

/// What a [`Deframer`] read.
#[derive(Debug)]
pub enum Event {
    /// A header whose signature verified.
    Header(StripeHeader),
    /// A symbol, not yet checked (a [`crate::Rebuilder`] checks it against its header).
    Symbol(Symbol),
    /// A well-framed frame refused (bad signature, inconsistent header): skipped.
    Refused(FrameError),
}

/// Reads frames from a substream's bytes, as they arrive.
pub struct Deframer {
    key: StreamKey,
    buf: Vec<u8>,
    start: usize,
    synced: bool,
    skipped: u64,
    resyncs: u64,
}

impl Deframer {
    /// A reader of frames signed by `key`, hunting for the first header.
    pub fn new(key: StreamKey) -> Self {
        Self {
            key,
            buf: Vec::new(),
            start: 0,
            synced: false,
            skipped: 0,
            resyncs: 0,
        }
    }

    /// Bytes skipped while hunting for a header.
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped
    }

    /// How often the reader lost the framing and hunted again.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Whether the reader is in step with the frames (false until the first header).
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Bytes received, not yet read as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The input broke off (a relay switch): whatever comes next is read from a header on.
    pub fn reset(&mut self) {
        self.skipped += self.buffered() as u64;
        self.buf.clear();
        self.start = 0;
        if self.synced {
            self.synced = false;
            self.resyncs += 1;
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    fn lose_sync(&mut self) {
        if self.synced {
            self.synced = false;
            self.resyncs += 1;
        }
        self.skip(1);
    }

    fn skip(&mut self, n: usize) {
        self.start += n;
        self.skipped += n as u64;
    }

    /// The next frame, or `None` until more bytes arrive.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            let avail = &self.buf[self.start..];
            if !self.synced {
                // Hunt: the next magic, or keep the last bytes that may begin one.
                match avail.windows(MAGIC.len()).position(|w| w == MAGIC) {
                    Some(at) => self.skip(at),
                    None => {
                        let keep = avail.len().min(MAGIC.len() - 1);
                        self.skip(avail.len() - keep);
                        return None;
                    }
                }
            }
            let avail = &self.buf[self.start..];
            if avail.len() < PREFIX_LEN {
                return None;
            }
            if avail[..4] != MAGIC {
                self.lose_sync();
                continue;
            }
            let kind = avail[4];
            let len = u32::from_be_bytes(avail[5..9].try_into().expect("4 bytes")) as usize;
            let plausible = match kind {
                KIND_HEADER => (HEADER_FIXED_LEN + SIGNATURE_LEN..=MAX_HEADER_BODY).contains(&len),
                // Hunting accepts only a header: a symbol cannot be checked without one.
                KIND_SYMBOL => self.synced && (SYMBOL_FIXED_LEN..=MAX_SYMBOL_BODY).contains(&len),
                _ => false,
            };
            if !plausible {
                self.lose_sync();
                continue;
            }
            if kind == KIND_HEADER && !self.synced {
                // Before waiting for a long body, check that the length agrees with the count
                // the fixed part gives (a magic inside a payload rarely survives this).
                if avail.len() < PREFIX_LEN + HEADER_FIXED_LEN {
                    return None;
                }
                let count = u32::from_be_bytes(
                    avail[PREFIX_LEN + HEADER_FIXED_LEN - 4..PREFIX_LEN + HEADER_FIXED_LEN]
                        .try_into()
                        .expect("4 bytes"),
                ) as usize;
                if Some(len)
                    != count
                        .checked_mul(SYMBOL_HASH_LEN)
                        .map(|h| h + HEADER_FIXED_LEN + SIGNATURE_LEN)
                {
                    self.lose_sync();
                    continue;
                }
            }
            if avail.len() < PREFIX_LEN + len {
                return None;
            }
            let body = &avail[PREFIX_LEN..PREFIX_LEN + len];
            if kind == KIND_SYMBOL {
                let symbol = Symbol {
                    seq: u64::from_be_bytes(body[..8].try_into().expect("8 bytes")),
                    esi: u32::from_be_bytes(body[8..12].try_into().expect("4 bytes")),
                    payload: body[SYMBOL_FIXED_LEN..].to_vec(),
                };
                self.start += PREFIX_LEN + len;
                return Some(Event::Symbol(symbol));
            }
            match StripeHeader::decode_verified(body, &self.key) {
                Ok(header) => {
                    self.start += PREFIX_LEN + len;
                    self.synced = true;
                    return Some(Event::Header(header));
                }
                Err(e) if self.synced => {
                    // Well framed, refused: skip the frame, keep the framing.
                    self.start += PREFIX_LEN + len;
                    return Some(Event::Refused(e));
                }
                Err(_) => {
                    // While hunting, a failed header may be a false magic: look one byte on.
                    self.skip(1);
                }
            }
        }
    }
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header's signature does not verify under the pinned key.
    #[error("stripe header: the signature does not verify under the stream key")]
    BadSignature,
    /// An unknown header version.
    #[error("stripe header: version {0}, expected {VERSION}")]
    Version(u8),
    /// A body too short for its kind.
    #[error("{kind} frame: {len} bytes, too short")]
    Truncated {
        /// "header" or "symbol".
        kind: &'static str,
        /// Its length.
        len: usize,
    },
    /// An inconsistent header.
    #[error("stripe header: {0}")]
    BadHeader(&'static str),
}

#[cfg(test)]
mod tests;
