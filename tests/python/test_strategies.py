"""SCAFFOLD and FedNova against a PyTorch implementation of the same algorithms on a tiny case.

usage: test_strategies.py native|binding scaffold|fednova

4 silos of the Fashion-MNIST fixture, fedsilo's mlp (784-32-10), 3 rounds of 3 local epochs
with momentum SGD on the whole silo as one batch (so the visiting order cannot matter). The run
is `fedsilo train` (native) or a user loop through fedsilo.torch (binding: train_mlp.py's
network, scaffold_correction() after every step, aggregate(steps=...), and silo r training
3 + r epochs: uneven step counts, without which FedNova's round is FedAvg's). Its round 3 is then
recomputed here from the checkpoint of round 2 (the global model, SCAFFOLD's c and each silo's
c_s) by plain PyTorch written from the papers: per-parameter tensors, torch.optim.SGD, SCAFFOLD
option II with the correction after each momentum step (NIID-Bench), c moved by 1/N; FedNova's
a_s and tau_eff. The model, c and every c_s must match to float rounding; the same round without
the algorithm's own step (plain FedAvg) must not.
"""
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

import harness
from train_mlp import FedsiloMlp

ROUNDS, EPOCHS, LR, MOMENTUM, WD = 3, 3, 0.05, 0.9, 1e-5


def config(folder, strategy, arch):
    extra = ('weight_decay = %g\nthreads = 1\n[strategy]\nname = "%s"\n' % (WD, strategy))
    path = harness.write_config(folder, harness.silos(4), ROUNDS, arch=arch, extra=extra)
    text = open(path).read().replace("epochs = 1\nbatch_size = 32\n",
                                     "epochs = %d\nbatch_size = 100000\n" % EPOCHS)
    with open(path, "w") as f:
        f.write(text)
    return path


def read(path, name):
    with h5py.File(path, "r") as f:
        return np.array(f[name][...])


def tensors(flat, path):
    """The flat vector as {name: tensor} by the file's parameter table."""
    with h5py.File(path, "r") as f:
        names = [n.decode() for n in f["param_names"][...]]
        shapes = [[int(d) for d in s if d > 0] for s in f["param_shapes"][...]]
        offsets = [int(o) for o in f["param_offsets"][...]]
    out = {}
    for name, shape, off in zip(names, shapes, offsets):
        n = int(np.prod(shape))
        out[name] = torch.from_numpy(flat[off:off + n].copy()).view(*shape)
    return out


def reference_round(run, strategy, uneven, follow_algorithm=True):
    """Round ROUNDS from the checkpoint of round ROUNDS - 1: (global model, c, [c_s])."""
    ckpt = os.path.join(run, "checkpoints", "ckpt-%06d.h5" % (ROUNDS - 1))
    w = tensors(read(ckpt, "params"), ckpt)
    names = list(w)
    silo_dirs = sorted(d for d in os.listdir(harness.silos(4)) if d.startswith("silo-"))
    N = len(silo_dirs)
    if strategy == "scaffold":
        c = tensors(read(ckpt, "scaffold_c"), ckpt)
        c_s = [tensors(read(os.path.join(run, "private", d, "ckpt-%06d.h5" % (ROUNDS - 1)),
                            "scaffold_c_silo"), ckpt) for d in silo_dirs]
    results = []
    for i, d in enumerate(silo_dirs):
        with h5py.File(os.path.join(harness.silos(4), d, "train.h5"), "r") as f:
            x = torch.from_numpy(np.array(f["x"][...]))
            y = torch.from_numpy(np.array(f["y"][...]).astype(np.int64))
        net = FedsiloMlp(784, 32, 10)
        net.load_state_dict({k: v.clone() for k, v in w.items()})
        opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
        steps = 0
        for _ in range(EPOCHS + (i if uneven else 0)):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
            steps += 1
            if strategy == "scaffold" and follow_algorithm:
                with torch.no_grad():
                    for name, p in net.named_parameters():
                        p -= LR * (c[name] - c_s[i][name])
        local = {k: v.detach().clone() for k, v in net.state_dict().items()}
        results.append((len(y), steps, local))
    n_total = float(sum(n for n, _, _ in results))
    if strategy == "fednova" and follow_algorithm:
        a = [(k - MOMENTUM * (1 - MOMENTUM ** k) / (1 - MOMENTUM)) / (1 - MOMENTUM) for _, k, _ in results]
        tau_eff = sum(n / n_total * a_i for (n, _, _), a_i in zip(results, a))
        d = {k: sum(n / n_total * (w[k] - loc[k]) / a_i for (n, _, loc), a_i in zip(results, a)) for k in names}
        new_w = {k: w[k] - tau_eff * d[k] for k in names}
    else:
        new_w = {k: sum(n / n_total * loc[k] for n, _, loc in results) for k in names}
    if strategy != "scaffold":
        return new_w, None, None
    new_c_s = [{k: c_s[i][k] - c[k] + (w[k] - loc[k]) / (k_steps * LR) for k in names}
               for i, (_, k_steps, loc) in enumerate(results)]
    new_c = {k: c[k] + sum(new_c_s[i][k] - c_s[i][k] for i in range(N)) / N for k in names}
    return new_w, new_c, new_c_s


