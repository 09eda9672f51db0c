//! Manifests carried by the swarm, sans IO (docs/manifest.md, "Manifests carried by the swarm").
//!
//! Peers that announce the BEP 10 extension [`EXTENSION`] in their extended handshake exchange
//! three messages on it, each one bencoded dictionary ([`Message`]):
//!
//! - `{"have": n}`: I hold the manifest with sequence number `n`;
//! - `{"want": n}`: send me your manifest if its sequence number is `n` or more;
//! - `{"manifest": <document>, "seq": n}`: the signed document itself;
//! - `{"delta": <delta>, "seq": n}`: the manifest `n` as a delta (docs/manifest.md, "Deltas")
//!   from the one before it, sent to a peer known to hold that one;
//! - `{"manifest": <part>, "seq": n, "at": offset, "size": total}`: one part of a document over
//!   [`PART`] bytes (one BitTorrent message of librqbit's holds about 16 KiB), sent in order
//!   on one connection and put together by the receiver's [`Reassembly`];
//! - `{"nat": 1}` (or `0`): the sender is (or is no longer) behind a NAT: it is reached only on
//!   the connections it opens ([`NatOrder`]).
//!
//! [`Gossip`] decides who gets what, on numbers and a clock passed in. When a newer manifest is
//! accepted (verified by the caller, exactly as an HTTP one), it is pushed to at most
//! [`GossipConfig::push_to`] peers not known to hold it, the ones pushed to longest ago first,
//! and announced with a `have` to the others ([`GossipConfig::announce`]). A peer told of a
//! newer manifest that does not arrive within [`GossipConfig::pull_after`] asks one announcer
//! for it with a `want`, then another after [`GossipConfig::retry_after`]. A peer's known
//! sequence number rises with everything it sends or is sent, so nobody is pushed a manifest it
//! showed it holds. Peers that said they are behind a NAT ([`Gossip::set_behind_nat`]) are
//! pushed to first by viewers and last by the publisher ([`NatOrder`]). A push goes as a delta
//! from the previous manifest (a few hundred bytes where the document is a few kilobytes) to a
//! peer known to hold that one, whole to the others; a peer that cannot apply a delta takes it
//! as an announcement and asks, and a `want` is always answered with the whole document.
//!
//! The publisher pushes to a fixed number of peers and announces nothing
//! ([`GossipConfig::publisher`]): what it sends per manifest does not grow with the audience.
//! Viewers push to a few and announce to the rest ([`GossipConfig::viewer`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::ManifestError;

/// The extension's name in the extended handshake's `m` dictionary.
pub const EXTENSION: &str = "swarmcast_manifest";

/// One message of the extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// The sender holds the manifest with this sequence number.
    Have(u64),
    /// The sender asks for a manifest with this sequence number or newer.
    Want(u64),
    /// A signed manifest document and its sequence number (as the sender read it: the
    /// receiver verifies the document and trusts nothing else).
    Manifest {
        /// The sequence number.
        seq: u64,
        /// The document.
        doc: Arc<[u8]>,
    },
    /// A manifest as a delta from an older one (`manifest::delta`; the delta names its base).
    Delta {
        /// The sequence number of the manifest it makes.
        seq: u64,
        /// The delta.
        delta: Arc<[u8]>,
    },
    /// The sender is behind a NAT (true) or no longer (false): reached only on the connections
    /// it opens ([`NatOrder`]).
    BehindNat(bool),
}

#[derive(Serialize, Deserialize, Default)]
struct MessageWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delta: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    have: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manifest: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    want: Option<u64>,
}

/// One payload as received: a whole message, or a part of a document.
#[derive(Debug)]
enum Frame {
    Whole(Message),
    Part {
        seq: u64,
        at: usize,
        size: usize,
        bytes: Vec<u8>,
    },
}

const MESSAGE: &str = "swarm message";

impl Frame {
    fn decode(payload: &[u8]) -> Result<Self, ManifestError> {
        let malformed = |reason: &str| ManifestError::Malformed {
            part: MESSAGE,
            reason: reason.into(),
        };
        let wire: MessageWire =
            serde_bencode::from_bytes(payload).map_err(|e| ManifestError::Malformed {
                part: MESSAGE,
                reason: e.to_string(),
            })?;
        let whole = |m| Ok(Frame::Whole(m));
        let doc = match (wire.manifest, wire.delta) {
            (Some(d), None) => Some((d, false)),
            (None, Some(d)) => Some((d, true)),
            (None, None) => None,
            (Some(_), Some(_)) => return Err(malformed("both manifest and delta")),
        };
        if let Some(nat) = wire.nat {
            let others = wire.have.is_some()
                || wire.want.is_some()
                || doc.is_some()
                || wire.seq.is_some()
                || wire.at.is_some()
                || wire.size.is_some();
            return match nat {
                _ if others => Err(malformed("nat with another message's keys")),
                0 => whole(Message::BehindNat(false)),
                1 => whole(Message::BehindNat(true)),
                _ => Err(malformed("nat is neither 0 nor 1")),
            };
        }
        match (wire.have, wire.want, doc, wire.seq, wire.at, wire.size) {
            (Some(n), None, None, None, None, None) => whole(Message::Have(n)),
            (None, Some(n), None, None, None, None) => whole(Message::Want(n)),
            (None, None, Some((doc, false)), Some(seq), None, None) => whole(Message::Manifest {
                seq,
                doc: doc.into_vec().into(),
            }),
            (None, None, Some((delta, true)), Some(seq), None, None) => whole(Message::Delta {
                seq,
                delta: delta.into_vec().into(),
            }),
            (None, None, Some((bytes, false)), Some(seq), Some(at), Some(size)) => {
                Ok(Frame::Part {
                    seq,
                    at: usize::try_from(at).map_err(|_| malformed("a part's offset too large"))?,
                    size: usize::try_from(size)
                        .map_err(|_| malformed("a part's size too large"))?,
                    bytes: bytes.into_vec(),
                })
            }
            _ => Err(malformed(
                "expected exactly one of have, want, nat, manifest or delta with seq (and at and \
                 size for a part of a manifest)",
            )),
        }
    }
}

impl Message {
    /// The bencoded payload.
    pub fn encode(&self) -> Vec<u8> {
        let wire = match self {
            Message::Have(n) => MessageWire {
                have: Some(*n),
                ..Default::default()
            },
            Message::Want(n) => MessageWire {
                want: Some(*n),
                ..Default::default()
            },
            Message::Manifest { seq, doc } => MessageWire {
                manifest: Some(ByteBuf::from(doc.to_vec())),
                seq: Some(*seq),
                ..Default::default()
            },
            Message::Delta { seq, delta } => MessageWire {
                delta: Some(ByteBuf::from(delta.to_vec())),
                seq: Some(*seq),
                ..Default::default()
            },
            Message::BehindNat(nat) => MessageWire {
                nat: Some(u64::from(*nat)),
                ..Default::default()
            },
        };
        serde_bencode::to_bytes(&wire).expect("a gossip message always encodes")
    }

    /// The payloads that carry it, to send in this order on one connection: one, or for a
    /// document over [`PART`] bytes, its parts of [`PART`] bytes (the last shorter).
    pub fn payloads(&self) -> Vec<Vec<u8>> {
        match self {
            Message::Manifest { seq, doc } if doc.len() > PART => doc
                .chunks(PART)
                .enumerate()
                .map(|(i, part)| {
                    let wire = MessageWire {
                        at: Some((i * PART) as u64),
                        manifest: Some(ByteBuf::from(part.to_vec())),
                        seq: Some(*seq),
                        size: Some(doc.len() as u64),
                        ..Default::default()
                    };
                    serde_bencode::to_bytes(&wire).expect("a gossip message always encodes")
                })
                .collect(),
            _ => vec![self.encode()],
        }
    }

