#!/usr/bin/env bash
# docs/reliability.md, "A publisher's restart": a publisher of 2 s segments killed with SIGKILL
# 20 s in and restarted 6 s later on the same ports and data directory; two viewers survive.
# Prints, per viewer and segment, how it completed (swarm or http) and its stall (ms).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/target/release/swarmcast
dir=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
publish() {
  "$bin" publish --synth --segment-secs 2 --http 127.0.0.1:18080 --listen 127.0.0.1:18081 \
    --key k --data-dir data --metrics-out "$1" > "$1.out" 2> "$1.err" &
}
publish pub1.jsonl
pub=$!
for _ in $(seq 100); do [[ -s pub1.jsonl.out ]] && break; sleep 0.1; done
link=$(head -1 pub1.jsonl.out)
for v in v1 v2; do
  "$bin" watch "$link" -o /dev/null --metrics-out $v.jsonl --listen 127.0.0.1:0 \
    > /dev/null 2> $v.err &
done
sleep 20
kill -9 $pub
sleep 6
publish pub2.jsonl
sleep 40
kill -INT $(jobs -p) 2>/dev/null || true
sleep 3
python3 - <<'PY'
import json
for v in ['v1', 'v2']:
    out = {}
    for line in open(f'{v}.jsonl'):
        e = json.loads(line)
        if e['kind'] == 'completed':
            out.setdefault(e['seg'], [None, None])[0] = e['via']
        elif e['kind'] == 'played':
            out.setdefault(e['seg'], [None, None])[1] = e['stall_us'] // 1000
    print(v, ' '.join(f'{n}:{via}/{stall}' for n, (via, stall) in sorted(out.items())))
PY
