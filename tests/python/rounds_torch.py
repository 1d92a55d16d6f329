"""The binding's side of the bit-for-bit test (test_bitwise.py), one rank per silo: a tiny torch
model driven through fedsilo.torch with the exact inputs native_rounds.cpp feeds fl::RoundStep
(exact_inputs.py), every round's global model written to OUT.rankR.bin.

usage: rounds_torch.py CONFIG ROUNDS OUT
"""

import sys

import numpy as np
import torch

import fedsilo.torch as fl
from exact_inputs import N, delta, initial, weight


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(20, 16)
        self.fc2 = torch.nn.Linear(16, 4)


def flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()


def set_flat(model, values):
    with torch.no_grad():
        offset = 0
        for p in model.parameters():
            n = p.numel()
            p.copy_(torch.from_numpy(values[offset:offset + n]).view_as(p))
            offset += n


def main():
    config, rounds, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    torch.set_num_threads(1)
    with fl.Federation(config, progress=False) as fed:
        model = Net()
        assert sum(p.numel() for p in model.parameters()) == N
        set_flat(model, initial())
        fed.start(model)
        assert np.array_equal(flat(model), initial()), "start() changed the initial global model"
        with open("%s.rank%d.bin" % (out, fed.rank), "wb") as f:
            for rnd in fed.rounds():
                # local = global + delta, in float32 as native_rounds.cpp adds them
                set_flat(model, flat(model) + delta(rnd, fed.rank))
                fed.aggregate(model, num_examples=weight(fed.rank))
                f.write(flat(model).tobytes())
        assert rnd == rounds
        fed.finish(model)


if __name__ == "__main__":
    main()
