#!/usr/bin/python3
"""A tiny MLP (784-32-10) trained through fedsilo.torch: the entry point (run.command) of the
Slurm test of a PyTorch binding job (test_slurm_torch.sh).

    tiny_mlp.py [--pace SECONDS] CONFIG

--pace makes every round last at least SECONDS, so that the test can signal the job while a
round is in flight, whatever the machine's load.
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import fedsilo.torch as fl


def main():
    args = sys.argv[1:]
    pace = 0.0
    if len(args) == 3 and args[0] == "--pace":
        pace, args = float(args[1]), args[2:]
    if len(args) != 1:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    with fl.Federation(args[0]) as fed:
        torch.manual_seed(fed.seed(0))
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
        hp = fed.local
        opt = torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=hp["momentum"])
        fed.start(model)
        fed.register_state(opt)
        data = fed.silo.train
        for rnd in fed.rounds():
            began = time.monotonic()
            torch.manual_seed(fed.seed(rnd))
            total, batches = 0.0, 0
            for _ in range(hp["epochs"]):
                perm = torch.randperm(len(data))
                for i in range(0, len(data), hp["batch_size"]):
                    idx = perm[i:i + hp["batch_size"]]
                    opt.zero_grad()
                    loss = F.cross_entropy(model(data.x[idx]), data.y[idx])
                    loss.backward()
                    opt.step()
                    total += loss.item()
                    batches += 1
            fed.aggregate(model, num_examples=len(data))
            if fed.eval_due(rnd):
                fed.evaluate(model)
            fed.log(loss=total / max(1, batches))
            time.sleep(max(0.0, pace - (time.monotonic() - began)))
        fed.finish(model)


if __name__ == "__main__":
    main()
