// `fedsilo slurm`: the [slurm] config table, Slurm time limits, the generated sbatch script and
// SPANK manifest counting.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "cli/exit_codes.h"
#include "cli/slurm_script.h"
#include "config/config.h"
#include "test_util.h"

namespace fedsilo::cli {
namespace {

config::Config parse(const std::string& slurm_table) {
  const std::string text = "[run]\nname = \"job\"\n[data]\nsilos_dir = \"silos\"\n[local]\nthreads = 2\n" + slurm_table;
  auto c = config::parse_config(text, "t.toml");
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? c.value() : config::Config{};
}

std::string bad_message(const std::string& slurm_table) {
  auto c = config::parse_config("[data]\nsilos_dir = \"s\"\n" + slurm_table, "t.toml");
  EXPECT_FALSE(c.ok()) << slurm_table;
  return c.ok() ? "" : c.status().message();
}

SbatchInputs inputs(int silos) {
  SbatchInputs in;
  in.config_path = "/abs/cfg.toml";
  in.fedsilo_path = "/opt/fedsilo/bin/fedsilo";
  in.submit_dir = "/home/u/exp";
  in.silos = silos;
  return in;
}

// The launch line of the script, with the block distribution that pins the layout.
std::string srun_line(const std::string& mpi) {
  return "srun --mpi=" + mpi + " --distribution=block \"$FEDSILO\" train \"$CONFIG\" --resume &";
}

bool has_line(const std::string& script, const std::string& line) {
  return script.find("\n" + line + "\n") != std::string::npos;
}

TEST(SlurmTime, AcceptsSlurmsFormsAndRejectsTheRest) {
  EXPECT_EQ(config::slurm_time_seconds("90").value(), 90 * 60);
  EXPECT_EQ(config::slurm_time_seconds("10:30").value(), 10 * 60 + 30);
  EXPECT_EQ(config::slurm_time_seconds("01:00:00").value(), 3600);
  EXPECT_EQ(config::slurm_time_seconds("2-00").value(), 2 * 86400);
  EXPECT_EQ(config::slurm_time_seconds("1-02:03").value(), 86400 + 2 * 3600 + 3 * 60);
  EXPECT_EQ(config::slurm_time_seconds("1-02:03:04").value(), 86400 + 2 * 3600 + 3 * 60 + 4);
  for (const char* bad : {"", "1h", "-5", "1:2:3:4", "0", "00:00:00", "1-", "a-01:00", "01:00:00 "}) {
    EXPECT_FALSE(config::slurm_time_seconds(bad).ok()) << "'" << bad << "'";
  }
}

TEST(SlurmConfig, BadValuesNameTheirKey) {
  EXPECT_NE(bad_message("[slurm]\ntime = \"1 hour\"\n").find("slurm.time"), std::string::npos);
  EXPECT_NE(bad_message("[slurm]\nnodes = -1\n").find("slurm.nodes"), std::string::npos);
  EXPECT_NE(bad_message("[slurm]\nranks_per_node = -2\n").find("slurm.ranks_per_node"), std::string::npos);
  EXPECT_NE(bad_message("[slurm]\nsignal_seconds = 0\n").find("slurm.signal_seconds"), std::string::npos);
  // The warning must come before the limit.
  EXPECT_NE(bad_message("[slurm]\ntime = \"5:00\"\nsignal_seconds = 300\n").find("below the time limit"),
            std::string::npos);
  EXPECT_NE(bad_message("[slurm]\npartition = \"a b\"\n").find("slurm.partition"), std::string::npos);
  EXPECT_NE(bad_message("[slurm]\naccount = \"x$(rm)\"\n").find("slurm.account"), std::string::npos);
  EXPECT_NE(bad_message("[slurm]\nqueue = \"x\"\n").find("unknown config key"), std::string::npos);
}

TEST(SlurmConfig, JobSettingsDoNotChangeTheResumeHash) {
  // A run may be resubmitted with a longer time limit or another partition and still resume.
  const auto a = parse("");
  const auto b = parse("[slurm]\ntime = \"2-00:00:00\"\npartition = \"long\"\nnodes = 2\n");
  EXPECT_EQ(config::resume_hash(a), config::resume_hash(b));
  // The canonical text keeps the table and parses back.
  auto again = config::parse_config(config::to_toml(b), "canonical");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->slurm.time, "2-00:00:00");
  EXPECT_EQ(again->slurm.partition, "long");
  EXPECT_EQ(again->slurm.nodes, 2);
}

TEST(SbatchScript, OneTaskPerSiloResumeRequeueAndSignal) {
  auto s = make_sbatch_script(parse("[slurm]\ntime = \"02:00:00\"\nsignal_seconds = 600\npartition = \"gpu\"\naccount = \"proj7\"\n"),
                              inputs(10));
  ASSERT_TRUE(s.ok()) << s.status().message();
  const std::string& t = s.value();
  EXPECT_EQ(t.rfind("#!/bin/bash\n", 0), 0u);
  for (const char* line : {"#SBATCH --ntasks=10", "#SBATCH --time=02:00:00", "#SBATCH --partition=gpu",
                           "#SBATCH --account=proj7", "#SBATCH --requeue", "#SBATCH --signal=B:USR1@600",
                           "#SBATCH --open-mode=append", "#SBATCH --cpus-per-task=2",
                           "#SBATCH --chdir=/home/u/exp", "#SBATCH --output=/home/u/exp/fedsilo-job-%j.out",
                           "#SBATCH --job-name=fedsilo-job", "trap forward_usr1 USR1",
                           "FEDSILO='/opt/fedsilo/bin/fedsilo'", "CONFIG='/abs/cfg.toml'"}) {
    EXPECT_TRUE(has_line(t, line)) << "missing: " << line << "\n" << t;
  }
  EXPECT_TRUE(has_line(t, srun_line("pmix"))) << t;
  EXPECT_TRUE(has_line(t, "EXIT_REQUEUE=" + std::to_string(kExitRequeue)));
  EXPECT_TRUE(has_line(t, "  scontrol requeue \"$SLURM_JOB_ID\""));
  // No plugin option unless configured.
  EXPECT_EQ(t.find("--fedsilo-silos"), std::string::npos);
}

TEST(SbatchScript, NodesFromRanksPerNodeAndManifestOption) {
  auto s = make_sbatch_script(parse("[slurm]\nranks_per_node = 4\nmanifest = \"silos.txt\"\noutput = \"logs/%j.log\"\n"),
                              inputs(12));
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_TRUE(has_line(s.value(), "#SBATCH --nodes=3"));  // 12 / 4
  EXPECT_TRUE(has_line(s.value(), "#SBATCH --ntasks-per-node=4"));
  EXPECT_TRUE(has_line(s.value(), "#SBATCH --fedsilo-silos=/home/u/exp/silos.txt"));
  EXPECT_TRUE(has_line(s.value(), "#SBATCH --output=/home/u/exp/logs/%j.log"));
}

TEST(SbatchScript, PlacementThatCannotHoldTheSilosIsRejected) {
  auto s = make_sbatch_script(parse("[slurm]\nnodes = 2\nranks_per_node = 4\n"), inputs(10));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("slurm.nodes = 2 x slurm.ranks_per_node = 4"), std::string::npos);
  auto t = make_sbatch_script(parse("[slurm]\nnodes = 11\n"), inputs(10));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("slurm.nodes = 11"), std::string::npos);
}

