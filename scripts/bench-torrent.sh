#!/usr/bin/env bash
# Times `swarmcast torrent` against `sha1sum` and `mktorrent` on the same file, in one run, and prints
# the ratios. Both read the whole file and compute SHA-1 over it, so sha1sum is the floor.
# Usage: scripts/bench-torrent.sh [SIZE_MIB] [RUNS]   (defaults: 256 MiB, 7 runs; median reported)
set -euo pipefail
size_mib=${1:-256}
runs=${2:-7}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release/swarmcast"
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$dir/seg.ts"
cat "$dir/seg.ts" > /dev/null # warm the page cache: we measure hashing, not the disk
# mktorrent gets the same piece length as our rule picks, so both do the same work.
piece=$("$bin" torrent "$dir/seg.ts" -o "$dir/probe.torrent" 2>&1 >/dev/null | sed -nE 's/.*pieces of ([0-9]+) bytes.*/\1/p')
piece_exp=0; while [ $((1 << piece_exp)) -lt "$piece" ]; do piece_exp=$((piece_exp + 1)); done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { # prints seconds for one run of "$@"
  local s e
  s=$(date +%s.%N); "$@" > /dev/null 2>&1; e=$(date +%s.%N)
  echo "$e - $s" | bc -l
}
declare -A t
for name in sha1sum swarmcast mktorrent; do
  for _ in $(seq "$runs"); do
    case $name in
      sha1sum) timeit sha1sum "$dir/seg.ts" ;;
      swarmcast) timeit "$bin" torrent "$dir/seg.ts" -o "$dir/s.torrent" ;;
      mktorrent) rm -f "$dir/m.torrent"; timeit mktorrent -t 1 -l "$piece_exp" -o "$dir/m.torrent" "$dir/seg.ts" ;;
    esac
  done > "$dir/$name.times"
  t[$name]=$(median < "$dir/$name.times")
done
printf 'file: %d MiB, piece length 2^%d, %d runs each, median seconds\n' "$size_mib" "$piece_exp" "$runs"
for name in sha1sum swarmcast mktorrent; do
  printf '%-10s %8.3f s  %7.0f MiB/s  ratio to sha1sum %.2f\n' "$name" "${t[$name]}" \
    "$(echo "$size_mib / ${t[$name]}" | bc -l)" "$(echo "${t[$name]} / ${t[sha1sum]}" | bc -l)"
done
