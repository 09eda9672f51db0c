#!/usr/bin/env python3
"""One Markdown table of the net-lab baseline (docs/experiments.md): a row per run of every
`<DIR>/<point>/summary.csv` that scripts/netlab-baseline.sh wrote, in the script's order.

Usage: python3 scripts/netlab-table.py lab-results/netlab [POINT_PREFIX ...]
  (only the points whose names start with one of the prefixes, if given)
"""
import csv
import math
import sys
from pathlib import Path

ORDER = ["base", "segment-10s", "viewers-50", "viewers-100", "rtt", "loss-1",
         "viewer-upload-unlimited", "publisher-uncapped", "nat-60", "join-all", "rtt-uncapped",
         "cost-plain-20", "cost-normal-priority-20", "cost-emulated-50", "cost-plain-50", "cost-emulated", "cost-plain"]


def num(row, key):
    try:
        v = float(row.get(key, "") or "nan")
    except ValueError:
        return math.nan
    return v


def fmt(v, spec):
    return "-" if math.isnan(v) else format(v, spec)


def main(root: Path, prefixes: list) -> None:
    points = [p for p in ORDER if (root / p / "summary.csv").exists()]
    points += sorted(p.name for p in root.iterdir()
                     if (p / "summary.csv").exists() and p.name not in ORDER)
    if prefixes:
        points = [p for p in points if any(p.startswith(x) for x in prefixes)]
    head = ["point", "run", "viewers", "network", "stalls", "skips", "missed", "HTTP fallbacks",
            "from peers", "setup median / p95 ms", "startup ms", "behind live ms",
            "pub wire / published byte", "pub wire / fetched byte (payload + control + TCP/IP)",
            "dropped at its uplink / fetched byte",
            "control / viewer / seg B", "viewer overhead", "viewer TCP/IP share", "TCP rtt ms",
            "emulator lag p99 ms", "idle", "checks"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" if i < 4 else "---:" for i in range(len(head))) + "|")
    for p in points:
        with open(root / p / "summary.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            copies = num(r, "publisher_copies")
            fetched = num(r, "publisher_bytes") / copies if copies else math.nan
            published = num(r, "segments") * num(r, "segment_bytes")
            wire = num(r, "publisher_wire_per_byte")
            per_published = wire * fetched / published if published else math.nan
            split = "{} ({} + {} + {})".format(
                fmt(wire, ".2f"), fmt(num(r, "publisher_payload_per_byte"), ".2f"),
                fmt(num(r, "publisher_control_per_byte"), ".3f"),
                fmt(num(r, "publisher_tcpip_per_byte"), ".3f"))
            viewers = int(num(r, "viewers"))
            segments = int(num(r, "segments"))
            sat = " ⚠ saturated" if r.get("saturated") == "true" else ""
            run_id = r["id"].replace("-r1", "")
            print("| " + " | ".join([
                p + sat, run_id, str(viewers), r.get("net", "") or "loopback",
                fmt(num(r, "stalls"), ".0f"), fmt(num(r, "skips"), ".0f"),
                "{} of {}".format(fmt(num(r, "missed"), ".0f"), viewers * segments),
                fmt(num(r, "fallbacks"), ".0f"),
                fmt(100 * num(r, "peer_share"), ".1f") + "%",
                "{} / {}".format(fmt(num(r, "setup_median_ms"), ".0f"), fmt(num(r, "setup_p95_ms"), ".0f")),
                fmt(num(r, "startup_median_ms"), ".0f"),
                "{} / {}".format(fmt(num(r, "behind_live_median_ms"), ".0f"),
                                 fmt(num(r, "behind_live_p95_ms"), ".0f")),
                fmt(per_published, ".2f"), split,
                fmt(num(r, "publisher_queue_dropped_per_byte"), ".2f"),
                fmt(num(r, "control_bytes_per_viewer_segment"), ".0f"),
                fmt(100 * num(r, "viewer_overhead_share"), ".2f") + "%",
                fmt(100 * num(r, "viewer_tcpip_share"), ".1f") + "%",
                fmt(num(r, "tcp_rtt_median_ms"), ".0f"),
                fmt(num(r, "emulator_lag_p99_ms"), ".2f"),
                fmt(100 * num(r, "idle_mean"), ".0f") + "%",
                "ok" if r.get("consistent") == "true" else "FAILED: " + r.get("failed_checks", ""),
            ]) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "lab-results/netlab"), sys.argv[2:])
