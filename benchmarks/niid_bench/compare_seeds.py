#!/usr/bin/env python3
"""Compares fedsilo's NIID-Bench runs of one strategy with the PyTorch reference over run seeds.

usage: compare_seeds.py NAME [--runs DIR] [--json FILE]

NAME is a run name such as scaffold-dirichlet0.5. fedsilo's runs are DIR/NAME.metrics.jsonl (run
seed 1) and DIR/NAME-seedS.metrics.jsonl; the reference's are DIR/pytorch-NAME.json (its default
seed) and DIR/pytorch-NAME-seedS.json, as pytorch_fedavg.py --json writes them. For each run it
takes the final round, the means of the last 5 and last 10 rounds (the rounds around the final one,
which estimate what a final round is expected to reach) and the mean and median of rounds 11-50; for
each measure, the two sides' means, standard deviations and the difference's standard error
(Welch: sqrt(sd_f^2/n_f + sd_p^2/n_p)). A single round's accuracy spreads by 1-2 points in these
runs, so the final round of one seed is one draw; the seeds say how far apart the two are. For the
final rounds it also gives the exact two-sided rank-sum (Mann-Whitney) p-value, and for each side
the share of rounds 11-50 that dip more than 1 point below their run's median, and where each
run's final round ranks among its last 10 (1: the best; 5.5 on average if the final round is no
different from the rounds around it).
"""
import argparse
import glob
import itertools
import json
import math
import os
import re
import statistics


def fedsilo_accuracies(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    return [100.0 * r["accuracy"] for r in sorted(rows, key=lambda r: r["round"]) if "accuracy" in r]


def pytorch_accuracies(path):
    return [100.0 * acc for _, acc in sorted(json.load(open(path))["accuracy_per_round"])]


def measures(acc):
    later = acc[10:] if len(acc) > 10 else acc
    return {"final": acc[-1], "last5_mean": statistics.mean(acc[-5:]),
            "last10_mean": statistics.mean(acc[-10:]),
            # 1 when the final round is the best of the last 10, 10 when it is the worst (ties
            # count in its favour): uniform on 1-10 if the final round is any late round.
            "final_rank_in_last10": 1 + sum(1 for x in acc[-10:] if x > acc[-1]),
            "rounds11_mean": statistics.mean(later), "rounds11_median": statistics.median(later)}


def dips(acc):
    later = acc[10:] if len(acc) > 10 else acc
    median = statistics.median(later)
    return sum(1 for x in later if x < median - 1.0), len(later)


def rank_sum_p(a, b):
    """Two-sided Mann-Whitney p-value: the share of the splits of a + b into groups of len(a) and
    len(b) whose U statistic lies at least as far from its mean as the observed one. Exact up to
    10^6 splits; beyond, the normal approximation (no tie correction)."""
    def u(xs, ys):
        return sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in xs for y in ys)
    pooled = a + b
    centre = len(a) * len(b) / 2.0
    observed = abs(u(a, b) - centre)
    if math.comb(len(pooled), len(a)) > 10**6:
        sd = (len(a) * len(b) * (len(pooled) + 1) / 12.0) ** 0.5
        return math.erfc(observed / sd / 2**0.5)
    extreme = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        rest = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        total += 1
        extreme += abs(u([pooled[i] for i in chosen], rest) - centre) >= observed - 1e-9
    return extreme / total


def side(runs):
    out = {}
    for key in ("final", "last5_mean", "last10_mean", "rounds11_mean", "rounds11_median",
                "final_rank_in_last10"):
        values = [m[key] for m in runs.values()]
        sd = statistics.stdev(values) if len(values) > 1 else float("nan")
        out[key] = {"mean": statistics.mean(values), "sd": sd, "n": len(values)}
    return out


