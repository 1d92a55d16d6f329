#!/usr/bin/env python3
"""Combines the per-round JSON of benchmarks/privacy/speed.sh (local_train --dp and
opacus_speed.py, ROUNDS interleaved rounds per model) into one JSON and a markdown table:
samples/s of fedsilo plain, fedsilo DP-SGD, PyTorch plain and Opacus DP-SGD (each
grad_sample_mode that ran), median over every timed epoch of every round with [min, max], and
the ratios fedsilo DP / fedsilo plain (target >= 0.5) and fedsilo DP / Opacus (target >= 5):
ratio of the pooled medians, with the range of the per-round ratios (round median / round
median) in brackets.
"""
import argparse
import json
import statistics

TARGET_DP_OVER_PLAIN = 0.5
TARGET_DP_OVER_OPACUS = 5.0


def stats(per_round):
    """per_round: one list of epoch rates per round -> pooled median/min/max and round medians."""
    all_ = [v for rates in per_round for v in rates]
    return {"samples_per_s_median": statistics.median(all_), "samples_per_s_min": min(all_),
            "samples_per_s_max": max(all_), "samples_per_s_all": all_,
            "round_medians": [statistics.median(r) for r in per_round]}


def ratio(a, b):
    per_round = [x / y for x, y in zip(a["round_medians"], b["round_medians"])]
    return {"median": a["samples_per_s_median"] / b["samples_per_s_median"],
            "per_round_min": min(per_round), "per_round_max": max(per_round),
            "per_round": per_round}


def cell(s):
    return f"{s['samples_per_s_median']:.0f} [{s['samples_per_s_min']:.0f}, {s['samples_per_s_max']:.0f}]"


