// The native side of the binding's bit-for-bit test (test_bitwise.py): fl::RoundStep built from
// a config as `fedsilo train` builds it, fed for R rounds with exact inputs, every round's global
// model written to a file. rounds_torch.py feeds fedsilo.torch the same inputs; the two files
// must be equal bit for bit.
//
// Inputs (every value a small multiple of a power of two, so float sums are exact in any order):
//   global_0[i]            = ((5 i + 3) mod 11 - 5) / 16
//   local(round, rank)[i]  = global[i] + delta(round, rank, i)
//   delta(round, rank, i)  = ((7 i + 13 rank + 3 round) mod 17 - 8) / 64
//   weight(rank)           = 2 rank + 1   (the weights of P ranks sum to P^2: a power of two
//                                          for P = 2 and 4, so the mean is exact too)
//
// usage: native_rounds CONFIG N ROUNDS OUT   (writes OUT.rankR.bin: ROUNDS x N float32)
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "fl/aggregation.h"
#include "fl/round_step.h"
#include "fl/strategy.h"
#include "fl/update_exchange.h"
#include "mpi/comm.h"

namespace {

using namespace fedsilo;

float initial(int64_t i) {
  return static_cast<float>((i * 5 + 3) % 11 - 5) / 16.0f;
}
float delta(int64_t round, int rank, int64_t i) {
  return static_cast<float>((i * 7 + rank * 13 + round * 3) % 17 - 8) / 64.0f;
}

Status run(const std::string& config_path, int64_t n, int rounds, const std::string& out,
           mpi::Comm& world) {
  auto cfg = config::load_config(config_path);
  FEDSILO_CHECK(world.agree(cfg.status()));
  auto strategy = fl::make_strategy(cfg.value());
  FEDSILO_CHECK(world.agree(strategy.status()));
  auto exchange = fl::UpdateExchange::create(cfg.value(), world, n, "", -1);
  FEDSILO_CHECK(world.agree(exchange.status()));
  auto aggregation = fl::make_aggregation(cfg.value(), world, -1, {}, **exchange, n);
  FEDSILO_CHECK(world.agree(aggregation.status()));
  fl::RoundStep step(world, **aggregation, **strategy);

  const int rank = world.rank();
  std::vector<float> global(static_cast<size_t>(n)), local(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) global[static_cast<size_t>(i)] = initial(i);
  std::ofstream file(out + ".rank" + std::to_string(rank) + ".bin", std::ios::binary);
  for (int round = 1; round <= rounds; ++round) {
    for (int64_t i = 0; i < n; ++i) {
      local[static_cast<size_t>(i)] = global[static_cast<size_t>(i)] + delta(round, rank, i);
    }
    fl::ExchangeStats stats;
    FEDSILO_CHECK(
        step.run(static_cast<uint32_t>(round), local, 2.0 * rank + 1.0, true, global, stats));
    file.write(reinterpret_cast<const char*>(global.data()),
               static_cast<std::streamsize>(global.size() * sizeof(float)));
  }
  file.close();
  return world.agree(file ? Status() : Status(StatusCode::kIoError, out + ": write failed"));
}

}  // namespace

int main(int argc, char** argv) {
  auto runtime = mpi::Runtime::init(&argc, &argv);
  if (!runtime.ok()) {
    std::fprintf(stderr, "native_rounds: %s\n", runtime.status().message().c_str());
    return 1;
  }
  if (argc != 5) {
    std::fprintf(stderr, "usage: native_rounds CONFIG N ROUNDS OUT\n");
    return 2;
  }
  Status st;
  {
    auto world = mpi::Comm::world();
    st = world.status();
    if (st.ok()) st = run(argv[1], std::atoll(argv[2]), std::atoi(argv[3]), argv[4], world.value());
  }
  if (!st.ok()) std::fprintf(stderr, "native_rounds: error: %s\n", st.message().c_str());
  return st.ok() ? 0 : 1;
}
