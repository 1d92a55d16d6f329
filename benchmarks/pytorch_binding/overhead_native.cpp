// The native side of the binding-overhead benchmark (benchmarks/pytorch_binding/overhead.py):
// the round after local training as `fedsilo train` runs it, fl::RoundStep::run on a
// std::vector<float> of n parameters (this silo's update, the exchange, the server step), built
// as tests/mpi/test_round_step.cpp builds it from the config the binding reads. fedsilo.torch's
// `fed.aggregate()` does the same work on a PyTorch model's flat buffer; overhead.py times both
// with the same input and interleaves the runs.
//
// Each run: call 1 on the fixed input below (the resulting global model's checksum is the
// validation: the binding's must be the same, and `--dump` writes the model for a bit-for-bit
// comparison), `--warmup` calls, then `--calls` timed calls,
// each after a barrier. Every call's seconds on every rank go to the JSON file (rank 0 writes
// it); the printed figure is the median over calls of the slowest rank's time.
//
// `--copy-back` also copies the new global model into `local` after each call, inside the timed
// region: what the binding did before it wrote its buffer in the check's pass (fl::RoundStep::
// finish's `also`), and what `fedsilo train` does at the start of each round's training.
//
// Usage: mpirun -np 2 overhead_native --config FILE --log2n 24 [--calls 5] [--warmup 1]
//                                     [--copy-back] [--json FILE] [--dump FILE] [--commit SHA]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "benchmarks/common/machine.h"
#include "config/config.h"
#include "fl/aggregation.h"
#include "fl/round_step.h"
#include "fl/strategy.h"
#include "fl/update_exchange.h"
#include "mpi/comm.h"

namespace {

using namespace fedsilo;

struct Options {
  std::string config;
  int log2n = 22;
  int calls = 5;
  int warmup = 1;
  std::string json_path;
  std::string dump_path;
  std::string commit;
  bool copy_back = false;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--copy-back") {
      o.copy_back = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "overhead_native: '%s' needs a value\n", a.c_str());
      return false;
    }
    const std::string v = argv[++i];
    if (a == "--config") {
      o.config = v;
    } else if (a == "--log2n") {
      o.log2n = std::atoi(v.c_str());
    } else if (a == "--calls") {
      o.calls = std::atoi(v.c_str());
    } else if (a == "--warmup") {
      o.warmup = std::atoi(v.c_str());
    } else if (a == "--json") {
      o.json_path = v;
    } else if (a == "--dump") {
      o.dump_path = v;
    } else if (a == "--commit") {
      o.commit = v;
    } else {
      std::fprintf(stderr, "overhead_native: unknown argument '%s'\n", a.c_str());
      return false;
    }
  }
  if (o.config.empty() || o.log2n < 4 || o.log2n > 28 || o.calls < 1 || o.warmup < 0) {
    std::fprintf(stderr,
                 "overhead_native: --config is required; --log2n in [4, 28], --calls >= 1, "
                 "--warmup >= 0\n");
    return false;
  }
  o.commit = bench::commit_or_env(o.commit);
  return true;
}

// The fixed input, the same in overhead.py: the initial global model
// g0[i] = (i mod 251 - 125) / 64, rank r's trained parameters
// g0[i] + ((7 i + 3 r) mod 17 - 8) / 128, its weight 1000 (r + 1). Every value is a multiple of
// 2^-7 below 2^2, so both sides start from the same bits.
float initial_global(int64_t i) {
  return static_cast<float>(i % 251 - 125) / 64.0f;
}
float trained(int64_t i, int rank) {
  return initial_global(i) + static_cast<float>((7 * i + 3 * rank) % 17 - 8) / 128.0f;
}
double weight_of(int rank) {
  return 1000.0 * (rank + 1);
}

// A checksum of the model's bits that any change of one element changes: the sum over i of
// (bits_i + 1) (2 i + 1) mod 2^64 (2 i + 1 is odd, so invertible mod 2^64). overhead.py computes
// it the same way with NumPy; the validation compares them.
uint64_t checksum(const std::vector<float>& v) {
  uint64_t h = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t bits = 0;
    std::memcpy(&bits, &v[i], sizeof bits);
    h += (uint64_t{bits} + 1) * (2 * uint64_t{i} + 1);
  }
  return h;
}

std::string hex(uint64_t h) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

