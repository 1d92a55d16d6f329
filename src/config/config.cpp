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
      FEDSILO_KEY_STR("data", silos_dir, data.silos_dir),
      FEDSILO_KEY_STR("data", test_file, data.test_file),
      FEDSILO_KEY_STR("model", arch, model.arch),
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
      FEDSILO_KEY_STR("strategy", name, strategy.name),
      FEDSILO_KEY_DBL("strategy", mu, strategy.mu),
      FEDSILO_KEY_DBL("strategy", fraction, strategy.fraction),
      FEDSILO_KEY_INT("eval", every, eval.every),
      FEDSILO_KEY_INT("eval", batch_size, eval.batch_size),
      FEDSILO_KEY_STR("compression", method, compression.method),
      FEDSILO_KEY_DBL("compression", density, compression.density),
      FEDSILO_KEY_STR("compression", value_type, compression.value_type),
      KeySpec{"compression", "error_feedback",
              [](const toml::node& n, Config& c, const std::string& w) {
                return read_bool(n, c.compression.error_feedback, w);
              },
              [](const Config& c) { return std::string(c.compression.error_feedback ? "true" : "false"); }},
      FEDSILO_KEY_DBL("compression", momentum_correction, compression.momentum_correction),
      FEDSILO_KEY_STR("compression", level, compression.level),
      FEDSILO_KEY_STR("allreduce", algorithm, allreduce.algorithm),
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
      FEDSILO_KEY_STR("device", kind, device.kind),
      FEDSILO_KEY_STR("device", reduce, device.reduce),
  };
  return specs;
}

#undef FEDSILO_KEY_INT
#undef FEDSILO_KEY_DBL
#undef FEDSILO_KEY_STR

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
                              "' (known tables: run, data, model, local, strategy, eval, compression, allreduce, "
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

