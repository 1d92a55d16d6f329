"""What a binding run leaves for fedsilo's commands (train_mlp.py, 2 ranks, 2 rounds):
  pytorch  model.arch = "pytorch": `fedsilo inspect RUN/model.h5` lists the PyTorch tensors with
           their shapes; `fedsilo eval` refuses the file with a clear message (exit 2).
  builtin  model.arch = "mlp" and a PyTorch network of its layout: `fedsilo eval RUN/model.h5`
           gives the accuracy fed.evaluate logged for the last round.

usage: test_outputs.py pytorch|builtin
"""

import json
import os
import re
import sys

import harness

ROUNDS = 2


def train(tag, arch, *flags):
    work = harness.fresh_dir("outputs-" + tag)
    config = harness.write_config(work, harness.silos(2), ROUNDS, arch=arch)
    ran = harness.torch_ranks(2, "train_mlp.py", [config] + list(flags), "outputs-" + tag)
    harness.expect_success(ran, "train_mlp.py")
    return os.path.join(work, "run")


def test_pytorch():
    run = train("pytorch", "pytorch")
    model = os.path.join(run, "model.h5")
    code, out = harness.fedsilo("inspect", model)
    harness.expect(code == 0, "fedsilo inspect failed (%d):\n%s" % (code, out))
    harness.expect(re.search(r"arch\s+pytorch", out), "inspect should say arch pytorch:\n" + out)
    # nn.Sequential(Flatten, Linear(784, 32), ReLU, Linear(32, 10))
    tensors = [("1.weight", "32x784"), ("1.bias", "32"), ("3.weight", "10x32"), ("3.bias", "10")]
    rows = [line.split()[:2] for line in out.splitlines() if line.startswith("  ")]
    for name, shape in tensors:
        harness.expect([name, shape] in rows, "inspect should list %s %s:\n%s" % (name, shape, out))
    print("fedsilo inspect lists %s" % ", ".join("%s %s" % t for t in tensors))

    code, out = harness.fedsilo("eval", model, "--data", os.path.join(harness.silos(2), "test.h5"))
    harness.expect(code == 2 and "fedsilo eval: error:" in out and '"pytorch"' in out,
                   "fedsilo eval of a PyTorch model.h5 should refuse it naming the arch (exit 2), "
                   "got %d:\n%s" % (code, out))
    print("fedsilo eval refuses it: %s" % out.strip().splitlines()[-1])


def test_builtin():
    run = train("builtin", "mlp", "--net", "fedsilo")
    with open(os.path.join(run, "metrics.jsonl")) as f:
        last = [json.loads(line) for line in f][-1]
    harness.expect(last["round"] == ROUNDS and "accuracy" in last,
                   "the last metrics line should be round %d with its accuracy: %s" % (ROUNDS, last))
    test_file = os.path.join(harness.silos(2), "test.h5")
    code, out = harness.fedsilo("eval", os.path.join(run, "model.h5"), "--data", test_file)
    harness.expect(code == 0, "fedsilo eval failed (%d):\n%s" % (code, out))
    m = re.search(r"^accuracy\s+([0-9.]+)$", out, re.M)
    harness.expect(m is not None, "fedsilo eval printed no accuracy:\n" + out)
    # eval prints 4 decimals: exact for a test split of 100 records (accuracy k / 100)
    harness.expect(abs(float(m.group(1)) - last["accuracy"]) <= 1e-6,
                   "fedsilo eval's accuracy %s differs from fed.evaluate's %r:\n%s"
                   % (m.group(1), last["accuracy"], out))
    harness.expect(0.2 < last["accuracy"] < 1.0,
                   "the model should have learnt something: %r" % last["accuracy"])
    print("fedsilo eval: accuracy %s, fed.evaluate logged %r" % (m.group(1), last["accuracy"]))


if __name__ == "__main__":
    harness.main({"pytorch": test_pytorch, "builtin": test_builtin}[sys.argv[1]])
