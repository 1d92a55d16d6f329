#!/usr/bin/python3
"""The PyTorch example's accuracy and time per round: one full run of examples/pytorch/train.py
with examples/pytorch/resnet.toml (4 silos of Fashion-MNIST, Dirichlet(0.5), 10 rounds of 1
local epoch; 4 ranks x 1 thread), then a summary: the final and best accuracy of the global
model on the 10,000 test images, the median and spread [min, max] of the seconds per round (the
slowest rank's, as the progress line prints them) and of their training and aggregation parts.

    /usr/bin/python3 benchmarks/pytorch_binding/resnet_bench.py --build build/h3

Writes benchmarks/pytorch_binding/results/resnet-metrics.jsonl (the run's metrics.jsonl) and
resnet.json (the summary, with the machine, the commit and the command). It makes the silos
with `fedsilo partition` when data.silos_dir does not exist. Pause other work while it runs:
the seconds are this machine's.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from overhead import commit, machine  # noqa: E402  (the same machine and commit lines)


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build", "h3"))
    p.add_argument("--config", default=os.path.join(ROOT, "examples", "pytorch", "resnet.toml"))
    p.add_argument("--ranks", type=int, default=4)
    p.add_argument("--mpirun", default="mpirun --allow-run-as-root --oversubscribe")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    args = p.parse_args()
    os.chdir(ROOT)  # the config's paths are relative to the repository root

    # The config's values, as fedsilo reads them (`fedsilo train --check` prints them).
    fedsilo = os.path.join(args.build, "fedsilo")
    checked = subprocess.run([fedsilo, "train", "--check", args.config], check=True,
                             capture_output=True, text=True).stdout
    cfg, table = {}, ""
    for line in checked.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            table = line[1:-1]
        elif " = " in line:
            key, value = line.split(" = ", 1)
            cfg["%s.%s" % (table, key)] = value.strip("'\"")
    silos_dir = cfg["data.silos_dir"]
    if not os.path.isdir(silos_dir):
        subprocess.run([fedsilo, "partition", "--dataset", "fashion-mnist", "--silos", str(args.ranks),
                        "--scheme", "dirichlet:0.5", "--seed", "1", "--out", silos_dir], check=True)

    env = dict(os.environ, PYTHONPATH=os.path.join(args.build, "python"), OMP_NUM_THREADS="1")
    cmd = args.mpirun.split() + ["-np", str(args.ranks), "-x", "PYTHONPATH", "-x", "OMP_NUM_THREADS",
                                 "/usr/bin/python3", "examples/pytorch/train.py", args.config, "--overwrite"]
    print(" ".join(cmd), flush=True)
    t0 = time.time()
    subprocess.run(cmd, env=env, check=True)
    wall = time.time() - t0

    run_dir = cfg["run.out_dir"]
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    rounds = [x for x in lines if x.get("accuracy") is not None]
    seconds = [x["seconds"]["round"] for x in lines]
    train = [x["seconds"]["train"] for x in lines]
    aggregate = [x["seconds"]["aggregate"] for x in lines]
    final = lines[-1]
    best = max(rounds, key=lambda x: x["accuracy"])
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:  # pragma: no cover
        torch_version = "unknown"
    summary = {
        "benchmark": "pytorch_binding/resnet",
        "machine": machine(), "commit": commit(), "python": platform.python_version(), "torch": torch_version,
        "command": " ".join(["PYTHONPATH=%s/python" % os.path.relpath(args.build, ROOT)] + cmd),
        "config": os.path.relpath(args.config, ROOT),
        "silos": args.ranks, "ranks": args.ranks, "threads_per_rank": int(cfg["local.threads"]),
        "rounds": int(cfg["run.rounds"]), "epochs": int(cfg["local.epochs"]),
        "batch_size": int(cfg["local.batch_size"]), "lr": float(cfg["local.lr"]),
        "momentum": float(cfg["local.momentum"]), "weight_decay": float(cfg["local.weight_decay"]),
        "silo_samples": [s["samples"] for s in final["silos"]],
        "final_accuracy": final["accuracy"], "final_loss": final["loss"],
        "best_accuracy": best["accuracy"], "best_round": best["round"],
        "accuracy_by_round": [x["accuracy"] for x in rounds],
        "round_seconds": dict(spread(seconds), by_round=seconds),
        "train_seconds": spread(train), "aggregate_seconds": spread(aggregate),
        "wall_seconds": wall,
        "metrics": "benchmarks/pytorch_binding/results/resnet-metrics.jsonl",
        "note": "seconds: the slowest rank's per round (metrics.jsonl seconds.round / .train / .aggregate); "
                "wall: the whole mpirun, start-up and model files included",
    }
    os.makedirs(args.out, exist_ok=True)
    shutil.copyfile(os.path.join(run_dir, "metrics.jsonl"), os.path.join(args.out, "resnet-metrics.jsonl"))
    with open(os.path.join(args.out, "resnet.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    print("final accuracy %.2f%% (best %.2f%%, round %d); seconds per round median %.1f [%.1f, %.1f]; wall %.0f s"
          % (100 * final["accuracy"], 100 * best["accuracy"], best["round"], statistics.median(seconds),
             min(seconds), max(seconds), wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
