#!/usr/bin/env python3
"""Who served the reachable viewers, in an emulated lab run with viewers behind NAT.

Usage: python3 scripts/nat-flow.py RESULTS_DIR...   (each a `swarmcast lab --net emulated -o` dir)

The emulator counts each host's payload bytes sent and received (piece data and segment bodies,
retransmissions not included), not who sent them to whom. NAT bounds the flows: a viewer behind
NAT (N) can exchange pieces only with reachable viewers (R) and the publisher, and the publisher
receives no payload, so everything N viewers send goes to R viewers. What the R viewers received
from N viewers is then at most what N viewers sent, and at least that less what N uplinks dropped
(the drop counts are IP bytes, so at least the payload dropped). The rest of what R viewers
received came from each other or from the publisher.

With hole punching (`--punch-ports`) viewers behind NAT also exchange pieces with each other:
they received at least what they received in all less what the reachable viewers and the
publisher sent, which is printed; the bound above on what reachable viewers got from NATed ones
then no longer holds, and is printed only when that figure is 0.

Also printed, from the viewers' counters: the mean connections a viewer attempted per segment
(`connect_attempts` of its `completed` events), reachable and behind NAT apart.
"""
import glob
import json
import os
import sys


def main(dirs):
    for d in dirs:
        for run_json in sorted(glob.glob(os.path.join(d, "runs", "*", "run.json"))):
            run_dir = os.path.dirname(run_json)
            name = f"{d} {os.path.relpath(run_dir, d)}"
            net = json.load(open(run_json))["outcome"].get("net")
            if not net:
                print(f"{name}: not an emulated run")
                continue
            nat = {h["node"]: h["nat"] for h in net["hosts"]}
            side = lambda node: "P" if node == "publisher" else ("N" if nat.get(node) else "R")
            agg = {k: {"n": 0, "sent": 0, "recv": 0, "dropped": 0} for k in "PRN"}
            p = agg["P"]
            for h in net["emulator"]["hosts"]:
                a = agg[side(h["node"])]
                a["n"] += 1
                a["sent"] += h["sent"]["payload"]
                a["recv"] += h["received"]["payload"]
                a["dropped"] += h["dropped_up_queue"]["bytes"]
            r, n = agg["R"], agg["N"]
            if not r["n"] or not n["n"] or not r["recv"]:
                print(f"{name}: needs viewers on both sides of a NAT")
                continue
            attempts = {"R": [], "N": []}
            for path in glob.glob(os.path.join(run_dir, "viewer-*.jsonl")):
                node = os.path.basename(path)[: -len(".jsonl")]
                for line in open(path):
                    e = json.loads(line)
                    if e.get("kind") == "completed" and "connect_attempts" in e:
                        attempts[side(node)].append(e["connect_attempts"])
            mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
            lo = max(0, n["sent"] - n["dropped"]) / r["recv"]
            hi = min(1.0, n["sent"] / r["recv"])
            mb = 1e6
            n_from_n = max(0, n["recv"] - r["sent"] - p["sent"])
            if n_from_n > 0:
                flows = (
                    f"Viewers behind NAT received {n['recv'] / mb:.1f} MB, at least "
                    f"{n_from_n / mb:.1f} MB ({100 * n_from_n / n['recv']:.0f}%) of it from each other "
                    f"(hole punching); N sent {n['sent'] / mb:.1f} MB, their uplinks dropped "
                    f"{n['dropped'] / mb:.1f} MB. "
                )
            else:
                flows = (
                    f"Reachable viewers received {r['recv'] / mb:.1f} MB, "
                    f"{100 * lo:.0f}-{100 * hi:.0f}% of it from viewers behind NAT "
                    f"(N sent {n['sent'] / mb:.1f} MB, their uplinks dropped {n['dropped'] / mb:.1f} MB), "
                    f"so at least {max(0, r['recv'] - n['sent']) / mb:.1f} MB from each other or the publisher. "
                )
            print(
                f"{name}: {r['n']} reachable, {n['n']} behind NAT. "
                + flows
                + f"Reachable uplinks dropped {r['dropped'] / mb:.1f} MB. "
                f"Connections attempted per segment: reachable {mean(attempts['R']):.1f}, "
                f"behind NAT {mean(attempts['N']):.1f}"
            )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