// A requeued job must land on the same rank-to-node layout (at compression.level = "node" the
// residuals live on the node leaders), so every script fixes the node count, the ranks per node
// and a block distribution, also when [slurm] says nothing.
TEST(SbatchScript, PinsTheRankToNodeLayoutAlsoByDefault) {
  struct Case {
    const char* slurm_table;
    int silos, nodes, ranks_per_node;
  };
  for (const Case& c : {Case{"", 10, 1, 10},  // defaults: all silos on one node
                        Case{"", 1, 1, 1},
                        Case{"[slurm]\nranks_per_node = 4\n", 12, 3, 4},
                        Case{"[slurm]\nranks_per_node = 4\n", 4, 1, 4},
                        Case{"[slurm]\nranks_per_node = 1\n", 3, 3, 1},
                        Case{"[slurm]\nnodes = 2\n", 10, 2, 5},
                        Case{"[slurm]\nnodes = 10\n", 10, 10, 1},
                        Case{"[slurm]\nnodes = 4\nranks_per_node = 2\n", 8, 4, 2}}) {
    const std::string what = std::string(c.slurm_table) + std::to_string(c.silos) + " silos";
    const config::Config cfg = parse(c.slurm_table);
    auto l = pinned_layout(cfg.slurm, c.silos);
    ASSERT_TRUE(l.ok()) << what << ": " << l.status().message();
    EXPECT_EQ(l->nodes, c.nodes) << what;
    EXPECT_EQ(l->ranks_per_node, c.ranks_per_node) << what;

    auto s = make_sbatch_script(cfg, inputs(c.silos));
    ASSERT_TRUE(s.ok()) << what << ": " << s.status().message();
    const std::string& t = s.value();
    for (const std::string& line : {"#SBATCH --ntasks=" + std::to_string(c.silos),
                                    "#SBATCH --nodes=" + std::to_string(c.nodes),
                                    "#SBATCH --ntasks-per-node=" + std::to_string(c.ranks_per_node),
                                    std::string("#SBATCH --distribution=block"),
                                    srun_line("pmix")}) {
      EXPECT_TRUE(has_line(t, line)) << what << ": missing " << line << "\n" << t;
    }
    // Each flag once: nothing later in the script overrides it.
    for (const char* flag : {"--nodes=", "--ntasks-per-node=", "#SBATCH --distribution="}) {
      EXPECT_EQ(t.find(flag), t.rfind(flag)) << what << ": " << flag;
    }
  }
  // The script says why: the default is explained where the user reads it.
  auto d = make_sbatch_script(parse(""), inputs(6));
  ASSERT_TRUE(d.ok());
  EXPECT_NE(d->find("# Rank-to-node layout, pinned: 1 node x 6 ranks"), std::string::npos)
      << d.value();
  EXPECT_NE(d->find("all silos on one node"), std::string::npos) << d.value();
  auto r = make_sbatch_script(parse("[slurm]\nranks_per_node = 2\n"), inputs(6));
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->find("# Rank-to-node layout, pinned: 3 nodes x 2 ranks"), std::string::npos)
      << r.value();
  EXPECT_NE(r->find("From slurm.ranks_per_node = 2: 6 silos / 2 = 3 nodes."), std::string::npos);
}

