#include "fl/run_dir.h"

#include <filesystem>
#include <fstream>

#include "checkpoint/checkpoint.h"
#include "core/fs.h"
#include "fl/strategy.h"
#include "fl/update_exchange.h"

namespace fedsilo::fl {

checkpoint::SiloState silo_private_state(UpdateExchange& exchange, Strategy& strategy) {
  checkpoint::SiloState out = exchange.private_state();
  for (auto& named : strategy.silo_state()) out.push_back(named);
  return out;
}

namespace stdfs = std::filesystem;

namespace {

// Files and folders a run directory holds; --overwrite removes exactly these.
const char* const kRunEntries[] = {"config.toml", "metrics.jsonl", "model.h5", "checkpoints",
                                   "private"};

bool holds_run(const std::string& dir) {
  for (const char* e : kRunEntries) {
    if (stdfs::exists(dir + "/" + e)) return true;
  }
  return false;
}

}  // namespace

Result<RunStart> start_run_dir(const config::Config& cfg, bool overwrite, bool resume) {
  const std::string& run_dir = cfg.run.out_dir;
  RunStart out;
  if (stdfs::exists(run_dir) && holds_run(run_dir)) {
    if (overwrite) {
      for (const char* e : kRunEntries) {
        std::error_code ec;
        stdfs::remove_all(run_dir + "/" + e, ec);
        if (ec) return io_error("--overwrite: cannot remove " + run_dir + "/" + e + ": " + ec.message());
      }
    } else if (!resume) {
      return Status{StatusCode::kAlreadyExists,
                    "run.out_dir " + run_dir + " already holds a run; pass --resume to continue "
                    "it or --overwrite to replace it"};
    }
  }
  FEDSILO_CHECK(fs::make_dirs(run_dir));
  FEDSILO_CHECK(fs::make_dirs(checkpoint::checkpoints_dir(run_dir)));
  if (resume) {
    FEDSILO_ASSIGN_OR_RETURN(auto latest, checkpoint::find_latest(run_dir));
    if (latest) {
      if (latest->config_hash != config::resume_hash(cfg)) {
        // Name what changed, from the config the run recorded.
        std::string changed;
        if (auto before = config::load_config(run_dir + "/config.toml"); before.ok()) {
          for (const std::string& d : config::resume_differences(cfg, before.value())) {
            changed += (changed.empty() ? "" : ", ") + d;
          }
        }
        return invalid_argument(
            "--resume: the checkpoint of round " + std::to_string(latest->round) + " in " +
            run_dir + " was made with a different config" +
            (changed.empty() ? std::string() : ": " + changed) +
            " (only run.rounds may change; the run's config is " + run_dir + "/config.toml)");
      }
      if (latest->round == cfg.run.rounds && stdfs::exists(run_dir + "/model.h5")) {
        out.finished = true;
        return out;
      }
      if (latest->round > cfg.run.rounds) {
        return invalid_argument("run.rounds = " + std::to_string(cfg.run.rounds) +
                                " is below the checkpoint's round " +
                                std::to_string(latest->round) + " in " + run_dir);
      }
      out.resume_from = checkpoint::global_path(run_dir, latest->round);
      out.resumed_algorithm = latest->reducer;
      out.resumed_layout = latest->layout;
    }
  }
  FEDSILO_CHECK(fs::write_text_atomically(run_dir + "/config.toml", config::to_toml(cfg)));
  return out;
}

Status truncate_metrics(const std::string& path, int64_t last_round,
                        std::vector<nlohmann::json>& kept) {
  kept.clear();
  std::ifstream in(path);
  if (!in) return {};
  std::string line, text;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception&) {
      break;  // a torn last line from a crash
    }
    if (j.value("round", int64_t{0}) > last_round) break;
    kept.push_back(j);
    text += line + "\n";
  }
  return fs::write_text_atomically(path, text);
}

Status write_round_checkpoint(mpi::Comm& comm, const config::Config& cfg, int64_t round,
                              const CheckpointParts& parts,
                              const std::function<Status(const std::string&)>& write_global) {
  const std::string& run_dir = cfg.run.out_dir;
  Status st = checkpoint::write_silo_state(parts.private_dir, round, comm.rank(), parts.config_hash,
                                           parts.state, parts.user_state);
  FEDSILO_CHECK(comm.agree(st));
  if (comm.rank() == 0) {
    const std::string global = checkpoint::global_path(run_dir, round);
    st = write_global(global);
    if (st.ok()) {
      checkpoint::Marker m{round, parts.config_hash, parts.algorithm,
                           {"checkpoints/" + std::filesystem::path(global).filename().string()},
                           parts.layout};
      st = checkpoint::write_marker(run_dir, m);
    }
    if (st.ok()) st = checkpoint::prune(run_dir, cfg.run.keep_checkpoints);
  }
  FEDSILO_CHECK(comm.agree(st));
  // Each silo prunes its own private directory to the same rounds.
  checkpoint::prune_silo_states(parts.private_dir, cfg.run.keep_checkpoints);
  return {};
}

Status append_json_line(const std::string& path, const nlohmann::json& line) {
  std::ofstream out(path, std::ios::app);
  out << line.dump() << "\n";
  out.flush();
  return out ? Status() : io_error("cannot append to " + path);
}

}  // namespace fedsilo::fl
