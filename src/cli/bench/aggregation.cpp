// One whole aggregation for the allreduce benchmark, following fl::UpdateExchange::exchange
// step by step so that the benchmark times what a training round pays.
#include "cli/bench/aggregation.h"

#include <algorithm>
#include <chrono>
#include <ctime>

#include "mpi/wire_format.h"

namespace fedsilo::bench {
namespace {

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// CPU seconds this process has run (the compressor's OpenMP threads included).
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

Result<std::unique_ptr<Aggregation>> Aggregation::create(mpi::Topology& topology,
                                                         const AggregationSettings& settings,
                                                         double density,
                                                         const std::string& algorithm,
                                                         mpi::LeaderExchange leader_exchange) {
  std::unique_ptr<Aggregation> a(new Aggregation(topology, settings));
  const bool node_level = settings.level == mpi::CompressionLevel::kNode;
  // Level node on a dense algorithm (as `auto` may choose) sums the updates uncompressed.
  const bool dense_name = algorithm == "dense-flat" || algorithm == "dense-hier";
  const bool compress = density < 1.0 && !(node_level && dense_name);
  const bool sparse_name = algorithm == "sparse-allgather" || algorithm == "sparse-rd";
  if (node_level && sparse_name) {
    return invalid_argument(algorithm +
                            " sums per-silo sparse contributions; level node runs sparse-hier "
                            "(its leaders use an allgather or recursive doubling)");
  }
  if (!node_level && algorithm == "sparse-hier") {
    return invalid_argument("sparse-hier compresses the node sum: it needs level node");
  }
  if (!compress && (sparse_name || algorithm == "sparse-hier")) {
    return invalid_argument(algorithm + " needs compression (density < 1)");
  }
  if (compress) {
    FEDSILO_ASSIGN_OR_RETURN(a->compressor_,
                             compression::make_compressor(settings.compression_config(density)));
  }

  mpi::AlgorithmConfig ac;
  ac.name = algorithm;
  ac.sparse.value_type = settings.value_type;
  ac.leader_exchange = leader_exchange;
  Aggregation* self = a.get();
  if (node_level && compress) {
    // As in training: the leader compresses its node's sum with its own residual.
    ac.compressor = [self](std::span<const float> own,
                           std::span<const float* const> peers) -> Result<kernels::SparseVector> {
      const double cpu0 = process_cpu_seconds();
      auto out = self->compressor_->compress_sum(own, peers, self->state_, self->settings_.seed,
                                                 self->round_,
                                                 static_cast<uint32_t>(self->topo_.world().rank()));
      self->compress_cpu_ += process_cpu_seconds() - cpu0;
      if (out.ok() && self->capture_) self->contribution_ = out.value();
      return out;
    };
  }
  if (compress && !node_level) {
    FEDSILO_ASSIGN_OR_RETURN(a->sparse_, mpi::make_sparse_allreduce(topology, ac));
  } else {
    FEDSILO_ASSIGN_OR_RETURN(a->dense_, mpi::make_dense_allreduce(topology, ac));
  }
  return a;
}

Result<std::span<float>> Aggregation::output(int64_t n, std::span<float> fallback) {
  if (dense_) {
    FEDSILO_ASSIGN_OR_RETURN(const std::span<float> own, dense_->buffer(n));
    if (!own.empty()) return own;
  }
  return fallback;
}

void Aggregation::prepare(std::span<const float> update, std::span<float> out) const {
  if (!sparse_) std::copy(update.begin(), update.end(), out.begin());
}

Status Aggregation::run(uint32_t round, std::span<const float> update, std::span<float> out,
                        AggregationStats& stats) {
  round_ = round;
  mpi::Comm& world = topo_.world();
  if (sparse_) {
    // Level silo, as UpdateExchange::exchange: compress, agree on the outcome, exchange.
    const auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = process_cpu_seconds();
    auto c = compressor_->compress(update, state_, settings_.seed, round,
                                   static_cast<uint32_t>(world.rank()));
    stats.compress_cpu_seconds += process_cpu_seconds() - cpu0;
    const Status st = c.status();
    if (c.ok()) contribution_ = std::move(c).value();
    FEDSILO_CHECK(world.agree(st.ok() ? st : Status(st.code(), "compression: " + st.message())));
    stats.compress_seconds += since(t0);
    return sparse_->sum(round, contribution_, out, stats.exchange);
  }
  if (auto* alg = dynamic_cast<mpi::DenseAllreduceAlgorithm*>(dense_.get())) {
    compress_cpu_ = 0.0;
    const Status st = alg->reduce(round, out, stats.exchange);
    stats.compress_cpu_seconds += compress_cpu_;
    return st;
  }
  // dense-flat is an mpi::Reducer only: its bytes and seconds count as inter-node, or
  // intra-node on a single node (as UpdateExchange does).
  mpi::ReduceStats rs;
  FEDSILO_CHECK(dense_->sum(out, rs));
  const bool single = topo_.num_nodes() == 1;
  auto& e = stats.exchange;
  (single ? e.intra_bytes_sent : e.inter_bytes_sent) += rs.bytes_sent;
  (single ? e.intra_bytes_received : e.inter_bytes_received) += rs.bytes_received;
  (single ? e.intra_seconds : e.inter_seconds) += rs.seconds;
  e.total_seconds += rs.seconds;
  return {};
}

Result<int64_t> Aggregation::contribution_wire_bytes() const {
  if (contribution_.length == 0) return int64_t{0};
  std::vector<uint8_t> wire;
  mpi::EncodeOptions eo;
  eo.value_type = settings_.value_type;
  FEDSILO_CHECK(mpi::encode_sparse(contribution_, 0, topo_.world().rank(), eo, wire));
  return static_cast<int64_t>(wire.size());
}

}  // namespace fedsilo::bench
