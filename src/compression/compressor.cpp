// Compression config parsing/validation and the CPU compressor (a thin shell around the fused
// error-feedback kernel, which does all the work).
#include "compression/compressor.h"

#include <cmath>
#include <string>

#include "kernels/cpu/error_feedback.h"
#include "kernels/cpu/quantize.h"

namespace fedsilo::compression {

Result<Method> parse_method(std::string_view name) {
  if (name == "none") return Method::kNone;
  if (name == "topk") return Method::kTopk;
  if (name == "topk-sampled") return Method::kTopkSampled;
  if (name == "randk") return Method::kRandk;
  return invalid_argument("compression.method = \"" + std::string(name) +
                          "\": expected \"none\", \"topk\", \"topk-sampled\" or \"randk\"");
}

const char* method_name(Method m) {
  switch (m) {
    case Method::kNone:
      return "none";
    case Method::kTopk:
      return "topk";
    case Method::kTopkSampled:
      return "topk-sampled";
    case Method::kRandk:
      return "randk";
  }
  return "?";
}

Result<kernels::ValueType> parse_value_type(std::string_view name) {
  if (name == "fp32") return kernels::ValueType::kFp32;
  if (name == "fp16") return kernels::ValueType::kFp16;
  if (name == "bf16") return kernels::ValueType::kBf16;
  if (name == "int8") return kernels::ValueType::kInt8;
  return invalid_argument("compression.value_type = \"" + std::string(name) +
                          "\": expected \"fp32\", \"fp16\", \"bf16\" or \"int8\"");
}

const char* value_type_name(kernels::ValueType t) {
  switch (t) {
    case kernels::ValueType::kFp32:
      return "fp32";
    case kernels::ValueType::kFp16:
      return "fp16";
    case kernels::ValueType::kBf16:
      return "bf16";
    case kernels::ValueType::kInt8:
      return "int8";
  }
  return "?";
}

Status validate(const CompressionConfig& c) {
  switch (c.method) {
    case Method::kNone:
    case Method::kTopk:
    case Method::kTopkSampled:
    case Method::kRandk:
      break;
    default:
      return invalid_argument("compression.method: unknown value " +
                              std::to_string(static_cast<int>(c.method)));
  }
  if (static_cast<uint8_t>(c.value_type) > static_cast<uint8_t>(kernels::ValueType::kInt8)) {
    return invalid_argument("compression.value_type: unknown value " +
                            std::to_string(static_cast<int>(c.value_type)));
  }
  if (!(c.density > 0.0 && c.density <= 1.0)) {
    return invalid_argument("compression.density = " + std::to_string(c.density) +
                            ": must be in (0, 1]");
  }
  if (!(c.momentum_correction >= 0.0 && c.momentum_correction < 1.0)) {
    return invalid_argument("compression.momentum_correction = " +
                            std::to_string(c.momentum_correction) + ": must be in [0, 1)");
  }
  if (c.momentum_correction != 0.0 && !c.error_feedback) {
    return invalid_argument(
        "compression.momentum_correction needs compression.error_feedback = true (the "
        "velocity's unsent part lives in the residual)");
  }
  return Status::ok_status();
}

Result<CompressionConfig> make_compression_config(std::string_view method, double density,
                                                  std::string_view value_type, bool error_feedback,
                                                  double momentum_correction) {
  CompressionConfig c;
  FEDSILO_ASSIGN_OR_RETURN(c.method, parse_method(method));
  FEDSILO_ASSIGN_OR_RETURN(c.value_type, parse_value_type(value_type));
  c.density = density;
  c.error_feedback = error_feedback;
  c.momentum_correction = momentum_correction;
  FEDSILO_CHECK(validate(c));
  return c;
}

int64_t value_wire_bytes(kernels::ValueType type, int64_t count) {
  return kernels::encoded_value_bytes(type, count);
}

int64_t selected_count(const CompressionConfig& c, int64_t n) {
  if (n <= 0) return 0;
  if (c.method == Method::kNone) return n;
  const auto k = static_cast<int64_t>(std::llround(c.density * static_cast<double>(n)));
  return std::min(n, std::max<int64_t>(1, k));
}

namespace {

constexpr uint32_t kMaxSilo = 1u << 30;  // the top two bits of the silo field pick sub-streams
constexpr int64_t kMaxLength = int64_t{1} << 32;  // indices are uint32

class CpuCompressor final : public Compressor {
 public:
  explicit CpuCompressor(const CompressionConfig& c) : config_(c) {}