// An uneven split is not reproducible (Slurm may place 10 tasks on 3 nodes as 4,4,2 or 4,3,3):
// refused, naming the settings and listing the even layouts.
TEST(SbatchScript, UnevenLayoutIsRefusedNamingTheSettingsAndTheEvenOnes) {
  auto rpn = make_sbatch_script(parse("[slurm]\nranks_per_node = 4\n"), inputs(10));
  ASSERT_FALSE(rpn.ok());
  EXPECT_EQ(rpn.status().code(), StatusCode::kInvalidArgument);
  const std::string m = rpn.status().message();
  for (const char* part : {"slurm.ranks_per_node = 4 does not divide the 10 silos",
                           "the last node would hold 2",
                           "slurm.nodes x slurm.ranks_per_node): 1 x 10, 2 x 5, 5 x 2, 10 x 1"}) {
    EXPECT_NE(m.find(part), std::string::npos) << "missing '" << part << "' in: " << m;
  }
  auto nodes = pinned_layout(parse("[slurm]\nnodes = 3\n").slurm, 10);
  ASSERT_FALSE(nodes.ok());
  const std::string nodes_message = nodes.status().message();
  EXPECT_NE(nodes_message.find("slurm.nodes = 3 does not divide the 10 silos (3 or 4 on a node)"),
            std::string::npos)
      << nodes_message;
  auto both = pinned_layout(parse("[slurm]\nnodes = 3\nranks_per_node = 4\n").slurm, 10);
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.status().message().find("places 12 tasks, not the 10 silos"), std::string::npos)
      << both.status().message();
  auto wide = pinned_layout(parse("[slurm]\nranks_per_node = 8\n").slurm, 4);
  ASSERT_FALSE(wide.ok());
  EXPECT_NE(wide.status().message().find("more ranks per node than silos"), std::string::npos);
  EXPECT_NE(wide.status().message().find("1 x 4, 2 x 2, 4 x 1"), std::string::npos)
      << wide.status().message();
  // A prime count has only the two trivial layouts.
  auto prime = pinned_layout(parse("[slurm]\nranks_per_node = 2\n").slurm, 7);
  ASSERT_FALSE(prime.ok());
  EXPECT_NE(prime.status().message().find("): 1 x 7, 7 x 1"), std::string::npos)
      << prime.status().message();
}