Status validate(const Config& c, const std::string& source) {
  auto bad = [&](const std::string& key, const std::string& why) {
    return invalid_argument(source + ": " + key + ": " + why);
  };
  if (c.run.name.empty()) return bad("run.name", "must not be empty");
  if (c.run.rounds < 1) return bad("run.rounds", "must be >= 1, got " + std::to_string(c.run.rounds));
  if (c.run.checkpoint_every < 1) return bad("run.checkpoint_every", "must be >= 1");
  if (c.run.keep_checkpoints < 1) return bad("run.keep_checkpoints", "must be >= 1");
  if (c.data.silos_dir.empty()) return bad("data.silos_dir", "is required (a directory from `fedsilo partition`)");
  if (c.model.arch != "logreg" && c.model.arch != "mlp" && c.model.arch != "niid-cnn") {
    return bad("model.arch", "unknown arch '" + c.model.arch + "' (expected logreg, mlp, niid-cnn)");
  }
  if (c.model.arch == "mlp" && c.model.hidden.empty()) {
    return bad("model.hidden", "mlp needs hidden sizes, e.g. hidden = [200, 200]");
  }
  for (int h : c.model.hidden) {
    if (h < 1) return bad("model.hidden", "sizes must be >= 1, got " + std::to_string(h));
  }
  if (c.local.epochs < 1) return bad("local.epochs", "must be >= 1");
  if (c.local.batch_size < 1) return bad("local.batch_size", "must be >= 1");
  if (!(c.local.lr > 0.0) || !std::isfinite(c.local.lr)) {
    return bad("local.lr", "must be > 0, got " + std::to_string(c.local.lr));
  }
  if (!(c.local.momentum >= 0.0 && c.local.momentum < 1.0)) return bad("local.momentum", "must be in [0, 1)");
  if (!(c.local.weight_decay >= 0.0) || !std::isfinite(c.local.weight_decay)) {
    return bad("local.weight_decay", "must be >= 0");
  }
  if (c.local.threads < 0) return bad("local.threads", "must be >= 0 (0 = automatic)");
  if (c.strategy.name != "fedavg" && c.strategy.name != "fedprox") {
    return bad("strategy.name", "unknown strategy '" + c.strategy.name + "' (expected fedavg, fedprox)");
  }
  if (!(c.strategy.mu >= 0.0) || !std::isfinite(c.strategy.mu)) return bad("strategy.mu", "must be >= 0");
  if (!(c.strategy.fraction > 0.0 && c.strategy.fraction <= 1.0)) {
    return bad("strategy.fraction", "must be in (0, 1], got " + std::to_string(c.strategy.fraction));
  }
  const auto& z = c.compression;
  static const char* const kMethods[] = {"none", "topk", "topk-sampled", "randk"};
  static const char* const kValueTypes[] = {"fp32", "fp16", "bf16", "int8"};
  static const char* const kAlgorithms[] = {"auto", "dense-flat", "dense-hier", "sparse-allgather",
                                            "sparse-rd", "sparse-hier"};
  auto one_of = [](const std::string& v, const auto& list) {
    for (const char* x : list) {
      if (v == x) return true;
    }
    return false;
  };
  if (!one_of(z.method, kMethods)) {
    return bad("compression.method", "unknown method '" + z.method + "' (expected none, topk, topk-sampled, randk)");
  }
  if (!(z.density > 0.0 && z.density <= 1.0)) {
    return bad("compression.density", "must be in (0, 1], got " + std::to_string(z.density));
  }
  if (!one_of(z.value_type, kValueTypes)) {
    return bad("compression.value_type", "unknown value type '" + z.value_type + "' (expected fp32, fp16, bf16, int8)");
  }
  if (!(z.momentum_correction >= 0.0 && z.momentum_correction < 1.0)) {
    return bad("compression.momentum_correction", "must be in [0, 1)");
  }
  if (z.momentum_correction > 0.0 && !z.error_feedback) {
    return bad("compression.momentum_correction", "needs compression.error_feedback = true");
  }
  if (z.level != "silo" && z.level != "node") {
    return bad("compression.level", "must be \"silo\" or \"node\", got '" + z.level + "'");
  }
  const std::string& alg = c.allreduce.algorithm;
  if (!one_of(alg, kAlgorithms)) {
    return bad("allreduce.algorithm", "unknown algorithm '" + alg + "' (expected auto, dense-flat, dense-hier, sparse-allgather, sparse-rd, sparse-hier)");
  }
  if (z.level == "node" && alg != "sparse-hier" && alg != "auto") {
    return bad("compression.level", "\"node\" runs on allreduce.algorithm = \"sparse-hier\" (or \"auto\"), not \"" + alg + "\"");
  }
  if (z.level == "node" && z.method == "none") {
    return bad("compression.level", "\"node\" needs a compression.method other than \"none\"");
  }
  if (alg == "sparse-hier" && z.level != "node") {
    return bad("allreduce.algorithm", "\"sparse-hier\" compresses node sums: it needs compression.level = \"node\"");
  }
  if (!(c.allreduce.link_gbps >= 0.0)) return bad("allreduce.link_gbps", "must be >= 0 (0 = measure)");
  if (!(c.allreduce.link_latency_us >= 0.0)) return bad("allreduce.link_latency_us", "must be >= 0");
  if (c.topology.emulated_nodes < 0) return bad("topology.emulated_nodes", "must be >= 0 (0 = real nodes)");
  if (auto t = slurm_time_seconds(c.slurm.time); !t.ok()) return bad("slurm.time", t.status().message());
  if (c.slurm.nodes < 0) return bad("slurm.nodes", "must be >= 0 (0 = silos / ranks_per_node, or 1)");
  if (c.slurm.ranks_per_node < 0) return bad("slurm.ranks_per_node", "must be >= 0 (0 = silos / nodes, all on one node when both are 0)");
  if (c.slurm.signal_seconds < 1 || c.slurm.signal_seconds > 65535) {
    return bad("slurm.signal_seconds", "must be in [1, 65535], got " + std::to_string(c.slurm.signal_seconds));
  }
  if (c.slurm.signal_seconds >= slurm_time_seconds(c.slurm.time).value()) {
    return bad("slurm.signal_seconds", std::to_string(c.slurm.signal_seconds) +
                                           " s must be below the time limit slurm.time = \"" + c.slurm.time + "\"");
  }
  for (const auto* v : {&c.slurm.partition, &c.slurm.account, &c.slurm.manifest, &c.slurm.output}) {
    if (v->find_first_of(" \t\n'\"$`\\") != std::string::npos) {
      return bad(v == &c.slurm.partition ? "slurm.partition" : v == &c.slurm.account ? "slurm.account"
                 : v == &c.slurm.manifest ? "slurm.manifest" : "slurm.output",
                 "must not contain blanks, quotes, '$', '`' or '\\' (it goes into #SBATCH lines)");
    }
  }
  if (c.slurm.mpi.empty() ||
      c.slurm.mpi.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos) {
    return bad("slurm.mpi", "'" + c.slurm.mpi + "' is not an srun --mpi plugin name (e.g. pmix, pmix_v4, pmi2)");
  }
  if (c.slurm.cpus_per_task < 0) return bad("slurm.cpus_per_task", "must be >= 0 (0 = local.threads, or 1)");
  if (c.slurm.cpus_per_task > 0 && c.local.threads > 0 && c.slurm.cpus_per_task < c.local.threads) {
    return bad("slurm.cpus_per_task", std::to_string(c.slurm.cpus_per_task) + " is below local.threads = " +
                                          std::to_string(c.local.threads) + " (each rank would oversubscribe its cores)");
  }
  if (!c.slurm.mem_per_task.empty()) {
    if (auto m = slurm_memory_mib(c.slurm.mem_per_task); !m.ok()) return bad("slurm.mem_per_task", m.status().message());
  }
  if (c.device.kind != "cpu" && c.device.kind != "cuda" && c.device.kind != "auto") {
    return bad("device.kind", "unknown device kind '" + c.device.kind + "' (expected cpu, cuda, auto)");
  }
  const std::string& reduce = c.device.reduce;
  if (reduce != "auto" && reduce != "nccl" && reduce != "host") {
    return bad("device.reduce", "unknown reduction '" + reduce + "' (expected auto, nccl, host)");
  }
  if (reduce != "auto" && c.device.kind == "cpu") {
    return bad("device.reduce", "\"" + reduce + "\" sums updates on GPUs: it needs device.kind = \"cuda\" or \"auto\", not \"cpu\"");
  }
  if (reduce == "nccl" && z.method != "none" && z.level == "node") {  // the leaders compress on the host
    return bad("device.reduce", "\"nccl\" sums dense updates: it cannot carry compression.method = \"" + z.method +
                                    "\" at compression.level = \"node\" (node sums are compressed on the host)");
  }
  // The silo's transform chain against the aggregation it goes through (fl/transform.h).
  if (Status st = fl::validate_chain(fl::configured_chain(c), fl::configured_aggregation(c)); !st.ok()) {
    return invalid_argument(source + ": " + st.message());
  }
  if (c.eval.every < 1) return bad("eval.every", "must be >= 1");
  if (c.eval.batch_size < 1) return bad("eval.batch_size", "must be >= 1");
  // Last, so that a value that is wrong in itself is reported as such first.
  for (const std::string& key : c.written) {
    if (auto why = without_effect(c, key)) {
      return bad(key, "has no effect with " + *why + "; remove it (or change that setting)");
    }
  }
  return {};
}

