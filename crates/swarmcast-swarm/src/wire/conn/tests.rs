//! The connection state machine on numbers: bytes in, a `now` built from one base and durations,
//! bytes and events out. No socket, no clock read after the base, no sleep.

use super::*;

const HASH: [u8; 20] = [3; 20];
const PEER: [u8; 20] = [7; 20];
const OURS: [u8; 20] = [9; 20];

/// 100,000 bytes in 32 KiB pieces: pieces 0-2 of 32,768 bytes, piece 3 of 1,696.
const LAYOUT: Layout = Layout {
    piece_length: 32 * 1024,
    length: 100_000,
    pieces: 4,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn handshake() -> Vec<u8> {
    let mut hs = [0u8; HANDSHAKE_LEN];
    let n = Handshake::new(Id20::new(HASH), Id20::new(PEER)).serialize_unchecked_len(&mut hs);
    hs[..n].to_vec()
}

fn bytes(msg: Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&mut out, msg);
    out
}

fn req(index: u32, begin: u32, length: u32) -> Vec<u8> {
    bytes(Message::Request(Request::new(index, begin, length)))
}

fn cancel(index: u32, begin: u32, length: u32) -> Vec<u8> {
    bytes(Message::Cancel(Request::new(index, begin, length)))
}

fn events(c: &mut Conn) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// The reason the connection closed with, if it did.
fn close_reason(c: &mut Conn) -> Option<Close> {
    events(c).into_iter().find_map(|e| match e {
        Event::Closed(r) => Some(r),
        _ => None,
    })
}

/// Our messages in `out`, as short names.
fn names(out: &[u8]) -> Vec<String> {
    let mut at = 0;
    let mut names = Vec::new();
    while at < out.len() {
        let (msg, len) = Message::deserialize(&out[at..], &[]).expect("we send valid messages");
        names.push(match msg {
            Message::Have(p) => format!("have {p}"),
            Message::Bitfield(b) => format!("bitfield {:02x?}", b.as_ref()),
            Message::Unchoke => "unchoke".to_owned(),
            Message::KeepAlive => "keepalive".to_owned(),
            m => format!("{m:?}"),
        });
        at += len;
    }
    names
}

fn transmit(c: &mut Conn, now: Instant) -> Vec<String> {
    let mut out = Vec::new();
    c.poll_transmit(now, &mut out);
    names(&out)
}

/// A connection opened at `now`, past the handshake, accepted, its first bytes taken.
fn open(now: Instant, limits: Limits, announce_all: bool) -> (Conn, Vec<u8>) {
    let mut c = Conn::new(now, limits);
    c.handle_input(now, &handshake());
    assert_eq!(
        events(&mut c),
        [Event::Handshake {
            info_hash: HASH,
            peer_id: PEER
        }]
    );
    c.accept(now, LAYOUT, HASH, OURS, announce_all);
    let mut out = Vec::new();
    c.poll_transmit(now, &mut out);
    (c, out)
}

/// The next block to serve, taken through to writing (no cancel in between).
fn serve(c: &mut Conn) -> Option<(u32, u32, u32)> {
    c.next_request()?;
    let r = c.begin_block()?;
    Some((r.index, r.begin, r.length))
}

#[test]
fn accepted_it_answers_the_handshake_then_a_full_bitfield_and_an_unchoke() {
    let now = Instant::now();
    let (_, out) = open(now, Limits::default(), true);
    let (theirs, n) = Handshake::deserialize(&out).unwrap();
    assert_eq!(
        (n, theirs.reserved, theirs.info_hash.0, theirs.peer_id.0),
        (HANDSHAKE_LEN, 0, HASH, OURS)
    );
    // Four pieces: the top four bits of one byte.
    assert_eq!(names(&out[n..]), ["bitfield [f0]", "unchoke"]);
    // Super-seeding: no bitfield; Haves as the driver announces pieces, each once, in range.
    let (mut c, out) = open(now, Limits::default(), false);
    assert_eq!(names(&out[HANDSHAKE_LEN..]), ["unchoke"]);
    assert!(c.announce(2));
    assert!(!c.announce(2), "told once");
    assert!(!c.announce(4), "out of range");
    assert!(c.announce(0));
    assert_eq!(transmit(&mut c, now), ["have 2", "have 0"]);
}