TEST(SbatchScript, CoresMemoryAndMpiPluginAreAlwaysRequested) {
  // threads = 0 (automatic) still asks for cores: one per task unless slurm.cpus_per_task says.
  config::Config automatic = parse("");
  automatic.local.threads = 0;
  SbatchInputs in = inputs(4);
  in.data_bytes = 300LL << 20;  // 512 + 600 MiB -> 1280 MiB (a multiple of 256)
  auto a = make_sbatch_script(automatic, in);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_TRUE(has_line(a.value(), "#SBATCH --cpus-per-task=1")) << a.value();
  EXPECT_TRUE(has_line(a.value(), "#SBATCH --mem-per-cpu=1280M")) << a.value();
  EXPECT_TRUE(has_line(a.value(), srun_line("pmix")));

  auto b = make_sbatch_script(parse("[slurm]\ncpus_per_task = 4\nmem_per_task = \"6G\"\nmpi = \"pmix_v4\"\n"), in);
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_TRUE(has_line(b.value(), "#SBATCH --cpus-per-task=4")) << b.value();
  EXPECT_TRUE(has_line(b.value(), "#SBATCH --mem-per-cpu=1536M")) << b.value();  // 6 GiB / 4 cores
  EXPECT_TRUE(has_line(b.value(), srun_line("pmix_v4")));

  EXPECT_EQ(estimated_task_memory_mib(0), 512);
  EXPECT_NE(bad_message("[slurm]\nmpi = \"pmix; rm\"\n").find("slurm.mpi"), std::string::npos);
  EXPECT_NE(bad_message("[slurm]\nmem_per_task = \"lots\"\n").find("slurm.mem_per_task"), std::string::npos);
  EXPECT_NE(bad_message("[slurm]\ncpus_per_task = -1\n").find("slurm.cpus_per_task"), std::string::npos);
}

// Only exit code 5 requeues: 6 (stopped for good) and 7 (SIGINT/SIGTERM) end the job.
TEST(SbatchScript, RequeuesOnlyOnTheRequeueCode) {
  auto s = make_sbatch_script(parse(""), inputs(2));
  ASSERT_TRUE(s.ok());
  const std::string& t = s.value();
  EXPECT_EQ(kExitRequeue, 5);
  EXPECT_EQ(kExitFinal, 6);
  EXPECT_EQ(kExitCancelled, 7);
  // The one requeue, guarded by the one code.
  EXPECT_EQ(t.find("scontrol requeue"), t.rfind("scontrol requeue"));
  const auto guard = t.find("if [[ $rc -eq $EXIT_REQUEUE ]]; then\n");
  ASSERT_NE(guard, std::string::npos) << t;
  EXPECT_LT(guard, t.find("scontrol requeue"));
  EXPECT_EQ(t.find("EXIT_FINAL"), std::string::npos);
}

