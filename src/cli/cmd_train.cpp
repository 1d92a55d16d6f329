// `fedsilo train CONFIG.toml`: MPI start-up, config agreement, the federation, one clear error.
#include <csignal>
#include <cstdio>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "config/config.h"
#include "fl/federation.h"
#include "mpi/comm.h"

namespace fedsilo::cli {
namespace {

// SIGUSR1 (Slurm's warning before a time limit or preemption, forwarded by the job script):
// finish the round, checkpoint it, exit with kExitRequeue.
volatile std::sig_atomic_t g_stop_requested = 0;
// SIGINT (Ctrl-C; mpirun turns it into SIGTERM for the ranks) and SIGTERM (scancel, a time
// limit without --signal): stop at the next mini-batch, checkpoint the last completed round,
// exit with kExitCancelled. A second one ends the process at once.
volatile std::sig_atomic_t g_cancel_requested = 0;
extern "C" void on_stop_signal(int) { g_stop_requested = 1; }
extern "C" void on_cancel_signal(int sig) {
  if (g_cancel_requested != 0) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
  g_cancel_requested = sig;
}

void install(int sig, void (*handler)(int)) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(sig, &sa, nullptr);
}

// `fedsilo train --check CONFIG`: parse and validate only (no MPI, no data read).
int check_config(const TrainArgs& args) {
  auto cfg = config::load_config(args.config);
  if (!cfg.ok()) {
    std::fprintf(stderr, "fedsilo train --check: error: %s\n", cfg.status().message().c_str());
    return exit_code_for(cfg.status());
  }
  if (!args.quiet) {
    std::printf("# %s is valid; the settings that take effect:\n%s", args.config.c_str(),
                config::to_toml(cfg.value()).c_str());
  }
  return kExitOk;
}

}  // namespace

int run_train(const TrainArgs& args) {
  if (args.check) return check_config(args);
  // Before MPI start-up, so a signal that arrives early is not fatal.
  install(SIGUSR1, on_stop_signal);
  install(SIGINT, on_cancel_signal);
  install(SIGTERM, on_cancel_signal);

  auto runtime = mpi::Runtime::init(nullptr, nullptr);
  if (!runtime.ok()) {
    std::fprintf(stderr, "fedsilo train: error: %s\n", runtime.status().message().c_str());
    return kExitError;
  }
  auto comm = mpi::Comm::world();
  if (!comm.ok()) {
    std::fprintf(stderr, "fedsilo train: error: %s\n", comm.status().message().c_str());
    return kExitError;
  }
  // Every rank reads the config itself; they agree on the outcome so all stop together.
  auto cfg = config::load_config(args.config);
  Status st = comm->agree(cfg.status());
  if (st.ok()) {
    fl::FederationOptions opts;
    opts.resume = args.resume;
    opts.overwrite = args.overwrite;
    opts.progress = !args.quiet;
    opts.config_path = args.config;
    opts.stop_requested = &g_stop_requested;
    opts.cancel_requested = &g_cancel_requested;
    st = fl::run_federation(cfg.value(), opts, comm.value());
  }
  if (!st.ok() && comm->rank() == 0) {
    std::fprintf(stderr, "fedsilo train: %s: %s\n",
                 st.code() == StatusCode::kInterrupted || st.code() == StatusCode::kCancelled ||
                         st.code() == StatusCode::kBudgetSpent
                     ? "stopped"
                     : "error",
                 st.message().c_str());
    std::fflush(stderr);
  }
  return exit_code_for(st);
}

}  // namespace fedsilo::cli
