// A run directory (run.out_dir): starting a run in it (fresh, --overwrite, --resume) and
// keeping its metrics.jsonl in step with the checkpoint a run resumes from.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/config.h"
#include "core/status.h"
#include "mpi/comm.h"

namespace fedsilo::fl {

/// What starting a run found in its directory.
struct RunStart {
  std::string resume_from;        // the global checkpoint to continue from; empty: round 0
  std::string resumed_algorithm;  // the allreduce algorithm that checkpoint's run used
  std::string resumed_layout;     // its ranks' nodes ("0,0,1,1"; empty if not recorded)
  bool finished = false;          // --resume of a run that has completed all its rounds
};

/// Rank 0's part of starting a run: refuses a directory holding a run unless `overwrite`
/// (which removes exactly the run's entries) or `resume`; with `resume`, finds the newest
/// complete checkpoint and checks that it was made with the same config (naming what changed)
/// and is not past run.rounds; writes config.toml (what takes effect) unless the run has
/// finished. Creates the directory and its checkpoints/ folder.
[[nodiscard]] Result<RunStart> start_run_dir(const config::Config& cfg, bool overwrite,
                                             bool resume);

/// Rewrites `path` (metrics.jsonl) keeping only the lines of rounds <= last_round, which it
/// returns in `kept`: a resumed run's file then equals an uninterrupted run's. A torn last
/// line (a crash mid-write) ends the file. A missing file is empty.
[[nodiscard]] Status truncate_metrics(const std::string& path, int64_t last_round,
                                      std::vector<nlohmann::json>& kept);

/// What a round's checkpoint holds besides the global model.
class Strategy;
class UpdateExchange;

/// The silo-private vectors a checkpoint keeps, by dataset name: the exchange's transforms'
/// (error-feedback residuals) and the strategy's (SCAFFOLD's control variate).
[[nodiscard]] checkpoint::SiloState silo_private_state(UpdateExchange& exchange, Strategy& strategy);

struct CheckpointParts {
  std::string config_hash;
  std::string algorithm;  // the allreduce algorithm the run uses (reused on resume)
  std::string layout;     // the node of each rank ("0,0,1,1")
  std::string private_dir;
  checkpoint::SiloState state;                     // this silo's private vectors
  const std::vector<uint8_t>* user_state = nullptr;  // the binding's registered state
};

/// The checkpoint of `round`: every silo's private state, then rank 0's global file (written by
/// `write_global` to the path it is given), then the marker; then both sides prune to
/// run.keep_checkpoints. Collective; errors are agreed.
[[nodiscard]] Status write_round_checkpoint(mpi::Comm& comm, const config::Config& cfg, int64_t round,
                                            const CheckpointParts& parts,
                                            const std::function<Status(const std::string&)>& write_global);

/// Appends one JSON line to `path` and flushes it (a crash loses at most the line in flight).
[[nodiscard]] Status append_json_line(const std::string& path, const nlohmann::json& line);

}  // namespace fedsilo::fl
