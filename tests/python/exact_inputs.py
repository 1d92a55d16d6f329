"""The exact inputs of the bit-for-bit test, as native_rounds.cpp computes them (see there):
every value a small multiple of a power of two, so float sums are exact in any order."""

import numpy as np

N = 20 * 16 + 16 + 16 * 4 + 4  # rounds_torch.py's Net: Linear(20, 16), Linear(16, 4)


def initial():
    """The global model before round 1: ((5 i + 3) mod 11 - 5) / 16."""
    i = np.arange(N, dtype=np.int64)
    return (((i * 5 + 3) % 11 - 5) / 16.0).astype(np.float32)


def delta(rnd, rank):
    """Rank `rank`'s local change in round `rnd`: ((7 i + 13 rank + 3 rnd) mod 17 - 8) / 64."""
    i = np.arange(N, dtype=np.int64)
    return (((i * 7 + rank * 13 + rnd * 3) % 17 - 8) / 64.0).astype(np.float32)


def weight(rank):
    """Rank `rank`'s num_examples: 2 rank + 1 (P ranks sum to P^2, a power of two at P = 2, 4)."""
    return 2 * rank + 1
