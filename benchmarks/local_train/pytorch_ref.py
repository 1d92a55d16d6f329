#!/usr/bin/python3
"""PyTorch reference for benchmarks/local_train: the same two models (NIID-Bench simple-cnn and
the 784-200-200-10 MLP), the same data (the first batches*batch Fashion-MNIST training samples,
read from the IDX gzip files with numpy), SGD lr 0.01 momentum 0.9, batch 64, one shuffled epoch
per repeat, torch.set_num_threads(threads). Reports samples/s (median, min, max over repeats).

Runs under Debian's /usr/bin/python3 (python3-torch, python3-numpy), or on the GPU machine
with --device cuda (data and model on the GPU, the loss summed on the device and read once per
epoch, the clock stopped after torch.cuda.synchronize(): eager PyTorch as a user would run it).
Usage: pytorch_ref.py [--data DIR | --synthetic] [--threads 2] [--batch 64] [--batches 200] [--repeats 7]
                      [--models niid-cnn,mlp] [--device cpu|cuda] [--json FILE]
"""
import argparse
import gzip
import json
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path, magic, ndim):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    got = int.from_bytes(raw[0:4], "big")
    if got != magic:
        raise SystemExit(f"{path}: bad magic {got:#x}")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return data.reshape(dims)


class NiidCnn(nn.Module):
    """NIID-Bench simple-cnn for 28x28x1 (names match fedsilo's ParamInfo)."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class Mlp(nn.Module):
    def __init__(self, hidden=(200, 200), classes=10):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], classes)

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def one_epoch(model, opt, x, y, batch, gen):
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    total = torch.zeros((), device=x.device)
    for i in range(0, x.shape[0], batch):
        idx = perm[i:i + batch]
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        total += loss.detach() * xb.shape[0]
    return total.item() / x.shape[0]  # one device-to-host read per epoch (it synchronizes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--synthetic", action="store_true",
                    help="random 28x28 images and labels instead of Fashion-MNIST (throughput only)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--models", default="niid-cnn,mlp")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", default="pytorch_ref.json")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    n = args.batch * args.batches
    if args.synthetic:
        rng = np.random.default_rng(1)
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    else:
        images = read_idx(f"{args.data}/train-images-idx3-ubyte.gz", 0x803, 3)[:n]
        labels = read_idx(f"{args.data}/train-labels-idx1-ubyte.gz", 0x801, 1)[:n]
    if images.shape[0] < n:  # more batches than the training set: repeat it
        reps = -(-n // images.shape[0])
        images, labels = np.concatenate([images] * reps)[:n], np.concatenate([labels] * reps)[:n]
    dev = torch.device(args.device)
    x = torch.from_numpy(images.astype(np.float32) / 255.0).reshape(n, 1, 28, 28).contiguous().to(dev)
    y = torch.from_numpy(labels.astype(np.int64)).to(dev)

    config = torch.__config__.show()
    blas = "unknown"
    for line in config.splitlines():
        if "BLAS_INFO" in line:
            blas = line.split("BLAS_INFO=")[1].split(",")[0]
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else f"{torch.get_num_threads()} threads, BLAS {blas}"
    print(f"pytorch_ref: torch {torch.__version__}, {args.device} ({where}), "
          f"batch {args.batch}, {args.batches} batches x {args.repeats} repeats")
    out = {"benchmark": "pytorch_ref", "torch": torch.__version__, "device": args.device,
           "device_name": where, "threads": args.threads,
           "batch": args.batch, "batches": args.batches, "repeats": args.repeats,
           "blas": blas, "results": []}
    print(f"{'model':<10} {'samples/s med':>14} {'min':>10} {'max':>10} {'loss':>8}")
    for arch in args.models.split(","):
        torch.manual_seed(1)
        make = NiidCnn if arch == "niid-cnn" else Mlp
        init = make().state_dict()
        gen = torch.Generator().manual_seed(1)
        model = make().to(dev)
        model.load_state_dict(init)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        one_epoch(model, opt, x, y, args.batch, gen)  # warm-up
        rates, loss = [], 0.0
        for _ in range(args.repeats):
            model.load_state_dict(init)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            t0 = time.perf_counter()
            loss = one_epoch(model, opt, x, y, args.batch, gen)
            rates.append(n / (time.perf_counter() - t0))
        med = statistics.median(rates)
        print(f"{arch:<10} {med:>14.0f} {min(rates):>10.0f} {max(rates):>10.0f} {loss:>8.4f}")
        out["results"].append({"model": arch, "samples_per_s_median": med,
                               "samples_per_s_min": min(rates), "samples_per_s_max": max(rates),
                               "samples_per_s_all": rates, "mean_loss_last_repeat": loss})
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
