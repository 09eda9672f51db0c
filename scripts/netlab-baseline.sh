#!/usr/bin/env bash
# The net-lab baseline of docs/experiments.md ("The emulated internet: baseline"): the base point
# and one factor at a time from it, each node in its own network namespace behind an emulated
# access link. Needs root. About 35 minutes on a 2-core machine.
# Usage: bash scripts/netlab-baseline.sh [OUT_DIR] [extra lab flags, e.g. --repeats 2]
#   (default OUT_DIR: lab-results/netlab)
# With SWARMCAST_BASELINE=after: the points as a user who told swarmcast their uplink runs them
# (`--self-limit 0.9`: every capped process limits itself to 90% of its link's cap), plus issue
# 14's target points, and without the calibration and the emulator's-cost points (they measure
# the instrument, not swarmcast). About 35 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-lab-results/netlab}"
shift || true
mkdir -p "$out"
bash scripts/install-deps.sh
bash scripts/patch-librqbit.sh
cargo build --release --quiet
bin=target/release/swarmcast
"$bin" lab --cleanup
after=false
if [[ "${SWARMCAST_BASELINE:-}" == after ]]; then after=true; fi
# The calibration: round trip, loss and throughput under a cap between two emulated hosts.
if ! $after; then
  "$bin" lab --net emulated --net-check --rtt 0,50,150 --loss 0,1 --viewer-upload-limit 2x \
    > "$out/net-check.txt" || true
fi
# The base point: 20 viewers, 2 s segments, 1 Mbit/s, RTT 50 ms, 0% loss, viewer upload 2x the
# bitrate, the publisher capped at 1.5x, no NAT, viewers joining staggered over the first two
# segments (one every 0.2 s), 40 s of media. `point NAME [key=value ...]` runs the base point with
# the given factors changed.
EXTRA=("$@")
if $after; then EXTRA=(--self-limit 0.9 "${EXTRA[@]}"); fi
point() {
  local name="$1"; shift
  declare -A f=([segment-secs]=2 [viewers]=20 [rtt]=50 [loss]=0 [nat]=0
    [viewer-upload-limit]=2x [publisher-upload-limit]=1.5x [join]=staggered [join-every]=0.2
    [duration]=40 [transports]=swarm)
  local kv
  for kv in "$@"; do f[${kv%%=*}]="${kv#*=}"; done
  local args=(lab --net emulated --bitrate 1M)
  local k
  for k in "${!f[@]}"; do args+=("--$k" "${f[$k]}"); done
  "$bin" "${args[@]}" "${EXTRA[@]}" --out "$out/$name" || true
}
# Transports one at a time: the swarm and HTTP at the base point.
point base transports=swarm,http
# One factor at a time.
point segment-10s segment-secs=10 join-every=1 duration=60
point viewers-50 viewers=50 join-every=0.08
point viewers-100 viewers=100 join-every=0.04
point rtt rtt=0,150
point loss-1 loss=1
point viewer-upload-unlimited viewer-upload-limit=none
point publisher-uncapped publisher-upload-limit=none
point nat-60 nat=0.6
point join-all join=all
# Distance without caps: the swarm and HTTP at RTT 0, 50 and 150 ms, nobody capped.
point rtt-uncapped rtt=0,50,150 viewer-upload-limit=none publisher-upload-limit=none transports=swarm,http
if $after; then
  # Issue 14's target conditions: RTT 150 ms, 1% loss, 60% behind NAT, 2 s and 10 s segments,
  # at 20 viewers, 35 and 50.
  point target-2s rtt=150 loss=1 nat=0.6
  point target-2s-35 rtt=150 loss=1 nat=0.6 viewers=35 join-every=0.11
  point target-2s-50 rtt=150 loss=1 nat=0.6 viewers=50 join-every=0.08
  point target-10s rtt=150 loss=1 nat=0.6 segment-secs=10 duration=120
  echo "results in $out/*/summary.md"
  exit 0
fi
# The emulator's own cost at the largest audience: no shaping through the emulator, against the
# same namespaces with plain kernel forwarding (the control), at 20, 50 and 100 viewers (20
# emulated is rtt-uncapped's RTT 0 swarm run).
"$bin" lab --net plain --segment-secs 2 --viewers 20 --transports swarm \
  --join staggered --join-every 0.2 --duration 40 "${EXTRA[@]}" --out "$out/cost-plain-20" || true
# The emulator at normal priority (the A/B of docs/netlab.md, "Real-time priority"): 20 uncapped
# viewers at RTT 0, as in rtt-uncapped.
SWARMCAST_EMULATOR_NORMAL_PRIORITY=1 "$bin" lab --net emulated --segment-secs 2 --viewers 20 \
  --rtt 0 --viewer-upload-limit none --publisher-upload-limit none --transports swarm \
  --join staggered --join-every 0.2 --duration 40 "${EXTRA[@]}" --out "$out/cost-normal-priority-20" || true
"$bin" lab --net emulated --segment-secs 2 --viewers 50 --rtt 0 --transports swarm \
  --join staggered --join-every 0.08 --duration 40 "${EXTRA[@]}" --out "$out/cost-emulated-50" || true
"$bin" lab --net plain --segment-secs 2 --viewers 50 --transports swarm \
  --join staggered --join-every 0.08 --duration 40 "${EXTRA[@]}" --out "$out/cost-plain-50" || true
"$bin" lab --net emulated --segment-secs 2 --viewers 100 --rtt 0 --transports swarm \
  --join staggered --join-every 0.04 --duration 40 "${EXTRA[@]}" --out "$out/cost-emulated" || true
"$bin" lab --net plain --segment-secs 2 --viewers 100 --transports swarm \
  --join staggered --join-every 0.04 --duration 40 "${EXTRA[@]}" --out "$out/cost-plain" || true
echo "results in $out/*/summary.md"
