#!/usr/bin/env python3
"""One silo's DP-SGD round, fedsilo against Opacus from the same initial weights (issue 16).

fedsilo ends the 40-round DP utility recipe ahead of Opacus in all six (seed, epsilon) pairs;
this isolates one local round, the only place the two programs differ (both average the same
way and evaluate on the same images). Two checks, each from weights both sides load:

1. exact: a deterministic DP-SGD (q = 1: BATCH = N, so every Poisson batch is the whole set, and
   noise multiplier 1e-9) for a few epochs on the first --exact-records records of the silo.
   Clipping, the division by the expected batch and momentum SGD must then agree to float
   rounding: the maximum parameter difference is printed against the update's size.
2. statistical: the real recipe (batch 64, clip 1, lr 0.05, momentum 0.9, one epoch, the
   silo's noise multiplier for --epsilon over --rounds rounds) --repeats times on each side,
   fedsilo with tests-only keys 1..K, Opacus (opacus_fedavg.train_silo, the benchmark's own
   code) with generators 1..K. Per side: the mean over runs of the update norm, the local
   model's test accuracy and loss; the norm of the mean update and of the expected update (the
   mean's, less the noise left in it), and the cosine between the two sides' expected updates
   (the means' dot product over the expected norms: 1 when both sides move the same way on
   average, whatever the noise). Run from the fresh model
   and from a model already trained a little (--warm-epochs of plain SGD on the silo), since the
   utility runs spend most rounds near a trained model.

Usage (Opacus in the throwaway venv of opacus_fedavg.py, fedsilo's build):
  /tmp/opvenv/bin/python benchmarks/privacy/dp_round_check.py data/niid-bench/fmnist-dirichlet0.5 \\
      --binary build/test/benchmarks/dp_round_check --silo 0 --repeats 20 --json OUT.json
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "niid_bench"))
from opacus_fedavg import train_silo  # noqa: E402
from pytorch_fedavg import NiidCnn, load  # noqa: E402


def flat(model_or_state):
    state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") else model_or_state
    return torch.cat([v.reshape(-1) for v in state.values()]).double()


def unflat(vec, like):
    state, at = {}, 0
    for k, v in like.state_dict().items():
        state[k] = vec[at:at + v.numel()].reshape(v.shape).float().clone()
        at += v.numel()
    return state


def subset_file(src, dst, count):
    """The first `count` records of a silo file, attributes kept (fedsilo reads it too)."""
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        for name in ("x", "y"):
            d = g.create_dataset(name, data=f[name][:count])
            for k, v in f[name].attrs.items():
                d.attrs[k] = v


def fedsilo_round(binary, train, init_vec, batch, sigma, clip, lr, momentum, epochs, key, tmp):
    init, out = os.path.join(tmp, "init.bin"), os.path.join(tmp, "out.bin")
    init_vec.float().numpy().tofile(init)
    r = subprocess.run([binary, train, init, out, str(batch), repr(sigma), repr(clip), repr(lr),
                        repr(momentum), str(epochs), str(key)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{binary} failed: {r.stderr.strip()}")
    return torch.from_numpy(np.fromfile(out, dtype=np.float32)).double()


def opacus_round(init_model, x, y, batch, sigma, clip, lr, momentum, epochs, gen_seed):
    cfg = {"lr": lr, "momentum": momentum, "weight_decay": 0.0, "epochs": epochs, "batch": batch,
           "clip": clip, "seed": 0, "max_batches": 0, "opacus_q": False}
    state, _, _ = train_silo(init_model.state_dict(), x, y, cfg, sigma,
                             torch.Generator().manual_seed(gen_seed))
    return flat(state)


def test_metrics(vec, like, xt, yt):
    m = NiidCnn()
    m.load_state_dict(unflat(vec, like))
    m.eval()
    with torch.no_grad():
        logits = m(xt)
        return ((logits.argmax(1) == yt).double().mean().item(),
                F.cross_entropy(logits, yt).item())


def side_summary(w0, runs, like, xt, yt):
    upd = torch.stack([r - w0 for r in runs])
    metrics = [test_metrics(r, like, xt, yt) for r in runs]
    acc = np.array([a for a, _ in metrics])
    loss = np.array([l for _, l in metrics])
    norms = upd.norm(dim=1).numpy()
    # The expected update's squared norm: the mean update's, less the noise left in it (the
    # summed per-coordinate variance over the runs, divided by their number).
    signal2 = float(upd.mean(0).norm() ** 2 - upd.var(0, unbiased=True).sum() / len(runs))
    return upd.mean(0), {"expected_update_norm2": signal2,
        "update_norm_mean": float(norms.mean()), "update_norm_sd": float(norms.std(ddof=1)),
        "norm_of_mean_update": float(upd.mean(0).norm()),
        "test_accuracy_mean": float(acc.mean()), "test_accuracy_sd": float(acc.std(ddof=1)),
        "test_loss_mean": float(loss.mean()), "test_loss_sd": float(loss.std(ddof=1))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("silos_dir")
    ap.add_argument("--binary", required=True, help="fedsilo's dp_round_check program")
    ap.add_argument("--silo", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1, help="the initial model's torch seed")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--epsilon", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--warm-epochs", type=int, default=3)
    ap.add_argument("--exact-records", type=int, default=256)
    ap.add_argument("--exact-epochs", type=int, default=3)
    ap.add_argument("--test-records", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    silo = f"silo-{a.silo:02d}"
    train = os.path.join(a.silos_dir, silo, "train.h5")
    x, y = load(train)
    xt, yt = load(os.path.join(a.silos_dir, "test.h5"))
    xt, yt = xt[:a.test_records], yt[:a.test_records]
    n = len(y)
    torch.manual_seed(a.seed)
    fresh = NiidCnn()
    out = {"silo": silo, "records": n, "seed": a.seed, "repeats": a.repeats}
    t0 = time.time()

    with tempfile.TemporaryDirectory() as tmp:
        # 1. exact: q = 1, no noise to speak of.
        sub = os.path.join(tmp, "subset.h5")
        subset_file(train, sub, a.exact_records)
        xs, ys = load(sub)
        w0 = flat(fresh)
        wf = fedsilo_round(a.binary, sub, w0, a.exact_records, 1e-9, a.clip, a.lr, a.momentum,
                           a.exact_epochs, 1, tmp)
        wo = opacus_round(fresh, xs, ys, a.exact_records, 1e-9, a.clip, a.lr, a.momentum,
                          a.exact_epochs, 1)
        diff = (wf - wo).abs().max().item()
        size = (wo - w0).abs().max().item()
        out["exact"] = {"records": a.exact_records, "epochs": a.exact_epochs,
                        "max_abs_difference": diff, "max_abs_update": size,
                        "update_norm_fedsilo": (wf - w0).norm().item(),
                        "update_norm_opacus": (wo - w0).norm().item()}
        ex = out["exact"]
        print(f"exact (q = 1, {a.exact_records} records, {a.exact_epochs} steps): max |fedsilo - "
              f"Opacus| {diff:.3g} against a largest update of {size:.3g}; update norms "
              f"{ex['update_norm_fedsilo']:.6f} / {ex['update_norm_opacus']:.6f}", flush=True)

        # 2. statistical: the recipe's round.
        from opacus.accountants.utils import get_noise_multiplier
        spe = (n + a.batch - 1) // a.batch
        sigma = get_noise_multiplier(target_epsilon=a.epsilon, target_delta=a.delta,
                                     sample_rate=a.batch / n, steps=a.rounds * spe,
                                     accountant="rdp")
        out["noise_multiplier"] = sigma
        warm = NiidCnn()
        warm.load_state_dict(fresh.state_dict())
        opt = torch.optim.SGD(warm.parameters(), lr=0.01, momentum=0.9)
        gen = torch.Generator().manual_seed(a.seed)
        for _ in range(a.warm_epochs):
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, 64):
                idx = perm[i:i + 64]
                opt.zero_grad()
                F.cross_entropy(warm(x[idx]), y[idx]).backward()
                opt.step()
        out["from"] = {}
        for name, init in (("fresh", fresh), ("warm", warm)):
            w0 = flat(init)
            acc0, loss0 = test_metrics(w0, fresh, xt, yt)
            f_runs = [fedsilo_round(a.binary, train, w0, a.batch, sigma, a.clip, a.lr, a.momentum,
                                    1, k, tmp) for k in range(1, a.repeats + 1)]
            o_runs = [opacus_round(init, x, y, a.batch, sigma, a.clip, a.lr, a.momentum, 1, k)
                      for k in range(1, a.repeats + 1)]
            mf, sf = side_summary(w0, f_runs, fresh, xt, yt)
            mo, so = side_summary(w0, o_runs, fresh, xt, yt)
            cos = float(torch.dot(mf, mo) / (mf.norm() * mo.norm()))
            # The two expected updates' cosine: the two means are independent, so their dot
            # product estimates the expected updates' without bias.
            s2f, s2o = sf["expected_update_norm2"], so["expected_update_norm2"]
            signal_cos = (float(torch.dot(mf, mo)) / math.sqrt(s2f * s2o)
                          if min(s2f, s2o) > 0 else float("nan"))
            out["from"][name] = {"test_accuracy_before": acc0, "test_loss_before": loss0,
                                 "fedsilo": sf, "opacus": so, "cosine_of_mean_updates": cos,
                                 "cosine_of_expected_updates": signal_cos}
            print(f"from the {name} model (test accuracy {100 * acc0:.2f}%), sigma {sigma:.4f}, "
                  f"{a.repeats} runs a side:", flush=True)
            for side, s in (("fedsilo", sf), ("Opacus", so)):
                print(f"  {side:8s} update norm {s['update_norm_mean']:.4f} +- "
                      f"{s['update_norm_sd']:.4f}  norm of mean update "
                      f"{s['norm_of_mean_update']:.4f}  test accuracy "
                      f"{100 * s['test_accuracy_mean']:.2f} +- {100 * s['test_accuracy_sd']:.2f}%"
                      f"  test loss {s['test_loss_mean']:.4f} +- {s['test_loss_sd']:.4f}",
                      flush=True)
            print(f"  cosine between the two sides' mean updates: {cos:.4f}; expected update norms "
                  f"{math.sqrt(max(s2f, 0)):.4f} / {math.sqrt(max(s2o, 0)):.4f}, their cosine "
                  f"{signal_cos:.4f}", flush=True)
    out["seconds"] = time.time() - t0
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(out, f, indent=1)
        os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    main()
