// Communicator collectives and error agreement, on 2 and 4 ranks.
#include <gtest/gtest.h>

#include "mpi/comm.h"
#include "mpi/dense_allreduce.h"

namespace fedsilo::mpi {
namespace {

TEST(Comm, AgreeReturnsLowestFailingRanksStatusOnEveryRank) {
  auto c = Comm::world();
  ASSERT_TRUE(c.ok());
  const int r = c->rank();
  // Ranks >= 1 fail with different messages: everyone must get rank 1's.
  Status mine = r >= 1 ? invalid_argument("silo-0" + std::to_string(r) + ": bad") : Status();
  Status agreed = c->agree(mine);
  ASSERT_FALSE(agreed.ok());
  EXPECT_EQ(agreed.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(agreed.message(), "silo-01: bad");
  EXPECT_TRUE(c->agree(Status()).ok());
}

TEST(DenseAllreduce, SumIsExactOnSmallIntegers) {
  auto c = Comm::world();
  ASSERT_TRUE(c.ok());
  const int n = c->size(), r = c->rank();
  for (size_t len : {size_t{0}, size_t{1}, size_t{3}, size_t{1000003}}) {
    std::vector<float> v(len);
    for (size_t i = 0; i < len; ++i) v[i] = static_cast<float>((static_cast<int>(i) % 17) * (r + 1) - 8);
    DenseAllreduce red(c.value());
    mpi::ReduceStats st;
    ASSERT_TRUE(red.sum(v, st).ok());
    for (size_t i = 0; i < len; ++i) {
      const int k = static_cast<int>(i) % 17;
      const float want = static_cast<float>(k * n * (n + 1) / 2 - 8 * n);
      ASSERT_EQ(v[i], want) << "len " << len << " i " << i;
    }
    EXPECT_EQ(st.bytes_sent, static_cast<int64_t>(2 * len * sizeof(float) * (n - 1) / n));
  }
}

TEST(SharedWindow, EveryRankReadsEveryRanksStoresAfterSync) {
  auto c = Comm::world();
  ASSERT_TRUE(c.ok());
  auto node = c->split_shared();  // all ranks of these tests run on one machine
  ASSERT_TRUE(node.ok());
  const int L = node->size(), me = node->rank();
  for (const int64_t floats : {int64_t{1}, int64_t{1000}, int64_t{3} << 20}) {
    auto w = SharedWindow::allocate(node.value(), floats * 4);
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    ASSERT_GE(w->bytes(), floats * 4);
    for (int pass = 0; pass < 2; ++pass) {  // the segments are reused across syncs
      auto* mine = reinterpret_cast<float*>(w->segment(me));
      for (int64_t i = 0; i < floats; ++i) mine[i] = static_cast<float>(me * 1000 + pass + i % 7);
      ASSERT_TRUE(w->sync().ok());
      for (int q = 0; q < L; ++q) {
        const auto* theirs = reinterpret_cast<const float*>(w->segment(q));
        int64_t bad = 0;
        for (int64_t i = 0; i < floats; ++i) {
          bad += theirs[i] != static_cast<float>(q * 1000 + pass + i % 7);
        }
        EXPECT_EQ(bad, 0) << "segment of local rank " << q << ", " << floats << " floats, pass "
                          << pass;
      }
      ASSERT_TRUE(w->sync().ok());  // nobody overwrites before everyone has read
    }
  }
  EXPECT_FALSE(SharedWindow::allocate(node.value(), 0).ok());
}

TEST(Comm, AllgatherIsRankMajor) {
  auto c = Comm::world();
  ASSERT_TRUE(c.ok());
  const double mine[2] = {static_cast<double>(c->rank()), 10.0 * c->rank()};
  std::vector<double> all;
  ASSERT_TRUE(c->allgather(std::span<const double>(mine, 2), all).ok());
  ASSERT_EQ(all.size(), 2u * c->size());
  for (int q = 0; q < c->size(); ++q) {
    EXPECT_EQ(all[2 * q], q);
    EXPECT_EQ(all[2 * q + 1], 10.0 * q);
  }
}

}  // namespace
}  // namespace fedsilo::mpi
