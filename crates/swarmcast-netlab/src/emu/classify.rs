//! What a packet carries, from its first bytes (sans-IO): IPv4 and TCP headers, and for TCP the
//! payload bytes that are new (not a retransmission) and the class they belong to.
//!
//! Classes: a TCP connection to one of the HTTP servers given (the publisher's) is HTTP, and each
//! request on it is classed by its request line (`GET /manifest` manifests, `GET /announce` the
//! tracker, `GET /segments/` segment bodies, anything else other HTTP); the answer bytes take the
//! class of the last request on that connection (HTTP/1.1 without pipelining, as our clients
//! speak it). Every other TCP connection is BitTorrent. What is not TCP is `other`.
//!
//! TCP/IP bytes are every IP and TCP header byte plus the payload bytes a connection already
//! carried (retransmissions: each direction's bytes already seen, holes included, are tracked).
//!
//! With payload parsing on (the sending side: every packet a host sends passes the emulator in
//! order), new bytes are also followed as a stream: on BitTorrent connections the blocks of
//! `piece` messages are **payload** ([`super::stream::BtStream`]); on HTTP answers to
//! `GET /segments/` the body after the header is payload ([`super::stream::HttpAnswer`]).
//! Everything else in the TCP payload is control. A stream that cannot be followed (one first
//! seen mid-connection, or not BitTorrent) counts no payload and is counted in
//! [`Classifier::streams_lost`].

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use serde::{Deserialize, Serialize};

use super::stream::{BtStream, HttpAnswer, Reorder, SeqTracker};

/// What a packet's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// BitTorrent peer connections (piece data and protocol messages).
    Bittorrent,
    /// HTTP manifest requests and answers.
    Manifest,
    /// HTTP tracker announces and answers.
    Tracker,
    /// HTTP segment bodies (the HTTP transport and fallback) with their headers.
    HttpSegments,
    /// Any other HTTP (torrents, status pages).
    HttpOther,
    /// Not TCP (UDP probes, ICMP).
    Other,
}

/// A parsed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP total length, bytes.
    pub len: u32,
    /// The class of its payload.
    pub class: Class,
    /// Payload bytes this connection had not carried before (0 for non-TCP: all of it is in
    /// `len`).
    pub new_payload: u32,
    /// Of `new_payload`, piece data or segment bodies (with payload parsing on).
    pub payload: u32,
}

impl Packet {
    /// IP and TCP headers plus retransmitted payload; for a packet that is not TCP, its IP
    /// header (the rest is `other`).
    pub fn tcpip(&self) -> u32 {
        self.len - self.new_payload
    }
}

type Flow = (SocketAddrV4, SocketAddrV4);

/// One direction of a TCP connection.
#[derive(Debug)]
struct Dir {
    /// The first sequence number of its data (after the SYN).
    isn: u32,
    seq: SeqTracker,
    /// The direction's bytes put back in order for `bt` and `http`.
    order: Reorder,
    bt: BtStream,
    http: HttpAnswer,
    /// Counted in `streams_lost` already.
    lost_counted: bool,
}

/// Classifies packets; keeps per-connection state (bytes seen, HTTP request class, streams).
#[derive(Debug, Default)]
pub struct Classifier {
    http_servers: HashSet<SocketAddrV4>,
    parse_payload: bool,
    dirs: HashMap<Flow, Dir>,
    /// Per HTTP connection (client, server): the class of its last request.
    http_class: HashMap<Flow, Class>,
    streams_lost: u64,
}

/// Why a packet could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Not IPv4, or shorter than its headers say.
    #[error("not an IPv4 packet with complete headers")]
    Malformed,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Classes an HTTP request by the start of its request line.
fn request_class(payload: &[u8]) -> Option<Class> {
    let methods: [&[u8]; 3] = [b"GET ", b"HEAD ", b"POST "];
    let rest = methods.iter().find_map(|m| payload.strip_prefix(*m))?;
    Some(if rest.starts_with(b"/manifest") {
        Class::Manifest
    } else if rest.starts_with(b"/announce") {
        Class::Tracker
    } else if rest.starts_with(b"/segments/") {
        Class::HttpSegments
    } else {
        Class::HttpOther
    })
}

/// The IPv4 header fields the classifier reads.
struct Ipv4Header {
    /// Header length, bytes.
    ihl: usize,
    /// Total length, bytes.
    len: u32,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    /// TCP, and not a later fragment.
    tcp: bool,
}

