#!/usr/bin/env bash
# docs/reliability.md, "The peer port's slots": a publisher of 2 s segments under 1,100
# connections from 127.0.0.2 to its peer port that never send a byte and are reopened as soon as
# they are closed (scripts/peer-port-attack.py, 45 s); a viewer joins 3 s into the attack.
# Prints the attacker's counts and where the viewer's segments came from.
# Usage: bash scripts/peer-port-attack.sh [extra publish flags, e.g. --peer-conns-per-address 0]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/target/release/swarmcast
attack=$PWD/scripts/peer-port-attack.py
dir=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
"$bin" publish --synth --synth-secs 40 --segment-secs 2 --http 127.0.0.1:0 \
  --listen 127.0.0.1:18091 --key k --data-dir data --linger 20 "$@" > pub.out 2> pub.err &
pub=$!
for _ in $(seq 100); do [[ -s pub.out ]] && break; sleep 0.1; done
link=$(head -1 pub.out)
python3 "$attack" 127.0.0.1 18091 1100 45 > attack.out 2>&1 &
attacker=$!
sleep 3
timeout 80 "$bin" watch "$link" -o /dev/null --metrics-out v.jsonl --listen 127.0.0.1:0 \
  > /dev/null 2> v.err || true
wait $attacker || true
kill -INT $pub 2>/dev/null || true
cat attack.out
python3 - <<'PY'
import json
ev = [json.loads(l) for l in open('v.jsonl')]
done = [e for e in ev if e['kind'] == 'completed']
swarm = sum(1 for e in done if e.get('via') == 'swarm')
stalls = sum(1 for e in ev if e['kind'] == 'played' and e['stall_us'] > 0)
print(f"viewer: {len(done)} segments completed, {swarm} from the swarm "
      f"({100 * swarm / max(1, len(done)):.0f}%), {stalls} stalls")
PY
