// Per-silo transforms: what a silo does to its weighted update before the update leaves the
// process, as an ordered chain of small objects with private, checkpointed state, and the
// validator that refuses a chain the aggregation cannot carry. Today the chain holds compression
// (error feedback, selection, value encoding) at compression.level = "silo"; clipping, noise and
// masking (the privacy issues) take their places in the same order.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "compression/compressor.h"
#include "core/status.h"
#include "kernels/sparse_vector.h"

namespace fedsilo::config {
struct Config;
}

namespace fedsilo::fl {

/// The places in the chain, in the order an update passes them. Noise comes after selection so
/// that it never enters an error-feedback residual.
enum class Stage : uint8_t { kAddResidual, kClip, kSelect, kAddNoise, kEncode, kMask };
const char* stage_name(Stage s);

/// What a transform needs the aggregation to do with what leaves the silo.
enum class Need : uint8_t {
  kFloatSum,        // a sum of dense float vectors (the plain update)
  kSparseSum,       // a sum of sparse vectors, each silo sending its own coordinates
  kSharedIndexSet,  // a sum over one set of coordinates that every silo sends
  kIntegerSum,      // a sum of integers modulo 2^bits (masked updates)
  kEachUpdate,      // each silo's update, not only the sum (robust rules)
};
const char* need_name(Need n);

/// A transform as the validator sees it.
struct TransformSpec {
  std::string name;     // "compression"
  std::string setting;  // what asks for it, as the user writes it: compression.method = "topk"
  Stage first = Stage::kAddResidual;  // the stages it occupies, first..last
  Stage last = Stage::kAddResidual;
  Need need = Need::kFloatSum;
};

/// An aggregation as the validator sees it: what it can combine.
struct AggregationSpec {
  std::string name;     // "sparse-allgather"
  std::string setting;  // allreduce.algorithm = "sparse-allgather"
  std::vector<Need> accepts;
};

/// OK, or kInvalidArgument naming both settings: two transforms out of stage order or on the
/// same stage, two whose needs exclude each other (a per-silo index set cannot be masked; a
/// masked update is not each silo's), or an aggregation that cannot give what the chain needs
/// (the empty chain needs a float sum).
[[nodiscard]] Status validate_chain(std::span<const TransformSpec> chain,
                                    const AggregationSpec& aggregation);

/// The chain that `cfg` asks for, in order (compression at level "silo": one transform;
/// at level "node" the leaders compress node sums inside the aggregation: none).
[[nodiscard]] std::vector<TransformSpec> configured_chain(const config::Config& cfg);
/// What `cfg`'s aggregation accepts: allreduce.algorithm ("auto": every algorithm it may pick),
/// or the GPU ranks' NCCL sum where device.reduce = "nccl".
[[nodiscard]] AggregationSpec configured_aggregation(const config::Config& cfg);

/// What passes along the chain: the dense weighted update, then (from a selection on) the sent
/// coordinates and their values.
struct SiloUpdate {
  std::span<const float> dense;
  kernels::SparseVector sparse;
  bool is_sparse = false;
  std::vector<uint32_t> shared;  // the round's shared index set where the caller knows it
};

/// One transform of a silo's chain.
class SiloTransform {
 public:
  virtual ~SiloTransform() = default;
  [[nodiscard]] virtual const TransformSpec& spec() const = 0;
  /// Transforms `update` for `round` of silo `silo` (deterministic in the run seed, the round
  /// and the silo). Errors name the transform.
  [[nodiscard]] virtual Status apply(uint32_t round, uint32_t silo, SiloUpdate& update) = 0;
  /// This transform's private state, by checkpoint dataset name: saved with the silo's
  /// checkpoint, never sent. Empty vectors are not saved.
  [[nodiscard]] virtual std::vector<std::pair<std::string, std::vector<float>*>> state() = 0;
};

/// Compression as a transform: error feedback, selection and value encoding in one fused pass
/// (stages add-residual..encode), with the residual and DGC velocity as its state. An update
/// of two parts (SCAFFOLD's model update, then its control-variate update: `split` floats,
/// then the rest) is compressed part by part, each with its own selection and state.
class CompressionTransform final : public SiloTransform {
 public:
  /// `length`: the update's floats (the state is sized to it). `seed`: the run seed. `split`:
  /// the first part's length where the update has two parts, else 0.
  CompressionTransform(std::unique_ptr<compression::Compressor> compressor, TransformSpec spec,
                       int64_t length, uint64_t seed, int64_t split = 0);
  [[nodiscard]] const TransformSpec& spec() const override { return spec_; }
  [[nodiscard]] Status apply(uint32_t round, uint32_t silo, SiloUpdate& update) override;
  [[nodiscard]] std::vector<std::pair<std::string, std::vector<float>*>> state() override;
  [[nodiscard]] compression::CompressorState& compressor_state() { return state_; }

 private:
  std::unique_ptr<compression::Compressor> compressor_;
  TransformSpec spec_;
  compression::CompressorState state_;
  compression::CompressorState second_;  // the second part's, where there is one
  uint64_t seed_;
  int64_t split_;
};

/// Selection at an index set every silo shares, under secure aggregation: rand-k of (seed,
/// round), or "topk-previous": the top k/2 of the previous round's public aggregate and k - k/2
/// coordinates drawn at random among the others (rand-k's set while there is no aggregate). Each silo keeps its own error-feedback residual; the previous aggregate is kept with
/// it (public, but needed to resume bitwise).
class SharedIndexTransform final : public SiloTransform {
 public:
  SharedIndexTransform(TransformSpec spec, compression::Method method, int64_t length, int64_t k,
                       bool error_feedback, uint64_t seed);
  [[nodiscard]] const TransformSpec& spec() const override { return spec_; }
  /// The round's set (ascending), the same on every rank: what apply() selects.
  [[nodiscard]] std::vector<uint32_t> indices(uint32_t round, int64_t n) const;
  /// The round's public aggregate, for the next round's top-k (every rank, every round).
  void remember(std::span<const float> aggregate);
  /// Adds the residual, keeps the set's values (update.shared, else indices(round)), keeps
  /// the rest in the residual. kDiverged naming the round and silo for a non-finite value.
  [[nodiscard]] Status apply(uint32_t round, uint32_t silo, SiloUpdate& update) override;
  [[nodiscard]] std::vector<std::pair<std::string, std::vector<float>*>> state() override;

 private:
  TransformSpec spec_;
  compression::Method method_;
  int64_t k_;
  bool error_feedback_;
  uint64_t seed_;
  std::vector<float> residual_, previous_;
};

}  // namespace fedsilo::fl
