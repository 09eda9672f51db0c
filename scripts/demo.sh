#!/usr/bin/env bash
# The main job: build swarmcast against the patched librqbit (scripts/patch-librqbit.sh), then
# run the local demo (a publisher and 3 viewers on loopback, about 30 s, then a table).
# Arguments go to `swarmcast demo` (see `swarmcast demo --help`). DEMO_PROFILE=dev runs the test
# build's binary instead of a release build (CI does, to spare a second 7-minute build).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/patch-librqbit.sh
cargo run --profile "${DEMO_PROFILE:-release}" -- demo "$@"
