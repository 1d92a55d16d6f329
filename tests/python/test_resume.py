"""Resume, bit for bit: train_mlp.py (SGD with momentum, seeded per round, deterministic) run
for all its rounds, and again stopped by SIGUSR1 in round 2 (every rank checkpoints and exits 5)
then resumed with FEDSILO_RESUME=1, must end with equal model.pt tensors, model.h5 parameters
and metrics.jsonl lines (timings aside). The same checkpoint resumed by the script without its
optimizer registered (the momentum lost) must end elsewhere: the comparison sees what a resume
loses.

usage: test_resume.py
"""

import json
import os
import shutil

import h5py
import numpy as np
import torch

import harness

ROUNDS, STOP = 4, 2


def train(config, tag, *flags, env=None):
    return harness.torch_ranks(2, "train_mlp.py", [config] + list(flags), "resume-" + tag, env=env)


def metrics(run):
    """metrics.jsonl without its timings."""
    lines = []
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            value = json.loads(line)
            value.pop("seconds", None)
            lines.append(value)
    return lines


def model_h5(run):
    """model.h5's datasets by name."""
    out = {}

    def take(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[()]

    with h5py.File(os.path.join(run, "model.h5"), "r") as f:
        f.visititems(take)
    return out


def differences(a, b):
    """What differs between the outputs of runs a and b (empty when equal bit for bit)."""
    out = []
    pa, pb = torch.load(os.path.join(a, "model.pt")), torch.load(os.path.join(b, "model.pt"))
    if list(pa) != list(pb):
        out.append("model.pt holds %s vs %s" % (list(pa), list(pb)))
    for name in set(pa) & set(pb):
        x, y = pa[name], pb[name]
        if x.dtype != y.dtype or x.shape != y.shape or x.numpy().tobytes() != y.numpy().tobytes():
            out.append("model.pt %s differs" % name)
    ha, hb = model_h5(a), model_h5(b)
    if sorted(ha) != sorted(hb):
        out.append("model.h5 holds %s vs %s" % (sorted(ha), sorted(hb)))
    for name in set(ha) & set(hb):
        x, y = np.asarray(ha[name]), np.asarray(hb[name])
        same = x.tolist() == y.tolist() if x.dtype == object else x.tobytes() == y.tobytes()
        if x.dtype != y.dtype or x.shape != y.shape or not same:
            out.append("model.h5 %s differs" % name)
    ma, mb = metrics(a), metrics(b)
    if len(ma) != len(mb):
        out.append("metrics.jsonl has %d vs %d lines" % (len(ma), len(mb)))
    for la, lb in zip(ma, mb):
        if la != lb:
            out.append("metrics.jsonl round %s differs: %s vs %s" % (la.get("round"), la, lb))
    return out


def test():
    work = harness.fresh_dir("resume-straight")
    straight = os.path.join(work, "run")
    ran = train(harness.write_config(work, harness.silos(2), ROUNDS), "straight")
    harness.expect_success(ran, "the uninterrupted run")
    harness.expect(len(metrics(straight)) == ROUNDS,
                   "the uninterrupted run should log %d rounds" % ROUNDS)

    work = harness.fresh_dir("resume-stopped")
    config, run = harness.write_config(work, harness.silos(2), ROUNDS), os.path.join(work, "run")
    ran = train(config, "stopped", "--stop-at", str(STOP))
    harness.expect(ran.codes == [5, 5], "SIGUSR1 in round %d: every rank should exit 5" % STOP, ran)
    harness.expect("SIGUSR1: stopped after round %d of %d" % (STOP, ROUNDS) in ran.outputs[0],
                   "rank 0 should say where it stopped", ran)
    harness.expect(not os.path.exists(os.path.join(run, "model.h5")),
                   "an interrupted run wrote model.h5")
    stopped = os.path.join(work, "run-stopped")
    shutil.copytree(run, stopped)  # to resume it a second time, below

    ran = train(config, "resumed", env={"FEDSILO_RESUME": "1"})
    harness.expect_success(ran, "the resumed run")
    diff = differences(straight, run)
    harness.expect(not diff, "stopped in round %d and resumed, the run differs from the uninterrupted "
                   "one:\n  %s" % (STOP, "\n  ".join(diff)))
    print("stopped in round %d and resumed: model.pt, model.h5 and metrics equal bit for bit" % STOP)

    # The same checkpoint resumed by a script that does not register its optimizer.
    shutil.rmtree(run)
    shutil.copytree(stopped, run)
    ran = train(config, "resumed-without-state", "--no-state", env={"FEDSILO_RESUME": "1"})
    harness.expect_success(ran, "the run resumed without the optimizer's state")
    diff = differences(straight, run)
    harness.expect(any("model.pt" in d for d in diff)
                   and any("metrics.jsonl round %d " % (STOP + 1) in d for d in diff),
                   "resumed without the optimizer's momentum, the run should differ from the "
                   "uninterrupted one from round %d on (does momentum matter?); differences: %s"
                   % (STOP + 1, diff))
    harness.expect(not any("round 1 " in d or "round 2 " in d for d in diff),
                   "rounds 1-%d come from the same checkpointed run: %s" % (STOP, diff))
    print("resumed without the optimizer's state: differs from round %d on, as it should" % (STOP + 1))


if __name__ == "__main__":
    harness.main(test)
