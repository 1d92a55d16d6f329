// `fedsilo slurm CONFIG.toml [-o FILE]`: writes the sbatch script of a run (see slurm_script.h).
#include "cli/slurm_script.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "core/fs.h"
#include "fl/federation.h"

namespace fedsilo::cli {
namespace {

namespace stdfs = std::filesystem;

// Single-quoted for sh: safe for any path.
std::string sh_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string absolute(const std::string& path, const std::string& base) {
  const stdfs::path p(path);
  return (p.is_absolute() ? p : stdfs::path(base) / p).lexically_normal().string();
}

// Bytes of the largest silo's train.h5 + test.h5 under `silos_dir`, plus its share of the
// global test file; 0 where nothing can be read.
int64_t silo_data_bytes(const std::string& silos_dir, const std::string& test_file, int silos) {
  std::error_code ec;
  int64_t largest = 0;
  for (const auto& e : stdfs::directory_iterator(silos_dir, ec)) {
    if (!e.is_directory()) continue;
    int64_t bytes = 0;
    for (const char* f : {"train.h5", "test.h5"}) {
      const auto size = stdfs::file_size(e.path() / f, ec);
      if (!ec) bytes += static_cast<int64_t>(size);
    }
    largest = std::max(largest, bytes);
  }
  const auto test = stdfs::file_size(test_file, ec);
  return largest + (ec ? 0 : static_cast<int64_t>(test) / std::max(1, silos));
}

// The Python package of the install `fedsilo_path` belongs to (PREFIX/bin/fedsilo ->
// PREFIX/lib/fedsilo/python, FEDSILO_PYTHON_INSTALL_DIR); empty where it is not there (a build
// tree, an install without the binding).
std::string installed_python_dir(const std::string& fedsilo_path) {
#ifdef FEDSILO_PYTHON_FROM_BINDIR
  const stdfs::path dir =
      (stdfs::path(fedsilo_path).parent_path() / FEDSILO_PYTHON_FROM_BINDIR).lexically_normal();
  std::error_code ec;
  if (stdfs::is_regular_file(dir / "fedsilo" / "__init__.py", ec)) return dir.string();
#endif
  (void)fedsilo_path;
  return {};
}

}  // namespace

int64_t estimated_task_memory_mib(int64_t data_bytes) {
  constexpr int64_t kMiB = 1 << 20;
  const int64_t mib = 512 + (2 * data_bytes + kMiB - 1) / kMiB;
  return (mib + 255) / 256 * 256;
}

Result<int> count_manifest_silos(const std::string& path) {
  std::ifstream in(path);
  if (!in) return not_found("slurm.manifest: cannot read " + path);
  std::string line;
  int silos = 0, lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string w; fields >> w;) f.push_back(w);
    if (f.empty()) continue;
    if (f.size() != 4) {
      return invalid_argument(path + ":" + std::to_string(lineno) + ": expected NAME DATA_DIR STATE_DIR ALLOWED, got " +
                              std::to_string(f.size()) + " fields");
    }
    ++silos;
  }
  if (silos == 0) return invalid_argument(path + ": the manifest lists no silos");
  return silos;
}

