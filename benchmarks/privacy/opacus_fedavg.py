#!/usr/bin/env python3
"""DP-SGD FedAvg in PyTorch + Opacus on fedsilo's silo files: the reference for fedsilo's
utility under DP (issue 16; fedsilo's side is benchmarks/privacy/utility/dp-eps{3,8}.toml).

Full comparison (40 rounds, seed 1; about 25 ms a DP step on one thread, 942 steps a round, so
roughly 15-20 minutes a run on 2 cores; --state makes a run resumable):
  python3 -m venv --system-site-packages /tmp/opacus-venv
  /tmp/opacus-venv/bin/pip install --no-deps opacus==1.4.0 opt-einsum scipy==1.10.1  # torch 1.13: Debian's
  for E in 3 8; do
    /tmp/opacus-venv/bin/python benchmarks/privacy/opacus_fedavg.py \\
        data/niid-bench/fmnist-dirichlet0.5 --dp-target-epsilon $E --seed 1 --rounds 40 \\
        --workers 2 --threads 2 --state runs/dp-utility/opacus-eps$E.pt \\
        --json benchmarks/privacy/utility/opacus-eps$E.json
  done
  (without --dp-target-epsilon: the same recipe without DP, fedsilo's dp-plain.toml)
Smoke test: ... --dp-target-epsilon 3 --rounds 1 --max-batches 2

The recipe (the defaults): NIID-Bench simple CNN (pytorch_fedavg.NiidCnn, fedsilo's niid-cnn),
every silo every round, --epochs 1 local epoch, --batch 64, SGD --lr 0.05 --momentum 0.9
--weight-decay 0 with a fresh optimizer (momentum buffer from zero) per silo per round,
FedAvg weighted by training samples, the global model's accuracy on the global test split
(SILOS_DIR/test.h5) after every round.

DP-SGD (--dp-target-epsilon E): in every silo of every round, PrivacyEngine.make_private(
poisson_sampling=True, max_grad_norm=--clip, noise_multiplier=sigma) on the silo's DataLoader
(batch --batch), with a fresh model copy, optimizer and engine. As in fedsilo, each silo's
sample rate is q = batch / N with ceil(N / batch) Poisson batches an epoch and the noisy
gradient sum is divided by batch (the expected batch size); Opacus's make_private would
instead take q = 1 / ceil(N / batch) and divide by int(N * q) (<= batch): the returned
DPDataLoader's sampler and the DPOptimizer's expected_batch_size are set to fedsilo's values
(--opacus-q keeps Opacus's own). Each silo's sigma is computed once, up front, with
opacus.accountants.utils.get_noise_multiplier(target_epsilon=E, target_delta=--delta,
sample_rate=q, steps=rounds * epochs * ceil(N / batch), accountant="rdp"), as fedsilo does;
each silo's epsilon after the run (and after each round) comes from Opacus's RDPAccountant
over the steps the silo actually took. The batches are the DPDataLoader's own Poisson batches
(its batch_sampler), gathered by tensor indexing rather than per-sample __getitem__ + collate
(same batches, less Python overhead).

Deterministic given --seed: the initial model from torch.manual_seed(seed) (or, with
--init-h5 RUN/model.h5, fedsilo's initial model: a fedsilo run of one round at lr 1e-30 writes
it); each silo's Poisson sampling and Opacus noise (noise_generator; not secure_mode) from a
torch.Generator seeded by (seed, round, silo), so --workers does not change the batches or the
noise.
--max-batches K caps the steps a silo takes per round (smoke tests; the accountant counts the
steps taken). JSON (--json): per-round accuracy (and the largest silo epsilon so far),
final accuracy, each silo's N, q, sigma, steps and final epsilon, seconds.
"""
import argparse
import json
import math
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "niid_bench"))
from pytorch_fedavg import NiidCnn, evaluate, load  # noqa: E402

# Opacus's notices on every make_private: secure_mode off (intended: seeded noise) and its
# forbid_accumulation_hook being a non-full backward hook (torch 1.13's deprecation).
warnings.filterwarnings("ignore", message="Secure RNG turned off")
warnings.filterwarnings("ignore", message="Using a non-full backward hook")


def silo_generator(seed, rnd, silo):
    return torch.Generator().manual_seed(seed * 1_000_003 + rnd * 1009 + silo)


def steps_per_epoch(n, batch):
    return (n + batch - 1) // batch