    /// Decodes a payload that carries a whole message: a dictionary with exactly one of
    /// `have`, `want`, `nat`, or `manifest` or `delta` and `seq`. Unknown keys are ignored
    /// (later versions may add some). A part of a document is refused here: a [`Reassembly`]
    /// takes those.
    pub fn decode(payload: &[u8]) -> Result<Self, ManifestError> {
        match Frame::decode(payload)? {
            Frame::Whole(m) => Ok(m),
            Frame::Part { .. } => Err(ManifestError::Malformed {
                part: MESSAGE,
                reason: "a part of a document where a whole message was expected".into(),
            }),
        }
    }
}

/// One peer's payloads made into messages: whole ones as they come, a document sent in parts
/// once its last part is in. The parts of a document come in order, each one starting where the
/// previous ended: a part that does not (another document started, one lost with a connection
/// that closed) drops the document being put together, and the asking that follows an
/// announcement gets it again. Holds at most one document of at most [`MAX_DOCUMENT`] bytes.
#[derive(Debug, Default)]
pub struct Reassembly {
    partial: Option<Partial>,
    dropped: u64,
}

#[derive(Debug)]
struct Partial {
    seq: u64,
    size: usize,
    bytes: Vec<u8>,
    /// Bytes of the payloads that carried it so far.
    carried: usize,
}

impl Reassembly {
    /// Takes one payload from the peer; returns a message it completes, with the bytes of every
    /// payload that carried it (one, or all the parts). A payload that does not decode, or a
    /// part that claims a document over [`MAX_DOCUMENT`] bytes or runs past its size, is
    /// refused (and the document being put together dropped).
    pub fn push(&mut self, payload: &[u8]) -> Result<Option<(Message, usize)>, ManifestError> {
        let frame = match Frame::decode(payload) {
            Ok(f) => f,
            Err(e) => {
                self.drop_partial();
                return Err(e);
            }
        };
        let (seq, at, size, bytes) = match frame {
            Frame::Whole(m) => return Ok(Some((m, payload.len()))),
            Frame::Part {
                seq,
                at,
                size,
                bytes,
            } => (seq, at, size, bytes),
        };
        if size > MAX_DOCUMENT {
            self.drop_partial();
            return Err(ManifestError::TooLarge {
                found: size,
                max: MAX_DOCUMENT,
            });
        }
        if bytes.is_empty() || at.checked_add(bytes.len()).is_none_or(|end| end > size) {
            self.drop_partial();
            return Err(ManifestError::Malformed {
                part: MESSAGE,
                reason: format!(
                    "a part of {} bytes at {at} of a document of {size}",
                    bytes.len()
                ),
            });
        }
        if at == 0 {
            self.drop_partial();
            self.partial = Some(Partial {
                seq,
                size,
                bytes: Vec::new(),
                carried: 0,
            });
        }
        match &mut self.partial {
            Some(p) if p.seq == seq && p.size == size && p.bytes.len() == at => {
                p.bytes.extend_from_slice(&bytes);
                p.carried += payload.len();
            }
            _ => {
                // Not the next part of the document being put together (which is dropped).
                self.partial = None;
                self.dropped += 1;
                return Ok(None);
            }
        }
        if self.partial.as_ref().is_some_and(|p| p.bytes.len() == size) {
            let p = self.partial.take().expect("checked");
            return Ok(Some((
                Message::Manifest {
                    seq: p.seq,
                    doc: p.bytes.into(),
                },
                p.carried,
            )));
        }
        Ok(None)
    }

    /// Documents (and stray parts) dropped before their last part.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn drop_partial(&mut self) {
        if self.partial.take().is_some() {
            self.dropped += 1;
        }
    }
}

/// How a peer spreads manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GossipConfig {
    /// Peers a newly accepted manifest is pushed to whole.
    pub push_to: usize,
    /// Send a `have` to the other peers (and to each peer met, once).
    pub announce: bool,
    /// How long after hearing of a newer manifest a peer waits for a push before it asks.
    pub pull_after: Duration,
    /// How long it waits for an answer before asking another announcer.
    pub retry_after: Duration,
    /// Asks for one sequence number before giving up on it (a newer `have` starts over).
    pub max_asks: u32,
    /// Documents larger than this are neither pushed, announced nor sent in answer
    /// ([`MAX_DOCUMENT`]).
    pub max_document: usize,
    /// Which peers a push goes to first: those that said they are behind a NAT, or the others.
    pub nat_order: NatOrder,
    /// Orders the peers pushed to equally long ago (all of them, at first): a different seed
    /// at each node ([`GossipConfig::seeded`]) gives each its own order, so that nodes pushing
    /// the same manifest at once do not all pick the same peers. With one order everywhere,
    /// the lab's pushes of the first hop went to the same few viewers.
    pub seed: u64,
}

/// Which peers a node pushes to first ([`GossipConfig::nat_order`]), by what they said of their
/// NAT ([`Message::BehindNat`]; a peer that said nothing counts as reachable).
///
/// A peer behind a NAT is reached only on the connections it opened, to a few reachable peers
/// (and the publisher); every other peer can be reached by everyone. So the first hop, the
/// publisher's pushes, goes to reachable viewers, each of which can pass the manifest on to
/// any peer; and viewers push to the peers behind NAT first, for whom they are one of few ways
/// in. In the gossip's model of the lab (half the viewers behind NAT), this put every viewer
/// one hop from the publisher's pushes; behind-NAT-first everywhere left two behind a hop more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatOrder {
    /// Peers behind NAT first (the viewers').
    BehindNatFirst,
    /// Reachable peers first (the publisher's).
    ReachableFirst,
}

/// How long a viewer waits for an announcer's answer before asking another. The lab showed
/// first asks unanswered now and then (the connection the `have` came on closing with its
/// segment's torrent): with 1 s, those manifests reached their viewer 1.1-1.2 s late.
pub const VIEWER_RETRY: Duration = Duration::from_millis(250);

/// Document bytes one message carries: librqbit's peer messages hold 16 KiB and a few bytes,
/// and the message's own keys take a few dozen. A larger document goes in parts.
pub const PART: usize = 16_000;

/// The largest document the exchange carries (in parts of [`PART`] bytes): a window of five
/// one-minute segments at 1 Mbit/s makes about 23 KB, this is ten times more. A peer's
/// [`Reassembly`] holds at most one document this large.
pub const MAX_DOCUMENT: usize = 256 * 1024;

impl GossipConfig {
    /// The publisher's: push to 8 peers, announce nothing. Its cost per manifest is eight
    /// documents (deltas, mostly) whatever the audience (plus answers to `want`s, which viewers
    /// send to announcers, and the publisher announces nothing). Measured in the lab
    /// (docs/experiments.md, "Deltas, each node's own order, wider pushes"): with deltas, 8
    /// pushes here and 6 from each viewer put the last viewer of 20 about half as far behind the
    /// first as 4 and 3, for about 3 KB more a segment here and 1.5 KB more at each viewer.
    pub fn publisher() -> Self {
        Self {
            push_to: 8,
            announce: false,
            pull_after: Duration::from_millis(200),
            retry_after: Duration::from_secs(1),
            max_asks: 5,
            max_document: MAX_DOCUMENT,
            nat_order: NatOrder::ReachableFirst,
            seed: 0,
        }
    }

