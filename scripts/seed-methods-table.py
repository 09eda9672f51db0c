#!/usr/bin/env python3
"""The side-by-side table of docs/experiments.md ("The seed's claims, measured") from the
summary.csv files `scripts/seed-methods.sh` leaves (one per lab directory).

Usage: scripts/seed-methods-table.py [--plots DIR] [LABEL=]OUT[:TRANSPORTS] ...

Every OUT is a directory `seed-methods.sh` wrote (or any directory holding lab directories with
a summary.csv). Runs under a LABEL are their own rows, their transport named "<transport>
(LABEL)" (e.g. `no-fallback=OUT2` for a run with `LAB_ARGS=--no-http-fallback`). `:TRANSPORTS` (a comma
list) keeps only those transports' runs of OUT. `--plots DIR` also writes, per audience size,
grouped bar charts (SVG, no dependencies) of bytes lost, stalls, glass to glass, publisher upload
and wire / payload: `DIR/n<nodes>-<figure>.svg`. Runs of the same point (viewers, churn, RTT, transport, segment length) are
listed in one row, their figures joined by " / " in the order of the OUT arguments, then of the
runs' repeat numbers: the spread between repeats is what the table shows, not an average.
"""

import csv
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

COLUMNS = [
    ("publisher upload / stream", "publisher_upload_per_stream", lambda v: f"{float(v):.2f}"),
    ("from peers", "share_from_peers", lambda v: f"{100 * float(v):.1f}%"),
    ("stalls / node", "playout_stalls", None),  # divided by the nodes below
    ("stall time", "playout_stall_share", lambda v: f"{100 * float(v):.1f}%"),
    ("bytes lost", "lost_share", lambda v: f"{100 * float(v):.1f}%"),
    ("startup ms", "playout_startup_median_ms", lambda v: f"{float(v):.0f}"),
    ("g2g median ms", "glass_median_ms", lambda v: f"{float(v):.0f}"),
    ("g2g p95 ms", "glass_p95_ms", lambda v: f"{float(v):.0f}"),
    ("wire / payload", "wire_per_payload", lambda v: f"{float(v):.2f}"),
]
ORDER = {"http": 0, "swarm": 1, "relay-tree": 2, "relay-resume": 3, "striped-fec": 4}


def rows(out):
    for path in sorted(Path(out).glob("**/summary.csv")):
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                yield r


def valid(r):
    v = "yes" if r["consistent"] == "true" else "no"
    if r["saturated"] == "true":
        v += ", saturated"
    return v


