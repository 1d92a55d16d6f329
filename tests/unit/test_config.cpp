// Config parsing and validation: every bad input names its key.
#include <gtest/gtest.h>

#include "config/config.h"

namespace fedsilo::config {
namespace {

const char* kGood = R"(
[run]
name = "t"
seed = 7
rounds = 3
[data]
silos_dir = "silos"
[model]
arch = "mlp"
hidden = [200, 200]
[local]
epochs = 2
batch_size = 32
lr = 0.05
momentum = 0.9
weight_decay = 1e-5
[strategy]
name = "fedprox"
mu = 0.01
fraction = 0.5
)";

std::string with(const std::string& table_line, const std::string& replacement) {
  std::string s = kGood;
  const auto pos = s.find(table_line);
  EXPECT_NE(pos, std::string::npos) << table_line;
  s.replace(pos, table_line.size(), replacement);
  return s;
}

TEST(Config, ParsesAllSectionsAndFillsDefaults) {
  auto c = parse_config(kGood, "good.toml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->run.seed, 7u);
  EXPECT_EQ(c->run.rounds, 3);
  EXPECT_EQ(c->run.out_dir, "runs/t");
  EXPECT_EQ(c->data.test_file, "silos/test.h5");
  EXPECT_EQ(c->model.hidden, (std::vector<int>{200, 200}));
  EXPECT_DOUBLE_EQ(c->local.lr, 0.05);
  EXPECT_EQ(c->strategy.name, "fedprox");
  EXPECT_DOUBLE_EQ(c->strategy.fraction, 0.5);
}

TEST(Config, CanonicalTextRoundTrips) {
  auto c = parse_config(kGood, "good.toml");
  ASSERT_TRUE(c.ok());
  auto again = parse_config(to_toml(c.value()), "canonical.toml");
  ASSERT_TRUE(again.ok()) << again.status().message() << "\n" << to_toml(c.value());
  EXPECT_EQ(to_toml(again.value()), to_toml(c.value()));
  EXPECT_EQ(resume_hash(again.value()), resume_hash(c.value()));
}

TEST(Config, ResumeHashIgnoresOnlyRounds) {
  auto a = parse_config(kGood, "a.toml");
  auto b = parse_config(with("rounds = 3", "rounds = 9"), "b.toml");
  auto c = parse_config(with("seed = 7", "seed = 8"), "c.toml");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(resume_hash(a.value()), resume_hash(b.value()));
  EXPECT_NE(resume_hash(a.value()), resume_hash(c.value()));
}

struct BadCase {
  std::string from, to, must_mention;
};

class ConfigBad : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigBad, IsRejectedNamingTheKey) {
  const auto& p = GetParam();
  auto c = parse_config(with(p.from, p.to), "bad.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find(p.must_mention), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("bad.toml"), std::string::npos) << c.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ConfigBad,
    ::testing::Values(BadCase{"epochs = 2", "epochz = 2", "local.epochz"},
                      BadCase{"[strategy]", "[strategi]", "strategi"},
                      BadCase{"rounds = 3", "rounds = \"three\"", "run.rounds"},
                      BadCase{"lr = 0.05", "lr = \"fast\"", "local.lr"},
                      BadCase{"lr = 0.05", "lr = 0.0", "local.lr"},
                      BadCase{"lr = 0.05", "lr = -1.0", "local.lr"},
                      BadCase{"rounds = 3", "rounds = 0", "run.rounds"},
                      BadCase{"fraction = 0.5", "fraction = 0.0", "strategy.fraction"},
                      BadCase{"fraction = 0.5", "fraction = 1.5", "strategy.fraction"},
                      BadCase{"arch = \"mlp\"", "arch = \"resnet\"", "model.arch"},
                      BadCase{"hidden = [200, 200]", "hidden = [200, -1]", "model.hidden"},
                      BadCase{"hidden = [200, 200]", "hidden = [200, \"x\"]", "model.hidden"},
                      BadCase{"name = \"fedprox\"", "name = \"fedsgd\"", "strategy.name"},
                      BadCase{"batch_size = 32", "batch_size = 0", "local.batch_size"},
                      BadCase{"momentum = 0.9", "momentum = 1.0", "local.momentum"},
                      BadCase{"silos_dir = \"silos\"", "silos_dir = 3", "data.silos_dir"},
                      BadCase{"seed = 7", "seed = 7\nseed = 8", "bad.toml"}));

TEST(Config, FedavgWithMuIsRejectedNamingBothKeys) {
  auto c = parse_config(with("name = \"fedprox\"", "name = \"fedavg\""), "x.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("strategy.mu"), std::string::npos);
  EXPECT_NE(c.status().message().find("strategy.name"), std::string::npos);
}

TEST(Config, CompressionAndAllreduceCombinationsNameBothSettings) {
  struct Case { std::string extra, key1, key2; };
  for (const Case& c : {Case{"[compression]\nmethod = \"topk\"\nlevel = \"node\"\n[allreduce]\nalgorithm = \"sparse-rd\"\n",
                             "compression.level", "allreduce.algorithm"},
                        Case{"[allreduce]\nalgorithm = \"sparse-allgather\"\n", "allreduce.algorithm", "compression.method"},
                        Case{"[compression]\nmethod = \"topk\"\n[allreduce]\nalgorithm = \"sparse-hier\"\n",
                             "allreduce.algorithm", "compression.level"},
                        Case{"[compression]\nmomentum_correction = 0.9\nerror_feedback = false\n",
                             "compression.momentum_correction", "compression.error_feedback"}}) {
    auto cfg = parse_config(std::string(kGood) + c.extra, "combo.toml");
    ASSERT_FALSE(cfg.ok()) << c.extra;
    EXPECT_NE(cfg.status().message().find(c.key1), std::string::npos) << cfg.status().message();
    EXPECT_NE(cfg.status().message().find(c.key2), std::string::npos) << cfg.status().message();
  }
  for (const std::string bad : {"[compression]\ndensity = 0.0\n", "[compression]\nmethod = \"svd\"\n",
                                "[compression]\nvalue_type = \"fp8\"\n", "[compression]\nerror_feedback = 1\n",
                                "[allreduce]\nalgorithm = \"ring\"\n", "[topology]\nemulated_nodes = -1\n"}) {
    EXPECT_FALSE(parse_config(std::string(kGood) + bad, "x.toml").ok()) << bad;
  }
}

TEST(Config, MissingFileIsNotFound) {
  auto c = load_config("/nonexistent/fedsilo.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("/nonexistent/fedsilo.toml"), std::string::npos);
}

}  // namespace
}  // namespace fedsilo::config
