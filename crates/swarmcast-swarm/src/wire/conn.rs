//! One connection of the wire seeder, sans IO (in the manner of quinn-proto): the peer wire
//! protocol of a seed, as a state machine on numbers. It is given the bytes the peer sent
//! ([`Conn::handle_input`]) and the time ([`Conn::handle_timeout`] at [`Conn::poll_timeout`]),
//! always as a `now` passed in, never read from a clock; it gives back the bytes to send
//! ([`Conn::poll_transmit`]), the blocks to serve ([`Conn::next_request`]) and what the driver
//! must act on ([`Conn::poll_event`]: the peer's handshake, the pieces it has, and its end with a
//! typed [`Close`] reason).
//!
//! It enforces the seed's side of the protocol: a handshake within
//! [`Limits::handshake_timeout`]; messages of at most [`Limits::max_message`] bytes, each one the
//! protocol knows (messages of extensions we did not announce are skipped whole); bitfields
//! whenever they come (BEP 3 wants one, first; aria2 sends two, after its first pieces, and no
//! harm follows from taking them: only pieces new to the connection are reported); requests in range, of at most [`Limits::max_request`] bytes, for pieces
//! announced to this peer, at most [`Limits::max_queued_requests`] of them queued. It honours
//! Cancel, sends a keep-alive after [`Limits::keep_alive`] without sending anything, and closes a
//! connection that sent nothing for [`Limits::idle_timeout`].
//!
//! What is shared between connections stays outside it: the super-seeding policy
//! ([`super::policy`]) is told of the [`Event::Has`] events and answers with pieces to
//! [`announce`](Conn::announce); the upload limit and the turns are waited for by the driver
//! between [`next_request`](Conn::next_request) and [`begin_block`](Conn::begin_block), and the
//! piece data is the driver's to read and write ([`encode_piece`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use librqbit_core::hash_id::Id20;
use librqbit_peer_protocol::extended::PeerExtendedMessageIds;
use librqbit_peer_protocol::{Handshake, Message, MessageDeserializeError, Piece, Request};

/// The extended message's id (BEP 10; librqbit's own constant is private).
const EXTENDED_MESSAGE_ID: u8 = 20;
/// The handshake's reserved bit that says "extension protocol" (BEP 10: bit 20 from the right).
const EXTENSION_BIT: u64 = 1 << 20;
/// Our id for swarmcast's manifest exchange (the one librqbit's patched sessions use).
pub const EXTENSION_ID: u8 = librqbit_peer_protocol::MY_EXTENDED_SWARMCAST_MANIFEST;
/// The exchange's name in the extended handshake.
const EXTENSION: &str = swarmcast_core::gossip::EXTENSION;

/// How long a new connection has to send its handshake. A viewer sends it with its first bytes,
/// one round trip after connecting; a connection that sends nothing holds a slot this long (it
/// was 10 s: 1,100 such connections kept the seeder's 1,024 slots full, docs/reliability.md).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// A keep-alive goes out after this long without sending anything.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// The largest block a peer may request (BitTorrent clients ask for 16 KiB).
pub const MAX_REQUEST: u32 = 128 * 1024;
/// Requests a connection may have queued; more closes it.
pub const MAX_QUEUED_REQUESTS: usize = 4096;
/// The largest message accepted from a peer: a seed is sent requests, Haves and one bitfield
/// (128 bytes for 1024 pieces), so this leaves room for 262,000 pieces and bounds the buffer.
pub const MAX_MESSAGE: usize = 32 * 1024;
/// A connection whose peer sent nothing for this long is closed: BitTorrent clients send a
/// keep-alive every two minutes at most (BEP 3; librqbit every 120 s), so this is two of them.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(240);

/// The length of a BitTorrent handshake (no other protocol string is spoken).
pub const HANDSHAKE_LEN: usize = 68;

/// The standard block: clients request pieces in blocks of 16 KiB at 16 KiB offsets.
pub const BLOCK: u32 = 16 * 1024;