std::optional<std::string> without_effect(const Config& c, const std::string& key) {
  const auto& z = c.compression;
  const auto is = [](const std::string& k, const std::string& v) { return k + " = \"" + v + "\""; };
  if (key == "strategy.mu" && c.strategy.name != "fedprox") return is("strategy.name", c.strategy.name);
  if (key == "model.hidden" && c.model.arch != "mlp") return is("model.arch", c.model.arch);
  if (key.starts_with("compression.") && key != "compression.method" && z.method == "none") {
    return is("compression.method", "none");
  }
  if (key == "compression.momentum_correction" && !z.error_feedback) {
    return std::string("compression.error_feedback = false");
  }
  if ((key == "allreduce.link_gbps" || key == "allreduce.link_latency_us") &&
      c.allreduce.algorithm != "auto") {
    return is("allreduce.algorithm", c.allreduce.algorithm);
  }
  if (key == "allreduce.link_latency_us" && c.allreduce.link_gbps == 0.0) {
    return std::string("allreduce.link_gbps = 0 (the links are measured)");
  }
  if (key == "device.reduce") {
    if (c.device.kind == "cpu") return is("device.kind", "cpu");
    if (z.method != "none") return is("compression.method", z.method) + " (compressed updates are summed on the host)";
  }
  return std::nullopt;
}

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

// Every setting but [slurm], as "table.key" -> normalised value text (toml++'s own form of
// each value, stable across releases).
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
