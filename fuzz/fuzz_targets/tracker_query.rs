//! The tracker's announce query parser (`parse_announce`).
//!
//! Beyond "no panic": an accepted announce has a non-zero port, the caller's address and at most
//! `MAX_NUMWANT` peers wanted.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use swarmcast_fuzz::query::{parse_announce, MAX_NUMWANT};

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    for remote in [
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        match parse_announce(query, remote) {
            Ok(a) => {
                assert_ne!(a.addr.port(), 0);
                assert_eq!(a.addr.ip(), remote);
                assert!(a.numwant <= MAX_NUMWANT);
            }
            Err(e) => assert!(!e.0.is_empty()),
        }
    }
});