#[test]
fn a_handshake_in_pieces_and_the_messages_after_it_are_all_read() {
    let now = Instant::now();
    let mut c = Conn::new(now, Limits::default());
    let mut input = handshake();
    input.extend(bytes(Message::Have(1)));
    input.extend(req(0, 0, BLOCK));
    // One byte at a time: nothing until the 68th.
    for (i, b) in input.iter().enumerate() {
        c.handle_input(now, std::slice::from_ref(b));
        if i + 1 < HANDSHAKE_LEN {
            assert_eq!(events(&mut c), []);
        }
    }
    assert_eq!(
        events(&mut c).len(),
        1,
        "the handshake alone, before accept"
    );
    assert_eq!(c.next_request().map(|r| r.index), None, "not open yet");
    c.accept(now, LAYOUT, HASH, OURS, true);
    assert_eq!(events(&mut c), [Event::Has(1), Event::Requested(0)]);
    assert_eq!(serve(&mut c), Some((0, 0, BLOCK)));
}

#[test]
fn requests_are_served_in_order_and_a_whole_piece_is_told() {
    let now = Instant::now();
    let (mut c, _) = open(now, Limits::default(), true);
    let mut input = Vec::new();
    for (index, begin, length) in [
        (1, BLOCK, BLOCK),
        (0, 0, BLOCK),
        (1, 0, BLOCK),
        (3, 0, 1696),
    ] {
        input.extend(req(index, begin, length));
    }
    c.handle_input(now, &input);
    assert_eq!(c.queued(), 4);
    let mut served = Vec::new();
    let mut whole = Vec::new();
    while c.next_request().is_some() {
        let r = c.begin_block().expect("not cancelled");
        served.push((r.index, r.begin));
        whole.extend(c.block_written(now, &r));
    }
    assert_eq!(served, [(1, BLOCK), (0, 0), (1, 0), (3, 0)]);
    // Piece 1 once both its blocks went; piece 3 is one short block; piece 0 is half sent.
    assert_eq!(whole, [1, 3]);
    // Each piece's first request is told, once.
    assert_eq!(
        events(&mut c),
        [
            Event::Requested(1),
            Event::Requested(0),
            Event::Requested(3)
        ]
    );
}

#[test]
fn cancel_removes_a_queued_request_and_drops_the_one_waiting_to_be_written() {
    let now = Instant::now();
    let (mut c, _) = open(now, Limits::default(), true);
    let mut input = Vec::new();
    for (index, begin) in [(0, 0), (0, BLOCK), (1, 0), (1, BLOCK)] {
        input.extend(req(index, begin, BLOCK));
    }
    c.handle_input(now, &input);
    // (0, 0) is handed out and waits for the upload limit when its Cancel comes.
    assert_eq!(c.next_request().map(|r| (r.index, r.begin)), Some((0, 0)));
    let mut input = cancel(0, 0, BLOCK);
    input.extend(cancel(1, 0, BLOCK));
    // A Cancel that matches nothing (another length) changes nothing.
    input.extend(cancel(1, BLOCK, 100));
    c.handle_input(now, &input);
    assert_eq!(c.begin_block().map(|r| r.index), None, "cancelled");
    assert_eq!(c.queued(), 2);
    assert_eq!(serve(&mut c), Some((0, BLOCK, BLOCK)));
    assert_eq!(serve(&mut c), Some((1, BLOCK, BLOCK)));
    assert_eq!(serve(&mut c), None);
    assert!(!c.is_closed());
}

