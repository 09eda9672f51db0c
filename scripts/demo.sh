#!/usr/bin/env bash
# The main job: build swarmcast against the patched librqbit (scripts/patch-librqbit.sh), then
# run the local demo (a publisher and 3 viewers on loopback, about 30 s, then a table).
# Arguments go to `swarmcast demo` (see `swarmcast demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/patch-librqbit.sh
cargo run --release -- demo "$@"