def train_silo(gstate, x, y, cfg, sigma, gen):
    """One silo's local training from the global state; returns (state, steps, mean loss)."""
    local = NiidCnn()
    local.load_state_dict(gstate)
    local.train()
    opt = torch.optim.SGD(local.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                          weight_decay=cfg["weight_decay"])
    n, batch = len(y), cfg["batch"]
    spe = steps_per_epoch(n, batch)
    if cfg["max_batches"] > 0:
        spe = min(spe, cfg["max_batches"])
    steps, loss_sum, seen = 0, 0.0, 0
    if sigma is None:  # plain SGD: shuffled batches, the last one partial
        for _ in range(cfg["epochs"]):
            perm = torch.randperm(n, generator=gen)
            for b in range(spe):
                idx = perm[b * batch:(b + 1) * batch]
                opt.zero_grad()
                loss = F.cross_entropy(local(x[idx]), y[idx])
                loss.backward()
                opt.step()
                steps += 1
                loss_sum += loss.item() * len(idx)
                seen += len(idx)
        return local.state_dict(), steps, loss_sum / max(seen, 1)

    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, generator=gen)
    engine = PrivacyEngine(accountant="rdp")
    model, dp_opt, dp_loader = engine.make_private(
        module=local, optimizer=opt, data_loader=loader, noise_multiplier=sigma,
        max_grad_norm=cfg["clip"], poisson_sampling=True, noise_generator=gen)
    sampler = dp_loader.batch_sampler  # UniformWithReplacementSampler, generator = gen
    if not cfg["opacus_q"]:
        sampler.sample_rate = dp_loader.sample_rate = batch / n
        dp_opt.expected_batch_size = batch
    sampler.steps = spe
    for _ in range(cfg["epochs"]):
        for idx in sampler:
            idx = torch.as_tensor(idx, dtype=torch.long)
            dp_opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            dp_opt.step()
            steps += 1
            if len(idx) > 0:
                loss_sum += loss.item() * len(idx)
                seen += len(idx)
    return local.state_dict(), steps, loss_sum / max(seen, 1)


_DATA = []


def _worker_init(silos_dir, threads):
    torch.set_num_threads(threads)
    silos = sorted(d for d in os.listdir(silos_dir) if d.startswith("silo-"))
    _DATA.extend(load(os.path.join(silos_dir, s, "train.h5")) for s in silos)


def _worker_train(job):
    gstate, silo, rnd, cfg, sigma = job
    x, y = _DATA[silo]
    return train_silo(gstate, x, y, cfg, sigma, silo_generator(cfg["seed"], rnd, silo))


