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
# The unit tests our patch series adds to librqbit (docs/librqbit.md), in the patched tree.
(cd vendor-patched/librqbit && CARGO_TARGET_DIR=../../target/librqbit-tests \
  cargo test --lib --no-default-features --features rust-tls swarmcast_)
cargo nextest run --workspace "$@"
