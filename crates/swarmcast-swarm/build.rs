//! Refuses to build against a librqbit without swarmcast's patch series, or with a stale one.
//!
//! `scripts/patch-librqbit.sh` builds the patched tree and writes `.cargo/config.toml`, which
//! points cargo at it and sets `SWARMCAST_LIBRQBIT_PATCHES` to a digest of the pinned crate
//! checksum and the patches. This script computes the same digest from `patches/librqbit/` and
//! `patches/librqbit-peer-protocol/`, `patches/librqbit-dht/` and
//! fails, naming the script, when the variable is missing (a fresh clone) or differs (a patch
//! changed since the script last ran).

use sha1::{Digest, Sha1};
use std::path::Path;

const VAR: &str = "SWARMCAST_LIBRQBIT_PATCHES";
/// The patched crates, in the script's order.
const CRATES: [&str; 3] = ["librqbit", "librqbit-peer-protocol", "librqbit-dht"];

fn main() {
    // Read when the script runs, not when it is compiled: cargo may reuse one compiled build
    // script for two clones that share a target directory.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|e| fail(&format!("cargo did not set CARGO_MANIFEST_DIR: {e}")));
    println!("cargo:rerun-if-env-changed={VAR}");
    let mut hasher = Sha1::new();
    for krate in CRATES {
        let dir = Path::new(&manifest_dir).join("../../patches").join(krate);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", dir.display())))
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".patch"))
            .collect();
        names.sort();
        for name in std::iter::once(format!("{krate}-9.1.0.crate.sha256")).chain(names) {
            let path = dir.join(&name);
            println!("cargo:rerun-if-changed={}", path.display());
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", path.display())));
            hasher.update(&bytes);
        }
    }
    let want = hex(&hasher.finalize());
    match std::env::var(VAR) {
        Ok(found) if found == want => {}
        Ok(found) => fail(&format!(
            "the librqbit patch series changed since it was applied (stamp {found}, patches \
             {want}): run `bash scripts/patch-librqbit.sh`"
        )),
        Err(_) => fail(
            "librqbit is not patched: run `bash scripts/patch-librqbit.sh` once \
             (it builds vendor-patched/librqbit and .cargo/config.toml; see docs/librqbit.md)",
        ),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    println!("cargo:warning={message}");
    std::process::exit(1)
}
