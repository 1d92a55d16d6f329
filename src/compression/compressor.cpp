// Compression config parsing/validation and the CPU and CUDA compressors (thin shells around
// the fused error-feedback kernels, which do all the work).
#include "compression/compressor.h"

#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/error_feedback.h"
#include "kernels/cpu/quantize.h"
#include "kernels/cpu/reduce.h"

#ifdef FEDSILO_HAVE_CUDA
#include "kernels/cuda/error_feedback.h"
#endif

namespace fedsilo::compression {

Result<Method> parse_method(std::string_view name) {
  if (name == "none") return Method::kNone;
  if (name == "topk") return Method::kTopk;
  if (name == "topk-sampled") return Method::kTopkSampled;
  if (name == "randk") return Method::kRandk;
  if (name == "topk-previous") return Method::kTopkPrevious;
  return invalid_argument("compression.method = \"" + std::string(name) +
                          "\": expected \"none\", \"topk\", \"topk-sampled\", \"randk\" or "
                          "\"topk-previous\"");
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
    case Method::kTopkPrevious:
      return "topk-previous";
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
    case Method::kTopkPrevious:
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

}  // namespace

Result<kernels::SparseVector> Compressor::compress_sum(std::span<const float> update,
                                                       std::span<const float* const> addends,
                                                       CompressorState& state, uint64_t seed,
                                                       uint32_t round, uint32_t silo) {
  if (addends.empty()) return compress(update, state, seed, round, silo);
  std::vector<float> sum(update.begin(), update.end());
  for (const float* a : addends) kernels::add_into(sum.data(), a, static_cast<int64_t>(sum.size()));
  return compress(sum, state, seed, round, silo);
}

namespace {

// What every backend shares: the argument checks, the state sizing, the kernel parameters and
// the verdicts, so the CPU and the CUDA compressor fail with the same messages.
class CompressorBase : public Compressor {
 public:
  explicit CompressorBase(const CompressionConfig& c) : config_(c) {}

  const CompressionConfig& config() const override { return config_; }

 protected:
  Result<kernels::ErrorFeedbackParams> plan(std::span<const float> update,
                                            CompressorState& state, uint64_t seed,
                                            uint32_t round, uint32_t silo) const {
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
    return p;
  }

  Status verdict(bool finite, bool overflow, uint32_t round, uint32_t silo) const {
    const bool ef = config_.error_feedback;
    if (!finite) {
      return Status(StatusCode::kDiverged,
                    std::string("compress: the update") + (ef ? " plus residual" : "") +
                        " has a non-finite value (round " + std::to_string(round) + ", silo " +
                        std::to_string(silo) + ")");
    }
    if (overflow) {
      return Status(StatusCode::kDiverged,
                    std::string("compress: a selected value exceeds the range of "
                                "compression.value_type = ") +
                        value_type_name(config_.value_type) + " (round " + std::to_string(round) +
                        ", silo " + std::to_string(silo) + ")");
    }
    return {};
  }

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
      case Method::kTopkPrevious:  // never a Compressor's (make_compressor refuses it)
        return kernels::SelectMethod::kAll;
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

class CpuCompressor final : public CompressorBase {
 public:
  using CompressorBase::CompressorBase;

  Result<kernels::SparseVector> compress_sum(std::span<const float> update,
                                             std::span<const float* const> addends,
                                             CompressorState& state, uint64_t seed, uint32_t round,
                                             uint32_t silo) override {
    if (addends.empty() || !config_.error_feedback) {
      return Compressor::compress_sum(update, addends, state, seed, round, silo);
    }
    FEDSILO_ASSIGN_OR_RETURN(const kernels::ErrorFeedbackParams p,
                             plan(update, state, seed, round, silo));
    kernels::ErrorFeedbackReport rep;
    kernels::SparseVector out =
        kernels::error_feedback_step(update, addends, state.residual, state.velocity, p, &rep);
    FEDSILO_CHECK(verdict(rep.finite, rep.overflow, round, silo));
    return out;
  }

  Result<kernels::SparseVector> compress(std::span<const float> update, CompressorState& state,
                                         uint64_t seed, uint32_t round, uint32_t silo) override {
    FEDSILO_ASSIGN_OR_RETURN(const kernels::ErrorFeedbackParams p,
                             plan(update, state, seed, round, silo));
    kernels::ErrorFeedbackReport rep;
    kernels::SparseVector out =
        kernels::error_feedback_step(update, state.residual, state.velocity, p, &rep);
    FEDSILO_CHECK(verdict(rep.finite, rep.overflow, round, silo));
    return out;
  }
};

#ifdef FEDSILO_HAVE_CUDA
namespace kc = kernels::cuda;

// The fused device step (kernels/cuda/error_feedback.h), bit for bit the CPU's: the update and
// the state go up, the sent coordinates and the new state come back, so the host state stays
// what checkpoints save and resume loads. Buffers are kept and grow once.
class CudaCompressor final : public CompressorBase {
 public:
  CudaCompressor(const CompressionConfig& c, int device, kc::Stream stream)
      : CompressorBase(c), device_(device), stream_(stream) {}
  ~CudaCompressor() override { kc::destroy_stream(stream_); }