/// The bounds a connection holds its peer to, and its timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How long after the connection opened the peer's handshake must be in.
    pub handshake_timeout: Duration,
    /// A keep-alive goes out after this long without sending anything.
    pub keep_alive: Duration,
    /// A connection whose peer sent nothing for this long is closed.
    pub idle_timeout: Duration,
    /// The largest block a peer may request.
    pub max_request: u32,
    /// Requests a connection may have queued; one more closes it.
    pub max_queued_requests: usize,
    /// The largest message accepted (its 4-byte length prefix included).
    pub max_message: usize,
}

impl Default for Limits {
    /// The wire seeder's: [`HANDSHAKE_TIMEOUT`], [`KEEP_ALIVE`],
    /// [`IDLE_TIMEOUT`], [`MAX_REQUEST`], [`MAX_QUEUED_REQUESTS`],
    /// [`MAX_MESSAGE`].
    fn default() -> Self {
        Self {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            keep_alive: KEEP_ALIVE,
            idle_timeout: IDLE_TIMEOUT,
            max_request: MAX_REQUEST,
            max_queued_requests: MAX_QUEUED_REQUESTS,
            max_message: MAX_MESSAGE,
        }
    }
}

/// The shape of a single-file v1 torrent: what a connection checks requests against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Bytes per piece (the last may be shorter).
    pub piece_length: u64,
    /// The file's length.
    pub length: u64,
    /// Pieces.
    pub pieces: u32,
}

impl Layout {
    /// The length of piece `index`, if it exists.
    pub fn piece_size(&self, index: u32) -> Option<u64> {
        (index < self.pieces).then(|| {
            let start = u64::from(index) * self.piece_length;
            self.length.saturating_sub(start).min(self.piece_length)
        })
    }

    /// Where the block `r` lies in the file, if it lies within its piece.
    pub fn block(&self, r: &Request) -> Option<std::ops::Range<u64>> {
        let piece = self.piece_size(r.index)?;
        let end = u64::from(r.begin) + u64::from(r.length);
        (end <= piece).then(|| {
            let start = u64::from(r.index) * self.piece_length + u64::from(r.begin);
            start..start + u64::from(r.length)
        })
    }
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Close {
    /// No handshake within [`Limits::handshake_timeout`].
    #[error("no handshake in time")]
    HandshakeTimeout,
    /// The handshake is not a BitTorrent one.
    #[error("bad handshake: {0}")]
    Handshake(String),
    /// The peer closed the connection before its handshake was whole.
    #[error("closed before its handshake")]
    HandshakeClosed,
    /// The handshake is for a torrent the driver does not seed ([`Conn::close`]).
    #[error("not a segment we seed")]
    UnknownTorrent,
    /// A message that does not parse.
    #[error("bad message: {0}")]
    Message(String),
    /// A message over [`Limits::max_message`] bytes (its length prefix included).
    #[error("message of {0} bytes is over the limit")]
    TooLong(usize),
    /// A request empty, over [`Limits::max_request`], or beyond its piece or the torrent.
    #[error("request out of bounds: piece {index}, offset {begin}, length {length}")]
    BadRequest {
        /// The piece.
        index: u32,
        /// The offset in the piece.
        begin: u32,
        /// The length.
        length: u32,
    },
    /// A request for a piece this connection was never told of (no bit, no Have).
    #[error("request for piece {0}, which was not announced to the peer")]
    NotAnnounced(u32),
    /// More than [`Limits::max_queued_requests`] requests queued.
    #[error("more than {0} requests queued")]
    TooManyRequests(usize),
    /// Nothing received for [`Limits::idle_timeout`].
    #[error("nothing received in {0:?}")]
    IdleTimeout(Duration),
    /// The peer closed the connection (after its handshake): the normal end.
    #[error("closed by the peer")]
    PeerClosed,
}

/// How a [`Close`] is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Never served: no handshake, a bad one, or a torrent we do not seed.
    Refused,
    /// The peer broke the protocol or a limit.
    Violation,
    /// An end that is nobody's fault (the peer closed, or went silent).
    Ended,
}