    /// This configuration with a seed of the system's randomness ([`GossipConfig::seed`]), unless
    /// it has one (not 0) already.
    pub fn seeded(self) -> Self {
        if self.seed != 0 {
            return self;
        }
        let mut seed = [0u8; 8];
        // Without randomness (never seen), every node keeps the one order: pushes still reach
        // everyone, with more duplicates.
        let _ = getrandom::getrandom(&mut seed);
        Self {
            seed: u64::from_le_bytes(seed),
            ..self
        }
    }

    /// A viewer's: push to 12 peers, announce to the rest, and ask as soon as it hears of a
    /// newer manifest. Measured in the lab (docs/experiments.md, "Manifests without the
    /// publisher's server"): waiting 200 ms for a push first put the last viewer about 400 ms
    /// behind the first at 10 viewers and a second behind at 20, where asking at once costs a
    /// round trip and at most a duplicate document when a push was on its way. 12 pushes since
    /// the tenth session (6 before): behind NAT, where a viewer is reached only on the
    /// connections it opened, the last viewers to learn a manifest were those behind NAT that
    /// no push reached; 12 halved the spread's p95 at RTT 50 and 150 for about 5 KB more control
    /// traffic per viewer and segment ("Tenth session" there).
    pub fn viewer() -> Self {
        Self {
            push_to: 12,
            announce: true,
            pull_after: Duration::ZERO,
            retry_after: VIEWER_RETRY,
            max_asks: 8,
            nat_order: NatOrder::BehindNatFirst,
            ..Self::publisher()
        }
    }
}

/// What a [`Gossip`] has done, for the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GossipStats {
    /// Documents sent (pushed or asked for), deltas included.
    pub manifests_sent: u64,
    /// Of them, deltas.
    pub deltas_sent: u64,
    /// Of them, asked for by a `want`.
    pub manifests_answered: u64,
    /// Bytes of every message sent (payloads; each costs 6 more bytes of BitTorrent framing).
    pub bytes_sent: u64,
    /// Messages sent (each part of a document sent in parts is one).
    pub messages_sent: u64,
    /// `have` messages sent.
    pub haves_sent: u64,
    /// `want` messages sent.
    pub wants_sent: u64,
    /// Documents received that were not newer than the one held.
    pub duplicates: u64,
    /// Bytes of every message taken (of a document sent in parts, all its parts: the bytes of
    /// parts never completed are not counted).
    pub bytes_received: u64,
    /// Messages from peers not added (ignored).
    pub from_unknown: u64,
    /// Documents accepted but too large to carry ([`GossipConfig::max_document`]).
    pub too_large: u64,
}

#[derive(Clone, Debug, Default)]
struct PeerState {
    /// The newest sequence number the peer showed it holds, or was sent.
    known: Option<u64>,
    /// The newest manifest sent to it whole (a `want` is answered once per document).
    sent_whole: Option<u64>,
    /// When it was last pushed a manifest (a counter): the longest ago go first.
    last_push: u64,
    /// The stream's source (the publisher's seeder): it holds every manifest first and
    /// announces none, so it is told with a `have`, never pushed to ([`Gossip::add_source`]).
    source: bool,
    /// It said it is behind a NAT ([`Message::BehindNat`]; [`NatOrder`]).
    behind_nat: bool,
}

#[derive(Clone, Debug)]
struct Pending<P> {
    seq: u64,
    due: Instant,
    /// Peers that announced `seq` or newer, in the order they did.
    announcers: Vec<P>,
    asked: Vec<P>,
    /// Asks made (or due with nobody to ask).
    attempts: u32,
}

/// One node's manifest exchange with its peers, identified by `P` (an address).
#[derive(Debug)]
pub struct Gossip<P> {
    config: GossipConfig,
    newest: Option<(u64, Arc<[u8]>)>,
    /// The newest manifest as a delta, and the sequence number it applies to.
    delta: Option<(u64, Arc<[u8]>)>,
    peers: BTreeMap<P, PeerState>,
    pending: Option<Pending<P>>,
    out: VecDeque<(P, Message)>,
    pushes: u64,
    stats: GossipStats,
    /// This node is behind a NAT, and tells each peer so ([`Gossip::set_behind_nat`]).
    behind_nat: bool,
}

impl<P: Copy + Ord + std::hash::Hash + std::fmt::Debug> Gossip<P> {
    /// A node holding no manifest yet.
    pub fn new(config: GossipConfig) -> Self {
        Self {
            config,
            newest: None,
            delta: None,
            peers: BTreeMap::new(),
            pending: None,
            out: VecDeque::new(),
            pushes: 0,
            stats: GossipStats::default(),
            behind_nat: false,
        }
    }

    /// The newest manifest's sequence number.
    pub fn newest_seq(&self) -> Option<u64> {
        self.newest.as_ref().map(|(s, _)| *s)
    }

    /// The counters.
    pub fn stats(&self) -> GossipStats {
        self.stats
    }

    /// Peers known.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }

    /// A peer that speaks the extension; a viewer announces its newest manifest to it.
    pub fn add_peer(&mut self, peer: P) {
        if self.peers.contains_key(&peer) {
            return;
        }
        self.peers.insert(peer, PeerState::default());
        if self.behind_nat {
            self.send(peer, Message::BehindNat(true));
        }
        if let (true, Some((seq, _))) = (self.config.announce, &self.newest) {
            let seq = *seq;
            self.send(peer, Message::Have(seq));
        }
    }

    /// Adds `peer` as the stream's source (the publisher's seeder), or marks it if added: it
    /// is the origin of every manifest and announces none, so as an ordinary peer it would look
    /// forever behind and take pushes it has no use for. A source is never pushed to: it is
    /// sent a `have` instead (if this node announces), which tells it as much of what this node
    /// holds (so that its own pushes here can be deltas) for a few bytes. Its messages are
    /// taken as any peer's.
    pub fn add_source(&mut self, peer: P) {
        self.add_peer(peer);
        if let Some(s) = self.peers.get_mut(&peer) {
            s.source = true;
        }
    }

    /// This node is behind a NAT (`true`: reached only on the connections it opens), or no
    /// longer. On a change every peer is told ([`Message::BehindNat`]), and while it is, each
    /// peer added is told first ([`NatOrder`]).
    pub fn set_behind_nat(&mut self, behind_nat: bool) {
        if self.behind_nat == behind_nat {
            return;
        }
        self.behind_nat = behind_nat;
        let peers: Vec<P> = self.peers.keys().copied().collect();
        for peer in peers {
            self.send(peer, Message::BehindNat(behind_nat));
        }
    }

    /// Peers that said they are behind a NAT.
    pub fn peers_behind_nat(&self) -> usize {
        self.peers.values().filter(|s| s.behind_nat).count()
    }

    /// A peer gone (every connection to it closed).
    pub fn remove_peer(&mut self, peer: P) {
        self.peers.remove(&peer);
        if let Some(p) = &mut self.pending {
            p.announcers.retain(|a| *a != peer);
        }
    }

