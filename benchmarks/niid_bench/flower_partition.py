#!/usr/bin/python3
"""Writes Flower's NIID-Bench Dirichlet split of Fashion-MNIST as fedsilo silo files.

The reference numbers in benchmarks/RESULTS.md (FedAvg 88.4%, FedProx 88.6% on Dirichlet(0.5))
come from Flower's one-seed reproduction of NIID-Bench, which partitions with numpy's
default_rng(42). fedsilo's own partitioner draws from its Philox streams, so `--seed 1` gives a
different split. This script
rebuilds Flower's exact split (same generator, same draw order: per class shuffle the class's
indices, draw Dir(alpha) proportions, zero the silos already over N/silos, renormalise, cut at
the cumulative proportions; redraw everything until each silo has >= 10 samples), so that
fedsilo can be run on the very data behind the reference numbers.

Output: the layout of `fedsilo partition` (silo-XX/train.h5, silo-XX/test.h5, test.h5,
partition.json). Per-silo test files are drawn without replacement from the test split with the
silo's label distribution and its share of the samples (the rule of `fedsilo partition`, here
drawn with numpy).

Usage: /usr/bin/python3 flower_partition.py OUT_DIR [--seed 42] [--alpha 0.5] [--silos 10]
       [--idx-dir /usr/share/datasets/fashion-mnist]
Needs Debian's python3-numpy and python3-h5py.
"""
import argparse
import gzip
import json
import os
import shutil

import h5py
import numpy as np


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def flower_dirichlet(labels, silos, alpha, seed, min_samples=10):
    rng = np.random.default_rng(seed)
    classes = int(labels.max()) + 1
    total = len(labels)
    smallest = 0
    while smallest < min_samples:
        parts = [[] for _ in range(silos)]
        for k in range(classes):
            idx_k = np.where(labels == k)[0]
            rng.shuffle(idx_k)
            p = rng.dirichlet(np.repeat(alpha, silos))
            p = np.array([pj * (len(part) < total / silos) for pj, part in zip(p, parts)])
            p = p / p.sum()
            cuts = (np.cumsum(p) * len(idx_k)).astype(int)[:-1]
            parts = [part + chunk.tolist() for part, chunk in zip(parts, np.split(idx_k, cuts))]
            smallest = min(len(part) for part in parts)
    return [np.array(part, dtype=np.int64) for part in parts]


def write_silo_file(path, x, y, silo):
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as h:
        h.create_dataset("x", data=(x.astype(np.float32) / 255.0)[:, None, :, :])
        h.create_dataset("y", data=y.astype(np.int32))
        h.attrs["channels"] = np.int64(1)
        h.attrs["height"] = np.int64(28)
        h.attrs["width"] = np.int64(28)
        h.attrs["num_classes"] = np.int64(10)
        h.attrs["silo"] = np.int64(silo)
        h.attrs["name"] = "fashion-mnist"
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--silos", type=int, default=10)
    ap.add_argument("--idx-dir", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()

    xtr = read_idx(os.path.join(a.idx_dir, "train-images-idx3-ubyte.gz"))
    ytr = read_idx(os.path.join(a.idx_dir, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    xte = read_idx(os.path.join(a.idx_dir, "t10k-images-idx3-ubyte.gz"))
    yte = read_idx(os.path.join(a.idx_dir, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)

    parts = flower_dirichlet(ytr, a.silos, a.alpha, a.seed)
    test_rng = np.random.default_rng(a.seed + 1)
    work = a.out + ".tmp"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    write_silo_file(os.path.join(work, "test.h5"), xte, yte, -1)
    per_silo = []
    for s, idx in enumerate(parts):
        d = os.path.join(work, "silo-%02d" % s)
        os.makedirs(d)
        write_silo_file(os.path.join(d, "train.h5"), xtr[idx], ytr[idx], s)
        counts = np.bincount(ytr[idx], minlength=10)
        share = round(len(yte) * len(idx) / len(ytr))
        tcounts = np.floor(counts / counts.sum() * share).astype(int)
        tidx = np.concatenate([test_rng.choice(np.where(yte == c)[0], tcounts[c], replace=False)
                               for c in range(10)])
        write_silo_file(os.path.join(d, "test.h5"), xte[tidx], yte[tidx], s)
        per_silo.append({"silo": s, "dir": "silo-%02d" % s, "train_samples": int(len(idx)),
                         "train_class_counts": counts.tolist(),
                         "test_samples": int(len(tidx)), "test_class_counts": tcounts.tolist()})
        print("silo-%02d %6d  %s" % (s, len(idx), " ".join("%5d" % c for c in counts)))
    meta = {"dataset": "fashion-mnist", "scheme": "flower-dirichlet:%g" % a.alpha,
            "seed": a.seed, "generator": "numpy.random.default_rng (Flower niid_bench)",
            "silos": a.silos, "num_classes": 10, "chw": [1, 28, 28],
            "train_samples": int(len(ytr)), "test_samples": int(len(yte)),
            "test_class_counts": np.bincount(yte, minlength=10).tolist(), "per_silo": per_silo}
    with open(os.path.join(work, "partition.json"), "w") as f:
        json.dump(meta, f, indent=2)
    shutil.rmtree(a.out, ignore_errors=True)
    os.replace(work, a.out)


if __name__ == "__main__":
    main()