PLOTS = [
    ("lost", "bytes lost (%)", "lost_share", 100.0),
    ("stalls", "stalls / node", "playout_stalls", None),
    ("glass", "glass to glass, median (s)", "glass_median_ms", 0.001),
    ("publisher_upload", "publisher upload / stream (copies)", "publisher_upload_per_stream", 1.0),
    ("overhead", "wire / payload", "wire_per_payload", 1.0),
]
COLORS = ["#d62728", "#2ca02c", "#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]


def value(r, col, scale):
    v = r.get(col, "")
    if v == "":
        return None
    v = float(v)
    return v / int(r["viewers"]) if scale is None else v * scale


def svg_bars(path, title, groups, series, values):
    """Grouped bars: one group per transport, one bar per series (a configuration); each bar
    the mean of its runs, each run a dot."""
    w, h, left, bottom, top = 1000, 380, 60, 100, 40
    pw, ph = w - left - 20, h - top - bottom
    top_value = max([v for vs in values.values() for v in vs] + [1e-9])
    # A round axis: 1, 2 or 5 times a power of ten, in four steps.
    step = 10 ** math.floor(math.log10(top_value / 4))
    step = next(m * step for m in (1, 2, 2.5, 5, 10) if 4 * m * step >= top_value)
    vmax = 4 * step
    gw = pw / max(len(groups), 1)
    bw = gw * 0.8 / max(len(series), 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="black"/>']
    for i in range(5):
        v = vmax * i / 4
        y = top + ph - ph * i / 4
        out.append(f'<text x="{left - 5}" y="{y + 4}" text-anchor="end">{v:g}</text>')
        out.append(f'<line x1="{left}" y1="{y}" x2="{left + pw}" y2="{y}" stroke="#ddd"/>')
    for gi, g in enumerate(groups):
        gx = left + gi * gw + gw * 0.1
        # "swarm (no fallback) 2 s" -> "swarm 2 s" over "(no fallback)".
        first, _, rest = g.partition(" (")
        note, _, tail = rest.partition(")")
        lines = [first + tail] + ([f"({note})"] if note else [])
        for li, line in enumerate(lines):
            out.append(f'<text x="{left + gi * gw + gw / 2}" y="{top + ph + 16 + 14 * li}" text-anchor="middle">{line}</text>')
        for si, s in enumerate(series):
            vs = values.get((g, s), [])
            if not vs:
                continue
            mean = sum(vs) / len(vs)
            x = gx + si * bw
            bh = ph * mean / vmax
            c = COLORS[si % len(COLORS)]
            out.append(f'<rect x="{x:.1f}" y="{top + ph - bh:.1f}" width="{bw * 0.9:.1f}" height="{bh:.1f}" fill="{c}" fill-opacity="0.6"/>')
            for v in vs:
                out.append(f'<circle cx="{x + bw * 0.45:.1f}" cy="{top + ph - ph * v / vmax:.1f}" r="2.5" fill="black"/>')
    for si, s in enumerate(series):
        x = left + (si % 4) * 210
        y = h - 40 + (si // 4) * 16
        out.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{COLORS[si % len(COLORS)]}" fill-opacity="0.6"/>')
        out.append(f'<text x="{x + 14}" y="{y}">{s}</text>')
    out.append("</svg>")
    Path(path).write_text("\n".join(out) + "\n")


def group(key):
    """A point's bar group: the transport, with its segment length for the swarm's."""
    transport, seg = key[4], key[5]
    return f"{transport} {seg} s" if transport.startswith("swarm") else transport


def plots(points, out_dir, viewers):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = sorted(k for k in points if k[0] == viewers)
    groups = []
    for k in keys:
        g = group(k)
        if g not in groups:
            groups.append(g)
    series = sorted({(k[1], k[2]) for k in keys})
    names = [f"churn {c}%, RTT {r} ms" for c, r in series]
    for name, title, col, scale in PLOTS:
        values = {}
        for k in keys:
            g = group(k)
            s = names[series.index((k[1], k[2]))]
            vs = [value(r, col, scale) for r in points[k]]
            values[(g, s)] = [v for v in vs if v is not None]
        svg_bars(out_dir / f"n{viewers}-{name}.svg", f"{title}, {viewers} nodes (bar: mean; dots: runs)", groups, names, values)


def main():
    args = sys.argv[1:]
    plot_dir = None
    if len(args) >= 2 and args[0] == "--plots":
        plot_dir, args = args[1], args[2:]
    if not args:
        sys.exit(__doc__)
    points = defaultdict(list)
    for arg in args:
        label, _, out = arg.rpartition("=")
        out, _, only = out.partition(":")
        got = [r for r in rows(out) if not only or r["transport"] in only.split(",")]
        if not got:
            sys.exit(f"seed-methods-table: no summary.csv under {out}")
        for r in sorted(got, key=lambda r: int(r["repeat"])):
            rtt = re.search(r"rtt (\d+) ms", r["net"])
            key = (
                int(r["viewers"]),
                int(float(r["churn_pct"] or 0)),
                int(rtt.group(1)) if rtt else 0,
                ORDER.get(r["transport"], 9),
                r["transport"] + (f" ({label})" if label else ""),
                int(r["segment_secs"]),
            )
            points[key].append(r)
    head = ["nodes", "churn %/min", "RTT ms", "transport", "seg s", "runs"]
    head += [c[0] for c in COLUMNS] + ["valid"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---:" if h not in ("transport", "valid") else "---" for h in head) + "|")
    for key in sorted(points):
        viewers, churn, rtt, _, transport, seg = key
        runs = points[key]
        cells = [str(viewers), str(churn), str(rtt), transport, str(seg), str(len(runs))]
        for _, col, fmt in COLUMNS:
            vals = []
            for r in runs:
                v = r.get(col, "")
                if v == "":
                    vals.append("-")
                elif fmt is None:
                    vals.append(f"{float(v) / int(r['viewers']):.2f}")
                else:
                    vals.append(fmt(v))
            cells.append(" / ".join(vals))
        cells.append(" / ".join(valid(r) for r in runs))
        print("| " + " | ".join(cells) + " |")
    if plot_dir:
        for viewers in sorted({k[0] for k in points}):
            plots(points, plot_dir, viewers)


if __name__ == "__main__":
    main()