#[test]
fn too_many_queued_requests_close_the_connection() {
    let now = Instant::now();
    let limits = Limits {
        max_queued_requests: 3,
        ..Limits::default()
    };
    let (mut c, _) = open(now, limits, true);
    c.handle_input(now, &[req(0, 0, BLOCK), req(0, BLOCK, BLOCK)].concat());
    // One handed out does not count against the queue.
    assert!(c.next_request().is_some());
    c.handle_input(now, &[req(1, 0, BLOCK), req(1, BLOCK, BLOCK)].concat());
    assert_eq!((c.queued(), c.is_closed()), (3, false));
    c.handle_input(now, &req(2, 0, BLOCK));
    let reason = close_reason(&mut c);
    assert_eq!(reason, Some(Close::TooManyRequests(3)));
    assert_eq!(reason.unwrap().outcome(), Outcome::Violation);
    assert!(c.is_closed());
    assert_eq!((c.next_request().is_none(), c.poll_timeout()), (true, None));
}

#[test]
fn requests_out_of_range_close_the_connection() {
    let now = Instant::now();
    let limits = Limits {
        max_request: 2 * BLOCK,
        ..Limits::default()
    };
    let bad = |index, begin, length| {
        let (mut c, _) = open(now, limits, true);
        c.handle_input(now, &req(index, begin, length));
        assert_eq!(
            close_reason(&mut c),
            Some(Close::BadRequest {
                index,
                begin,
                length
            })
        );
    };
    bad(4, 0, BLOCK); // no such piece
    bad(3, 0, BLOCK); // piece 3 is 1,696 bytes
    bad(3, 1000, 697); // one byte past its end
    bad(0, 0, 0); // empty
    bad(0, 0, 2 * BLOCK + 1); // over the request limit (and the piece)
    bad(0, u32::MAX, 2); // offset near the end of u32: no overflow
                         // At the limits, all is well.
    let (mut c, _) = open(now, limits, true);
    c.handle_input(now, &[req(3, 1000, 696), req(0, 0, 2 * BLOCK)].concat());
    assert_eq!(c.queued(), 2);
    assert_eq!(events(&mut c), [Event::Requested(3), Event::Requested(0)]);
}

#[test]
fn a_request_for_a_piece_not_announced_closes_the_connection() {
    let now = Instant::now();
    let (mut c, _) = open(now, Limits::default(), false);
    c.announce(2);
    c.handle_input(now, &req(2, 0, BLOCK));
    assert_eq!(c.queued(), 1);
    c.handle_input(now, &req(1, 0, BLOCK));
    let reason = close_reason(&mut c).unwrap();
    assert_eq!(reason, Close::NotAnnounced(1));
    assert_eq!(reason.outcome(), Outcome::Violation);
}

#[test]
fn oversized_and_malformed_messages_close_the_connection() {
    let now = Instant::now();
    let limits = Limits {
        max_message: 1000,
        ..Limits::default()
    };
    // Too long: closed on its length prefix, before its body arrives.
    let (mut c, _) = open(now, limits, true);
    c.handle_input(now, &997u32.to_be_bytes());
    assert_eq!(close_reason(&mut c), Some(Close::TooLong(1001)));
    // A Have of 3 bytes instead of 4.
    let (mut c, _) = open(now, limits, true);
    c.handle_input(now, &[0, 0, 0, 4, 4, 0, 0, 1]);
    let reason = close_reason(&mut c).unwrap();
    assert!(matches!(reason, Close::Message(_)), "{reason:?}");
    assert_eq!(reason.outcome(), Outcome::Violation);
    // Input after the close is ignored.
    c.handle_input(now, &req(0, 0, BLOCK));
    assert_eq!((events(&mut c), c.queued()), (vec![], 0));
    // A message of an extension we did not announce (id 9: DHT port) is skipped whole.
    let (mut c, _) = open(now, limits, true);
    c.handle_input(
        now,
        &[&[0, 0, 0, 3, 9, 0x1a, 0xe1][..], &req(1, 0, BLOCK)].concat(),
    );
    assert_eq!((events(&mut c), c.queued()), (vec![Event::Requested(1)], 1));
}

