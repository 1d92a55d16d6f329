// Random-k by Floyd's algorithm over a bitmap: O(k) draws plus an n/64-word scan for ascending
// output (n = 2^24: a 2 MiB bitmap, ~0.3 ms to scan), with no sort and no hash set.
#include "kernels/cpu/randk.h"

#include <bit>
#include <numeric>

#include "core/philox.h"
#include "kernels/cpu/topk.h"

namespace fedsilo::kernels {

std::vector<uint32_t> randk_indices(int64_t n, int64_t k, uint64_t seed, uint32_t round) {
  if (k <= 0 || n <= 0) return {};
  if (k >= n) {
    std::vector<uint32_t> all(static_cast<size_t>(n));
    std::iota(all.begin(), all.end(), 0u);
    return all;
  }
  Philox rng(seed, round, 0, RngPurpose::kCompression);
  std::vector<uint64_t> bits(static_cast<size_t>((n + 63) / 64), 0);
  auto test_and_set = [&bits](uint64_t i) {
    uint64_t& w = bits[i >> 6];
    const uint64_t bit = uint64_t{1} << (i & 63);
    const bool was = (w & bit) != 0;
    w |= bit;
    return was;
  };
  // Floyd: for j = n-k .. n-1 draw t in [0, j]; take t, or j when t is already taken. Each
  // k-subset comes out with probability 1 / C(n, k).
  for (int64_t j = n - k; j < n; ++j) {
    const uint64_t t = rng.below(static_cast<uint64_t>(j) + 1);
    if (test_and_set(t)) test_and_set(static_cast<uint64_t>(j));
  }
  std::vector<uint32_t> out;
  out.reserve(static_cast<size_t>(k));
  for (size_t w = 0; w < bits.size(); ++w) {
    for (uint64_t word = bits[w]; word != 0; word &= word - 1) {
      out.push_back(static_cast<uint32_t>(w * 64 + static_cast<size_t>(std::countr_zero(word))));
    }
  }
  return out;
}

SparseVector randk_select(std::span<const float> x, int64_t k, uint64_t seed, uint32_t round) {
  return gather_sparse(x, randk_indices(static_cast<int64_t>(x.size()), k, seed, round));
}

}  // namespace fedsilo::kernels
