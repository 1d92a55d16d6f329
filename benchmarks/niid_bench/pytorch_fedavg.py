#!/usr/bin/python3
"""PyTorch FedAvg/FedProx/SCAFFOLD/FedNova on fedsilo's silo files: the NIID-Bench recipe
(simple-cnn, SGD lr 0.01 momentum 0.9 weight decay 1e-5, batch 64, fresh optimizer per round,
sample-weighted averaging, every silo every round), for checking fedsilo's accuracy on the very
same partition.

--algorithm scaffold (Karimireddy et al. 2020, option II, as NIID-Bench's train_net_scaffold):
control variates start at zero; after every optimizer step y -= lr (c - c_s); after K steps
c_s+ = c_s - c + (w - y) / (K lr); the model is averaged by sample count; c += mean over the
N silos of (c_s+ - c_s).
--algorithm fednova (Wang et al. 2020, as NIID-Bench's train_net_fednova): tau_s optimizer steps
with momentum rho give a_s = (tau_s - rho (1 - rho^tau_s) / (1 - rho)) / (1 - rho); each silo
sends d_s = (w - y_s) / a_s; w -= (sum p_s a_s) (sum p_s d_s), p_s = n_s / n.

Runs under Debian's /usr/bin/python3 (python3-torch, python3-h5py).
Usage: pytorch_fedavg.py SILOS_DIR [--rounds 50] [--epochs 10] [--mu 0] [--threads 2]
                         [--algorithm fedavg|scaffold|fednova]
                         [--workers 1] [--seed 0] [--json FILE] [--state FILE]
With --state, the global model, history and RNG state are saved after every round and a later
call continues from there (a 50-round run takes about 70 minutes on 2 cores).
--workers N trains the silos of a round in N processes (threads are split among them; small
convolutions at batch 64 scale better over processes than over threads); each silo then
shuffles with its own generator seeded by (seed, round, silo), so the result does not depend
on N, and the silos' models are averaged in silo order.
"""
import argparse
import json
import os
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class NiidCnn(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(256, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def load(path):
    with h5py.File(path, "r") as f:
        return torch.from_numpy(f["x"][...]), torch.from_numpy(f["y"][...].astype(np.int64))


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        correct = 0
        for i in range(0, len(y), 1000):
            correct += (model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
    return correct / len(y)


_DATA = []


def _worker_init(silos_dir, threads):
    torch.set_num_threads(threads)
    silos = sorted(d for d in os.listdir(silos_dir) if d.startswith("silo-"))
    _DATA.extend(load(os.path.join(silos_dir, s, "train.h5")) for s in silos)


LR, RHO = 0.01, 0.9


def train_silo(gstate, x, y, epochs, mu, gen=None, algorithm="fedavg", c=None, c_s=None):
    """The silo's new state dict and what its algorithm sends besides: SCAFFOLD its new control
    variate (c_s+, a list of tensors by parameter), FedNova its a_s."""
    local = NiidCnn()
    local.load_state_dict(gstate)
    local.train()
    opt = torch.optim.SGD(local.parameters(), lr=LR, momentum=RHO, weight_decay=1e-5)
    gparams = [p.detach().clone() for p in local.parameters()]
    steps = 0
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = F.cross_entropy(local(x[idx]), y[idx])
            if mu > 0:
                loss = loss + mu / 2 * sum(((p - g) ** 2).sum()
                                           for p, g in zip(local.parameters(), gparams))
            loss.backward()
            opt.step()
            steps += 1
            if algorithm == "scaffold":
                with torch.no_grad():
                    for p, cg, cl in zip(local.parameters(), c, c_s):
                        p -= LR * (cg - cl)
    extra = None
    if algorithm == "scaffold":
        with torch.no_grad():
            extra = [cl - cg + (g - p) / (steps * LR)
                     for p, g, cg, cl in zip(local.parameters(), gparams, c, c_s)]
    elif algorithm == "fednova":
        extra = (steps - RHO * (1 - RHO ** steps) / (1 - RHO)) / (1 - RHO)
    return local.state_dict(), extra


def _worker_train(job):
    gstate, silo, rnd, seed, epochs, mu, algorithm, c, c_s = job
    gen = torch.Generator().manual_seed(seed * 1_000_003 + rnd * 1009 + silo)
    x, y = _DATA[silo]
    return train_silo(gstate, x, y, epochs, mu, gen, algorithm, c, c_s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("silos_dir")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--mu", type=float, default=0.0)
    ap.add_argument("--algorithm", choices=["fedavg", "scaffold", "fednova"], default="fedavg")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    ap.add_argument("--state", help="resumable state file, saved after every round")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    silos = sorted(d for d in os.listdir(a.silos_dir) if d.startswith("silo-"))
    data = [load(os.path.join(a.silos_dir, s, "train.h5")) for s in silos]
    xt, yt = load(os.path.join(a.silos_dir, "test.h5"))
    sizes = np.array([len(y) for _, y in data], dtype=np.float64)
    weights = sizes / sizes.sum()
    glob = NiidCnn()
    # SCAFFOLD's server and silo control variates, by parameter (zero at the start).
    c = [torch.zeros_like(p) for p in glob.parameters()]
    c_silo = [[torch.zeros_like(p) for p in glob.parameters()] for _ in data]
    history = []
    start = 1
    if a.state and os.path.exists(a.state):
        st = torch.load(a.state)
        glob.load_state_dict(st["model"])
        if "c" in st:
            c, c_silo = st["c"], st["c_silo"]
        history = st["history"]
        torch.set_rng_state(st["rng"])
        start = st["round"] + 1
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
            jobs = [(gstate, i, rnd, a.seed, a.epochs, a.mu, a.algorithm, c, c_silo[i])
                    for i in range(len(data))]
            results = list(pool.imap(_worker_train, jobs, chunksize=1))
        else:
            results = [train_silo(gstate, x, y, a.epochs, a.mu, None, a.algorithm, c, c_silo[i])
                       for i, (x, y) in enumerate(data)]
        if a.algorithm == "fednova":
            # w -= tau_eff * sum p_s d_s, d_s = (w - y_s) / a_s, tau_eff = sum p_s a_s
            tau_eff = sum(w * extra for (_, extra), w in zip(results, weights))
            d = {k: torch.zeros_like(v) for k, v in gstate.items()}
            for (state, extra), w in zip(results, weights):
                for k, v in state.items():
                    d[k] += w * (gstate[k] - v) / extra
            avg = {k: gstate[k] - tau_eff * d[k] for k in gstate}
        else:
            for (state, _), w in zip(results, weights):
                for k, v in state.items():
                    avg[k] += w * v
        if a.algorithm == "scaffold":
            for i, (_, c_new) in enumerate(results):
                for cg, old, new in zip(c, c_silo[i], c_new):
                    cg += (new - old) / len(data)
                c_silo[i] = c_new
        glob.load_state_dict(avg)
        acc = evaluate(glob, xt, yt)
        history.append([rnd, acc])
        print(f"round {rnd:3d}  acc {100 * acc:6.2f}%  ({time.time() - t0:.0f} s)", flush=True)
        if a.state:
            tmp = a.state + ".tmp"
            torch.save({"model": glob.state_dict(), "history": history, "round": rnd,
                        "rng": torch.get_rng_state(), "c": c, "c_silo": c_silo}, tmp)
            os.replace(tmp, a.state)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"silos_dir": a.silos_dir, "rounds": a.rounds, "epochs": a.epochs,
                       "algorithm": a.algorithm, "mu": a.mu, "seed": a.seed, "accuracy_per_round": history,
                       "seconds": time.time() - t0}, f, indent=1)


if __name__ == "__main__":
    main()
