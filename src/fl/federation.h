// The round driver of allreduce trust mode: every rank is one silo; it trains locally, the
// updates are summed by a Reducer, and the same deterministic server step runs on every rank.
#pragma once

#include <csignal>
#include <string>

#include "config/config.h"
#include "core/status.h"
#include "mpi/comm.h"

namespace fedsilo::fl {

struct FederationOptions {
  bool resume = false;       // continue from the newest complete checkpoint (or start at 0)
  bool overwrite = false;    // replace an existing run in run.out_dir
  bool progress = true;      // rank 0 prints a line per round and a summary
  std::string config_path;   // for messages
  /// Set (by a SIGUSR1 handler) to ask for a stop before a time limit: every rank checks it at
  /// the end of each round; if any rank saw it, all checkpoint that round and return
  /// kInterrupted together (the job script requeues the job).
  const volatile std::sig_atomic_t* stop_requested = nullptr;
  /// Set to the signal number (by a SIGINT/SIGTERM handler: Ctrl-C, scancel) to stop as soon as
  /// possible: local training stops at its next mini-batch and the round is dropped, or a round
  /// past its exchange is finished; the last completed round is checkpointed and every rank
  /// returns kCancelled.
  const volatile std::sig_atomic_t* cancel_requested = nullptr;
};

/// Runs the whole federation. Collective: every rank returns the same Status.
[[nodiscard]] Status run_federation(const config::Config& cfg, const FederationOptions& opts,
                                    mpi::Comm& comm);

/// Where this rank's silo lives: its name ("silo-03", or $FEDSILO_SILO under the Slurm plugin)
/// and its data directory (data.silos_dir/NAME, or the plugin's $FEDSILO_DATA_DIR).
struct SiloLocation {
  std::string name;
  std::string dir;
};
[[nodiscard]] SiloLocation silo_location(const config::Config& cfg, int rank, int size);

/// Number of silo-* directories in `silos_dir`; kNotFound if it does not exist, saying what
/// makes it: the "# data: ..." comment lines of the config at `config_path` where it has them.
[[nodiscard]] Result<int> count_silos(const std::string& silos_dir, const std::string& config_path = "");

}  // namespace fedsilo::fl
