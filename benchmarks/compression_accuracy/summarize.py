#!/usr/bin/env python3
"""Final-round accuracy of the compressed runs against their dense run (targets: top-k 10% +
feedback within 0.5 points of dense, 1% + feedback within 2 points), and the compression ratio
of metrics.jsonl (per round: the mean over the silos that sent of 4n / encoded bytes) as its
mean over all rounds and its value in the last round."""
import json
import os
import sys

TARGETS = {"topk10-ef": 0.5, "topk1-ef": 2.0}


def final(root, run):
    path = os.path.join(root, run, "metrics.jsonl")
    # Only finished runs (model.h5 is written last): a run still going has no final accuracy.
    if not os.path.exists(path) or not os.path.exists(os.path.join(root, run, "model.h5")):
        return None, 0, 0.0, 0.0
    lines = [json.loads(l) for l in open(path) if l.strip()]
    accs = [l["accuracy"] for l in lines if "accuracy" in l]
    ratio = sum(l.get("compression_ratio", 1.0) for l in lines) / max(1, len(lines))
    last = lines[-1].get("compression_ratio", 1.0) if lines else 0.0
    return (accs[-1] if accs else None), len(lines), ratio, last


def main():
    root = sys.argv[1]
    out = {}
    print(f"{'run':18} {'rounds':>6} {'final acc':>9} {'vs dense':>9} {'target':>7} "
          f"{'mean ratio':>10} {'last ratio':>10}")
    for model in ("cnn", "mlp"):
        dense, _, _, _ = final(root, f"{model}-dense")
        for v in ("dense", "topk10-ef", "topk1-ef", "topk0.1-ef", "topk1-noef"):
            acc, rounds, ratio, last = final(root, f"{model}-{v}")
            if acc is None:
                continue
            delta = 100 * (acc - dense) if dense is not None else float("nan")
            t = TARGETS.get(v)
            print(f"{model + '-' + v:18} {rounds:>6} {100 * acc:>8.2f}% {delta:>+8.2f} "
                  f"{('-' + str(t)) if t else '':>7} {ratio:>10.1f} {last:>10.1f}")
            out[f"{model}-{v}"] = {"final_accuracy": acc, "rounds": rounds,
                                   "points_vs_dense": delta, "mean_compression_ratio": ratio,
                                   "last_round_compression_ratio": last}
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
