#!/usr/bin/env bash
# docs/reliability.md, "Peers that claim pieces": VIEWERS honest viewers of a publisher of 2 s
# segments (loopback), first alone, then with an attacker (scripts/claim-attack.py) that opens as
# many connections per segment as there are viewers, each claiming every piece (MODE `claim`, an
# all-ones bitfield) or saying nothing (MODE `silent`), and never asking for a block. Prints, per
# run, the viewers' HTTP fallbacks, stalls and setup times (`completed.since_added_us`), and the
# publisher's ignored offers.
# Usage: [KEEP=1] [NETEM="delay 25ms loss 1%"] [PUBLISH_FLAGS="..."] [WATCH_FLAGS="..."]
#          bash scripts/claim-attack.sh [VIEWERS] [MODE] [SECONDS] [BINARY]
# KEEP keeps the files; NETEM (root) runs everything in a new network namespace whose loopback
# has that netem qdisc (e.g. 25 ms each way: a 50 ms round trip between every two processes);
# PUBLISH_FLAGS and WATCH_FLAGS are added to the publisher's and each viewer's command.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n ${NETEM:-} && -z ${CLAIM_ATTACK_NETNS:-} ]]; then
  exec env CLAIM_ATTACK_NETNS=1 unshare -n bash -c \
    "ip link set lo up && tc qdisc add dev lo root netem $NETEM && exec bash \"\$0\" \"\$@\"" \
    "$PWD/scripts/claim-attack.sh" "$@"
fi
viewers=${1:-5}
mode=${2:-claim}
secs=${3:-30}
bin=${4:-$PWD/target/release/swarmcast}
attack=$PWD/scripts/claim-attack.py
dir=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; [[ -n ${KEEP:-} ]] && echo "kept $dir" || rm -rf "$dir"' EXIT
cd "$dir"
run() { # NAME ATTACK(0|1)
  local name=$1 attacked=$2 port
  port=$((18100 + RANDOM % 800))
  mkdir "$name"
  "$bin" publish --synth --synth-secs "$secs" --segment-secs 2 --http 127.0.0.1:0 \
    --listen "127.0.0.1:$port" --key k --data-dir "$name/data" --linger 10 \
    --peer-conns-per-address 0 --http-conns-per-address 0 ${PUBLISH_FLAGS:-} \
    > "$name/pub.out" 2> "$name/pub.err" &
  local pub=$!
  for _ in $(seq 100); do [[ -s $name/pub.out ]] && break; sleep 0.1; done
  local link base
  link=$(head -1 "$name/pub.out")
  base=$(grep -o 'http://[^ ]*' "$name/pub.err" | head -1 || true)
  base=${base%/}
  local apid=
  if [[ $attacked == 1 ]]; then
    python3 "$attack" "$base" 127.0.0.1 "$port" "$viewers" "$((secs + 10))" "$mode" \
      > "$name/attack.out" 2>&1 &
    apid=$!
  fi
  local pids=()
  for i in $(seq "$viewers"); do
    timeout $((secs + 40)) "$bin" watch "$link" -o /dev/null --metrics-out "$name/v$i.jsonl" \
      --listen 127.0.0.1:0 ${WATCH_FLAGS:-} > /dev/null 2> "$name/v$i.err" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  curl -s "$base/metrics" > "$name/metrics.txt" || true
  [[ -n $apid ]] && { wait "$apid" || true; cat "$name/attack.out"; }
  kill -INT $pub 2>/dev/null || true
  wait $pub 2>/dev/null || true
  python3 - "$name" <<'PY'
import glob, json, statistics, sys, re
name = sys.argv[1]
done, stalls, http = [], 0, 0
for f in sorted(glob.glob(f"{name}/v*.jsonl")):
    for line in open(f):
        e = json.loads(line)
        if e["kind"] == "completed":
            done.append(e["since_added_us"] / 1000)
            http += e.get("via") == "http"
        elif e["kind"] == "played" and e["stall_us"] > 0:
            stalls += 1
done.sort()
q = lambda p: done[min(len(done) - 1, int(p * len(done)))] if done else float("nan")
m = open(f"{name}/metrics.txt").read()
ign = re.search(r"^swarmcast_wire_offers_ignored_total (\d+)", m, re.M)
print(f"{name}: {len(done)} segments completed, {http} by HTTP fallback, {stalls} stalls; "
      f"setup (completed since added) median {q(0.5):.0f} ms, p90 {q(0.9):.0f} ms, "
      f"max {q(1.0):.0f} ms; offers ignored {ign.group(1) if ign else '?'}")
PY
}
run alone 0
run attacked 1
