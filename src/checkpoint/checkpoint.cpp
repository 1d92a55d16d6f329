// Checkpoint markers, paths, discovery and pruning.
#include "checkpoint/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/fs.h"
#include "core/h5.h"

namespace fedsilo::checkpoint {
namespace stdfs = std::filesystem;

static std::string round_tag(int64_t round) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ckpt-%06lld", static_cast<long long>(round));
  return buf;
}

std::string checkpoints_dir(const std::string& run_dir) { return run_dir + "/checkpoints"; }
std::string global_path(const std::string& run_dir, int64_t round) {
  return checkpoints_dir(run_dir) + "/" + round_tag(round) + ".h5";
}
std::string marker_path(const std::string& run_dir, int64_t round) {
  return checkpoints_dir(run_dir) + "/" + round_tag(round) + ".done";
}
std::string silo_state_file(int64_t round) { return round_tag(round) + ".h5"; }

Result<std::string> silo_private_dir(const std::string& run_dir, const std::string& silo_name) {
  const char* env = std::getenv("FEDSILO_STATE_DIR");
  std::string dir = (env != nullptr && *env != '\0') ? std::string(env)
                                                     : run_dir + "/private/" + silo_name;
  FEDSILO_CHECK(fs::make_dirs(dir, 0700));
  return dir;
}

Status write_marker(const std::string& run_dir, const Marker& m) {
  nlohmann::json j = {{"round", m.round},
                      {"config_hash", m.config_hash},
                      {"reducer", m.reducer},
                      {"files", m.files}};
  if (!m.layout.empty()) j["layout"] = m.layout;
  return fs::write_text_atomically(marker_path(run_dir, m.round), j.dump(2) + "\n");
}

static std::vector<int64_t> marker_rounds(const std::string& run_dir) {
  std::vector<int64_t> rounds;
  std::error_code ec;
  const std::regex re("ckpt-([0-9]+)\\.done");
  for (const auto& e : stdfs::directory_iterator(checkpoints_dir(run_dir), ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, re)) rounds.push_back(std::stoll(m[1].str()));
  }
  std::sort(rounds.begin(), rounds.end());
  return rounds;
}

static Result<Marker> read_marker(const std::string& run_dir, int64_t round) {
  const std::string path = marker_path(run_dir, round);
  FEDSILO_ASSIGN_OR_RETURN(std::string text, fs::read_text(path));
  try {
    const auto j = nlohmann::json::parse(text);
    Marker m;
    m.round = j.at("round").get<int64_t>();
    m.config_hash = j.at("config_hash").get<std::string>();
    m.reducer = j.at("reducer").get<std::string>();
    m.files = j.at("files").get<std::vector<std::string>>();
    m.layout = j.value("layout", std::string());
    if (m.round != round) return corrupt_data(path + ": names round " + std::to_string(m.round));
    return m;
  } catch (const std::exception& e) {
    return corrupt_data(path + ": " + e.what());
  }
}

Result<std::optional<Marker>> find_latest(const std::string& run_dir) {
  auto rounds = marker_rounds(run_dir);
  for (auto it = rounds.rbegin(); it != rounds.rend(); ++it) {
    auto m = read_marker(run_dir, *it);
    if (!m.ok()) continue;
    if (!stdfs::exists(global_path(run_dir, *it))) continue;
    return std::optional<Marker>(m.value());
  }
  return std::optional<Marker>();
}

Status prune(const std::string& run_dir, int keep) {
  auto rounds = marker_rounds(run_dir);
  if (static_cast<int>(rounds.size()) <= keep) return {};
  for (size_t i = 0; i + static_cast<size_t>(keep) < rounds.size(); ++i) {
    auto m = read_marker(run_dir, rounds[i]);
    std::error_code ec;
    stdfs::remove(marker_path(run_dir, rounds[i]), ec);
    if (!m.ok()) continue;
    for (const auto& f : m.value().files) stdfs::remove(run_dir + "/" + f, ec);
  }
  return {};
}

Status write_silo_state(const std::string& private_dir, int64_t round, int silo,
                        const std::string& config_hash, const SiloState& state,
                        const std::vector<uint8_t>* user_state) {
  return h5::write_atomically(private_dir + "/" + silo_state_file(round), [&](h5::File& f) -> Status {
    FEDSILO_CHECK(f.write_attr_str("", "format", "fedsilo-silo-state"));
    FEDSILO_CHECK(f.write_attr_i64("", "round", round));
    FEDSILO_CHECK(f.write_attr_i64("", "silo", silo));
    for (const auto& [name, vec] : state) {
      if (!vec->empty()) {
        FEDSILO_CHECK(f.write_f32(name, *vec, {static_cast<int64_t>(vec->size())}));
      }
    }
    if (user_state != nullptr && !user_state->empty()) {
      FEDSILO_CHECK(f.write_u8("user_state", *user_state, {static_cast<int64_t>(user_state->size())}));
    }
    return f.write_attr_str("", "config_hash", config_hash);
  });
}

Status check_silo_state(const std::string& private_dir, int64_t round,
                        const std::string& silo_name) {
  FEDSILO_ASSIGN_OR_RETURN(auto f, h5::File::open_read(private_dir + "/" + silo_state_file(round)));
  auto r = f.read_attr_i64("", "round");
  if (r.ok() && r.value() == round) return {};
  return corrupt_data(silo_name + ": private state for round " + std::to_string(round) +
                      " is unreadable");
}

// The named vectors of an HDF5 file (a silo state or a global checkpoint) and its user_state.
static Status read_vectors(const std::string& path, const SiloState& state,
                           std::vector<uint8_t>* user_state) {
  FEDSILO_ASSIGN_OR_RETURN(auto f, h5::File::open_read(path));
  for (const auto& [name, vec] : state) {
    if (vec->empty()) continue;
    FEDSILO_ASSIGN_OR_RETURN(auto v, f.read_f32(name));
    if (v.size() != vec->size()) {
      return corrupt_data(path + ": '" + name + "' has " + std::to_string(v.size()) +
                          " values, the model " + std::to_string(vec->size()));
    }
    *vec = std::move(v);
  }
  if (user_state != nullptr) {
    user_state->clear();
    if (f.has("user_state")) {
      FEDSILO_ASSIGN_OR_RETURN(*user_state, f.read_u8("user_state"));
    }
  }
  return {};
}

Status read_named_vectors(const std::string& path, const SiloState& state) {
  return read_vectors(path, state, nullptr);
}

Status read_silo_state(const std::string& private_dir, int64_t round, const SiloState& state,
                       std::vector<uint8_t>* user_state) {
  return read_vectors(private_dir + "/" + silo_state_file(round), state, user_state);
}

void prune_silo_states(const std::string& private_dir, int keep) {
  std::vector<std::string> mine;
  std::error_code ec;
  for (const auto& e : stdfs::directory_iterator(private_dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("ckpt-", 0) == 0 && n.size() == 14 && n.ends_with(".h5")) mine.push_back(n);
  }
  std::sort(mine.begin(), mine.end());
  for (size_t i = 0; i + static_cast<size_t>(std::max(keep, 0)) < mine.size(); ++i) {
    stdfs::remove(private_dir + "/" + mine[i], ec);
  }
}

}  // namespace fedsilo::checkpoint
