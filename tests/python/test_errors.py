"""Bad calls and refused configs give one clear error on every rank, and no hang: each rank
prints the same `fedsilo: error: ...` line naming the fault and exits with fedsilo's code (2 for
usage, 1 for anything else); a rank whose own code raised stops with its traceback. Every run
is under a timeout (a hang fails the test).

usage: test_errors.py MODE   (the modes of bad_calls.py, privacy_sample, builtin_arch_mismatch,
                              train_refuses_pytorch_arch)
"""

import re
import sys

import harness

PRIVACY = '[privacy]\nlevel = "sample"\nnoise_multiplier = 1.0\n'


def error_lines(ranks):
    """Each rank's `fedsilo: error:` lines."""
    return [re.findall(r"^fedsilo: error: .*$", out, re.M) for out in ranks.outputs]


def expect_agreed(ranks, code, *needles):
    """Every rank exited `code` after printing one and the same error line holding `needles`."""
    harness.expect(ranks.codes == [code] * len(ranks.codes),
                   "every rank should exit %d" % code, ranks)
    lines = error_lines(ranks)
    harness.expect(all(len(each) == 1 for each in lines), "every rank should print one error line",
                   ranks)
    harness.expect(len({each[0] for each in lines}) == 1, "the ranks' error lines differ", ranks)
    for needle in needles:
        harness.expect(needle in lines[0][0], "the error should say %r" % needle, ranks)
    print("%d ranks, exit %d: %s" % (len(ranks.codes), code, lines[0][0]))


def expect_raised(ranks, culprit, exception):
    """Rank `culprit` raised `exception` in the user's code: it shows its traceback, every other
    rank prints the same error line naming it and the exception; all exit 1."""
    harness.expect(ranks.codes == [1] * len(ranks.codes), "every rank should exit 1", ranks)
    harness.expect(exception in ranks.outputs[culprit] and "Traceback" in ranks.outputs[culprit],
                   "rank %d should show its exception's traceback" % culprit, ranks)
    lines = [each for r, each in enumerate(error_lines(ranks)) if r != culprit]
    harness.expect(all(len(each) == 1 and each[0] == lines[0][0] for each in lines),
                   "every other rank should print the same error line", ranks)
    wanted = r"fedsilo: error: rank %d \(silo-\d+\): %s$" % (culprit, re.escape(exception))
    harness.expect(re.match(wanted, lines[0][0]),
                   "the error should name rank %d and its exception" % culprit, ranks)
    print("%d ranks, exit 1: %s" % (len(ranks.codes), lines[0][0]))


def bad_call(mode, np=2, arch="pytorch", extra=""):
    work = harness.fresh_dir("errors-" + mode)
    config = harness.write_config(work, harness.silos(np), 3, arch=arch, extra=extra)
    return harness.torch_ranks(np, "bad_calls.py", [mode, config], "errors-%s-%s" % (mode, arch),
                               timeout=60)


def test(mode):
    if mode == "aggregate_before_start":
        expect_agreed(bad_call(mode), 2, "aggregate() before start(model)")
    elif mode == "param_count_differs":
        # Mlp(hidden=8 + rank): 784 h + h + 10 h + 10 parameters
        expect_agreed(bad_call(mode), 2,
                      "parameter count differs across ranks (rank 0: 6370, rank 1: 7165)")
    elif mode == "float64_parameter":
        expect_agreed(bad_call(mode), 2, "parameter fc2.weight is torch.float64", "float32")
    elif mode == "exception_on_one_rank":
        # rank 2 raises in round 2, the others wait in aggregate()
        expect_raised(bad_call(mode, np=4), 2, "RuntimeError: boom in round 2")
    elif mode == "exception_after_finish":
        # rank 1 raises after finish(), rank 0 leaves the `with` block
        expect_raised(bad_call(mode), 1, "RuntimeError: boom after finish")
    elif mode == "privacy_sample":
        # Refused by the session with a built-in arch, by the config with "pytorch".
        expect_agreed(bad_call(mode, arch="mlp", extra=PRIVACY), 2, 'privacy.level = "sample"', "Opacus")
        expect_agreed(bad_call(mode, extra=PRIVACY), 2, "privacy.level", "Opacus")
    elif mode == "builtin_arch_mismatch":
        # model.arch = "mlp", hidden = [32]; the network's hidden layer has 64 units
        expect_agreed(bad_call(mode, arch="mlp"), 2,
                      'model.arch = "mlp": tensor 0 is fc1.weight [32, 784]', "fc1.weight is [64, 784]")
    elif mode == "steps_missing":
        # SCAFFOLD and FedNova need the round's step count; bad_calls.py aggregates without it.
        for name in ("scaffold", "fednova"):
            expect_agreed(bad_call(mode, extra='[strategy]\nname = "%s"\n' % name), 2,
                          'strategy.name = "%s" needs aggregate(..., steps=K)' % name)
    elif mode == "train_refuses_pytorch_arch":
        work = harness.fresh_dir("errors-" + mode)
        config = harness.write_config(work, harness.silos(2), 3)
        ranks = harness.mpirun(2, [harness.FEDSILO, "train", config, "-q"], "errors-" + mode, timeout=60)
        harness.expect(ranks.codes == [2, 2], "every rank should exit 2", ranks)
        harness.expect('fedsilo train: error: model.arch = "pytorch"' in ranks.outputs[0],
                       "rank 0 should name model.arch", ranks)
        print("fedsilo train, 2 ranks, exit 2")
    else:
        raise AssertionError("unknown mode %s" % mode)


if __name__ == "__main__":
    harness.main(lambda: test(sys.argv[1]))
