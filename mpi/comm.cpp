// MPI communicator wrapper: checked calls, node-local split, collective error agreement.
#include "mpi/comm.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "mpi/comm_handles.h"

namespace fedsilo::mpi {

Result<std::unique_ptr<Runtime>> Runtime::init(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return failed_precondition("MPI is already initialised");
  int provided = 0;
  // Funneled: only the main thread calls MPI; OpenMP threads compute.
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    return Status(StatusCode::kCommError, "MPI_Init_thread failed");
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  return std::unique_ptr<Runtime>(new Runtime());
}

Runtime::~Runtime() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void Runtime::abort_job(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();
}

Result<Comm> Comm::world() {
  Comm c;
  c.h_ = std::make_unique<Handles>();
  FEDSILO_MPI(MPI_Comm_dup(MPI_COMM_WORLD, &c.h_->world));
  FEDSILO_MPI(MPI_Comm_set_errhandler(c.h_->world, MPI_ERRORS_RETURN));
  FEDSILO_MPI(MPI_Comm_rank(c.h_->world, &c.rank_));
  FEDSILO_MPI(MPI_Comm_size(c.h_->world, &c.size_));
  FEDSILO_MPI(MPI_Comm_split_type(c.h_->world, MPI_COMM_TYPE_SHARED, c.rank_, MPI_INFO_NULL,
                                  &c.h_->node));
  FEDSILO_MPI(MPI_Comm_set_errhandler(c.h_->node, MPI_ERRORS_RETURN));
  FEDSILO_MPI(MPI_Comm_rank(c.h_->node, &c.local_rank_));
  FEDSILO_MPI(MPI_Comm_size(c.h_->node, &c.local_size_));
  return c;
}

Comm::~Comm() = default;
Comm::Comm(Comm&&) noexcept = default;
Comm& Comm::operator=(Comm&&) noexcept = default;

namespace {
// A barrier whose waiting ranks sleep instead of polling: in sparse-hier the other ranks of a
// node wait here while the leader compresses and exchanges (and leaders wait for the other
// leaders' compression), and a polling wait would take the cores the working ranks (where
// cores are shared, other nodes' too) need. The sleep grows from
// 20 us to 200 us, so a rank notices the release within a fraction of a millisecond.
Status wait_sleeping(MPI_Comm comm) {
  MPI_Request req = MPI_REQUEST_NULL;
  FEDSILO_MPI(MPI_Ibarrier(comm, &req));
  long ns = 20'000;
  for (;;) {
    int done = 0;
    FEDSILO_MPI(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    if (done) return {};
    timespec ts{0, ns};
    nanosleep(&ts, nullptr);
    ns = std::min(ns * 2, 200'000L);
  }
}

// FEDSILO_SHM_SPIN=1: the sleeping waits poll instead (MPI_Barrier), for comparisons.
bool spin_waits() {
  static const bool spin = [] {
    const char* v = std::getenv("FEDSILO_SHM_SPIN");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return spin;
}
}  // namespace

Status Comm::barrier() {
  FEDSILO_MPI(MPI_Barrier(h_->world));
  return {};
}

Status Comm::barrier_sleeping() {
  if (spin_waits()) return barrier();
  return wait_sleeping(h_->world);
}

// MPI counts are int: large buffers go in chunks of at most 2^30 elements.
template <typename T>
static Status allreduce_chunked(MPI_Comm comm, T* data, size_t n, MPI_Datatype type, MPI_Op op) {
  constexpr size_t kChunk = size_t{1} << 30;
  for (size_t off = 0; off < n; off += kChunk) {
    const int count = static_cast<int>(std::min(kChunk, n - off));
    FEDSILO_MPI(MPI_Allreduce(MPI_IN_PLACE, data + off, count, type, op, comm));
  }
  return {};
}

Status Comm::allreduce_sum(std::span<float> d) {
  return allreduce_chunked(h_->world, d.data(), d.size(), MPI_FLOAT, MPI_SUM);
}
Status Comm::allreduce_sum(std::span<double> d) {
  return allreduce_chunked(h_->world, d.data(), d.size(), MPI_DOUBLE, MPI_SUM);
}
Status Comm::allreduce_sum(std::span<int64_t> d) {
  return allreduce_chunked(h_->world, d.data(), d.size(), MPI_INT64_T, MPI_SUM);
}
Status Comm::allreduce_sum(std::span<uint32_t> d) {
  return allreduce_chunked(h_->world, d.data(), d.size(), MPI_UINT32_T, MPI_SUM);
}
Status Comm::allreduce_max(std::span<double> d) {
  return allreduce_chunked(h_->world, d.data(), d.size(), MPI_DOUBLE, MPI_MAX);
}

Status Comm::allgather(std::span<const double> mine, std::vector<double>& all) {
  all.assign(mine.size() * static_cast<size_t>(size_), 0.0);
  FEDSILO_MPI(MPI_Allgather(mine.data(), static_cast<int>(mine.size()), MPI_DOUBLE, all.data(),
                            static_cast<int>(mine.size()), MPI_DOUBLE, h_->world));
  return {};
}

Status Comm::broadcast(std::span<uint8_t> data, int root) {
  FEDSILO_MPI(MPI_Bcast(data.data(), static_cast<int>(data.size()), MPI_BYTE, root, h_->world));
  return {};
}

Status Comm::broadcast(std::string& s, int root) {
  int64_t len = static_cast<int64_t>(s.size());
  FEDSILO_MPI(MPI_Bcast(&len, 1, MPI_INT64_T, root, h_->world));
  s.resize(static_cast<size_t>(len));
  FEDSILO_MPI(MPI_Bcast(s.data(), static_cast<int>(len), MPI_CHAR, root, h_->world));
  return {};
}

Status Comm::agree(const Status& local) {
  // Lowest failing rank wins, so every rank reports the same error.
  int mine = local.ok() ? INT_MAX : rank_;
  int first = INT_MAX;
  FEDSILO_MPI(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, h_->world));
  if (first == INT_MAX) return {};
  int code = static_cast<int>(local.code());
  FEDSILO_MPI(MPI_Bcast(&code, 1, MPI_INT, first, h_->world));
  std::string msg = local.message();
  FEDSILO_CHECK(broadcast(msg, first));
  return {static_cast<StatusCode>(code), msg};
}

// ---------------------------------------------------------------- topology and algorithm support

Status Comm::finish_init() {
  FEDSILO_MPI(MPI_Comm_set_errhandler(h_->world, MPI_ERRORS_RETURN));
  FEDSILO_MPI(MPI_Comm_rank(h_->world, &rank_));
  FEDSILO_MPI(MPI_Comm_size(h_->world, &size_));
  FEDSILO_MPI(
      MPI_Comm_split_type(h_->world, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &h_->node));
  FEDSILO_MPI(MPI_Comm_set_errhandler(h_->node, MPI_ERRORS_RETURN));
  FEDSILO_MPI(MPI_Comm_rank(h_->node, &local_rank_));
  FEDSILO_MPI(MPI_Comm_size(h_->node, &local_size_));
  return {};
}

Result<Comm> Comm::split(int color, int key) const {
  if (color < 0) return invalid_argument("Comm::split: color must be >= 0");
  Comm c;
  c.h_ = std::make_unique<Handles>();
  FEDSILO_MPI(MPI_Comm_split(h_->world, color, key, &c.h_->world));
  FEDSILO_CHECK(c.finish_init());
  return c;
}

Result<Comm> Comm::split_shared() const {
  Comm c;
  c.h_ = std::make_unique<Handles>();
  FEDSILO_MPI(
      MPI_Comm_split_type(h_->world, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &c.h_->world));
  FEDSILO_CHECK(c.finish_init());
  return c;
}

namespace {

// MPI counts are int; 2^30 keeps every chunk well inside it.
constexpr int64_t kMaxChunk = int64_t{1} << 30;

Status bcast_chunked(MPI_Comm comm, void* data, int64_t n, MPI_Datatype type, int elem_bytes,
                     int root) {
  auto* p = static_cast<char*>(data);
  for (int64_t off = 0; off < n; off += kMaxChunk) {
    const int count = static_cast<int>(std::min(kMaxChunk, n - off));
    FEDSILO_MPI(MPI_Bcast(p + off * elem_bytes, count, type, root, comm));
  }
  return {};
}

}  // namespace

Status Comm::sendrecv_bytes(std::span<const uint8_t> send, int dest, std::vector<uint8_t>& recv,
                            int source, int tag) {
  int64_t send_n = static_cast<int64_t>(send.size());
  int64_t recv_n = 0;
  FEDSILO_MPI(MPI_Sendrecv(&send_n, 1, MPI_INT64_T, dest, tag, &recv_n, 1, MPI_INT64_T, source, tag,
                           h_->world, MPI_STATUS_IGNORE));
  if (recv_n < 0) return {StatusCode::kCommError, "sendrecv_bytes: negative message size"};
  recv.resize(static_cast<size_t>(recv_n));
  // Both partners know both sizes now, so they agree on the number of chunk exchanges.
  const int64_t longest = std::max(send_n, recv_n);
  for (int64_t off = 0; off < longest; off += kMaxChunk) {
    const int s = static_cast<int>(std::clamp<int64_t>(send_n - off, 0, kMaxChunk));
    const int r = static_cast<int>(std::clamp<int64_t>(recv_n - off, 0, kMaxChunk));
    FEDSILO_MPI(MPI_Sendrecv(s > 0 ? send.data() + off : nullptr, s, MPI_BYTE, dest, tag,
                             r > 0 ? recv.data() + off : nullptr, r, MPI_BYTE, source, tag,
                             h_->world, MPI_STATUS_IGNORE));
  }
  return {};
}

Status Comm::send_bytes(std::span<const uint8_t> data, int dest, int tag) {
  int64_t n = static_cast<int64_t>(data.size());
  FEDSILO_MPI(MPI_Send(&n, 1, MPI_INT64_T, dest, tag, h_->world));
  for (int64_t off = 0; off < n; off += kMaxChunk) {
    const int count = static_cast<int>(std::min(kMaxChunk, n - off));
    FEDSILO_MPI(MPI_Send(data.data() + off, count, MPI_BYTE, dest, tag, h_->world));
  }
  return {};
}

Status Comm::recv_bytes(std::vector<uint8_t>& data, int source, int tag) {
  int64_t n = 0;
  FEDSILO_MPI(MPI_Recv(&n, 1, MPI_INT64_T, source, tag, h_->world, MPI_STATUS_IGNORE));
  if (n < 0) return {StatusCode::kCommError, "recv_bytes: negative message size"};
  data.resize(static_cast<size_t>(n));
  for (int64_t off = 0; off < n; off += kMaxChunk) {
    const int count = static_cast<int>(std::min(kMaxChunk, n - off));
    FEDSILO_MPI(
        MPI_Recv(data.data() + off, count, MPI_BYTE, source, tag, h_->world, MPI_STATUS_IGNORE));
  }
  return {};
}

Status Comm::allgather(std::span<const int64_t> mine, std::vector<int64_t>& all) {
  all.assign(mine.size() * static_cast<size_t>(size_), 0);
  FEDSILO_MPI(MPI_Allgather(mine.data(), static_cast<int>(mine.size()), MPI_INT64_T, all.data(),
                            static_cast<int>(mine.size()), MPI_INT64_T, h_->world));
  return {};
}

Status Comm::allgatherv_bytes(std::span<const uint8_t> mine, std::vector<uint8_t>& all,
                              std::vector<int64_t>& offsets) {
  const int64_t my_n = static_cast<int64_t>(mine.size());
  std::vector<int64_t> sizes;
  FEDSILO_CHECK(allgather(std::span<const int64_t>(&my_n, 1), sizes));
  offsets.assign(static_cast<size_t>(size_) + 1, 0);
  for (int q = 0; q < size_; ++q) {
    if (sizes[q] < 0) return {StatusCode::kCommError, "allgatherv_bytes: negative size"};
    offsets[q + 1] = offsets[q] + sizes[q];
  }
  const int64_t total = offsets[size_];
  all.resize(static_cast<size_t>(total));
  if (total <= INT_MAX) {
    std::vector<int> counts(size_), displs(size_);
    for (int q = 0; q < size_; ++q) {
      counts[q] = static_cast<int>(sizes[q]);
      displs[q] = static_cast<int>(offsets[q]);
    }
    FEDSILO_MPI(MPI_Allgatherv(mine.data(), static_cast<int>(my_n), MPI_BYTE, all.data(),
                               counts.data(), displs.data(), MPI_BYTE, h_->world));
    return {};
  }
  // Displacements above 2^31 bytes do not fit MPI's int: one chunked broadcast per rank.
  std::copy(mine.begin(), mine.end(), all.begin() + offsets[rank_]);
  for (int q = 0; q < size_; ++q) {
    FEDSILO_CHECK(bcast_chunked(h_->world, all.data() + offsets[q], sizes[q], MPI_BYTE, 1, q));
  }
  return {};
}

Status Comm::reduce_sum(std::span<float> data, int root) {
  const int64_t n = static_cast<int64_t>(data.size());
  for (int64_t off = 0; off < n; off += kMaxChunk) {
    const int count = static_cast<int>(std::min(kMaxChunk, n - off));
    if (rank_ == root) {
      FEDSILO_MPI(
          MPI_Reduce(MPI_IN_PLACE, data.data() + off, count, MPI_FLOAT, MPI_SUM, root, h_->world));
    } else {
      FEDSILO_MPI(
          MPI_Reduce(data.data() + off, nullptr, count, MPI_FLOAT, MPI_SUM, root, h_->world));
    }
  }
  return {};
}

Status Comm::broadcast(std::span<float> data, int root) {
  return bcast_chunked(h_->world, data.data(), static_cast<int64_t>(data.size()), MPI_FLOAT,
                       static_cast<int>(sizeof(float)), root);
}

Status Comm::reduce_scatter_sum(std::span<const float> in, std::span<float> out,
                                std::span<const int> counts) {
  if (static_cast<int>(counts.size()) != size_ ||
      out.size() != static_cast<size_t>(counts[rank_])) {
    return invalid_argument("reduce_scatter_sum: counts do not match the communicator");
  }
  FEDSILO_MPI(
      MPI_Reduce_scatter(in.data(), out.data(), counts.data(), MPI_FLOAT, MPI_SUM, h_->world));
  return {};
}

Status Comm::allgatherv(std::span<const float> mine, std::span<float> all,
                        std::span<const int> counts) {
  if (static_cast<int>(counts.size()) != size_ ||
      mine.size() != static_cast<size_t>(counts[rank_])) {
    return invalid_argument("allgatherv: counts do not match the communicator");
  }
  std::vector<int> displs(size_);
  int64_t off = 0;
  for (int q = 0; q < size_; ++q) {
    if (off > INT_MAX) return invalid_argument("allgatherv: displacement above 2^31 elements");
    displs[q] = static_cast<int>(off);
    off += counts[q];
  }
  if (all.size() != static_cast<size_t>(off)) {
    return invalid_argument("allgatherv: output length is not the sum of counts");
  }
  FEDSILO_MPI(MPI_Allgatherv(mine.data(), counts[rank_], MPI_FLOAT, all.data(), counts.data(),
                             displs.data(), MPI_FLOAT, h_->world));
  return {};
}

// ---------------------------------------------------------------- node-shared memory

struct SharedWindow::Handles {
  MPI_Win win = MPI_WIN_NULL;
  MPI_Comm comm = MPI_COMM_NULL;  // not owned: the Comm outlives the window
  ~Handles() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized || win == MPI_WIN_NULL) return;
    MPI_Win_unlock_all(win);
    MPI_Win_free(&win);
  }
};

SharedWindow::SharedWindow() = default;
SharedWindow::~SharedWindow() = default;
SharedWindow::SharedWindow(SharedWindow&&) noexcept = default;
SharedWindow& SharedWindow::operator=(SharedWindow&&) noexcept = default;

Result<SharedWindow> SharedWindow::allocate(const Comm& comm, int64_t bytes) {
  if (bytes < 1) return invalid_argument("SharedWindow: bytes must be >= 1");
  SharedWindow w;
  auto h = std::make_unique<Handles>();
  h->comm = comm.h_->world;
  MPI_Info info;
  FEDSILO_MPI(MPI_Info_create(&info));
  // Each segment on its own pages (near the rank that writes it); query gives the addresses.
  MPI_Info_set(info, "alloc_shared_noncontig", "true");
  void* mine = nullptr;
  const int rc = MPI_Win_allocate_shared(static_cast<MPI_Aint>(bytes), 1, info, h->comm, &mine,
                                         &h->win);
  MPI_Info_free(&info);
  FEDSILO_CHECK(check(rc, "MPI_Win_allocate_shared"));
  FEDSILO_MPI(MPI_Win_set_errhandler(h->win, MPI_ERRORS_RETURN));
  FEDSILO_MPI(MPI_Win_lock_all(MPI_MODE_NOCHECK, h->win));
  w.base_.resize(static_cast<size_t>(comm.size()));
  for (int q = 0; q < comm.size(); ++q) {
    MPI_Aint size = 0;
    int disp = 0;
    void* base = nullptr;
    FEDSILO_MPI(MPI_Win_shared_query(h->win, q, &size, &disp, &base));
    if (size < bytes) return Status(StatusCode::kCommError, "MPI_Win_shared_query: short segment");
    w.base_[static_cast<size_t>(q)] = static_cast<std::byte*>(base);
  }
  w.bytes_ = bytes;
  w.h_ = std::move(h);
  return w;
}

Status SharedWindow::sync() {
  FEDSILO_MPI(MPI_Win_sync(h_->win));
  if (spin_waits()) {
    FEDSILO_MPI(MPI_Barrier(h_->comm));
  } else {
    FEDSILO_CHECK(wait_sleeping(h_->comm));
  }
  FEDSILO_MPI(MPI_Win_sync(h_->win));
  return {};
}

}  // namespace fedsilo::mpi
