#!/usr/bin/env python3
"""The short table of benchmarks/gpu/run.sh: fedsilo against PyTorch on the same GPU, with the
targets (exact top-k >= 5x torch.topk at n = 2^26; training >= 3x PyTorch eager at batch 64,
>= 1x at batch 512). Reads the JSON files run.sh wrote into OUT and prints Markdown."""
import json
import os
import sys


def load(out, name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "gpu-results"
    gpu = open(os.path.join(out, "gpu.txt")).read().strip() if os.path.exists(os.path.join(out, "gpu.txt")) else "?"
    print(f"GPU: {gpu}\n")
    print("| measurement | fedsilo | PyTorch | ratio | target | met |")
    print("|---|---:|---:|---:|---|---|")
    ours, theirs = load(out, "topk.json"), load(out, "torch_topk.json")
    if ours and theirs:
        t = {r["n"]: r for r in theirs["results"]}
        for r in ours["results"]:
            if r["n"] not in t:
                continue
            ratio = t[r["n"]]["topk_ms_median"] / r["topk_ms_median"]
            target = ">= 5x (n = 2^26)" if r["n"] == 1 << 26 else "report"
            met = ("yes" if ratio >= 5 else "NO") if r["n"] == 1 << 26 else ""
            print(f"| exact top-k n=2^{r['n'].bit_length() - 1}, k=1% (ms) | {r['topk_ms_median']:.3f} | "
                  f"{t[r['n']]['topk_ms_median']:.3f} | {ratio:.1f}x | {target} | {met} |")
    for batch, need in ((64, 3.0), (512, 1.0)):
        ours, theirs = load(out, f"train_b{batch}.json"), load(out, f"torch_train_b{batch}.json")
        if not (ours and theirs):
            continue
        t = {r["model"]: r for r in theirs["results"]}
        for r in ours["results"]:
            if r["model"] not in t:
                continue
            a, b = r["samples_per_s_median"], t[r["model"]]["samples_per_s_median"]
            ratio = a / b
            print(f"| {r['model']} training, batch {batch} (samples/s) | {a:,.0f} | {b:,.0f} | "
                  f"{ratio:.2f}x | >= {need:g}x | {'yes' if ratio >= need else 'NO'} |")
    tests = load(out, "gpu_tests.json")
    if tests:
        print(f"\nGPU tests: {tests.get('tests', '?')} run, {tests.get('failures', '?')} failed, "
              f"{tests.get('disabled', 0)} disabled")


if __name__ == "__main__":
    main()