impl Close {
    /// How the end is counted.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::HandshakeTimeout
            | Self::Handshake(_)
            | Self::HandshakeClosed
            | Self::UnknownTorrent => Outcome::Refused,
            Self::Message(_)
            | Self::TooLong(_)
            | Self::BadRequest { .. }
            | Self::NotAnnounced(_)
            | Self::TooManyRequests(_) => Outcome::Violation,
            Self::IdleTimeout(_) | Self::PeerClosed => Outcome::Ended,
        }
    }
}

/// What the driver must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer's handshake: the driver answers with [`Conn::accept`] or [`Conn::close`].
    Handshake {
        /// The torrent it wants.
        info_hash: [u8; 20],
        /// Its peer id.
        peer_id: [u8; 20],
    },
    /// The peer has a piece (a Have, or a bit of its bitfield; in range).
    Has(u32),
    /// The peer asked for a block of a piece, the first time it asks for that piece.
    Requested(u32),
    /// The peer announced swarmcast's manifest exchange in its extended handshake (once; only
    /// on a connection that speaks it, [`Conn::speak_extension`]).
    ExtensionPeer,
    /// A message of the manifest exchange: its bencoded payload, unparsed.
    Extension(Vec<u8>),
    /// The connection ended; the driver closes the socket. Nothing follows.
    Closed(Close),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the peer's handshake.
    Handshake,
    /// The handshake is in, waiting for the driver's [`Conn::accept`].
    Accepting,
    /// Serving.
    Open(Layout),
    /// Ended.
    Closed,
}

/// One peer connection of a seed; see the module documentation.
#[derive(Debug)]
pub struct Conn {
    limits: Limits,
    state: State,
    /// Bytes received and not parsed yet (at most one partial message, once open).
    input: Vec<u8>,
    /// Bytes to send (handshake, bitfield, unchoke, Haves, keep-alives).
    output: Vec<u8>,
    events: VecDeque<Event>,
    requests: VecDeque<Request>,
    /// The request handed out by [`Conn::next_request`], and whether it was cancelled since.
    serving: Option<(Request, bool)>,
    /// Per piece: whether the peer was told we have it.
    announced: Vec<bool>,
    /// The pieces the peer said it has (each reported once, as [`Event::Has`]).
    peer_has: Vec<bool>,
    /// The pieces the peer asked for (each reported once, as [`Event::Requested`]).
    requested: Vec<bool>,
    sent: Sent,
    handshake_deadline: Instant,
    last_sent: Instant,
    last_received: Instant,
    /// Announce swarmcast's manifest exchange (BEP 10) to peers that support extensions.
    speak_extension: bool,
    /// The peer's handshake set the extension-protocol bit.
    peer_extended: bool,
    /// The id the peer gave the manifest exchange in its extended handshake.
    peer_extension_id: Option<u8>,
}

impl Conn {
    /// A connection opened at `now`, waiting for the peer's handshake.
    pub fn new(now: Instant, limits: Limits) -> Self {
        Self {
            limits,
            state: State::Handshake,
            input: Vec::new(),
            output: Vec::new(),
            events: VecDeque::new(),
            requests: VecDeque::new(),
            serving: None,
            announced: Vec::new(),
            peer_has: Vec::new(),
            requested: Vec::new(),
            sent: Sent::default(),
            handshake_deadline: now + limits.handshake_timeout,
            last_sent: now,
            last_received: now,
            speak_extension: false,
            peer_extended: false,
            peer_extension_id: None,
        }
    }

    /// Speak swarmcast's manifest exchange (BEP 10, [`EXTENSION_ID`]) with a peer that supports
    /// extensions: [`accept`](Self::accept) sets the extension bit and sends an extended
    /// handshake naming it; the peer's extended handshake and its messages on the exchange
    /// become [`Event::ExtensionPeer`] and [`Event::Extension`]. Other extended messages are
    /// still skipped whole. Call before `accept`.
    pub fn speak_extension(&mut self) {
        self.speak_extension = true;
    }

