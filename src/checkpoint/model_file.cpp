// Reading and writing model.h5 / checkpoint files.
#include "checkpoint/model_file.h"

#include <algorithm>
#include <cmath>

#include "core/h5.h"

namespace fedsilo::checkpoint {

Status write_model_file(const std::string& path, const model::Model& model,
                        std::span<const float> params, const ModelFileMeta& meta,
                        const SiloState* extra) {
  if (static_cast<int64_t>(params.size()) != model.num_params()) {
    return internal_error("write_model_file: parameter count differs from the model's");
  }
  return write_model_file(path, model.spec(), model.params(), params, meta, extra);
}

Status write_model_file(const std::string& path, const model::ModelSpec& spec,
                        std::span<const model::ParamInfo> table, std::span<const float> params,
                        const ModelFileMeta& meta, const SiloState* extra) {
  // Shapes are stored [L, 4] (unused trailing dims 0); a tensor of higher rank widens the
  // dataset's second dimension to the largest rank (readers take the width from the dataset).
  size_t width = 4;
  for (const auto& p : table) width = std::max(width, p.shape.size());
  return h5::write_atomically(path, [&](h5::File& f) -> Status {
    const auto n = static_cast<int64_t>(table.size());
    std::vector<std::string> names;
    std::vector<int64_t> offsets, sizes, ranks, shapes(static_cast<size_t>(n) * width, 0);
    for (int64_t i = 0; i < n; ++i) {
      const auto& p = table[static_cast<size_t>(i)];
      names.push_back(p.name);
      offsets.push_back(p.offset);
      sizes.push_back(p.size);
      ranks.push_back(static_cast<int64_t>(p.shape.size()));
      for (size_t d = 0; d < p.shape.size(); ++d) shapes[static_cast<size_t>(i) * width + d] = p.shape[d];
    }
    std::vector<int64_t> hidden(spec.hidden.begin(), spec.hidden.end());
    FEDSILO_CHECK(f.write_f32("params", params, {static_cast<int64_t>(params.size())}));
    FEDSILO_CHECK(f.write_strings("param_names", names));
    FEDSILO_CHECK(f.write_i64("param_offsets", offsets, {n}));
    FEDSILO_CHECK(f.write_i64("param_sizes", sizes, {n}));
    FEDSILO_CHECK(f.write_i64("param_ranks", ranks, {n}));
    FEDSILO_CHECK(f.write_i64("param_shapes", shapes, {n, static_cast<int64_t>(width)}));
    FEDSILO_CHECK(f.write_i64("model_hidden", hidden, {static_cast<int64_t>(hidden.size())}));
    if (extra != nullptr) {
      for (const auto& [name, vec] : *extra) {
        FEDSILO_CHECK(f.write_f32(name, *vec, {static_cast<int64_t>(vec->size())}));
      }
    }
    FEDSILO_CHECK(f.write_attr_str("", "format", "fedsilo-model"));
    FEDSILO_CHECK(f.write_attr_i64("", "version", kModelFileVersion));
    FEDSILO_CHECK(f.write_attr_str("", "kind", meta.kind));
    FEDSILO_CHECK(f.write_attr_str("", "arch", spec.arch));
    FEDSILO_CHECK(f.write_attr_i64("", "in_channels", spec.input_chw[0]));
    FEDSILO_CHECK(f.write_attr_i64("", "in_height", spec.input_chw[1]));
    FEDSILO_CHECK(f.write_attr_i64("", "in_width", spec.input_chw[2]));
    FEDSILO_CHECK(f.write_attr_i64("", "num_classes", spec.num_classes));
    FEDSILO_CHECK(f.write_attr_i64("", "num_params", static_cast<int64_t>(params.size())));
    FEDSILO_CHECK(f.write_attr_i64("", "round", meta.round));
    FEDSILO_CHECK(f.write_attr_str("", "config_hash", meta.config_hash));
    FEDSILO_CHECK(f.write_attr_str("", "reducer", meta.reducer));
    FEDSILO_CHECK(f.write_attr_str("", "fedsilo_version", FEDSILO_VERSION));
    return {};
  });
}

Result<LoadedModel> read_model_file(const std::string& path) {
  FEDSILO_ASSIGN_OR_RETURN(h5::File f, h5::File::open_read(path));
  auto fmt = f.read_attr_str("", "format");
  if (!fmt.ok() || fmt.value() != "fedsilo-model") {
    return corrupt_data(path + ": not a fedsilo model or checkpoint file (attribute 'format')");
  }
  FEDSILO_ASSIGN_OR_RETURN(int64_t version, f.read_attr_i64("", "version"));
  if (version != kModelFileVersion) {
    return corrupt_data(path + ": model file version " + std::to_string(version) +
                        " is not supported (expected " + std::to_string(kModelFileVersion) + ")");
  }
  LoadedModel out;
  FEDSILO_ASSIGN_OR_RETURN(out.meta.kind, f.read_attr_str("", "kind"));
  FEDSILO_ASSIGN_OR_RETURN(out.meta.round, f.read_attr_i64("", "round"));
  FEDSILO_ASSIGN_OR_RETURN(out.meta.config_hash, f.read_attr_str("", "config_hash"));
  FEDSILO_ASSIGN_OR_RETURN(out.meta.reducer, f.read_attr_str("", "reducer"));
  FEDSILO_ASSIGN_OR_RETURN(out.spec.arch, f.read_attr_str("", "arch"));
  FEDSILO_ASSIGN_OR_RETURN(int64_t c, f.read_attr_i64("", "in_channels"));
  FEDSILO_ASSIGN_OR_RETURN(int64_t h, f.read_attr_i64("", "in_height"));
  FEDSILO_ASSIGN_OR_RETURN(int64_t w, f.read_attr_i64("", "in_width"));
  FEDSILO_ASSIGN_OR_RETURN(int64_t k, f.read_attr_i64("", "num_classes"));
  FEDSILO_ASSIGN_OR_RETURN(int64_t num_params, f.read_attr_i64("", "num_params"));
  out.spec.input_chw = {static_cast<int>(c), static_cast<int>(h), static_cast<int>(w)};
  out.spec.num_classes = static_cast<int>(k);
  FEDSILO_ASSIGN_OR_RETURN(std::vector<int64_t> hidden, f.read_i64("model_hidden"));
  for (int64_t x : hidden) out.spec.hidden.push_back(static_cast<int>(x));
  FEDSILO_ASSIGN_OR_RETURN(out.params, f.read_f32("params"));
  if (static_cast<int64_t>(out.params.size()) != num_params) {
    return corrupt_data(path + ": dataset 'params' has " + std::to_string(out.params.size()) +
                        " values, attribute num_params says " + std::to_string(num_params));
  }
  // The tensor table (names, offsets, sizes, shapes of up to the dataset's width of dims).
  FEDSILO_ASSIGN_OR_RETURN(std::vector<std::string> names, f.read_strings("param_names"));
  FEDSILO_ASSIGN_OR_RETURN(std::vector<int64_t> offsets, f.read_i64("param_offsets"));
  FEDSILO_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, f.read_i64("param_sizes"));
  FEDSILO_ASSIGN_OR_RETURN(std::vector<int64_t> ranks, f.read_i64("param_ranks"));
  FEDSILO_ASSIGN_OR_RETURN(std::vector<int64_t> shapes, f.read_i64("param_shapes"));
  const size_t n = names.size();
  const size_t width = n == 0 ? 4 : shapes.size() / n;
  if (offsets.size() != n || sizes.size() != n || ranks.size() != n || shapes.size() != n * width) {
    return corrupt_data(path + ": the tensor table (param_names, param_offsets, param_sizes, "
                        "param_ranks, param_shapes) has inconsistent lengths");
  }
  for (size_t i = 0; i < n; ++i) {
    model::ParamInfo p{names[i], {}, offsets[i], sizes[i]};
    if (ranks[i] < 0 || static_cast<size_t>(ranks[i]) > width || p.offset < 0 || p.size < 0 ||
        p.offset + p.size > num_params) {
      return corrupt_data(path + ": tensor '" + names[i] + "' lies outside 'params' or has a bad rank");
    }
    for (int64_t d = 0; d < ranks[i]; ++d) p.shape.push_back(shapes[i * width + static_cast<size_t>(d)]);
    out.table.push_back(std::move(p));
  }
  for (size_t i = 0; i < out.params.size(); ++i) {
    if (!std::isfinite(out.params[i])) {
      return corrupt_data(path + ": params[" + std::to_string(i) + "] is not finite");
    }
  }
  return out;
}

}  // namespace fedsilo::checkpoint