#[test]
fn haves_and_bitfields_are_taken_whenever_they_come_and_each_piece_reported_once() {
    let now = Instant::now();
    let (mut c, _) = open(now, Limits::default(), false);
    // Bits beyond the fourth piece are not pieces.
    c.handle_input(
        now,
        &bytes(Message::Bitfield([0b1010_1111].as_slice().into())),
    );
    c.handle_input(now, &bytes(Message::Have(1)));
    c.handle_input(now, &bytes(Message::Have(4)));
    assert_eq!(
        events(&mut c),
        [Event::Has(0), Event::Has(2), Event::Has(1)]
    );
    // A second bitfield, and a Have of a piece it already has: only what is new is reported.
    c.handle_input(now, &bytes(Message::Bitfield([0xf0].as_slice().into())));
    c.handle_input(now, &bytes(Message::Have(2)));
    assert_eq!(events(&mut c), [Event::Has(3)]);
    assert!(!c.is_closed());
    // A bitfield after other messages (aria2 sends its bitfields after its first pieces).
    let (mut c, _) = open(now, Limits::default(), false);
    c.handle_input(now, &bytes(Message::KeepAlive));
    c.handle_input(now, &bytes(Message::Have(3)));
    c.handle_input(now, &bytes(Message::Bitfield([0xd0].as_slice().into())));
    assert_eq!(
        events(&mut c),
        [Event::Has(3), Event::Has(0), Event::Has(1)]
    );
    assert!(!c.is_closed());
}

#[test]
fn a_keep_alive_goes_out_after_the_idle_interval_without_sending() {
    let t0 = Instant::now();
    let limits = Limits::default();
    let (mut c, _) = open(t0, limits, true);
    let ka = limits.keep_alive;
    assert_eq!(c.poll_timeout(), Some(t0 + ka));
    c.handle_timeout(t0 + ka - ms(1));
    assert_eq!(transmit(&mut c, t0 + ka - ms(1)), Vec::<String>::new());
    // Something sent meanwhile moves the keep-alive on; with bytes waiting, none is due.
    let (mut c, _) = open(t0, limits, false);
    c.announce(1);
    assert_eq!(c.poll_timeout(), Some(t0 + limits.idle_timeout));
    assert_eq!(transmit(&mut c, t0 + ms(3000)), ["have 1"]);
    assert_eq!(c.poll_timeout(), Some(t0 + ms(3000) + ka));
    c.handle_timeout(t0 + ka);
    assert_eq!(transmit(&mut c, t0 + ka), Vec::<String>::new());
    c.handle_timeout(t0 + ms(3000) + ka);
    assert_eq!(transmit(&mut c, t0 + ms(3000) + ka), ["keepalive"]);
    // A block written counts as sending too.
    let at = t0 + ms(3000) + ka;
    c.handle_input(at, &req(1, 0, BLOCK));
    let r = c.next_request().and_then(|_| c.begin_block()).unwrap();
    c.block_written(at + ms(4000), &r);
    assert_eq!(c.poll_timeout(), Some(at + ms(4000) + ka));
}

#[test]
fn a_peer_silent_for_the_idle_timeout_is_closed() {
    let t0 = Instant::now();
    let limits = Limits {
        keep_alive: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(20),
        ..Limits::default()
    };
    let (mut c, _) = open(t0, limits, true);
    // Our keep-alives do not keep the peer alive: every 5 s one goes out, and at 20 s it ends.
    let mut kept = 0;
    for s in [5, 10, 15] {
        let now = t0 + Duration::from_secs(s);
        assert_eq!(c.poll_timeout(), Some(now));
        c.handle_timeout(now);
        kept += transmit(&mut c, now).len();
    }
    assert_eq!(kept, 3);
    // Anything from the peer, a keep-alive, resets its clock.
    c.handle_input(t0 + Duration::from_secs(19), &bytes(Message::KeepAlive));
    c.handle_timeout(t0 + Duration::from_secs(20));
    assert!(!c.is_closed());
    let silent_until = t0 + Duration::from_secs(39);
    c.handle_timeout(silent_until - ms(1));
    let _ = transmit(&mut c, silent_until - ms(1));
    assert_eq!(c.poll_timeout(), Some(silent_until));
    c.handle_timeout(silent_until);
    let reason = close_reason(&mut c).unwrap();
    assert_eq!(reason, Close::IdleTimeout(Duration::from_secs(20)));
    assert_eq!(reason.outcome(), Outcome::Ended);
}

