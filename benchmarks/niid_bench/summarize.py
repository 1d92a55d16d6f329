#!/usr/bin/env python3
"""Summarises NIID-Bench runs: final-round accuracy, accuracy per round, wall time (JSON + table)."""
import json
import os
import re
import sys

TARGETS = {  # final-round accuracy targets (Flower's one-seed NIID-Bench reproduction in brackets)
    "fedavg-dirichlet0.5": (0.880, 0.884),
    "fedavg-iid": (0.885, 0.890),
    "fedprox-dirichlet0.5": (0.880, 0.886),
    "fedavg-labels2": (None, 0.810),
    "scaffold-dirichlet0.5": (None, 0.884),
    "fednova-dirichlet0.5": (None, 0.881),
}


def main():
    root, runs = sys.argv[1], sys.argv[2:]
    # results.json keeps every run summarized so far: the runs given here replace theirs.
    results = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json")
    out = json.load(open(results)) if os.path.exists(results) else {}
    print(f"{'run':24} {'rounds':>6} {'final acc':>10} {'target':>8} {'reference':>9} {'wall':>8}")
    for run in runs:
        path = os.path.join(root, run, "metrics.jsonl")
        if not os.path.exists(path):
            continue
        lines = [json.loads(l) for l in open(path) if l.strip()]
        accs = [(l["round"], l["accuracy"]) for l in lines if "accuracy" in l]
        wall_file = os.path.join(root, run, "wall_seconds.txt")
        wall = sum(int(x) for x in open(wall_file).read().split()) if os.path.exists(wall_file) else None
        train_s = sum(l["seconds"]["round"] for l in lines)
        target, ref = TARGETS.get(re.sub(r"-seed\d+$", "", run), (None, None))
        final = accs[-1][1] if accs else float("nan")
        out[run] = {"rounds": len(lines), "final_accuracy": final, "target": target,
                    "reference": ref, "accuracy_per_round": accs,
                    "wall_seconds": wall, "sum_round_seconds": train_s}
        t = f"{target:.3f}" if target else "-"
        w = f"{wall}s" if wall is not None else f"{train_s:.0f}s"
        r = f"{ref:.3f}" if ref else "-"
        print(f"{run:24} {len(lines):>6} {final:>10.4f} {t:>8} {r:>9} {w:>8}")
    with open(results + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
    os.replace(results + ".tmp", results)


if __name__ == "__main__":
    main()