TEST(SbatchScript, QuotesPathsForTheShell) {
  SbatchInputs in = inputs(2);
  in.config_path = "/data/it's here/cfg.toml";
  auto s = make_sbatch_script(parse(""), in);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(has_line(s.value(), "CONFIG='/data/it'\\''s here/cfg.toml'"));
}

// A config whose [run] table has `run_lines` too (the tables of parse() otherwise).
config::Config parse_run(const std::string& run_lines, const std::string& tables = "") {
  const std::string text = "[run]\nname = \"job\"\n" + run_lines +
                           "[data]\nsilos_dir = \"silos\"\n[local]\nthreads = 2\n" + tables;
  auto c = config::parse_config(text, "t.toml");
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? c.value() : config::Config{};
}

// run.command (a PyTorch binding script): the tasks run it with the config appended, resume
// through FEDSILO_RESUME=1, and keep the layout, signal and requeue handling of `fedsilo train`.
TEST(SbatchScript, RunCommandRunsTheScriptWithTheConfigAndResumes) {
  const config::Config cfg = parse_run(R"(command = "/usr/bin/python3 train.py --tag 'a b'")" "\n",
                                       "[model]\narch = \"pytorch\"\n");
  auto s = make_sbatch_script(cfg, inputs(4));
  ASSERT_TRUE(s.ok()) << s.status().message();
  const std::string& t = s.value();
  EXPECT_TRUE(has_line(
      t, R"(srun --mpi=pmix --distribution=block /usr/bin/python3 train.py --tag 'a b' "$CONFIG" &)"))
      << t;
  for (const char* line : {"export FEDSILO_RESUME=1", "CONFIG='/abs/cfg.toml'", "#SBATCH --ntasks=4",
                           "#SBATCH --distribution=block", "#SBATCH --requeue", "trap forward_usr1 USR1",
                           "if [[ $rc -eq $EXIT_REQUEUE ]]; then", R"(  scontrol requeue "$SLURM_JOB_ID")"}) {
    EXPECT_TRUE(has_line(t, line)) << "missing: " << line << "\n" << t;
  }
  EXPECT_EQ(t.find(R"(train "$CONFIG" --resume)"), std::string::npos) << t;
  EXPECT_EQ(t.find("FEDSILO="), std::string::npos) << t;    // the fedsilo command is not run
  EXPECT_EQ(t.find("PYTHONPATH"), std::string::npos) << t;  // not from an install: the module's
  // The interpreter's memory on top of the data's: (512 + 1024) MiB over 2 cores.
  const std::string mem = "#SBATCH --mem-per-cpu=" + std::to_string((512 + kPythonTaskMib) / 2) + "M";
  EXPECT_TRUE(has_line(t, mem)) << t;

  // From an install: its package first on PYTHONPATH, quoted.
  SbatchInputs in = inputs(4);
  in.python_path = "/opt/fed silo/lib/fedsilo/python";
  auto p = make_sbatch_script(cfg, in);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(has_line(
      p.value(), R"(export PYTHONPATH='/opt/fed silo/lib/fedsilo/python'"${PYTHONPATH:+:$PYTHONPATH}")"))
      << p.value();
  // A fedsilo train job never gets either.
  auto plain = make_sbatch_script(parse(""), in);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->find("PYTHONPATH"), std::string::npos);
  EXPECT_EQ(plain->find("FEDSILO_RESUME"), std::string::npos);
  EXPECT_TRUE(has_line(plain.value(), srun_line("pmix")));
}

TEST(SbatchScript, PytorchArchWithoutRunCommandIsRefused) {
  auto s = make_sbatch_script(parse("[model]\narch = \"pytorch\"\n"), inputs(2));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("run.command"), std::string::npos) << s.status().message();
}

