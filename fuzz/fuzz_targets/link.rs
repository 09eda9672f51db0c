//! Stream links (`swarmcast:?pk=...&xs=...`).
//!
//! Beyond "no panic": a parsed link prints as a link that parses to the same key and sources.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmcast_core::StreamLink;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(link) = text.parse::<StreamLink>() {
        assert!(!link.sources.is_empty());
        let printed = link.to_string();
        let again: StreamLink = printed.parse().expect("a printed link parses");
        assert_eq!(again, link);
    }
});
