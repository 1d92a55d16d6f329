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
  int64_t data_bytes = 0;    // the largest silo's data files plus its share of the global test
                             // file (0: unknown); sizes the memory request
  std::string python_path;   // where the fedsilo Python package is (an install's
                             // lib/fedsilo/python), for a run.command job's PYTHONPATH; empty:
                             // the environment's (the modulefile's) PYTHONPATH
};

/// Where the job's ranks go: `nodes` nodes of `ranks_per_node` ranks each, in blocks (ranks
/// 0..ranks_per_node-1 on the first node, and so on). Always even, so that Slurm places a
/// requeued job exactly as before.
struct NodeLayout {
  int nodes = 0;
  int ranks_per_node = 0;
};

/// The pinned layout of `silos` ranks (one per silo) under [slurm] nodes / ranks_per_node, 0
/// meaning "derive it": both 0, all silos on one node; one of them 0, the other divided into
/// the silos; both set, their product must be the silo count. kInvalidArgument, naming the
/// settings and listing the even layouts of this silo count, where the silos do not split
/// evenly (an uneven split is not reproducible: Slurm may place it differently on a requeue,
/// and at compression.level = "node" fedsilo then refuses to resume).
[[nodiscard]] Result<NodeLayout> pinned_layout(const config::SlurmSection& slurm, int silos);

/// Memory per task (MiB) for a silo whose data files take `data_bytes`: the data loaded twice
/// over (samples, batches and evaluation buffers) plus 512 MiB for MPI, BLAS and the model,
/// rounded up to 256 MiB.
[[nodiscard]] int64_t estimated_task_memory_mib(int64_t data_bytes);

/// What a run.command task adds to estimated_task_memory_mib(): the Python interpreter with
/// torch imported (~230 MiB resident on a CPU node, more with a CUDA context) and the user's
/// model, optimizer state and batches, which fedsilo cannot see. slurm.mem_per_task overrides.
inline constexpr int64_t kPythonTaskMib = 1024;

/// The job script: one task per silo through `srun --mpi=<slurm.mpi>` with its cores
/// (`--cpus-per-task`) and memory (`--mem-per-cpu`), the rank-to-node layout pinned
/// (`--nodes` and `--ntasks-per-node` from pinned_layout(), `--distribution=block`), `--resume`
/// (a fresh job starts at round 0, a requeued one continues), `--requeue` and
/// `--signal=B:USR1@S`, a USR1 trap that forwards the signal to the ranks and requeues the job
/// when fedsilo exits with kExitRequeue.
/// With run.command set (a PyTorch binding script), the tasks run `<run.command> CONFIG`
/// instead of `fedsilo train CONFIG --resume`, with FEDSILO_RESUME=1 exported (the binding's
/// --resume), PYTHONPATH prepended with `in.python_path` where that is set, and kPythonTaskMib
/// more memory per task; everything else is the same.
/// pinned_layout()'s error when the [slurm] settings cannot place the silos evenly;
/// kInvalidArgument for model.arch = "pytorch" without run.command (`fedsilo train` cannot run it).
[[nodiscard]] Result<std::string> make_sbatch_script(const config::Config& cfg, const SbatchInputs& in);

/// Silos in a SPANK manifest (lines `NAME DATA_DIR STATE_DIR ALLOWED`, `#` comments, blank
/// lines): the count, or an error naming the file and line of a malformed entry.
[[nodiscard]] Result<int> count_manifest_silos(const std::string& path);

}  // namespace fedsilo::cli