#[test]
fn no_handshake_in_time_or_a_bad_one_is_refused() {
    let t0 = Instant::now();
    let limits = Limits::default();
    let mut c = Conn::new(t0, limits);
    c.handle_input(t0 + ms(10), &handshake()[..40]);
    // Bytes do not extend the handshake's deadline.
    assert_eq!(c.poll_timeout(), Some(t0 + limits.handshake_timeout));
    c.handle_timeout(t0 + limits.handshake_timeout - ms(1));
    assert!(!c.is_closed());
    c.handle_timeout(t0 + limits.handshake_timeout);
    let reason = close_reason(&mut c).unwrap();
    assert_eq!(
        (reason.clone(), reason.outcome()),
        (Close::HandshakeTimeout, Outcome::Refused)
    );
    // Another protocol string.
    let mut c = Conn::new(t0, limits);
    let mut hs = handshake();
    hs[0] = 18;
    c.handle_input(t0, &hs);
    assert!(matches!(close_reason(&mut c), Some(Close::Handshake(_))));
    // Closed halfway through.
    let mut c = Conn::new(t0, limits);
    c.handle_input(t0, &handshake()[..4]);
    c.handle_eof(t0);
    assert_eq!(close_reason(&mut c), Some(Close::HandshakeClosed));
    // The driver refuses a torrent it does not seed: no byte goes out.
    let mut c = Conn::new(t0, limits);
    c.handle_input(t0, &handshake());
    let _ = events(&mut c);
    c.close(Close::UnknownTorrent);
    c.accept(t0, LAYOUT, HASH, OURS, true);
    assert_eq!(transmit(&mut c, t0), Vec::<String>::new());
    assert_eq!(close_reason(&mut c), Some(Close::UnknownTorrent));
}

#[test]
fn the_peer_closing_after_its_handshake_is_a_normal_end() {
    let now = Instant::now();
    let (mut c, _) = open(now, Limits::default(), true);
    c.handle_eof(now);
    assert_eq!(
        close_reason(&mut c).map(|r| r.outcome()),
        Some(Outcome::Ended)
    );
    // Closed once: a second close is not reported.
    c.close(Close::TooManyRequests(1));
    assert_eq!(events(&mut c), []);
}

#[test]
fn a_piece_is_sent_whole_when_each_standard_block_went_once() {
    let mut sent = Sent::default();
    let len = u64::from(BLOCK) * 2 + 100;
    // Blocks in any order; a repeat changes nothing.
    assert!(!sent.add(0, BLOCK * 2, 100, len));
    assert!(!sent.add(0, 0, BLOCK, len));
    assert!(!sent.add(0, 0, BLOCK, len));
    assert!(sent.add(0, BLOCK, BLOCK, len));
    // Odd or overlapping blocks never count: 1 + 16 KiB at offset 1 cannot fake piece 1.
    assert!(!sent.add(1, 1, BLOCK, u64::from(BLOCK) * 2));
    assert!(!sent.add(1, 0, 1, u64::from(BLOCK) * 2));
    assert!(!sent.add(1, BLOCK, BLOCK, u64::from(BLOCK) * 2));
    assert!(sent.add(1, 0, BLOCK, u64::from(BLOCK) * 2));
}

