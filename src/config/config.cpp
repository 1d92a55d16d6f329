// TOML config parsing (toml++), validation and canonical form. Exceptions from toml++ stop here
// and become Status.
#include "config/config.h"
#include "fl/transform.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <regex>
#include <sstream>
#include <toml++/toml.h>

#include "core/fs.h"

namespace fedsilo::config {
namespace {

// One allowed key: how to read it from a toml node into the Config, and how to write its value
// back as TOML text.
struct KeySpec {
  const char* table;
  const char* key;
  std::function<Status(const toml::node&, Config&, const std::string& where)> read;
  std::function<std::string(const Config&)> write;
};

Status type_error(const std::string& where, const char* expected, const toml::node& n) {
  std::ostringstream os;
  os << where << ": expected " << expected << ", got " << n.type();
  return invalid_argument(os.str());
}

template <typename T>
Status read_int(const toml::node& n, T& out, const std::string& where) {
  const auto* v = n.as_integer();
  if (v == nullptr) return type_error(where, "an integer", n);
  const int64_t x = v->get();
  if (x < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
      (x > 0 && static_cast<uint64_t>(x) > static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
    return invalid_argument(where + ": " + std::to_string(x) + " is out of range");
  }
  out = static_cast<T>(x);
  return {};
}

Status read_double(const toml::node& n, double& out, const std::string& where) {
  if (const auto* f = n.as_floating_point()) {
    out = f->get();
    return {};
  }
  if (const auto* i = n.as_integer()) {
    out = static_cast<double>(i->get());
    return {};
  }
  return type_error(where, "a number", n);
}

Status read_string(const toml::node& n, std::string& out, const std::string& where) {
  const auto* s = n.as_string();
  if (s == nullptr) return type_error(where, "a string", n);
  out = s->get();
  return {};
}

Status read_bool(const toml::node& n, bool& out, const std::string& where) {
  const auto* b = n.as_boolean();
  if (b == nullptr) return type_error(where, "a boolean", n);
  out = b->get();
  return {};
}

// Each choice-valued setting's values and their TOML strings, in the order messages list them.
template <typename E>
struct Choices;
template <>
struct Choices<Arch> {
  static constexpr std::pair<Arch, const char*> kAll[] = {
      {Arch::kLogreg, "logreg"}, {Arch::kMlp, "mlp"}, {Arch::kNiidCnn, "niid-cnn"},
      {Arch::kPytorch, "pytorch"}};
};
template <>
struct Choices<StrategyName> {
  static constexpr std::pair<StrategyName, const char*> kAll[] = {
      {StrategyName::kFedAvg, "fedavg"},         {StrategyName::kFedProx, "fedprox"},
      {StrategyName::kFedAvgM, "fedavgm"},       {StrategyName::kFedAdagrad, "fedadagrad"},
      {StrategyName::kFedAdam, "fedadam"},       {StrategyName::kFedYogi, "fedyogi"},
      {StrategyName::kScaffold, "scaffold"},     {StrategyName::kFedNova, "fednova"}};
};
// Compression's names are its own (compression::method_name, value_type_name).
template <>
struct Choices<compression::Method> {
  using M = compression::Method;
  static inline const std::pair<M, const char*> kAll[] = {
      {M::kNone, compression::method_name(M::kNone)},
      {M::kTopk, compression::method_name(M::kTopk)},
      {M::kTopkSampled, compression::method_name(M::kTopkSampled)},
      {M::kRandk, compression::method_name(M::kRandk)},
      {M::kTopkPrevious, compression::method_name(M::kTopkPrevious)}};
};
template <>
struct Choices<kernels::ValueType> {
  using V = kernels::ValueType;
  static inline const std::pair<V, const char*> kAll[] = {
      {V::kFp32, compression::value_type_name(V::kFp32)},
      {V::kFp16, compression::value_type_name(V::kFp16)},
      {V::kBf16, compression::value_type_name(V::kBf16)},
      {V::kInt8, compression::value_type_name(V::kInt8)}};
};
template <>
struct Choices<CompressionLevel> {
  static constexpr std::pair<CompressionLevel, const char*> kAll[] = {
      {CompressionLevel::kSilo, "silo"}, {CompressionLevel::kNode, "node"}};
};
template <>
struct Choices<Algorithm> {
  static constexpr std::pair<Algorithm, const char*> kAll[] = {
      {Algorithm::kAuto, "auto"},
      {Algorithm::kDenseFlat, "dense-flat"},
      {Algorithm::kDenseHier, "dense-hier"},
      {Algorithm::kSparseAllgather, "sparse-allgather"},
      {Algorithm::kSparseRd, "sparse-rd"},
      {Algorithm::kSparseHier, "sparse-hier"}};
};
template <>
struct Choices<DeviceKind> {
  static constexpr std::pair<DeviceKind, const char*> kAll[] = {
      {DeviceKind::kCpu, "cpu"}, {DeviceKind::kCuda, "cuda"}, {DeviceKind::kAuto, "auto"}};
};
template <>
struct Choices<DeviceReduce> {
  static constexpr std::pair<DeviceReduce, const char*> kAll[] = {
      {DeviceReduce::kAuto, "auto"}, {DeviceReduce::kNccl, "nccl"}, {DeviceReduce::kHost, "host"}};
};

template <>
struct Choices<PrivacyLevel> {
  static constexpr std::pair<PrivacyLevel, const char*> kAll[] = {{PrivacyLevel::kNone, "none"},
                                                                  {PrivacyLevel::kSample, "sample"}};
};
template <>
struct Choices<DpAccountant> {
  static constexpr std::pair<DpAccountant, const char*> kAll[] = {{DpAccountant::kRdp, "rdp"},
                                                                  {DpAccountant::kPld, "pld"}};
};

template <>
struct Choices<DpSampler> {
  static constexpr std::pair<DpSampler, const char*> kAll[] = {{DpSampler::kZiggurat, "ziggurat"},
                                                               {DpSampler::kDiscrete, "discrete"}};
};

template <typename E>
const char* choice_name(E v) {
  for (const auto& [value, text] : Choices<E>::kAll) {
    if (value == v) return text;
  }
  return "?";
}

template <typename E>
Result<E> find_choice(std::string_view text, const std::string& where) {
  std::string expected;
  for (const auto& [value, name] : Choices<E>::kAll) {
    if (text == name) return value;
    expected += (expected.empty() ? "" : ", ") + std::string(name);
  }
  return invalid_argument(where + ": unknown value '" + std::string(text) + "' (expected " +
                          expected + ")");
}

template <typename E>
Status read_choice(const toml::node& n, E& out, const std::string& where) {
  std::string text;
  FEDSILO_CHECK(read_string(n, text, where));
  FEDSILO_ASSIGN_OR_RETURN(out, find_choice<E>(text, where));
  return {};
}

Status read_int_list(const toml::node& n, std::vector<int>& out, const std::string& where) {
  const auto* a = n.as_array();
  if (a == nullptr) return type_error(where, "an array of integers", n);
  out.clear();
  for (size_t i = 0; i < a->size(); ++i) {
    int v = 0;
    FEDSILO_CHECK(read_int((*a)[i], v, where + "[" + std::to_string(i) + "]"));
    out.push_back(v);
  }
  return {};
}

template <typename T>
std::string int_text(T v) {
  return std::to_string(v);
}

// The shortest text that parses back to the same double (0.9, not 0.90000000000000002), as a
// TOML float (always with a '.' or an exponent).
std::string double_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, ec == std::errc() ? end : buf);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string string_text(const std::string& v) {
  std::ostringstream os;
  os << toml::value<std::string>(v);
  return os.str();
}

std::string int_list_text(const std::vector<int>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

#define FEDSILO_KEY_INT(tbl, k, field)                                                      \
  KeySpec{tbl, #k,                                                                          \
          [](const toml::node& n, Config& c, const std::string& w) { return read_int(n, c.field, w); }, \
          [](const Config& c) { return int_text(c.field); }}
#define FEDSILO_KEY_DBL(tbl, k, field)                                                         \
  KeySpec{tbl, #k,                                                                             \
          [](const toml::node& n, Config& c, const std::string& w) { return read_double(n, c.field, w); }, \
          [](const Config& c) { return double_text(c.field); }}
#define FEDSILO_KEY_CHOICE(tbl, k, field)                                                       \
  KeySpec{tbl, #k,                                                                             \
          [](const toml::node& n, Config& c, const std::string& w) { return read_choice(n, c.field, w); }, \
          [](const Config& c) { return string_text(choice_name(c.field)); }}
#define FEDSILO_KEY_STR(tbl, k, field)                                                         \
  KeySpec{tbl, #k,                                                                             \
          [](const toml::node& n, Config& c, const std::string& w) { return read_string(n, c.field, w); }, \
          [](const Config& c) { return string_text(c.field); }}

// In the order of the canonical text.
const std::vector<KeySpec>& key_specs() {
  static const std::vector<KeySpec> specs = {
      FEDSILO_KEY_STR("run", name, run.name),
      FEDSILO_KEY_INT("run", seed, run.seed),
      FEDSILO_KEY_INT("run", rounds, run.rounds),
      FEDSILO_KEY_STR("run", out_dir, run.out_dir),
      FEDSILO_KEY_INT("run", checkpoint_every, run.checkpoint_every),
      FEDSILO_KEY_INT("run", keep_checkpoints, run.keep_checkpoints),
      FEDSILO_KEY_STR("run", command, run.command),
      FEDSILO_KEY_STR("data", silos_dir, data.silos_dir),
      FEDSILO_KEY_STR("data", test_file, data.test_file),
      FEDSILO_KEY_CHOICE("model", arch, model.arch),
      KeySpec{"model", "hidden",
              [](const toml::node& n, Config& c, const std::string& w) {
                return read_int_list(n, c.model.hidden, w);
              },
              [](const Config& c) { return int_list_text(c.model.hidden); }},
      FEDSILO_KEY_INT("local", epochs, local.epochs),
      FEDSILO_KEY_INT("local", batch_size, local.batch_size),
      FEDSILO_KEY_DBL("local", lr, local.lr),
      FEDSILO_KEY_DBL("local", momentum, local.momentum),
      FEDSILO_KEY_DBL("local", weight_decay, local.weight_decay),
      FEDSILO_KEY_INT("local", threads, local.threads),
      FEDSILO_KEY_CHOICE("strategy", name, strategy.name),
      FEDSILO_KEY_DBL("strategy", mu, strategy.mu),
      FEDSILO_KEY_DBL("strategy", fraction, strategy.fraction),
      FEDSILO_KEY_DBL("strategy", server_lr, strategy.server_lr),
      FEDSILO_KEY_DBL("strategy", server_momentum, strategy.server_momentum),
      FEDSILO_KEY_DBL("strategy", beta1, strategy.beta1),
      FEDSILO_KEY_DBL("strategy", beta2, strategy.beta2),
      FEDSILO_KEY_DBL("strategy", tau, strategy.tau),
      FEDSILO_KEY_INT("eval", every, eval.every),
      FEDSILO_KEY_INT("eval", batch_size, eval.batch_size),
      KeySpec{"secure_aggregation", "enabled",
              [](const toml::node& n, Config& c, const std::string& w) {
                return read_bool(n, c.secure_aggregation.enabled, w);
              },
              [](const Config& c) { return std::string(c.secure_aggregation.enabled ? "true" : "false"); }},
      FEDSILO_KEY_DBL("secure_aggregation", range, secure_aggregation.range),
      FEDSILO_KEY_INT("secure_aggregation", bits, secure_aggregation.bits),
      FEDSILO_KEY_DBL("secure_aggregation", max_weight, secure_aggregation.max_weight),
      FEDSILO_KEY_CHOICE("privacy", level, privacy.level),
      FEDSILO_KEY_DBL("privacy", noise_multiplier, privacy.noise_multiplier),
      FEDSILO_KEY_DBL("privacy", target_epsilon, privacy.target_epsilon),
      FEDSILO_KEY_DBL("privacy", clip, privacy.clip),
      FEDSILO_KEY_DBL("privacy", delta, privacy.delta),
      FEDSILO_KEY_CHOICE("privacy", accountant, privacy.accountant),
      FEDSILO_KEY_DBL("privacy", max_epsilon, privacy.max_epsilon),
      FEDSILO_KEY_CHOICE("privacy", sampler, privacy.sampler),
      FEDSILO_KEY_CHOICE("compression", method, compression.method),
      FEDSILO_KEY_DBL("compression", density, compression.density),
      FEDSILO_KEY_CHOICE("compression", value_type, compression.value_type),
      KeySpec{"compression", "error_feedback",
              [](const toml::node& n, Config& c, const std::string& w) {
                return read_bool(n, c.compression.error_feedback, w);
              },
              [](const Config& c) { return std::string(c.compression.error_feedback ? "true" : "false"); }},
      FEDSILO_KEY_DBL("compression", momentum_correction, compression.momentum_correction),
      FEDSILO_KEY_CHOICE("compression", level, compression.level),
      FEDSILO_KEY_CHOICE("allreduce", algorithm, allreduce.algorithm),
      FEDSILO_KEY_DBL("allreduce", link_gbps, allreduce.link_gbps),
      FEDSILO_KEY_DBL("allreduce", link_latency_us, allreduce.link_latency_us),
      FEDSILO_KEY_INT("topology", emulated_nodes, topology.emulated_nodes),
      FEDSILO_KEY_STR("slurm", partition, slurm.partition),
      FEDSILO_KEY_STR("slurm", account, slurm.account),
      FEDSILO_KEY_STR("slurm", time, slurm.time),
      FEDSILO_KEY_INT("slurm", nodes, slurm.nodes),
      FEDSILO_KEY_INT("slurm", ranks_per_node, slurm.ranks_per_node),
      FEDSILO_KEY_STR("slurm", manifest, slurm.manifest),
      FEDSILO_KEY_INT("slurm", signal_seconds, slurm.signal_seconds),
      FEDSILO_KEY_STR("slurm", output, slurm.output),
      FEDSILO_KEY_STR("slurm", mpi, slurm.mpi),
      FEDSILO_KEY_INT("slurm", cpus_per_task, slurm.cpus_per_task),
      FEDSILO_KEY_STR("slurm", mem_per_task, slurm.mem_per_task),
      FEDSILO_KEY_CHOICE("device", kind, device.kind),
      FEDSILO_KEY_CHOICE("device", reduce, device.reduce),
  };
  return specs;
}

#undef FEDSILO_KEY_INT
#undef FEDSILO_KEY_DBL
#undef FEDSILO_KEY_STR
#undef FEDSILO_KEY_CHOICE

// Every key with its value text, in canonical order; with `effective_only`, the keys without
// effect under the other settings are left out.
std::vector<std::pair<std::string, std::string>> key_texts(const Config& c, bool effective_only) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& s : key_specs()) {
    const std::string key = std::string(s.table) + "." + s.key;
    if (effective_only && without_effect(c, key)) continue;
    out.emplace_back(key, s.write(c));
  }
  return out;
}

std::string node_text(const toml::node& n) {
  std::ostringstream os;
  n.visit([&](auto&& v) { os << v; });
  return os.str();
}

std::string fnv1a_hex(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

Result<Config> parse_config(const std::string& text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << source << ":" << e.source().begin.line << ":" << e.source().begin.column
       << ": TOML syntax error: " << e.description();
    return invalid_argument(os.str());
  }

  Config cfg;
  const auto& specs = key_specs();
  for (auto&& [table_key, table_node] : root) {
    const std::string table(table_key.str());
    bool known_table = false;
    for (const auto& s : specs) known_table = known_table || table == s.table;
    if (!known_table) {
      return invalid_argument(source + ": unknown config table or key '" + table +
                              "' (known tables: run, data, model, local, strategy, eval, secure_aggregation, privacy, compression, allreduce, "
                              "topology, slurm, device)");
    }
    const auto* tbl = table_node.as_table();
    if (tbl == nullptr) {
      return invalid_argument(source + ": '" + table + "' must be a table ([" + table + "])");
    }
    for (auto&& [key, node] : *tbl) {
      const std::string name(key.str());
      const KeySpec* spec = nullptr;
      for (const auto& s : specs) {
        if (table == s.table && name == s.key) spec = &s;
      }
      const std::string where = source + ": " + table + "." + name;
      if (spec == nullptr) {
        std::string known;
        for (const auto& s : specs) {
          if (table == s.table) known += (known.empty() ? "" : ", ") + std::string(s.key);
        }
        return invalid_argument(where + ": unknown config key (known in [" + table + "]: " +
                                known + ")");
      }
      FEDSILO_CHECK(spec->read(node, cfg, where));
      cfg.written.insert(table + "." + name);
    }
  }
  if (cfg.run.out_dir.empty()) cfg.run.out_dir = "runs/" + cfg.run.name;
  if (cfg.data.test_file.empty() && !cfg.data.silos_dir.empty()) {
    cfg.data.test_file = cfg.data.silos_dir + "/test.h5";
  }
  FEDSILO_CHECK(validate(cfg, source));
  return cfg;
}

Result<Config> load_config(const std::string& path) {
  FEDSILO_ASSIGN_OR_RETURN(std::string text, fs::read_text(path));
  return parse_config(text, path);
}

namespace {

// One validator per section: each checks its own values (a choice's value was checked when it
// was read) and returns kInvalidArgument "table.key: why"; validate() adds the file.
Status bad(const std::string& key, const std::string& why) { return invalid_argument(key + ": " + why); }

// run.command goes into the job script as `srun ... <command> "$CONFIG" &`: it must be one
// simple command (words, quotes, $VARIABLES) on one line, or part of it would run outside srun,
// once, in the batch shell, or break the script.
Status validate_command(const std::string& c) {
  const std::string example =
      " (e.g. run.command = \"/usr/bin/python3 train.py\"; the job appends the config's path)";
  if (c.find_first_not_of(" \t") == std::string::npos) {
    return bad("run.command", "is blank: name the program every rank runs" + example +
                                  ", or remove the key for `fedsilo train`");
  }
  for (const char ch : c) {
    if ((static_cast<unsigned char>(ch) < 0x20 && ch != '\t') || ch == 0x7f) {
      return bad("run.command", "must be one line without control characters" + example);
    }
  }
  char quote = 0;  // the open quote, 0 outside quotes
  for (size_t i = 0; i < c.size(); ++i) {
    const char ch = c[i];
    if (quote == '\'') {
      if (ch == '\'') quote = 0;
      continue;
    }
    if (ch == '\\') {
      ++i;  // the next character is literal
      continue;
    }
    if (quote == '"') {
      if (ch == '"') quote = 0;
      if (ch == '`') {
        return bad("run.command",
                   "'`' would run a command in the batch shell; use $VARIABLES or a script");
      }
      continue;
    }
    if (ch == '\'' || ch == '"') {
      quote = ch;
    } else if (std::string_view(";&|<>()`").find(ch) != std::string_view::npos) {
      return bad("run.command", std::string("'") + ch +
                                    "' outside quotes: it must be one command that srun starts on "
                                    "every rank (put a pipeline, redirections or several commands "
                                    "in a script)" + example);
    }
  }
  if (quote != 0) return bad("run.command", std::string("has an unterminated ") + quote + " quote");
  return {};
}

Status validate_run(const RunSection& r) {
  if (r.name.empty()) return bad("run.name", "must not be empty");
  if (r.rounds < 1) return bad("run.rounds", "must be >= 1, got " + std::to_string(r.rounds));
  if (r.checkpoint_every < 1) return bad("run.checkpoint_every", "must be >= 1");
  if (r.keep_checkpoints < 1) return bad("run.keep_checkpoints", "must be >= 1");
  if (!r.command.empty()) FEDSILO_CHECK(validate_command(r.command));
  return {};
}

Status validate_data(const DataSection& d) {
  if (d.silos_dir.empty()) return bad("data.silos_dir", "is required (a directory from `fedsilo partition`)");
  return {};
}

Status validate_model(const ModelSection& m) {
  if (m.arch == Arch::kMlp && m.hidden.empty()) {
    return bad("model.hidden", "mlp needs hidden sizes, e.g. hidden = [200, 200]");
  }
  for (int h : m.hidden) {
    if (h < 1) return bad("model.hidden", "sizes must be >= 1, got " + std::to_string(h));
  }
  return {};
}

Status validate_local(const LocalSection& l) {
  if (l.epochs < 1) return bad("local.epochs", "must be >= 1");
  if (l.batch_size < 1) return bad("local.batch_size", "must be >= 1");
  if (!(l.lr > 0.0) || !std::isfinite(l.lr)) return bad("local.lr", "must be > 0, got " + std::to_string(l.lr));
  if (!(l.momentum >= 0.0 && l.momentum < 1.0)) return bad("local.momentum", "must be in [0, 1)");
  if (!(l.weight_decay >= 0.0) || !std::isfinite(l.weight_decay)) return bad("local.weight_decay", "must be >= 0");
  if (l.threads < 0) return bad("local.threads", "must be >= 0 (0 = automatic)");
  return {};
}

Status validate_strategy(const StrategySection& s) {
  if (!(s.mu >= 0.0) || !std::isfinite(s.mu)) return bad("strategy.mu", "must be >= 0");
  if (!(s.fraction > 0.0 && s.fraction <= 1.0)) {
    return bad("strategy.fraction", "must be in (0, 1], got " + std::to_string(s.fraction));
  }
  if (server_optimizer(s.name)) {
    if (!(s.server_lr > 0.0) || !std::isfinite(s.server_lr)) {
      return bad("strategy.server_lr", std::string("must be > 0 with strategy.name = \"") + name(s.name) +
                                           "\" (the server's step size), got " + double_text(s.server_lr));
    }
    const auto unit = [&](const char* key, double v) -> Status {
      if (v >= 0.0 && v < 1.0) return {};
      return bad(std::string("strategy.") + key, "must be in [0, 1), got " + double_text(v));
    };
    FEDSILO_CHECK(unit("server_momentum", s.server_momentum));
    FEDSILO_CHECK(unit("beta1", s.beta1));
    FEDSILO_CHECK(unit("beta2", s.beta2));
    if (!(s.tau > 0.0) || !std::isfinite(s.tau)) {
      return bad("strategy.tau", "must be > 0 (it bounds the adaptive step), got " + double_text(s.tau));
    }
  }
  return {};
}

Status validate_eval(const EvalSection& e) {
  if (e.every < 1) return bad("eval.every", "must be >= 1");
  if (e.batch_size < 1) return bad("eval.batch_size", "must be >= 1");
  return {};
}

// The compressor's own validator (compression::validate), plus the level.
Status validate_compression(const CompressionSection& z) {
  FEDSILO_CHECK(compression::validate(compression_config(z)));
  if (z.level == CompressionLevel::kNode && z.method == compression::Method::kNone) {
    return bad("compression.level", "\"node\" needs a compression.method other than \"none\"");
  }
  return {};
}

Status validate_allreduce(const AllreduceSection& a) {
  if (!(a.link_gbps >= 0.0)) return bad("allreduce.link_gbps", "must be >= 0 (0 = measure)");
  if (!(a.link_latency_us >= 0.0)) return bad("allreduce.link_latency_us", "must be >= 0");
  return {};
}

Status validate_secure_aggregation(const SecureAggregationSection& s) {
  if (!s.enabled) return {};
  if (!(s.range > 0.0) || !std::isfinite(s.range)) {
    return bad("secure_aggregation.range", "must be > 0, got " + std::to_string(s.range));
  }
  if (s.bits < 1 || s.bits > 30) {
    return bad("secure_aggregation.bits", "must be in [1, 30], got " + std::to_string(s.bits));
  }
  if (!(s.max_weight > 0.0) || !std::isfinite(s.max_weight)) {
    return bad("secure_aggregation.max_weight",
               "is required with secure_aggregation.enabled = true: at least the largest silo's "
               "training-set size (a silo's weight is its sample count / max_weight, at most 1)");
  }
  return {};
}

Status validate_privacy(const PrivacySection& p, const std::set<std::string>& written) {
  if (p.level == PrivacyLevel::kNone) return {};
  const bool noise = written.count("privacy.noise_multiplier") > 0;
  const bool target = written.count("privacy.target_epsilon") > 0;
  if (noise && !(p.noise_multiplier > 0.0 && std::isfinite(p.noise_multiplier))) {
    return bad("privacy.noise_multiplier", "must be > 0, got " + double_text(p.noise_multiplier));
  }
  if (target && !(p.target_epsilon > 0.0 && std::isfinite(p.target_epsilon))) {
    return bad("privacy.target_epsilon", "must be > 0, got " + double_text(p.target_epsilon));
  }
  if (noise == target) {
    return bad("privacy.level", std::string("\"sample\" needs exactly one of privacy.noise_multiplier "
                                            "(the noise) and privacy.target_epsilon (the noise from "
                                            "the accountant), ") + (noise ? "not both" : "got neither"));
  }
  if (!(p.clip > 0.0 && std::isfinite(p.clip))) {
    return bad("privacy.clip", "must be > 0 (the per-example gradient norm bound), got " + double_text(p.clip));
  }
  if (!(p.delta > 0.0 && p.delta < 1.0)) {
    return bad("privacy.delta", "must be in (0, 1), got " + double_text(p.delta));
  }
  if (!(p.max_epsilon >= 0.0 && std::isfinite(p.max_epsilon))) {
    return bad("privacy.max_epsilon", "must be >= 0 (0: no budget), got " + double_text(p.max_epsilon));
  }
  if (target && p.max_epsilon > 0.0 && p.target_epsilon > p.max_epsilon) {
    return bad("privacy.target_epsilon", double_text(p.target_epsilon) + " is above privacy.max_epsilon = " +
                                             double_text(p.max_epsilon) + ": the run would stop before its last round");
  }
  return {};
}

Status validate_topology(const TopologySection& t) {
  if (t.emulated_nodes < 0) return bad("topology.emulated_nodes", "must be >= 0 (0 = real nodes)");
  return {};
}

Status validate_slurm(const SlurmSection& s) {
  auto limit = slurm_time_seconds(s.time);
  if (!limit.ok()) return bad("slurm.time", limit.status().message());
  if (s.nodes < 0) return bad("slurm.nodes", "must be >= 0 (0 = silos / ranks_per_node, or 1)");
  if (s.ranks_per_node < 0) {
    return bad("slurm.ranks_per_node", "must be >= 0 (0 = silos / nodes, all on one node when both are 0)");
  }
  if (s.signal_seconds < 1 || s.signal_seconds > 65535) {
    return bad("slurm.signal_seconds", "must be in [1, 65535], got " + std::to_string(s.signal_seconds));
  }
  if (s.signal_seconds >= limit.value()) {
    return bad("slurm.signal_seconds", std::to_string(s.signal_seconds) +
                                           " s must be below the time limit slurm.time = \"" + s.time + "\"");
  }
  const std::pair<const std::string*, const char*> text_keys[] = {
      {&s.partition, "slurm.partition"}, {&s.account, "slurm.account"},
      {&s.manifest, "slurm.manifest"}, {&s.output, "slurm.output"}};
  for (const auto& [v, key] : text_keys) {
    if (v->find_first_of(" \t\n'\"$`\\") != std::string::npos) {
      return bad(key, "must not contain blanks, quotes, '$', '`' or '\\' (it goes into #SBATCH lines)");
    }
  }
  if (s.mpi.empty() || s.mpi.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos) {
    return bad("slurm.mpi", "'" + s.mpi + "' is not an srun --mpi plugin name (e.g. pmix, pmix_v4, pmi2)");
  }
  if (s.cpus_per_task < 0) return bad("slurm.cpus_per_task", "must be >= 0 (0 = local.threads, or 1)");
  if (!s.mem_per_task.empty()) {
    if (auto m = slurm_memory_mib(s.mem_per_task); !m.ok()) return bad("slurm.mem_per_task", m.status().message());
  }
  return {};
}

// The rules that tie sections together.
Status validate_across_sections(const Config& c) {
  const auto& z = c.compression;
  const Algorithm alg = c.allreduce.algorithm;
  const std::string alg_name = name(alg);
  if (z.method == compression::Method::kTopkPrevious && !c.secure_aggregation.enabled) {
    return bad("compression.method", "\"topk-previous\" is secure aggregation's shared index set: it "
                                     "needs secure_aggregation.enabled = true (without it, use \"topk\")");
  }
  if (z.level == CompressionLevel::kNode && c.secure_aggregation.enabled &&
      alg != Algorithm::kDenseHier && alg != Algorithm::kAuto) {
    // Each silo compresses its own update (a shared index set) and the masked words are summed
    // node by node: a leader never holds anything unmasked.
    return bad("compression.level", "\"node\" with secure_aggregation.enabled = true sums masked words "
                                    "node by node: it runs on allreduce.algorithm = \"dense-hier\" (or "
                                    "\"auto\"), not \"" + alg_name + "\"");
  }
  if (z.level == CompressionLevel::kNode && !c.secure_aggregation.enabled &&
      alg != Algorithm::kSparseHier && alg != Algorithm::kAuto) {
    return bad("compression.level", "\"node\" runs on allreduce.algorithm = \"sparse-hier\" (or \"auto\"), not \"" + alg_name + "\"");
  }
  if (alg == Algorithm::kSparseHier && z.level != CompressionLevel::kNode) {
    return bad("allreduce.algorithm", "\"sparse-hier\" compresses node sums: it needs compression.level = \"node\"");
  }
  if (c.slurm.cpus_per_task > 0 && c.local.threads > 0 && c.slurm.cpus_per_task < c.local.threads) {
    return bad("slurm.cpus_per_task", std::to_string(c.slurm.cpus_per_task) + " is below local.threads = " +
                                          std::to_string(c.local.threads) + " (each rank would oversubscribe its cores)");
  }
  const DeviceReduce reduce = c.device.reduce;
  if (reduce != DeviceReduce::kAuto && c.device.kind == DeviceKind::kCpu) {
    return bad("device.reduce", "\"" + std::string(name(reduce)) +
                                    "\" sums updates on GPUs: it needs device.kind = \"cuda\" or \"auto\", not \"cpu\"");
  }
  if (reduce == DeviceReduce::kNccl && z.method != compression::Method::kNone &&
      z.level == CompressionLevel::kNode &&
      !c.secure_aggregation.enabled) {  // the leaders compress on the host (secure: NCCL sums words)
    return bad("device.reduce", "\"nccl\" sums dense updates: it cannot carry compression.method = \"" +
                                    std::string(name(z.method)) +
                                    "\" at compression.level = \"node\" (node sums are compressed on the host)");
  }
  if (c.privacy.level == PrivacyLevel::kSample && c.model.arch == Arch::kPytorch) {
    return bad("privacy.level", "\"sample\" is DP-SGD inside fedsilo's own training; with model.arch = "
                                "\"pytorch\" the local training is the user's code: use Opacus in it "
                                "(and set privacy.level = \"none\")");
  }
  const StrategyName strategy = c.strategy.name;
  if ((strategy == StrategyName::kScaffold || strategy == StrategyName::kFedNova) &&
      c.device.kind != DeviceKind::kCpu) {
    return bad("strategy.name", "\"" + std::string(name(strategy)) + "\" needs device.kind = \"cpu\" "
                                "for now, not \"" + std::string(name(c.device.kind)) +
                                "\" (the CUDA backend's " +
                                (strategy == StrategyName::kScaffold ? "SCAFFOLD correction"
                                                                     : "FedNova step count") +
                                " is written but has not yet passed its tests on a GPU, "
                                "tests/gpu/test_gpu_trainer.cpp)");
  }
  if (strategy == StrategyName::kScaffold && z.level == CompressionLevel::kNode &&
      z.method != compression::Method::kNone && !c.secure_aggregation.enabled) {
    return bad("strategy.name", "\"scaffold\" sends its model and control-variate updates as two "
                                "parts, each compressed with its own error-feedback residual: "
                                "compression.level = \"node\" compresses node sums as one vector; "
                                "use compression.level = \"silo\"");
  }
  if (strategy == StrategyName::kScaffold && z.method != compression::Method::kNone &&
      z.value_type == kernels::ValueType::kInt8 && !c.secure_aggregation.enabled) {
    return bad("strategy.name", "\"scaffold\" compresses its model and control-variate updates "
                                "as two parts: compression.value_type = \"int8\" scales blocks of "
                                "256 values, which would straddle the parts; use \"fp16\" or "
                                "\"bf16\"");
  }
  if (c.privacy.level == PrivacyLevel::kSample && c.device.kind != DeviceKind::kCpu) {
    return bad("privacy.level",
               "\"sample\" needs device.kind = \"cpu\" for now, not \"" +
                   std::string(name(c.device.kind)) +
                   "\" (the CUDA backend's DP-SGD has not yet passed its tests on a GPU, "
                   "tests/gpu/test_gpu_dp.cpp)");
  }
  if (c.secure_aggregation.enabled) {
    if (z.method != compression::Method::kNone && z.momentum_correction > 0.0) {
      return bad("compression.momentum_correction",
                 "> 0 is not supported with secure_aggregation.enabled = true (the shared index "
                 "set's error feedback has no DGC momentum): set it to 0");
    }
    if (z.method != compression::Method::kNone && z.value_type != kernels::ValueType::kFp32) {
      return bad("compression.value_type",
                 "\"" + std::string(name(z.value_type)) + "\" does not apply with "
                 "secure_aggregation.enabled = true (values travel in its fixed-point code, "
                 "secure_aggregation.bits): use \"fp32\"");
    }
  }
  // The silo's transform chain against the aggregation it goes through (fl/transform.h).
  return fl::validate_chain(fl::configured_chain(c), fl::configured_aggregation(c));
}

}  // namespace

compression::CompressionConfig compression_config(const CompressionSection& z) {
  compression::CompressionConfig out;
  out.method = z.method;
  out.density = z.density;
  out.value_type = z.value_type;
  out.error_feedback = z.error_feedback;
  out.momentum_correction = z.momentum_correction;
  return out;
}

Status validate(const Config& c, const std::string& source) {
  for (Status st : {validate_run(c.run), validate_data(c.data), validate_model(c.model),
                    validate_local(c.local), validate_strategy(c.strategy), validate_eval(c.eval),
                    validate_compression(c.compression), validate_allreduce(c.allreduce),
                    validate_secure_aggregation(c.secure_aggregation),
                    validate_privacy(c.privacy, c.written),
                    validate_topology(c.topology), validate_slurm(c.slurm),
                    validate_across_sections(c)}) {
    if (!st.ok()) return invalid_argument(source + ": " + st.message());
  }
  // Last, so that a value that is wrong in itself is reported as such first.
  for (const std::string& key : c.written) {
    if (auto why = without_effect(c, key)) {
      return invalid_argument(source + ": " + key + ": has no effect with " + *why +
                              "; remove it (or change that setting)");
    }
  }
  return {};
}

std::optional<std::string> without_effect(const Config& c, const std::string& key) {
  const auto& z = c.compression;
  const auto is = [](const std::string& k, const char* v) { return k + " = \"" + v + "\""; };
  if (key == "strategy.mu" && c.strategy.name != StrategyName::kFedProx) {
    return is("strategy.name", name(c.strategy.name));
  }
  {  // the server optimizers' keys, each only where its strategy reads it
    const StrategyName n = c.strategy.name;
    const bool adaptive = n == StrategyName::kFedAdagrad || n == StrategyName::kFedAdam ||
                          n == StrategyName::kFedYogi;
    if ((key == "strategy.server_lr" && !server_optimizer(n)) ||
        (key == "strategy.server_momentum" && n != StrategyName::kFedAvgM) ||
        ((key == "strategy.beta1" || key == "strategy.tau") && !adaptive) ||
        (key == "strategy.beta2" && n != StrategyName::kFedAdam && n != StrategyName::kFedYogi)) {
      return is("strategy.name", name(n));
    }
  }
  if (key == "model.hidden" && c.model.arch != Arch::kMlp) return is("model.arch", name(c.model.arch));
  if (key.starts_with("compression.") && key != "compression.method" &&
      z.method == compression::Method::kNone) {
    return is("compression.method", "none");
  }
  if (key.starts_with("secure_aggregation.") && key != "secure_aggregation.enabled" &&
      !c.secure_aggregation.enabled) {
    return std::string("secure_aggregation.enabled = false");
  }
  if (key.starts_with("privacy.") && key != "privacy.level" && c.privacy.level == PrivacyLevel::kNone) {
    return is("privacy.level", "none");
  }
  if (key == "privacy.noise_multiplier" && c.privacy.target_epsilon > 0.0) {
    return "privacy.target_epsilon = " + double_text(c.privacy.target_epsilon) +
           " (the accountant sets the noise)";
  }
  if (key == "privacy.target_epsilon" && c.privacy.target_epsilon == 0.0) {
    return "privacy.noise_multiplier = " + double_text(c.privacy.noise_multiplier);
  }
  if (key == "compression.momentum_correction" && !z.error_feedback) {
    return std::string("compression.error_feedback = false");
  }
  if ((key == "allreduce.link_gbps" || key == "allreduce.link_latency_us") &&
      c.allreduce.algorithm != Algorithm::kAuto) {
    return is("allreduce.algorithm", name(c.allreduce.algorithm));
  }
  if (key == "allreduce.link_latency_us" && c.allreduce.link_gbps == 0.0) {
    return std::string("allreduce.link_gbps = 0 (the links are measured)");
  }
  if (key == "device.reduce") {
    if (c.device.kind == DeviceKind::kCpu) return is("device.kind", "cpu");
    // (Secure aggregation sums its masked words on the GPUs, compressed or not.)
    if (z.method != compression::Method::kNone && !c.secure_aggregation.enabled) {
      return is("compression.method", name(z.method)) + " (compressed updates are summed on the host)";
    }
  }
  return std::nullopt;
}

template <typename E>
Result<E> parse_choice(std::string_view text, const std::string& key) {
  return find_choice<E>(text, key);
}
template Result<Arch> parse_choice(std::string_view, const std::string&);
template Result<StrategyName> parse_choice(std::string_view, const std::string&);
template Result<CompressionLevel> parse_choice(std::string_view, const std::string&);
template Result<Algorithm> parse_choice(std::string_view, const std::string&);
template Result<DeviceKind> parse_choice(std::string_view, const std::string&);
template Result<DeviceReduce> parse_choice(std::string_view, const std::string&);
template Result<PrivacyLevel> parse_choice(std::string_view, const std::string&);
template Result<DpAccountant> parse_choice(std::string_view, const std::string&);
template Result<DpSampler> parse_choice(std::string_view, const std::string&);
template Result<compression::Method> parse_choice(std::string_view, const std::string&);
template Result<kernels::ValueType> parse_choice(std::string_view, const std::string&);

const char* name(Arch v) { return choice_name(v); }
const char* name(StrategyName v) { return choice_name(v); }
bool server_optimizer(StrategyName v) {
  return v == StrategyName::kFedAvgM || v == StrategyName::kFedAdagrad ||
         v == StrategyName::kFedAdam || v == StrategyName::kFedYogi;
}
const char* name(CompressionLevel v) { return choice_name(v); }
const char* name(Algorithm v) { return choice_name(v); }
const char* name(DeviceKind v) { return choice_name(v); }
const char* name(DeviceReduce v) { return choice_name(v); }
const char* name(PrivacyLevel v) { return choice_name(v); }
const char* name(DpAccountant v) { return choice_name(v); }
const char* name(DpSampler v) { return choice_name(v); }
const char* name(compression::Method v) { return choice_name(v); }
const char* name(kernels::ValueType v) { return choice_name(v); }

std::string to_toml(const Config& c) {
  std::string out, table;
  for (const auto& [key, value] : key_texts(c, /*effective_only=*/true)) {
    const std::string t = key.substr(0, key.find('.'));
    if (t != table) {
      out += (table.empty() ? "[" : "\n[") + t + "]\n";
      table = t;
    }
    out += key.substr(t.size() + 1) + " = " + value + "\n";
  }
  return out;
}

Result<int64_t> slurm_memory_mib(const std::string& text) {
  static const std::regex re(R"(^(\d{1,12})([KMGT]?)$)");
  std::smatch m;
  if (!std::regex_match(text, m, re)) {
    return invalid_argument("'" + text + "' is not a memory size (an integer in MiB, or with a K, M, G or T suffix: \"4G\")");
  }
  const int64_t v = std::stoll(m[1].str());
  const std::string unit = m[2].str();
  const int64_t mib = unit == "K" ? (v + 1023) / 1024 : unit == "G" ? v * 1024 : unit == "T" ? v * 1024 * 1024 : v;
  if (mib <= 0) return invalid_argument("'" + text + "' is not a positive memory size");
  return mib;
}

Result<int64_t> slurm_time_seconds(const std::string& text) {
  // Slurm's forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S (all fields non-negative integers).
  static const std::regex re(R"(^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$)");
  std::smatch m;
  const auto fail = [&] {
    return invalid_argument("'" + text + "' is not a Slurm time limit (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)");
  };
  if (text.size() > 20 || !std::regex_match(text, m, re)) return fail();
  auto num = [&](int i) { return m[i].matched ? std::stoll(m[i].str()) : 0LL; };
  int64_t s = 0;
  if (m[1].matched) {  // D-H[:M[:S]]
    s = num(1) * 86400 + num(2) * 3600 + num(3) * 60 + num(4);
  } else if (m[4].matched) {  // H:M:S
    s = num(2) * 3600 + num(3) * 60 + num(4);
  } else if (m[3].matched) {  // M:S
    s = num(2) * 60 + num(3);
  } else {  // minutes
    s = num(2) * 60;
  }
  if (s <= 0) return invalid_argument("'" + text + "' is not a positive time limit");
  return s;
}

namespace {

// Every setting but how the job is launched ([slurm], run.command), as "table.key" ->
// normalised value text (toml++'s own form of each value, stable across releases).
std::map<std::string, std::string> identity_values(const Config& cfg) {
  std::string text, table;
  for (const auto& [key, value] : key_texts(cfg, /*effective_only=*/false)) {
    const std::string t = key.substr(0, key.find('.'));
    if (t != table) text += "[" + (table = t) + "]\n";
    text += key.substr(t.size() + 1) + " = " + value + "\n";
  }
  std::map<std::string, std::string> out;
  const toml::table root = toml::parse(text);
  for (auto&& [t, node] : root) {
    if (t.str() == "slurm") continue;  // how the job is submitted, not what it computes
    for (auto&& [k, value] : *node.as_table()) {
      const std::string key = std::string(t.str()) + "." + std::string(k.str());
      if (key == "run.command") continue;  // a job resubmitted with another interpreter resumes
      out[key] = node_text(value);
    }
  }
  return out;
}

}  // namespace

std::string resume_hash(const Config& cfg) {
  // Only keys that differ from their defaults enter the hash, so a later version that adds a
  // key (with a default) still resumes an older run's checkpoints.
  // run.rounds enters as 0 whatever it is (as it always has: hashes of older runs stay valid).
  Config c = cfg;
  c.run.rounds = 0;
  const auto mine = identity_values(c);
  const auto defaults = identity_values(Config{});
  std::string text;
  for (const auto& [key, value] : mine) {
    const auto d = defaults.find(key);
    if (d == defaults.end() || d->second != value) text += key + "=" + value + "\n";
  }
  return fnv1a_hex(text);
}

std::vector<std::string> resume_differences(const Config& now, const Config& before) {
  const auto a = identity_values(now);
  const auto b = identity_values(before);
  std::vector<std::string> out;
  for (const auto& [key, value] : a) {
    const auto other = b.find(key);
    if (key != "run.rounds" && other != b.end() && other->second != value) {
      out.push_back(key + " = " + value + " (was " + other->second + ")");
    }
  }
  return out;
}

}  // namespace fedsilo::config