Result<NodeLayout> pinned_layout(const config::SlurmSection& slurm, int silos) {
  if (silos <= 0) return invalid_argument("no silos to place");
  if (slurm.nodes > silos) {
    return invalid_argument("slurm.nodes = " + std::to_string(slurm.nodes) + " exceeds the " +
                            std::to_string(silos) +
                            " silos (one task per silo, at least one per node)");
  }
  NodeLayout l{slurm.nodes, slurm.ranks_per_node};
  if (l.nodes == 0 && l.ranks_per_node == 0) l = {1, silos};  // nothing said: one node
  if (l.nodes == 0 && silos % l.ranks_per_node == 0) l.nodes = silos / l.ranks_per_node;
  if (l.ranks_per_node == 0 && silos % l.nodes == 0) l.ranks_per_node = silos / l.nodes;
  if (l.nodes > 0 && l.ranks_per_node > 0 &&
      static_cast<int64_t>(l.nodes) * l.ranks_per_node == silos) {
    return l;
  }

  // Not even: say what was asked, what it would have meant, and which layouts exist.
  std::string asked;
  if (slurm.nodes > 0 && slurm.ranks_per_node > 0) {
    asked = "slurm.nodes = " + std::to_string(slurm.nodes) + " x slurm.ranks_per_node = " +
            std::to_string(slurm.ranks_per_node) + " places " +
            std::to_string(static_cast<int64_t>(slurm.nodes) * slurm.ranks_per_node) +
            " tasks, not the " + std::to_string(silos) + " silos (one task per silo)";
  } else if (slurm.ranks_per_node > 0) {
    asked = "slurm.ranks_per_node = " + std::to_string(slurm.ranks_per_node) +
            " does not divide the " + std::to_string(silos) + " silos (" +
            (slurm.ranks_per_node > silos
                 ? std::string("more ranks per node than silos")
                 : "the last node would hold " + std::to_string(silos % slurm.ranks_per_node)) +
            ")";
  } else {
    asked = "slurm.nodes = " + std::to_string(slurm.nodes) + " does not divide the " +
            std::to_string(silos) + " silos (" + std::to_string(silos / slurm.nodes) + " or " +
            std::to_string(silos / slurm.nodes + 1) + " on a node)";
  }
  std::string even;
  for (int n = 1; n <= silos; ++n) {
    if (silos % n == 0) {
      even += (even.empty() ? "" : ", ") + std::to_string(n) + " x " + std::to_string(silos / n);
    }
  }
  return invalid_argument(
      asked +
      "; `fedsilo slurm` pins an even rank-to-node layout so that a requeued job gets the same "
      "one (at compression.level = \"node\" a resume on another layout is refused). Even "
      "layouts of " +
      std::to_string(silos) + " silos (slurm.nodes x slurm.ranks_per_node): " + even);
}

