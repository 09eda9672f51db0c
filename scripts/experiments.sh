#!/usr/bin/env bash
# Reproduces the lab runs of docs/experiments.md (about 60 minutes on a 2-core machine).
# Usage: bash scripts/experiments.sh [OUT_DIR]   (default: lab-results/experiments)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-lab-results/experiments}"
mkdir -p "$out"
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
echo "results in $out/*/summary.md"
