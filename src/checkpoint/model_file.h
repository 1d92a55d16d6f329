// model.h5 and checkpoint files: the flat parameters plus per-layer names, shapes and offsets,
// and the attributes needed to rebuild the model (readable with h5dump and h5py).
//
// Layout: dataset `params` float32 [P]; `param_names` strings [L]; `param_offsets` int64 [L];
// `param_sizes` int64 [L]; `param_shapes` int64 [L, 4] (unused trailing dims 0) with
// `param_ranks` int64 [L]; `model_hidden` int64 [H]. Root attributes: format = "fedsilo-model",
// version, kind ("model" | "checkpoint"), arch, in_channels, in_height, in_width, num_classes,
// num_params, round, config_hash, reducer, fedsilo_version.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "checkpoint/checkpoint.h"
#include "model/model.h"

namespace fedsilo::checkpoint {

inline constexpr int64_t kModelFileVersion = 1;

struct ModelFileMeta {
  std::string kind = "model";   // "model" | "checkpoint"
  int64_t round = 0;            // rounds completed
  std::string config_hash;
  std::string reducer;          // aggregation algorithm the run used
};

struct LoadedModel {
  model::ModelSpec spec;
  std::vector<float> params;
  std::vector<model::ParamInfo> table;  // each tensor's name, shape and place in `params`
  ModelFileMeta meta;
};

/// Writes atomically (temporary name, fsync, rename).
/// `extra`: named vectors written beside the parameters (a checkpoint's server optimizer state;
/// read back with checkpoint::read_named_vectors).
[[nodiscard]] Status write_model_file(const std::string& path, const model::Model& model,
                                      std::span<const float> params, const ModelFileMeta& meta,
                                      const SiloState* extra = nullptr);
/// The same for a model given by its tensor table (arch "pytorch": the Python binding's).
[[nodiscard]] Status write_model_file(const std::string& path, const model::ModelSpec& spec,
                                      std::span<const model::ParamInfo> table,
                                      std::span<const float> params, const ModelFileMeta& meta,
                                      const SiloState* extra = nullptr);
/// Reads and checks: format, version, consistent sizes, finite parameters; errors name the path.
[[nodiscard]] Result<LoadedModel> read_model_file(const std::string& path);

}  // namespace fedsilo::checkpoint
