#!/usr/bin/env python3
"""Reference values for fedsilo's privacy accountant (src/privacy/accountant.h), from the public
libraries it follows: Opacus 1.4.0 (RDP, fractional orders summed with their signs) and Google's
dp_accounting (RDP for integer orders; the PLD accountant). tests/unit/test_accountant.cpp reads
the JSON this prints (committed beside it as reference_values.json) and holds its headline
numbers as constants.

Neither library is a fedsilo dependency; run it in a throwaway virtual environment:

    python3 -m venv --system-site-packages /tmp/dpref
    /tmp/dpref/bin/pip install dp-accounting
    /tmp/dpref/bin/pip install --no-deps opacus==1.4.0 opt-einsum
    /tmp/dpref/bin/python benchmarks/privacy/reference_values.py \
        > benchmarks/privacy/reference_values.json

Opacus's accountant module needs only numpy and scipy, but `import opacus` imports torch: the
module file is loaded by its path instead, so torch need not be installed.
"""

import importlib.metadata
import importlib.util
import json
import math
import os
import sys
import time

import numpy as np
from scipy import stats

from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant


def load_opacus_rdp():
    """opacus/accountants/analysis/rdp.py without executing opacus/__init__.py (torch)."""
    spec = importlib.util.find_spec("opacus")
    root = os.path.dirname(spec.origin)
    path = os.path.join(root, "accountants", "analysis", "rdp.py")
    mod_spec = importlib.util.spec_from_file_location("opacus_rdp", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


opacus_rdp = load_opacus_rdp()
# opacus/accountants/rdp.py, RDPAccountant.DEFAULT_ALPHAS (copied: that module imports torch).
DEFAULT_ALPHAS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))


def opacus_epsilon(q, sigma, steps, delta, orders=DEFAULT_ALPHAS):
    rdp = opacus_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=orders)
    eps, order = opacus_rdp.get_privacy_spent(orders=orders, rdp=rdp, delta=delta)
    return float(eps), float(order)


def pld_epsilon(q, sigma, steps, delta, discretization=1e-4):
    acc = pld_privacy_accountant.PLDAccountant(value_discretization_interval=discretization)
    acc.compose(dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma)), steps))
    return float(acc.get_epsilon(delta))


def exact_gaussian_epsilon(s, delta):
    """(Balle & Wang 2018) delta(eps) = Phi(-eps s + 1/(2s)) - e^eps Phi(-eps s - 1/(2s)) for a
    Gaussian mechanism of sensitivity 1 and noise s; the epsilon of a delta by bisection."""
    def delta_of(eps):
        return (stats.norm.cdf(-eps * s + 0.5 / s)
                - math.exp(eps) * stats.norm.cdf(-eps * s - 0.5 / s))
    lo, hi = 0.0, 1.0
    while delta_of(hi) > delta:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if delta_of(mid) > delta:
            lo = mid
        else:
            hi = mid
    return hi


