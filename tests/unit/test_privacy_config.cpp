// The [privacy] table: defaults, the values it accepts and refuses (each naming its key), keys
// that take no effect, the canonical form a run directory's config.toml holds, and the CUDA
// backend refused until its DP-SGD exists.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace fedsilo {
namespace {

const std::string kBase = "[data]\nsilos_dir = \"/tmp/silos\"\n";

Result<config::Config> parse(const std::string& extra) {
  return config::parse_config(kBase + extra, "p.toml");
}

void expect_refused(const std::string& extra, const std::string& needle) {
  auto c = parse(extra);
  ASSERT_FALSE(c.ok()) << extra;
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find(needle), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("p.toml"), std::string::npos) << c.status().message();
}

TEST(PrivacyConfig, DefaultsToNoneAndSampleParsesEveryKey) {
  auto none = parse("");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->privacy.level, config::PrivacyLevel::kNone);
  auto c = parse(
      "[privacy]\nlevel = \"sample\"\ntarget_epsilon = 3.0\nclip = 0.5\ndelta = 1e-6\n"
      "accountant = \"pld\"\nmax_epsilon = 4.0\nsampler = \"discrete\"\n");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->privacy.level, config::PrivacyLevel::kSample);
  EXPECT_EQ(c->privacy.target_epsilon, 3.0);
  EXPECT_EQ(c->privacy.clip, 0.5);
  EXPECT_EQ(c->privacy.delta, 1e-6);
  EXPECT_EQ(c->privacy.accountant, config::DpAccountant::kPld);
  EXPECT_EQ(c->privacy.max_epsilon, 4.0);
  EXPECT_EQ(c->privacy.sampler, config::DpSampler::kDiscrete);
  // The canonical text parses back to the same settings, and leaves the noise multiplier out
  // (the accountant sets it).
  const std::string text = config::to_toml(c.value());
  EXPECT_EQ(text.find("noise_multiplier"), std::string::npos) << text;
  auto again = config::parse_config(text, "again.toml");
  ASSERT_TRUE(again.ok()) << again.status().to_string() << "\n" << text;
  EXPECT_EQ(config::resume_hash(again.value()), config::resume_hash(c.value()));
}

TEST(PrivacyConfig, RefusesBadValuesNamingTheKey) {
  const std::string dp = "[privacy]\nlevel = \"sample\"\n";
  expect_refused(dp + "noise_multiplier = 0.0\n", "privacy.noise_multiplier: must be > 0");
  expect_refused(dp + "noise_multiplier = -1.0\n", "privacy.noise_multiplier: must be > 0");
  expect_refused(dp + "target_epsilon = 0.0\n", "privacy.target_epsilon: must be > 0");
  expect_refused(dp + "noise_multiplier = 1.0\nclip = 0.0\n", "privacy.clip: must be > 0");
  expect_refused(dp + "noise_multiplier = 1.0\ndelta = 0.0\n", "privacy.delta: must be in (0, 1)");
  expect_refused(dp + "noise_multiplier = 1.0\ndelta = 1.0\n", "privacy.delta: must be in (0, 1)");
  expect_refused(dp + "noise_multiplier = 1.0\nmax_epsilon = -1.0\n", "privacy.max_epsilon");
  expect_refused(dp + "noise_multiplier = 1.0\naccountant = \"moments\"\n", "privacy.accountant");
  expect_refused(dp, "needs exactly one of privacy.noise_multiplier");
  expect_refused(dp + "noise_multiplier = 1.0\ntarget_epsilon = 2.0\n", "not both");
  expect_refused(dp + "target_epsilon = 9.0\nmax_epsilon = 8.0\n",
                 "privacy.target_epsilon: 9.0 is above privacy.max_epsilon = 8.0");
  expect_refused("[privacy]\nlevel = \"record\"\n", "privacy.level");
  expect_refused(dp + "noise_multiplier = 1.0\nsampler = \"box-muller\"\n", "privacy.sampler");
  expect_refused(dp + "noise_multiplier = 1.0\n[device]\nkind = \"cuda\"\n",
                 "privacy.level: \"sample\" needs device.kind = \"cpu\"");
}

TEST(PrivacyConfig, KeysWithoutLevelSampleHaveNoEffect) {
  expect_refused("[privacy]\nnoise_multiplier = 1.0\n",
                 "privacy.noise_multiplier: has no effect with privacy.level = \"none\"");
  expect_refused("[privacy]\nlevel = \"none\"\nclip = 2.0\n", "privacy.clip: has no effect");
}

}  // namespace
}  // namespace fedsilo