    /// Queues a message of the manifest exchange (`payload`: one bencoded value) if the peer
    /// announced it; whether it was queued.
    pub fn send_extension(&mut self, payload: &[u8]) -> bool {
        let (State::Open(_), Some(id)) = (self.state, self.peer_extension_id) else {
            return false;
        };
        extended_message(&mut self.output, id, payload);
        true
    }

    /// Whether the connection ended (its [`Event::Closed`] was queued).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Requests queued (the one handed out by [`next_request`](Self::next_request) aside).
    pub fn queued(&self) -> usize {
        self.requests.len()
    }

    /// Ends the connection with `reason` (e.g. [`Close::UnknownTorrent`]); does nothing if it
    /// ended already. Unsent bytes are dropped.
    pub fn close(&mut self, reason: Close) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.input = Vec::new();
        self.output.clear();
        self.requests.clear();
        self.serving = None;
        self.events.push_back(Event::Closed(reason));
    }

    /// Bytes from the peer, received at `now`.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        self.last_received = now;
        self.input.extend_from_slice(bytes);
        self.parse();
    }

    /// The peer closed its side at `now`.
    pub fn handle_eof(&mut self, _now: Instant) {
        match self.state {
            State::Handshake => self.close(Close::HandshakeClosed),
            _ => self.close(Close::PeerClosed),
        }
    }

    /// Serve the torrent of the peer's handshake: queues our handshake (`info_hash`, `peer_id`,
    /// no extension bit), a full bitfield if `announce_all` (else pieces are announced one by one
    /// with [`announce`](Self::announce)), and an unchoke; then parses what the peer sent after
    /// its handshake. Does nothing unless an [`Event::Handshake`] is waiting for an answer.
    pub fn accept(
        &mut self,
        now: Instant,
        layout: Layout,
        info_hash: [u8; 20],
        peer_id: [u8; 20],
        announce_all: bool,
    ) {
        if self.state != State::Accepting {
            return;
        }
        let extended = self.speak_extension && self.peer_extended;
        let ours = Handshake {
            reserved: if extended { EXTENSION_BIT } else { 0 },
            info_hash: Id20::new(info_hash),
            peer_id: Id20::new(peer_id),
        };
        let mut hs = [0u8; HANDSHAKE_LEN];
        let n = ours.serialize_unchecked_len(&mut hs);
        self.output.extend_from_slice(&hs[..n]);
        if extended {
            // {"m": {"swarmcast_manifest": EXTENSION_ID}}
            let payload = format!("d1:md{}:{}i{}eee", EXTENSION.len(), EXTENSION, EXTENSION_ID);
            extended_message(&mut self.output, 0, payload.as_bytes());
        }
        self.announced = vec![announce_all; layout.pieces as usize];
        self.peer_has = vec![false; layout.pieces as usize];
        self.requested = vec![false; layout.pieces as usize];
        if announce_all {
            let mut bits = vec![0u8; layout.pieces.div_ceil(8) as usize];
            for i in 0..layout.pieces {
                bits[i as usize / 8] |= 0x80 >> (i % 8);
            }
            encode(&mut self.output, Message::Bitfield(bits.as_slice().into()));
        }
        encode(&mut self.output, Message::Unchoke);
        self.state = State::Open(layout);
        self.last_received = now;
        self.parse();
    }

    /// Tells the peer we have `piece` (a Have), unless it was told already; whether it is told
    /// now. Pieces out of range, and a connection not open, are ignored.
    pub fn announce(&mut self, piece: u32) -> bool {
        if !matches!(self.state, State::Open(_)) {
            return false;
        }
        match self.announced.get_mut(piece as usize) {
            Some(told @ false) => {
                *told = true;
                encode(&mut self.output, Message::Have(piece));
                true
            }
            _ => false,
        }
    }

    /// Appends the bytes to send now to `out` (taken as sent at `now`); how many.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> usize {
        let n = self.output.len();
        if n > 0 {
            out.append(&mut self.output);
            self.last_sent = now;
        }
        n
    }

    /// The next thing the driver must act on.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next (`None`: never, it ended).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Handshake | State::Accepting => Some(self.handshake_deadline),
            State::Open(_) => {
                let idle = self.last_received + self.limits.idle_timeout;
                // With bytes waiting to go, a keep-alive is not due.
                Some(if self.output.is_empty() {
                    idle.min(self.last_sent + self.limits.keep_alive)
                } else {
                    idle
                })
            }
            State::Closed => None,
        }
    }

    /// The time is `now`: the handshake's deadline, the idle timeout, the keep-alive.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Handshake | State::Accepting if now >= self.handshake_deadline => {
                self.close(Close::HandshakeTimeout);
            }
            State::Open(_) if now >= self.last_received + self.limits.idle_timeout => {
                self.close(Close::IdleTimeout(self.limits.idle_timeout));
            }
            State::Open(_)
                if self.output.is_empty() && now >= self.last_sent + self.limits.keep_alive =>
            {
                encode(&mut self.output, Message::KeepAlive);
            }
            _ => {}
        }
    }

    /// The next block to serve, in the order requested. It stays the peer's to cancel until
    /// [`begin_block`](Self::begin_block): the driver waits for its turn and the upload limit in
    /// between.
    pub fn next_request(&mut self) -> Option<Request> {
        if !matches!(self.state, State::Open(_)) {
            return None;
        }
        let r = self.requests.pop_front()?;
        self.serving = Some((r, false));
        Some(r)
    }

    /// The block of the last [`next_request`](Self::next_request), unless it was cancelled
    /// since: the driver writes it now (its range is [`Layout::block`]'s).
    pub fn begin_block(&mut self) -> Option<Request> {
        match self.serving.take() {
            Some((r, false)) => Some(r),
            _ => None,
        }
    }

    /// The block `r` was written at `now`: the piece, if every standard block of it has now
    /// been written on this connection (each counted once; see [`Sent`]).
    pub fn block_written(&mut self, now: Instant, r: &Request) -> Option<u32> {
        self.last_sent = now;
        let State::Open(layout) = self.state else {
            return None;
        };
        let piece_len = layout.piece_size(r.index)?;
        self.sent
            .add(r.index, r.begin, r.length, piece_len)
            .then_some(r.index)
    }

    /// Parses what it can of the input.
    fn parse(&mut self) {
        if self.state == State::Handshake {
            if self.input.len() < HANDSHAKE_LEN {
                return;
            }
            match Handshake::deserialize(&self.input[..HANDSHAKE_LEN]) {
                Ok((h, _)) => {
                    self.peer_extended = h.reserved & EXTENSION_BIT != 0;
                    self.events.push_back(Event::Handshake {
                        info_hash: h.info_hash.0,
                        peer_id: h.peer_id.0,
                    })
                }
                Err(e) => return self.close(Close::Handshake(e.to_string())),
            }
            self.input.drain(..HANDSHAKE_LEN);
            self.state = State::Accepting;
        }
        let State::Open(layout) = self.state else {
            return;
        };
        // Take every whole message, then drop them at once (not one by one: an input of many
        // small messages would be quadratic).
        let mut at = 0;
        while self.state != State::Closed {
            let rest = &self.input[at..];
            if rest.len() < 4 {
                break;
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize + 4;
            if len > self.limits.max_message {
                return self.close(Close::TooLong(len));
            }
            if rest.len() < len {
                break;
            }
            // Extended messages (BEP 10, id 20) never go through librqbit's parser (it panicked
            // on an integer past i64 with overflow checks on: found by fuzzing,
            // `fuzz/corpus/wire_conn`): skipped whole, unless the connection speaks the manifest
            // exchange, whose handshake and messages `on_extended` takes.
            let incoming = if len > 4 && rest[4] == EXTENDED_MESSAGE_ID {
                if self.speak_extension && len > 5 {
                    let (id, payload) = (rest[5], rest[6..len].to_vec());
                    self.on_extended(id, &payload);
                }
                Incoming::Other
            } else {
                match Message::deserialize(&rest[..len], &[]) {
                    Ok((msg, _)) => Incoming::from_message(msg, layout.pieces),
                    // Messages of extensions we did not announce (DHT port, fast): skipped whole.
                    Err(MessageDeserializeError::UnsupportedMessageId(_)) => Incoming::Other,
                    Err(e) => return self.close(Close::Message(e.to_string())),
                }
            };
            at += len;
            if let Err(reason) = self.on_message(layout, incoming) {
                return self.close(reason);
            }
        }
        if self.state != State::Closed {
            self.input.drain(..at);
        }
    }

    fn on_message(&mut self, layout: Layout, msg: Incoming) -> Result<(), Close> {
        match msg {
            Incoming::Request(r) => {
                if r.length == 0 || r.length > self.limits.max_request || layout.block(&r).is_none()
                {
                    return Err(Close::BadRequest {
                        index: r.index,
                        begin: r.begin,
                        length: r.length,
                    });
                }
                if !self.announced[r.index as usize] {
                    return Err(Close::NotAnnounced(r.index));
                }
                if self.requests.len() >= self.limits.max_queued_requests {
                    return Err(Close::TooManyRequests(self.limits.max_queued_requests));
                }
                if let Some(asked @ false) = self.requested.get_mut(r.index as usize) {
                    *asked = true;
                    self.events.push_back(Event::Requested(r.index));
                }
                self.requests.push_back(r);
            }
            Incoming::Cancel(r) => match &mut self.serving {
                Some((s, cancelled)) if same(s, &r) => *cancelled = true,
                _ => self.requests.retain(|x| !same(x, &r)),
            },
            Incoming::Have(piece) => self.peer_has(piece),
            // Bitfields whenever they come: BEP 3 wants one, as the first message, but aria2
            // sends two, after its first pieces, and taking them harms nobody (a pass over the
            // pieces, as many Haves would cost).
            Incoming::Bitfield(set) => set.into_iter().for_each(|piece| self.peer_has(piece)),
            // A seed that unchoked everyone at once has nothing to do with the rest.
            Incoming::Other => {}
        }
        Ok(())
    }
}

