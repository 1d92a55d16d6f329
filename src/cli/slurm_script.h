// `fedsilo slurm`: a ready-to-submit sbatch script from a run configuration.
#pragma once

#include <string>

#include "config/config.h"
#include "core/status.h"

namespace fedsilo::cli {

struct SbatchInputs {
  std::string config_path;   // absolute path of the config the job trains
  std::string fedsilo_path;  // absolute path of the fedsilo command the job runs
  std::string submit_dir;    // absolute directory the job runs in (relative paths of the config)
  int silos = 0;             // tasks: one per silo
};

/// The job script: one task per silo through `srun --mpi=pmix`, `--resume` (a fresh job starts
/// at round 0, a requeued one continues), `--requeue` and `--signal=B:USR1@S`, a USR1 trap that
/// forwards the signal to the ranks and requeues the job when fedsilo exits with kExitRequeue.
/// kInvalidArgument when the [slurm] settings cannot place the silos (nodes x ranks_per_node).
[[nodiscard]] Result<std::string> make_sbatch_script(const config::Config& cfg, const SbatchInputs& in);

/// Silos in a SPANK manifest (lines `NAME DATA_DIR STATE_DIR ALLOWED`, `#` comments, blank
/// lines): the count, or an error naming the file and line of a malformed entry.
[[nodiscard]] Result<int> count_manifest_silos(const std::string& path);

}  // namespace fedsilo::cli