Result<std::string> make_sbatch_script(const config::Config& cfg, const SbatchInputs& in) {
  const config::SlurmSection& s = cfg.slurm;
  const int silos = in.silos;
  // run.command: the tasks run the user's entry point (a fedsilo.torch script), not fedsilo train.
  const std::string& command = cfg.run.command;
  if (command.empty() && cfg.model.arch == config::Arch::kPytorch) {
    return invalid_argument(
        "model.arch = \"pytorch\" is trained by your own script, which `fedsilo train` cannot run: "
        "set run.command to it (e.g. run.command = \"/usr/bin/python3 train.py\"; the job appends "
        "the config's path)");
  }
  const std::string resume_how = command.empty() ? "--resume" : "FEDSILO_RESUME=1";
  auto layout = pinned_layout(s, silos);
  if (!layout.ok()) return layout.status();
  const NodeLayout l = layout.value();
  // Why this layout, in the script's own words (comment lines).
  const std::string from_silos = std::to_string(silos) + " silos";
  std::string why;
  if (s.nodes == 0 && s.ranks_per_node == 0) {
    why = "[slurm] sets neither nodes nor ranks_per_node: all silos on one node. To spread them,\n"
          "# set slurm.ranks_per_node (silos per node; it must divide the silo count).";
  } else if (s.nodes == 0) {
    why = "From slurm.ranks_per_node = " + std::to_string(s.ranks_per_node) + ": " + from_silos +
          " / " + std::to_string(s.ranks_per_node) + " = " + std::to_string(l.nodes) +
          (l.nodes == 1 ? " node." : " nodes.");
  } else if (s.ranks_per_node == 0) {
    why = "From slurm.nodes = " + std::to_string(s.nodes) + ": " + from_silos + " / " +
          std::to_string(s.nodes) + " = " + std::to_string(l.ranks_per_node) + " ranks per node.";
  } else {
    why = "From slurm.nodes = " + std::to_string(s.nodes) + " and slurm.ranks_per_node = " +
          std::to_string(s.ranks_per_node) + ".";
  }
  const std::string output = s.output.empty() ? in.submit_dir + "/fedsilo-" + cfg.run.name + "-%j.out"
                                              : absolute(s.output, in.submit_dir);

  std::ostringstream o;
  o << "#!/bin/bash\n"
    << "# fedsilo job for " << in.config_path << "\n"
    << "# Written by `fedsilo slurm` (fedsilo " << FEDSILO_VERSION << "). Submit with: sbatch THIS_FILE\n"
    << "# One task per silo (" << silos << "), launched through PMIx. A fresh job starts at round 0; a\n"
    << "# requeued one continues from its last checkpoint (" << resume_how
    << "). Before the time limit (or on\n"
    << "# `scancel --batch --signal=USR1`) the script forwards USR1 to the ranks, which checkpoint at\n"
    << "# the next round boundary and exit " << kExitRequeue
    << "; the script then requeues its own job.\n";
  if (!command.empty()) {
    o << "# Each task runs run.command with the config's path appended (a fedsilo.torch script;\n"
      << "# paths in it are relative to the submit directory): " << command << " CONFIG\n";
  }
  o << "# Rank-to-node layout, pinned: " << l.nodes << (l.nodes == 1 ? " node" : " nodes") << " x "
    << l.ranks_per_node << (l.ranks_per_node == 1 ? " rank" : " ranks")
    << ", consecutive ranks on the same node (block).\n"
    << "# " << why << "\n"
    << "# A requeued job gets the same layout: at compression.level = \"node\" the error-feedback\n"
    << "# residuals live on the node leaders, and fedsilo refuses to resume on another layout.\n"
    << "#SBATCH --job-name=fedsilo-" << cfg.run.name << "\n"
    << "#SBATCH --ntasks=" << silos << "\n"
    << "#SBATCH --nodes=" << l.nodes << "\n"
    << "#SBATCH --ntasks-per-node=" << l.ranks_per_node << "\n"
    << "#SBATCH --distribution=block\n";
  const int cpus = s.cpus_per_task > 0 ? s.cpus_per_task : std::max(1, cfg.local.threads);
  const int64_t task_mib =
      s.mem_per_task.empty()
          ? estimated_task_memory_mib(in.data_bytes) + (command.empty() ? 0 : kPythonTaskMib)
          : config::slurm_memory_mib(s.mem_per_task).value();
  o << "#SBATCH --cpus-per-task=" << cpus << "\n"
    << "#SBATCH --mem-per-cpu=" << (task_mib + cpus - 1) / cpus << "M\n";
  o << "#SBATCH --time=" << s.time << "\n";
  if (!s.partition.empty()) o << "#SBATCH --partition=" << s.partition << "\n";
  if (!s.account.empty()) o << "#SBATCH --account=" << s.account << "\n";
  o << "#SBATCH --chdir=" << in.submit_dir << "\n"
    << "#SBATCH --output=" << output << "\n"
    << "#SBATCH --open-mode=append\n"
    << "#SBATCH --requeue\n"
    << "#SBATCH --signal=B:USR1@" << s.signal_seconds << "\n";
  if (!s.manifest.empty()) {
    o << "#SBATCH --fedsilo-silos=" << absolute(s.manifest, in.submit_dir) << "\n";
  }
  o << "\n";
  if (command.empty()) o << "FEDSILO=" << sh_quote(in.fedsilo_path) << "\n";
  o << "CONFIG=" << sh_quote(in.config_path) << "\n"
    << "EXIT_REQUEUE=" << kExitRequeue << "\n";
  if (!command.empty()) {
    // As `fedsilo train --resume`: the newest checkpoint where there is one, round 1 where not.
    o << "# fedsilo.torch resumes from the newest checkpoint (a fresh run starts at round 1).\n"
      << "export FEDSILO_RESUME=1\n";
    if (!in.python_path.empty()) {
      o << "# The fedsilo package of the install that wrote this script.\n"
        << "export PYTHONPATH=" << sh_quote(in.python_path) << "\"${PYTHONPATH:+:$PYTHONPATH}\"\n";
    }
  }
  o << "\n"
    << "echo \"fedsilo job ${SLURM_JOB_ID}: start $(date -Is), restart ${SLURM_RESTART_COUNT:-0},\" \\\n"
    << "     \"${SLURM_NTASKS} tasks on ${SLURM_JOB_NODELIST}\"\n"
    << "\n"
    << "# USR1 reaches this shell only (B:); pass it on to the ranks through srun.\n"
    << "step=\n"
    << "forward_usr1() {\n"
    << "  echo \"fedsilo job ${SLURM_JOB_ID}: USR1 at $(date -Is): checkpoint at the next round boundary\"\n"
    << "  if [[ -n \"$step\" ]]; then kill -USR1 \"$step\" 2>/dev/null; fi\n"
    << "}\n"
    << "trap forward_usr1 USR1\n"
    << "\n"
    << "srun --mpi=" << s.mpi << " --distribution=block "
    << (command.empty() ? "\"$FEDSILO\" train \"$CONFIG\" --resume" : command + " \"$CONFIG\"")
    << " &\n"
    << "step=$!\n"
    << "# A trapped signal interrupts `wait`; wait again until srun itself has finished.\n"
    << "while :; do\n"
    << "  wait \"$step\"\n"
    << "  rc=$?\n"
    << "  kill -0 \"$step\" 2>/dev/null || break\n"
    << "done\n"
    << "\n"
    << "# Only " << kExitRequeue << " requeues: " << kExitFinal << " means stopped for good, " << kExitCancelled
    << " stopped by SIGINT/SIGTERM (scancel).\n"
    << "if [[ $rc -eq $EXIT_REQUEUE ]]; then\n"
    << "  echo \"fedsilo job ${SLURM_JOB_ID}: checkpointed; requeueing\"\n"
    << "  scontrol requeue \"$SLURM_JOB_ID\"\n"
    << "  exit 0\n"
    << "fi\n"
    << "echo \"fedsilo job ${SLURM_JOB_ID}: fedsilo exited $rc at $(date -Is)\"\n"
    << "exit $rc\n";
  return o.str();
}

