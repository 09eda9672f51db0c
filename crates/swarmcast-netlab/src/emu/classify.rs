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
        let other = Packet {
            src,
            dst,
            len,
            class: Class::Other,
            new_payload: len - ihl as u32,
            payload: 0,
        };
        // TCP, and not a later fragment.
        if proto != 6 || be16(bytes, 6) & 0x1fff != 0 {
            return Ok(other);
        }
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
        let from = SocketAddrV4::new(src, sport);
        let to = SocketAddrV4::new(dst, dport);
        let syn = flags & 0x02 != 0;
        let start = seq.wrapping_add(u32::from(syn));
        let data = &t[doff.min(t.len())..];
        let data = &data[..data.len().min(payload_len as usize)];
        // A SYN with a new sequence number starts a new connection on the same ports.
        if syn && self.dirs.get(&(from, to)).is_some_and(|d| d.isn != start) {
            self.dirs.remove(&(from, to));
        }
        let dir = self.dirs.entry((from, to)).or_insert_with(|| {
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
        });
        let new = dir.seq.add(start, payload_len);
        let new_payload = new.count;
        let class = if self.http_servers.contains(&to) {
            if new_payload > 0 {
                if let Some(c) = request_class(data) {
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
        };
        let mut payload = 0;
        if self.parse_payload && new_payload > 0 {
            let dir = self.dirs.get_mut(&(from, to)).expect("inserted above");
            // Every direction's bytes go through `order`, so that it knows where the stream
            // is even while its bytes are not parsed (HTTP requests, control answers).
            let Dir {
                order, bt, http, ..
            } = dir;
            let whole = data.len() == payload_len as usize;
            let lost = match class {
                Class::Bittorrent => {
                    let pushed = order.push(new.at, data, |b| {
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
                    let pushed = order.push(new.at, data, |b| payload += http.feed(b));
                    if !whole || pushed.is_err() {
                        http.lose();
                    }
                    !whole || pushed.is_err()
                }
                // Answers that are control need no following: each request restarts its
                // answer's state (`HttpAnswer::request`).
                _ => order.push(new.at, data, |_| {}).is_err(),
            };
            if lost && !dir.lost_counted {
                dir.lost_counted = true;
                self.streams_lost += 1;
                tracing::debug!(%from, %to, ?class, "a stream could not be followed");
            }
        }
        // A RST does not end the state: packets still in flight after it are the same
        // connection's (a reused port starts with a new SYN, above).
        Ok(Packet {
            src,
            dst,
            len,
            class,
            new_payload,
            payload,
        })
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
mod tests {
    use super::*;

    fn tcp(
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        seq: u32,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let len = 20 + 32 + payload.len();
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[9] = 6;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        let t = &mut p[20..];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[12] = 8 << 4; // 32-byte header (timestamps)
        t[13] = flags;
        t[32..].copy_from_slice(payload);
        p
    }

    const C: [u8; 4] = [10, 77, 2, 2];
    const S: [u8; 4] = [10, 77, 1, 2];

    #[test]
    fn new_payload_and_retransmissions() {
        let mut c = Classifier::new([], true);
        let syn = c.classify(&tcp(C, 5000, S, 6881, 100, 0x02, b"")).unwrap();
        assert_eq!((syn.len, syn.new_payload, syn.tcpip()), (52, 0, 52));
        assert_eq!(syn.class, Class::Bittorrent);
        let a = c
            .classify(&tcp(C, 5000, S, 6881, 101, 0x18, &[1; 100]))
            .unwrap();
        assert_eq!((a.new_payload, a.tcpip()), (100, 52));
        // The same bytes again: a retransmission, all TCP/IP.
        let again = c
            .classify(&tcp(C, 5000, S, 6881, 101, 0x18, &[1; 100]))
            .unwrap();
        assert_eq!((again.new_payload, again.tcpip()), (0, 152));
        // Half old, half new.
        let half = c
            .classify(&tcp(C, 5000, S, 6881, 151, 0x18, &[1; 100]))
            .unwrap();
        assert_eq!(half.new_payload, 50);
        // Across the sequence number wrap.
        let mut c = Classifier::new([], true);
        c.classify(&tcp(C, 1, S, 2, u32::MAX - 10, 0x10, &[0; 10]))
            .unwrap();
        let w = c
            .classify(&tcp(C, 1, S, 2, u32::MAX, 0x10, &[0; 20]))
            .unwrap();
        assert_eq!(w.new_payload, 20);
    }

    #[test]
    fn http_answers_take_the_class_of_their_request() {
        let server = SocketAddrV4::new(Ipv4Addr::from(S), 8080);
        let mut c = Classifier::new([server], true);
        let req = c
            .classify(&tcp(
                C,
                4000,
                S,
                8080,
                1,
                0x18,
                b"GET /manifest?after=3 HTTP/1.1\r\n",
            ))
            .unwrap();
        assert_eq!(req.class, Class::Manifest);
        let ans = c
            .classify(&tcp(S, 8080, C, 4000, 9, 0x18, &[7; 500]))
            .unwrap();
        assert_eq!((ans.class, ans.new_payload), (Class::Manifest, 500));
        // The next request on the same connection changes the class.
        let req = c
            .classify(&tcp(
                C,
                4000,
                S,
                8080,
                33,
                0x18,
                b"GET /announce?info_hash=x",
            ))
            .unwrap();
        assert_eq!(req.class, Class::Tracker);
        let ans = c
            .classify(&tcp(S, 8080, C, 4000, 509, 0x18, &[7; 50]))
            .unwrap();
        assert_eq!(ans.class, Class::Tracker);
        let seg = c
            .classify(&tcp(
                C,
                4001,
                S,
                8080,
                1,
                0x18,
                b"GET /segments/00000004.ts HTTP/1.1",
            ))
            .unwrap();
        assert_eq!(seg.class, Class::HttpSegments);
        // A peer connection to the same host on another port is BitTorrent.
        let bt = c
            .classify(&tcp(C, 4002, S, 6881, 1, 0x18, b"\x13BitTorrent"))
            .unwrap();
        assert_eq!(bt.class, Class::Bittorrent);
        let mut w = WireBytes::default();
        for p in [req, ans, seg, bt] {
            w.add(&p);
        }
        assert_eq!(
            w.ip_bytes,
            w.tcpip
                + w.bittorrent
                + w.manifest
                + w.tracker
                + w.http_segments
                + w.http_other
                + w.other
        );
    }

    #[test]
    fn piece_data_and_segment_bodies_are_payload_on_the_sending_side() {
        let server = SocketAddrV4::new(Ipv4Addr::from(S), 8080);
        let mut c = Classifier::new([server], true);
        // A peer connection: SYN, handshake, a piece message across two segments, a
        // retransmission of the second.
        c.classify(&tcp(S, 6881, C, 5000, 99, 0x02, b"")).unwrap();
        let mut hs = vec![19u8];
        hs.extend_from_slice(b"BitTorrent protocol");
        hs.extend_from_slice(&[0; 48]);
        let mut piece = (9u32 + 1000).to_be_bytes().to_vec();
        piece.push(7);
        piece.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        piece.extend_from_slice(&[0xcd; 1000]);
        let mut stream = hs;
        stream.extend_from_slice(&piece);
        let (a, b) = stream.split_at(600);
        let p1 = c.classify(&tcp(S, 6881, C, 5000, 100, 0x18, a)).unwrap();
        let p2 = c
            .classify(&tcp(S, 6881, C, 5000, 100 + 600, 0x18, b))
            .unwrap();
        let again = c
            .classify(&tcp(S, 6881, C, 5000, 100 + 600, 0x18, b))
            .unwrap();
        assert_eq!(p1.payload + p2.payload, 1000);
        assert_eq!((again.new_payload, again.payload), (0, 0));
        // An HTTP segment answer: its body is payload, its header is not; a manifest answer is
        // all control.
        c.classify(&tcp(S, 8080, C, 4000, 0, 0x12, b"")).unwrap();
        c.classify(&tcp(C, 4000, S, 8080, 0, 0x02, b"")).unwrap();
        c.classify(&tcp(
            C,
            4000,
            S,
            8080,
            1,
            0x18,
            b"GET /segments/00000001.ts HTTP/1.1\r\n\r\n",
        ))
        .unwrap();
        let ans = c
            .classify(&tcp(
                S,
                8080,
                C,
                4000,
                1,
                0x18,
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody",
            ))
            .unwrap();
        assert_eq!((ans.class, ans.payload), (Class::HttpSegments, 4));
        c.classify(&tcp(
            C,
            4000,
            S,
            8080,
            40,
            0x18,
            b"GET /manifest?after=1 HTTP/1.1\r\n\r\n",
        ))
        .unwrap();
        let m = c
            .classify(&tcp(
                S,
                8080,
                C,
                4000,
                100,
                0x18,
                b"HTTP/1.1 200 OK\r\n\r\nmanifest",
            ))
            .unwrap();
        assert_eq!((m.class, m.payload), (Class::Manifest, 0));
        // A stream first seen mid-connection cannot be followed: no payload, counted as lost.
        let mid = c.classify(&tcp(C, 7000, S, 6881, 5, 0x18, &piece)).unwrap();
        assert_eq!(mid.payload, 0);
        assert_eq!(c.streams_lost(), 1);
    }

    #[test]
    fn a_stream_reordered_before_the_emulator_is_still_followed() {
        let mut c = Classifier::new([], true);
        c.classify(&tcp(S, 6881, C, 5000, 99, 0x02, b"")).unwrap();
        let mut stream = vec![19u8];
        stream.extend_from_slice(b"BitTorrent protocol");
        stream.extend_from_slice(&[0; 48]);
        for index in 0..3u32 {
            stream.extend_from_slice(&(9u32 + 1000).to_be_bytes());
            stream.push(7);
            stream.extend_from_slice(&index.to_be_bytes());
            stream.extend_from_slice(&[0; 4]);
            stream.extend_from_slice(&[0xcd; 1000]);
        }
        let parts: Vec<(u32, &[u8])> = stream
            .chunks(700)
            .enumerate()
            .map(|(k, c)| (100 + 700 * k as u32, c))
            .collect();
        // Sent in order, handed to the emulator as 0, 2, 1, 4, 3: the payload is all there,
        // each byte once.
        let mut payload = 0;
        let mut new = 0;
        for k in [0, 2, 1, 4, 3] {
            let (seq, data) = parts[k];
            let p = c.classify(&tcp(S, 6881, C, 5000, seq, 0x18, data)).unwrap();
            payload += p.payload;
            new += p.new_payload;
        }
        assert_eq!(payload, 3000);
        assert_eq!(new as usize, stream.len());
        assert_eq!(c.streams_lost(), 0);
    }

    #[test]
    fn garbage_is_an_error_and_udp_is_other() {
        let mut c = Classifier::new([], true);
        assert_eq!(c.classify(&[0x45, 0, 0]), Err(ParseError::Malformed));
        assert_eq!(c.classify(&[0x60; 40]), Err(ParseError::Malformed));
        let mut udp = vec![0u8; 28];
        udp[0] = 0x45;
        udp[2..4].copy_from_slice(&28u16.to_be_bytes());
        udp[9] = 17;
        let p = c.classify(&udp).unwrap();
        assert_eq!(
            (p.class, p.len, p.new_payload, p.tcpip()),
            (Class::Other, 28, 8, 20)
        );
    }
}
