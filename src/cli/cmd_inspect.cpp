// `fedsilo inspect FILE.h5`: a summary of a model, checkpoint, silo state or silo data file.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "checkpoint/model_file.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "core/h5.h"
#include "data/dataset.h"
#include "model/model.h"

namespace fedsilo::cli {

static Status inspect_model(const std::string& path) {
  FEDSILO_ASSIGN_OR_RETURN(checkpoint::LoadedModel m, checkpoint::read_model_file(path));
  // A built-in architecture must rebuild (so `eval` can run it); a PyTorch model's layout is
  // its tensor table.
  if (m.spec.arch != "pytorch") FEDSILO_CHECK(model::Model::build(m.spec).status());
  double sq = 0.0;
  for (float v : m.params) sq += static_cast<double>(v) * v;
  std::printf("%s: fedsilo %s\n", path.c_str(), m.meta.kind.c_str());
  std::printf("  arch         %s", m.spec.arch.c_str());
  if (!m.spec.hidden.empty()) {
    std::printf(" hidden [");
    for (size_t i = 0; i < m.spec.hidden.size(); ++i) std::printf("%s%d", i ? ", " : "", m.spec.hidden[i]);
    std::printf("]");
  }
  std::printf("\n  input        %dx%dx%d, %d classes\n", m.spec.input_chw[0], m.spec.input_chw[1],
              m.spec.input_chw[2], m.spec.num_classes);
  std::printf("  round        %lld\n", static_cast<long long>(m.meta.round));
  std::printf("  parameters   %zu (L2 norm %.6g)\n", m.params.size(), std::sqrt(sq));
  std::printf("  config hash  %s\n  reducer      %s\n", m.meta.config_hash.c_str(), m.meta.reducer.c_str());
  std::printf("  %-16s %-16s %10s %10s\n", "tensor", "shape", "offset", "size");
  for (const auto& p : m.table) {
    std::string shape;
    for (size_t i = 0; i < p.shape.size(); ++i) shape += (i ? "x" : "") + std::to_string(p.shape[i]);
    std::printf("  %-16s %-16s %10lld %10lld\n", p.name.c_str(), shape.c_str(),
                static_cast<long long>(p.offset), static_cast<long long>(p.size));
  }
  return {};
}

static Status inspect_dataset(const std::string& path) {
  FEDSILO_ASSIGN_OR_RETURN(data::Dataset ds, data::read_dataset(path));
  std::vector<int64_t> counts(static_cast<size_t>(ds.num_classes), 0);
  for (int32_t y : ds.y) ++counts[static_cast<size_t>(y)];
  const auto [mn, mx] = std::minmax_element(ds.x.begin(), ds.x.end());
  std::printf("%s: fedsilo data set '%s'%s\n", path.c_str(), ds.name.c_str(),
              ds.silo >= 0 ? (" (silo " + std::to_string(ds.silo) + ")").c_str() : " (global)");
  std::printf("  samples      %lld\n", static_cast<long long>(ds.size()));
  std::printf("  sample shape %dx%dx%d (NCHW), x in [%g, %g]\n", ds.chw[0], ds.chw[1], ds.chw[2],
              static_cast<double>(*mn), static_cast<double>(*mx));
  std::printf("  classes      %d\n  per class   ", ds.num_classes);
  for (int64_t c : counts) std::printf(" %lld", static_cast<long long>(c));
  std::printf("\n");
  return {};
}

// A silo's private state (RUN/private/silo-XX/ckpt-RRRRRR.h5): what a checkpoint keeps of the
// silo besides the global model (error-feedback residual, DGC velocity).
static Status inspect_silo_state(const std::string& path, const h5::File& f) {
  FEDSILO_ASSIGN_OR_RETURN(const int64_t round, f.read_attr_i64("", "round"));
  FEDSILO_ASSIGN_OR_RETURN(const int64_t silo, f.read_attr_i64("", "silo"));
  FEDSILO_ASSIGN_OR_RETURN(const std::string hash, f.read_attr_str("", "config_hash"));
  std::printf("%s: fedsilo silo state (private to silo %lld)\n", path.c_str(), static_cast<long long>(silo));
  std::printf("  round        %lld\n  config hash  %s\n", static_cast<long long>(round), hash.c_str());
  const auto names = f.list_datasets();
  if (names.empty()) std::printf("  state        none (no compression state in this run)\n");
  for (const auto& name : names) {
    FEDSILO_ASSIGN_OR_RETURN(std::vector<float> v, f.read_f32(name));
    double sq = 0.0, max_abs = 0.0;
    int64_t nonzero = 0;
    for (float x : v) {
      sq += static_cast<double>(x) * x;
      max_abs = std::max(max_abs, static_cast<double>(std::fabs(x)));
      nonzero += x != 0.0f;
    }
    std::printf("  %-12s %zu values, %lld non-zero, L2 norm %.6g, max |x| %.6g\n", name.c_str(), v.size(),
                static_cast<long long>(nonzero), std::sqrt(sq), max_abs);
  }
  return {};
}

static Status inspect(const std::string& path) {
  FEDSILO_ASSIGN_OR_RETURN(h5::File f, h5::File::open_read(path));
  auto fmt = f.read_attr_str("", "format");
  if (fmt.ok() && fmt.value() == "fedsilo-model") return inspect_model(path);
  // Files of older runs lack the format attribute; their attributes say what they are.
  const bool silo_state = (fmt.ok() && fmt.value() == "fedsilo-silo-state") ||
                          (f.read_attr_i64("", "round").ok() && f.read_attr_i64("", "silo").ok() &&
                           f.read_attr_str("", "config_hash").ok());
  if (silo_state) return inspect_silo_state(path, f);
  if (f.has("x") && f.has("y")) return inspect_dataset(path);
  std::printf("%s: not a fedsilo file; datasets:\n", path.c_str());
  for (const auto& d : f.list_datasets()) std::printf("  %s\n", d.c_str());
  return {};
}

int run_inspect(const InspectArgs& args) {
  const Status st = inspect(args.file);
  if (!st.ok()) std::fprintf(stderr, "fedsilo inspect: error: %s\n", st.message().c_str());
  return exit_code_for(st);
}

}  // namespace fedsilo::cli
