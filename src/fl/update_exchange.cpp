// Compression + allreduce for the round driver.
#include "fl/update_exchange.h"

#include <algorithm>
#include <chrono>

#include "compression/compressor.h"
#include "fl/transform.h"
#include "mpi/algorithm.h"
#include "mpi/selector.h"
#include "mpi/topology.h"
#include "mpi/wire_format.h"

namespace fedsilo::fl {
using Clock = std::chrono::steady_clock;

struct UpdateExchange::Impl {
  config::Config cfg;
  mpi::Comm* world = nullptr;
  std::shared_ptr<mpi::Topology> topology;  // shared with auto's trial exchanges
  int64_t length = 0;
  bool node_level = false;
  bool node_compresses = false;  // level node on sparse-hier (not a dense algorithm chosen by auto)
  compression::CompressionConfig zcfg;
  // This silo's transforms (compression at level silo), in order; `compression` is the one
  // among them that compresses, whose state residual()/velocity() give.
  std::vector<std::unique_ptr<SiloTransform>> chain;
  CompressionTransform* compression = nullptr;
  SharedIndexTransform* shared = nullptr;  // under secure aggregation, with compression
  // Level node: the leader's compressor of its node's sum, and its state.
  std::unique_ptr<compression::Compressor> node_compressor;
  compression::CompressorState node_state;
  std::unique_ptr<mpi::SparseAllreduceAlgorithm> sparse;  // the chain ends in a sparse update
  std::unique_ptr<mpi::DenseAllreduceAlgorithm> dense;    // it ends dense (or is empty)
  std::string algorithm;
  uint32_t round = 0;                  // for the node compressor callback
  int64_t node_payload_bytes = 0;      // the leader's compressed node sum on the wire
};

UpdateExchange::UpdateExchange(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
UpdateExchange::~UpdateExchange() = default;
const std::string& UpdateExchange::algorithm() const { return impl_->algorithm; }
std::vector<float>& UpdateExchange::residual() {
  return impl_->compression ? impl_->compression->compressor_state().residual
                            : impl_->node_state.residual;
}
std::vector<float>& UpdateExchange::velocity() {
  return impl_->compression ? impl_->compression->compressor_state().velocity
                            : impl_->node_state.velocity;
}

std::vector<std::pair<std::string, std::vector<float>*>> UpdateExchange::private_state() {
  std::vector<std::pair<std::string, std::vector<float>*>> out;
  for (auto& t : impl_->chain) {
    for (auto& named : t->state()) out.push_back(named);
  }
  if (impl_->node_compressor) {
    out.emplace_back("residual", &impl_->node_state.residual);
    out.emplace_back("velocity", &impl_->node_state.velocity);
  }
  return out;
}

std::string UpdateExchange::topology() const {
  const auto& t = *impl_->topology;
  return std::to_string(t.num_nodes()) + (t.num_nodes() == 1 ? " node" : " nodes") + " x " +
         std::to_string(t.local_size()) + " ranks" + (t.emulated() ? " (emulated)" : "");
}

std::string UpdateExchange::layout() const {
  const auto& t = *impl_->topology;
  std::string out;
  for (int r = 0; r < impl_->world->size(); ++r) {
    out += (r == 0 ? "" : ",") + std::to_string(t.node_of(r));
  }
  return out;
}

bool UpdateExchange::state_on_leaders() const { return impl_->node_level; }

mpi::Topology& UpdateExchange::node_topology() { return *impl_->topology; }

namespace {
// The compressor a rank uses: on its GPU when it trains on one (bit for bit the CPU's).
Result<std::unique_ptr<compression::Compressor>> make_rank_compressor(
    const compression::CompressionConfig& zcfg, int cuda_device) {
  return cuda_device >= 0 ? compression::make_cuda_compressor(zcfg, cuda_device)
                          : compression::make_compressor(zcfg);
}
}  // namespace

Result<double> measure_leader_compression(mpi::Topology& topology,
                                          const compression::CompressionConfig& zcfg,
                                          uint64_t seed, int64_t length, int cuda_device) {
  FEDSILO_ASSIGN_OR_RETURN(auto compressor, make_rank_compressor(zcfg, cuda_device));
  const int64_t sample = std::max<int64_t>(1, std::min<int64_t>(length, int64_t{1} << 20));
  compression::CompressorState scratch;
  if (zcfg.error_feedback) scratch.residual.assign(static_cast<size_t>(sample), 0.0f);
  if (zcfg.momentum_correction > 0.0) scratch.velocity.assign(static_cast<size_t>(sample), 0.0f);
  auto work = [&](std::span<const float> s) -> Status {
    FEDSILO_ASSIGN_OR_RETURN(auto sv, compressor->compress(s, scratch, seed, 0, 0));
    std::vector<uint8_t> wire;
    mpi::EncodeOptions eo;
    eo.value_type = zcfg.value_type;
    return mpi::encode_sparse(sv, 0, 0, eo, wire);
  };
  return mpi::calibrate_compute(topology, work, sample);
}

Result<std::unique_ptr<UpdateExchange>> UpdateExchange::create(
    const config::Config& cfg, mpi::Comm& world, int64_t length,
    const std::string& resolved_algorithm, int cuda_device) {
  const auto& z = cfg.compression;
  FEDSILO_ASSIGN_OR_RETURN(mpi::Topology topo, mpi::Topology::create(world, cfg.topology.emulated_nodes));
  auto topology = std::make_shared<mpi::Topology>(std::move(topo));
  compression::CompressionConfig zcfg = config::compression_config(z);
  FEDSILO_CHECK(compression::validate(zcfg));
  // One thread: at level silo every rank compresses at once; at level node a multi-threaded
  // leader measured no faster on the emulated nodes (whose leaders share the cores) and ranks
  // are usually bound to one core each.
  zcfg.threads = 1;

  // An exchange running algorithm `name`, with a fresh compressor state.
  auto build = [&](const std::string& name,
                   mpi::LeaderExchange leaders) -> Result<std::unique_ptr<UpdateExchange>> {
    auto impl = std::make_unique<Impl>();
    impl->cfg = cfg;
    impl->world = &world;
    impl->length = length;
    impl->topology = topology;
    impl->zcfg = zcfg;
    // Under secure aggregation every silo keeps its own residual, also at level node (a leader
    // never holds anything unmasked).
    impl->node_level = z.level == config::CompressionLevel::kNode && !cfg.secure_aggregation.enabled;
    impl->algorithm = name;
    // The chain the config asks for (validated with the config): each transform here.
    for (const TransformSpec& spec : configured_chain(cfg)) {
      // Coding and masking are SecureAggregation's, which sums without this exchange.
      if (spec.name == "secure aggregation") continue;
      if (spec.name != "compression") {
        return internal_error("update exchange: no transform named '" + spec.name + "'");
      }
      if (cfg.secure_aggregation.enabled) {
        // Secure aggregation masks one index set that every silo shares.
        auto t = std::make_unique<SharedIndexTransform>(spec, z.method, length,
                                                        compression::selected_count(zcfg, length),
                                                        z.error_feedback, cfg.run.seed);
        impl->shared = t.get();
        impl->chain.push_back(std::move(t));
        continue;
      }
      FEDSILO_ASSIGN_OR_RETURN(auto compressor, make_rank_compressor(zcfg, cuda_device));
      // SCAFFOLD's update is two halves (model, control variate), each compressed on its own.
      const int64_t split = cfg.strategy.name == config::StrategyName::kScaffold ? length / 2 : 0;
      auto t = std::make_unique<CompressionTransform>(std::move(compressor), spec, length,
                                                      cfg.run.seed, split);
      impl->compression = t.get();
      impl->chain.push_back(std::move(t));
    }
    if (impl->node_level && z.method != compression::Method::kNone) {
      FEDSILO_ASSIGN_OR_RETURN(impl->node_compressor, make_rank_compressor(zcfg, cuda_device));
      if (z.error_feedback) impl->node_state.residual.assign(static_cast<size_t>(length), 0.0f);
      if (z.momentum_correction > 0.0) {
        impl->node_state.velocity.assign(static_cast<size_t>(length), 0.0f);
      }
    }
    // SecureAggregation sums the masked words itself (mpi::IntegerSum, in this algorithm's
    // shape); the exchange holds the topology and the silo's chain.
    if (cfg.secure_aggregation.enabled) return std::unique_ptr<UpdateExchange>(new UpdateExchange(std::move(impl)));
    mpi::AlgorithmConfig ac;
    ac.name = name;
    ac.sparse.value_type = zcfg.value_type;
    ac.leader_exchange = leaders;
    Impl* self = impl.get();
    // Level node compresses inside sparse-hier; a dense algorithm (`auto` found that
    // compression does not pay) sums the updates uncompressed.
    impl->node_compresses = impl->node_level && name == "sparse-hier";
    if (impl->node_compresses) {
      // The node leader compresses the node's sum with its own residual.
      ac.compressor = [self](std::span<const float> own,
                             std::span<const float* const> peers) -> Result<kernels::SparseVector> {
        auto out = self->node_compressor->compress_sum(own, peers, self->node_state,
                                                       self->cfg.run.seed,
                                                  self->round,
                                                  static_cast<uint32_t>(self->world->rank()));
        if (out.ok()) {
          std::vector<uint8_t> wire;
          mpi::EncodeOptions eo;
          eo.value_type = self->zcfg.value_type;
          if (mpi::encode_sparse(out.value(), self->round, self->world->rank(), eo, wire).ok()) {
            self->node_payload_bytes = static_cast<int64_t>(wire.size());
          }
        }
        return out;
      };
    }
    const bool ends_sparse =
        !impl->chain.empty() && impl->chain.back()->spec().need != Need::kFloatSum;
    if (ends_sparse) {
      FEDSILO_ASSIGN_OR_RETURN(impl->sparse, mpi::make_sparse_allreduce(*topology, ac));
    } else {
      FEDSILO_ASSIGN_OR_RETURN(impl->dense, mpi::make_dense_allreduce(*topology, ac));
    }
    return std::unique_ptr<UpdateExchange>(new UpdateExchange(std::move(impl)));
  };

  // Which algorithm: pinned, recorded by the checkpoint we resume, or chosen by `auto`.
  std::string name = config::name(cfg.allreduce.algorithm);
  mpi::LeaderExchange leaders = mpi::LeaderExchange::kAllgather;
  if (cfg.secure_aggregation.enabled && resolved_algorithm.empty()) {
    // Masked words are summed dense, whatever the density: `auto` takes dense-hier's shape
    // (which sums flat where it cannot help: mpi::IntegerSum), with nothing to calibrate.
    name = name == "dense-flat" ? "dense-flat" : "dense-hier";
  } else if (!resolved_algorithm.empty()) {
    name = resolved_algorithm;
  } else if (name == "auto") {
    mpi::LinkModel link;
    if (cfg.allreduce.link_gbps > 0.0) {
      link.inter_bandwidth_Bps = cfg.allreduce.link_gbps * 1e9 / 8.0;
      link.inter_latency_s = cfg.allreduce.link_latency_us * 1e-6;
    } else {
      FEDSILO_ASSIGN_OR_RETURN(link, mpi::calibrate_links(*topology, link));
    }
    mpi::SelectorInput in;
    in.density = z.method == compression::Method::kNone ? 1.0 : z.density;
    in.ranks = world.size();
    in.nodes = topology->num_nodes();
    in.message_bytes = 4 * length;
    in.value_type = zcfg.value_type;
    in.level = z.level == config::CompressionLevel::kNode ? mpi::CompressionLevel::kNode
                                                          : mpi::CompressionLevel::kSilo;
    in.link = link;
    if (in.level == mpi::CompressionLevel::kNode && z.method != compression::Method::kNone) {
      FEDSILO_ASSIGN_OR_RETURN(in.compress_seconds_per_float,
                               measure_leader_compression(*topology, zcfg, cfg.run.seed, length,
                                                          cuda_device));
      FEDSILO_ASSIGN_OR_RETURN(in.node_phase, mpi::calibrate_node_phase(*topology, length));
    }
    // The model's shortlist, then the candidates themselves where trying them is cheap
    // (mpi::refine_by_trial): each runs whole exchanges of update-like data, with its own
    // fresh state.
    const mpi::SelectorChoice model = mpi::select_algorithm(in);
    // Made on the first trial run only: most starts try nothing.
    std::vector<float> sample, buffer;
    std::vector<std::unique_ptr<UpdateExchange>> trials;
    auto run_once = [&](const mpi::TrialCandidate& c, size_t i) -> Status {
      if (trials.size() <= i) trials.resize(i + 1);
      if (!trials[i]) {
        FEDSILO_ASSIGN_OR_RETURN(trials[i], build(c.algorithm, c.leader_exchange));
      }
      if (sample.empty()) sample = mpi::update_like(length, static_cast<uint32_t>(world.rank()));
      buffer = sample;
      ExchangeStats xs;
      return trials[i]->exchange(0, buffer, true, xs);
    };
    // A link given in config stands for a network the start-up cannot see: the model decides.
    mpi::TrialPolicy policy;
    if (cfg.allreduce.link_gbps > 0.0) policy.budget_s = 0.0;
    FEDSILO_ASSIGN_OR_RETURN(const mpi::SelectorChoice choice,
                             mpi::refine_by_trial(*topology, model, policy, run_once));
    for (auto& t : trials) t.reset();  // in index order on every rank (shared windows)
    name = choice.algorithm;
    leaders = choice.leader_exchange;
  }
  return build(name, leaders);
}

Result<std::span<float>> UpdateExchange::buffer() {
  if (!impl_->dense) return std::span<float>();
  return impl_->dense->buffer(impl_->length);
}

Status UpdateExchange::run_chain(uint32_t round, bool trained, SiloUpdate& mine) {
  mine.sparse.length = static_cast<int64_t>(mine.dense.size());
  if (!trained) return {};
  for (auto& t : impl_->chain) {
    FEDSILO_CHECK(t->apply(round, static_cast<uint32_t>(impl_->world->rank()), mine));
  }
  return {};
}

SharedIndexTransform* UpdateExchange::shared_index_transform() { return impl_->shared; }

Status UpdateExchange::exchange(uint32_t round, std::span<float> update, bool trained,
                                ExchangeStats& stats) {
  Impl& m = *impl_;
  m.round = round;
  m.node_payload_bytes = 0;
  stats = ExchangeStats{};  // this exchange's only (a caller may reuse one across rounds)
  stats.dense_bytes = 4 * static_cast<int64_t>(update.size());
  if (!m.sparse && !m.dense) {
    return internal_error("update exchange: under secure aggregation the sum is "
                          "SecureAggregation's; this exchange has no algorithm");
  }
  mpi::AllreduceStats as;

  if (m.sparse) {
    // The chain runs on this silo's update (an untrained silo sends nothing and keeps its
    // state), then the sparse sum.
    SiloUpdate mine;
    mine.dense = update;
    const auto t0 = Clock::now();
    const Status st = run_chain(round, trained, mine);
    stats.compress_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    FEDSILO_CHECK(m.world->agree(st));
    std::vector<uint8_t> wire;
    mpi::EncodeOptions eo;
    eo.value_type = m.zcfg.value_type;
    if (trained && mpi::encode_sparse(mine.sparse, round, m.world->rank(), eo, wire).ok()) {
      stats.payload_bytes = static_cast<int64_t>(wire.size());
    }
    FEDSILO_CHECK(m.sparse->sum(round, mine.sparse, update, as));
  } else {
    FEDSILO_CHECK(m.dense->reduce(round, update, as));
    stats.payload_bytes = m.node_compresses ? m.node_payload_bytes : stats.dense_bytes;
  }
  stats.take(as);
  return {};
}

}  // namespace fedsilo::fl
