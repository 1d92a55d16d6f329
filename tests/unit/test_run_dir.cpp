// Starting a run in its directory (fresh, --overwrite, --resume) and trimming metrics.jsonl to
// the checkpoint a run resumes from (fl/run_dir.h).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "checkpoint/model_file.h"
#include "fl/run_dir.h"
#include "model/model.h"
#include "test_util.h"

namespace fl = fedsilo::fl;
namespace ck = fedsilo::checkpoint;
namespace stdfs = std::filesystem;
using fedsilo::StatusCode;

namespace {

fedsilo::config::Config config_in(const std::string& dir, int rounds) {
  fedsilo::config::Config c;
  c.run.out_dir = dir + "/run";
  c.run.rounds = rounds;
  c.model.arch = fedsilo::config::Arch::kLogreg;
  c.data.silos_dir = dir + "/silos";
  c.data.test_file = dir + "/silos/test.h5";
  return c;
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A complete checkpoint of `round` as the round driver writes it (global file, then marker).
void checkpoint(const fedsilo::config::Config& c, int64_t round, const std::string& reducer) {
  auto net = fedsilo::model::Model::build({"logreg", {}, {1, 28, 28}, 10});
  ASSERT_TRUE(net.ok());
  std::vector<float> params(static_cast<size_t>(net->num_params()), 0.5f);
  const std::string hash = fedsilo::config::resume_hash(c);
  ASSERT_TRUE(ck::write_model_file(ck::global_path(c.run.out_dir, round), net.value(), params,
                                   {"checkpoint", round, hash, reducer})
                  .ok());
  ASSERT_TRUE(ck::write_marker(c.run.out_dir, {round, hash, reducer,
                                               {"checkpoints/" + stdfs::path(ck::global_path(
                                                                     c.run.out_dir, round))
                                                                     .filename()
                                                                     .string()},
                                               "0"})
                  .ok());
}

}  // namespace

TEST(RunDir, FreshStartCreatesTheDirectoryAndWritesTheConfig) {
  const auto c = config_in(fedsilo::test::fresh_dir("rundir"), 3);
  auto s = fl::start_run_dir(c, false, false);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_TRUE(s->resume_from.empty());
  EXPECT_FALSE(s->finished);
  EXPECT_TRUE(stdfs::is_directory(ck::checkpoints_dir(c.run.out_dir)));
  auto back = fedsilo::config::load_config(c.run.out_dir + "/config.toml");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->run.rounds, 3);
}

TEST(RunDir, RefusesAnExistingRunWithoutResumeOrOverwrite) {
  const auto c = config_in(fedsilo::test::fresh_dir("rundir"), 3);
  ASSERT_TRUE(fl::start_run_dir(c, false, false).ok());
  write(c.run.out_dir + "/metrics.jsonl", "{\"round\":1}\n");
  auto s = fl::start_run_dir(c, false, false);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(s.status().message().find("--resume"), std::string::npos) << s.status().message();
  EXPECT_NE(s.status().message().find("--overwrite"), std::string::npos) << s.status().message();
  EXPECT_EQ(read(c.run.out_dir + "/metrics.jsonl"), "{\"round\":1}\n");  // untouched
}

TEST(RunDir, OverwriteRemovesTheRunAndNothingElse) {
  const auto c = config_in(fedsilo::test::fresh_dir("rundir"), 3);
  ASSERT_TRUE(fl::start_run_dir(c, false, false).ok());
  checkpoint(c, 2, "dense-flat");
  write(c.run.out_dir + "/metrics.jsonl", "{\"round\":1}\n");
  write(c.run.out_dir + "/notes.txt", "mine");
  auto s = fl::start_run_dir(c, true, false);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_FALSE(stdfs::exists(c.run.out_dir + "/metrics.jsonl"));
  EXPECT_FALSE(stdfs::exists(ck::global_path(c.run.out_dir, 2)));
  EXPECT_EQ(read(c.run.out_dir + "/notes.txt"), "mine");
}

TEST(RunDir, ResumeFindsTheNewestCheckpointAndItsAlgorithm) {
  const auto c = config_in(fedsilo::test::fresh_dir("rundir"), 5);
  // --resume of nothing starts at round 0.
  auto s0 = fl::start_run_dir(c, false, true);
  ASSERT_TRUE(s0.ok()) << s0.status().message();
  EXPECT_TRUE(s0->resume_from.empty());
  checkpoint(c, 1, "dense-flat");
  checkpoint(c, 2, "sparse-rd");
  auto s = fl::start_run_dir(c, false, true);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->resume_from, ck::global_path(c.run.out_dir, 2));
  EXPECT_EQ(s->resumed_algorithm, "sparse-rd");
  EXPECT_FALSE(s->finished);
}

TEST(RunDir, ResumeRefusesAChangedConfigNamingTheKey) {
  auto c = config_in(fedsilo::test::fresh_dir("rundir"), 5);
  ASSERT_TRUE(fl::start_run_dir(c, false, false).ok());
  checkpoint(c, 2, "dense-flat");
  c.local.lr = 0.5;
  auto s = fl::start_run_dir(c, false, true);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("local.lr"), std::string::npos) << s.status().message();
  EXPECT_NE(s.status().message().find("round 2"), std::string::npos) << s.status().message();
}

TEST(RunDir, ResumeOfAFinishedRunAndRoundsBelowTheCheckpoint) {
  auto c = config_in(fedsilo::test::fresh_dir("rundir"), 2);
  ASSERT_TRUE(fl::start_run_dir(c, false, false).ok());
  checkpoint(c, 2, "dense-flat");
  // Without model.h5 the last round's checkpoint is resumed (the final write is redone).
  auto s = fl::start_run_dir(c, false, true);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_FALSE(s->finished);
  write(c.run.out_dir + "/model.h5", "");
  s = fl::start_run_dir(c, false, true);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_TRUE(s->finished);
  c.run.rounds = 1;
  s = fl::start_run_dir(c, false, true);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("run.rounds = 1 is below the checkpoint's round 2"),
            std::string::npos)
      << s.status().message();
}

TEST(RunDir, TruncateMetricsKeepsRoundsUpToTheCheckpointAndStopsAtATornLine) {
  const std::string dir = fedsilo::test::fresh_dir("rundir");
  const std::string path = dir + "/metrics.jsonl";
  std::vector<nlohmann::json> kept;
  ASSERT_TRUE(fl::truncate_metrics(dir + "/none.jsonl", 3, kept).ok());  // no file: nothing
  EXPECT_TRUE(kept.empty());
  write(path, "{\"round\":1}\n{\"round\":2}\n\n{\"round\":3}\n{\"round\":4}\n");
  ASSERT_TRUE(fl::truncate_metrics(path, 3, kept).ok());
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept.back()["round"], 3);
  EXPECT_EQ(read(path), "{\"round\":1}\n{\"round\":2}\n{\"round\":3}\n");
  write(path, "{\"round\":1}\n{\"round\":2}\n{\"rou");
  ASSERT_TRUE(fl::truncate_metrics(path, 5, kept).ok());
  EXPECT_EQ(kept.size(), 2u);
  EXPECT_EQ(read(path), "{\"round\":1}\n{\"round\":2}\n");
}