impl Ipv4Header {
    /// Parses the IPv4 header at the start of `bytes`.
    fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        if bytes.len() < 20 || bytes[0] >> 4 != 4 {
            return Err(ParseError::Malformed);
        }
        let ihl = usize::from(bytes[0] & 0x0f) * 4;
        let len = u32::from(be16(bytes, 2));
        let proto = bytes[9];
        let src = Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]);
        let dst = Ipv4Addr::new(bytes[16], bytes[17], bytes[18], bytes[19]);
        if ihl < 20 || len < ihl as u32 {
            return Err(ParseError::Malformed);
        }
        Ok(Self {
            ihl,
            len,
            src,
            dst,
            tcp: proto == 6 && be16(bytes, 6) & 0x1fff == 0,
        })
    }
}

/// A TCP segment: its ends, where its data starts in the sequence space, and the data copied.
struct Segment<'a> {
    from: SocketAddrV4,
    to: SocketAddrV4,
    syn: bool,
    /// The sequence number of its first data byte (after the SYN, if it has one).
    start: u32,
    /// Payload bytes, as the IP length says.
    payload_len: u32,
    /// The payload bytes copied (fewer than `payload_len` if the packet was cut).
    data: &'a [u8],
}

impl<'a> Segment<'a> {
    /// Parses the TCP header after `ip` in `bytes`.
    fn parse(bytes: &'a [u8], ip: &Ipv4Header) -> Result<Self, ParseError> {
        let (ihl, len) = (ip.ihl, ip.len);
        if bytes.len() < ihl + 20 {
            return Err(ParseError::Malformed);
        }
        let t = &bytes[ihl..];
        let (sport, dport) = (be16(t, 0), be16(t, 2));
        let seq = be32(t, 4);
        let doff = usize::from(t[12] >> 4) * 4;
        let flags = t[13];
        if doff < 20 || len < (ihl + doff) as u32 {
            return Err(ParseError::Malformed);
        }
        let payload_len = len - (ihl + doff) as u32;
        let syn = flags & 0x02 != 0;
        let data = &t[doff.min(t.len())..];
        Ok(Self {
            from: SocketAddrV4::new(ip.src, sport),
            to: SocketAddrV4::new(ip.dst, dport),
            syn,
            start: seq.wrapping_add(u32::from(syn)),
            payload_len,
            data: &data[..data.len().min(payload_len as usize)],
        })
    }

    /// Whether all of its payload was copied.
    fn whole(&self) -> bool {
        self.data.len() == self.payload_len as usize
    }
}

impl Classifier {
    /// A classifier for which TCP connections to `http_servers` are HTTP; with `parse_payload`,
    /// it follows streams to tell payload from control (see the module documentation).
    pub fn new(http_servers: impl IntoIterator<Item = SocketAddrV4>, parse_payload: bool) -> Self {
        Self {
            http_servers: http_servers.into_iter().collect(),
            parse_payload,
            ..Self::default()
        }
    }

    /// Streams whose payload could not be told apart (their new bytes all count as control).
    pub fn streams_lost(&self) -> u64 {
        self.streams_lost
    }

    /// Parses `bytes` (the packet's first bytes; `len` of the IP header is the real length).
    pub fn classify(&mut self, bytes: &[u8]) -> Result<Packet, ParseError> {
        let ip = Ipv4Header::parse(bytes)?;
        let (src, dst, len) = (ip.src, ip.dst, ip.len);
        if !ip.tcp {
            return Ok(Packet {
                src,
                dst,
                len,
                class: Class::Other,
                new_payload: len - ip.ihl as u32,
                payload: 0,
            });
        }
        let seg = Segment::parse(bytes, &ip)?;
        let new = self.direction(&seg).seq.add(seg.start, seg.payload_len);
        let new_payload = new.count;
        let class = self.class(&seg, new_payload);
        let payload = if self.parse_payload && new_payload > 0 {
            self.follow(&seg, class, new.at)
        } else {
            0
        };
        // A RST does not end the state: packets still in flight after it are the same
        // connection's (a reused port starts with a new SYN: see `direction`).
        Ok(Packet {
            src,
            dst,
            len,
            class,
            new_payload,
            payload,
        })
    }

    /// The state of `seg`'s direction, made on its first packet.
    fn direction(&mut self, seg: &Segment<'_>) -> &mut Dir {
        let (from, to, start, syn) = (seg.from, seg.to, seg.start, seg.syn);
        // A SYN with a new sequence number starts a new connection on the same ports.
        if syn && self.dirs.get(&(from, to)).is_some_and(|d| d.isn != start) {
            self.dirs.remove(&(from, to));
        }
        self.dirs.entry((from, to)).or_insert_with(|| {
            let mut d = Dir {
                isn: start,
                seq: SeqTracker::new(start),
                order: Reorder::default(),
                bt: BtStream::default(),
                http: HttpAnswer::default(),
                lost_counted: false,
            };
            if !syn {
                // First seen mid-connection: its stream cannot be followed.
                d.bt.lose();
            }
            d
        })
    }