def seed_of(path, prefix, suffix, default):
    m = re.fullmatch(re.escape(prefix) + r"(?:-seed(\d+))?" + re.escape(suffix), os.path.basename(path))
    return None if m is None else int(m.group(1) or default)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("--runs", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs"))
    ap.add_argument("--json")
    a = ap.parse_args()

    fedsilo, pytorch = {}, {}
    dip_counts = {"fedsilo": [0, 0], "pytorch": [0, 0]}
    for path in glob.glob(os.path.join(a.runs, a.name + "*.metrics.jsonl")):
        s = seed_of(path, a.name, ".metrics.jsonl", 1)  # fedsilo's example configs use run seed 1
        if s is not None:
            acc = fedsilo_accuracies(path)
            fedsilo[s] = measures(acc)
            dip_counts["fedsilo"] = [x + y for x, y in zip(dip_counts["fedsilo"], dips(acc))]
    for path in glob.glob(os.path.join(a.runs, "pytorch-" + a.name + "*.json")):
        s = seed_of(path, "pytorch-" + a.name, ".json", 0)  # pytorch_fedavg.py's default --seed is 0
        if s is not None:
            acc = pytorch_accuracies(path)
            pytorch[s] = measures(acc)
            dip_counts["pytorch"] = [x + y for x, y in zip(dip_counts["pytorch"], dips(acc))]
    if not fedsilo or not pytorch:
        raise SystemExit(f"compare_seeds.py: no fedsilo or no PyTorch runs named {a.name} in {a.runs}")

    f, p = side(fedsilo), side(pytorch)
    diff = {}
    for key in f:
        se = (f[key]["sd"] ** 2 / f[key]["n"] + p[key]["sd"] ** 2 / p[key]["n"]) ** 0.5
        diff[key] = {"fedsilo_minus_pytorch": f[key]["mean"] - p[key]["mean"], "standard_error": se}

    print(f"{a.name}: fedsilo seeds {sorted(fedsilo)}, PyTorch seeds {sorted(pytorch)}")
    for label, runs in (("fedsilo", fedsilo), ("pytorch", pytorch)):
        for s in sorted(runs):
            m = runs[s]
            print(f"  {label:8} seed {s}: final {m['final']:6.2f}  last-5 {m['last5_mean']:6.2f}"
                  f"  last-10 {m['last10_mean']:6.2f}"
                  f"  final's rank in last 10 {m['final_rank_in_last10']:2d}"
                  f"  rounds 11- mean {m['rounds11_mean']:6.2f} median {m['rounds11_median']:6.2f}")
    for key in f:
        print(f"  {key:20} fedsilo {f[key]['mean']:6.2f} (sd {f[key]['sd']:.2f})"
              f"  pytorch {p[key]['mean']:6.2f} (sd {p[key]['sd']:.2f})"
              f"  difference {diff[key]['fedsilo_minus_pytorch']:+.2f} (se {diff[key]['standard_error']:.2f})")
    finals_p = rank_sum_p([m["final"] for m in fedsilo.values()],
                          [m["final"] for m in pytorch.values()])
    print(f"  final rounds' rank-sum test: two-sided p {finals_p:.3f}")
    dip_share = {}
    for label, (dipped, rounds) in dip_counts.items():
        dip_share[label] = {"dips": dipped, "rounds": rounds, "share": dipped / rounds}
        print(f"  {label:8} dips: {dipped} of {rounds} rounds 11-50 more than 1 point below their"
              f" run's median ({100.0 * dipped / rounds:.1f}%)")
    if a.json:
        result = {"name": a.name, "fedsilo": {str(s): fedsilo[s] for s in sorted(fedsilo)},
                  "pytorch": {str(s): pytorch[s] for s in sorted(pytorch)},
                  "fedsilo_summary": f, "pytorch_summary": p, "difference": diff,
                  "final_rank_sum_p": finals_p, "dips_rounds11": dip_share}
        with open(a.json + ".tmp", "w") as out:
            json.dump(result, out, indent=1)
        os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    main()
