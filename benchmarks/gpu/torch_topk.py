#!/usr/bin/python3
"""torch.topk of |g| on the GPU: the comparison for fedsilo's exact top-k (benchmarks/gpu).

For each n: g ~ N(0, 1) fp32 on the device, k = density * n; times torch.topk(g.abs(), k)
(the magnitude and the selection, what a top-k compressor needs) with CUDA events, median of
--repeats after --warmup calls. Also the time of one read of the input at the device's copy
rate (measured here with a device-to-device copy: bytes read + written / time) as the floor.
Usage: torch_topk.py [--sizes 24,26,28] [--density 0.01] [--repeats 20] [--json FILE]
"""
import argparse
import json
import statistics

import torch


def time_ms(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times), min(times), max(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="24,26,28", help="log2 of n, comma separated")
    ap.add_argument("--density", type=float, default=0.01)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default="torch_topk.json")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("torch_topk.py: no CUDA device")
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(0)
    out = {"benchmark": "torch_topk", "torch": torch.__version__, "device": name,
           "density": args.density, "repeats": args.repeats, "results": []}
    print(f"torch {torch.__version__} on {name}, k = {args.density:g} n")
    print(f"{'n':>12} {'k':>10} {'topk ms':>9} {'min':>8} {'max':>8} {'copy GB/s':>10} {'read ms':>8}")
    for lg in (int(s) for s in args.sizes.split(",")):
        n = 1 << lg
        k = max(1, int(args.density * n))
        g = torch.randn(n, device=dev, dtype=torch.float32)
        dst = torch.empty_like(g)
        copy_ms, _, _ = time_ms(lambda: dst.copy_(g), args.warmup, args.repeats)
        copy_gbs = 2 * 4 * n / (copy_ms * 1e-3) / 1e9
        read_ms = 4 * n / (copy_gbs * 1e9) * 1e3
        med, lo, hi = time_ms(lambda: torch.topk(g.abs(), k, sorted=False), args.warmup, args.repeats)
        print(f"{n:>12} {k:>10} {med:>9.3f} {lo:>8.3f} {hi:>8.3f} {copy_gbs:>10.0f} {read_ms:>8.4f}")
        out["results"].append({"n": n, "k": k, "topk_ms_median": med, "topk_ms_min": lo,
                               "topk_ms_max": hi, "copy_GBps": copy_gbs, "one_read_ms": read_ms})
        del g, dst
        torch.cuda.empty_cache()
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
