// Philox4x32-10 against the Random123 known-answer vectors, and stream properties.
#include <gtest/gtest.h>

#include <cmath>

#include "core/philox.h"

namespace fedsilo {
namespace {

TEST(Philox, MatchesRandom123KnownAnswers) {
  // Known-answer tests from Random123's kat_vectors (philox4x32_10).
  auto a = philox4x32_10({0, 0, 0, 0}, {0, 0});
  EXPECT_EQ(a, (std::array<uint32_t, 4>{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  auto b = philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu});
  EXPECT_EQ(b, (std::array<uint32_t, 4>{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  auto c = philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u});
  EXPECT_EQ(c, (std::array<uint32_t, 4>{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(Philox, StreamsDifferByPurposeRoundAndSilo) {
  Philox a(1, 2, 3, RngPurpose::kShuffle), b(1, 2, 3, RngPurpose::kShuffle);
  Philox c(1, 2, 3, RngPurpose::kInit), d(1, 2, 4, RngPurpose::kShuffle), e(1, 3, 3, RngPurpose::kShuffle);
  const uint32_t x = a.next_u32();
  EXPECT_EQ(x, b.next_u32());
  EXPECT_NE(x, c.next_u32());
  EXPECT_NE(x, d.next_u32());
  EXPECT_NE(x, e.next_u32());
}

TEST(Philox, UniformAndNormalMoments) {
  Philox r(42, 0, 0, RngPurpose::kNoise);
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0;
  for (int i = 0; i < n; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    su += u;
    const double z = r.normal();
    sn += z;
    sn2 += z * z;
  }
  EXPECT_NEAR(su / n, 0.5, 0.005);
  EXPECT_NEAR(sn / n, 0.0, 0.01);
  EXPECT_NEAR(sn2 / n, 1.0, 0.02);
}

TEST(Philox, GammaMeanEqualsShape) {
  Philox r(9, 0, 0, RngPurpose::kPartition);
  for (double shape : {0.1, 0.5, 1.0, 3.0}) {
    const int n = 100000;
    double s = 0;
    for (int i = 0; i < n; ++i) s += r.gamma(shape);
    EXPECT_NEAR(s / n, shape, 0.03 * std::max(1.0, shape)) << shape;
  }
}

TEST(Philox, BelowIsInRangeAndCoversIt) {
  Philox r(3, 0, 0, RngPurpose::kShuffle);
  std::array<int, 7> hits{};
  for (int i = 0; i < 7000; ++i) {
    const auto v = r.below(7);
    ASSERT_LT(v, 7u);
    ++hits[v];
  }
  for (int h : hits) EXPECT_GT(h, 800);
}

}  // namespace
}  // namespace fedsilo
