#!/usr/bin/env python3
"""Time per round of each strategy against FedAvg's, in the same run: NIID-Bench's Dirichlet(0.5)
split (examples/niid-bench/*-dirichlet0.5.toml: 10 silos, niid-cnn, batch 64, momentum SGD), with
ROUNDS rounds of EPOCHS local epochs, every strategy once per repeat, the repeats interleaved
(so slow phases of a shared machine fall on all of them). Per strategy: the median over
repeats and rounds of the slowest rank's round, local training and aggregation seconds (the
metrics' `seconds`), and the bytes a rank sends per round.

usage: round_time.py [--rounds 4] [--epochs 1] [--repeats 3] [--out FILE]
Environment: FEDSILO (the binary, default build/release/fedsilo).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STRATEGIES = ["fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi", "scaffold", "fednova"]


def config(strategy, rounds, epochs, out_dir):
    text = open(os.path.join(ROOT, "examples/niid-bench/%s-dirichlet0.5.toml" % strategy)).read()
    text = re.sub(r"(?m)^rounds = \d+", "rounds = %d" % rounds, text)
    text = re.sub(r"(?m)^epochs = \d+", "epochs = %d" % epochs, text)
    text = re.sub(r'(?m)^out_dir = ".*"', 'out_dir = "%s"' % out_dir, text)
    text = re.sub(r'(?m)^silos_dir = "(.*)"', lambda m: 'silos_dir = "%s"' % os.path.join(ROOT, m.group(1)), text)
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks/strategies/results/round_time.json"))
    a = ap.parse_args()
    fedsilo = os.environ.get("FEDSILO", os.path.join(ROOT, "build/release/fedsilo"))
    mpirun = ["mpirun", "--oversubscribe", "-np", "10", "--mca", "btl", "self,vader"]
    if os.geteuid() == 0:
        mpirun.append("--allow-run-as-root")
    work = tempfile.mkdtemp(prefix="fedsilo-round-time-")
    samples = {s: {"round": [], "train": [], "aggregate": [], "bytes_sent": []} for s in STRATEGIES}
    t0 = time.time()
    for rep in range(a.repeats):
        for s in STRATEGIES:
            run = os.path.join(work, s)
            cfg = os.path.join(work, s + ".toml")
            with open(cfg, "w") as f:
                f.write(config(s, a.rounds, a.epochs, run))
            subprocess.run(mpirun + [fedsilo, "train", cfg, "--overwrite", "-q"], check=True)
            for line in open(os.path.join(run, "metrics.jsonl")):
                m = json.loads(line)
                for k in ("round", "train", "aggregate"):
                    samples[s][k].append(m["seconds"][k])
                samples[s]["bytes_sent"].append(m["bytes_sent"] / 10)
            print("repeat %d %-9s median round %.3f s" % (rep + 1, s, statistics.median(samples[s]["round"])),
                  flush=True)
    shutil.rmtree(work, ignore_errors=True)
    base = {k: statistics.median(samples["fedavg"][k]) for k in ("round", "train", "aggregate")}
    out = {"command": "FEDSILO=%s benchmarks/strategies/round_time.py --rounds %d --epochs %d --repeats %d"
                      % (fedsilo, a.rounds, a.epochs, a.repeats),
           "setup": "NIID-Bench Dirichlet(0.5) split, 10 silos (ranks) on one machine, niid-cnn, "
                    "%d local epoch(s) a round, dense-flat" % a.epochs,
           "seconds": time.time() - t0, "strategies": {}}
    print("%-9s %10s %10s %12s %8s %14s" % ("strategy", "round s", "train s", "aggregate s", "x fedavg", "bytes/rank"))
    for s in STRATEGIES:
        med = {k: statistics.median(v) for k, v in samples[s].items()}
        spread = {k: [min(v), max(v)] for k, v in samples[s].items()}
        ratio = med["round"] / base["round"]
        out["strategies"][s] = {"median": med, "range": spread, "round_vs_fedavg": ratio,
                                "aggregate_vs_fedavg": med["aggregate"] / base["aggregate"],
                                "samples": samples[s]}
        print("%-9s %10.3f %10.3f %12.4f %8.3f %14.0f" % (s, med["round"], med["train"], med["aggregate"],
                                                         ratio, med["bytes_sent"]))
    with open(a.out + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
    os.replace(a.out + ".tmp", a.out)


if __name__ == "__main__":
    main()
