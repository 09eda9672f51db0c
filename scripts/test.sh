#!/usr/bin/env bash
# The test command: installs what the tests compare against (if missing), then runs every test
# of the workspace with nextest (timeouts and the serial group are in .config/nextest.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
cargo nextest run --workspace "$@"
