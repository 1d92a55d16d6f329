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
  EXPECT_EQ(std::string(fedsilo::config::name(c->strategy.name)), "fedprox");
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

TEST(Config, ServerOptimizersCheckTheirKeysAndRefuseOthersKeys) {
  const auto strategy = [](const std::string& lines) {
    return parse_config(with("name = \"fedprox\"\nmu = 0.01", lines), "x.toml");
  };
  // Valid: each with its own keys.
  for (const char* ok : {"name = \"fedadam\"\nserver_lr = 0.01\nbeta1 = 0.9\nbeta2 = 0.99\ntau = 0.001",
                         "name = \"fedyogi\"\nserver_lr = 0.01", "name = \"fedadagrad\"\nserver_lr = 0.1\ntau = 0.01",
                         "name = \"fedavgm\"\nserver_lr = 1.0\nserver_momentum = 0.9",
                         "name = \"scaffold\"", "name = \"fednova\""}) {
    auto c = strategy(ok);
    EXPECT_TRUE(c.ok()) << ok << ": " << c.status().message();
  }
  struct Case { std::string lines, mention; };
  for (const Case& c : {Case{"name = \"fedadam\"", "strategy.server_lr: must be > 0"},
                        Case{"name = \"fedadam\"\nserver_lr = 0.0", "strategy.server_lr: must be > 0"},
                        Case{"name = \"fedadam\"\nserver_lr = -1.0", "strategy.server_lr: must be > 0"},
                        Case{"name = \"fedadam\"\nserver_lr = 0.1\nbeta1 = 1.0", "strategy.beta1: must be in [0, 1)"},
                        Case{"name = \"fedyogi\"\nserver_lr = 0.1\nbeta2 = -0.1", "strategy.beta2: must be in [0, 1)"},
                        Case{"name = \"fedavgm\"\nserver_lr = 0.1\nserver_momentum = 1.5",
                             "strategy.server_momentum: must be in [0, 1)"},
                        Case{"name = \"fedadagrad\"\nserver_lr = 0.1\ntau = 0.0", "strategy.tau: must be > 0"},
                        Case{"name = \"fedavg\"\nserver_lr = 0.1",
                             "strategy.server_lr: has no effect with strategy.name = \"fedavg\""},
                        Case{"name = \"fedadagrad\"\nserver_lr = 0.1\nbeta2 = 0.9",
                             "strategy.beta2: has no effect with strategy.name = \"fedadagrad\""},
                        Case{"name = \"fedavgm\"\nserver_lr = 0.1\ntau = 0.01",
                             "strategy.tau: has no effect with strategy.name = \"fedavgm\""},
                        Case{"name = \"fedadam\"\nserver_lr = 0.1\nserver_momentum = 0.5",
                             "strategy.server_momentum: has no effect with strategy.name = \"fedadam\""},
                        Case{"name = \"fedadam\"\nserver_lr = 0.1\nmu = 0.1",
                             "strategy.mu: has no effect with strategy.name = \"fedadam\""},
                        Case{"name = \"scaffold\"\nserver_lr = 0.1",
                             "strategy.server_lr: has no effect with strategy.name = \"scaffold\""},
                        Case{"name = \"fednova\"\nbeta1 = 0.5",
                             "strategy.beta1: has no effect with strategy.name = \"fednova\""},
                        Case{"name = \"scaffold\"\nmu = 0.1",
                             "strategy.mu: has no effect with strategy.name = \"scaffold\""}}) {
    auto cfg = strategy(c.lines);
    ASSERT_FALSE(cfg.ok()) << c.lines;
    EXPECT_EQ(cfg.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(cfg.status().message().find(c.mention), std::string::npos) << cfg.status().message();
  }
}

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

// A key the user wrote that the other settings make useless is an error naming both keys; the
// same key left at its default is no error.
TEST(Config, WrittenKeyWithoutEffectIsRejectedNamingBothKeys) {
  struct Case { std::string extra, key, because; };
  const std::string fedavg = with("name = \"fedprox\"\nmu = 0.01", "name = \"fedavg\"");
  for (const Case& c :
       {Case{"[compression]\ndensity = 0.1\n", "compression.density", "compression.method"},
        Case{"[compression]\nvalue_type = \"fp16\"\n", "compression.value_type", "compression.method"},
        Case{"[compression]\nerror_feedback = true\n", "compression.error_feedback", "compression.method"},
        Case{"[compression]\nlevel = \"silo\"\n", "compression.level", "compression.method"},
        Case{"[compression]\nmethod = \"topk\"\nerror_feedback = false\nmomentum_correction = 0.0\n",
             "compression.momentum_correction", "compression.error_feedback"},
        Case{"[allreduce]\nlink_gbps = 10\n", "allreduce.link_gbps", "allreduce.algorithm"},
        Case{"[allreduce]\nalgorithm = \"auto\"\nlink_latency_us = 5\n", "allreduce.link_latency_us",
             "allreduce.link_gbps"},
        Case{"[device]\nreduce = \"auto\"\n", "device.reduce", "device.kind"}}) {
    auto cfg = parse_config(fedavg + c.extra, "x.toml");
    ASSERT_FALSE(cfg.ok()) << c.extra;
    EXPECT_EQ(cfg.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(cfg.status().message().find(c.key + ": has no effect"), std::string::npos) << cfg.status().message();
    EXPECT_NE(cfg.status().message().find(c.because), std::string::npos) << cfg.status().message();
  }
  // mu with fedavg (mu = 0 too: it is written), hidden sizes for a model without hidden layers.
  auto mu = parse_config(with("name = \"fedprox\"\nmu = 0.01", "name = \"fedavg\"\nmu = 0.0"), "x.toml");
  ASSERT_FALSE(mu.ok());
  EXPECT_NE(mu.status().message().find("strategy.mu: has no effect with strategy.name = \"fedavg\""),
            std::string::npos) << mu.status().message();
  auto hidden = parse_config(with("arch = \"mlp\"", "arch = \"niid-cnn\""), "x.toml");
  ASSERT_FALSE(hidden.ok());
  EXPECT_NE(hidden.status().message().find("model.hidden: has no effect with model.arch = \"niid-cnn\""),
            std::string::npos) << hidden.status().message();
  // The same settings where they take effect, and defaults that are never "written".
  EXPECT_TRUE(parse_config(fedavg + "[compression]\nmethod = \"topk\"\ndensity = 0.1\nvalue_type = \"fp16\"\n", "x.toml").ok());
  EXPECT_TRUE(parse_config(fedavg + "[allreduce]\nalgorithm = \"auto\"\nlink_gbps = 10\nlink_latency_us = 5\n", "x.toml").ok());
  EXPECT_TRUE(parse_config(fedavg + "[device]\nkind = \"auto\"\nreduce = \"host\"\n", "x.toml").ok());
  EXPECT_TRUE(parse_config(fedavg, "x.toml").ok());
}

// config.toml holds what takes effect, numbers in their shortest form, and parses back to the
// same settings (also where the user's file wrote nothing).
TEST(Config, CanonicalTextHoldsOnlyWhatTakesEffect) {
  const std::string fedavg = with("name = \"fedprox\"\nmu = 0.01", "name = \"fedavg\"");
  auto c = parse_config(fedavg, "x.toml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  const std::string text = to_toml(c.value());
  for (const char* absent : {"mu =", "density", "value_type", "error_feedback", "link_gbps", "reduce ="}) {
    EXPECT_EQ(text.find(absent), std::string::npos) << absent << " in\n" << text;
  }
  for (const char* present : {"\nmomentum = 0.9\n", "\nweight_decay = 1e-05\n", "\nhidden = [200, 200]\n",
                              "\nmethod = 'none'\n", "\nfraction = 0.5\n"}) {
    EXPECT_NE(text.find(present), std::string::npos) << present << " not in\n" << text;
  }
  auto again = parse_config(text, "config.toml");
  ASSERT_TRUE(again.ok()) << again.status().message() << "\n" << text;
  EXPECT_EQ(to_toml(again.value()), text);
  EXPECT_EQ(resume_hash(again.value()), resume_hash(c.value()));
  // Every double that a user might write comes back bit for bit.
  for (const double v : {0.1, 0.01, 1e-5, 0.9, 1.0 / 3.0, 123456.789, 5e-324}) {
    Config d = c.value();
    d.local.lr = v;
    auto back = parse_config(to_toml(d), "config.toml");
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(back->local.lr, v);
  }
}

TEST(Config, ResumeDifferencesNameTheChangedKeys) {
  auto a = parse_config(kGood, "a.toml");
  auto b = parse_config(with("batch_size = 32", "batch_size = 16"), "b.toml");
  auto r = parse_config(with("rounds = 3", "rounds = 9"), "r.toml");
  ASSERT_TRUE(a.ok() && b.ok() && r.ok());
  EXPECT_EQ(resume_differences(b.value(), a.value()),
            std::vector<std::string>{"local.batch_size = 16 (was 32)"});
  EXPECT_TRUE(resume_differences(r.value(), a.value()).empty());
}

TEST(Config, SlurmMemorySizes) {
  EXPECT_EQ(slurm_memory_mib("2048").value(), 2048);
  EXPECT_EQ(slurm_memory_mib("4G").value(), 4096);
  EXPECT_EQ(slurm_memory_mib("1500M").value(), 1500);
  EXPECT_EQ(slurm_memory_mib("1025K").value(), 2);
  EXPECT_EQ(slurm_memory_mib("1T").value(), 1024 * 1024);
  for (const char* bad : {"", "4GB", "-1", "0", "1.5G", "G"}) {
    EXPECT_FALSE(slurm_memory_mib(bad).ok()) << bad;
  }
}

TEST(Config, MissingFileIsNotFound) {
  auto c = load_config("/nonexistent/fedsilo.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("/nonexistent/fedsilo.toml"), std::string::npos);
}

}  // namespace
}  // namespace fedsilo::config