    /// A message from `peer`, `len` bytes on the wire; one from a peer not added is ignored (a
    /// peer speaks the exchange once its extended handshake named it). Returns the document of
    /// a manifest newer than the one held, or of the same sequence number with other bytes (an
    /// equivocation, for the verifier to name), for the caller to verify and, if it passes,
    /// [`accept`](Self::accept).
    pub fn on_message(
        &mut self,
        peer: P,
        msg: Message,
        len: usize,
        now: Instant,
    ) -> Option<Arc<[u8]>> {
        self.stats.bytes_received += len as u64;
        if !self.peers.contains_key(&peer) {
            self.stats.from_unknown += 1;
            return None;
        }
        let newest = self.newest_seq();
        match msg {
            Message::BehindNat(nat) => {
                if let Some(s) = self.peers.get_mut(&peer) {
                    s.behind_nat = nat;
                }
                None
            }
            Message::Have(seq) => {
                self.saw(peer, seq);
                if newest.is_some_and(|n| n >= seq) {
                    return None;
                }
                let due = if newest.is_none() {
                    now
                } else {
                    now + self.config.pull_after
                };
                match &mut self.pending {
                    Some(p) => {
                        if seq > p.seq {
                            p.seq = seq;
                            p.asked.clear();
                            p.announcers.clear();
                            p.attempts = 0;
                        }
                        if !p.announcers.contains(&peer) {
                            p.announcers.push(peer);
                        }
                    }
                    None => {
                        self.pending = Some(Pending {
                            seq,
                            due,
                            announcers: vec![peer],
                            asked: Vec::new(),
                            attempts: 0,
                        })
                    }
                }
                None
            }
            Message::Want(seq) => {
                // Answered once per document and peer: a peer that asks again for what it was
                // sent gets nothing (so wants cannot be turned into a flood of documents).
                // Whole: the peer asks because it could not take what it was told of.
                if let Some((have, doc)) = self.newest.clone() {
                    let sent = self.peers.get(&peer).and_then(|s| s.sent_whole);
                    let carried = doc.len() <= self.config.max_document;
                    if have >= seq && sent.is_none_or(|k| k < have) && carried {
                        self.stats.manifests_answered += 1;
                        self.saw(peer, have);
                        if let Some(s) = self.peers.get_mut(&peer) {
                            s.sent_whole = Some(have);
                        }
                        self.send(peer, Message::Manifest { seq: have, doc });
                    }
                }
                None
            }
            Message::Manifest { seq, doc } => {
                self.saw(peer, seq);
                match &self.newest {
                    Some((n, held)) if *n == seq && **held != *doc => Some(doc),
                    Some((n, _)) if *n >= seq => {
                        self.stats.duplicates += 1;
                        None
                    }
                    _ => Some(doc),
                }
            }
            Message::Delta { seq, delta } => {
                self.saw(peer, seq);
                // Another delta of the document held is its bytes, not an equivocation: the
                // caller rebuilds and verifies only newer ones.
                if newest.is_some_and(|n| n >= seq) {
                    self.stats.duplicates += 1;
                    return None;
                }
                Some(delta)
            }
        }
    }

    /// A delta from `peer` for manifest `seq` that the caller could not apply (it names a base
    /// other than the manifest held): taken as the peer's announcement of `seq`, so the whole
    /// document is asked for (of the peer, or another announcer).
    pub fn delta_unusable(&mut self, peer: P, seq: u64, now: Instant) {
        let _ = self.on_message(peer, Message::Have(seq), 0, now);
    }

    /// A manifest accepted (verified), from `from` (None: from elsewhere: HTTP, the publisher's
    /// own pipeline). If newer than the one held, it is pushed and announced.
    pub fn accept(&mut self, seq: u64, doc: Arc<[u8]>, from: Option<P>) {
        self.accept_with_delta(seq, doc, from, None);
    }

    /// [`accept_with_delta`](Self::accept_with_delta) for a verified manifest, its delta made from
    /// `previous` (the manifest accepted before it), if there is one and a delta saves anything.
    pub fn accept_manifest(
        &mut self,
        m: &crate::SignedManifest,
        previous: Option<&crate::SignedManifest>,
        from: Option<P>,
    ) {
        let delta = previous.and_then(|p| {
            let d = crate::manifest::delta::encode(&p.manifest, m)?;
            Some((p.manifest.seq, Arc::<[u8]>::from(d)))
        });
        self.accept_with_delta(m.manifest.seq, m.bytes.clone().into(), from, delta);
    }