    /// The class of `seg`'s bytes: HTTP by its connection's last request (a request with new
    /// bytes sets it), BitTorrent for every other connection.
    fn class(&mut self, seg: &Segment<'_>, new_payload: u32) -> Class {
        let (from, to) = (seg.from, seg.to);
        if self.http_servers.contains(&to) {
            if new_payload > 0 {
                if let Some(c) = request_class(seg.data) {
                    self.http_class.insert((from, to), c);
                    if let Some(answer) = self.dirs.get_mut(&(to, from)) {
                        answer.http.request();
                    }
                }
            }
            *self
                .http_class
                .get(&(from, to))
                .unwrap_or(&Class::HttpOther)
        } else if self.http_servers.contains(&from) {
            *self
                .http_class
                .get(&(to, from))
                .unwrap_or(&Class::HttpOther)
        } else {
            Class::Bittorrent
        }
    }

    /// Follows the new bytes of `seg` (at `at` in its direction's stream, of `class`); its
    /// payload bytes (piece data, segment bodies). A stream that cannot be followed from here
    /// on is counted in `streams_lost`, once.
    fn follow(&mut self, seg: &Segment<'_>, class: Class, at: u64) -> u32 {
        let (from, to, data) = (seg.from, seg.to, seg.data);
        let whole = seg.whole();
        let mut payload = 0;
        let dir = self.dirs.get_mut(&(from, to)).expect("made by `direction`");
        // Every direction's bytes go through `order`, so that it knows where the stream
        // is even while its bytes are not parsed (HTTP requests, control answers).
        let Dir {
            order, bt, http, ..
        } = dir;
        let lost = match class {
            Class::Bittorrent => {
                let pushed = order.push(at, data, |b| {
                    if !bt.lost() {
                        payload += bt.feed(b);
                    }
                });
                if !whole || pushed.is_err() {
                    bt.lose();
                }
                bt.lost()
            }
            Class::HttpSegments if self.http_servers.contains(&from) => {
                let pushed = order.push(at, data, |b| payload += http.feed(b));
                if !whole || pushed.is_err() {
                    http.lose();
                }
                !whole || pushed.is_err()
            }
            // Answers that are control need no following: each request restarts its
            // answer's state (`HttpAnswer::request`).
            _ => order.push(at, data, |_| {}).is_err(),
        };
        if lost && !dir.lost_counted {
            dir.lost_counted = true;
            self.streams_lost += 1;
            tracing::debug!(%from, %to, ?class, "a stream could not be followed");
        }
        payload
    }
}

/// Bytes of one direction of one host's link, by what they carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireBytes {
    /// Packets.
    pub packets: u64,
    /// IP bytes (headers included): everything on the wire but the link layer.
    pub ip_bytes: u64,
    /// IP and TCP headers, and retransmitted payload.
    pub tcpip: u64,
    /// New TCP payload of BitTorrent connections.
    pub bittorrent: u64,
    /// New TCP payload of manifest requests and answers.
    pub manifest: u64,
    /// New TCP payload of tracker announces and answers.
    pub tracker: u64,
    /// New TCP payload of HTTP segment requests and answers.
    pub http_segments: u64,
    /// New TCP payload of other HTTP.
    pub http_other: u64,
    /// Payload of packets that are not TCP.
    pub other: u64,
    /// Of the new TCP payload, piece data and segment bodies, as the sender's stream shows them
    /// (a received packet counts as it was classified when sent).
    #[serde(default)]
    pub payload: u64,
}

impl WireBytes {
    /// Counts a packet.
    pub fn add(&mut self, p: &Packet) {
        self.packets += 1;
        self.ip_bytes += u64::from(p.len);
        self.tcpip += u64::from(p.tcpip());
        self.payload += u64::from(p.payload);
        let n = u64::from(p.new_payload);
        match p.class {
            Class::Bittorrent => self.bittorrent += n,
            Class::Manifest => self.manifest += n,
            Class::Tracker => self.tracker += n,
            Class::HttpSegments => self.http_segments += n,
            Class::HttpOther => self.http_other += n,
            Class::Other => self.other += n,
        }
    }

    /// The sum of two counts.
    pub fn plus(&self, o: &Self) -> Self {
        Self {
            packets: self.packets + o.packets,
            ip_bytes: self.ip_bytes + o.ip_bytes,
            tcpip: self.tcpip + o.tcpip,
            bittorrent: self.bittorrent + o.bittorrent,
            manifest: self.manifest + o.manifest,
            tracker: self.tracker + o.tracker,
            http_segments: self.http_segments + o.http_segments,
            http_other: self.http_other + o.http_other,
            other: self.other + o.other,
            payload: self.payload + o.payload,
        }
    }
}

#[cfg(test)]
mod tests;