  const CompressionConfig& config() const override { return config_; }

  Result<kernels::SparseVector> compress(std::span<const float> update, CompressorState& state,
                                         uint64_t seed, uint32_t round, uint32_t silo) override {
    const auto n = static_cast<int64_t>(update.size());
    if (n >= kMaxLength) {
      return invalid_argument("compress: update of " + std::to_string(n) +
                              " floats; at most 2^32 - 1 (indices are 32-bit)");
    }
    if (silo >= kMaxSilo) {
      return invalid_argument("compress: silo " + std::to_string(silo) + " >= 2^30");
    }
    const bool ef = config_.error_feedback;
    const bool mom = ef && config_.momentum_correction != 0.0;
    FEDSILO_CHECK(size_state(state.residual, ef, n, "residual"));
    FEDSILO_CHECK(size_state(state.velocity, mom, n, "velocity"));

    kernels::ErrorFeedbackParams p;
    p.method = select_method(config_.method);
    p.k = selected_count(config_, n);
    p.value_type = config_.value_type;
    p.error_feedback = ef;
    p.momentum = static_cast<float>(mom ? config_.momentum_correction : 0.0);
    p.seed = seed;
    p.round = round;
    p.silo = silo;
    p.threads = config_.threads;
    kernels::ErrorFeedbackReport rep;
    kernels::SparseVector out =
        kernels::error_feedback_step(update, state.residual, state.velocity, p, &rep);
    if (!rep.finite) {
      return Status(StatusCode::kDiverged,
                    std::string("compress: the update") + (ef ? " plus residual" : "") +
                        " has a non-finite value (round " + std::to_string(round) + ", silo " +
                        std::to_string(silo) + ")");
    }
    if (rep.overflow) {
      return Status(StatusCode::kDiverged,
                    std::string("compress: a selected value exceeds the range of "
                                "compression.value_type = ") +
                        value_type_name(config_.value_type) + " (round " + std::to_string(round) +
                        ", silo " + std::to_string(silo) + ")");
    }
    return out;
  }

 private:
  static kernels::SelectMethod select_method(Method m) {
    switch (m) {
      case Method::kNone:
        return kernels::SelectMethod::kAll;
      case Method::kTopk:
        return kernels::SelectMethod::kTopk;
      case Method::kTopkSampled:
        return kernels::SelectMethod::kTopkSampled;
      case Method::kRandk:
        return kernels::SelectMethod::kRandk;
    }
    return kernels::SelectMethod::kAll;
  }

  // A state buffer is sized on first use; a wrong size afterwards (another model, a bad
  // checkpoint) is an error, not a silent reset.
  static Status size_state(std::vector<float>& buf, bool needed, int64_t n, const char* what) {
    if (!needed) return Status::ok_status();
    if (buf.empty() && n > 0) buf.assign(static_cast<size_t>(n), 0.0f);
    if (static_cast<int64_t>(buf.size()) != n) {
      return invalid_argument(std::string("compress: ") + what + " has " +
                              std::to_string(buf.size()) + " floats, the update " +
                              std::to_string(n));
    }
    return Status::ok_status();
  }

  CompressionConfig config_;
};

}  // namespace

Result<std::unique_ptr<Compressor>> make_compressor(const CompressionConfig& config) {
  FEDSILO_CHECK(validate(config));
  return std::unique_ptr<Compressor>(std::make_unique<CpuCompressor>(config));
}

}  // namespace fedsilo::compression
