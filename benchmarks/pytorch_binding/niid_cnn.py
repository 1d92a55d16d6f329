#!/usr/bin/python3
"""NIID-Bench's simple-cnn written in PyTorch and trained through fedsilo's binding
(fedsilo.torch): the recipe of examples/niid-bench/fedavg-dirichlet0.5.toml (10 local epochs,
batch 64, SGD lr 0.01 momentum 0.9 weight decay 1e-5, a fresh optimizer each round,
sample-weighted FedAvg) on the same silos, to compare with the native `fedsilo train` run.

    mpirun -np 10 /usr/bin/python3 benchmarks/pytorch_binding/niid_cnn.py CONFIG.toml

The config is a native NIID-Bench config: model.arch = "niid-cnn" makes fedsilo check that this
network is niid-cnn tensor for tensor, so `fedsilo eval` reads the model.h5 it writes.
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import fedsilo.torch as fl


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


def main():
    torch.set_num_threads(1)
    with fl.Federation(sys.argv[1], overwrite="--overwrite" in sys.argv) as fed:
        model = NiidCnn()
        fed.start(model)
        data = fed.silo.train
        hp = fed.local
        for rnd in fed.rounds():
            t0 = time.time()
            torch.manual_seed(fed.seed(rnd))
            opt = torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=hp["momentum"],
                                  weight_decay=hp["weight_decay"])  # fresh each round
            model.train()
            total, batches = 0.0, 0
            for _ in range(hp["epochs"]):
                perm = torch.randperm(len(data))
                for i in range(0, len(data), hp["batch_size"]):
                    idx = perm[i:i + hp["batch_size"]]
                    opt.zero_grad()
                    loss = F.cross_entropy(model(data.x[idx]), data.y[idx])
                    if fed.strategy == "fedprox":
                        loss = loss + fed.proximal_term(model)
                    loss.backward()
                    opt.step()
                    total += loss.item()
                    batches += 1
            fed.aggregate(model, num_examples=len(data))
            if fed.eval_due(rnd):
                fed.evaluate(model)
            fed.log(loss=total / max(1, batches), train_seconds=time.time() - t0)
        fed.finish(model)


if __name__ == "__main__":
    main()
