#!/usr/bin/python3
"""A federated ResNet on Fashion-MNIST silos, written in plain PyTorch and trained through
fedsilo's binding (fedsilo.torch). Each MPI rank is one silo: it trains the model on its own
records with an ordinary PyTorch loop, and fedsilo does the rest (the exchange, the server step,
checkpoints and resume, metrics).

    mpirun -np 4 /usr/bin/python3 examples/pytorch/train.py examples/pytorch/resnet.toml

The config is a `fedsilo train` config with model.arch = "pytorch"; its [local] values (epochs,
batch size, learning rate, momentum, weight decay, threads) drive the loop below. See
examples/pytorch/README.md for the data, the Slurm job and what the run writes.
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import fedsilo.torch as fl

# Fashion-MNIST's pixel mean and standard deviation (the silos hold pixels in [0, 1]).
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530


def group_norm(channels):
    # GroupNorm, not BatchNorm: BatchNorm's running statistics are buffers, not parameters, so
    # each silo would keep statistics of its own skewed data while the weights are averaged.
    # GroupNorm normalises each sample by itself and has nothing silo-local.
    return nn.GroupNorm(num_groups=min(8, channels), num_channels=channels)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (He et al. 2016); a 1x1 convolution on the shortcut
    where the block changes the width or the resolution."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm1 = group_norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = group_norm(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          group_norm(cout))

    def forward(self, x):
        y = F.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    """A small ResNet for 28x28 images: a 3x3 stem and max-pool (28 -> 14), four stages of one
    basic block (16, 32, 64, 128 channels; the last three halve the resolution: 14, 7, 4, 2),
    global average pooling and a linear classifier. 308,538 parameters (three quarters in the last
    stage); about 3.5 million multiply-adds per image forward, spread evenly over the stages
    (each halving of the resolution quarters the positions as the doubled width quadruples the
    weights)."""

    def __init__(self, num_classes=10, widths=(16, 32, 64, 128)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, padding=1, bias=False),
                                  group_norm(widths[0]), nn.ReLU(), nn.MaxPool2d(2))
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(cin, w, stride=1 if i == 0 else 2))
            cin = w
        self.stages = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = (x - FMNIST_MEAN) / FMNIST_STD
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def train_one_round(model, opt, data, epochs, batch_size):
    """The silo's local training: `epochs` passes over its records in shuffled mini-batches.
    Returns the mean training loss."""
    model.train()
    total, batches = 0.0, 0
    for _ in range(epochs):
        order = torch.randperm(len(data))
        for i in range(0, len(data), batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(model(data.x[idx]), data.y[idx])
            loss.backward()
            opt.step()
            total += loss.item()
            batches += 1
    return total / max(1, batches)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="the fedsilo config (TOML), e.g. examples/pytorch/resnet.toml")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run in run.out_dir")
    args = parser.parse_args()

    # Every rank opens the federation; a failure on one rank (here or in the loop) stops all
    # of them with the same message. resume=None: continue from the last checkpoint when the
    # job script says so (FEDSILO_RESUME=1, after a requeue).
    with fl.Federation(args.config, overwrite=args.overwrite) as fed:
        hp = fed.local  # the config's [local] section
        torch.set_num_threads(hp["threads"])
        data = fed.silo.train  # this silo's records as tensors (x: [N, 1, 28, 28], y: [N])

        # The initial weights from the run's seed (round 0 of fed.seed; rank 0's weights go to
        # every silo), so that two runs of the same config are the same run.
        torch.manual_seed(fed.seed(0))
        model = ResNet(num_classes=data.num_classes)
        opt = torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=hp["momentum"],
                              weight_decay=hp["weight_decay"])
        # The parameters move into one flat buffer that fedsilo exchanges; a fresh run starts
        # every silo from rank 0's initial weights, a resumed run from the checkpoint's.
        fed.start(model)
        # The optimizer lives across rounds (its momentum buffers are this silo's own state):
        # checkpointed in the silo's private file, restored on resume.
        fed.register_state(opt)

        for rnd in fed.rounds():
            t0 = time.time()
            # Per-round randomness from (run.seed, round, silo): a resumed run shuffles as the
            # uninterrupted one did.
            torch.manual_seed(fed.seed(rnd))
            loss = train_one_round(model, opt, data, hp["epochs"], hp["batch_size"])
            train_seconds = time.time() - t0

            # FedAvg: this silo's update, weighted by its record count, joins the exchange; the
            # model's parameters become the new global model, in place.
            fed.aggregate(model, num_examples=len(data))

            if fed.eval_due(rnd):  # eval.every of the config, and the last round
                # The global model on this rank's share of the global test split (summed over
                # ranks into the round's accuracy) and on the silo's own test split.
                fed.evaluate(model)
            fed.log(loss=loss, train_seconds=train_seconds)  # train_seconds: the silo's own file only

        fed.finish(model)  # RUN/model.h5 (fedsilo's format) and RUN/model.pt (the state_dict)


if __name__ == "__main__":
    main()
