// Process exit codes of the fedsilo command, one per kind of failure.
#pragma once

#include "core/status.h"

namespace fedsilo::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;        // I/O, corrupt data, MPI, internal
inline constexpr int kExitUsage = 2;        // bad flag, config key or value
inline constexpr int kExitRunExists = 3;    // run directory holds a run: --resume or --overwrite
inline constexpr int kExitDiverged = 4;     // non-finite loss or update
inline constexpr int kExitRequeue = 5;      // stopped by SIGUSR1 after checkpointing: requeue and --resume
inline constexpr int kExitFinal = 6;        // stopped for good (a spent privacy budget:
                                            // privacy.max_epsilon): the job script does not requeue
inline constexpr int kExitCancelled = 7;    // stopped by SIGINT/SIGTERM after checkpointing: --resume
                                            // continues; not requeued

inline int exit_code_for(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk: return kExitOk;
    case StatusCode::kInvalidArgument: return kExitUsage;
    case StatusCode::kAlreadyExists: return kExitRunExists;
    case StatusCode::kDiverged: return kExitDiverged;
    case StatusCode::kInterrupted: return kExitRequeue;
    case StatusCode::kCancelled: return kExitCancelled;
    case StatusCode::kBudgetSpent: return kExitFinal;
    default: return kExitError;
  }
}

}  // namespace fedsilo::cli
