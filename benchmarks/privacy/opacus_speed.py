#!/usr/bin/env python3
"""Opacus DP-SGD speed on CPU, the reference for fedsilo's DP-SGD (benchmarks/privacy/speed.sh,
issue 16): the models, data and optimizer of benchmarks/local_train/pytorch_ref.py (NIID-Bench
simple-cnn and the 784-200-200-10 MLP; the first batches*batch Fashion-MNIST training samples
read from the IDX gzip files; SGD lr 0.01 momentum 0.9; torch.set_num_threads(threads)), made
private with PrivacyEngine.make_private(noise_multiplier=1.0, max_grad_norm=1.0,
poisson_sampling=True): Poisson batches with q = batch/N, 1/q = batches steps per epoch. Each
grad_sample_mode in --modes ("hooks", Opacus's default GradSampleModule; "ew", torch's
ExpandedWeights; "functorch", hooks with functorch's vmap for every layer) is one extra row;
a mode that fails on this torch is recorded with its error, not timed. Non-private PyTorch
(pytorch_ref.py's epoch) is timed in the same process, repeat by repeat interleaved with the
private epochs.

A program, not a timed test: each mode is validated first (one DP step on 64 samples: the
per-sample gradients against per-example backward passes of a plain copy, the clipped
per-sample norms <= max_grad_norm, the summed clipped gradient against our own sum, the added
noise's standard deviation against noise_multiplier * max_grad_norm, the loss finite), then one
warm-up epoch, then --repeats timed epochs. samples/s = samples in the epoch's batches (the
Poisson batch sizes for DP) / seconds of the epoch.

Batches: --loader index (default) draws the batches from Opacus's own Poisson batch sampler (the
DPDataLoader's UniformWithReplacementSampler) and gathers them by tensor indexing, as
pytorch_ref.py does; --loader dataloader iterates the DPDataLoader itself (per-sample
TensorDataset __getitem__ and collate, as Opacus's tutorials run it; slower, so the default
is the comparison that favours Opacus).

Runs under a virtual environment over Debian's python3-torch (see speed.sh):
  python3 -m venv --system-site-packages VENV; VENV/bin/pip install --no-deps opacus==1.4.0 \\
      opt-einsum scipy==1.10.1
Usage: opacus_speed.py [--data DIR] [--threads 2] [--batch 64] [--batches 100] [--repeats 7]
                       [--models mlp,niid-cnn] [--modes hooks,ew,functorch]
                       [--loader index|dataloader] [--json FILE]
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "local_train"))
from pytorch_ref import Mlp, NiidCnn, one_epoch, read_idx  # noqa: E402

CLIP = 1.0
SIGMA = 1.0


def machine_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_private(make, init, x, y, batch, mode, seed):
    """A fresh model (weights init), SGD and Opacus's make_private for one grad_sample_mode."""
    from opacus import PrivacyEngine

    model = make()
    model.load_state_dict(init)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)
    engine = PrivacyEngine()
    gsm, dp_opt, dp_loader = engine.make_private(
        module=model, optimizer=opt, data_loader=loader, noise_multiplier=SIGMA,
        max_grad_norm=CLIP, poisson_sampling=True, grad_sample_mode=mode,
        noise_generator=torch.Generator().manual_seed(seed))
    dp_loader.batch_sampler.generator = torch.Generator().manual_seed(seed + 1)
    return gsm, dp_opt, dp_loader


def reset(gsm, dp_opt, init):
    """Back to the initial weights and a fresh momentum (what a new SGD would have)."""
    gsm._module.load_state_dict(init)
    dp_opt.original_optimizer.state.clear()
    dp_opt.zero_grad(set_to_none=True)


