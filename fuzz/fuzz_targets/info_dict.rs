//! Info dictionaries and `.torrent` files: `InfoDict::decode_strict` (what a manifest carries),
//! `SegmentTorrent::parse` (what `inspect` and users hand in) and `inspect::Document::parse`.
//!
//! Beyond "no panic": a strictly decoded info is valid and encodes back to its bytes; a parsed
//! torrent's info hash is the SHA-1 of its info bytes, and writing it out and parsing that again
//! gives the same info.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmcast_core::inspect::{describe_torrent, Document};
use swarmcast_core::{InfoDict, InfoHash, SegmentTorrent};

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = InfoDict::decode_strict(data) {
        assert!(info.validate().is_ok());
        assert_eq!(info.encode(), data);
        assert_eq!(info.piece_count() * 20, info.pieces.len() as u64);
        let _ = info.verify_piece(info.piece_count().saturating_sub(1), &[]);
        let _ = info.verify_piece(u64::MAX, &[]);
    }
    if let Ok(t) = SegmentTorrent::parse(data) {
        assert_eq!(t.info_hash(), InfoHash::of(t.info_bytes()));
        assert!(t.info().validate().is_ok());
        let _ = t.magnet();
        let _ = describe_torrent(&t);
        // Our own writing of it keeps the info (trackers may be normalised).
        let ours = SegmentTorrent::from_info(t.info().clone(), t.trackers().to_vec());
        let reparsed = SegmentTorrent::parse(&ours.to_torrent_bytes()).expect("ours parses");
        assert_eq!(reparsed.info(), t.info());
    }
    let _ = Document::parse(data);
});
