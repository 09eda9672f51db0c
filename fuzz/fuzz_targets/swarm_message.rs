//! The manifest exchange's messages as a peer sends them: `gossip::Message::decode` and one
//! peer's `gossip::Reassembly`.
//!
//! The input is a list of payloads, each a length byte pair (big endian) and that many bytes.
//! Beyond "no panic": a whole message that decodes encodes back to a payload that decodes to the
//! same message; a message the reassembly completes is at most `MAX_DOCUMENT` long, carried by at
//! least its own bytes, and, if sent again in parts by `payloads`, comes back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmcast_core::gossip::{Message, Reassembly, MAX_DOCUMENT};

fuzz_target!(|data: &[u8]| {
    let mut r = Reassembly::default();
    let mut rest = data;
    for _ in 0..64 {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let n = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (payload, tail) = tail.split_at(n);
        rest = tail;
        if let Ok(m) = Message::decode(payload) {
            assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
        if let Ok(Some((m, carried))) = r.push(payload) {
            if let Message::Manifest { doc, .. } = &m {
                assert!(doc.len() <= MAX_DOCUMENT || carried == payload.len());
                assert!(carried >= doc.len());
            }
            let mut again = Reassembly::default();
            let mut out = None;
            for p in m.payloads() {
                out = again.push(&p).expect("our own payloads are taken");
            }
            assert_eq!(out.map(|(m, _)| m), Some(m));
        }
    }
});
