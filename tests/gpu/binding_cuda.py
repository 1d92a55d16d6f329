#!/usr/bin/env python3
"""The PyTorch binding with a model on a GPU (benchmarks/gpu/run.sh binding, on the lent GPU
machine): one rank program, run once with --device cpu and once with --device cuda under
mpirun; each rank sets its parameters to global + an exactly representable delta every round
and aggregates. The CUDA run must take the device sum (the update formed and summed in GPU
memory: fedsilo.torch's aggregate_device), give the CPU run's parameters bit for bit (on two
ranks a sum has one order, and the device forms weight * (local - global) with the host's
roundings), keep every parameter on the GPU and a view of the flat buffer, and train (a few
real SGD steps on the GPU lower the loss).

    mpirun -np 2 python3 binding_cuda.py CONFIG.toml --device cuda --out FILE
    python3 binding_cuda.py --compare CPU_FILE CUDA_FILE
"""
import argparse
import sys

import torch

import fedsilo.torch as fl


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, 32)
        self.fc2 = torch.nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def delta(n, rnd, rank, device):
    i = torch.arange(n, device=device)
    return (((i * 7 + rank * 13 + rnd * 3) % 17) - 8).to(torch.float32) * 2.0 ** -6


def run(a):
    torch.manual_seed(1)
    with fl.Federation(a.config, overwrite=True, progress=False) as fed:
        model = Net().to(a.device)
        fed.start(model)
        assert fed._s.device_sum == (a.device == "cuda"), (a.device, fed._s.device_sum)
        flat = fed._flat
        for rnd in fed.rounds():
            with torch.no_grad():
                flat.add_(delta(flat.numel(), rnd, fed.rank, flat.device))
            fed.aggregate(model, num_examples=100 + 10 * fed.rank)
            for _, p in model.named_parameters():
                assert p.device.type == a.device, p.device
            fed.log(loss=0.0)
        if fed.rank == 0:
            torch.save(flat.detach().cpu().clone(), a.out)
        # Real training on the device after the exact rounds: the loss falls.
        data = fed.silo.train
        x, y = data.x.to(a.device), data.y.to(a.device)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        losses = []
        for _ in range(20):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < losses[0], losses
        fed.finish(model)


def compare(cpu_file, cuda_file):
    a, b = torch.load(cpu_file), torch.load(cuda_file)
    same = a.shape == b.shape and bool(torch.equal(a.view(torch.int32), b.view(torch.int32)))
    print("binding_cuda: CUDA parameters %s the CPU run's bit for bit" % ("equal" if same else "DIFFER from"))
    return 0 if same else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("config", nargs="?")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out")
    ap.add_argument("--compare", nargs=2)
    a = ap.parse_args()
    sys.exit(compare(*a.compare) if a.compare else run(a))