impl Conn {
    /// An extended message (BEP 10) with extended id `id`: the peer's extended handshake (the
    /// id it gives the manifest exchange, parsed with serde_bencode, not librqbit's parser) or
    /// a message on our exchange. Anything else, or anything that does not parse, is skipped.
    fn on_extended(&mut self, id: u8, payload: &[u8]) {
        if id == 0 {
            if let (Some(i), None) = (extension_id(payload), self.peer_extension_id) {
                self.peer_extension_id = Some(i);
                self.events.push_back(Event::ExtensionPeer);
            }
        } else if id == EXTENSION_ID && self.peer_extension_id.is_some() {
            // Only from a peer whose extended handshake named the exchange.
            self.events.push_back(Event::Extension(payload.to_vec()));
        }
    }

    /// Reports that the peer has `piece`, once (a piece it names again, or out of range, is
    /// nothing new).
    fn peer_has(&mut self, piece: u32) {
        if let Some(had @ false) = self.peer_has.get_mut(piece as usize) {
            *had = true;
            self.events.push_back(Event::Has(piece));
        }
    }
}

/// A message from the peer, as far as a seed cares.
enum Incoming {
    Request(Request),
    Cancel(Request),
    Have(u32),
    /// The pieces set in a bitfield (those in range).
    Bitfield(Vec<u32>),
    Other,
}