def silo_epsilon(sigma, q, steps, delta):
    from opacus.accountants import RDPAccountant
    if steps == 0:
        return 0.0
    acct = RDPAccountant()
    acct.history = [(sigma, q, steps)]
    return float(acct.get_epsilon(delta=delta))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("silos_dir")
    ap.add_argument("--dp-target-epsilon", type=float, default=0.0,
                    help="per-silo epsilon over all rounds (0: no DP)")
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--max-batches", type=int, default=0,
                    help="at most this many steps per silo per epoch (smoke tests; 0: all)")
    ap.add_argument("--opacus-q", action="store_true",
                    help="Opacus's own q = 1/ceil(N/batch) and divisor int(N*q), not fedsilo's")
    ap.add_argument("--init-h5", help="start from this fedsilo model.h5's parameters (niid-cnn: "
                    "the same names, shapes and order) instead of torch's initial draw")
    ap.add_argument("--json")
    ap.add_argument("--state", help="resumable state file, saved after every round")
    a = ap.parse_args()
    for out in (a.json, a.state):
        if out:
            os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dp = a.dp_target_epsilon > 0
    silos = sorted(d for d in os.listdir(a.silos_dir) if d.startswith("silo-"))
    data = [load(os.path.join(a.silos_dir, s, "train.h5")) for s in silos]
    xt, yt = load(os.path.join(a.silos_dir, "test.h5"))
    sizes = np.array([len(y) for _, y in data], dtype=np.float64)
    weights = sizes / sizes.sum()
    cfg = {"lr": a.lr, "momentum": a.momentum, "weight_decay": a.weight_decay,
           "epochs": a.epochs, "batch": a.batch, "clip": a.clip, "seed": a.seed,
           "max_batches": a.max_batches, "opacus_q": a.opacus_q}

    # Each silo's sample rate and noise multiplier, for every planned step of the run.
    qs, sigmas = [], []
    for n in sizes.astype(int):
        spe = steps_per_epoch(n, a.batch)
        q = 1.0 / spe if a.opacus_q else a.batch / n
        qs.append(q)
        if dp:
            from opacus.accountants.utils import get_noise_multiplier
            if a.delta >= 1.0 / n:
                sys.exit(f"--delta {a.delta} is not below 1/{n}")
            sigmas.append(get_noise_multiplier(
                target_epsilon=a.dp_target_epsilon, target_delta=a.delta, sample_rate=q,
                steps=a.rounds * a.epochs * spe, accountant="rdp"))
        else:
            sigmas.append(None)
    if dp:
        print("sigma per silo: " + " ".join(f"{s:.4f}" for s in sigmas), flush=True)

    glob = NiidCnn()
    if a.init_h5:
        import h5py
        with h5py.File(a.init_h5, "r") as f:
            flat, offsets = f["params"][...], f["param_offsets"][...]
        state = glob.state_dict()
        if len(offsets) != len(state) or flat.size != sum(v.numel() for v in state.values()):
            sys.exit(f"{a.init_h5}: not a niid-cnn model.h5 ({flat.size} parameters)")
        glob.load_state_dict({k: torch.from_numpy(flat[o:o + v.numel()].copy()).reshape(v.shape)
                              for (k, v), o in zip(state.items(), offsets)})
    history = []
    steps = [0] * len(silos)
    start = 1
    if a.state and os.path.exists(a.state):
        st = torch.load(a.state)
        glob.load_state_dict(st["model"])
        history, steps, start = st["history"], st["steps"], st["round"] + 1
        print(f"resuming after round {st['round']}", flush=True)
    pool = None
    if a.workers > 1:
        import multiprocessing as mp
        pool = mp.get_context("spawn").Pool(
            a.workers, initializer=_worker_init,
            initargs=(a.silos_dir, max(1, a.threads // a.workers)))
    t0 = time.time()
    for rnd in range(start, a.rounds + 1):
        gstate = {k: v.clone() for k, v in glob.state_dict().items()}
        avg = {k: torch.zeros_like(v) for k, v in gstate.items()}
        if pool is not None:
            jobs = [(gstate, i, rnd, cfg, sigmas[i]) for i in range(len(data))]
            results = pool.imap(_worker_train, jobs, chunksize=1)
        else:
            results = (train_silo(gstate, x, y, cfg, sigmas[i], silo_generator(a.seed, rnd, i))
                       for i, (x, y) in enumerate(data))
        losses = []
        for i, ((state, took, loss), w) in enumerate(zip(results, weights)):
            steps[i] += took
            losses.append(loss)
            for k, v in state.items():
                avg[k] += w * v
        glob.load_state_dict(avg)
        acc = evaluate(glob, xt, yt)
        eps = max(silo_epsilon(s, q, t, a.delta) for s, q, t in zip(sigmas, qs, steps)) if dp else 0.0
        history.append([rnd, acc, eps])
        print(f"round {rnd:3d}  acc {100 * acc:6.2f}%  train loss {np.dot(weights, losses):.4f}"
              + (f"  max epsilon {eps:.3f}" if dp else "")
              + f"  ({time.time() - t0:.0f} s)", flush=True)
        if a.state:
            tmp = a.state + ".tmp"
            torch.save({"model": glob.state_dict(), "history": history, "steps": steps,
                        "round": rnd}, tmp)
            os.replace(tmp, a.state)
    if pool is not None:
        pool.close()
    per_silo = []
    for i, s in enumerate(silos):
        e = silo_epsilon(sigmas[i], qs[i], steps[i], a.delta) if dp else None
        per_silo.append({"silo": s, "train_samples": int(sizes[i]), "sample_rate": qs[i],
                         "noise_multiplier": sigmas[i], "steps": steps[i], "epsilon": e})
        if dp:
            print(f"{s}: N {int(sizes[i])}  q {qs[i]:.6f}  sigma {sigmas[i]:.4f}  steps {steps[i]}"
                  f"  epsilon {e:.4f}", flush=True)
    if a.json:
        import opacus
        with open(a.json, "w") as f:
            json.dump({"silos_dir": a.silos_dir, "rounds": a.rounds, "epochs": a.epochs,
                       "batch": a.batch, "lr": a.lr, "momentum": a.momentum,
                       "weight_decay": a.weight_decay, "seed": a.seed,
                       "dp": ({"target_epsilon": a.dp_target_epsilon, "delta": a.delta,
                               "clip": a.clip, "accountant": "rdp", "opacus_q": a.opacus_q}
                              if dp else None),
                       "max_batches": a.max_batches, "init_h5": a.init_h5,
                       "accuracy_per_round": [[r, acc] for r, acc, _ in history],
                       "max_epsilon_per_round": [[r, e] for r, _, e in history] if dp else None,
                       "final_accuracy": history[-1][1] if history else None,
                       "silos": per_silo, "torch": torch.__version__,
                       "opacus": opacus.__version__, "threads": a.threads,
                       "workers": a.workers, "seconds": time.time() - t0}, f, indent=1)


if __name__ == "__main__":
    main()
