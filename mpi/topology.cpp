// Node topology: real (shared-memory) or emulated nodes, leaders and their communicator.
#include "mpi/topology.h"

#include <algorithm>
#include <cstdlib>
#include <string>

namespace fedsilo::mpi {
namespace {

/// The emulated node count asked for (0: none) and the setting's name for messages.
Status requested_nodes(int from_config, int& nodes, std::string& setting) {
  nodes = from_config;
  setting = "topology.emulated_nodes";
  if (from_config < 0) {
    return invalid_argument("topology.emulated_nodes = " + std::to_string(from_config) +
                            " must be >= 0");
  }
  if (from_config > 0) return {};
  const char* env = std::getenv("FEDSILO_EMULATED_NODES");
  if (env == nullptr || *env == '\0') return {};
  setting = "FEDSILO_EMULATED_NODES";
  char* end = nullptr;
  const long v = std::strtol(env, &end, 10);
  if (*end != '\0' || v < 0 || v > 1'000'000) {
    return invalid_argument(std::string("FEDSILO_EMULATED_NODES=") + env + " is not a node count");
  }
  nodes = static_cast<int>(v);
  return {};
}

}  // namespace

Result<Topology> Topology::create(Comm& world, int emulated_nodes) {
  const int size = world.size(), rank = world.rank();
  int nodes = 0;
  std::string setting;
  Status asked = requested_nodes(emulated_nodes, nodes, setting);
  if (asked.ok() && nodes > 0 && size % nodes != 0) {
    asked = invalid_argument(setting + " = " + std::to_string(nodes) + " does not divide the " +
                             std::to_string(size) + " ranks into equal nodes");
  }
  // Environments may differ between ranks: agree on the outcome and on N before splitting.
  FEDSILO_CHECK(world.agree(asked));
  std::vector<int64_t> all_n;
  const int64_t mine = nodes;
  FEDSILO_CHECK(world.allgather(std::span<const int64_t>(&mine, 1), all_n));
  if (std::any_of(all_n.begin(), all_n.end(), [&](int64_t n) { return n != mine; })) {
    return invalid_argument(setting + " differs between ranks");
  }

  Topology t;
  t.world_ = &world;
  t.emulated_ = nodes > 0;
  if (t.emulated_) {
    const int per_node = size / nodes;
    FEDSILO_ASSIGN_OR_RETURN(Comm node, world.split(rank / per_node, rank));
    t.node_.emplace(std::move(node));
  } else {
    FEDSILO_ASSIGN_OR_RETURN(Comm node, world.split_shared());
    t.node_.emplace(std::move(node));
  }
  // Every rank learns the world rank of its node's leader (the node's lowest rank, since both
  // splits order by world rank); distinct leaders in ascending order number the nodes.
  const int64_t me = rank;
  std::vector<int64_t> members;
  FEDSILO_CHECK(t.node_->allgather(std::span<const int64_t>(&me, 1), members));
  const int64_t leader = members[0];
  std::vector<int64_t> leader_of_rank;
  FEDSILO_CHECK(world.allgather(std::span<const int64_t>(&leader, 1), leader_of_rank));
  for (int q = 0; q < size; ++q) {
    if (leader_of_rank[q] == q) t.leaders_.push_back(q);
  }
  t.num_nodes_ = static_cast<int>(t.leaders_.size());
  t.node_of_rank_.resize(size);
  std::vector<int> count(t.num_nodes_, 0);
  for (int q = 0; q < size; ++q) {
    const auto it =
        std::lower_bound(t.leaders_.begin(), t.leaders_.end(), static_cast<int>(leader_of_rank[q]));
    t.node_of_rank_[q] = static_cast<int>(it - t.leaders_.begin());
    ++count[t.node_of_rank_[q]];
  }
  t.uniform_ = std::all_of(count.begin(), count.end(), [&](int c) { return c == count[0]; });
  FEDSILO_ASSIGN_OR_RETURN(Comm cross, world.split(t.node_->rank(), rank));
  t.cross_.emplace(std::move(cross));
  return t;
}

PeerMap Topology::world_peers() const {
  PeerMap p;
  p.node = node_of_rank_;
  p.world_rank.resize(node_of_rank_.size());
  for (size_t q = 0; q < p.world_rank.size(); ++q) p.world_rank[q] = static_cast<int>(q);
  return p;
}

PeerMap Topology::leader_peers() const {
  PeerMap p;
  p.world_rank = leaders_;
  p.node.resize(leaders_.size());
  for (size_t i = 0; i < p.node.size(); ++i) p.node[i] = static_cast<int>(i);
  return p;
}

std::string Topology::describe() const {
  std::string s = std::to_string(node_of_rank_.size()) + " ranks on " + std::to_string(num_nodes_) +
                  (num_nodes_ == 1 ? " node" : " nodes");
  if (emulated_) s += " (emulated)";
  if (uniform_) s += ", " + std::to_string(node_of_rank_.size() / num_nodes_) + " per node";
  return s;
}

}  // namespace fedsilo::mpi
