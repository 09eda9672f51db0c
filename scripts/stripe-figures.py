#!/usr/bin/env python3
"""Per-run figures of striped-fec lab runs, from each node's closing line (its log):
the FEC overhead (frame bytes received / stream bytes played), segments given up (blocks not
decodable), symbols lost (sent by the publisher for a segment the node played or gave up, never
received by it; "-" for logs from before the count existed), forged symbols refused, surplus
symbols (arrived after their segment was rebuilt), parent connections, and decoding CPU (ms per
minute of media played).

Usage: scripts/stripe-figures.py LAB_DIR...   (directories holding runs/<id>/viewer-*.log)
"""
import glob
import os
import re
import statistics
import sys

LINE = re.compile(
    r"stripe node \(home substream (\d+)\): played (\d+) bytes in (\d+) segments, (\d+) lost, "
    r"(\d+) forged symbols refused, (\d+) surplus symbols, (\d+) parent connections, "
    r"([\d.]+) ms decoding, (\d+) bytes received, (\d+) sent"
    # Since issue 20's second session: symbols lost (never arrived, late ones excepted).
    r"(?:, (\d+) of (\d+) symbols lost)?"
)


def main(dirs):
    print("| run | nodes reporting | received / played | segments lost | symbols lost | forged | "
          "surplus symbols / node | connections / node | decode ms / min of media | "
          "sent / played (max) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for d in dirs:
        for run in sorted(glob.glob(os.path.join(d, "runs", "*striped-fec*"))):
            rows = []
            for log in glob.glob(os.path.join(run, "viewer-*.log")):
                with open(log, errors="replace") as f:
                    for m in LINE.finditer(f.read()):
                        rows.append([float(x) if x is not None else None for x in m.groups()])
            if not rows:
                print(f"| {os.path.basename(run)} | 0 | - | - | - | - | - | - | - | - |")
                continue
            played = sum(r[1] for r in rows)
            segs = sum(r[2] for r in rows)
            # 2 s segments: a segment is 2 s of media.
            minutes = segs * 2 / 60
            counted = [r for r in rows if r[10] is not None]
            if counted:
                lost, expected = sum(r[10] for r in counted), sum(r[11] for r in counted)
                symbols = f"{int(lost)} of {int(expected)} ({100 * lost / max(expected, 1):.2f}%)"
            else:
                symbols = "-"
            print(
                f"| {os.path.basename(run)} | {len(rows)} | "
                f"{sum(r[8] for r in rows) / played:.3f} | {int(sum(r[3] for r in rows))} | {symbols} | "
                f"{int(sum(r[4] for r in rows))} | "
                f"{statistics.mean(r[5] for r in rows):.0f} | "
                f"{statistics.mean(r[6] for r in rows):.1f} | "
                f"{sum(r[7] for r in rows) / minutes:.1f} | "
                f"{max(r[9] / r[1] for r in rows if r[1] > 0):.2f} |"
            )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
