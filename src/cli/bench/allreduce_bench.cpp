// `fedsilo bench allreduce`: the driver. For every size x density x algorithm it builds the
// exchange training runs (fl::UpdateExchange, from a config::Config of the row's settings),
// checks its result (-c), warms up, times exchange(), and prints one row (table on stdout, JSON
// beside it). Time per iteration is the slowest rank's (what the round waits for); a row's
// time is the median over iterations, with the min and max over iterations as its spread.
#include "cli/bench/allreduce_bench.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <sstream>

#include "cli/exit_codes.h"
#include "compression/compressor.h"
#include "config/config.h"
#include "core/philox.h"
#include "fl/secure_aggregation.h"
#include "kernels/cpu/randk.h"
#include "fl/update_exchange.h"
#include "mpi/algorithm.h"
#include "mpi/comm.h"
#include "mpi/selector.h"
#include "mpi/topology.h"

namespace fedsilo::bench {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// Stream tags for the benchmark's inputs (the `round` field of the Philox counter): far from
// any training round, so benchmark inputs never share a stream with a training run.
constexpr uint32_t kTimingInputStream = 0xBE4C0001u;
constexpr uint32_t kCheckInputStream = 0xBE4C0002u;
constexpr uint32_t kCheckSharedStream = 0xBE4C0003u;
// Random normal updates N(0, sigma^2): the scale of a silo update after a few local steps
// (as benchmarks/compressors); fp16 holds it with 11 significant bits.
constexpr double kUpdateSigma = 1e-3;

const std::vector<std::string>& known_algorithms() {
  // "secure", "secure-hier": secure aggregation (fl::SecureAggregation: fixed point, pairwise
  // masks, a pipelined uint32 sum, flat or node by node, decoding) of the dense update, or at
  // a density below 1 of the round's shared rand-k index set.
  static const std::vector<std::string> k = {"dense-flat", "dense-hier",  "sparse-allgather",
                                             "sparse-rd",  "sparse-hier", "auto",
                                             "secure",     "secure-hier"};
  return k;
}

/// "4096", "64K", "1M", "2G" (powers of 1024) -> bytes.
Result<int64_t> parse_bytes(const std::string& s) {
  if (s.empty()) return invalid_argument("empty size");
  int64_t mult = 1;
  std::string digits = s;
  switch (std::toupper(static_cast<unsigned char>(s.back()))) {
    case 'K':
      mult = int64_t{1} << 10;
      digits.pop_back();
      break;
    case 'M':
      mult = int64_t{1} << 20;
      digits.pop_back();
      break;
    case 'G':
      mult = int64_t{1} << 30;
      digits.pop_back();
      break;
    default:
      break;
  }
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) {
    return invalid_argument("size \"" + s + "\": expected bytes with an optional K/M/G suffix");
  }
  return std::stoll(digits) * mult;
}

std::string human_bytes(double b) {
  char buf[32];
  const char* unit = "";
  double v = b;
  for (const char* u : {"K", "M", "G"}) {
    if (v < 1024.0) break;
    v /= 1024.0;
    unit = u;
  }
  std::snprintf(buf, sizeof buf, *unit ? "%.3g%s" : "%.0f%s", v, unit);
  return buf;
}

std::string read_first_line(const std::string& path, const std::string& prefix) {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return {};
}