    /// [`accept`](Self::accept), with the manifest also as a delta from manifest `base`
    /// (`delta`: `(base, bytes)`): pushed as the delta to peers known to hold `base`, whole to
    /// the others.
    pub fn accept_with_delta(
        &mut self,
        seq: u64,
        doc: Arc<[u8]>,
        from: Option<P>,
        delta: Option<(u64, Arc<[u8]>)>,
    ) {
        if let Some(from) = from {
            self.saw(from, seq);
        }
        if self.newest_seq().is_some_and(|n| n >= seq) {
            return;
        }
        self.newest = Some((seq, doc.clone()));
        self.delta = delta.filter(|(base, d)| *base < seq && d.len() <= PART);
        // Whatever was announced: a newer one will be announced again.
        self.pending = None;
        if doc.len() > self.config.max_document {
            self.stats.too_large += 1;
            return;
        }
        let seed = self.config.seed;
        let order = |p: &P| {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            (seed, p).hash(&mut h);
            h.finish()
        };
        // Peers behind a NAT first or last ([`NatOrder`]), then the ones pushed to longest ago,
        // in this node's own order.
        let nat_first = self.config.nat_order == NatOrder::BehindNatFirst;
        let mut behind: Vec<(bool, u64, u64, P)> = self
            .peers
            .iter()
            .filter(|(_, s)| s.known.is_none_or(|k| k < seq))
            .map(|(p, s)| (s.behind_nat != nat_first, s.last_push, order(p), *p))
            .collect();
        behind.sort();
        // Sources are told with a `have`, never pushed to.
        let (sources, behind): (Vec<_>, Vec<_>) = behind
            .into_iter()
            .partition(|(_, _, _, p)| self.peers.get(p).is_some_and(|s| s.source));
        if self.config.announce {
            for (_, _, _, peer) in sources {
                self.send(peer, Message::Have(seq));
            }
        }
        for (i, (_, _, _, peer)) in behind.into_iter().enumerate() {
            if i < self.config.push_to {
                self.pushes += 1;
                let mut msg = Message::Manifest {
                    seq,
                    doc: doc.clone(),
                };
                if let Some(s) = self.peers.get_mut(&peer) {
                    s.last_push = self.pushes;
                    match &self.delta {
                        Some((base, delta)) if s.known == Some(*base) => {
                            msg = Message::Delta {
                                seq,
                                delta: delta.clone(),
                            }
                        }
                        _ => s.sent_whole = Some(seq),
                    }
                    s.known = Some(seq);
                }
                self.send(peer, msg);
            } else if self.config.announce {
                self.send(peer, Message::Have(seq));
            } else {
                break;
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.due)
    }

    /// Asks an announcer for a manifest that was announced and did not come.
    pub fn handle_timeout(&mut self, now: Instant) {
        let retry = self.config.retry_after;
        let max = self.config.max_asks;
        let Some(p) = &mut self.pending else {
            return;
        };
        if p.due > now {
            return;
        }
        if p.attempts >= max {
            self.pending = None;
            return;
        }
        p.attempts += 1;
        let next = p
            .announcers
            .iter()
            .find(|a| !p.asked.contains(a))
            .or_else(|| p.announcers.first())
            .copied();
        p.due = now + retry;
        if let Some(peer) = next {
            p.asked.push(peer);
            // Anything newer than what is held: an announcer that claimed a sequence number it
            // does not have (or none has yet) still answers with its newest.
            let want = self.newest.as_ref().map_or(0, |(n, _)| n + 1);
            self.send(peer, Message::Want(want));
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<(P, Message)> {
        self.out.pop_front()
    }

    fn saw(&mut self, peer: P, seq: u64) {
        if let Some(s) = self.peers.get_mut(&peer) {
            s.known = Some(s.known.map_or(seq, |k| k.max(seq)));
        }
    }

    fn send(&mut self, peer: P, msg: Message) {
        let payloads = msg.payloads();
        self.stats.messages_sent += payloads.len() as u64;
        self.stats.bytes_sent += payloads.iter().map(|p| p.len() as u64).sum::<u64>();
        match &msg {
            Message::Have(_) => self.stats.haves_sent += 1,
            Message::Want(_) => self.stats.wants_sent += 1,
            Message::BehindNat(_) => {}
            Message::Manifest { .. } => self.stats.manifests_sent += 1,
            Message::Delta { .. } => {
                self.stats.manifests_sent += 1;
                self.stats.deltas_sent += 1;
            }
        }
        self.out.push_back((peer, msg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    fn doc(seq: u64) -> Arc<[u8]> {
        format!("manifest {seq}").into_bytes().into()
    }

    #[test]
    fn messages_round_trip_and_malformed_ones_are_refused() {
        for m in [
            Message::Have(3),
            Message::Want(i64::MAX as u64),
            Message::Manifest {
                seq: 9,
                doc: doc(9),
            },
            Message::Delta {
                seq: 9,
                delta: doc(9),
            },
            Message::BehindNat(true),
            Message::BehindNat(false),
        ] {
            assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
        assert_eq!(Message::BehindNat(true).encode(), b"d3:nati1ee");
        assert_eq!(Message::Have(3).encode(), b"d4:havei3ee");
        // Unknown keys are ignored.
        assert_eq!(
            Message::decode(b"d4:havei3e5:laterli1eee").unwrap(),
            Message::Have(3)
        );
        for bad in [
            &b"d4:havei3e4:wanti4ee"[..],
            b"d5:delta1:x8:manifest1:x3:seqi1ee",
            b"d2:ati0e5:delta1:x3:seqi1e4:sizei1ee",
            b"d8:manifest3:abce",
            b"de",
            b"i3e",
            b"d4:have3:abce",
            b"d3:nati2ee",
            b"d4:havei3e3:nati1ee",
        ] {
            assert!(
                matches!(Message::decode(bad), Err(ManifestError::Malformed { .. })),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn big(seq: u64, len: usize) -> Arc<[u8]> {
        (0..len)
            .map(|i| (i as u64 * 31 + seq) as u8)
            .collect::<Vec<_>>()
            .into()
    }

    #[test]
    fn a_document_over_a_part_goes_in_parts_and_comes_back_whole() {
        let m = Message::Manifest {
            seq: 7,
            doc: big(7, 2 * PART + 123),
        };
        let parts = m.payloads();
        assert_eq!(parts.len(), 3);
        assert!(
            parts.iter().all(|p| p.len() <= PART + 100),
            "a part too long"
        );
        // A small document stays one whole message, as peers of earlier versions send it.
        let small = Message::Manifest {
            seq: 1,
            doc: doc(1),
        };
        assert_eq!(small.payloads(), vec![small.encode()]);
        // A part is not a whole message.
        assert!(matches!(
            Message::decode(&parts[0]),
            Err(ManifestError::Malformed { .. })
        ));

        let mut r = Reassembly::default();
        assert!(r.push(&parts[0]).unwrap().is_none());
        // Whole messages pass between the parts.
        let have = Message::Have(9).encode();
        assert_eq!(r.push(&have).unwrap(), Some((Message::Have(9), have.len())));
        assert!(r.push(&parts[1]).unwrap().is_none());
        let (got, carried) = r.push(&parts[2]).unwrap().expect("the last part");
        assert_eq!(got, m);
        assert_eq!(carried, parts.iter().map(Vec::len).sum::<usize>());
        assert_eq!(r.dropped(), 0);

        // Out of order: the document is dropped, and the next one starts over.
        assert!(r.push(&parts[0]).unwrap().is_none());
        assert!(r.push(&parts[2]).unwrap().is_none());
        assert!(
            r.push(&parts[1]).unwrap().is_none(),
            "no document to continue"
        );
        assert_eq!(r.dropped(), 2);
        // A new document's first part replaces one left unfinished.
        let other = Message::Manifest {
            seq: 8,
            doc: big(8, PART + 1),
        };
        let next = other.payloads();
        assert!(r.push(&parts[0]).unwrap().is_none());
        assert!(r.push(&next[0]).unwrap().is_none());
        assert_eq!(r.push(&next[1]).unwrap().map(|(m, _)| m), Some(other));
    }

    #[test]
    fn parts_past_their_size_or_over_the_limit_are_refused() {
        let part = |seq: u64, at: u64, size: u64, bytes: &[u8]| {
            let wire = MessageWire {
                at: Some(at),
                manifest: Some(ByteBuf::from(bytes.to_vec())),
                seq: Some(seq),
                size: Some(size),
                ..Default::default()
            };
            serde_bencode::to_bytes(&wire).unwrap()
        };
        let mut r = Reassembly::default();
        assert!(matches!(
            r.push(&part(1, 0, MAX_DOCUMENT as u64 + 1, b"abc")),
            Err(ManifestError::TooLarge { found, max: MAX_DOCUMENT }) if found == MAX_DOCUMENT + 1
        ));
        for (at, size, bytes) in [(0, 2, &b"abc"[..]), (u64::MAX, 10, b"a"), (0, 10, b"")] {
            assert!(
                matches!(
                    r.push(&part(1, at, size, bytes)),
                    Err(ManifestError::Malformed { .. })
                ),
                "at {at} size {size}"
            );
        }
        // A refused part drops the document being put together.
        assert!(r.push(&part(2, 0, 6, b"abc")).unwrap().is_none());
        assert!(r.push(&part(2, 3, 6, b"defg")).is_err());
        assert!(r.push(&part(2, 3, 6, b"def")).unwrap().is_none());
        // A document sent in one part is fine.
        assert_eq!(
            r.push(&part(3, 0, 3, b"xyz")).unwrap().map(|(m, _)| m),
            Some(Message::Manifest {
                seq: 3,
                doc: b"xyz".to_vec().into()
            })
        );
    }

    /// A message in flight: delivery time, order, from, to, payload.
    type InFlight = Reverse<(Instant, u64, usize, usize, Vec<u8>)>;

    /// A tiny discrete-event network: node 0 is the publisher, connected to every viewer; each
    /// viewer is also connected to `degree` others. Every message takes `one_way`.
    struct Net {
        nodes: Vec<Gossip<usize>>,
        queue: BinaryHeap<InFlight>,
        order: u64,
        one_way: Duration,
        got_at: Vec<Option<Instant>>,
        /// Per (receiver, sender): the receiver's reassembly of what the sender sends.
        parts: BTreeMap<(usize, usize), Reassembly>,
    }

    impl Net {
        fn new(viewers: usize, degree: usize, viewer: GossipConfig, seed: u64) -> Self {
            let mut nodes = vec![Gossip::new(GossipConfig::publisher())];
            nodes.extend((0..viewers).map(|v| {
                Gossip::new(GossipConfig {
                    seed: seed ^ v as u64,
                    ..viewer
                })
            }));
            let mut rng = seed | 1;
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            for v in 1..=viewers {
                nodes[0].add_peer(v);
                nodes[v].add_peer(0);
                for _ in 0..degree {
                    let w = 1 + (next() as usize % viewers);
                    if w != v {
                        nodes[v].add_peer(w);
                        nodes[w].add_peer(v);
                    }
                }
            }
            Self {
                got_at: vec![None; nodes.len()],
                nodes,
                queue: BinaryHeap::new(),
                order: 0,
                one_way: Duration::from_millis(50),
                parts: BTreeMap::new(),
            }
        }

        fn flush(&mut self, from: usize, now: Instant) {
            while let Some((to, msg)) = self.nodes[from].poll_transmit() {
                for payload in msg.payloads() {
                    self.order += 1;
                    self.queue
                        .push(Reverse((now + self.one_way, self.order, from, to, payload)));
                }
            }
        }

        /// Runs until nothing is left to deliver or time out; returns the end time.
        fn run(&mut self, start: Instant) -> Instant {
            let mut now = start;
            for n in 0..self.nodes.len() {
                self.flush(n, now);
            }
            for _ in 0..1_000_000 {
                let next_msg = self.queue.peek().map(|Reverse(e)| e.0);
                let next_timer = (0..self.nodes.len())
                    .filter_map(|n| self.nodes[n].poll_timeout().map(|t| (t, n)))
                    .min();
                match (next_msg, next_timer) {
                    (None, None) => return now,
                    (Some(m), t) if t.is_none_or(|(t, _)| m <= t) => {
                        let Reverse((at, _, from, to, bytes)) = self.queue.pop().unwrap();
                        now = at;
                        let r = self.parts.entry((to, from)).or_default();
                        let Some((msg, len)) = r.push(&bytes).unwrap() else {
                            continue;
                        };
                        if let Some(d) = self.nodes[to].on_message(from, msg.clone(), len, now) {
                            let Message::Manifest { seq, .. } = msg else {
                                unreachable!()
                            };
                            self.nodes[to].accept(seq, d, Some(from));
                            self.got_at[to].get_or_insert(now);
                        }
                        self.flush(to, now);
                    }
                    (_, Some((t, n))) => {
                        now = t;
                        self.nodes[n].handle_timeout(now);
                        self.flush(n, now);
                    }
                    (Some(_), None) => unreachable!(),
                }
            }
            panic!("the network did not settle");
        }
    }

    #[test]
    fn the_publisher_sends_eight_documents_whatever_the_audience_and_everyone_gets_one() {
        let start = Instant::now();
        let mut firsts = Vec::new();
        // Small documents, and one of three parts (a window of one-minute segments).
        for (viewers, doc) in [
            (10, doc(1)),
            (100, doc(1)),
            (1000, doc(1)),
            (100, big(1, 2 * PART + 5_000)),
        ] {
            let mut net = Net::new(viewers, 8, GossipConfig::viewer(), 7 + viewers as u64);
            net.nodes[0].accept(1, doc.clone(), None);
            net.run(start);
            let publisher = net.nodes[0].stats();
            assert_eq!(publisher.manifests_sent, 8, "{viewers} viewers");
            let sent_bytes = 8 * Message::Manifest { seq: 1, doc }
                .payloads()
                .iter()
                .map(|p| p.len() as u64)
                .sum::<u64>();
            assert_eq!(publisher.bytes_sent, sent_bytes, "{viewers} viewers");
            assert_eq!(publisher.haves_sent, 0);
            let missing = (1..=viewers).filter(|&v| net.nodes[v].newest_seq() != Some(1));
            assert_eq!(missing.count(), 0, "{viewers} viewers: some never got it");
            // Each viewer receives few copies, whatever the audience: pushes go only to peers
            // not known to hold it, so a viewer receives about what one sends (12), no more.
            let received: u64 = (1..=viewers)
                .map(|v| net.nodes[v].stats().duplicates + 1)
                .sum();
            let per_viewer = received as f64 / viewers as f64;
            let pushes = GossipConfig::viewer().push_to as f64;
            assert!(
                per_viewer < pushes + 1.0,
                "{viewers} viewers: {per_viewer} copies each"
            );
            let last = net.got_at.iter().flatten().max().unwrap();
            let first = net.got_at.iter().flatten().min().unwrap();
            firsts.push((viewers, *last - *first));
        }
        // The spread takes a few hops (50 ms each), growing with the log of the audience: with
        // 8 and 6 pushes, first to last 50, 150 and 250 ms at 10, 100 and 1,000 viewers. The
        // bound is 6 pushes' (the viewers' default until the tenth session): more reach as far
        // in no more hops.
        for (viewers, spread) in firsts {
            // The publisher's 8, then 6 or more for each: one hop more for the viewers that no
            // push reached (a `have`, a `want`, the answer).
            let hops = 2 + (viewers as f64 / 8.0).log(6.0).ceil() as u32;
            assert!(
                spread <= Duration::from_millis(50) * hops,
                "{viewers}: {spread:?}"
            );
        }
    }

    /// The lab's network behind NAT: every odd viewer is behind a NAT, linked only to the
    /// publisher and to `dials` reachable viewers (the connections it opened); reachable
    /// viewers are linked to each other. Those behind NAT say so when `tell`.
    fn behind_nats(viewers: usize, dials: usize, seed: u64, tell: bool) -> Net {
        let mut net = Net::new(viewers, 0, GossipConfig::viewer(), seed);
        let reachable: Vec<usize> = (1..=viewers).filter(|v| v % 2 == 0).collect();
        for &v in &reachable {
            for &w in &reachable {
                if v != w {
                    net.nodes[v].add_peer(w);
                }
            }
        }
        let mut rng = seed | 1;
        for v in (1..=viewers).filter(|v| v % 2 == 1) {
            for _ in 0..dials {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let w = reachable[rng as usize % reachable.len()];
                net.nodes[v].add_peer(w);
                net.nodes[w].add_peer(v);
            }
            if tell {
                net.nodes[v].set_behind_nat(true);
            }
        }
        net
    }

    #[test]
    fn peers_behind_nat_are_pushed_to_first_and_the_last_viewer_learns_sooner() {
        let t0 = Instant::now();
        // One node: the peers that said they are behind NAT take its pushes, others a `have`.
        let mut g: Gossip<u8> = Gossip::new(GossipConfig {
            push_to: 2,
            ..GossipConfig::viewer()
        });
        for p in 1..=6 {
            g.add_peer(p);
        }
        g.on_message(3, Message::BehindNat(true), 8, t0);
        g.on_message(5, Message::BehindNat(true), 8, t0);
        g.on_message(6, Message::BehindNat(true), 8, t0);
        g.on_message(6, Message::BehindNat(false), 8, t0);
        assert_eq!(g.peers_behind_nat(), 2);
        g.accept(1, doc(1), None);
        let pushed: Vec<u8> = std::iter::from_fn(|| g.poll_transmit())
            .filter(|(_, m)| matches!(m, Message::Manifest { .. }))
            .map(|(p, _)| p)
            .collect();
        assert_eq!(pushed, [3, 5]);
        // The publisher's pushes go to the others first.
        let mut p: Gossip<u8> = Gossip::new(GossipConfig {
            push_to: 3,
            ..GossipConfig::publisher()
        });
        for peer in 1..=4 {
            p.add_peer(peer);
        }
        for peer in [1, 2, 4] {
            p.on_message(peer, Message::BehindNat(true), 8, t0);
        }
        p.accept(1, doc(1), None);
        let pushed: Vec<u8> = std::iter::from_fn(|| p.poll_transmit())
            .map(|(p, _)| p)
            .collect();
        assert_eq!(pushed.len(), 3);
        assert_eq!(pushed[0], 3);
        // A node behind NAT tells its peers once, and each peer it meets.
        let mut n: Gossip<u8> = Gossip::new(GossipConfig::viewer());
        n.add_peer(1);
        n.set_behind_nat(true);
        n.set_behind_nat(true);
        n.add_peer(2);
        let told: Vec<_> = std::iter::from_fn(|| n.poll_transmit()).collect();
        assert_eq!(
            told,
            [(1, Message::BehindNat(true)), (2, Message::BehindNat(true))]
        );
        n.set_behind_nat(false);
        assert_eq!(
            std::iter::from_fn(|| n.poll_transmit()).collect::<Vec<_>>(),
            [
                (1, Message::BehindNat(false)),
                (2, Message::BehindNat(false))
            ]
        );
        // On the lab's network (20 viewers, half behind NAT, each of those dialling 4 reachable
        // ones; 50 ms one way), over 20 draws: when those behind NAT say so, every viewer has
        // it within two hops (the publisher's push, then a reachable viewer's), in every draw;
        // when they do not, 135 ms on average (some left for a third hop, or a `have` and a
        // `want`).
        let (mut told, mut silent) = (Duration::ZERO, Duration::ZERO);
        for seed in 1..=20 {
            let last = |tell: bool| {
                let mut net = behind_nats(20, 4, seed, tell);
                net.run(t0);
                net.nodes[0].accept(1, doc(1), None);
                let end = net.run(t0);
                assert!(net.nodes.iter().all(|n| n.newest_seq() == Some(1)));
                *net.got_at.iter().flatten().max().unwrap() - end.min(t0)
            };
            let (a, b) = (last(true), last(false));
            assert!(a <= b, "seed {seed}: {a:?} told, {b:?} not");
            assert!(a <= Duration::from_millis(100), "seed {seed}: {a:?} told");
            told += a;
            silent += b;
        }
        assert!(told < silent, "{told:?} told, {silent:?} not");
    }

    #[test]
    fn the_source_is_told_with_a_have_never_pushed_to_and_its_pushes_are_taken() {
        let t0 = Instant::now();
        let mut g: Gossip<u8> = Gossip::new(GossipConfig {
            push_to: 1,
            ..GossipConfig::viewer()
        });
        g.accept(4, doc(4), None);
        g.add_source(9);
        g.add_peer(1);
        g.add_peer(2);
        // Everyone met is told of 4, the source too (so that its pushes can be deltas).
        let told: Vec<_> = std::iter::from_fn(|| g.poll_transmit()).collect();
        assert_eq!(
            told,
            vec![
                (9, Message::Have(4)),
                (1, Message::Have(4)),
                (2, Message::Have(4))
            ]
        );
        // A push from the source is taken like any other, and spread to the others only.
        assert_eq!(
            g.on_message(
                9,
                Message::Manifest {
                    seq: 5,
                    doc: doc(5)
                },
                20,
                t0
            ),
            Some(doc(5))
        );
        g.accept(5, doc(5), Some(9));
        let sent: Vec<_> = std::iter::from_fn(|| g.poll_transmit()).collect();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(sent.iter().all(|(p, _)| *p != 9), "{sent:?}");
        // A manifest from another peer: the source, which never showed it holds it, gets a
        // `have`, even with room to push to everyone.
        let mut g: Gossip<u8> = Gossip::new(GossipConfig::viewer());
        g.add_peer(9);
        g.add_source(9); // marked after it was added: the same
        g.add_peer(1);
        g.on_message(
            1,
            Message::Manifest {
                seq: 6,
                doc: doc(6),
            },
            20,
            t0,
        );
        g.accept(6, doc(6), Some(1));
        assert_eq!(
            std::iter::from_fn(|| g.poll_transmit()).collect::<Vec<_>>(),
            vec![(9, Message::Have(6))]
        );
        assert_eq!(g.peers(), 2);
        // The publisher (which announces nothing) sends its source nothing at all.
        let mut p: Gossip<u8> = Gossip::new(GossipConfig::publisher());
        p.add_source(9);
        p.accept(7, doc(7), None);
        assert_eq!(p.poll_transmit(), None);
    }

    #[test]
    fn a_push_is_a_delta_to_peers_holding_its_base_and_whole_to_the_others() {
        let t0 = Instant::now();
        let mut g: Gossip<u8> = Gossip::new(GossipConfig::viewer());
        g.accept(4, doc(4), None);
        g.add_peer(1);
        g.add_peer(2);
        while g.poll_transmit().is_some() {}
        // Peer 1 shows it holds 4; peer 2 shows 3.
        g.on_message(1, Message::Have(4), 11, t0);
        g.on_message(2, Message::Have(3), 11, t0);
        let delta: Arc<[u8]> = b"d4:basei4e...".to_vec().into();
        g.accept_with_delta(5, doc(5), None, Some((4, delta.clone())));
        let mut sent: Vec<_> = std::iter::from_fn(|| g.poll_transmit()).collect();
        sent.sort_by_key(|(p, _)| *p);
        assert_eq!(
            sent,
            vec![
                (
                    1,
                    Message::Delta {
                        seq: 5,
                        delta: delta.clone()
                    }
                ),
                (
                    2,
                    Message::Manifest {
                        seq: 5,
                        doc: doc(5)
                    }
                ),
            ]
        );
        assert_eq!(g.stats().deltas_sent, 1);
        assert_eq!(g.stats().manifests_sent, 2);
        // Peer 1 could not apply it: its want is answered whole, once; peer 2's not at all
        // (it was sent the document whole).
        g.on_message(1, Message::Want(5), 11, t0);
        g.on_message(1, Message::Want(5), 11, t0);
        g.on_message(2, Message::Want(5), 11, t0);
        assert_eq!(
            std::iter::from_fn(|| g.poll_transmit()).collect::<Vec<_>>(),
            vec![(
                1,
                Message::Manifest {
                    seq: 5,
                    doc: doc(5)
                }
            )]
        );
        // A delta too large for one message is not used.
        g.accept_with_delta(6, doc(6), None, Some((5, vec![0; PART + 1].into())));
        assert!(std::iter::from_fn(|| g.poll_transmit())
            .all(|(_, m)| matches!(m, Message::Manifest { .. })));
    }

    #[test]
    fn a_delta_not_applied_is_an_announcement_and_the_document_is_asked_for_whole() {
        let t0 = Instant::now();
        let mut g: Gossip<u8> = Gossip::new(GossipConfig::viewer());
        g.accept(2, doc(2), None);
        g.add_peer(1);
        while g.poll_transmit().is_some() {}
        let delta: Arc<[u8]> = b"d4:basei3e...".to_vec().into();
        let got = g.on_message(
            1,
            Message::Delta {
                seq: 4,
                delta: delta.clone(),
            },
            20,
            t0,
        );
        assert_eq!(got, Some(delta.clone()), "newer: for the caller to apply");
        // It names base 3; this node holds 2.
        g.delta_unusable(1, 4, t0);
        g.handle_timeout(t0);
        assert_eq!(g.poll_transmit(), Some((1, Message::Want(3))));
        // The document comes whole; a delta of it later is a duplicate, not an equivocation.
        let d = g.on_message(
            1,
            Message::Manifest {
                seq: 4,
                doc: doc(4),
            },
            30,
            t0,
        );
        g.accept(4, d.unwrap(), Some(1));
        assert_eq!(
            g.on_message(1, Message::Delta { seq: 4, delta }, 20, t0),
            None
        );
        assert_eq!(g.stats().duplicates, 1);
    }

    #[test]
    fn nodes_with_their_own_order_push_to_different_peers() {
        let start = Instant::now();
        let run = |same: bool| {
            // Everyone connected to (nearly) everyone, as in the lab at 20 viewers, pushing to
            // 6 (the viewers' default until the tenth session): with 12 of 19 peers, pushes
            // reach nearly everyone whatever the order.
            let config = GossipConfig {
                push_to: 6,
                ..GossipConfig::viewer()
            };
            let mut net = Net::new(20, 40, config, 11);
            if same {
                for n in &mut net.nodes {
                    n.config.seed = 0;
                }
            }
            for seq in 1..=5 {
                net.nodes[0].accept(seq, doc(seq), None);
                net.run(start);
            }
            let (mut wants, mut duplicates) = (0, 0);
            for n in &net.nodes[1..] {
                wants += n.stats().wants_sent;
                duplicates += n.stats().duplicates;
            }
            (wants, duplicates)
        };
        let (own, one) = (run(false), run(true));
        // Fewer peers left to ask (their pushes went elsewhere), fewer copies received twice.
        assert!(
            own.0 < one.0 && own.1 < one.1,
            "own order {own:?}, one order {one:?}"
        );
    }

    #[test]
    fn a_have_is_followed_by_a_want_after_pull_after_then_another_announcer_then_giving_up() {
        let t0 = Instant::now();
        let config = GossipConfig {
            pull_after: Duration::from_millis(200),
            ..GossipConfig::viewer()
        };
        let mut g: Gossip<u8> = Gossip::new(config);
        g.accept(4, doc(4), None);
        g.add_peer(1);
        g.add_peer(2);
        while g.poll_transmit().is_some() {}
        assert!(g.on_message(1, Message::Have(5), 11, t0).is_none());
        assert!(g.on_message(2, Message::Have(5), 11, t0).is_none());
        assert_eq!(g.poll_timeout(), Some(t0 + config.pull_after));
        g.handle_timeout(t0 + config.pull_after / 2);
        assert!(g.poll_transmit().is_none(), "too early");
        let mut now = t0 + config.pull_after;
        g.handle_timeout(now);
        assert_eq!(g.poll_transmit(), Some((1, Message::Want(5))));
        now += config.retry_after;
        g.handle_timeout(now);
        assert_eq!(g.poll_transmit(), Some((2, Message::Want(5))));
        for _ in 2..config.max_asks {
            now += config.retry_after;
            g.handle_timeout(now);
            assert!(matches!(g.poll_transmit(), Some((_, Message::Want(5)))));
        }
        now += config.retry_after;
        g.handle_timeout(now);
        assert_eq!(
            g.poll_timeout(),
            None,
            "gave up after {} asks",
            config.max_asks
        );
        // The document arrives late anyway: accepted, and pushed to nobody (both peers said
        // they hold it), but to a third peer met since.
        g.add_peer(3);
        assert_eq!(g.poll_transmit(), Some((3, Message::Have(4))));
        let d = g.on_message(
            2,
            Message::Manifest {
                seq: 5,
                doc: doc(5),
            },
            30,
            now,
        );
        g.accept(5, d.unwrap(), Some(2));
        let sent: Vec<_> = std::iter::from_fn(|| g.poll_transmit()).collect();
        assert_eq!(
            sent,
            vec![(
                3,
                Message::Manifest {
                    seq: 5,
                    doc: doc(5)
                }
            )]
        );
    }

    #[test]
    fn a_node_with_nothing_asks_at_once_and_a_want_is_answered_with_the_newest() {
        let t0 = Instant::now();
        let mut fresh: Gossip<u8> = Gossip::new(GossipConfig::viewer());
        fresh.on_message(1, Message::Have(7), 11, t0);
        assert_eq!(fresh.poll_timeout(), None, "a peer not added is ignored");
        assert_eq!(fresh.stats().from_unknown, 1);
        fresh.add_peer(1);
        fresh.on_message(1, Message::Have(7), 11, t0);
        assert_eq!(fresh.poll_timeout(), Some(t0));
        fresh.handle_timeout(t0);
        assert_eq!(fresh.poll_transmit(), Some((1, Message::Want(0))));

        let mut holder: Gossip<u8> = Gossip::new(GossipConfig::publisher());
        holder.accept(9, doc(9), None);
        holder.add_peer(3);
        holder.on_message(3, Message::Want(7), 11, t0);
        let nine = Message::Manifest {
            seq: 9,
            doc: doc(9),
        };
        assert_eq!(holder.poll_transmit(), Some((3, nine)));
        holder.on_message(3, Message::Want(7), 11, t0);
        assert_eq!(holder.poll_transmit(), None, "the same document twice: no");
        holder.on_message(3, Message::Want(10), 11, t0);
        assert_eq!(holder.poll_transmit(), None, "nothing that new");
        assert_eq!(holder.stats().manifests_answered, 1);
        // A document too large to carry is held, but neither pushed nor sent in answer.
        let mut small: Gossip<u8> = Gossip::new(GossipConfig {
            max_document: 5,
            ..GossipConfig::publisher()
        });
        small.add_peer(1);
        small.accept(3, doc(3), None);
        small.on_message(1, Message::Want(0), 11, t0);
        assert_eq!(small.poll_transmit(), None);
        assert_eq!((small.newest_seq(), small.stats().too_large), (Some(3), 1));
    }

    #[test]
    fn a_document_of_the_held_sequence_number_with_other_bytes_goes_to_the_verifier() {
        let t0 = Instant::now();
        let mut g: Gossip<u8> = Gossip::new(GossipConfig::viewer());
        g.add_peer(1);
        g.accept(4, doc(4), None);
        let same = Message::Manifest {
            seq: 4,
            doc: doc(4),
        };
        assert_eq!(
            g.on_message(1, same, 30, t0),
            None,
            "the held document: a duplicate"
        );
        let other: Arc<[u8]> = b"another document numbered 4".to_vec().into();
        let equivocation = Message::Manifest {
            seq: 4,
            doc: other.clone(),
        };
        assert_eq!(g.on_message(1, equivocation, 30, t0), Some(other));
        let older = Message::Manifest {
            seq: 3,
            doc: doc(3),
        };
        assert_eq!(g.on_message(1, older, 30, t0), None);
        assert_eq!(g.stats().duplicates, 2);
    }

    #[test]
    fn peers_that_showed_they_hold_a_manifest_are_not_pushed_it_and_pushes_rotate() {
        let mut g: Gossip<u8> = Gossip::new(GossipConfig {
            push_to: 1,
            announce: false,
            ..GossipConfig::publisher()
        });
        let t0 = Instant::now();
        for p in 1..=3 {
            g.add_peer(p);
        }
        // Peer 1 already has 2 (it said so).
        g.on_message(1, Message::Have(2), 11, t0);
        g.accept(2, doc(2), None);
        let first = g.poll_transmit().map(|(p, _)| p).unwrap();
        assert_ne!(first, 1);
        assert_eq!(g.poll_transmit(), None);
        // The next goes to a peer pushed to longest ago (never), then to the last one.
        g.accept(3, doc(3), None);
        let second = g.poll_transmit().map(|(p, _)| p).unwrap();
        assert_ne!(second, first);
        g.accept(4, doc(4), None);
        let third = g.poll_transmit().map(|(p, _)| p).unwrap();
        assert_eq!(
            [first, second, third]
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            3
        );
        // An older or equal manifest is neither taken nor spread.
        g.accept(4, doc(4), None);
        g.accept(1, doc(1), None);
        assert_eq!(g.poll_transmit(), None);
        assert_eq!(g.newest_seq(), Some(4));
    }
}
