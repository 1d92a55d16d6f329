// A run directory (run.out_dir): starting a run in it (fresh, --overwrite, --resume) and
// keeping its metrics.jsonl in step with the checkpoint a run resumes from.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/status.h"

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

}  // namespace fedsilo::fl