impl Incoming {
    fn from_message(msg: Message<'_>, pieces: u32) -> Self {
        match msg {
            Message::Request(r) => Self::Request(r),
            Message::Cancel(r) => Self::Cancel(r),
            Message::Have(p) => Self::Have(p),
            Message::Bitfield(bits) => {
                let bits = bits.as_ref();
                Self::Bitfield(
                    (0..pieces)
                        .filter(|&i| {
                            bits.get(i as usize / 8)
                                .is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
                        })
                        .collect(),
                )
            }
            _ => Self::Other,
        }
    }
}

fn same(a: &Request, b: &Request) -> bool {
    a.index == b.index && a.begin == b.begin && a.length == b.length
}

/// Appends a BEP 10 extended message to `out`: the length prefix, message id 20, the extended
/// id `id` (0: the extended handshake; else the id the peer gave the extension) and `payload`.
pub fn extended_message(out: &mut Vec<u8>, id: u8, payload: &[u8]) {
    out.reserve(payload.len() + 6);
    out.extend_from_slice(&(payload.len() as u32 + 2).to_be_bytes());
    out.push(EXTENDED_MESSAGE_ID);
    out.push(id);
    out.extend_from_slice(payload);
}

/// The id a peer's extended handshake (its bencoded payload) gives swarmcast's manifest
/// exchange, if it names it with a usable one (1-255; BEP 10: 0 disables). Parsed with
/// serde_bencode, not librqbit's parser (which panicked on integers past i64, found by fuzzing).
pub fn extension_id(handshake: &[u8]) -> Option<u8> {
    #[derive(serde::Deserialize)]
    struct Ids {
        #[serde(default)]
        swarmcast_manifest: Option<i64>,
    }
    #[derive(serde::Deserialize)]
    struct Hs {
        #[serde(default)]
        m: Option<Ids>,
    }
    serde_bencode::from_bytes::<Hs>(handshake)
        .ok()?
        .m?
        .swarmcast_manifest
        .and_then(|i| u8::try_from(i).ok())
        .filter(|&i| i != 0)
}

