#!/usr/bin/env bash
# The seed's methods side by side (issues 19 and 20): HTTP, minute swarming at 2, 10 and 60 s
# segments, relay-tree (Icecast), relay-resume (swarmcast relay) and striped-fec (4 RaptorQ
# substreams down disjoint trees of swarmcast stripe-nodes), on the emulated network.
#
#   - 20 and 50 viewers (nodes);
#   - RTT 50 and 150 ms, 1% loss each way;
#   - caps: 2.2x the bitrate for the publisher's host (the publisher, and the source Icecast or
#     root relay beside it) and for every node's upload (relays, and swarm viewers alike); fan-out
#     2 needs about 2.09x on the wire, so neither the tree nor the swarm is starved by
#     arithmetic (striped-fec: 1.39x at the publisher, at most 1.75x at a node of fan-out 5). HTTP sends every viewer its own copy, so a 2.2x publisher would starve it by
#     arithmetic: the HTTP baseline runs with the publisher uncapped (HTTP_CAP), the CDN case,
#     into its own directory (OUT/churn<C>-s2-http/);
#   - churn 0 and 10% of the nodes a minute (the same seeded schedule for every transport).
#
# One `swarmcast lab` per (churn, segment length) into OUT/churn<C>-s<S>/, each with its own
# summary.md, summary.csv and plots; `swarmcast report DIR` regenerates any of them.
#
# Usage: scripts/seed-methods.sh [options] OUT
#   --dry-run              print every lab's plan and the total estimate; run nothing
#   --transports LIST      subset of http,swarm,relay-tree,relay-resume,striped-fec (default: all)
#   --segments LIST        swarm segment lengths (default 2,10,60; the others run at 2 s)
#   --viewers LIST         default 20,50
#   --rtt LIST             default 50,150
#   --churn LIST           percent a minute, default 0,10
#   --repeats N            default 1
#   --duration SECS        media per run at 2 and 10 s segments (default 120; 60 s segments get
#                          300)
# Environment: SWARMCAST (the binary; default target/release/swarmcast), SEED (churn seed,
# default 1), CAP (default 2.2x), HTTP_CAP (the HTTP baseline's publisher cap, default none),
# FANOUT (default 2), BACK_BUFFER (default 30), BUFFER (the simulated player's, default 2),
# LAB_ARGS (more `swarmcast lab` options for every lab, split on spaces, e.g.
# "--no-http-fallback"). Needs root (the emulated network).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${SWARMCAST:-target/release/swarmcast}
SEED=${SEED:-1}
CAP=${CAP:-2.2x}
HTTP_CAP=${HTTP_CAP:-none}
FANOUT=${FANOUT:-2}
BACK_BUFFER=${BACK_BUFFER:-30}
BUFFER=${BUFFER:-2}
read -r -a lab_args <<<"${LAB_ARGS:-}"

dry=0
transports=http,swarm,relay-tree,relay-resume,striped-fec
segments=2,10,60
viewers=20,50
rtt=50,150
churns=0,10
repeats=1
duration=120
out=
while (($#)); do
    case $1 in
    --dry-run) dry=1 ;;
    --transports) transports=$2; shift ;;
    --segments) segments=$2; shift ;;
    --viewers) viewers=$2; shift ;;
    --rtt) rtt=$2; shift ;;
    --churn) churns=$2; shift ;;
    --repeats) repeats=$2; shift ;;
    --duration) duration=$2; shift ;;
    -h | --help) sed -n '2,32p' "$0"; exit 0 ;;
    -*) echo "seed-methods: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) out=$1 ;;
    esac
    shift
done
if [[ -z $out ]]; then
    echo "usage: scripts/seed-methods.sh [--dry-run] [options] OUT (see --help)" >&2
    exit 2
fi
if [[ ! -x $BIN ]]; then
    echo "no swarmcast binary at $BIN (cargo build --offline --release, or set SWARMCAST)" >&2
    exit 2
fi

has() { [[ ",$transports," == *",$1,"* ]]; }

# The labs: "segment-secs transports publisher-cap directory-suffix".
labs=()
relays=()
for t in relay-tree relay-resume striped-fec; do
    has "$t" && relays+=("$t")
done
at2=0
for s in ${segments//,/ }; do
    list=()
    has swarm && list+=(swarm)
    if [[ $s == 2 ]]; then
        list+=("${relays[@]}")
        at2=1
    fi
    ((${#list[@]})) && labs+=("$s $(IFS=,; echo "${list[*]}") $CAP s$s")
done
# The relays run at 2 s segments (the publisher's cut, which relay-resume's positions follow)
# even when the swarm does not.
if ((!at2 && ${#relays[@]})); then
    labs+=("2 $(IFS=,; echo "${relays[*]}") $CAP s2")
fi
has http && labs+=("2 http $HTTP_CAP s2-http")

total=0
failed=0
for c in ${churns//,/ }; do
    for lab in "${labs[@]}"; do
        read -r s ts pcap suffix <<<"$lab"
        d=$duration
        [[ $s == 60 ]] && d=300
        dir=$out/churn$c-$suffix
        args=(lab --net emulated --segment-secs "$s" --transports "$ts" --viewers "$viewers"
            --rtt "$rtt" --loss 1 --publisher-upload-limit "$pcap" --viewer-upload-limit "$CAP"
            --fanout "$FANOUT" --back-buffer "$BACK_BUFFER" --playout-buffer "$BUFFER"
            --churn "$c" --churn-seed "$SEED" --repeats "$repeats" --duration "$d"
            ${lab_args[@]+"${lab_args[@]}"})
        if ((dry)); then
            line=$("$BIN" "${args[@]}" --dry-run 2>&1 >/dev/null | grep -m1 estimated)
            echo "$dir: $line"
            min=$(sed -E 's/.*estimated ([0-9]+) min ([0-9]+) s.*/\1/' <<<"$line")
            sec=$(sed -E 's/.*estimated ([0-9]+) min ([0-9]+) s.*/\2/' <<<"$line")
            total=$((total + 60 * min + sec))
            continue
        fi
        echo "seed-methods: $dir ($ts at $s s, churn $c%)" >&2
        mkdir -p "$out"
        "$BIN" "${args[@]}" --out "$dir" >"$dir.md" 2>"$dir.log" || {
            echo "seed-methods: $dir failed or has inconsistent runs (see $dir.log)" >&2
            failed=$((failed + 1))
        }
    done
done
if ((dry)); then
    echo "total: about $((total / 3600)) h $((total % 3600 / 60)) min"
fi
exit $((failed > 0))
