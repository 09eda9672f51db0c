#!/usr/bin/env bash
# Regenerates every archived lab run's report and checks it is byte-identical to the archived one.
#
# For each docs/experiments/*raw.tar.xz: extracts it into a temporary directory, finds every
# results directory in it (a directory holding plan.json and runs/), copies it, runs
# `swarmcast report COPY`, and compares:
#   - every file of the archived results directory with the regenerated copy (`diff -r`; files
#     the archive does not keep, mostly plots, are only counted);
#   - where docs/experiments/ has a committed copy of that results directory
#     (docs/experiments/<archive>/<dir> or docs/experiments/<dir>), every committed file with the
#     regenerated one.
# Exits non-zero if any differs or any report fails.
#
# Usage: scripts/regen-reports.sh [SWARMCAST_BINARY]   (default: target/release/swarmcast)
# Bounded: each report gets REPORT_TIMEOUT seconds (default 300). Temporary files are removed on
# exit.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${1:-target/release/swarmcast}
REPORT_TIMEOUT=${REPORT_TIMEOUT:-300}
EXPERIMENTS=docs/experiments

if [[ ! -x $BIN ]]; then
    echo "no swarmcast binary at $BIN (cargo build --offline --release)" >&2
    exit 2
fi
BIN=$(realpath "$BIN")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/regen-reports.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

checked=0
committed=0
failed=0
extra=0
identical=0
inconsistent=0
shopt -s nullglob
for archive in "$EXPERIMENTS"/*raw.tar.xz; do
    name=$(basename "$archive" .tar.xz)
    stem=${name%raw}
    stem=${stem%-}
    work="$TMP/$name"
    mkdir -p "$work/orig" "$work/copy"
    tar xJf "$archive" -C "$work/orig"
    while IFS= read -r plan; do
        dir=$(dirname "$plan")
        rel=${dir#"$work/orig/"}
        [[ -d $dir/runs ]] || continue
        copy="$work/copy/$rel"
        mkdir -p "$(dirname "$copy")"
        cp -a "$dir" "$copy"
        # `report` exits 1 when a run's consistency checks fail (some archived runs record such
        # runs): the report is still written, and compared like any other.
        rm -f "$copy/summary.md"
        rc=0
        timeout "$REPORT_TIMEOUT" "$BIN" report "$copy" >"$work/report.log" 2>&1 || rc=$?
        if ((rc != 0)) && { ((rc != 1)) || [[ ! -f $copy/summary.md ]] \
            || ! grep -q "some runs are inconsistent" "$work/report.log"; }; then
            echo "FAIL $name:$rel: swarmcast report exited $rc:" >&2
            tail -n 5 "$work/report.log" >&2
            failed=$((failed + 1))
            continue
        fi
        ((rc == 0)) || inconsistent=$((inconsistent + 1))
        checked=$((checked + 1))
        # Every archived file must be regenerated identically; new files (plots the archive did
        # not keep) are only counted.
        if ! diff -r "$dir" "$copy" >"$work/diff.txt" 2>&1; then
            if grep -v "^Only in $copy" "$work/diff.txt" >"$work/real.txt"; then
                echo "DIFF $name:$rel (archive)" >&2
                head -n 20 "$work/real.txt" >&2
                failed=$((failed + 1))
                continue
            fi
            extra=$((extra + 1))
        fi
        identical=$((identical + 1))
        # The committed copy, if any.
        for cand in "$EXPERIMENTS/$stem/$rel" "$EXPERIMENTS/$rel"; do
            if [[ -f $cand/summary.md ]]; then
                bad=0
                while IFS= read -r f; do
                    if ! cmp -s "$cand/$f" "$copy/$f"; then
                        echo "DIFF $name:$rel (committed $cand/$f)" >&2
                        bad=1
                    fi
                done < <(cd "$cand" && find . -path ./runs -prune -o -type f -print \
                    | grep -E '^\./(summary\.(csv|md)|plots/)')
                if ((bad)); then
                    failed=$((failed + 1))
                else
                    committed=$((committed + 1))
                fi
                break
            fi
        done
    done < <(find "$work/orig" -name plan.json | sort)
    rm -rf "$work"
done

echo "$checked results directories regenerated ($inconsistent report inconsistent runs, as archived);" \
    "$identical identical to their archives" \
    "($extra with new files the archive did not keep, e.g. plots), $committed also to their" \
    "committed copy under $EXPERIMENTS; $failed failed"
((failed == 0))
