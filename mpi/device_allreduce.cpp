// Device-side dense allreduce: NCCL inside a node, pinned host buffers and MPI otherwise, MPI
// between node leaders (see device_allreduce.h).
//
// Why NCCL inside a node: the host path crosses PCIe twice per rank (D2H and H2D of 4n bytes,
// ~25 GB/s each way: ~0.3 ms for 1M parameters) and then sums on the CPU cores in shared
// memory; NCCL sums on the GPUs over NVLink or PCIe peer to peer. Between nodes the leaders move
// the node sum with MPI, as every other algorithm does (one transport for bytes between nodes).
#include "mpi/device_allreduce.h"

#include <algorithm>
#include <chrono>
#include <span>
#include <utility>
#include <vector>

#include "mpi/dense_hier.h"

#ifdef FEDSILO_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda/check.cuh"
#endif
#ifdef FEDSILO_HAVE_NCCL
#include <nccl.h>
#endif

namespace fedsilo::mpi {

bool DeviceAllreduce::cuda_built() {
#ifdef FEDSILO_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

bool DeviceAllreduce::nccl_built() {
#ifdef FEDSILO_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

Status DeviceAllreduce::check(const std::string& path, int device) {
  if (path != "auto" && path != "nccl" && path != "host") {
    return invalid_argument("device.reduce = \"" + path +
                            "\": expected \"auto\", \"nccl\" or \"host\"");
  }
  if (!cuda_built()) {
    return invalid_argument(
        "device.reduce = \"" + path +
        "\": this fedsilo was built without CUDA (configure with -DFEDSILO_CUDA=ON)");
  }
  if (path == "nccl" && !nccl_built()) {
    return invalid_argument(
        "device.reduce = \"nccl\": this fedsilo was built without NCCL (configure with "
        "-DFEDSILO_NCCL=ON where nccl.h and libnccl are installed); use \"host\" or \"auto\"");
  }
#ifdef FEDSILO_HAVE_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();  // no driver or no GPU: not an error later calls should see
    return failed_precondition(
        "device.reduce = \"" + path +
        "\": no CUDA device is visible to this process (no GPU, no driver, or "
        "CUDA_VISIBLE_DEVICES hides them)");
  }
  if (device < 0 || device >= count) {
    return invalid_argument("DeviceAllreduce: CUDA device " + std::to_string(device) +
                            " does not exist (" + std::to_string(count) + " visible)");
  }
#endif
  return {};
}

#ifndef FEDSILO_HAVE_CUDA

// A build without CUDA: the class exists (callers compile everywhere) and cannot be created.
struct DeviceAllreduce::Impl {
  std::string name;
};

DeviceAllreduce::DeviceAllreduce(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DeviceAllreduce::~DeviceAllreduce() = default;

Result<std::unique_ptr<DeviceAllreduce>> DeviceAllreduce::create(Topology& topology, int device,
                                                                 const std::string& path) {
  FEDSILO_CHECK(topology.world().agree(check(path, device)));
  return internal_error("DeviceAllreduce: unreachable without CUDA");
}

const std::string& DeviceAllreduce::name() const {
  return impl_->name;
}

Status DeviceAllreduce::reduce(float*, int64_t, void*, AllreduceStats&) {
  return failed_precondition("DeviceAllreduce: built without CUDA");
}

Status DeviceAllreduce::reduce_words(std::span<const uint32_t>, std::span<uint32_t>,
                                     AllreduceStats&) {
  return failed_precondition("DeviceAllreduce: built without CUDA");
}

#else  // FEDSILO_HAVE_CUDA

namespace {

#ifdef FEDSILO_HAVE_NCCL
/// kCommError naming the NCCL call, NCCL's message and its last detailed error.
Status nccl_status(ncclResult_t r, const char* call) {
  std::string msg = std::string(call) + " failed: " + ncclGetErrorString(r);
  const char* last = ncclGetLastError(nullptr);  // the argument is unused by NCCL
  if (last != nullptr && *last != '\0') msg += std::string(" (") + last + ")";
  return {StatusCode::kCommError, msg};
}

#define FEDSILO_NCCL_TRY(call)                                                        \
  do {                                                                                \
    const ncclResult_t fedsilo_nccl_rc_ = (call);                                     \
    if (fedsilo_nccl_rc_ != ncclSuccess) return nccl_status(fedsilo_nccl_rc_, #call); \
  } while (0)
#endif

/// Page-locked host memory (cudaMallocHost) of 4-byte elements (floats or uint32 words), grown
/// on demand, for the device-host copies and the MPI calls on them: copies run at full PCIe
/// speed and need no bounce buffer.
class PinnedWords {
 public:
  PinnedWords() = default;
  PinnedWords(const PinnedWords&) = delete;
  PinnedWords& operator=(const PinnedWords&) = delete;
  ~PinnedWords() {
    if (p_ != nullptr) cudaFreeHost(p_);
  }
  Status reserve(size_t n) {
    if (n <= n_) return {};
    if (p_ != nullptr) cudaFreeHost(p_);
    p_ = nullptr;
    n_ = 0;
    FEDSILO_CUDA_TRY(cudaMallocHost(&p_, n * 4));
    n_ = n;
    return {};
  }
  void* data() { return p_; }
  std::span<float> floats(size_t n) { return {static_cast<float*>(p_), n}; }
  std::span<uint32_t> words(size_t n) { return {static_cast<uint32_t*>(p_), n}; }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

/// Device memory for the masked words of secure aggregation, grown on demand.
class DeviceWords {
 public:
  DeviceWords() = default;
  DeviceWords(const DeviceWords&) = delete;
  DeviceWords& operator=(const DeviceWords&) = delete;
  ~DeviceWords() {
    if (p_ != nullptr) cudaFree(p_);
  }
  Status reserve(size_t n) {
    if (n <= n_) return {};
    if (p_ != nullptr) cudaFree(p_);
    p_ = nullptr;
    n_ = 0;
    void* p = nullptr;
    FEDSILO_CUDA_TRY(cudaMalloc(&p, n * sizeof(uint32_t)));
    p_ = static_cast<uint32_t*>(p);
    n_ = n;
    return {};
  }
  uint32_t* data() { return p_; }

 private:
  uint32_t* p_ = nullptr;
  size_t n_ = 0;
};

/// What a sum adds: floats, or uint32 words modulo 2^32 (both 4 bytes an element).
enum class Elem : uint8_t { kFloat, kWord };

cudaStream_t as_stream(void* s) {
  return static_cast<cudaStream_t>(s);
}

}  // namespace

struct DeviceAllreduce::Impl {
  Topology* topo = nullptr;
  int device = 0;
  std::string name;
  PinnedWords host;
  DeviceWords words;                // reduce_words' device copy (the NCCL path)
  std::unique_ptr<DenseHier> hier;  // the host path
#ifdef FEDSILO_HAVE_NCCL
  ncclComm_t nccl = nullptr;
  bool nccl_broken = false;  // an agreed error left operations in flight: abort, not destroy
#endif

  ~Impl() {
#ifdef FEDSILO_HAVE_NCCL
    if (nccl != nullptr) {
      cudaSetDevice(device);
      if (nccl_broken) {
        ncclCommAbort(nccl);
      } else {
        ncclCommDestroy(nccl);
      }
    }
#endif
  }

  Status reduce_host(float* data, int64_t n, cudaStream_t s, AllreduceStats& stats);
#ifdef FEDSILO_HAVE_NCCL
  Status init_nccl();
  Status reduce_nccl(void* data, int64_t n, Elem elem, cudaStream_t s, AllreduceStats& stats);
#endif
};

DeviceAllreduce::DeviceAllreduce(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DeviceAllreduce::~DeviceAllreduce() = default;

const std::string& DeviceAllreduce::name() const {
  return impl_->name;
}

namespace {

/// This device's PCI bus id ("0000:3b:00.0"): the same string on every rank using that GPU,
/// what NCCL itself compares to refuse two ranks on one GPU.
Result<std::string> bus_id(int device) {
  char id[64] = {};
  FEDSILO_CUDA_TRY(cudaDeviceGetPCIBusId(id, static_cast<int>(sizeof id), device));
  return std::string(id);
}

/// Why NCCL cannot run on this rank's node (empty: every rank of the node has its own GPU).
/// The node's bus ids are gathered in node rank order; collective over the node.
Result<std::string> shared_gpu_reason(Topology& topo, const std::string& mine) {
  std::vector<uint8_t> all;
  std::vector<int64_t> offsets;
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(mine.data()), mine.size());
  FEDSILO_CHECK(topo.node().allgatherv_bytes(bytes, all, offsets));
  std::vector<std::string> ids;
  for (size_t q = 0; q + 1 < offsets.size(); ++q) {
    ids.emplace_back(reinterpret_cast<const char*>(all.data()) + offsets[q],
                     static_cast<size_t>(offsets[q + 1] - offsets[q]));
  }
  // World rank of node rank q: the node's ranks in world order (Topology orders them so).
  std::vector<int> world_of;
  for (int r = 0; r < topo.world().size(); ++r) {
    if (topo.node_of(r) == topo.node_index()) world_of.push_back(r);
  }
  for (size_t a = 0; a < ids.size(); ++a) {
    for (size_t b = a + 1; b < ids.size(); ++b) {
      if (ids[a] == ids[b]) {
        return "ranks " + std::to_string(world_of[a]) + " and " + std::to_string(world_of[b]) +
               " of node " + std::to_string(topo.node_index()) + " share the GPU at " + ids[a];
      }
    }
  }
  return std::string();
}

}  // namespace

Result<std::unique_ptr<DeviceAllreduce>> DeviceAllreduce::create(Topology& topology, int device,
                                                                 const std::string& path) {
  Comm& world = topology.world();
  std::string mine;
  Status local = check(path, device);
  if (local.ok()) {
    local = [&]() -> Status {
      FEDSILO_CUDA_TRY(cudaSetDevice(device));
      FEDSILO_ASSIGN_OR_RETURN(mine, bus_id(device));
      return {};
    }();
  }
  FEDSILO_CHECK(world.agree(local));

  // Which path: one for the whole world, so the leaders' exchange is the same everywhere.
  std::string reason;
  if (path != "host") {
    auto r = shared_gpu_reason(topology, mine);
    FEDSILO_CHECK(world.agree(r.status()));
    reason = r.value();
  }
  int64_t shared_nodes = reason.empty() ? 0 : 1;
  FEDSILO_CHECK(world.allreduce_sum(std::span<int64_t>(&shared_nodes, 1)));
  if (path == "nccl") {
    // The lowest rank of a failing node reports; every rank returns its message.
    FEDSILO_CHECK(world.agree(
        reason.empty() ? Status()
                       : failed_precondition("device.reduce = \"nccl\": " + reason +
                                             "; NCCL needs one GPU per rank (use \"host\", or "
                                             "\"auto\" to choose by the GPUs)")));
  }

  auto impl = std::make_unique<Impl>();
  impl->topo = &topology;
  impl->device = device;
  const bool use_nccl = path == "nccl" || (path == "auto" && nccl_built() && shared_nodes == 0);
  impl->name = use_nccl ? "nccl" : "host";
  if (!use_nccl) impl->hier = std::make_unique<DenseHier>(topology);
#ifdef FEDSILO_HAVE_NCCL
  if (use_nccl) FEDSILO_CHECK(impl->init_nccl());
#endif
  return std::unique_ptr<DeviceAllreduce>(new DeviceAllreduce(std::move(impl)));
}

#ifdef FEDSILO_HAVE_NCCL
Status DeviceAllreduce::Impl::init_nccl() {
  Comm& world = topo->world();
  Comm& node = topo->node();
  ncclUniqueId id{};
  Status st;
  if (topo->is_leader()) {
    st = [&]() -> Status {
      FEDSILO_NCCL_TRY(ncclGetUniqueId(&id));
      return {};
    }();
  }
  // ncclCommInitRank blocks until every rank of the node has joined: agree before it.
  FEDSILO_CHECK(world.agree(st));
  FEDSILO_CHECK(node.broadcast(std::span<uint8_t>(reinterpret_cast<uint8_t*>(&id), sizeof id), 0));
  st = [&]() -> Status {
    FEDSILO_CUDA_TRY(cudaSetDevice(device));
    FEDSILO_NCCL_TRY(ncclCommInitRank(&nccl, node.size(), id, node.rank()));
    return {};
  }();
  return world.agree(st);
}

Status DeviceAllreduce::Impl::reduce_nccl(void* data, int64_t n, Elem elem, cudaStream_t s,
                                          AllreduceStats& stats) {
  Comm& world = topo->world();
  const int L = topo->local_size(), N = topo->num_nodes();
  const auto count = static_cast<size_t>(n);
  const int64_t bytes = n * 4;  // floats and words alike
  const ncclDataType_t type = elem == Elem::kFloat ? ncclFloat : ncclUint32;
  // Any agreed failure below may leave a peer's NCCL operation waiting forever on its stream.
  auto agree = [&](const Status& st) -> Status {
    Status all = world.agree(st);
    if (!all.ok()) nccl_broken = true;
    return all;
  };

  if (N == 1) {
    // One node: NCCL's own allreduce (a ring over the node's GPUs).
    const auto t0 = std::chrono::steady_clock::now();
    Status st = [&]() -> Status {
      FEDSILO_NCCL_TRY(ncclAllReduce(data, data, count, type, ncclSum, nccl, s));
      FEDSILO_CUDA_TRY(cudaStreamSynchronize(s));
      return {};
    }();
    FEDSILO_CHECK(agree(st));
    stats.intra_seconds += seconds_since(t0);
    const int64_t ring = 2 * bytes * (L - 1) / L;
    stats.intra_bytes_sent += ring;
    stats.intra_bytes_received += ring;
    return {};
  }

  // Several nodes: reduce to the leader on the device, leaders' MPI allreduce on a pinned host
  // copy, broadcast back on the device.
  const bool leader = topo->is_leader();
  auto t0 = std::chrono::steady_clock::now();
  Status st = [&]() -> Status {
    FEDSILO_NCCL_TRY(ncclReduce(data, data, count, type, ncclSum, 0, nccl, s));
    if (leader) {
      FEDSILO_CHECK(host.reserve(count));
      FEDSILO_CUDA_TRY(cudaMemcpyAsync(host.data(), data, count * 4, cudaMemcpyDeviceToHost, s));
      FEDSILO_CUDA_TRY(cudaStreamSynchronize(s));
    }
    return {};
  }();
  FEDSILO_CHECK(agree(st));
  stats.intra_seconds += seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  st = Status();
  if (leader) {
    st = [&]() -> Status {
      FEDSILO_CHECK(elem == Elem::kFloat ? topo->cross().allreduce_sum(host.floats(count))
                                         : topo->cross().allreduce_sum(host.words(count)));
      FEDSILO_CUDA_TRY(cudaMemcpyAsync(data, host.data(), count * 4, cudaMemcpyHostToDevice, s));
      return {};
    }();
  }
  FEDSILO_CHECK(agree(st));
  stats.inter_seconds += seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  st = [&]() -> Status {
    FEDSILO_NCCL_TRY(ncclBroadcast(data, data, count, type, 0, nccl, s));
    FEDSILO_CUDA_TRY(cudaStreamSynchronize(s));
    return {};
  }();
  FEDSILO_CHECK(agree(st));
  stats.intra_seconds += seconds_since(t0);

  if (leader) {
    stats.intra_bytes_received += bytes * (L - 1);
    stats.intra_bytes_sent += bytes * (L - 1);
    const int64_t inter = 2 * bytes * (N - 1) / N;
    stats.inter_bytes_sent += inter;
    stats.inter_bytes_received += inter;
  } else {
    stats.intra_bytes_sent += bytes;
    stats.intra_bytes_received += bytes;
  }
  return {};
}
#endif  // FEDSILO_HAVE_NCCL

Status DeviceAllreduce::Impl::reduce_host(float* data, int64_t n, cudaStream_t s,
                                          AllreduceStats& stats) {
  Comm& world = topo->world();
  const auto count = static_cast<size_t>(n);
  auto t0 = std::chrono::steady_clock::now();
  Status st = [&]() -> Status {
    FEDSILO_CHECK(host.reserve(count));
    FEDSILO_CUDA_TRY(cudaMemcpyAsync(host.data(), data, count * 4, cudaMemcpyDeviceToHost, s));
    FEDSILO_CUDA_TRY(cudaStreamSynchronize(s));
    return {};
  }();
  FEDSILO_CHECK(world.agree(st));
  stats.intra_seconds += seconds_since(t0);

  // dense-hier agrees on nothing itself; its MPI errors are returned on every rank it reaches.
  FEDSILO_CHECK(world.agree(hier->reduce(0, host.floats(count), stats)));

  t0 = std::chrono::steady_clock::now();
  st = [&]() -> Status {
    FEDSILO_CUDA_TRY(cudaMemcpyAsync(data, host.data(), count * 4, cudaMemcpyHostToDevice, s));
    FEDSILO_CUDA_TRY(cudaStreamSynchronize(s));
    return {};
  }();
  FEDSILO_CHECK(world.agree(st));
  stats.intra_seconds += seconds_since(t0);
  return {};
}

Status DeviceAllreduce::reduce(float* data, int64_t n, void* stream, AllreduceStats& stats) {
  Impl& m = *impl_;
  const auto t_start = std::chrono::steady_clock::now();
  Status st;
  if (n < 0) st = invalid_argument("DeviceAllreduce::reduce: negative length");
  if (n > 0 && data == nullptr) st = invalid_argument("DeviceAllreduce::reduce: null buffer");
  if (st.ok()) {
    st = [&]() -> Status {
      FEDSILO_CUDA_TRY(cudaSetDevice(m.device));
      return {};
    }();
  }
  FEDSILO_CHECK(m.topo->world().agree(st));
  if (n == 0) return {};
  const cudaStream_t s = as_stream(stream);
#ifdef FEDSILO_HAVE_NCCL
  if (m.nccl != nullptr) {
    FEDSILO_CHECK(m.reduce_nccl(data, n, Elem::kFloat, s, stats));
    stats.total_seconds += seconds_since(t_start);
    return {};
  }
#endif
  FEDSILO_CHECK(m.reduce_host(data, n, s, stats));
  stats.total_seconds += seconds_since(t_start);
  return {};
}

Status DeviceAllreduce::reduce_words(std::span<const uint32_t> in, std::span<uint32_t> out,
                                     AllreduceStats& stats) {
  Impl& m = *impl_;
  Comm& world = m.topo->world();
  const auto t_start = std::chrono::steady_clock::now();
  const size_t n = in.size();
  FEDSILO_CHECK(world.agree(out.size() == n ? Status()
                                           : invalid_argument("DeviceAllreduce::reduce_words: "
                                                              "the sum's length differs from the input's")));
  if (n == 0) return {};
  if (out.data() != in.data()) std::copy(in.begin(), in.end(), out.begin());
#ifdef FEDSILO_HAVE_NCCL
  if (m.nccl != nullptr) {
    // The legacy default stream: nothing else of this rank runs on the device meanwhile.
    const cudaStream_t s = nullptr;
    auto t0 = std::chrono::steady_clock::now();
    Status st = [&]() -> Status {
      FEDSILO_CUDA_TRY(cudaSetDevice(m.device));
      FEDSILO_CHECK(m.words.reserve(n));
      FEDSILO_CUDA_TRY(cudaMemcpyAsync(m.words.data(), out.data(), n * sizeof(uint32_t),
                                       cudaMemcpyHostToDevice, s));
      return {};
    }();
    FEDSILO_CHECK(world.agree(st));
    stats.intra_seconds += seconds_since(t0);
    FEDSILO_CHECK(m.reduce_nccl(m.words.data(), static_cast<int64_t>(n), Elem::kWord, s, stats));
    t0 = std::chrono::steady_clock::now();
    st = [&]() -> Status {
      FEDSILO_CUDA_TRY(cudaMemcpyAsync(out.data(), m.words.data(), n * sizeof(uint32_t),
                                       cudaMemcpyDeviceToHost, s));
      FEDSILO_CUDA_TRY(cudaStreamSynchronize(s));
      return {};
    }();
    FEDSILO_CHECK(world.agree(st));
    stats.intra_seconds += seconds_since(t0);
    stats.total_seconds += seconds_since(t_start);
    return {};
  }
#endif
  // The host path: one MPI allreduce of the words (MPI_UINT32_T sums wrap modulo 2^32), bytes
  // as a ring's 2(P-1)/P of the vector.
  const auto t0 = std::chrono::steady_clock::now();
  FEDSILO_CHECK(world.agree(world.allreduce_sum(out)));
  const int P = world.size();
  const int64_t ring = 2 * static_cast<int64_t>(n) * 4 * (P - 1) / P;
  if (m.topo->num_nodes() > 1) {
    stats.inter_seconds += seconds_since(t0);
    stats.inter_bytes_sent += ring;
    stats.inter_bytes_received += ring;
  } else {
    stats.intra_seconds += seconds_since(t0);
    stats.intra_bytes_sent += ring;
    stats.intra_bytes_received += ring;
  }
  stats.total_seconds += seconds_since(t_start);
  return {};
}

#endif  // FEDSILO_HAVE_CUDA

}  // namespace fedsilo::mpi