def validate(gsm, dp_opt, make, x, y, batch):
    """One DP step on the first `batch` samples, checked against independent arithmetic."""
    xb, yb = x[:batch], y[:batch]
    dp_opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(gsm(xb), yb)
    if not torch.isfinite(loss):
        raise RuntimeError(f"loss {loss.item()} is not finite")
    loss.backward()
    params = [p for p in gsm.parameters() if p.requires_grad]
    gs = [p.grad_sample for p in params]
    if any(g is None or g.shape[0] != batch for g in gs):
        raise RuntimeError("grad_sample missing or of the wrong batch size")
    # Per-sample gradients against one plain backward per example (loss of that example alone).
    plain = make()
    plain.load_state_dict(gsm._module.state_dict())
    grad_err = 0.0
    for i in range(8):
        plain.zero_grad(set_to_none=True)
        F.cross_entropy(plain(xb[i:i + 1]), yb[i:i + 1]).backward()
        for p, g in zip(plain.parameters(), gs):
            grad_err = max(grad_err, ((g[i] - p.grad).norm() / p.grad.norm().clamp_min(1e-12)).item())
    # Flat clipping: factor_i = min(1, C / (||g_i|| + 1e-6)), so ||factor_i g_i|| <= C.
    norms = torch.stack([g.reshape(batch, -1).norm(dim=1) for g in gs], dim=1).norm(dim=1)
    factor = (CLIP / (norms + 1e-6)).clamp(max=1.0)
    clipped = norms * factor
    dp_opt.step()
    sum_err, noise = 0.0, []
    for p, g in zip(params, gs):
        want = torch.einsum("i,i...->...", factor, g)
        sum_err = max(sum_err, ((p.summed_grad - want).norm() / want.norm().clamp_min(1e-12)).item())
        # p.grad = (summed + N(0, (sigma C)^2)) / expected batch size (loss_reduction "mean").
        noise.append((p.grad * dp_opt.expected_batch_size - p.summed_grad).reshape(-1))
    noise = torch.cat(noise)
    noise_std = noise.std().item()
    finite = all(torch.isfinite(p).all().item() for p in params)
    # Float32 tolerances; the noise std over n >= 40k draws has a relative error ~ 1/sqrt(2n) < 0.4%.
    checks = {
        "loss": loss.item(),
        "per_sample_grad_max_rel_err": grad_err,
        "per_sample_norm_max": norms.max().item(),
        "fraction_clipped": (norms > CLIP).float().mean().item(),
        "clipped_norm_max": clipped.max().item(),
        "summed_clipped_grad_max_rel_err": sum_err,
        "noise_std": noise_std,
        "noise_std_expected": SIGMA * CLIP,
        "noise_elements": noise.numel(),
        "params_finite_after_step": finite,
    }
    ok = (grad_err < 1e-4 and clipped.max().item() <= CLIP * (1 + 1e-5) and sum_err < 1e-4
          and abs(noise_std - SIGMA * CLIP) < 0.02 and abs(noise.mean().item()) < 0.02 and finite)
    if not ok:
        raise RuntimeError(f"validation failed: {checks}")
    dp_opt.zero_grad(set_to_none=True)
    return checks


def dp_epoch(gsm, dp_opt, dp_loader, x, y, loader):
    """One epoch of Poisson batches; returns (samples, seconds, mean loss, empty batches)."""
    total = torch.zeros(())
    samples, empty = 0, 0
    t0 = time.perf_counter()
    if loader == "index":
        batches = ((x[i], y[i]) for i in map(torch.as_tensor, dp_loader.batch_sampler))
    else:
        batches = iter(dp_loader)
    for xb, yb in batches:
        if xb.shape[0] == 0:  # P = (1 - q)^N: e^-64 at q = 0.01, N = 6400
            empty += 1
            continue
        dp_opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(gsm(xb), yb)
        loss.backward()
        dp_opt.step()
        total += loss.detach() * xb.shape[0]
        samples += xb.shape[0]
    mean_loss = total.item() / max(samples, 1)
    return samples, time.perf_counter() - t0, mean_loss, empty


