#!/usr/bin/env bash
# The main job as far as it exists: publish a synthetic live feed (2 s segments, seeded over
# BitTorrent, a signed manifest over HTTP) and check it as a viewer would: fetch the manifest named
# by the stream link and verify it against the pinned key, fetch a segment's torrent, and see a
# tampered manifest refused. `swarmcast demo` (publisher + viewers) replaces this with the watch issue.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/swarmcast"
dir=$(mktemp -d)
pub=""
cleanup() { [ -n "$pub" ] && kill -KILL "$pub" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
export SWARMCAST_LOG=warn

echo "== publish 10 s of the synthetic feed (1 Mbit/s) in 2 s segments"
"$bin" publish --synth --bitrate 1M --synth-secs 10 --segment-secs 2 --http 127.0.0.1:0 --linger 60 \
  --data-dir "$dir/data" --key "$dir/stream.key" --metrics-out "$dir/publisher.jsonl" > "$dir/link" 2> "$dir/publisher.log" &
pub=$!
for _ in $(seq 300); do [ -s "$dir/link" ] && break; sleep 0.1; done
link=$(head -1 "$dir/link")
[ -n "$link" ] || { cat "$dir/publisher.log"; echo "demo: the publisher printed no link" >&2; exit 1; }
echo "stream link: $link"
base=$(python3 -c 'import sys, urllib.parse; q = urllib.parse.parse_qs(sys.argv[1].split("?", 1)[1]); print(q["xs"][0].rsplit("/", 1)[0])' "$link")

echo "== wait for the third segment (blocking reload: /manifest?after=2), then verify via the link"
python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/manifest?after=2", timeout=60).read()' "$base"
"$bin" inspect "$link"

echo "== a segment's torrent, as any BitTorrent client would fetch it"
"$bin" inspect "$base/segments/00000000.torrent"

echo "== the manifest with one byte changed must be refused"
python3 -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1] + "/manifest", timeout=30).read())' "$base" "$dir/manifest"
key=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.parse_qs(sys.argv[1].split("?", 1)[1])["pk"][0])' "$link")
"$bin" inspect "$dir/manifest" --key "$key" > /dev/null
printf 'X' | dd of="$dir/manifest" bs=1 seek=120 conv=notrunc status=none
if "$bin" inspect "$dir/manifest" --key "$key" > /dev/null 2>&1; then
  echo "demo: a tampered manifest was accepted" >&2; exit 1
fi
echo "refused, as it must be"

echo "== Ctrl-C: end of stream, then exit"
kill -INT "$pub"; sleep 1; kill -INT "$pub"
wait "$pub"; pub=""
tail -1 "$dir/publisher.log"
echo "counters: $(wc -l < "$dir/publisher.jsonl") events in publisher.jsonl ($(grep -c '"kind":"published"' "$dir/publisher.jsonl") segments published)"
echo "demo: ok"
