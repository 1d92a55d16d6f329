// Dense allreduce of a float buffer in GPU memory, node-aware like dense-hier: inside a node
// through NCCL when its ranks have distinct GPUs, else through pinned host buffers and MPI; the
// node leaders sum across nodes with MPI. GPU ranks with dense aggregation keep their weighted
// update on the device and sum it here. Plain C++ (no CUDA, NCCL or MPI types): it compiles in
// every build; in a build without CUDA create() says why it cannot run.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/status.h"
#include "mpi/algorithm.h"
#include "mpi/topology.h"

namespace fedsilo::mpi {

class DeviceAllreduce {
 public:
  /// True when this fedsilo was built with CUDA / with NCCL (FEDSILO_NCCL).
  [[nodiscard]] static bool cuda_built();
  [[nodiscard]] static bool nccl_built();

  /// The rank-local half of create(), no communication: `path` is "auto", "nccl" or "host"
  /// (kInvalidArgument naming device.reduce otherwise), the build has CUDA (kInvalidArgument)
  /// and, for "nccl", NCCL (kInvalidArgument), and CUDA device `device` is visible
  /// (kFailedPrecondition when no device is, kInvalidArgument for a bad index).
  [[nodiscard]] static Status check(const std::string& path, int device);

  /// Collective over topology.world(), which (with the topology) must outlive the object;
  /// every rank passes the same `path` and its own CUDA `device`. The path taken:
  ///  - "nccl": one NCCL communicator per node over its ranks (the node leader makes the unique
  ///    id, MPI broadcasts it in the node). kFailedPrecondition, naming the ranks, when two
  ///    ranks of a node share a GPU (NCCL needs one GPU per rank).
  ///  - "host": staging through pinned host memory, dense-hier over MPI.
  ///  - "auto": "nccl" when NCCL was built and on every node all ranks have distinct GPUs (PCI
  ///    bus ids gathered over the node), else "host". One path for the whole world.
  /// Errors are agreed: every rank gets the same Status.
  [[nodiscard]] static Result<std::unique_ptr<DeviceAllreduce>> create(Topology& topology,
                                                                       int device,
                                                                       const std::string& path);
  /// Collective with NCCL (the communicator is destroyed): every rank destroys its object at
  /// the same point. A communicator left broken by an agreed error is aborted instead.
  ~DeviceAllreduce();
  DeviceAllreduce(const DeviceAllreduce&) = delete;
  DeviceAllreduce& operator=(const DeviceAllreduce&) = delete;

  /// The path taken: "nccl" or "host" (never "auto"), for the start-up line and metrics.
  [[nodiscard]] const std::string& name() const;

  /// In place: `data` (n floats of device memory on this rank's device) becomes the elementwise
  /// sum over all world ranks. `stream` is a cudaStream_t (nullptr: the legacy default stream)
  /// that orders the call after the work that produced `data`; the sum is in `data` when the
  /// call returns. Every rank calls with the same n. Errors (a CUDA or NCCL call, MPI) become a
  /// Status naming the failing call and are agreed, so no rank hangs in a later collective.
  ///
  /// Bytes: "host" counts dense-hier's ring model on the staged copy; "nccl" counts the ring
  /// model of ncclAllReduce on one node (2(L-1)/L of the buffer per rank) and, on several
  /// nodes, the direct model of ncclReduce + ncclBroadcast (each non-leader sends and receives
  /// the buffer once, the leader L-1 times) plus the leaders' MPI allreduce, 2(N-1)/N inter-node.
  /// The device-host copies count as intra-node time.
  [[nodiscard]] Status reduce(float* data, int64_t n, void* stream, AllreduceStats& stats);

  /// Secure aggregation's masked words on GPU ranks: `out` (as long as `in`, host memory, may
  /// be the same span) becomes the elementwise sum of every world rank's `in` modulo 2^32. "nccl"
  /// uploads the words into this object's device buffer, sums them as ncclUint32 (unsigned
  /// addition wraps: the sum modulo 2^32 whatever the order) with the same shape and byte
  /// counts as reduce(), the node leaders as MPI_UINT32_T, and downloads the sum; "host" sums
  /// them with MPI (one allreduce over the world, the words never leave host memory). Every
  /// value that leaves a rank is a masked word or a sum of masked words. Every rank calls with
  /// the same length; errors are agreed.
  [[nodiscard]] Status reduce_words(std::span<const uint32_t> in, std::span<uint32_t> out,
                                    AllreduceStats& stats);

 private:
  struct Impl;
  explicit DeviceAllreduce(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fedsilo::mpi