// run.command becomes `srun ... <command> "$CONFIG" &`: one simple command on one line.
TEST(RunCommand, OneCommandOnOneLineOrTheKeyIsNamed) {
  // TOML literal strings ('''...''') hold the values as written.
  const auto toml = [](const std::string& value) {
    return "[data]\nsilos_dir = \"s\"\n[run]\ncommand = '''" + value + "'''\n";
  };
  for (const char* good : {"/usr/bin/python3 train.py", "python3 'my dir/train.py' --tag 'a;b|c' -v",
                           R"($HOME/venv/bin/python train.py --name "x y")", R"(python3 train.py --x a\;b)"}) {
    auto c = config::parse_config(toml(good), "t.toml");
    EXPECT_TRUE(c.ok()) << good << ": " << c.status().message();
  }
  struct Bad {
    const char* value;
    const char* why;
  };
  for (const Bad& b : {Bad{"   ", "blank"}, Bad{"\t", "blank"}, Bad{"python3 a.py\npython3 b.py", "one line"},
                       Bad{"python3 a.py \\\npython3 b.py", "one line"},
                       Bad{"python3 train.py; echo done", "';' outside quotes"},
                       Bad{"python3 train.py && true", "'&' outside quotes"},
                       Bad{"python3 train.py | tee log", "'|' outside quotes"},
                       Bad{"python3 train.py > log", "'>' outside quotes"},
                       Bad{"python3 `which train.py`", "'`' outside quotes"},
                       Bad{R"(python3 "`which train.py`")", "'`' would run a command"},
                       Bad{R"(python3 "train.py)", "unterminated \" quote"},
                       Bad{"python3 'train.py", "unterminated ' quote"}}) {
    auto c = config::parse_config(toml(b.value), "t.toml");
    ASSERT_FALSE(c.ok()) << b.value;
    const std::string m = c.status().message();
    EXPECT_NE(m.find("run.command"), std::string::npos) << b.value << ": " << m;
    EXPECT_NE(m.find(b.why), std::string::npos) << b.value << ": " << m;
  }
}

// A job resubmitted with another interpreter (a new module, a venv) still resumes its run.
TEST(RunCommand, DoesNotChangeTheResumeHash) {
  EXPECT_EQ(config::resume_hash(parse_run("command = \"/usr/bin/python3 train.py\"\n")),
            config::resume_hash(parse_run("command = \"/opt/venv/bin/python train.py\"\n")));
  EXPECT_EQ(config::resume_hash(parse_run("command = \"python3 train.py\"\n")),
            config::resume_hash(parse("")));
  // The canonical text (the run's config.toml) keeps it.
  const std::string canonical = config::to_toml(parse_run("command = \"python3 'a b.py'\"\n"));
  auto again = config::parse_config(canonical, "canonical");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->run.command, "python3 'a b.py'");
}

TEST(Manifest, CountsSilosSkippingCommentsAndNamesABadLine) {
  const std::string dir = test::fresh_dir("manifest");
  std::ofstream(dir + "/good.txt") << "# consortium silos\n\nhosp-a /d/a /s/a alice,@radiology\n"
                                      "hosp-b /d/b /s/b bob  # second\n";
  auto n = count_manifest_silos(dir + "/good.txt");
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(n.value(), 2);
  std::ofstream(dir + "/bad.txt") << "hosp-a /d/a /s/a alice\nhosp-b /d/b bob\n";
  auto b = count_manifest_silos(dir + "/bad.txt");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("bad.txt:2"), std::string::npos) << b.status().message();
  std::ofstream(dir + "/empty.txt") << "# nothing\n";
  EXPECT_FALSE(count_manifest_silos(dir + "/empty.txt").ok());
  EXPECT_FALSE(count_manifest_silos(dir + "/missing.txt").ok());
}

}  // namespace
}  // namespace fedsilo::cli
