#!/usr/bin/env bash
# Reproduces the lab runs of docs/experiments.md (about 110 minutes on a 2-core machine).
# Usage: bash scripts/experiments.sh [OUT_DIR]   (default: lab-results/experiments)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-lab-results/experiments}"
mkdir -p "$out"
bash scripts/patch-librqbit.sh
cargo build --release --quiet
bin=target/release/swarmcast
# 1. The default sweep, twice: 2, 10 and 60 s segments x 1, 5 and 20 viewers, swarm and HTTP
#    side by side, 1 Mbit/s, everyone joining at once, no caps.
"$bin" lab --repeats 2 --out "$out/default" || true
# 2. The issue's target case: 20 viewers, the publisher capped at 1.5x the bitrate.
"$bin" lab --viewers 20 --publisher-upload-limit 1.5x --out "$out/capped" || true
# 3. Join patterns: churn and staggered, 2 s segments, 5 viewers.
"$bin" lab --segment-secs 2 --viewers 5 --duration 40 --join churn --join-every 5 --out "$out/churn" || true
"$bin" lab --segment-secs 2 --viewers 5 --duration 40 --join staggered --join-every 5 --out "$out/staggered" || true
# 5. Issue 7's target case, each change of the librqbit patch series on against off in the same
#    lab run, one run at a time: 20 viewers, the publisher capped at 1.5x, 2 and 10 s segments.
#    a) the patched swarm (wire seeder), the same with the librqbit seeder, without
#       super-seeding, unpatched librqbit, and HTTP, twice each;
"$bin" lab --segment-secs 2,10 --viewers 20 --publisher-upload-limit 1.5x --transports swarm,http \
  --variants patched,librqbit,no-superseed,upstream --repeats 2 --one-at-a-time --out "$out/efficiency" || true
#    b) each other change off alone, beside the patched swarm.
"$bin" lab --segment-secs 2,10 --viewers 20 --publisher-upload-limit 1.5x --transports swarm \
  --variants patched,no-have,no-wake,no-random,no-window,no-cancel,no-nodelay,no-steal \
  --one-at-a-time --out "$out/efficiency-each" || true
echo "results in $out/*/summary.md"
