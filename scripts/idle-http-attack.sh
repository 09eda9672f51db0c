#!/usr/bin/env bash
# docs/reliability.md, "Idle HTTP connections": a publisher of 1 s segments at a fixed limit on
# open files, under idle HTTP connections from several addresses that are reopened as soon as
# the server closes them (scripts/idle-http-attack.py); a probe from another address asks for
# /manifest every half second. Prints what the probe got during the attack, then whether the
# manifest still advances after it, and the publisher's counters.
# Usage: bash scripts/idle-http-attack.sh [FILE_LIMIT [CONNECTIONS [ADDRESSES [SECONDS [BINARY]]]]]
#   defaults: 1024 1100 20 30 target/release/swarmcast; PUBLISH_FLAGS adds publish flags
#   (e.g. PUBLISH_FLAGS="--http-max-conns 1000" to lift the cap above what the limit allows)
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-1024} conns=${2:-1100} addrs=${3:-20} secs=${4:-30}
bin=$(realpath "${5:-target/release/swarmcast}")
attack=$PWD/scripts/idle-http-attack.py
dir=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
prlimit --nofile="$limit:$limit" "$bin" publish --synth --synth-secs $((secs + 60)) \
  --segment-secs 1 --http "127.0.0.1:$port" --listen 127.0.0.1:0 --key k --data-dir data \
  --linger 1 ${PUBLISH_FLAGS:-} > pub.out 2> pub.err &
pub=$!
for _ in $(seq 100); do [[ -s pub.out ]] && break; sleep 0.1; done
sleep 2
seq_of() { curl -s -m 5 "http://127.0.0.1:$port/metrics" | awk '/^swarmcast_manifest_seq /{print $2}'; }
echo "file limit $limit; before the attack: manifest seq $(seq_of)"
python3 "$attack" 127.0.0.1 "$port" "$conns" "$secs" "$addrs"
# The attacker's sockets are closed when it exits; the stream must go on from there.
before=$(seq_of || true)
sleep 5
after=$(seq_of || true)
echo "after the attack: manifest seq ${before:-none} then ${after:-none} 5 s later"
curl -s -m 5 "http://127.0.0.1:$port/metrics" \
  | grep -E '^swarmcast_(http_|input_|degraded)' | tr '\n' ' ' | sed 's/swarmcast_//g'; echo
kill -INT $pub 2>/dev/null || true
wait $pub 2>/dev/null || true
echo "publisher log, errors and warnings: $(grep -cE 'WARN|ERROR' pub.err)"
grep -E 'WARN|ERROR' pub.err | sed 's/^[^ ]* *//' | cut -c1-300 | sort | uniq -c | sort -rn | head -5