std::string machine_description() {
  std::string model = read_first_line("/proc/cpuinfo", "model name");
  if (auto p = model.find(':'); p != std::string::npos) model = model.substr(p + 2);
  std::string mem = read_first_line("/proc/meminfo", "MemTotal:");
  long kb = 0;
  if (!mem.empty()) kb = std::atol(mem.c_str() + 9);
  std::ostringstream os;
  os << model << ", " << sysconf(_SC_NPROCESSORS_ONLN) << " cores, "
     << static_cast<long>(std::lround(kb / 1048576.0)) << " GiB";
  return os.str();
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

/// `git rev-parse --short HEAD` (+"-dirty" with uncommitted changes to tracked files), run
/// before MPI_Init so no MPI process forks.
std::string git_commit() {
  auto run = [](const char* cmd) {
    std::string out;
    if (FILE* p = popen(cmd, "r")) {
      char buf[128];
      while (std::fgets(buf, sizeof buf, p)) out += buf;
      pclose(p);
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
  };
  std::string c = run("git rev-parse --short HEAD 2>/dev/null");
  if (c.empty()) return "unknown";
  if (!run("git status --porcelain --untracked-files=no 2>/dev/null | head -1").empty()) {
    c += "-dirty";
  }
  return c;
}

/// rx and tx byte counters of `dev` in this process's network namespace (/proc/net/dev).
Result<std::array<int64_t, 2>> netdev_bytes(const std::string& dev) {
  std::ifstream f("/proc/net/dev");
  std::string line;
  while (std::getline(f, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    name.erase(0, name.find_first_not_of(' '));
    if (name != dev) continue;
    std::istringstream is(line.substr(colon + 1));
    // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes ...
    int64_t v[9] = {};
    for (auto& x : v) is >> x;
    return std::array<int64_t, 2>{v[0], v[8]};
  }
  return not_found("network interface \"" + dev + "\" is not in /proc/net/dev of this node");
}

void fill_normal(std::span<float> x, uint64_t seed, int rank) {
  Philox g(seed, kTimingInputStream, static_cast<uint32_t>(rank), RngPurpose::kInit);
  for (auto& v : x) v = static_cast<float>(kUpdateSigma * g.normal());
}

/// Exact-sum inputs: small integers, whose sums over <= 2^16 ranks are exact in fp32 in any
/// order. `aligned` (for int8 values): half the positions, the same on every rank, hold
/// +-127 with the same sign everywhere, the others integers in [-100, 100]; top-k at density
/// <= 1/2 then selects only +-127 (silo) or +-127 L (node sums), so every int8 block scale is
/// 127 L / 127 = L and q = +-127: the quantized values are exact and so are their sums.
/// Otherwise each rank draws its own integers in [-64, 64] (overlapping and disjoint supports).
void fill_exact(std::span<float> x, uint64_t seed, int rank, bool aligned) {
  Philox g(seed, kCheckInputStream, static_cast<uint32_t>(rank), RngPurpose::kInit);
  if (!aligned) {
    for (auto& v : x) v = static_cast<float>(static_cast<int>(g.below(129)) - 64);
    return;
  }
  const std::array<uint32_t, 2> key = {static_cast<uint32_t>(seed),
                                       static_cast<uint32_t>(seed >> 32)};
  std::array<uint32_t, 4> shared{};
  for (size_t i = 0; i < x.size(); ++i) {
    if (i % 4 == 0) {
      shared = philox4x32_10({static_cast<uint32_t>(i / 4), kCheckSharedStream, 0,
                              static_cast<uint32_t>(RngPurpose::kInit)},
                             key);
    }
    const uint32_t h = shared[i % 4];
    const int own = static_cast<int>(g.below(201)) - 100;
    x[i] = (h & 1u) ? ((h & 2u) ? 127.0f : -127.0f) : static_cast<float>(own);
  }
}

double median_of(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

/// CPU seconds this process has run (any compressor or MPI progress threads included).
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// Adds one exchange's stats to a row's running sums.
void accumulate(fl::ExchangeStats& sum, const fl::ExchangeStats& x) {
  sum.intra_bytes_sent += x.intra_bytes_sent;
  sum.intra_bytes_received += x.intra_bytes_received;
  sum.inter_bytes_sent += x.inter_bytes_sent;
  sum.inter_bytes_received += x.inter_bytes_received;
  sum.payload_bytes += x.payload_bytes;
  sum.dense_bytes += x.dense_bytes;
  sum.compress_seconds += x.compress_seconds;
  sum.intra_seconds += x.intra_seconds;
  sum.inter_seconds += x.inter_seconds;
  sum.decompress_seconds += x.decompress_seconds;
}

/// One row of the table.
struct Row {
  int64_t bytes = 0, count = 0;
  double density = 1.0;
  std::string algorithm, chosen;
  double t_min = 0, t_med = 0, t_max = 0;  // seconds: medians over iterations of min/median/max
                                           // across ranks
  double spread_lo = 0, spread_hi = 0;     // min and max over iterations of the max across ranks
  double algbw = 0, busbw = 0;             // GB/s from t_max
  double intra_sent = 0, inter_sent = 0;   // bytes per rank per iteration (mean over ranks)
  double inter_sent_total = 0;             // all ranks, per iteration
  double link_tx = -1, link_rx = -1;       // interface counters, all nodes, per iteration
  double payload = 0, ratio = 0;           // contribution's wire bytes (ExchangeStats), 4n / it
  double select_ms = 0, intra_ms = 0, inter_ms = 0, decode_ms = 0;  // rank 0's means
  double exchange_cpu_ms = 0;  // rank 0's CPU time in exchange() (its wall - this = waiting
                               // for a core shared with other ranks)
  std::vector<double> cpu_ms_by_rank;  // every rank's CPU time per iteration
  std::string check = "-";
  double vs_dense = 0;  // dense-flat's median / this median
};

json row_json(const Row& r) {
  json j = {{"bytes", r.bytes},
            {"count", r.count},
            {"density", r.density},
            {"algorithm", r.algorithm},
            {"chosen", r.chosen},
            {"time_ms",
             {{"min_rank", r.t_min * 1e3},
              {"median_rank", r.t_med * 1e3},
              {"max_rank", r.t_max * 1e3},
              {"max_rank_spread", {r.spread_lo * 1e3, r.spread_hi * 1e3}}}},
            {"algbw_GBps", r.algbw},
            {"busbw_GBps", r.busbw},
            {"bytes_per_rank", {{"intra_sent", r.intra_sent}, {"inter_sent", r.inter_sent}}},
            {"inter_sent_all_ranks", r.inter_sent_total},
            {"payload_bytes", r.payload},
            {"compression_ratio", r.ratio},
            {"phase_ms_rank0",
             {{"select_encode", r.select_ms},
              {"exchange_cpu", r.exchange_cpu_ms},
              {"intra", r.intra_ms},
              {"inter", r.inter_ms},
              {"decode_merge", r.decode_ms}}},
            {"cpu_ms_per_rank", r.cpu_ms_by_rank},
            {"check", r.check},
            {"speedup_vs_dense_flat", r.vs_dense}};
  if (r.link_tx >= 0) j["link_bytes_all_nodes"] = {{"tx", r.link_tx}, {"rx", r.link_rx}};
  return j;
}

/// The whole run on every rank; rank 0 prints and writes JSON.
class Bench {
 public:
  Bench(const AllreduceBenchArgs& args, mpi::Comm& world) : args_(args), world_(world) {}
  [[nodiscard]] Status run(const std::string& commit);
  [[nodiscard]] int failures() const { return failures_; }

 private:
  [[nodiscard]] Status parse();
  [[nodiscard]] Status header(const std::string& commit);
  /// One algorithm of a cell: its exchange, iterations so far and their sums.
  struct Entry {
    Row row;
    config::Config cfg;  // what the exchange was built from
    std::unique_ptr<fl::UpdateExchange> exchange;
    std::unique_ptr<fl::SecureAggregation> secure;  // the secure rows (around `exchange`)
    std::span<float> buffer;  // the update goes in, the sum comes out (UpdateExchange::buffer)
    bool compressed = false;  // whether contributions are compressed (else summed dense)
    std::vector<double> times;
    fl::ExchangeStats sum;
    double cpu_seconds = 0;            // this rank's CPU time in exchange(), timed iterations
    int64_t link_tx = 0, link_rx = 0;  // this node's link counters over the timed iterations
    uint32_t round = 1;
  };
  /// The config a training run with this row's settings would have.
  [[nodiscard]] config::Config row_config(double density, const std::string& algorithm) const;
  /// Builds, checks (-c) and warms up one algorithm; null when the pair is skipped.
  [[nodiscard]] Result<std::unique_ptr<Entry>> setup(int64_t n, double density,
                                                     const std::string& requested);
  /// The secure rows: fl::SecureAggregation around an exchange that holds the topology and the
  /// silo's compression.
  [[nodiscard]] Result<std::unique_ptr<Entry>> setup_secure(std::unique_ptr<Entry> e, int64_t n);
  [[nodiscard]] Status timed_iteration(Entry& e);
  /// Gathers the entry's numbers on rank 0 and prints its row.
  [[nodiscard]] Status finish(Entry& e);
  /// Every (density, algorithm) of one size and density cell.
  [[nodiscard]] Status measure_cell(int64_t n,
                                    const std::vector<std::pair<double, std::string>>& specs);
  /// The reference contribution of this rank to the check's sum, in `ref` (zeros if none).
  [[nodiscard]] Status check_contribution(const Entry& e, std::span<float> ref);
  [[nodiscard]] Status check_row(Entry& e, std::string& verdict);
  void print_row(const Row& r);
  [[nodiscard]] Status write_json();
  void summarize();

  const AllreduceBenchArgs& args_;
  mpi::Comm& world_;
  // For the header, the link calibration and --netdev (each exchange builds its own).
  std::unique_ptr<mpi::Topology> topo_;
  bool node_level_ = false;
  kernels::ValueType value_type_ = kernels::ValueType::kFp32;
  compression::Method method_ = compression::Method::kTopk;
  std::vector<int64_t> sizes_;
  mpi::LinkModel link_;
  std::vector<float> update_, exact_, out_, ref_, scratch_, zeros_;
  std::vector<Row> rows_;
  std::set<std::string> skipped_;  // skip notes already printed
  json doc_;
  int failures_ = 0;
  bool root() const { return world_.rank() == 0; }
};

Status Bench::parse() {
  FEDSILO_ASSIGN_OR_RETURN(const int64_t lo, parse_bytes(args_.min_bytes));
  FEDSILO_ASSIGN_OR_RETURN(const int64_t hi, parse_bytes(args_.max_bytes));
  if (lo < 4 || hi < lo) return invalid_argument("-b/-e: need 4 <= minbytes <= maxbytes");
  if (args_.factor < 2 && hi > lo) return invalid_argument("-f: the step factor must be >= 2");
  for (int64_t b = lo; b <= hi; b *= std::max<int64_t>(2, args_.factor)) {
    sizes_.push_back(b / 4);  // a dense fp32 update of b bytes
  }
  if (args_.iterations < 1 || args_.warmup < 0) return invalid_argument("-n >= 1, -w >= 0");
  for (double d : args_.densities) {
    if (!(d > 0.0 && d <= 1.0)) return invalid_argument("--densities: each in (0, 1]");
  }
  for (const auto& a : args_.algorithms) {
    if (std::find(known_algorithms().begin(), known_algorithms().end(), a) ==
        known_algorithms().end()) {
      return invalid_argument("--algorithms: unknown \"" + a + "\"");
    }
  }
  if (args_.level != "silo" && args_.level != "node") {
    return invalid_argument("--level: silo or node");
  }
  node_level_ = args_.level == "node";
  FEDSILO_ASSIGN_OR_RETURN(method_, compression::parse_method(args_.method));
  if (method_ == compression::Method::kNone) {
    return invalid_argument("--method: none is density 1; give topk, topk-sampled or randk");
  }
  FEDSILO_ASSIGN_OR_RETURN(value_type_, compression::parse_value_type(args_.value_type));
  if (args_.threads != 1) {
    // fl::UpdateExchange compresses with one thread per rank, as training does.
    return invalid_argument(
        "--threads: the exchange compresses with 1 thread per rank, as "
        "training does; got " +
        std::to_string(args_.threads));
  }
  return {};
}

Status Bench::header(const std::string& commit) {
  // Host names of all ranks, to show where they ran.
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::vector<uint8_t> all;
  std::vector<int64_t> offsets;
  const std::string mine(host);
  FEDSILO_CHECK(world_.allgatherv_bytes(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(mine.data()), mine.size()), all,
      offsets));
  std::set<std::string> hosts;
  for (int r = 0; r < world_.size(); ++r) {
    hosts.emplace(reinterpret_cast<const char*>(all.data()) + offsets[r],
                  static_cast<size_t>(offsets[r + 1] - offsets[r]));
  }
  std::string host_list;
  for (const auto& h : hosts) host_list += (host_list.empty() ? "" : ",") + h;

  if (!root()) return {};
  const std::string machine = machine_description();
  std::printf("# fedsilo bench allreduce\n");
  std::printf("# machine: %s; load average %s\n", machine.c_str(), load_average().c_str());
  std::printf("# ranks: %s; hosts: %s\n", topo_->describe().c_str(), host_list.c_str());
  std::printf("# commit: %s\n", commit.c_str());
  std::printf(
      "# config: level %s, method %s, value type %s, error feedback %s, threads %d, "
      "seed %llu, -n %d -w %d%s%s\n",
      args_.level.c_str(), args_.method.c_str(), args_.value_type.c_str(),
      !args_.no_error_feedback ? "on" : "off", args_.threads,
      static_cast<unsigned long long>(args_.seed), args_.iterations, args_.warmup,
      args_.check ? " -c" : "", args_.blocks ? " --blocks" : " (algorithms of a cell interleaved)");
  std::printf(
      "# each row: fl::UpdateExchange::create from the row's config, then exchange() timed "
      "(what a training round runs)\n");
  std::printf("# link: inter %.3g Gbit/s, %.1f us; intra %.3g Gbit/s, %.1f us (%s)\n",
              link_.inter_bandwidth_Bps * 8e-9, link_.inter_latency_s * 1e6,
              link_.intra_bandwidth_Bps * 8e-9, link_.intra_latency_s * 1e6,
              args_.link_gbps > 0
                  ? "given: auto uses it and runs no trial, as in training"
                  : (link_.measured ? "calibrated; auto calibrates again per row, as training's "
                                      "start-up does"
                                    : "defaults"));
  if (node_level_ && std::find(args_.algorithms.begin(), args_.algorithms.end(), "sparse-hier") !=
                         args_.algorithms.end()) {
    // UpdateExchange::create pins sparse-hier's leaders to an allgather; only auto chooses.
    std::printf(
        "# note: sparse-hier rows exchange between leaders by allgather (sparse-hier/ag); a "
        "config cannot pin recursive doubling, so there is no sparse-hier-rd row\n");
  }
  std::printf(
      "# time: per iteration the slowest rank's; min/med/max = median over iterations of the "
      "min/median/max across ranks; spread = min..max over iterations of the slowest rank; "
      "algbw = 4n bytes / max; busbw = algbw * 2(P-1)/P; bytes per rank per iteration%s\n",
      args_.netdev.empty() ? "" : "; link = interface counters of every node, per iteration");
  std::printf("%10s %10s %7s %-16s %-16s %9s %9s %9s %19s %7s %7s %9s %9s %9s %7s %7s %s\n",
              "bytes", "count", "density", "algorithm", "chosen", "min_ms", "med_ms", "max_ms",
              "spread_ms", "algbw", "busbw", "intra_B", "inter_B", "link_B", "ratio", "xdense",
              "check");
  std::fflush(stdout);

  doc_ = {
      {"benchmark", "fedsilo bench allreduce"},
      {"machine", machine},
      {"load_average_start", load_average()},
      {"ranks", world_.size()},
      {"nodes", topo_->num_nodes()},
      {"ranks_per_node", topo_->local_size()},
      {"topology", topo_->describe()},
      {"hosts", host_list},
      {"commit", commit},
      {"config",
       {{"level", args_.level},
        {"method", args_.method},
        {"value_type", args_.value_type},
        {"error_feedback", !args_.no_error_feedback},
        {"threads", args_.threads},
        {"seed", args_.seed},
        {"iterations", args_.iterations},
        {"warmup", args_.warmup},
        {"check", args_.check},
        {"interleaved", !args_.blocks},
        {"densities", args_.densities},
        {"algorithms", args_.algorithms},
        {"netdev", args_.netdev},
        {"update_sigma", kUpdateSigma}}},
      {"link",
       {{"source", args_.link_gbps > 0 ? "given" : (link_.measured ? "calibrated" : "defaults")},
        {"inter_Gbps", link_.inter_bandwidth_Bps * 8e-9},
        {"inter_latency_us", link_.inter_latency_s * 1e6},
        {"intra_Gbps", link_.intra_bandwidth_Bps * 8e-9},
        {"intra_latency_us", link_.intra_latency_s * 1e6}}},
      {"rows", json::array()}};
  return {};
}

config::Config Bench::row_config(double density, const std::string& algorithm) const {
  config::Config c;
  c.run.seed = args_.seed;
  c.data.silos_dir = "-";  // read by nothing here; config::validate requires one
  if (algorithm == "secure" || algorithm == "secure-hier") {
    // The update (values ~1e-3) at 2^-20 resolution, each rank's weight 1; below density 1 the
    // shared rand-k set with error feedback.
    c.secure_aggregation.enabled = true;
    c.secure_aggregation.range = 1.0;
    c.secure_aggregation.bits = 20;
    c.secure_aggregation.max_weight = 1.0;
    c.allreduce.algorithm = algorithm == "secure" ? config::Algorithm::kDenseFlat
                                                  : config::Algorithm::kDenseHier;
    if (density < 1.0) {
      c.compression.method = compression::Method::kRandk;
      c.compression.density = density;
      c.compression.error_feedback = !args_.no_error_feedback;
    }
    c.topology.emulated_nodes = args_.emulated_nodes;
    return c;
  }
  // Density 1 is no compression: the dense exchange, with no compressor, the same at either
  // level (config::validate accepts it as level silo only). sparse-hier keeps level node, so
  // that its skip says why.
  // The names were checked when the flags were parsed (run()): a failed parse cannot happen.
  const auto choice = [](auto fallback, const std::string& text, const char* key) {
    auto v = config::parse_choice<decltype(fallback)>(text, key);
    return v.ok() ? v.value() : fallback;
  };
  const bool compress = density < 1.0;
  c.compression.method = compress ? method_ : compression::Method::kNone;
  c.compression.density = density;
  c.compression.value_type = value_type_;
  c.compression.error_feedback = !args_.no_error_feedback;
  c.compression.level = compress || algorithm == "sparse-hier"
                            ? choice(config::CompressionLevel::kSilo, args_.level, "--level")
                            : config::CompressionLevel::kSilo;
  c.allreduce.algorithm = choice(config::Algorithm::kDenseFlat, algorithm, "--algorithms");
  c.allreduce.link_gbps = args_.link_gbps;
  c.allreduce.link_latency_us = args_.link_latency_us;
  c.topology.emulated_nodes = args_.emulated_nodes;
  return c;
}

Status Bench::check_contribution(const Entry& e, std::span<float> ref) {
  const size_t N = ref.size();
  if (!e.compressed) {
    std::copy(exact_.begin(), exact_.begin() + static_cast<std::ptrdiff_t>(N), ref.begin());
    return {};
  }
  std::fill(ref.begin(), ref.end(), 0.0f);
  // At level node only the leaders contribute (a node's lowest rank, Topology's local rank 0):
  // the compressed sum of their node's inputs. The nodes are the exchange's own (layout()).
  std::vector<int> node_of;
  if (node_level_) {
    std::istringstream layout(e.exchange->layout());
    for (std::string field; std::getline(layout, field, ',');) node_of.push_back(std::stoi(field));
    const auto me = static_cast<size_t>(world_.rank());
    if (node_of.size() != static_cast<size_t>(world_.size())) {
      return internal_error("UpdateExchange::layout() \"" + e.exchange->layout() +
                            "\" does not name a node for every rank");
    }
    if (std::find(node_of.begin(), node_of.end(), node_of[me]) - node_of.begin() !=
        static_cast<std::ptrdiff_t>(me)) {
      return {};
    }
  }
  // The compressor the exchange runs (its config, one thread), with a fresh state, on the
  // round-0 input: what a correct exchange sends from this rank.
  const auto& z = e.cfg.compression;
  compression::CompressionConfig zcfg = config::compression_config(z);
  zcfg.threads = 1;
  FEDSILO_ASSIGN_OR_RETURN(auto compressor, compression::make_compressor(zcfg));
  compression::CompressorState state;
  if (zcfg.error_feedback) state.residual.assign(N, 0.0f);
  if (zcfg.momentum_correction > 0.0) state.velocity.assign(N, 0.0f);
  std::span<const float> input(exact_.data(), N);
  if (node_level_) {
    // Every rank's exact input is a Philox stream of its rank: the leader regenerates its
    // node's and sums them, in any order (integer sums are exact).
    scratch_.assign(2 * N, 0.0f);
    const std::span<float> node_sum(scratch_.data(), N), peer(scratch_.data() + N, N);
    const bool aligned = value_type_ == kernels::ValueType::kInt8;
    for (int q = 0; q < world_.size(); ++q) {
      if (node_of[static_cast<size_t>(q)] != node_of[static_cast<size_t>(world_.rank())]) continue;
      fill_exact(peer, args_.seed, q, aligned);
      for (size_t i = 0; i < N; ++i) node_sum[i] += peer[i];
    }
    input = node_sum;
  }
  FEDSILO_ASSIGN_OR_RETURN(
      const kernels::SparseVector sent,
      compressor->compress(input, state, args_.seed, 0, static_cast<uint32_t>(world_.rank())));
  return mpi::densify(sent, ref);
}

/// Forgets the exchange's compressor state (a fresh start, as training's first round).
void reset_state(fl::UpdateExchange& x) {
  std::fill(x.residual().begin(), x.residual().end(), 0.0f);
  std::fill(x.velocity().begin(), x.velocity().end(), 0.0f);
}

Status Bench::check_row(Entry& e, std::string& verdict) {
  const size_t N = e.buffer.size();
  const std::span<float> ref(ref_.data(), N);
  reset_state(*e.exchange);
  std::copy(exact_.begin(), exact_.begin() + static_cast<std::ptrdiff_t>(N), e.buffer.begin());
  fl::ExchangeStats xs;
  FEDSILO_CHECK(e.exchange->exchange(0, e.buffer, true, xs));
  // Reference: MPI_Allreduce of the densified contributions (the raw inputs when nothing is
  // compressed; the leaders' compressed node sums at level node, zeros on other ranks), each
  // recomputed here by a compressor of the row's config.
  FEDSILO_CHECK(world_.agree(check_contribution(e, ref)));
  FEDSILO_CHECK(world_.allreduce_sum(ref));
  int64_t bad[1] = {0};
  for (size_t i = 0; i < N; ++i) bad[0] += e.buffer[i] != ref[i] ? 1 : 0;
  FEDSILO_CHECK(world_.allreduce_sum(std::span<int64_t>(bad, 1)));
  verdict = bad[0] == 0 ? "ok" : "FAIL(" + std::to_string(bad[0]) + ")";
  if (bad[0] != 0) ++failures_;
  reset_state(*e.exchange);
  return {};
}

Result<std::unique_ptr<Bench::Entry>> Bench::setup(int64_t n, double density,
                                                   const std::string& requested) {
  auto e = std::make_unique<Entry>();
  e->cfg = row_config(density, requested);
  // The pairs training refuses (sparse-hier at level silo, sparse-allgather/-rd at level node
  // or without compression) are skipped, with training's reason, once per reason.
  if (const Status valid = config::validate(e->cfg, "config"); !valid.ok()) {
    const std::string why = requested + ": " + valid.message();
    if (root() && skipped_.insert(why).second) {
      std::printf("# skip %s (level %s)\n", why.c_str(), args_.level.c_str());
    }
    return std::unique_ptr<Entry>();
  }
  if (requested == "secure" || requested == "secure-hier") return setup_secure(std::move(e), n);
  const auto t0 = Clock::now();
  auto made = fl::UpdateExchange::create(e->cfg, world_, n, "");
  FEDSILO_CHECK(world_.agree(made.status()));
  e->exchange = std::move(made).value();
  const double create_s = std::chrono::duration<double>(Clock::now() - t0).count();
  fl::UpdateExchange& x = *e->exchange;
  Row& r = e->row;
  r.bytes = 4 * n;
  r.count = n;
  r.density = density;
  r.algorithm = requested;
  // A pinned sparse-hier runs its leaders' allgather; auto's choice of leaders' exchange is
  // not visible through UpdateExchange, so its row says plain "sparse-hier".
  r.chosen =
      x.algorithm() == "sparse-hier" && requested != "auto" ? "sparse-hier/ag" : x.algorithm();
  if (requested == "auto" && root()) {
    std::printf("# auto at %lld floats, density %g: UpdateExchange::create chose %s in %.3f s\n",
                static_cast<long long>(n), density, x.algorithm().c_str(), create_s);
  }
  // Compressed unless the exchange is dense with nothing compressed (density 1; level node
  // on a dense algorithm that auto chose: the node sums go uncompressed).
  e->compressed = e->cfg.compression.method != compression::Method::kNone &&
                  (e->cfg.compression.level == config::CompressionLevel::kSilo ||
                   x.algorithm() == "sparse-hier");
  const auto N = static_cast<size_t>(n);
  auto own = x.buffer();
  FEDSILO_CHECK(world_.agree(own.status()));
  e->buffer = own.value().empty() ? std::span<float>(out_.data(), N) : own.value();
  if (args_.check) FEDSILO_CHECK(check_row(*e, r.check));

  for (int i = 0; i < args_.warmup; ++i) {
    std::copy(update_.begin(), update_.begin() + static_cast<std::ptrdiff_t>(N), e->buffer.begin());
    fl::ExchangeStats xs;
    FEDSILO_CHECK(x.exchange(e->round++, e->buffer, true, xs));
  }
  return e;
}

Result<std::unique_ptr<Bench::Entry>> Bench::setup_secure(std::unique_ptr<Entry> e, int64_t n) {
  auto exchange = fl::UpdateExchange::create(e->cfg, world_, n, "");
  FEDSILO_CHECK(world_.agree(exchange.status()));
  e->exchange = std::move(exchange).value();
  auto made = fl::SecureAggregation::create(e->cfg, world_, *e->exchange, n);
  FEDSILO_CHECK(world_.agree(made.status()));
  e->secure = std::move(made).value();
  const bool shared = e->cfg.compression.method == compression::Method::kRandk;
  Row& r = e->row;
  r.bytes = 4 * n;
  r.count = n;
  r.density = shared ? e->cfg.compression.density : 1.0;
  r.algorithm = e->cfg.allreduce.algorithm == config::Algorithm::kDenseHier ? "secure-hier" : "secure";
  r.chosen = e->secure->name();
  const auto N = static_cast<size_t>(n);
  zeros_.assign(N, 0.0f);
  if (args_.check) {
    // The exact inputs / 128 (multiples of 2^-7 in [-1, 1]: exact in the 20-bit code, no
    // rounding) must come back as their float sum, bit for bit, through codes, masks and sum;
    // with a shared rand-k set (round 0, residuals still zero), at that set and zero elsewhere.
    std::vector<float> x(N);
    for (size_t i = 0; i < N; ++i) x[i] = exact_[i] / 128.0f;
    FEDSILO_CHECK(world_.agree(e->secure->contribute(x, zeros_, 1.0f, true, {})));
    fl::ExchangeStats xs;
    FEDSILO_ASSIGN_OR_RETURN(const fl::Combined got, e->secure->combine(0, true, xs));
    std::copy(x.begin(), x.end(), ref_.begin());
    const std::span<float> ref(ref_.data(), N);
    FEDSILO_CHECK(world_.allreduce_sum(ref));
    if (shared) {
      const auto zcfg = config::compression_config(e->cfg.compression);
      const auto set = kernels::randk_indices(n, compression::selected_count(zcfg, n), e->cfg.run.seed, 0);
      std::vector<float> kept(N, 0.0f);
      for (uint32_t i : set) kept[i] = ref[i];
      std::copy(kept.begin(), kept.end(), ref.begin());
    }
    int64_t bad[1] = {0};
    for (size_t i = 0; i < N; ++i) bad[0] += got.sum[i] != ref[i] ? 1 : 0;
    bad[0] += got.weight_sum != static_cast<double>(world_.size()) ? 1 : 0;
    FEDSILO_CHECK(world_.allreduce_sum(std::span<int64_t>(bad, 1)));
    r.check = bad[0] == 0 ? "ok" : "FAIL(" + std::to_string(bad[0]) + ")";
    if (bad[0] != 0) ++failures_;
  }
  for (int i = 0; i < args_.warmup; ++i) {
    FEDSILO_CHECK(world_.agree(e->secure->contribute(std::span<const float>(update_.data(), N), zeros_, 1.0f, true, {})));
    fl::ExchangeStats xs;
    FEDSILO_CHECK(e->secure->combine(e->round++, true, xs).status());
  }
  return e;
}

Status Bench::timed_iteration(Entry& e) {
  const auto N = static_cast<size_t>(e.row.count);
  // Node leaders read their link's counters between barriers: every byte of this iteration,
  // and only of it, is between the two readings (barrier traffic aside: a few hundred bytes).
  const bool counts_link = !args_.netdev.empty() && topo_->is_leader();
  std::array<int64_t, 2> link0{}, link1{};
  Status link_status;
  // Untimed: the update is written where the exchange reads it, as training writes it there.
  // Secure rows: the silo's weighted update formed (SecureAggregation::contribute), as training
  // forms it before the aggregation; the timed part starts from it, as for the other rows.
  if (e.secure) {
    FEDSILO_CHECK(world_.agree(e.secure->contribute(std::span<const float>(update_.data(), N), zeros_, 1.0f, true, {})));
  } else {
    std::copy(update_.begin(), update_.begin() + static_cast<std::ptrdiff_t>(N), e.buffer.begin());
  }
  FEDSILO_CHECK(world_.barrier());
  if (counts_link) {
    auto c = netdev_bytes(args_.netdev);
    link_status = c.status();
    if (c.ok()) link0 = c.value();
  }
  FEDSILO_CHECK(world_.barrier());
  fl::ExchangeStats xs;  // fresh each time: exchange() assigns some fields and adds to others
  const double cpu0 = process_cpu_seconds();
  const auto t0 = Clock::now();
  if (e.secure) {
    // The selection (shared rand-k with error feedback), the code, the masks, the sum, decoding.
    FEDSILO_CHECK(e.secure->combine(e.round++, true, xs).status());
  } else {
    FEDSILO_CHECK(e.exchange->exchange(e.round++, e.buffer, true, xs));
  }
  e.times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  e.cpu_seconds += process_cpu_seconds() - cpu0;
  FEDSILO_CHECK(world_.barrier());
  if (counts_link && link_status.ok()) {
    auto c = netdev_bytes(args_.netdev);
    link_status = c.status();
    if (c.ok()) link1 = c.value();
  }
  FEDSILO_CHECK(world_.agree(link_status));
  e.link_tx += link1[0] - link0[0];
  e.link_rx += link1[1] - link0[1];
  accumulate(e.sum, xs);
  return {};
}

Status Bench::measure_cell(int64_t n, const std::vector<std::pair<double, std::string>>& specs) {
  std::vector<std::unique_ptr<Entry>> entries;
  for (const auto& [density, name] : specs) {
    FEDSILO_ASSIGN_OR_RETURN(auto e, setup(n, density, name));
    if (!e) continue;
    if (args_.blocks) {
      // One row after another (each row's iterations back to back).
      for (int i = 0; i < args_.iterations; ++i) FEDSILO_CHECK(timed_iteration(*e));
      FEDSILO_CHECK(finish(*e));
    } else {
      entries.push_back(std::move(e));
    }
  }
  // Interleaved: iteration i of every algorithm of the cell before iteration i + 1 of any, so
  // a slow phase of the machine (other jobs, the 4 emulated links' TCP work) hits them alike.
  // The order is a fresh permutation each iteration (mpi::interleave_order: the same on every
  // rank), so each algorithm follows every other about equally often. Measured: without rotation
  // two rows of the same algorithm differed by up to 16%; with a plain rotation, which keeps each
  // row's predecessor, auto's dense-flat row stayed 10-25% behind the dense-flat row.
  const size_t m = entries.size();
  for (int i = 0; i < args_.iterations; ++i) {
    for (const size_t j : mpi::interleave_order(m, i)) FEDSILO_CHECK(timed_iteration(*entries[j]));
  }
  for (auto& e : entries) FEDSILO_CHECK(finish(*e));
  for (auto& e : entries) e.reset();  // in index order on every rank (shared windows)
  return {};
}

Status Bench::finish(Entry& entry) {
  Row& r = entry.row;
  const int64_t n = r.count;
  const double density = r.density;
  const std::vector<double>& times = entry.times;
  const fl::ExchangeStats& e = entry.sum;

  // Per-rank means per iteration, gathered on every rank (rank-major). compress_seconds is
  // the compressor's wall time (level silo) plus the algorithm's encoding (at level node: the
  // leader's compression of the node sum, inside sparse-hier).
  const double it = args_.iterations;
  const double payload = static_cast<double>(e.payload_bytes) / it;
  const std::array<double, 11> mine = {static_cast<double>(e.intra_bytes_sent) / it,
                                       static_cast<double>(e.inter_bytes_sent) / it,
                                       e.compress_seconds / it,
                                       e.intra_seconds / it,
                                       e.inter_seconds / it,
                                       e.decompress_seconds / it,
                                       payload,
                                       payload > 0 ? 1.0 : 0.0,
                                       static_cast<double>(entry.link_tx) / it,
                                       static_cast<double>(entry.link_rx) / it,
                                       entry.cpu_seconds / it};
  std::vector<double> per_rank, all_times;
  FEDSILO_CHECK(world_.allgather(mine, per_rank));
  FEDSILO_CHECK(world_.allgather(times, all_times));
  if (!root()) return {};

  const int P = world_.size();
  const size_t I = times.size();
  std::vector<double> mins(I), meds(I), maxs(I);
  for (size_t i = 0; i < I; ++i) {
    std::vector<double> across(static_cast<size_t>(P));
    for (int q = 0; q < P; ++q) across[static_cast<size_t>(q)] = all_times[q * I + i];
    mins[i] = *std::min_element(across.begin(), across.end());
    maxs[i] = *std::max_element(across.begin(), across.end());
    meds[i] = median_of(across);
  }
  r.t_min = median_of(mins);
  r.t_med = median_of(meds);
  r.t_max = median_of(maxs);
  r.spread_lo = *std::min_element(maxs.begin(), maxs.end());
  r.spread_hi = *std::max_element(maxs.begin(), maxs.end());
  r.algbw = static_cast<double>(r.bytes) / r.t_max * 1e-9;
  r.busbw = r.algbw * 2.0 * (P - 1) / P;
  double payload_sum = 0, payload_ranks = 0, tx = 0, rx = 0;
  for (int q = 0; q < P; ++q) {
    const double* v = &per_rank[static_cast<size_t>(q) * mine.size()];
    r.intra_sent += v[0] / P;
    r.inter_sent += v[1] / P;
    r.inter_sent_total += v[1];
    if (q == 0) {  // rank 0: a node leader, so it does every phase (waits included)
      r.select_ms = v[2] * 1e3;
      r.intra_ms = v[3] * 1e3;
      r.inter_ms = v[4] * 1e3;
      r.decode_ms = v[5] * 1e3;
      r.exchange_cpu_ms = v[10] * 1e3;
    }
    r.cpu_ms_by_rank.push_back(v[10] * 1e3);
    payload_sum += v[6];
    payload_ranks += v[7];
    tx += v[8];
    rx += v[9];
  }
  if (!args_.netdev.empty()) {
    r.link_tx = tx;
    r.link_rx = rx;
  }
  r.payload = payload_ranks > 0 ? payload_sum / payload_ranks : 0.0;
  r.ratio = r.payload > 0 ? static_cast<double>(r.bytes) / r.payload : 1.0;
  // Baseline: uncompressed dense-flat (plain MPI_Allreduce) at this size, else dense-flat at
  // this density (compressed, densified, then MPI_Allreduce).
  const Row* base = nullptr;
  if (r.algorithm == "dense-flat") base = &r;
  for (const auto& b : rows_) {
    if (b.algorithm != "dense-flat" || b.count != n) continue;
    if (b.density >= 1.0 || (b.density == density && !base)) base = &b;
  }
  if (base) r.vs_dense = base->t_max / r.t_max;
  print_row(r);
  rows_.push_back(r);
  doc_["rows"].push_back(row_json(r));
  return {};
}

void Bench::print_row(const Row& r) {
  char spread[40], link[16];
  std::snprintf(spread, sizeof spread, "%.3f..%.3f", r.spread_lo * 1e3, r.spread_hi * 1e3);
  std::snprintf(link, sizeof link, "%s", r.link_tx >= 0 ? human_bytes(r.link_tx).c_str() : "-");
  char vs[16];
  std::snprintf(vs, sizeof vs, r.vs_dense > 0 ? "%.2f" : "-", r.vs_dense);
  std::printf(
      "%10lld %10lld %7g %-16s %-16s %9.3f %9.3f %9.3f %19s %7.3f %7.3f %9s %9s %9s %7.1f %7s "
      "%s\n",
      static_cast<long long>(r.bytes), static_cast<long long>(r.count), r.density,
      r.algorithm.c_str(), r.chosen.c_str(), r.t_min * 1e3, r.t_med * 1e3, r.t_max * 1e3, spread,
      r.algbw, r.busbw, human_bytes(r.intra_sent).c_str(), human_bytes(r.inter_sent).c_str(), link,
      r.ratio, vs, r.check.c_str());
  const auto [cpu_lo, cpu_hi] = std::minmax_element(r.cpu_ms_by_rank.begin(), r.cpu_ms_by_rank.end());
  std::printf(
      "#   rank 0's phases (mean ms): select+encode %.2f, intra %.2f, inter %.2f, decode+merge "
      "%.2f; CPU time in exchange() %.2f (all ranks %.2f..%.2f)\n",
      r.select_ms, r.intra_ms, r.inter_ms, r.decode_ms, r.exchange_cpu_ms,
      r.cpu_ms_by_rank.empty() ? 0.0 : *cpu_lo, r.cpu_ms_by_rank.empty() ? 0.0 : *cpu_hi);
  std::fflush(stdout);
}

/// auto against the fastest algorithm of each (size, density) cell. At level node the dense
/// rows (measured once per size, uncompressed) belong to every density's cell.
void Bench::summarize() {
  const bool node_level = node_level_;
  json cells = json::array();
  for (const auto& a : rows_) {
    if (a.algorithm != "auto") continue;
    const Row* best = nullptr;
    for (const auto& b : rows_) {
      if (b.algorithm == "auto" || b.count != a.count) continue;
      const bool dense_row = b.algorithm == "dense-flat" || b.algorithm == "dense-hier";
      if (b.density != a.density && !(node_level && dense_row)) continue;
      if (!best || b.t_max < best->t_max) best = &b;
    }
    if (!best) continue;
    const double ratio = a.t_max / best->t_max;
    std::printf(
        "# auto at %lld floats, density %g: chose %s, %.3f ms; fastest %s %.3f ms; "
        "auto/fastest = %.3f (%s 1.1)\n",
        static_cast<long long>(a.count), a.density, a.chosen.c_str(), a.t_max * 1e3,
        best->chosen.c_str(), best->t_max * 1e3, ratio, ratio <= 1.1 ? "<=" : ">");
    cells.push_back({{"count", a.count},
                     {"density", a.density},
                     {"auto_chose", a.chosen},
                     {"auto_ms", a.t_max * 1e3},
                     {"fastest", best->chosen},
                     {"fastest_ms", best->t_max * 1e3},
                     {"auto_over_fastest", ratio}});
  }
  doc_["auto_vs_fastest"] = cells;
  doc_["load_average_end"] = load_average();
  std::printf("# load average at the end: %s\n", load_average().c_str());
}

Status Bench::write_json() {
  if (args_.json.empty()) return {};
  std::ofstream f(args_.json);
  f << doc_.dump(2) << "\n";
  f.close();
  if (!f) return io_error("cannot write " + args_.json);
  return {};
}

Status Bench::run(const std::string& commit) {
  FEDSILO_CHECK(world_.agree(parse()));
  FEDSILO_ASSIGN_OR_RETURN(mpi::Topology topo, mpi::Topology::create(world_, args_.emulated_nodes));
  topo_ = std::make_unique<mpi::Topology>(std::move(topo));
  if (args_.link_gbps > 0) {
    link_.inter_bandwidth_Bps = args_.link_gbps * 1e9 / 8.0;
    link_.inter_latency_s = args_.link_latency_us * 1e-6;
  } else {
    FEDSILO_ASSIGN_OR_RETURN(link_, mpi::calibrate_links(*topo_, link_));
  }
  FEDSILO_CHECK(header(commit));

  const auto max_n = static_cast<size_t>(sizes_.back());
  update_.resize(max_n);
  out_.resize(max_n);
  fill_normal(update_, args_.seed, world_.rank());
  if (args_.check) {
    exact_.resize(max_n);
    ref_.resize(max_n);
    const bool aligned = value_type_ == kernels::ValueType::kInt8;
    fill_exact(exact_, args_.seed, world_.rank(), aligned);
    const double dmax = *std::max_element(args_.densities.begin(), args_.densities.end());
    if (aligned && root() && dmax < 1.0 && dmax > 0.5) {
      std::printf("# note: int8 checks are exact only at densities <= 0.5\n");
    }
  }

  const bool node_level = node_level_;
  for (const int64_t n : sizes_) {
    bool dense_done = false;
    for (const double d : args_.densities) {
      std::vector<std::pair<double, std::string>> cell;
      for (const auto& a : args_.algorithms) {
        const bool dense = a == "dense-flat" || a == "dense-hier";
        // Level node: dense algorithms carry the uncompressed update whatever the density
        // (as in training), so they are measured once per size, as density 1, in the cell of
        // the first density.
        if (node_level && dense && dense_done) continue;
        const double density = node_level && dense ? 1.0 : d;
        cell.emplace_back(density, a);
      }
      FEDSILO_CHECK(measure_cell(n, cell));
      dense_done = true;
      // Rewritten after every cell, so a run cut short keeps what it measured.
      FEDSILO_CHECK(world_.agree(root() ? write_json() : Status()));
    }
  }
  Status written;
  if (root()) {
    summarize();
    written = write_json();
    if (failures_ > 0) std::printf("# %d rows FAILED the check\n", failures_);
  }
  return world_.agree(written);
}

}  // namespace

CLI::App* add_allreduce_command(CLI::App& parent, AllreduceBenchArgs& a) {
  auto* s = parent.add_subcommand(
      "allreduce",
      "Time training's update exchange (fl::UpdateExchange: error feedback, selection, "
      "encoding, exchange, merge) with every allreduce algorithm; run under mpirun/srun, one "
      "rank per silo");
  s->add_option("-b,--minbytes", a.min_bytes, "Smallest dense fp32 update, bytes (K/M/G)")
      ->capture_default_str();
  s->add_option("-e,--maxbytes", a.max_bytes, "Largest dense fp32 update, bytes (K/M/G)")
      ->capture_default_str();
  s->add_option("-f,--stepfactor", a.factor, "Multiplication factor between sizes")
      ->capture_default_str();
  s->add_option("-n,--iters", a.iterations, "Timed iterations per row")->capture_default_str();
  s->add_option("-w,--warmup_iters", a.warmup, "Warm-up iterations per row")->capture_default_str();
  s->add_flag("-c,--check", a.check,
              "Check every row first: exact-sum inputs, result == MPI_Allreduce of the "
              "densified contributions, bit for bit");
  s->add_flag("--blocks", a.blocks,
              "Time each row's iterations back to back (default: the algorithms of a size and "
              "density cell take turns, iteration by iteration)");
  s->add_option("--densities", a.densities, "Fractions sent (1 = no compression)")
      ->delimiter(',')
      ->capture_default_str();
  s->add_option("--algorithms", a.algorithms,
                "dense-flat, dense-hier, sparse-allgather, sparse-rd, sparse-hier (leaders by "
                "allgather), auto, secure, secure-hier (secure aggregation, flat or node by node: the "
                "dense update, or below density 1 a shared rand-k set)")
      ->delimiter(',')
      ->capture_default_str();
  s->add_option("--value-type", a.value_type, "fp32 | fp16 | bf16 | int8")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "fp16", "bf16", "int8"}));
  s->add_option("--level", a.level, "What is compressed: silo | node")
      ->capture_default_str()
      ->check(CLI::IsMember({"silo", "node"}));
  s->add_option("--method", a.method, "Compressor: topk | topk-sampled | randk")
      ->capture_default_str();
  s->add_flag("--no-error-feedback", a.no_error_feedback, "Compress without a residual");
  s->add_option("--emulated-nodes", a.emulated_nodes,
                "Cut the ranks into N nodes of consecutive ranks (0: real nodes, or "
                "FEDSILO_EMULATED_NODES)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  s->add_option("--link-gbps", a.link_gbps,
                "Inter-node link speed for auto, as allreduce.link_gbps: auto then decides by its "
                "model, without a trial (0: each auto row calibrates, as training's start-up)")
      ->capture_default_str();
  s->add_option("--link-latency-us", a.link_latency_us,
                "Inter-node latency for auto with --link-gbps")
      ->capture_default_str();
  s->add_option("--threads", a.threads,
                "Compressor threads per rank: 1 only (the exchange compresses with 1, as training)")
      ->capture_default_str();
  s->add_option("--seed", a.seed, "Input and compressor seed")->capture_default_str();
  s->add_option("--json", a.json, "Write the rows as JSON here (rank 0)");
  s->add_option("--netdev", a.netdev,
                "Interface whose byte counters (/proc/net/dev) each node leader reads around "
                "the timed iterations");
  s->add_option("--commit", a.commit, "Commit to print (default: git rev-parse in the cwd)");
  return s;
}

