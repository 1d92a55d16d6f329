// The sparse form of a flat update that compressors produce and sparse allreduce algorithms
// exchange: ascending unique indices into a dense vector of `length` floats, and their values.
#pragma once

#include <cstdint>
#include <vector>

namespace fedsilo::kernels {

struct SparseVector {
  int64_t length = 0;              // length of the dense vector this is a part of
  std::vector<uint32_t> indices;   // strictly ascending, each < length
  std::vector<float> values;       // same size as indices

  [[nodiscard]] int64_t nnz() const { return static_cast<int64_t>(indices.size()); }
  [[nodiscard]] double density() const {
    return length > 0 ? static_cast<double>(indices.size()) / static_cast<double>(length) : 0.0;
  }
};

/// How values travel on the wire. Receivers always see fp32 after decoding; compressors apply
/// the same rounding before error feedback, so the residual keeps exactly what was lost.
enum class ValueType : uint8_t {
  kFp32 = 0,
  kFp16 = 1,
  kBf16 = 2,
  kInt8 = 3,   // per-block scale (fp32) and stochastic rounding
};

/// Values per int8 scale block.
inline constexpr int kInt8BlockSize = 256;

}  // namespace fedsilo::kernels
