// The per-silo transform chain: its validator, the chain a config asks for, and compression as
// the chain's first transform.
#include "fl/transform.h"

#include <algorithm>
#include <cmath>

#include "config/config.h"
#include "kernels/cpu/randk.h"
#include "kernels/cpu/topk.h"

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
                     z.method == compression::Method::kRandk || z.method == compression::Method::kTopkPrevious
                         ? Need::kSharedIndexSet
                         : Need::kSparseSum});
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
    // Dense float updates; under secure aggregation its masked words, dense or over a shared
    // index set (an ncclUint32 sum, mpi::DeviceAllreduce::reduce_words).
    if (cfg.secure_aggregation.enabled) {
      return {"device-nccl", quoted("device.reduce", "nccl") + " (it sums masked words on the GPUs)",
              {Need::kSharedIndexSet, Need::kIntegerSum}};
    }
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
                                           TransformSpec spec, int64_t length, uint64_t seed,
                                           int64_t split)
    : compressor_(std::move(compressor)), spec_(std::move(spec)), seed_(seed), split_(split) {
  const auto& z = compressor_->config();
  const int64_t first = split_ > 0 ? split_ : length;
  const auto size = [&](compression::CompressorState& st, int64_t n) {
    if (z.error_feedback) st.residual.assign(static_cast<size_t>(n), 0.0f);
    if (z.momentum_correction > 0.0) st.velocity.assign(static_cast<size_t>(n), 0.0f);
  };
  size(state_, first);
  if (split_ > 0) size(second_, length - split_);
}

Status CompressionTransform::apply(uint32_t round, uint32_t silo, SiloUpdate& update) {
  if (update.is_sparse) {
    return invalid_argument("compression: the update is already sparse (a selection ran before)");
  }
  const auto fail = [](const Status& st) {
    return Status(st.code(), "compression: " + st.message());
  };
  if (split_ == 0) {
    auto sent = compressor_->compress(update.dense, state_, seed_, round, silo);
    if (!sent.ok()) return fail(sent.status());
    update.sparse = std::move(sent).value();
    update.is_sparse = true;
    return {};
  }
  // Two parts: each selected from its own values with its own state (their scales differ: a
  // weighted model update and an unweighted control update), then one sparse vector.
  const auto split = static_cast<size_t>(split_);
  auto head = compressor_->compress(update.dense.first(split), state_, seed_, round, silo);
  if (!head.ok()) return fail(head.status());
  auto tail = compressor_->compress(update.dense.subspan(split), second_, seed_ + 1, round, silo);
  if (!tail.ok()) return fail(tail.status());
  kernels::SparseVector out = std::move(head).value();
  out.length = static_cast<int64_t>(update.dense.size());
  for (const uint32_t i : tail->indices) out.indices.push_back(i + static_cast<uint32_t>(split));
  out.values.insert(out.values.end(), tail->values.begin(), tail->values.end());
  update.sparse = std::move(out);
  update.is_sparse = true;
  return {};
}

std::vector<std::pair<std::string, std::vector<float>*>> CompressionTransform::state() {
  if (split_ == 0) return {{"residual", &state_.residual}, {"velocity", &state_.velocity}};
  return {{"residual", &state_.residual}, {"velocity", &state_.velocity},
          {"control_residual", &second_.residual}, {"control_velocity", &second_.velocity}};
}

SharedIndexTransform::SharedIndexTransform(TransformSpec spec, compression::Method method,
                                           int64_t length, int64_t k, bool error_feedback,
                                           uint64_t seed)
    : spec_(std::move(spec)), method_(method), k_(k), error_feedback_(error_feedback), seed_(seed) {
  if (error_feedback_) residual_.assign(static_cast<size_t>(length), 0.0f);
  if (method_ == compression::Method::kTopkPrevious) previous_.assign(static_cast<size_t>(length), 0.0f);
}

std::vector<uint32_t> SharedIndexTransform::indices(uint32_t round, int64_t n) const {
  // Until an aggregate exists (a fresh run's first round) the previous top-k has nothing to
  // select from: that round takes rand-k's set.
  const bool have_previous = std::any_of(previous_.begin(), previous_.end(), [](float x) { return x != 0.0f; });
  if (method_ != compression::Method::kTopkPrevious || !have_previous) {
    return kernels::randk_indices(n, k_, seed_, round);
  }
  // The previous aggregate is itself nonzero only on the previous set: its top-k alone would
  // pick the same set for ever. Half the set is its top-k, half is drawn at random among the
  // other coordinates (the first of rand-2k's draws that are not taken), so every coordinate
  // keeps a chance to be sent and the residuals drain.
  const int64_t top = k_ / 2;
  std::vector<uint32_t> set = kernels::topk_indices(previous_, top, 1);
  const std::vector<uint32_t> draws = kernels::randk_indices(n, std::min(n, 2 * k_), seed_, round);
  std::vector<uint32_t> extra;
  for (uint32_t i : draws) {
    if (static_cast<int64_t>(extra.size()) == k_ - top) break;
    if (!std::binary_search(set.begin(), set.end(), i)) extra.push_back(i);
  }
  std::vector<uint32_t> out(set.size() + extra.size());
  std::merge(set.begin(), set.end(), extra.begin(), extra.end(), out.begin());
  return out;
}

void SharedIndexTransform::remember(std::span<const float> aggregate) {
  if (method_ == compression::Method::kTopkPrevious) std::copy(aggregate.begin(), aggregate.end(), previous_.begin());
}

Status SharedIndexTransform::apply(uint32_t round, uint32_t silo, SiloUpdate& update) {
  if (update.is_sparse) {
    return invalid_argument("compression: the update is already sparse (a selection ran before)");
  }
  const auto n = static_cast<int64_t>(update.dense.size());
  if (error_feedback_ && residual_.size() != update.dense.size()) {
    return invalid_argument("compression: the residual has " + std::to_string(residual_.size()) +
                            " floats, the update " + std::to_string(n));
  }
  update.sparse.length = n;
  update.sparse.indices = update.shared.empty() ? indices(round, n) : update.shared;
  update.sparse.values.resize(update.sparse.indices.size());
  bool finite = true;
  if (error_feedback_) {
    // residual += update (one pass, counting non-finite sums: r - r is 0 only for finite r);
    // the set's values leave, the rest stays.
    int64_t bad = 0;
    float* r = residual_.data();
    const float* u = update.dense.data();
    for (size_t i = 0; i < residual_.size(); ++i) {
      r[i] += u[i];
      bad += static_cast<int64_t>((r[i] - r[i]) != 0.0f);
    }
    finite = bad == 0;
    for (size_t j = 0; j < update.sparse.indices.size(); ++j) {
      float& x = residual_[update.sparse.indices[j]];
      update.sparse.values[j] = x;
      x = 0.0f;
    }
  } else {
    for (size_t j = 0; j < update.sparse.indices.size(); ++j) {
      update.sparse.values[j] = update.dense[update.sparse.indices[j]];
    }
  }
  for (float v : update.sparse.values) finite = finite && std::isfinite(v);
  if (!finite) {
    return Status(StatusCode::kDiverged, "compression: the update" +
                                             std::string(error_feedback_ ? " plus residual" : "") +
                                             " has a non-finite value (round " + std::to_string(round) +
                                             ", silo " + std::to_string(silo) + ")");
  }
  update.is_sparse = true;
  return {};
}

std::vector<std::pair<std::string, std::vector<float>*>> SharedIndexTransform::state() {
  return {{"residual", &residual_}, {"previous_aggregate", &previous_}};
}

}  // namespace fedsilo::fl
