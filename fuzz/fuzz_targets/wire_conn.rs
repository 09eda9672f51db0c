//! The wire seeder's connection state machine (sans IO), driven as a peer and a driver would.
//!
//! The input is a script. Its first 5 bytes choose the torrent's layout, the limits and whether
//! the connection speaks the manifest exchange; then each step is one byte (what to do) and its
//! argument: bytes from the peer (a length byte, then that many bytes), time passing (up to
//! 25.5 s) and the timer firing, the driver accepting the handshake, announcing a piece, serving
//! the next request, the peer closing, the driver closing, sending, or (a step byte of 248 or
//! more) queueing a message of the manifest exchange (a length byte, then its payload).
//!
//! Beyond "no panic": nothing follows `Closed`, which comes at most once; `Has` names each piece
//! at most once and only pieces in range; a request handed out lies within its piece, was
//! announced, and is at most `max_request` long; no more than `max_queued_requests` are queued;
//! a closed connection asks for no timer; what is sent starts with our handshake once accepted;
//! the manifest exchange is announced at most once, only on a connection that speaks it, and its
//! messages come (and can be sent) only after.
#![no_main]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use swarmcast_fuzz::wire::conn::{Close, Conn, Event, Layout, Limits, HANDSHAKE_LEN};

const INFO_HASH: [u8; 20] = [0xAB; 20];
const OUR_ID: [u8; 20] = *b"-SW0100-fuzzfuzzfuzz";

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let (config, mut script) = data.split_at(5);
    let piece_length = [16_384u64, 32_768, 65_536, 16 * 1024 * 1024][config[0] as usize & 3];
    let pieces = u32::from(config[1] % 64) + 1;
    let tail = (u64::from(config[2]) * 257) % piece_length + 1;
    let layout = Layout {
        piece_length,
        length: u64::from(pieces - 1) * piece_length + tail,
        pieces,
    };
    let limits = Limits {
        handshake_timeout: Duration::from_secs(3),
        keep_alive: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(20),
        max_request: [16_384u32, 131_072, 1, 200_000][config[3] as usize & 3],
        max_queued_requests: usize::from(config[3] >> 2) % 16 + 1,
        max_message: [32 * 1024usize, 64, 5, 1 << 20][config[4] as usize & 3],
    };
    let announce_all = config[4] & 4 != 0;
    let speaks = config[4] & 8 != 0;

    let start = Instant::now();
    let mut now = start;
    let mut conn = Conn::new(now, limits);
    if speaks {
        conn.speak_extension();
    }
    let mut extension_peer = false;
    let mut handshake_seen = false;
    let mut accepted = false;
    let mut closed = false;
    let mut has = HashSet::new();
    let mut asked = HashSet::new();
    let mut announced = vec![announce_all; pieces as usize];
    let mut sent = Vec::new();
    let mut steps = 0;
    while let Some((&op, rest)) = script.split_first() {
        script = rest;
        steps += 1;
        if steps > 10_000 {
            break;
        }
        let mut arg = || -> u8 {
            let (&b, rest) = script.split_first().unwrap_or((&0, &[]));
            script = rest;
            b
        };
        match op % 8 {
            _ if op >= 248 => {
                let n = usize::from(arg()).min(script.len());
                let (payload, rest) = script.split_at(n);
                script = rest;
                if conn.send_extension(payload) {
                    assert!(extension_peer && accepted && !closed);
                }
            }
            0 => {
                let n = usize::from(arg()).min(script.len());
                let (bytes, rest) = script.split_at(n);
                script = rest;
                conn.handle_input(now, bytes);
            }
            1 => {
                now += Duration::from_millis(u64::from(arg()) * 100);
                if conn.poll_timeout().is_some_and(|t| t <= now) {
                    conn.handle_timeout(now);
                }
            }
            2 => {
                conn.accept(now, layout, INFO_HASH, OUR_ID, announce_all);
                if handshake_seen && !closed {
                    accepted = true;
                }
            }
            3 => {
                let piece = u32::from(arg());
                let told = conn.announce(piece);
                if told {
                    assert!(accepted && !closed);
                    assert!(!announced[piece as usize], "piece {piece} announced twice");
                    announced[piece as usize] = true;
                }
            }
            4 => {
                if let Some(r) = conn.next_request() {
                    assert!(accepted && !closed);
                    assert!(r.length > 0 && r.length <= limits.max_request);
                    let range = layout.block(&r).expect("a request outside its piece");
                    assert!(range.end <= layout.length);
                    assert!(
                        announced[r.index as usize],
                        "a request for an unannounced piece"
                    );
                    if arg() & 1 == 0 {
                        if let Some(r) = conn.begin_block() {
                            if let Some(piece) = conn.block_written(now, &r) {
                                assert_eq!(piece, r.index);
                            }
                        }
                    }
                }
            }
            5 => conn.handle_eof(now),
            6 => conn.close(Close::UnknownTorrent),
            _ => {
                conn.poll_transmit(now, &mut sent);
            }
        }
        assert!(conn.queued() <= limits.max_queued_requests);
        while let Some(event) = conn.poll_event() {
            assert!(!closed, "an event after Closed: {event:?}");
            match event {
                Event::Handshake { info_hash, .. } => {
                    assert!(!handshake_seen, "two handshakes");
                    handshake_seen = true;
                    let _ = info_hash;
                }
                Event::Has(p) => {
                    assert!(accepted && p < pieces, "Has({p}) of {pieces}");
                    assert!(has.insert(p), "Has({p}) twice");
                }
                Event::Requested(p) => {
                    assert!(accepted && p < pieces, "Requested({p}) of {pieces}");
                    assert!(asked.insert(p), "Requested({p}) twice");
                }
                Event::ExtensionPeer => {
                    assert!(speaks && !extension_peer, "ExtensionPeer twice or unasked");
                    extension_peer = true;
                }
                Event::Extension(_) => {
                    assert!(extension_peer, "an exchange message before ExtensionPeer");
                }
                Event::Closed(reason) => {
                    closed = true;
                    let _ = reason.outcome();
                }
            }
        }
        assert_eq!(conn.is_closed(), closed);
        if closed {
            assert_eq!(conn.poll_timeout(), None);
        }
    }
    conn.poll_transmit(now, &mut sent);
    if accepted && !sent.is_empty() {
        assert!(sent.len() >= HANDSHAKE_LEN);
        assert_eq!(&sent[28..48], &INFO_HASH);
    }
});
