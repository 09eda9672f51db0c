//! The manifest: envelope and body decoding, verification against the pinned key, and a verifier
//! holding a base document (so deltas are rebuilt and checked too).
//!
//! Beyond "no panic": a document that verifies is exactly what signing its body gives (signatures
//! are deterministic, documents canonical), and `decode` agrees with `verify`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use swarmcast_core::manifest::{self, Verdict, Verifier};
use swarmcast_core::SignedManifest;

fn base() -> &'static SignedManifest {
    static BASE: OnceLock<SignedManifest> = OnceLock::new();
    BASE.get_or_init(swarmcast_fuzz::base)
}

fuzz_target!(|data: &[u8]| {
    let secret = swarmcast_fuzz::secret();
    let key = secret.public();
    let decoded = manifest::decode(data);
    match manifest::verify(data, &key) {
        Ok(signed) => {
            assert_eq!(signed.bytes, data);
            let again = signed
                .manifest
                .sign(&secret)
                .expect("a verified body signs");
            assert_eq!(again.bytes, data, "a verified document is not canonical");
            let decoded = decoded.expect("verify accepted what decode refuses");
            assert!(decoded.self_signed);
            assert_eq!(decoded.manifest, signed.manifest);
        }
        Err(_) => {
            if let Ok(d) = &decoded {
                assert!(d.manifest.key != key || !d.self_signed);
            }
        }
    }
    let mut verifier = Verifier::new(key);
    let base = base();
    assert!(matches!(verifier.accept(&base.bytes), Ok(Verdict::New(_))));
    match verifier.accept_any(data) {
        Ok(Verdict::New(m)) => {
            assert!(m.manifest.seq > base.manifest.seq);
            assert_eq!(verifier.last_seq(), Some(m.manifest.seq));
            // The rebuilt (or received) document is what the verifier now holds.
            assert!(matches!(verifier.accept(&m.bytes), Ok(Verdict::Unchanged)));
        }
        Ok(Verdict::Unchanged) => assert_eq!(data, base.bytes),
        Err(_) => assert_eq!(verifier.last_seq(), Some(base.manifest.seq)),
    }
});
