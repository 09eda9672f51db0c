#!/usr/bin/env bash
# Coverage-guided fuzzing of swarmcast's parsers (docs/reliability.md, "Fuzzing"): builds the
# targets of fuzz/ with cargo-fuzz (installed if missing) and runs each with libFuzzer for a given
# time, starting from its committed corpus fuzz/corpus/<target>. Prints, per target, the
# executions, libFuzzer's final coverage (cov: edges, ft: features) and the corpus reached. A crash
# (or a timeout, or running out of memory) fails the script and names the input that caused it.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   run (default 60 s, every target)
#   bash scripts/fuzz.sh --ci                                what CI runs: build, then every target
#                                                            for an equal share of FUZZ_CI_BUDGET
#                                                            seconds (default 330) left after the
#                                                            build, 5 to 30 s each
#   bash scripts/fuzz.sh --cmin [TARGET...]                  minimize fuzz/corpus/<target> together
#                                                            with what the runs found
#                                                            (fuzz/target/corpus), keeping
#                                                            regression-* inputs
#   bash scripts/fuzz.sh --seed                              write the seed inputs (gen_corpus) into
#                                                            fuzz/corpus, then minimize
#
# Runs work on a copy of the corpus (fuzz/target/corpus/<target>), so the committed corpus changes
# only through --cmin. Toolchain: stable, no sanitizer (`--sanitizer none`: no RUSTC_BOOTSTRAP);
# FUZZ_SANITIZER=address uses AddressSanitizer through RUSTC_BOOTSTRAP=1 (slower, and only useful
# for the unsafe code of dependencies: ours forbids unsafe). Crash inputs go to
# fuzz/artifacts/<target>/; `fuzz/target/x86_64-unknown-linux-gnu/release/<target> <file>` replays one.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

TARGETS=(manifest bencode info_dict link ts_cutter framer tracker_query wire_conn swarm_message)
sanitizer=${FUZZ_SANITIZER:-none}
mode=run
seconds=60
case "${1:-}" in
  --ci) mode=ci; shift ;;
  --cmin) mode=cmin; shift ;;
  --seed) mode=seed; shift ;;
  '' | -*) ;;
  *)
    [[ $1 =~ ^[0-9]+$ ]] || { echo "fuzz.sh: seconds must be a number, got '$1'" >&2; exit 2; }
    seconds=$1
    shift
    ;;
esac
if [ $# -gt 0 ]; then
  for t in "$@"; do
    [[ " ${TARGETS[*]} " == *" $t "* ]] || { echo "fuzz.sh: no target '$t' (${TARGETS[*]})" >&2; exit 2; }
  done
  TARGETS=("$@")
fi

started=$SECONDS
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

build() {
  local env=() status=0
  [ "$sanitizer" = none ] || env=(RUSTC_BOOTSTRAP=1)
  # Offline when the lockfile's crates are already here (a developer's machine), else fetched.
  if cargo fetch --offline >/dev/null 2>&1; then env+=(CARGO_NET_OFFLINE=true); fi
  mkdir -p target
  env "${env[@]}" cargo fuzz build --sanitizer "$sanitizer" >target/build.log 2>&1 || status=$?
  # The main workspace's librqbit patch (.cargo/config.toml) is unused here: not worth a warning.
  grep -v -e 'patch `librqbit' -e 'Check that the patched' -e 'with the dependency' \
    -e 'what is locked' -e 'version. This may' -e 'Compiling ' target/build.log || true
  [ "$status" -eq 0 ] || { echo "fuzz.sh: build failed (fuzz/target/build.log)" >&2; exit 1; }
}

BIN=target/x86_64-unknown-linux-gnu/release
build
built=$((SECONDS - started))
echo "fuzz.sh: built in ${built}s (sanitizer: $sanitizer)"

minimize() {
  local t=$1 merged=target/corpus-merged/$1
  rm -rf "$merged"
  mkdir -p "$merged" "target/corpus/$t"
  # Edges only (no hit counts) and a set cover: the smallest corpus reaching every edge reached.
  # (cargo fuzz cmin's plain -merge=1 keeps every new hit count: 5.2 MB after 300 s a target.)
  "$BIN/$t" -set_cover_merge=1 -use_counters=0 -rss_limit_mb=2048 -timeout=10 "$merged" \
    "corpus/$t" "target/corpus/$t" >"target/$t.merge.log" 2>&1 ||
    { tail -20 "target/$t.merge.log"; echo "fuzz.sh: $t: merge failed" >&2; exit 1; }
  # Inputs that once crashed keep their names (and their place, whatever their coverage).
  cp corpus/"$t"/regression-* "$merged"/ 2>/dev/null || true
  rm -rf "corpus/$t"
  mv "$merged" "corpus/$t"
  echo "$t: corpus $(find "corpus/$t" -type f | wc -l) files, $(find "corpus/$t" -type f -exec cat {} + | wc -c) bytes"
}

case $mode in
  seed)
    "$BIN/gen_corpus" corpus
    for t in "${TARGETS[@]}"; do minimize "$t"; done
    exit 0
    ;;
  cmin)
    for t in "${TARGETS[@]}"; do minimize "$t"; done
    exit 0
    ;;
  ci)
    # The fuzz crate is outside the workspace, so `cargo fmt --all` does not see it.
    cargo fmt --check
    budget=${FUZZ_CI_BUDGET:-330}
    seconds=$(((budget - (SECONDS - started)) / ${#TARGETS[@]}))
    [ "$seconds" -le 30 ] || seconds=30
    [ "$seconds" -ge 5 ] || seconds=5
    ;;
esac

failed=()
printf '%-14s %6s %12s %7s %7s %8s %10s\n' target seconds execs cov ft corpus bytes
for t in "${TARGETS[@]}"; do
  work=target/corpus/$t
  mkdir -p "$work" "artifacts/$t"
  cp -n "corpus/$t"/* "$work"/ 2>/dev/null || true
  log=target/$t.log
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a leak or a huge allocation.
  status=0
  timeout --kill-after=30 $((seconds + 120)) "$BIN/$t" "$work" -max_total_time="$seconds" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
    >"$log" 2>&1 || status=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
  cov=$(grep -oE 'cov: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+' || echo '?')
  ft=$(grep -oE 'ft: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+' || echo '?')
  files=$(find "$work" -type f | wc -l)
  bytes=$(find "$work" -type f -exec cat {} + | wc -c)
  printf '%-14s %6s %12s %7s %7s %8s %10s\n' "$t" "$seconds" "$execs" "$cov" "$ft" "$files" "$bytes"
  if [ "$status" -ne 0 ] || [ -z "$done_line" ]; then
    artifact=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -1 | sed 's/Test unit written to //' || true)
    grep -E -A12 "panicked at|ERROR: libFuzzer|==ERROR" "$log" | head -30 >&2 || tail -30 "$log" >&2
    echo "fuzz.sh: $t FAILED (exit $status); input: fuzz/${artifact:-?} (log fuzz/$log)" >&2
    failed+=("$t")
  fi
done
echo "fuzz.sh: ${#TARGETS[@]} targets in $((SECONDS - started))s (build ${built}s)"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: crashes in: ${failed[*]}" >&2
  exit 1
fi
