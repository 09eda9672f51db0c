#!/usr/bin/env bash
# The test command: installs what the tests compare against (if missing), applies the librqbit
# patch series, runs the series' own unit tests in librqbit, then every test of the workspace
# with nextest (timeouts and the serial group are in .config/nextest.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
bash scripts/patch-librqbit.sh
# The unit tests our patch series add to librqbit and its wire-protocol crate (docs/librqbit.md),
# in the patched trees.
(cd vendor-patched/librqbit && CARGO_TARGET_DIR=../../target/librqbit-tests \
  cargo test --lib --no-default-features --features rust-tls swarmcast_)
for c in librqbit-peer-protocol librqbit-dht; do
  (cd "vendor-patched/$c" && CARGO_TARGET_DIR=../../target/librqbit-tests cargo test --lib swarmcast_)
done
cargo nextest run --workspace "$@"