[[noreturn]] void fail(const char* what, const Status& st) {
  std::fprintf(stderr, "overhead_native: %s: %s\n", what, st.message().c_str());
  mpi::Runtime::abort_job(1);
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = mpi::Runtime::init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "overhead_native: %s\n", rt.status().message().c_str());
    return 1;
  }
  auto world_or = mpi::Comm::world();
  if (!world_or.ok()) fail("MPI", world_or.status());
  mpi::Comm& world = world_or.value();
  Options o;
  // Every rank parses the same arguments: all stop together on a bad one.
  if (!parse(argc, argv, o)) return 2;
  const int rank = world.rank(), size = world.size();

  auto cfg = config::load_config(o.config);
  Status st = world.agree(cfg.status());
  if (!st.ok()) fail("config", st);
  const int64_t n = int64_t{1} << o.log2n;

  // The objects as fl::Session::start builds them (and tests/mpi/test_round_step.cpp).
  auto strategy = fl::make_strategy(cfg.value());
  st = world.agree(strategy.status());
  if (!st.ok()) fail("strategy", st);
  auto exchange = fl::UpdateExchange::create(cfg.value(), world, n, "", -1);
  st = world.agree(exchange.status());
  if (!st.ok()) fail("exchange", st);
  auto aggregation = fl::make_aggregation(cfg.value(), world, -1, {}, **exchange, n);
  if (!aggregation.ok()) fail("aggregation", aggregation.status());
  fl::RoundStep step(world, **aggregation, **strategy);

  std::vector<float> global(static_cast<size_t>(n)), local(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    global[static_cast<size_t>(i)] = initial_global(i);
    local[static_cast<size_t>(i)] = trained(i, rank);
  }
  const double weight = weight_of(rank);

  // Validation: one round on the fixed input.
  fl::ExchangeStats xs;
  st = step.run(1, local, weight, true, global, xs);
  if (!st.ok()) fail("round 1", st);
  const uint64_t hash = checksum(global);
  if (rank == 0 && !o.dump_path.empty()) {  // the model's bytes, for a bit-for-bit comparison
    std::ofstream(o.dump_path, std::ios::binary)
        .write(reinterpret_cast<const char*>(global.data()),
               static_cast<std::streamsize>(n * sizeof(float)));
  }
  std::vector<int64_t> hashes;  // every rank's, which must be equal
  const auto h64 = static_cast<int64_t>(hash);
  st = world.allgather(std::span<const int64_t>(&h64, 1), hashes);
  if (!st.ok()) fail("allgather", st);

  // Warm-up, then the timed calls (the input's values no longer matter: a dense FedAvg round
  // runs the same loops whatever they are).
  std::vector<double> mine;
  for (int c = 0; c < o.warmup + o.calls; ++c) {
    st = world.barrier();
    if (!st.ok()) fail("barrier", st);
    const auto t0 = std::chrono::steady_clock::now();
    st = step.run(static_cast<uint32_t>(c + 2), local, weight, true, global, xs);
    if (o.copy_back) std::copy(global.begin(), global.end(), local.begin());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!st.ok()) fail("timed round", st);
    if (c >= o.warmup) mine.push_back(s);
  }
  std::vector<double> all;  // rank-major: all[r * calls + c]
  st = world.allgather(std::span<const double>(mine), all);
  if (!st.ok()) fail("allgather", st);

  if (rank == 0) {
    std::vector<double> slowest(static_cast<size_t>(o.calls), 0.0);
    for (int r = 0; r < size; ++r) {
      for (int c = 0; c < o.calls; ++c) {
        slowest[c] = std::max(slowest[c], all[static_cast<size_t>(r * o.calls + c)]);
      }
    }
    std::vector<double> sorted = slowest;
    std::sort(sorted.begin(), sorted.end());
    const size_t k = sorted.size();
    const double median = k % 2 ? sorted[k / 2] : 0.5 * (sorted[k / 2 - 1] + sorted[k / 2]);
    for (const int64_t h : hashes) {
      if (h != h64) {
        std::fprintf(stderr, "overhead_native: the ranks' global models differ after round 1\n");
        mpi::Runtime::abort_job(1);
      }
    }
    std::printf(
        "overhead_native%s: n 2^%d, %d ranks, %s, %s; checksum %s; median %.3f ms [%.3f, %.3f] "
        "of %d calls (slowest rank)\n",
        o.copy_back ? " --copy-back" : "", o.log2n, size, (*aggregation)->name().c_str(),
        (*strategy)->name().c_str(), hex(hash).c_str(), 1e3 * median, 1e3 * sorted.front(),
        1e3 * sorted.back(), o.calls);
    if (!o.json_path.empty()) {
      nlohmann::json j;
      j["side"] = o.copy_back ? "native+copy" : "native";
      j["machine"] = bench::cpu_model_name();
      j["commit"] = o.commit;
      j["ranks"] = size;
      j["log2n"] = o.log2n;
      j["aggregation"] = (*aggregation)->name();
      j["checksum"] = hex(hash);
      j["warmup"] = o.warmup;
      nlohmann::json per_rank = nlohmann::json::array();
      for (int r = 0; r < size; ++r) {
        per_rank.push_back(
            std::vector<double>(all.begin() + r * o.calls, all.begin() + (r + 1) * o.calls));
      }
      j["seconds"] = per_rank;  // [rank][call]
      std::ofstream(o.json_path) << j.dump() << "\n";
    }
  }
  return 0;
}
