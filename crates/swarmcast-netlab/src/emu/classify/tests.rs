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
        w.tcpip + w.bittorrent + w.manifest + w.tracker + w.http_segments + w.http_other + w.other
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
