// The per-silo transform chain: its validator, the chain a config asks for, and compression as
// the chain's first transform.
#include "fl/transform.h"

#include <algorithm>

#include "config/config.h"

namespace fedsilo::fl {

const char* stage_name(Stage s) {
  switch (s) {
    case Stage::kAddResidual: return "add the error-feedback residual";
    case Stage::kClip: return "clip";
    case Stage::kSelect: return "select";
    case Stage::kAddNoise: return "add noise";
    case Stage::kEncode: return "encode";
    case Stage::kMask: return "mask";
  }
  return "?";
}

const char* need_name(Need n) {
  switch (n) {
    case Need::kFloatSum: return "a sum of dense float updates";
    case Need::kSparseSum: return "a sum of sparse updates with each silo's own coordinates";
    case Need::kSharedIndexSet: return "a sum over one coordinate set shared by every silo";
    case Need::kIntegerSum: return "an integer sum modulo 2^bits";
    case Need::kEachUpdate: return "each silo's update";
  }
  return "?";
}

namespace {

// Needs that no aggregation can give together: masking cannot hide coordinates that differ per
// silo, and a masked update is no longer each silo's.
bool exclusive(Need a, Need b) {
  const auto pair = [&](Need x, Need y) { return (a == x && b == y) || (a == y && b == x); };
  return pair(Need::kSparseSum, Need::kIntegerSum) || pair(Need::kIntegerSum, Need::kEachUpdate) ||
         pair(Need::kSparseSum, Need::kSharedIndexSet);
}

std::string quoted(const std::string& key, const std::string& value) {
  return key + " = \"" + value + "\"";
}

}  // namespace

Status validate_chain(std::span<const TransformSpec> chain, const AggregationSpec& aggregation) {
  for (size_t i = 1; i < chain.size(); ++i) {
    const TransformSpec& a = chain[i - 1];
    const TransformSpec& b = chain[i];
    if (!(a.last < b.first)) {
      return invalid_argument(b.setting + " (" + b.name + ": " + stage_name(b.first) +
                              ") cannot come after " + a.setting + " (" + a.name + ": up to " +
                              stage_name(a.last) +
                              "); the chain's order is: add the error-feedback residual, clip, "
                              "select, add noise, encode, mask");
    }
  }
  for (size_t i = 0; i < chain.size(); ++i) {
    for (size_t j = i + 1; j < chain.size(); ++j) {
      if (exclusive(chain[i].need, chain[j].need)) {
        return invalid_argument(chain[i].setting + " needs " + need_name(chain[i].need) + ", " +
                                chain[j].setting + " needs " + need_name(chain[j].need) +
                                ": no aggregation gives both");
      }
    }
  }
  const auto accepts = [&](Need n) {
    return std::find(aggregation.accepts.begin(), aggregation.accepts.end(), n) !=
           aggregation.accepts.end();
  };
  if (chain.empty() && !accepts(Need::kFloatSum)) {
    return invalid_argument(aggregation.setting +
                            " sums transformed updates only; with the plain update (compression.method = "
                            "\"none\": no transform) it has nothing to take: set a compression.method "
                            "other than \"none\", or another allreduce.algorithm");
  }
  // The aggregation sees what the chain's last transform that shapes the update sends.
  if (!chain.empty() && !accepts(chain.back().need)) {
    const TransformSpec& t = chain.back();
    return invalid_argument(t.setting + " needs " + need_name(t.need) + ", which " +
                            aggregation.setting + " does not give (" + aggregation.name +
                            " takes " + (aggregation.accepts.empty()
                                             ? std::string("nothing")
                                             : need_name(aggregation.accepts.front())) +
                            ")");
  }
  return {};
}

std::vector<TransformSpec> configured_chain(const config::Config& cfg) {
  std::vector<TransformSpec> chain;
  const auto& z = cfg.compression;
  // Under secure aggregation a silo compresses its own update at either level: a node leader
  // only ever carries masked words.
  if (z.method != compression::Method::kNone &&
      (z.level == config::CompressionLevel::kSilo || cfg.secure_aggregation.enabled)) {
    // Top-k selects from the silo's own values: each silo its own coordinates. Rand-k draws
    // them from (seed, round): one set shared by every silo.
    // Values go as fp32 (no encoding stage) or in a narrower value type.
    const Stage last = z.value_type == kernels::ValueType::kFp32 ? Stage::kSelect : Stage::kEncode;
    chain.push_back({"compression", quoted("compression.method", config::name(z.method)),
                     z.error_feedback ? Stage::kAddResidual : Stage::kSelect, last,
                     z.method == compression::Method::kRandk ? Need::kSharedIndexSet : Need::kSparseSum});
  }
  if (cfg.secure_aggregation.enabled) {
    // Fixed-point coding and the pairwise masks: integers summed modulo 2^32.
    chain.push_back({"secure aggregation", "secure_aggregation.enabled = true", Stage::kMask,
                     Stage::kMask, Need::kIntegerSum});
  }
  return chain;
}

AggregationSpec configured_aggregation(const config::Config& cfg) {
  if (cfg.device.reduce == config::DeviceReduce::kNccl) {
    return {"device-nccl", quoted("device.reduce", "nccl") + " (it sums dense updates on the GPUs)",
            {Need::kFloatSum}};
  }
  const std::string alg = config::name(cfg.allreduce.algorithm);
  const std::string setting = quoted("allreduce.algorithm", alg);
  if (alg == "sparse-allgather" || alg == "sparse-rd") {
    return {alg, setting, {Need::kSparseSum, Need::kSharedIndexSet}};
  }
  if (alg == "sparse-hier") {
    // The leaders compress node sums: the silos send their plain updates.
    return {alg, setting + " (it compresses node sums: compression.level = \"node\")",
            {Need::kFloatSum}};
  }
  // dense-flat and dense-hier: floats (a sparse contribution densified first), or uint32
  // words modulo 2^32 (mpi::IntegerSum); auto picks among them.
  return {alg, setting, {Need::kFloatSum, Need::kSparseSum, Need::kSharedIndexSet, Need::kIntegerSum}};
}

CompressionTransform::CompressionTransform(std::unique_ptr<compression::Compressor> compressor,
                                           TransformSpec spec, int64_t length, uint64_t seed)
    : compressor_(std::move(compressor)), spec_(std::move(spec)), seed_(seed) {
  const auto& z = compressor_->config();
  if (z.error_feedback) state_.residual.assign(static_cast<size_t>(length), 0.0f);
  if (z.momentum_correction > 0.0) state_.velocity.assign(static_cast<size_t>(length), 0.0f);
}

Status CompressionTransform::apply(uint32_t round, uint32_t silo, SiloUpdate& update) {
  if (update.is_sparse) {
    return invalid_argument("compression: the update is already sparse (a selection ran before)");
  }
  auto sent = compressor_->compress(update.dense, state_, seed_, round, silo);
  if (!sent.ok()) return Status(sent.status().code(), "compression: " + sent.status().message());
  update.sparse = std::move(sent).value();
  update.is_sparse = true;
  return {};
}

std::vector<std::pair<std::string, std::vector<float>*>> CompressionTransform::state() {
  return {{"residual", &state_.residual}, {"velocity", &state_.velocity}};
}

}  // namespace fedsilo::fl