/// A BEP 10 message: length, 20, extended id, payload.
fn extended(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32 + 2).to_be_bytes().to_vec();
    out.extend_from_slice(&[20, id]);
    out.extend_from_slice(payload);
    out
}

#[test]
fn the_manifest_exchange_is_announced_taken_and_sent_only_when_spoken_and_announced() {
    let now = Instant::now();
    let mut c = Conn::new(now, Limits::default());
    c.speak_extension();
    // The peer's handshake sets the extension bit (Handshake::new does).
    c.handle_input(now, &handshake());
    assert!(matches!(events(&mut c)[..], [Event::Handshake { .. }]));
    c.accept(now, LAYOUT, HASH, OURS, true);
    let mut out = Vec::new();
    c.poll_transmit(now, &mut out);
    let (ours, _) = Handshake::deserialize(&out[..HANDSHAKE_LEN]).unwrap();
    assert_ne!(
        ours.reserved & EXTENSION_BIT,
        0,
        "our handshake sets the bit"
    );
    let hs = extended(0, b"d1:md18:swarmcast_manifesti9eee");
    assert_eq!(&out[HANDSHAKE_LEN..HANDSHAKE_LEN + hs.len()], &hs[..]);
    // Nothing is sent before the peer names its id for the exchange, nor taken from it.
    assert!(!c.send_extension(b"d4:havei1ee"));
    c.handle_input(now, &extended(EXTENSION_ID, b"d4:wanti1ee"));
    assert!(events(&mut c).is_empty());
    // Its extended handshake (with other extensions and keys ours does not know).
    c.handle_input(
        now,
        &extended(
            0,
            b"d1:md11:ut_metadatai3e18:swarmcast_manifesti5ee1:v5:rqbite",
        ),
    );
    assert_eq!(events(&mut c), vec![Event::ExtensionPeer]);
    assert!(c.send_extension(b"d4:havei1ee"));
    let mut out = Vec::new();
    c.poll_transmit(now, &mut out);
    assert_eq!(out, extended(5, b"d4:havei1ee"), "sent with the peer's id");
    // A message on our id is handed over; one on another extension is skipped; the peer may
    // not switch ids mid-connection.
    c.handle_input(now, &extended(EXTENSION_ID, b"d4:wanti1ee"));
    c.handle_input(now, &extended(3, b"d8:msg_typei0e5:piecei0ee"));
    c.handle_input(now, &extended(0, b"d1:md18:swarmcast_manifesti6eee"));
    assert_eq!(
        events(&mut c),
        vec![Event::Extension(b"d4:wanti1ee".to_vec())]
    );
    assert!(!c.is_closed());
    // A handshake that does not parse, or names id 0 or one past a byte: nothing.
    for junk in [
        &b"i99999999999999999999999999e"[..],
        b"d1:md18:swarmcast_manifesti0eee",
        b"d1:md18:swarmcast_manifesti256eee",
    ] {
        let mut c = Conn::new(now, Limits::default());
        c.speak_extension();
        c.handle_input(now, &handshake());
        c.accept(now, LAYOUT, HASH, OURS, true);
        c.handle_input(now, &extended(0, junk));
        assert!(!events(&mut c).contains(&Event::ExtensionPeer));
        assert!(!c.is_closed());
    }
}

#[test]
fn a_seed_that_does_not_speak_the_exchange_announces_nothing_and_skips_it() {
    let now = Instant::now();
    let (mut c, out) = open(now, Limits::default(), true);
    let (ours, _) = Handshake::deserialize(&out[..HANDSHAKE_LEN]).unwrap();
    assert_eq!(ours.reserved, 0);
    c.handle_input(now, &extended(0, b"d1:md18:swarmcast_manifesti5eee"));
    c.handle_input(now, &extended(EXTENSION_ID, b"d4:wanti1ee"));
    assert!(events(&mut c).is_empty());
    assert!(!c.send_extension(b"d4:havei1ee"));
}
