#!/usr/bin/env bash
# Publish latency: the synthetic feed at BITRATE in 1 s segments (8 Mbit/s: 1 MB a segment) through
# `swarmcast publish` (release build), then the publisher's counters: time to hash, time the seeder
# takes to report seeding, and cut -> in a signed, served manifest. Baseline in the same run:
# `sha1sum` over each of the same segment files.
# Usage: scripts/bench-publish.sh [BITRATE] [SECONDS]   (defaults: 8M, 20)
set -euo pipefail
bitrate=${1:-8M}
seconds=${2:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/swarmcast"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
SWARMCAST_LOG=warn "$bin" publish --synth --bitrate "$bitrate" --synth-secs "$seconds" --segment-secs 1 \
  --window 64 --linger 0 --keep-segments --http 127.0.0.1:0 --data-dir "$dir/data" --key "$dir/key" \
  --metrics-out "$dir/publisher.jsonl" > /dev/null
sha=()
for f in "$dir"/data/*/*.ts; do
  s=$(date +%s%N); sha1sum "$f" > /dev/null; e=$(date +%s%N)
  sha+=($(( (e - s) / 1000 )))
done
python3 - "$dir/publisher.jsonl" "${sha[@]}" <<'PY'
import json, statistics, sys
events = [json.loads(l) for l in open(sys.argv[1])]
sha = [int(x) for x in sys.argv[2:]]
def col(kind, field):
    return [e[field] for e in events if e["kind"] == kind]
sizes = col("cut", "size")
rows = [("hash (read + SHA-1, ours)", col("hashed", "hash_us")),
        ("sha1sum of the same file (process)", sha),
        ("seeder add -> seeding (SWARMCAST_SEEDER)", col("seeding", "add_us")),
        ("cut -> in a served manifest", col("published", "cut_to_published_us"))]
def q(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(p * len(v)))]
print(f"{len(sizes)} segments, median size {statistics.median(sizes)/1e6:.2f} MB")
print(f"{'step':38} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
for name, v in rows:
    print(f"{name:38} {statistics.median(v)/1000:10.2f} {q(v, .95)/1000:8.2f} {max(v)/1000:8.2f}")
PY
