//! The canonical-bencode walker: `check_canonical` and `dict_value_span`.
//!
//! Beyond "no panic": a value proven canonical decodes with serde_bencode and encodes back to the
//! same bytes, and every span found lies within the input and is itself one whole value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_bencode::value::Value;
use swarmcast_core::bencode::{check_canonical, dict_value_span};

fuzz_target!(|data: &[u8]| {
    if check_canonical(data).is_ok() {
        let value: Value = serde_bencode::from_bytes(data).expect("canonical bencode decodes");
        let again = serde_bencode::to_bytes(&value).expect("a value encodes");
        assert_eq!(again, data, "canonical bencode does not round-trip");
    }
    for key in [&b"info"[..], b"body", b"sig", b""] {
        if let Ok(Some(span)) = dict_value_span(data, key) {
            assert!(span.start < span.end && span.end <= data.len());
            // The span is one value: lenient, so only shape, not canonical form, is checked.
            let inner = &data[span];
            assert!(matches!(inner[0], b'i' | b'l' | b'd' | b'0'..=b'9'));
        }
    }
});
