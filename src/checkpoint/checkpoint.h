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
#include <utility>
#include <vector>

#include "core/status.h"

namespace fedsilo::checkpoint {

struct Marker {
  int64_t round = 0;
  std::string config_hash;
  std::string reducer;
  std::vector<std::string> files;   // relative to the run directory
  std::string layout;  // node of each rank, "0,0,1,1" (empty in markers of older versions)
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

/// A silo's private state: named float vectors (error-feedback residual, DGC velocity) kept in
/// its private directory, never sent. Empty vectors are neither written nor read.
using SiloState = std::vector<std::pair<std::string, std::vector<float>*>>;
/// Writes PRIVATE_DIR/ckpt-ROUND.h5 atomically: the vectors, the round, the silo, the hash, and
/// `user_state` where given and not empty (the Python binding's registered state, opaque bytes).
[[nodiscard]] Status write_silo_state(const std::string& private_dir, int64_t round, int silo,
                                      const std::string& config_hash, const SiloState& state,
                                      const std::vector<uint8_t>* user_state = nullptr);
/// Checks that the state file of `round` exists and records that round; the error names
/// `silo_name` ("silo-03: private state for round 4 is unreadable").
[[nodiscard]] Status check_silo_state(const std::string& private_dir, int64_t round,
                                      const std::string& silo_name);
/// Reads the vectors of `round` into `state`; a vector whose stored length differs from the
/// one in `state` is kCorruptData naming the file, the name and both lengths. `user_state`,
/// where given, receives the stored bytes (empty if the file has none).
[[nodiscard]] Status read_silo_state(const std::string& private_dir, int64_t round,
                                     const SiloState& state,
                                     std::vector<uint8_t>* user_state = nullptr);
/// Reads named vectors from any checkpoint file (the server optimizer's state in a global
/// checkpoint), with read_silo_state's length checks.
[[nodiscard]] Status read_named_vectors(const std::string& path, const SiloState& state);
/// Deletes all but the newest `keep` state files of a private directory.
void prune_silo_states(const std::string& private_dir, int keep);

}  // namespace fedsilo::checkpoint