int run_slurm(const SlurmArgs& args) {
  auto fail = [](const std::string& msg, int code) {
    std::fprintf(stderr, "fedsilo slurm: error: %s\n", msg.c_str());
    return code;
  };
  auto cfg = config::load_config(args.config);
  if (!cfg.ok()) return fail(cfg.status().message(), exit_code_for(cfg.status()));
  std::error_code ec;
  const std::string cwd = stdfs::current_path(ec).string();
  if (ec) return fail("cannot read the current directory: " + ec.message(), kExitError);

  SbatchInputs in;
  in.config_path = stdfs::absolute(args.config, ec).lexically_normal().string();
  in.submit_dir = cwd;
  in.fedsilo_path = stdfs::read_symlink("/proc/self/exe", ec).string();
  if (ec || in.fedsilo_path.empty()) return fail("cannot find the fedsilo executable (/proc/self/exe)", kExitError);
  if (!cfg->run.command.empty()) in.python_path = installed_python_dir(in.fedsilo_path);

  if (!cfg->slurm.manifest.empty()) {
    auto n = count_manifest_silos(absolute(cfg->slurm.manifest, cwd));
    if (!n.ok()) return fail(n.status().message(), exit_code_for(n.status()));
    in.silos = n.value();
  } else {
    auto n = fl::count_silos(absolute(cfg->data.silos_dir, cwd), args.config);
    if (!n.ok()) return fail(n.status().message(), exit_code_for(n.status()));
    in.silos = n.value();
  }
  // With a manifest the silo directories may not be readable here (0: the base request).
  in.data_bytes = silo_data_bytes(absolute(cfg->data.silos_dir, cwd), absolute(cfg->data.test_file, cwd), in.silos);
  auto script = make_sbatch_script(cfg.value(), in);
  if (!script.ok()) return fail(script.status().message(), exit_code_for(script.status()));

  if (args.output.empty()) {
    std::fwrite(script->data(), 1, script->size(), stdout);
    return std::fflush(stdout) == 0 ? kExitOk : kExitError;
  }
  Status st = fs::write_text_atomically(args.output, script.value());
  if (!st.ok()) return fail(st.message(), kExitError);
  stdfs::permissions(args.output, stdfs::perms::owner_exec | stdfs::perms::group_exec | stdfs::perms::others_exec,
                     stdfs::perm_options::add, ec);
  std::fprintf(stderr, "fedsilo slurm: wrote %s (%d tasks); submit with: sbatch %s\n", args.output.c_str(),
               in.silos, args.output.c_str());
  return kExitOk;
}

}  // namespace fedsilo::cli