def max_diff(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def main():
    mode, strategy = sys.argv[1], sys.argv[2]
    folder = harness.fresh_dir("strategies_%s_%s" % (mode, strategy))
    run = os.path.join(folder, "run")
    if mode == "native":
        cfg = config(folder, strategy, "mlp")
        r = harness.mpirun(4, [harness.FEDSILO, "train", cfg, "-q"], "native", timeout=180)
    else:
        cfg = config(folder, strategy, "mlp")
        r = harness.torch_ranks(4, "train_mlp.py", [cfg, "--net", "fedsilo", "--hidden", "32",
                                                    "--no-state", "--fresh-optimizer", "--uneven"],
                                "binding", timeout=180)
    harness.expect_success(r, "%s %s run" % (mode, strategy))

    final = os.path.join(run, "model.h5")
    got = tensors(read(final, "params"), final)
    uneven = mode == "binding"
    want, want_c, want_c_s = reference_round(run, strategy, uneven)
    diff = max_diff(got, want)
    scale = max(float(v.abs().max()) for v in want.values())
    print("%s %s: largest difference from the PyTorch reference %.3g (parameters up to %.3g)"
          % (mode, strategy, diff, scale))
    harness.expect(diff < 2e-5, "the model after round %d differs from PyTorch's by %g" % (ROUNDS, diff))
    # Plain FedAvg's round must be far off, so the check can tell. (Native FedNova is the
    # exception: every silo takes the same steps, and then FedNova's round is FedAvg's.)
    if uneven or strategy == "scaffold":
        plain, _, _ = reference_round(run, strategy, uneven, follow_algorithm=False)
        off = max_diff(plain, want)
        harness.expect(off > 100 * max(diff, 1e-7),
                       "plain FedAvg's round is as close (%g vs %g): the check cannot tell" % (off, diff))
    if strategy == "scaffold":
        ckpt = os.path.join(run, "checkpoints", "ckpt-%06d.h5" % ROUNDS)
        c = tensors(read(ckpt, "scaffold_c"), ckpt)
        dc = max_diff(c, want_c)
        harness.expect(dc < 1e-4 * max(1.0, max(float(v.abs().max()) for v in want_c.values())),
                       "the server's control variate differs from PyTorch's by %g" % dc)
        silo_dirs = sorted(d for d in os.listdir(os.path.join(run, "private")) if d.startswith("silo-"))
        for i, d in enumerate(silo_dirs):
            own = tensors(read(os.path.join(run, "private", d, "ckpt-%06d.h5" % ROUNDS), "scaffold_c_silo"), ckpt)
            ds = max_diff(own, want_c_s[i])
            harness.expect(ds < 1e-4 * max(1.0, max(float(v.abs().max()) for v in want_c_s[i].values())),
                           "%s's control variate differs from PyTorch's by %g" % (d, ds))
        # c_s is the silo's alone: the shared checkpoint and metrics do not carry it.
        with h5py.File(ckpt, "r") as f:
            harness.expect("scaffold_c_silo" not in f, "the global checkpoint holds a silo's c_s")
        print("scaffold: c within %.3g, every c_s within tolerance" % dc)
    print("ok")


if __name__ == "__main__":
    harness.main(main)
