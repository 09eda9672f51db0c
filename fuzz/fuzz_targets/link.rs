//! Stream links (`swarmcast:?pk=...&xs=...`, or the key alone: `swarmcast:?pk=...`).
//!
//! Beyond "no panic": a parsed link prints as a link that parses to the same key and sources; a
//! link with no source prints as the key alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmcast_core::StreamLink;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(link) = text.parse::<StreamLink>() {
        let printed = link.to_string();
        assert_eq!(
            link.sources.is_empty(),
            !printed.contains("xs="),
            "{printed}"
        );
        let again: StreamLink = printed.parse().expect("a printed link parses");
        assert_eq!(again, link);
    }
});
