// The update compressor a silo applies before aggregation: selection (none, top-k, sampled
// top-k, random-k), value type, error feedback with optional DGC momentum correction. Config
// parsing and validation live here too, so the config module only forwards the TOML values.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "kernels/sparse_vector.h"

namespace fedsilo::compression {

/// kTopkPrevious: the top-k of the previous round's public aggregate, one index set for every
/// silo (secure aggregation's fl::SharedTopkTransform; no Compressor runs it).
enum class Method : uint8_t { kNone = 0, kTopk = 1, kTopkSampled = 2, kRandk = 3, kTopkPrevious = 4 };

/// `[compression]` settings that shape one silo's compressor.
struct CompressionConfig {
  Method method = Method::kNone;
  double density = 1.0;  // fraction of coordinates sent, in (0, 1]; ignored by kNone
  kernels::ValueType value_type = kernels::ValueType::kFp32;
  bool error_feedback = false;
  double momentum_correction = 0.0;  // DGC momentum factor in [0, 1); 0 = off; needs feedback
  int threads = 0;                   // CPU threads for the kernels; <= 0: OpenMP's default
};

/// "none" | "topk" | "topk-sampled" | "randk" | "topk-previous"; kInvalidArgument naming
/// compression.method.
Result<Method> parse_method(std::string_view name);
const char* method_name(Method m);
/// "fp32" | "fp16" | "bf16" | "int8"; kInvalidArgument naming compression.value_type.
Result<kernels::ValueType> parse_value_type(std::string_view name);
const char* value_type_name(kernels::ValueType t);

/// Checks ranges and combinations; messages name the settings (compression.density,
/// compression.momentum_correction with compression.error_feedback, ...).
Status validate(const CompressionConfig& config);

/// Parses and validates the TOML-level values in one step.
Result<CompressionConfig> make_compression_config(std::string_view method, double density,
                                                  std::string_view value_type, bool error_feedback,
                                                  double momentum_correction = 0.0);

/// Bytes `count` values occupy on the wire as `type` (int8 includes its block scales).
int64_t value_wire_bytes(kernels::ValueType type, int64_t count);

/// Coordinates sent for an update of n floats: n for kNone, else round(density * n) clamped
/// to [1, n] (0 when n == 0).
int64_t selected_count(const CompressionConfig& config, int64_t n);

/// A silo's private compression state, checkpointed with the silo and never sent: the
/// error-feedback residual and, with momentum correction, the DGC velocity. Empty vectors are
/// sized (zero-filled) on first use.
struct CompressorState {
  std::vector<float> residual;
  std::vector<float> velocity;
};

/// What the training loop calls once per round per silo.
class Compressor {
 public:
  virtual ~Compressor() = default;
  [[nodiscard]] virtual const CompressionConfig& config() const = 0;
  /// Compresses `update`; returns the sent coordinates (ascending) with the fp32 values a
  /// receiver decodes. Deterministic for (seed, round, silo). Errors: kInvalidArgument for a
  /// state of the wrong length, silo >= 2^30 or an update of 2^32 or more floats; kDiverged
  /// for a non-finite update or residual, or a value outside the value type's range (fp16).
  virtual Result<kernels::SparseVector> compress(std::span<const float> update,
                                                 CompressorState& state, uint64_t seed,
                                                 uint32_t round, uint32_t silo) = 0;
  /// compress(update + addends[0] + addends[1] + ...), each addend n floats, summed in that
  /// order: bitwise what compressing the explicit sum gives. A node leader compresses its
  /// node's sum so, with the other ranks' updates read from node-shared memory. This default
  /// writes the sum out first; the CPU compressor sums inside its error-feedback pass.
  virtual Result<kernels::SparseVector> compress_sum(std::span<const float> update,
                                                     std::span<const float* const> addends,
                                                     CompressorState& state, uint64_t seed,
                                                     uint32_t round, uint32_t silo);
};

/// The CPU compressor for a validated config (kInvalidArgument otherwise).
Result<std::unique_ptr<Compressor>> make_compressor(const CompressionConfig& config);

/// The same compressor on CUDA device `device` (the fused error-feedback step of
/// kernels/cuda/error_feedback.h): the update and state go up, the sent coordinates and the new
/// state come back, bit for bit what the CPU compressor returns and leaves. kInvalidArgument in
/// a build without CUDA; CUDA failures name the call.
Result<std::unique_ptr<Compressor>> make_cuda_compressor(const CompressionConfig& config,
                                                         int device);

}  // namespace fedsilo::compression