def main():
    warnings_off()
    out = {
        "generator": "benchmarks/privacy/reference_values.py",
        "versions": {
            "opacus": importlib.metadata.version("opacus"),
            "dp_accounting": importlib.metadata.version("dp-accounting"),
            "numpy": np.__version__,
            "scipy": importlib.metadata.version("scipy"),
            "python": sys.version.split()[0],
        },
        "default_orders": DEFAULT_ALPHAS,
    }

    # Headline values: Opacus's README example and TF-Privacy's MNIST test value.
    headline = []
    for q, sigma, steps, delta in [(0.04, 1.5, 2250, 1e-5), (150 / 60000, 1.3, 6000, 1e-5)]:
        eps, order = opacus_epsilon(q, sigma, steps, delta)
        t0 = time.perf_counter()
        pld = pld_epsilon(q, sigma, steps, delta)
        headline.append({"q": q, "sigma": sigma, "steps": steps, "delta": delta,
                         "rdp_epsilon": eps, "rdp_order": order, "pld_epsilon": pld,
                         "pld_seconds": time.perf_counter() - t0})
    out["headline"] = headline

    # Per-order RDP of one step: Opacus (signed series) for every order, dp_accounting for the
    # integer ones (its fractional series sums absolute values: an upper bound, not compared).
    qs = [0.001, 0.01, 0.04, 0.1, 0.5]
    sigmas = [0.6, 1.0, 1.5, 4.0]
    extra_orders = [70.5, 128.0, 256.0]
    orders = DEFAULT_ALPHAS + extra_orders
    ints = [a for a in orders if float(a).is_integer()]
    per_order = []
    for q in qs:
        for sigma in sigmas:
            opa = [float(v) for v in opacus_rdp.compute_rdp(
                q=q, noise_multiplier=sigma, steps=1, orders=orders)]
            dpa = rdp_privacy_accountant._compute_rdp_poisson_subsampled_gaussian(q, sigma, ints)
            per_order.append({"q": q, "sigma": sigma, "opacus": opa,
                              "dp_accounting": [float(v) for v in dpa]})
    out["rdp_orders"] = orders  # opacus: these orders; dp_accounting: the integer ones
    out["rdp_per_order"] = per_order

    # Epsilon over the grid (Opacus, default orders; and with the extra orders).
    grid = []
    for q in qs:
        for sigma in sigmas:
            for steps in [1, 100, 10000]:
                for delta in [1e-5, 1e-7]:
                    eps, order = opacus_epsilon(q, sigma, steps, delta)
                    eps_x, order_x = opacus_epsilon(q, sigma, steps, delta, orders)
                    grid.append({"q": q, "sigma": sigma, "steps": steps, "delta": delta,
                                 "epsilon": eps, "order": order,
                                 "epsilon_extra_orders": eps_x, "order_extra_orders": order_x})
    out["rdp_grid"] = grid
    out["extra_orders"] = extra_orders

    # PLD (dp_accounting's PLDAccountant, value_discretization_interval = 1e-4).
    pld = []
    for q in [0.01, 0.04, 0.2]:
        for sigma in [0.8, 1.5, 4.0]:
            for steps in [1, 100, 1000]:
                t0 = time.perf_counter()
                eps = pld_epsilon(q, sigma, steps, 1e-5)
                pld.append({"q": q, "sigma": sigma, "steps": steps, "delta": 1e-5,
                            "epsilon": eps, "seconds": time.perf_counter() - t0})
    out["pld_grid"] = pld

    # q = 1: T Gaussians are one Gaussian of noise sigma / sqrt(T), whose epsilon is exact.
    exact = []
    for sigma, steps, delta in [(1.0, 1, 1e-5), (4.0, 100, 1e-5), (2.0, 16, 1e-6),
                                (10.0, 400, 1e-5), (0.8, 1, 1e-3)]:
        s = sigma / math.sqrt(steps)
        exact.append({"sigma": sigma, "steps": steps, "delta": delta,
                      "exact_epsilon": exact_gaussian_epsilon(s, delta),
                      "pld_epsilon": pld_epsilon(1.0, sigma, steps, delta)})
    out["gaussian_exact"] = exact

    write_json(out, sys.stdout)


def write_json(out, f):
    """One top-level key per line, lists of records one record per line (diffable, compact)."""
    f.write("{\n")
    for n, (key, value) in enumerate(out.items()):
        f.write(json.dumps(key) + ": ")
        if isinstance(value, list) and value and isinstance(value[0], dict):
            f.write("[\n" + ",\n".join("  " + json.dumps(v) for v in value) + "\n]")
        else:
            f.write(json.dumps(value))
        f.write(",\n" if n + 1 < len(out) else "\n")
    f.write("}\n")


def warnings_off():
    # get_privacy_spent warns when the best order is the first or last one; the values stand.
    import warnings
    warnings.simplefilter("ignore")


if __name__ == "__main__":
    main()