  Result<kernels::SparseVector> compress(std::span<const float> update, CompressorState& state,
                                         uint64_t seed, uint32_t round, uint32_t silo) override {
    FEDSILO_ASSIGN_OR_RETURN(const kernels::ErrorFeedbackParams p,
                             plan(update, state, seed, round, silo));
    const auto n = static_cast<int64_t>(update.size());
    FEDSILO_CHECK(kc::set_device(device_));
    const auto cap = static_cast<size_t>(kc::error_feedback_capacity(n, p));
    FEDSILO_CHECK(ensure(update_, static_cast<size_t>(n)));
    FEDSILO_CHECK(ensure(residual_, state.residual.size()));
    FEDSILO_CHECK(ensure(velocity_, state.velocity.size()));
    FEDSILO_CHECK(ensure(indices_, cap));
    FEDSILO_CHECK(ensure(values_, cap));
    FEDSILO_CHECK(upload(update_, update));
    FEDSILO_CHECK(upload(residual_, state.residual));
    FEDSILO_CHECK(upload(velocity_, state.velocity));
    kernels::ErrorFeedbackReport rep;
    FEDSILO_ASSIGN_OR_RETURN(
        const int64_t count,
        kc::error_feedback_step(update_.data(), state.residual.empty() ? nullptr : residual_.data(),
                                state.velocity.empty() ? nullptr : velocity_.data(), n, p,
                                indices_.data(), values_.data(), static_cast<int64_t>(cap), ws_,
                                stream_, &rep));
    kernels::SparseVector out;
    out.length = n;
    out.indices.resize(static_cast<size_t>(count));
    out.values.resize(static_cast<size_t>(count));
    if (count > 0) {
      FEDSILO_CHECK(kc::copy_to_host(out.indices.data(), indices_.data(),
                                     out.indices.size() * sizeof(uint32_t), stream_));
      FEDSILO_CHECK(kc::copy_to_host(out.values.data(), values_.data(),
                                     out.values.size() * sizeof(float), stream_));
    }
    FEDSILO_CHECK(download(residual_, state.residual));
    FEDSILO_CHECK(download(velocity_, state.velocity));
    FEDSILO_CHECK(kc::synchronize(stream_));
    FEDSILO_CHECK(verdict(rep.finite, rep.overflow, round, silo));
    return out;
  }

 private:
  template <class T>
  static Status ensure(kc::DeviceArray<T>& a, size_t n) {
    if (a.size() >= n) return {};
    a = kc::DeviceArray<T>();
    FEDSILO_ASSIGN_OR_RETURN(a, kc::DeviceArray<T>::create(n));
    return {};
  }
  Status upload(kc::DeviceArray<float>& a, std::span<const float> host) {
    return host.empty() ? Status{} : kc::copy_to_device(a.data(), host.data(), host.size_bytes(), stream_);
  }
  Status download(const kc::DeviceArray<float>& a, std::span<float> host) {
    return host.empty() ? Status{} : kc::copy_to_host(host.data(), a.data(), host.size_bytes(), stream_);
  }

  int device_;
  kc::Stream stream_;
  kc::DeviceArray<float> update_, residual_, velocity_, values_;
  kc::DeviceArray<uint32_t> indices_;
  kc::Workspace ws_;
};
#endif

}  // namespace

namespace {
Status refuse_topk_previous(const CompressionConfig& config) {
  if (config.method != Method::kTopkPrevious) return {};
  return invalid_argument(
      "compression.method = \"topk-previous\" selects from the previous round's aggregate, "
      "not from a silo's update: it is secure aggregation's shared index set, not a compressor");
}
}  // namespace

Result<std::unique_ptr<Compressor>> make_compressor(const CompressionConfig& config) {
  FEDSILO_CHECK(validate(config));
  FEDSILO_CHECK(refuse_topk_previous(config));
  return std::unique_ptr<Compressor>(std::make_unique<CpuCompressor>(config));
}

Result<std::unique_ptr<Compressor>> make_cuda_compressor(const CompressionConfig& config,
                                                         int device) {
  FEDSILO_CHECK(validate(config));
  FEDSILO_CHECK(refuse_topk_previous(config));
#ifdef FEDSILO_HAVE_CUDA
  FEDSILO_CHECK(kc::set_device(device));
  FEDSILO_ASSIGN_OR_RETURN(const kc::Stream stream, kc::create_stream());
  return std::unique_ptr<Compressor>(std::make_unique<CudaCompressor>(config, device, stream));
#else
  (void)device;
  return invalid_argument(
      "device.kind = \"cuda\": this fedsilo was built without CUDA, so it cannot compress on a "
      "GPU");
#endif
}

}  // namespace fedsilo::compression
