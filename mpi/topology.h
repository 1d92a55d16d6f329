// Node topology for the hierarchical allreduce algorithms: the node-local communicator, one
// leader per node (its local rank 0), the leaders' communicator, and where every rank lives.
// Nodes are either real (ranks that share memory) or emulated: `[topology] emulated_nodes = N`
// or FEDSILO_EMULATED_NODES=N cuts the ranks into N equal blocks of consecutive ranks, so every
// hierarchical path runs on one machine.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "mpi/comm.h"

namespace fedsilo::mpi {

/// The members of a communicator as the algorithms see them: who they are in the world (named
/// in error messages) and on which node (to count intra- and inter-node bytes).
struct PeerMap {
  std::vector<int> world_rank;  // indexed by rank in the communicator
  std::vector<int> node;        // node index of each member
};

class Topology {
 public:
  /// Collective over `world`, which must outlive the topology and stay where it is (it is
  /// held by reference). emulated_nodes > 0 emulates that many nodes; 0 reads
  /// FEDSILO_EMULATED_NODES and, when it is unset or empty, uses the real shared-memory nodes.
  /// kInvalidArgument naming `topology.emulated_nodes` (or the variable) when the rank count is
  /// not a multiple of N or ranks disagree on N.
  static Result<Topology> create(Comm& world, int emulated_nodes = 0);

  Topology(Topology&&) noexcept = default;
  Topology& operator=(Topology&&) noexcept = default;

  [[nodiscard]] Comm& world() { return *world_; }
  /// The ranks of this rank's node, ordered by world rank.
  [[nodiscard]] Comm& node() { return *node_; }
  /// The ranks with this rank's local rank, one per node, in node order. On leaders (local
  /// rank 0) this is the leaders' communicator, whose rank is the node index.
  [[nodiscard]] Comm& cross() { return *cross_; }

  [[nodiscard]] int num_nodes() const { return num_nodes_; }
  [[nodiscard]] int node_index() const { return node_of_rank_[world_->rank()]; }
  [[nodiscard]] int local_rank() const { return node_->rank(); }
  [[nodiscard]] int local_size() const { return node_->size(); }
  [[nodiscard]] bool is_leader() const { return node_->rank() == 0; }
  /// Every node has the same number of ranks (always true when emulated).
  [[nodiscard]] bool uniform() const { return uniform_; }
  [[nodiscard]] bool emulated() const { return emulated_; }
  [[nodiscard]] int node_of(int world_rank) const { return node_of_rank_[world_rank]; }
  /// World rank of node i's leader.
  [[nodiscard]] int leader_of(int node) const { return leaders_[node]; }

  /// Every world rank: identity ranks and their nodes.
  [[nodiscard]] PeerMap world_peers() const;
  /// The leaders' communicator's members (node i's leader at rank i).
  [[nodiscard]] PeerMap leader_peers() const;

  /// "8 ranks on 4 nodes (emulated), 2 per node".
  [[nodiscard]] std::string describe() const;

 private:
  Topology() = default;
  Comm* world_ = nullptr;
  std::optional<Comm> node_;
  std::optional<Comm> cross_;
  std::vector<int> node_of_rank_;
  std::vector<int> leaders_;
  int num_nodes_ = 1;
  bool uniform_ = true;
  bool emulated_ = false;
};

}  // namespace fedsilo::mpi
