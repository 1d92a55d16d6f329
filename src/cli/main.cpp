// The fedsilo command: flag parsing (CLI11) for train, partition, slurm, inspect, eval, privacy
// and bench.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/bench/allreduce_bench.h"
#include "kernels/cpu/gemm.h"

namespace {

// Levenshtein distance, for "did you mean".
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// A first argument that is no subcommand gets a message naming it (CLI11 only says that a
// subcommand is required) and the closest subcommand.
int check_subcommand(const CLI::App& app, const std::string& word) {
  std::string names, closest;
  size_t best = 3;  // suggest only within two edits
  for (const CLI::App* sub : app.get_subcommands({})) {
    if (sub->get_name() == word) return fedsilo::cli::kExitOk;
    names += (names.empty() ? "" : ", ") + sub->get_name();
    if (const size_t d = edit_distance(word, sub->get_name()); d < best) {
      best = d;
      closest = sub->get_name();
    }
  }
  std::fprintf(stderr, "fedsilo: error: unknown subcommand '%s'%s (subcommands: %s; see fedsilo --help)\n",
               word.c_str(), closest.empty() ? "" : (", did you mean '" + closest + "'?").c_str(),
               names.c_str());
  return fedsilo::cli::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace fedsilo::cli;
  // Before anything else (MPI, threads): OpenBLAS's GEMMs at the level of fedsilo's kernels.
  fedsilo::kernels::match_blas_core_to_cpu_level(argv);
  CLI::App app{"fedsilo: cross-silo federated learning for HPC clusters"};
  app.set_version_flag("--version", std::string("fedsilo ") + FEDSILO_VERSION);
  app.require_subcommand(1);

  TrainArgs train;
  auto* t = app.add_subcommand("train", "Train a federation (run under mpirun/srun, one rank per silo)");
  t->add_option("config", train.config, "Run configuration (TOML)")->required()->check(CLI::ExistingFile);
  t->add_flag("--resume", train.resume,
              "Continue the run in run.out_dir from its newest checkpoint (starts at round 0 if there is none)");
  t->add_flag("--overwrite", train.overwrite, "Replace an existing run in run.out_dir");
  t->add_flag("-q,--quiet", train.quiet, "No progress lines or summary");
  t->add_flag("--check", train.check,
              "Only parse and validate the config (no MPI, no data read) and print the settings "
              "that take effect; exit 0 when it is valid, 2 when not");

  PartitionArgs part;
  auto* p = app.add_subcommand("partition", "Split a data set into silo directories (NIID-Bench schemes)");
  auto* ds = p->add_option("--dataset", part.dataset, "Built-in data set: fashion-mnist (IDX gzip files)")
                 ->check(CLI::IsMember({"fashion-mnist"}));
  p->add_option("--idx-dir", part.idx_dir, "Directory with the IDX files")->capture_default_str();
  auto* in = p->add_option("--input", part.input, "Your own data: HDF5 with x (float32 [N,...]) and y (int32 [N])")
                 ->check(CLI::ExistingFile);
  p->add_option("--test-input", part.test_input, "Global test split for --input (default: a 1/7 holdout)")
      ->check(CLI::ExistingFile)->needs(in);
  ds->excludes(in);
  p->add_option("--silos", part.silos, "Number of silos")->capture_default_str()->check(CLI::Range(1, 100000));
  p->add_option("--scheme", part.scheme, "iid | dirichlet:BETA | labels:K | quantity:BETA | noise:SIGMA")
      ->capture_default_str();
  p->add_option("--seed", part.seed, "Seed")->capture_default_str();
  p->add_option("--out", part.out, "Output directory")->required();
  p->add_option("--max-train", part.max_train, "Use a seeded random subset of this many training samples")
      ->check(CLI::NonNegativeNumber);
  p->add_option("--max-test", part.max_test, "Use a seeded random subset of this many test samples")
      ->check(CLI::NonNegativeNumber);
  p->add_flag("--overwrite", part.overwrite, "Replace an existing partition in --out");
  p->add_flag("-q,--quiet", part.quiet, "Do not print the table");

  SlurmArgs slurm;
  auto* sl = app.add_subcommand("slurm", "Print (or write) a ready sbatch script for a run configuration");
  sl->add_option("config", slurm.config, "Run configuration (TOML; optional [slurm] table)")
      ->required()->check(CLI::ExistingFile);
  sl->add_option("-o,--output", slurm.output, "Write the script to this file instead of printing it");

  InspectArgs insp;
  auto* i = app.add_subcommand("inspect", "Summarise a model, checkpoint, silo private state or silo data file (HDF5)");
  i->add_option("file", insp.file, "HDF5 file")->required();

  EvalArgs ev;
  auto* e = app.add_subcommand("eval", "Accuracy and loss of a model on a data file");
  e->add_option("model", ev.model, "model.h5 or checkpoint")->required();
  e->add_option("--data", ev.data, "Data file (train.h5/test.h5 layout)")->required();
  e->add_option("--batch-size", ev.batch_size, "Evaluation batch size")->capture_default_str()->check(CLI::PositiveNumber);
  e->add_option("--threads", ev.threads, "Threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);

  PrivacyArgs priv;
  double priv_q = 0.0, priv_sigma = 0.0, priv_target = 0.0, priv_epochs = 0.0;
  int64_t priv_batch = 0, priv_records = 0, priv_steps = 0;
  auto* pr = app.add_subcommand(
      "privacy", "DP-SGD's epsilon over a run, or the noise for a target epsilon (RDP or PLD)");
  auto* pr_q = pr->add_option("--sample-rate", priv_q,
                              "Poisson sampling rate q of a step (expected batch / records)");
  auto* pr_b = pr->add_option("--batch-size", priv_batch, "Expected batch size B (q = B / N)");
  auto* pr_n = pr->add_option("--dataset-size", priv_records, "Records N (q = B / N)");
  auto* pr_s = pr->add_option("--noise-multiplier", priv_sigma,
                              "Noise standard deviation / clipping norm: prints epsilon");
  auto* pr_e = pr->add_option("--target-epsilon", priv_target,
                              "Prints the noise multiplier that meets this epsilon instead");
  auto* pr_t = pr->add_option("--steps", priv_steps, "Steps T (noisy gradient releases)");
  auto* pr_ep = pr->add_option("--epochs", priv_epochs, "Epochs E (T = ceil(E / q))");
  pr_q->excludes(pr_b)->excludes(pr_n);
  pr_s->excludes(pr_e);
  pr_t->excludes(pr_ep);
  pr->add_option("--delta", priv.delta, "Target delta")->capture_default_str();
  pr->add_option("--accountant", priv.accountant,
                 "rdp (Renyi DP as Opacus) or pld (privacy loss distributions as dp_accounting; "
                 "tighter, slower)")
      ->capture_default_str();
  pr->add_option("--orders", priv.orders,
                 "Extra RDP orders (> 1; comma-separated), beside Opacus's 1.1..63")
      ->delimiter(',');
  pr->add_flag("--json", priv.json, "Print one JSON object");

  fedsilo::bench::AllreduceBenchArgs bench_allreduce;
  auto* bench = app.add_subcommand("bench", "Benchmarks (run under mpirun/srun): allreduce");
  bench->require_subcommand(1);
  auto* bench_ar = fedsilo::bench::add_allreduce_command(*bench, bench_allreduce);

  if (argc > 1 && argv[1][0] != '-') {
    if (const int rc = check_subcommand(app, argv[1]); rc != kExitOk) return rc;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& err) {
    // --help and --version are "errors" with exit code 0; every real parse error is a usage
    // error (CLI11's own codes, 105 and up, are not ours).
    return app.exit(err) == 0 ? kExitOk : kExitUsage;
  }
  if (*t) return run_train(train);
  if (*p) {
    if (part.dataset.empty() && part.input.empty()) {
      std::fprintf(stderr, "fedsilo partition: error: give --dataset fashion-mnist or --input FILE.h5\n");
      return kExitUsage;
    }
    return run_partition(part);
  }
  if (*sl) return run_slurm(slurm);
  if (*i) return run_inspect(insp);
  if (*e) return run_eval(ev);
  if (*pr) {
    if (pr_q->count()) priv.sample_rate = priv_q;
    if (pr_b->count()) priv.batch_size = priv_batch;
    if (pr_n->count()) priv.dataset_size = priv_records;
    if (pr_s->count()) priv.noise_multiplier = priv_sigma;
    if (pr_e->count()) priv.target_epsilon = priv_target;
    if (pr_t->count()) priv.steps = priv_steps;
    if (pr_ep->count()) priv.epochs = priv_epochs;
    return run_privacy(priv);
  }
  if (*bench_ar) return fedsilo::bench::run_allreduce_bench(bench_allreduce);
  return kExitUsage;
}
