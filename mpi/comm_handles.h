// Inside the communication layer only (mpi/*.cpp): the MPI handles behind a Comm, and the
// check that turns an MPI return code into a Status naming the call.
#pragma once

#include <mpi.h>

#include <string>

#include "core/status.h"
#include "mpi/comm.h"

namespace fedsilo::mpi {

inline Status check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return {};
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return {StatusCode::kCommError, std::string(call) + " failed: " + std::string(msg, len)};
}

#define FEDSILO_MPI(call) FEDSILO_CHECK(::fedsilo::mpi::check((call), #call))

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

}  // namespace fedsilo::mpi
