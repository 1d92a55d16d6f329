// MPI communicator wrapper: checked calls, node-local split, collective error agreement.
#include "mpi/comm.h"

#include <mpi.h>

#include <climits>
#include <cstring>

namespace fedsilo::mpi {
namespace {

Status check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return {};
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return {StatusCode::kCommError, std::string(call) + " failed: " + std::string(msg, len)};
}

#define FEDSILO_MPI(call) FEDSILO_CHECK(check((call), #call))

}  // namespace

struct Comm::Handles {
  MPI_Comm world = MPI_COMM_NULL;
  MPI_Comm node = MPI_COMM_NULL;
  ~Handles() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (node != MPI_COMM_NULL) MPI_Comm_free(&node);
    if (world != MPI_COMM_NULL) MPI_Comm_free(&world);
  }
};

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

Status Comm::barrier() {
  FEDSILO_MPI(MPI_Barrier(h_->world));
  return {};
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

}  // namespace fedsilo::mpi
