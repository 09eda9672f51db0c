#!/usr/bin/env python3
"""Manifest figures of lab runs (issue 21; docs/experiments.md, "Manifests without the
publisher's server").

usage: python3 scripts/manifest-figures.py [--csv OUT.csv] LAB_OUT_DIR...

For every run under each `LAB_OUT_DIR/runs/`, from the nodes' JSON-lines counters:

- segments: `published` records of the publisher;
- publisher manifest bytes per segment: its `manifests_sent` record (written at exit), over
  HTTP (`http_bytes`, bodies) and in the swarm (`swarm_bytes`, exchange payloads plus 6 bytes of
  BitTorrent framing per message); per segment and per viewer too;
- spread: for every manifest published while every viewer was already in (after the last
  viewer's first manifest, before the end of stream), the time from its publication (the
  publisher's `published` record of that sequence number) to the first and to the last viewer
  holding it (a viewer holds sequence s from its first `manifest_fetched` with seq >= s); the
  medians and p95 over manifests of "last", and of "last minus first". All nodes share the
  machine's clock (`wall_us`).

Prints a Markdown table; `--csv` also writes one row per run.
"""
import csv
import json
import statistics
import sys
from pathlib import Path

FRAMING = 6  # BitTorrent message length, id 20, extended id


def records(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def run_figures(run):
    spec = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
    pub = records(run / "publisher.jsonl")
    published = {}
    for r in pub:
        if r["kind"] == "published":
            published.setdefault(r["seq"], r["wall_us"])
        if r["kind"] == "end_of_stream":
            published.setdefault(r["seq"], r["wall_us"])
    segments = sum(1 for r in pub if r["kind"] == "published")
    sent = [r for r in pub if r["kind"] == "manifests_sent"]
    sent = sent[-1] if sent else {}
    viewers = sorted(run.glob("viewer-*.jsonl"))
    holds = []  # per viewer: sorted (seq, wall_us) of manifests fetched
    modes = {}
    for v in viewers:
        fetched = [r for r in records(v) if r["kind"] == "manifest_fetched"]
        for r in fetched:
            modes[r.get("mode", "?")] = modes.get(r.get("mode", "?"), 0) + 1
        holds.append(sorted((r["seq"], r["wall_us"]) for r in fetched))
    joined = [h[0][1] for h in holds if h]
    eos = max((r["seq"] for r in pub if r["kind"] == "end_of_stream"), default=None)
    spreads, lasts = [], []
    if joined and len(joined) == len(holds):
        all_in = max(joined)
        for seq, t_pub in sorted(published.items()):
            if t_pub <= all_in or (eos is not None and seq >= eos):
                continue
            times = []
            for h in holds:
                t = next((w for s, w in h if s >= seq), None)
                if t is None:
                    break
                times.append(t)
            if len(times) != len(holds):
                continue
            lasts.append((max(times) - t_pub) / 1000)
            spreads.append((max(times) - min(times)) / 1000)
    n = len(viewers)
    http_b = sent.get("http_bytes", float("nan"))
    swarm_b = sent.get("swarm_bytes", 0) + FRAMING * sent.get("swarm_messages", 0)
    per_seg = lambda b: b / segments if segments else float("nan")
    return {
        "run": run.name,
        "viewers": n,
        "rtt_ms": spec.get("net", {}).get("rtt_ms", "") if isinstance(spec.get("net"), dict) else "",
        "segments": segments,
        "http_bytes_per_segment": per_seg(http_b),
        "swarm_bytes_per_segment": per_seg(swarm_b),
        "publisher_manifest_bytes_per_segment": per_seg(http_b + swarm_b),
        "per_viewer_per_segment": per_seg(http_b + swarm_b) / n if n else float("nan"),
        "swarm_documents": sent.get("swarm_documents", 0),
        "swarm_answers": sent.get("swarm_answers", 0),
        "http_responses": sent.get("http_responses", 0),
        "manifests_measured": len(lasts),
        "last_median_ms": statistics.median(lasts) if lasts else float("nan"),
        "last_p95_ms": pct(lasts, 95),
        "spread_median_ms": statistics.median(spreads) if spreads else float("nan"),
        "spread_p95_ms": pct(spreads, 95),
        "modes": " ".join(f"{k}:{v}" for k, v in sorted(modes.items())),
    }


def main(argv):
    out_csv = None
    if len(argv) >= 2 and argv[0] == "--csv":
        out_csv, argv = argv[1], argv[2:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    rows = []
    for d in argv:
        for run in sorted(Path(d).glob("runs/*")):
            if (run / "publisher.jsonl").exists():
                rows.append(run_figures(run))
    cols = [
        ("run", "run", "{}"),
        ("viewers", "N", "{}"),
        ("segments", "segs", "{}"),
        ("http_bytes_per_segment", "HTTP B/seg", "{:.0f}"),
        ("swarm_bytes_per_segment", "swarm B/seg", "{:.0f}"),
        ("per_viewer_per_segment", "B/seg/viewer", "{:.0f}"),
        ("swarm_answers", "wants answered", "{}"),
        ("manifests_measured", "manifests", "{}"),
        ("last_median_ms", "pub->last med ms", "{:.0f}"),
        ("last_p95_ms", "pub->last p95 ms", "{:.0f}"),
        ("spread_median_ms", "first->last med ms", "{:.0f}"),
        ("spread_p95_ms", "first->last p95 ms", "{:.0f}"),
        ("modes", "manifests by mode", "{}"),
    ]
    print("| " + " | ".join(c[1] for c in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f.format(r[k]) for k, _, f in cols) + " |")
    if out_csv:
        with open(out_csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()) if rows else ["run"])
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