int run_allreduce_bench(const AllreduceBenchArgs& args) {
  // Only the first process looks the commit up (before MPI_Init, so no MPI process forks).
  std::string commit = args.commit;
  const char* rank_env = std::getenv("OMPI_COMM_WORLD_RANK");
  if (!rank_env) rank_env = std::getenv("PMIX_RANK");
  const bool first = !rank_env || std::string(rank_env) == "0";
  if (commit.empty() && first) commit = git_commit();

  auto runtime = mpi::Runtime::init(nullptr, nullptr);
  if (!runtime.ok()) {
    std::fprintf(stderr, "fedsilo bench allreduce: error: %s\n",
                 runtime.status().message().c_str());
    return cli::kExitError;
  }
  auto world = mpi::Comm::world();
  if (!world.ok()) {
    std::fprintf(stderr, "fedsilo bench allreduce: error: %s\n", world.status().message().c_str());
    return cli::kExitError;
  }
  Status st = world->broadcast(commit, 0);
  Bench bench(args, world.value());
  if (st.ok()) st = bench.run(commit);
  st = world->agree(st);
  if (!st.ok()) {
    if (world->rank() == 0) {
      std::fprintf(stderr, "fedsilo bench allreduce: error: %s\n", st.message().c_str());
      std::fflush(stderr);
    }
    return cli::exit_code_for(st);
  }
  return bench.failures() > 0 ? cli::kExitError : cli::kExitOk;
}

}  // namespace fedsilo::bench
