"""Scripts that use fedsilo.torch wrongly, one per MODE (test_errors.py runs them under mpirun and
checks that every rank stops with the same clear message and fedsilo's exit code, none hangs).
Each mode that reaches its end prints "no error" and exits 0, which fails the test.

usage: bad_calls.py MODE CONFIG
"""

import sys

import torch

import fedsilo.torch as fl


class Mlp(torch.nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, hidden)
        self.fc2 = torch.nn.Linear(hidden, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def run(fed, model, fail_rank=None):
    """start, rounds that only aggregate (rank `fail_rank` raises in round 2 instead), finish."""
    fed.start(model)
    for rnd in fed.rounds():
        if rnd == 2 and fed.rank == fail_rank:
            raise RuntimeError("boom in round 2")
        fed.aggregate(model, num_examples=10)
    fed.finish(model)


def main():
    mode, config = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    with fl.Federation(config, progress=False) as fed:
        if mode == "aggregate_before_start":
            model = Mlp()
            fed.aggregate(model, num_examples=10)
            run(fed, model)
        elif mode == "param_count_differs":
            run(fed, Mlp(hidden=8 + fed.rank))  # a network that depends on the rank
        elif mode == "float64_parameter":
            model = Mlp()
            if fed.rank == 1:
                model.fc2.double()  # on one rank only: the others learn it through the agreement
            run(fed, model)
        elif mode == "exception_on_one_rank":
            run(fed, Mlp(), fail_rank=fed.size // 2)
        elif mode == "exception_after_finish":  # after the last collective call
            run(fed, Mlp())
            if fed.rank == 1:
                raise RuntimeError("boom after finish")
        else:  # a config the binding refuses (privacy, a built-in arch the network is not)
            run(fed, Mlp(hidden=64))
    print("no error")


if __name__ == "__main__":
    main()
