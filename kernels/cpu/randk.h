// Random-k selection from a shared seed: every rank that uses the same (seed, round) picks the
// same index set, so sparse sums need no index exchange (the sets align).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/sparse_vector.h"

namespace fedsilo::kernels {

/// k distinct indices of [0, n), uniformly at random (every k-subset equally likely), in
/// ascending order, drawn from Philox(seed, round, 0, RngPurpose::kCompression): independent of
/// the silo so that all ranks agree. k <= 0: none; k >= n: all. Requires n < 2^32.
std::vector<uint32_t> randk_indices(int64_t n, int64_t k, uint64_t seed, uint32_t round);

/// randk_indices(x.size(), k, seed, round) with x's values copied.
SparseVector randk_select(std::span<const float> x, int64_t k, uint64_t seed, uint32_t round);

}  // namespace fedsilo::kernels