/// Appends `msg`, encoded, to `out`.
pub fn encode(out: &mut Vec<u8>, msg: Message<'_>) {
    let start = out.len();
    // The longest fixed part: a Request or Cancel (length, id, three integers).
    let need = 17
        + match &msg {
            Message::Piece(p) => p.len(),
            Message::Bitfield(b) => b.as_ref().len(),
            _ => 0,
        };
    out.resize(start + need, 0);
    let n = msg
        .serialize(&mut out[start..], &PeerExtendedMessageIds::default)
        .expect("the buffer was sized for the message");
    out.truncate(start + n);
}

/// Appends the Piece message of block `r`, whose bytes are `data`, to `out`.
pub fn encode_piece(out: &mut Vec<u8>, r: &Request, data: &[u8]) {
    encode(
        out,
        Message::Piece(Piece::from_data(r.index, r.begin, data)),
    );
}

/// Blocks sent on one connection, per piece, to tell when a whole piece went: only standard blocks
/// count (a block at a 16 KiB offset, 16 KiB long or the piece's tail), each once, so odd or
/// overlapping requests can neither fake a whole piece nor grow the record beyond one bit per block.
#[derive(Debug, Default)]
pub struct Sent(std::collections::HashMap<u32, Vec<bool>>);

impl Sent {
    /// Records a block of piece `index` (`piece_len` bytes); whether every block of it is sent.
    pub fn add(&mut self, index: u32, begin: u32, length: u32, piece_len: u64) -> bool {
        let blocks = piece_len.div_ceil(u64::from(BLOCK)) as usize;
        let standard = begin.is_multiple_of(BLOCK)
            && u64::from(length)
                == piece_len
                    .saturating_sub(u64::from(begin))
                    .min(u64::from(BLOCK));
        if !standard {
            return false;
        }
        let sent = self.0.entry(index).or_insert_with(|| vec![false; blocks]);
        if let Some(b) = sent.get_mut((begin / BLOCK) as usize) {
            *b = true;
        }
        sent.iter().all(|b| *b)
    }
}

#[cfg(test)]
mod tests;
