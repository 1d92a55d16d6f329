// Atomic, resumable checkpoints of a run directory.
//
//   RUN/checkpoints/ckpt-000006.h5     global model and server state (rank 0)
//   RUN/private/silo-03/ckpt-000006.h5 silo 3's private state, mode 0700 (or FEDSILO_STATE_DIR)
//   RUN/checkpoints/ckpt-000006.done   marker (JSON: round, config hash, files), renamed last
//
// A checkpoint counts only once its marker exists; resume takes the newest complete one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace fedsilo::checkpoint {

struct Marker {
  int64_t round = 0;
  std::string config_hash;
  std::string reducer;
  std::vector<std::string> files;   // relative to the run directory
};

std::string checkpoints_dir(const std::string& run_dir);
std::string global_path(const std::string& run_dir, int64_t round);
std::string marker_path(const std::string& run_dir, int64_t round);
/// The silo's private directory: $FEDSILO_STATE_DIR if set (the Slurm plugin provides one),
/// else RUN/private/silo-XX; created with mode 0700.
[[nodiscard]] Result<std::string> silo_private_dir(const std::string& run_dir,
                                                   const std::string& silo_name);
/// Relative path of a silo's state file inside its private directory.
std::string silo_state_file(int64_t round);

/// Writes the marker atomically (last step of a checkpoint).
[[nodiscard]] Status write_marker(const std::string& run_dir, const Marker& m);
/// The newest marker whose global file exists, or nullopt if there is none. Unreadable markers
/// are skipped (a crash can only leave temporary files, never a partial marker).
[[nodiscard]] Result<std::optional<Marker>> find_latest(const std::string& run_dir);
/// Deletes all but the newest `keep` complete checkpoints (markers first, then their files).
[[nodiscard]] Status prune(const std::string& run_dir, int keep);

}  // namespace fedsilo::checkpoint