def rcell(r, target=None):
    miss = "" if target is None or r["median"] >= target else " **missed**"
    return f"{r['median']:.2f}x [{r['per_round_min']:.2f}, {r['per_round_max']:.2f}]{miss}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--models", default="mlp,niid-cnn")
    ap.add_argument("--machine", default="unknown")
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--dirty", default="false")
    ap.add_argument("--binary", default="")
    ap.add_argument("--binary-mtime", default="")
    ap.add_argument("--command", default="")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    with open(f"{args.work}/conditions.jsonl") as f:
        conditions = [json.loads(line) for line in f if line.strip()]
    models, first_ours, first_ref = [], None, None
    for m in args.models.split(","):
        ours = [json.load(open(f"{args.work}/local_train.{m}.r{r}.json")) for r in range(1, args.rounds + 1)]
        refs = [json.load(open(f"{args.work}/opacus_speed.{m}.r{r}.json")) for r in range(1, args.rounds + 1)]
        first_ours, first_ref = first_ours or ours[0], first_ref or refs[0]
        o = [run["results"][0] for run in ours]
        t = [run["results"][0] for run in refs]
        row = {"model": m, "params": o[0]["params"],
               "fedsilo_plain": stats([x["samples_per_s_all"] for x in o]),
               "fedsilo_dp": stats([x["dp"]["samples_per_s_all"] for x in o]),
               "pytorch_plain": stats([x["pytorch"]["samples_per_s_all"] for x in t]),
               "fedsilo_validation_rel_err": [x["validation_rel_err"] for x in o],
               "opacus_dp": {}}
        for mode in t[0]["dp"]:
            recs = [x["dp"][mode] for x in t]
            errors = [r["error"] for r in recs if "error" in r]
            if errors:
                row["opacus_dp"][mode] = {"error": errors[0], "failed_rounds": len(errors)}
                continue
            s = stats([r["samples_per_s_all"] for r in recs])
            s["batch_samples_all"] = [v for r in recs for v in r["samples_all"]]
            s["validation"] = [r["validation"] for r in recs]
            row["opacus_dp"][mode] = s
        row["fedsilo_dp_over_fedsilo_plain"] = ratio(row["fedsilo_dp"], row["fedsilo_plain"])
        row["fedsilo_plain_over_pytorch_plain"] = ratio(row["fedsilo_plain"], row["pytorch_plain"])
        row["fedsilo_dp_over_opacus"] = {mode: ratio(row["fedsilo_dp"], s)
                                         for mode, s in row["opacus_dp"].items() if "error" not in s}
        models.append(row)

    # Every attempt stays in "conditions"; the files hold the last attempt of each program.
    kept = {c["run"]: c for c in conditions}
    disturbed = [c["run"] for c in kept.values()
                 if c["busy_percent_before"] > 10 or c["foreign_cpu_share"] > 0.10]
    out = {
        "benchmark": "dp_speed", "issue": 16, "machine": args.machine, "commit": args.commit,
        "sources_dirty": args.dirty == "true", "local_train_binary": args.binary,
        "local_train_binary_mtime": args.binary_mtime, "command": args.command,
        "threads": first_ours["threads"], "batch": first_ours["batch"],
        "batches": first_ours["batches"], "samples": first_ours["samples"],
        "rounds": args.rounds, "repeats_per_round": first_ours["repeats"],
        "interleaving": "per model, ROUNDS rounds of (local_train --dp, opacus_speed.py), "
                        "each program timing repeats_per_round epochs after validation and warm-up; "
                        "local_train alternates plain and DP epochs, opacus_speed alternates "
                        "PyTorch plain and each Opacus mode",
        "dp": {"clip": 1.0, "noise_multiplier": 1.0, "sampling": "Poisson, q = batch/samples",
               "fedsilo_sampler": "ziggurat (default), AES-CTR streams",
               "opacus_secure_mode": first_ref["secure_mode"], "opacus_loader": first_ref["loader"]},
        "optimizer": "SGD lr 0.01 momentum 0.9",
        "torch": first_ref["torch"], "opacus": first_ref["opacus"], "python": first_ref["python"],
        "openblas_core": first_ours["openblas_core"], "cpu_level": first_ours.get("cpu_level"),
        "targets": {"fedsilo_dp_over_fedsilo_plain": TARGET_DP_OVER_PLAIN,
                    "fedsilo_dp_over_opacus": TARGET_DP_OVER_OPACUS},
        "conditions": conditions,
        "retried_programs": sorted({c["run"] for c in conditions if c["attempt"] > 1}),
        "busy_percent_before_max": max(c["busy_percent_before"] for c in kept.values()),
        "foreign_cpu_share_max": max(c["foreign_cpu_share"] for c in kept.values()),
        "loadavg_1min_before_range": [min(c["loadavg_before"][0] for c in kept.values()),
                                      max(c["loadavg_before"][0] for c in kept.values())],
        "disturbed_programs": disturbed,
        "models": models,
    }
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")

    print()
    print(f"DP-SGD samples/s, batch {out['batch']} (Poisson), {out['threads']} threads, "
          f"{out['machine']}, commit {out['commit']}{' (sources dirty)' if out['sources_dirty'] else ''}, "
          f"torch {out['torch']}, opacus {out['opacus']}, OpenBLAS {out['openblas_core']}")
    print(f"{args.rounds} interleaved rounds x {out['repeats_per_round']} epochs of {out['samples']} "
          f"samples; median [min, max] over all epochs; ratios: median / median "
          f"[per-round range]; CPUs busy <= {out['busy_percent_before_max']}% before each program, "
          f"others' CPU share <= {out['foreign_cpu_share_max']:.3f} during, 1-min load before "
          f"{out['loadavg_1min_before_range']}")
    print()
    print("| model | fedsilo plain | fedsilo DP | DP / plain (>= 0.5) | PyTorch plain "
          "| Opacus DP (hooks) | fedsilo DP / Opacus (>= 5) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in models:
        hooks = row["opacus_dp"].get("hooks", {})
        print(f"| {row['model']} | {cell(row['fedsilo_plain'])} | {cell(row['fedsilo_dp'])} "
              f"| {rcell(row['fedsilo_dp_over_fedsilo_plain'], TARGET_DP_OVER_PLAIN)} "
              f"| {cell(row['pytorch_plain'])} "
              f"| {cell(hooks) if 'error' not in hooks and hooks else 'failed'} "
              f"| {rcell(row['fedsilo_dp_over_opacus']['hooks'], TARGET_DP_OVER_OPACUS) if 'hooks' in row['fedsilo_dp_over_opacus'] else '-'} |")
    print()
    print("| model | Opacus grad_sample_mode | Opacus DP samples/s | fedsilo DP / Opacus |")
    print("|---|---|---:|---:|")
    for row in models:
        for mode, s in row["opacus_dp"].items():
            if "error" in s:
                print(f"| {row['model']} | {mode} | failed: {s['error'][:80]} | - |")
            else:
                print(f"| {row['model']} | {mode} | {cell(s)} | {rcell(row['fedsilo_dp_over_opacus'][mode])} |")
    if out["disturbed_programs"]:
        print(f"\nwarning: disturbed (CPUs > 10% busy before, or others > 10% during): "
              f"{', '.join(out['disturbed_programs'])}")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