def summary(rates):
    return {"samples_per_s_median": statistics.median(rates), "samples_per_s_min": min(rates),
            "samples_per_s_max": max(rates), "samples_per_s_all": rates}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--models", default="mlp,niid-cnn")
    ap.add_argument("--modes", default="hooks,ew,functorch")
    ap.add_argument("--loader", default="index", choices=["index", "dataloader"])
    ap.add_argument("--no-plain", action="store_true", help="skip the non-private PyTorch epochs")
    ap.add_argument("--json", default="opacus_speed.json")
    args = ap.parse_args()

    import opacus

    warnings.filterwarnings("ignore")  # Opacus warns about secure_mode and the RNG on every run
    torch.set_num_threads(args.threads)
    n = args.batch * args.batches
    images = read_idx(f"{args.data}/train-images-idx3-ubyte.gz", 0x803, 3)[:n]
    labels = read_idx(f"{args.data}/train-labels-idx1-ubyte.gz", 0x801, 1)[:n]
    if images.shape[0] < n:
        raise SystemExit(f"opacus_speed: {n} samples asked, the training set has {images.shape[0]}")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).reshape(n, 1, 28, 28).contiguous()
    y = torch.from_numpy(labels.astype(np.int64))
    modes = [m for m in args.modes.split(",") if m]

    machine = machine_name()
    load_start = os.getloadavg()
    print(f"opacus_speed: {machine}, torch {torch.__version__}, opacus {opacus.__version__}, "
          f"{torch.get_num_threads()} threads, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '')}")
    print(f"  batch {args.batch} (Poisson q = {args.batch}/{n}), {args.batches} steps per epoch, "
          f"{args.repeats} repeats, clip {CLIP}, noise multiplier {SIGMA}, loader {args.loader}, "
          f"load {load_start[0]:.2f}")
    out = {"benchmark": "opacus_speed", "machine": machine, "torch": torch.__version__,
           "opacus": opacus.__version__, "python": platform.python_version(),
           "threads": torch.get_num_threads(), "batch": args.batch, "batches": args.batches,
           "samples": n, "repeats": args.repeats, "clip": CLIP, "noise_multiplier": SIGMA,
           "sample_rate": args.batch / n, "loader": args.loader, "secure_mode": False,
           "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
           "loadavg_start": load_start, "results": []}
    print(f"{'model':<10} {'run':<14} {'samples/s med':>14} {'min':>10} {'max':>10} {'loss':>8}")
    for arch in args.models.split(","):
        make = NiidCnn if arch == "niid-cnn" else Mlp
        torch.manual_seed(1)
        init = make().state_dict()
        row = {"model": arch, "dp": {}}
        runs = {}  # name -> epoch function returning (samples, seconds, loss)
        if not args.no_plain:
            model = make()
            model.load_state_dict(init)
            gen = torch.Generator().manual_seed(1)
            holder = {}

            def plain(model=model, gen=gen, holder=holder):
                model.load_state_dict(init)
                holder["opt"] = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
                t0 = time.perf_counter()
                loss = one_epoch(model, holder["opt"], x, y, args.batch, gen)
                return n, time.perf_counter() - t0, loss

            runs["pytorch"] = plain
        for mode in modes:
            try:
                gsm, dp_opt, dp_loader = make_private(make, init, x, y, args.batch, mode, seed=7)
                checks = validate(gsm, dp_opt, make, x, y, args.batch)
            except Exception as e:  # noqa: BLE001 -- a mode torch 1.13 lacks is a result
                msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                print(f"{arch:<10} {'opacus-' + mode:<14} failed: {msg}")
                row["dp"][mode] = {"error": msg}
                continue
            row["dp"][mode] = {"validation": checks, "empty_batches": 0, "samples_all": []}

            def private(gsm=gsm, dp_opt=dp_opt, dp_loader=dp_loader, rec=row["dp"][mode]):
                reset(gsm, dp_opt, init)
                samples, secs, loss, empty = dp_epoch(gsm, dp_opt, dp_loader, x, y, args.loader)
                rec["empty_batches"] += empty
                rec["samples_all"].append(samples)
                return samples, secs, loss

            runs["opacus-" + mode] = private
        for fn in runs.values():  # warm-up
            fn()
        for rec in row["dp"].values():
            if "samples_all" in rec:
                rec["samples_all"].clear()
        rates = {name: [] for name in runs}
        losses = {}
        for _ in range(args.repeats):
            for name, fn in runs.items():
                samples, secs, loss = fn()
                rates[name].append(samples / secs)
                losses[name] = loss
        for name in runs:
            s = summary(rates[name])
            s["mean_loss_last_repeat"] = losses[name]
            print(f"{arch:<10} {name:<14} {s['samples_per_s_median']:>14.0f} "
                  f"{s['samples_per_s_min']:>10.0f} {s['samples_per_s_max']:>10.0f} {losses[name]:>8.4f}")
            if name == "pytorch":
                row["pytorch"] = s
            else:
                row["dp"][name[len("opacus-"):]].update(s)
        out["results"].append(row)
    out["loadavg_end"] = os.getloadavg()
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(f"wrote {args.json}")
    return 0 if all(math.isfinite(r["pytorch"]["samples_per_s_median"]) for r in out["results"]
                    if "pytorch" in r) else 1


if __name__ == "__main__":
    sys.exit(main())
