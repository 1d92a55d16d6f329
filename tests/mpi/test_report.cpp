// fl::gather_reports on 1-8 ranks: every rank gets every rank's report, in rank order, with
// each field as that rank sent it.
#include <gtest/gtest.h>

#include <vector>

#include "fl/report.h"
#include "mpi/comm.h"

namespace fedsilo::fl {
namespace {

RankReport report_of(int rank) {
  RankReport r;
  r.sampled = rank % 2 == 0;
  r.samples = 1000 + 7 * rank;
  r.train_loss = 0.5 + rank;
  r.test_accuracy = 0.25 * (rank % 4);
  r.test_loss = 2.0 - 0.125 * rank;
  for (size_t p = 0; p < r.seconds.size(); ++p) r.seconds[p] = 10.0 * rank + static_cast<double>(p);
  return r;
}

TEST(Report, GatherGivesEveryRanksRecordInRankOrder) {
  auto world = mpi::Comm::world();
  ASSERT_TRUE(world.ok());
  auto all = gather_reports(world.value(), report_of(world->rank()));
  ASSERT_TRUE(all.ok()) << all.status().message();
  ASSERT_EQ(all->size(), static_cast<size_t>(world->size()));
  for (int q = 0; q < world->size(); ++q) {
    const RankReport want = report_of(q);
    const RankReport& got = (*all)[static_cast<size_t>(q)];
    EXPECT_EQ(got.sampled, want.sampled);
    EXPECT_EQ(got.samples, want.samples);
    EXPECT_EQ(got.train_loss, want.train_loss);
    EXPECT_EQ(got.test_accuracy, want.test_accuracy);
    EXPECT_EQ(got.test_loss, want.test_loss);
    EXPECT_EQ(got.seconds, want.seconds);
  }
  // The line's seconds: each phase's slowest rank, and every rank's.
  RoundSummary s;
  s.round = 3;
  s.evaluated = true;
  const auto line = round_line(s, all.value());
  const double last = 10.0 * (world->size() - 1);
  EXPECT_EQ(line["seconds"]["train"].get<double>(), last);
  EXPECT_EQ(line["seconds"]["decompress"].get<double>(), last + 8);
  EXPECT_EQ(line["seconds"]["by_rank"]["round"].size(), static_cast<size_t>(world->size()));
}

}  // namespace
}  // namespace fedsilo::fl
