"""fedsilo.torch against the native round step, bit for bit: the same config and exact inputs
through native_rounds (fl::RoundStep as `fedsilo train` drives it) and through rounds_torch.py
(the binding) must give the same global model on every rank after every round. Where the
update is sent whole, that model is also the float64 weighted mean computed here, exactly.

usage: test_bitwise.py NATIVE_ROUNDS CASE NP   (CASE: fedavg, fedprox, topk, secure)
"""

import os
import sys

import numpy as np

import harness
from exact_inputs import N, delta, initial, weight

ROUNDS = 4
CASES = {
    "fedavg": "",
    "fedprox": '[strategy]\nname = "fedprox"\nmu = 0.1\n',
    "topk": '[compression]\nmethod = "topk"\ndensity = 0.1\nerror_feedback = true\n',
    # weights 1, 3, 5, 7 over max_weight 8: every fixed-point code below is exact
    "secure": "[secure_aggregation]\nenabled = true\nmax_weight = 8.0\n",
}


def expected(np_ranks):
    """The float64 weighted mean of every round, from the same inputs."""
    weights = [float(weight(r)) for r in range(np_ranks)]
    g = initial().astype(np.float64)
    out = []
    for rnd in range(1, ROUNDS + 1):
        total = sum(w * delta(rnd, r).astype(np.float64) for r, w in enumerate(weights))
        g = g + total / sum(weights)
        out.append(g.copy())
    return np.stack(out)


def load(prefix, rank):
    v = np.fromfile("%s.rank%d.bin" % (prefix, rank), dtype=np.float32)
    harness.expect(v.size == ROUNDS * N, "%s.rank%d.bin: %d values, expected %d" %
                   (prefix, rank, v.size, ROUNDS * N))
    return v.reshape(ROUNDS, N)


def test(native, case, np_ranks):
    work = harness.fresh_dir("bitwise-%s-np%d" % (case, np_ranks))
    config = harness.write_config(work, harness.silos(np_ranks), ROUNDS, extra=CASES[case])
    ran = harness.mpirun(np_ranks, [native, config, str(N), str(ROUNDS), os.path.join(work, "native")],
                         "bitwise-%s-np%d-native" % (case, np_ranks))
    harness.expect_success(ran, "native_rounds")
    ran = harness.torch_ranks(np_ranks, "rounds_torch.py",
                              [config, str(ROUNDS), os.path.join(work, "torch")],
                              "bitwise-%s-np%d-torch" % (case, np_ranks))
    harness.expect_success(ran, "rounds_torch.py")

    want = expected(np_ranks)
    for rank in range(np_ranks):
        native_v = load(os.path.join(work, "native"), rank)
        torch_v = load(os.path.join(work, "torch"), rank)
        differ = np.argwhere(native_v.view(np.uint32) != torch_v.view(np.uint32))
        if differ.size:
            rnd, i = differ[0]
            raise AssertionError("%s np%d rank %d: %d values differ from the native round step (first: "
                                 "round %d element %d: native %r, torch %r)" %
                                 (case, np_ranks, rank, len(differ), rnd + 1, i, native_v[rnd, i],
                                  torch_v[rnd, i]))
        harness.expect(not np.array_equal(torch_v[0], initial()), "round 1 left the model unchanged")
        if case == "topk":  # a sparse update: not the dense mean
            continue
        # The whole update is sent: every round's model is the exact float64 weighted mean.
        off = np.argwhere(torch_v.astype(np.float64) != want)
        if off.size:
            rnd, i = off[0]
            raise AssertionError("%s np%d rank %d: %d values differ from the float64 weighted mean "
                                 "(first: round %d element %d: %r, expected %r)" %
                                 (case, np_ranks, rank, len(off), rnd + 1, i, torch_v[rnd, i],
                                  want[rnd, i]))
    print("%s np%d: %d rounds x %d parameters equal bit for bit on every rank"
          % (case, np_ranks, ROUNDS, N))


if __name__ == "__main__":
    harness.main(lambda: test(sys.argv[1], sys.argv[2], int(sys.argv[3])))
