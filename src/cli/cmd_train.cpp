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
extern "C" void on_stop_signal(int) { g_stop_requested = 1; }

}  // namespace

int run_train(const TrainArgs& args) {
  // Before MPI start-up, so a signal that arrives early is not fatal.
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, nullptr);

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
    st = fl::run_federation(cfg.value(), opts, comm.value());
  }
  if (!st.ok() && comm->rank() == 0) {
    std::fprintf(stderr, "fedsilo train: %s: %s\n",
                 st.code() == StatusCode::kInterrupted ? "stopped" : "error", st.message().c_str());
    std::fflush(stderr);
  }
  return exit_code_for(st);
}

}  // namespace fedsilo::cli
