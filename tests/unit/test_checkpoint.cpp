// A silo's private checkpoint state (checkpoint/checkpoint.h): written and read back exactly,
// checked for its round, refused when its lengths differ from the model's, pruned to the newest.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "checkpoint/checkpoint.h"
#include "test_util.h"

namespace ck = fedsilo::checkpoint;
namespace stdfs = std::filesystem;

TEST(SiloState, RoundTripsBitForBitAndSkipsEmptyVectors) {
  const std::string dir = fedsilo::test::fresh_dir("silostate");
  std::vector<float> residual{1.5f, -0.0f, 3.25e-30f, -7.0f}, velocity;
  ASSERT_TRUE(ck::write_silo_state(dir, 6, 3, "abc", {{"residual", &residual}, {"velocity", &velocity}}).ok());
  EXPECT_TRUE(ck::check_silo_state(dir, 6, "silo-03").ok());
  std::vector<float> back(4, 9.0f), v2;
  ASSERT_TRUE(ck::read_silo_state(dir, 6, {{"residual", &back}, {"velocity", &v2}}).ok());
  EXPECT_EQ(0, std::memcmp(back.data(), residual.data(), 4 * sizeof(float)));
  EXPECT_TRUE(v2.empty());
}

TEST(SiloState, MissingFileAndLengthMismatchAreErrorsNamingWhat) {
  const std::string dir = fedsilo::test::fresh_dir("silostate");
  const auto missing = ck::check_silo_state(dir, 2, "silo-01");
  EXPECT_FALSE(missing.ok());
  std::vector<float> residual(5, 1.0f);
  ASSERT_TRUE(ck::write_silo_state(dir, 2, 1, "abc", {{"residual", &residual}}).ok());
  std::vector<float> wrong(7, 0.0f);
  const auto st = ck::read_silo_state(dir, 2, {{"residual", &wrong}});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), fedsilo::StatusCode::kCorruptData);
  EXPECT_NE(st.message().find("'residual' has 5 values, the model 7"), std::string::npos)
      << st.message();
  EXPECT_EQ(wrong, std::vector<float>(7, 0.0f));  // untouched
}

TEST(SiloState, PruneKeepsTheNewestFilesOnly) {
  const std::string dir = fedsilo::test::fresh_dir("silostate");
  std::vector<float> r{1.0f};
  for (int round : {1, 2, 3, 10}) ASSERT_TRUE(ck::write_silo_state(dir, round, 0, "h", {{"residual", &r}}).ok());
  ck::prune_silo_states(dir, 2);
  EXPECT_FALSE(stdfs::exists(dir + "/" + ck::silo_state_file(1)));
  EXPECT_FALSE(stdfs::exists(dir + "/" + ck::silo_state_file(2)));
  EXPECT_TRUE(stdfs::exists(dir + "/" + ck::silo_state_file(3)));
  EXPECT_TRUE(stdfs::exists(dir + "/" + ck::silo_state_file(10)));
  EXPECT_TRUE(ck::check_silo_state(dir, 10, "silo-00").ok());
}
