#!/usr/bin/env bash
# What runs today of the main job: a synthetic live feed is cut into 2 s segments at keyframes, each
# segment gets its BitTorrent v1 torrent, and a signed manifest is verified as a viewer would
# (and refused once tampered). `swarmcast demo` (publisher + viewers on loopback) replaces this when
# the watch issue lands.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/swarmcast"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export SWARMCAST_LOG=warn

echo "== keygen"
"$bin" keygen --out "$dir/stream.key"

echo "== 6 s of the synthetic feed at 1 Mbit/s, cut into 2 s segments"
"$bin" synth --bitrate 1M --seconds 6 | "$bin" segment --segment-secs 2 --out "$dir/segments"

echo "== a torrent per segment"
for seg in "$dir"/segments/*.ts; do
  "$bin" torrent "$seg" --tracker http://127.0.0.1:8080/announce 2>/dev/null | head -1 | sed "s|^|$(basename "$seg")  info hash |"
done
"$bin" inspect "$dir/segments/00000000.ts.torrent"

echo "== a signed manifest (the test vector of docs/manifest.md), verified against its key"
vector_key=$(sed -n '/vector:public-key/,/^```$/p' "$root/docs/manifest.md" | sed -n '3p')
sed -n '/vector:document/,/^```$/p' "$root/docs/manifest.md" | sed '1,2d;$d' | tr -d '\n' \
  | python3 -c 'import sys, binascii; sys.stdout.buffer.write(binascii.unhexlify(sys.stdin.read()))' > "$dir/manifest"
"$bin" inspect "$dir/manifest" --key "$vector_key"

echo "== the same manifest with one byte changed must be refused"
cp "$dir/manifest" "$dir/tampered"
printf 'X' | dd of="$dir/tampered" bs=1 seek=200 conv=notrunc status=none
if "$bin" inspect "$dir/tampered" --key "$vector_key" > /dev/null; then
  echo "demo: a tampered manifest was accepted" >&2; exit 1
fi
echo "demo: ok"
