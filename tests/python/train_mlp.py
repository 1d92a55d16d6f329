"""A small federated training script as a user writes it (one rank per silo): an MLP on the
silo's Fashion-MNIST records, SGD with momentum, seeded per round, deterministic; the global
model evaluated every round. Under SCAFFOLD it corrects every step (fed.scaffold_correction());
it tells aggregate() its step count (SCAFFOLD, FedNova). The resume, output and strategy tests
run it.

usage: train_mlp.py CONFIG [--net sequential|fedsilo] [--hidden H] [--stop-at K] [--no-state]
  --net fedsilo   fedsilo's mlp layout (flatten, fc1, relu, fc2), for model.arch = "mlp"
  --stop-at K     rank 0 sends itself SIGUSR1 in round K (checkpoint after it, exit 5)
  --no-state      the optimizer is not registered (a resume loses its momentum)
  --fresh-optimizer  a new optimizer every round (momentum from zero, as NIID-Bench)
  --uneven        rank r trains local.epochs + r epochs (silos take different step counts)
"""

import argparse
import os
import signal

import torch

import fedsilo.torch as fl


class FedsiloMlp(torch.nn.Module):
    """fedsilo's model.arch = "mlp" with one hidden layer, tensor for tensor."""

    def __init__(self, inputs, hidden, classes):
        super().__init__()
        self.fc1 = torch.nn.Linear(inputs, hidden)
        self.fc2 = torch.nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def build(kind, inputs, hidden, classes):
    if kind == "fedsilo":
        return FedsiloMlp(inputs, hidden, classes)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(inputs, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, classes))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--net", choices=["sequential", "fedsilo"], default="sequential")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--stop-at", type=int, default=0)
    ap.add_argument("--no-state", action="store_true")
    ap.add_argument("--fresh-optimizer", action="store_true")
    ap.add_argument("--uneven", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    with fl.Federation(args.config, progress=False) as fed:
        train = fed.silo.train
        torch.manual_seed(0)  # the initial model (rank 0's goes to every rank)
        model = build(args.net, train.x[0].numel(), args.hidden, train.num_classes)
        fed.start(model)
        def optimizer():
            return torch.optim.SGD(model.parameters(), lr=fed.local["lr"],
                                   momentum=fed.local["momentum"],
                                   weight_decay=fed.local["weight_decay"])

        opt = optimizer()
        epochs = fed.local["epochs"] + (fed.rank if args.uneven else 0)
        if not args.no_state:
            fed.register_state(opt)
        batch = fed.local["batch_size"]
        for rnd in fed.rounds():
            torch.manual_seed(fed.seed(rnd))
            model.train()
            order = torch.randperm(len(train))
            if args.fresh_optimizer:
                opt = optimizer()
            total, steps = 0.0, 0
            for _ in range(epochs):
                for i in range(0, len(train), batch):
                    idx = order[i:i + batch]
                    loss = torch.nn.functional.cross_entropy(model(train.x[idx]), train.y[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    if fed.strategy == "scaffold":
                        fed.scaffold_correction()
                    steps += 1
                    total += float(loss) * len(idx)
            if rnd == args.stop_at and fed.rank == 0:
                os.kill(os.getpid(), signal.SIGUSR1)  # as Slurm does before the time limit
            fed.aggregate(model, num_examples=len(train), steps=steps)
            fed.evaluate(model)
            fed.log(loss=total / (len(train) * epochs))
        fed.finish(model)


if __name__ == "__main__":
    main()
