// The round report: field privacy classes, packing, and the metrics line built from reports.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "fl/report.h"

namespace fedsilo::fl {
namespace {

TEST(Report, SiloScoresAreSiloPrivateAndTimingsPublic) {
  for (const ReportField& f : report_fields()) {
    const std::string name = f.name;
    const bool timing = name.rfind("seconds.", 0) == 0;
    EXPECT_EQ(f.privacy, timing ? Privacy::kPublic : Privacy::kSiloPrivate) << name;
  }
  EXPECT_EQ(report_fields().size(), 5 + kPhases.size());
}

TEST(Report, PackAndUnpackKeepEveryField) {
  RankReport r;
  r.sampled = true;
  r.samples = 6000;
  r.train_loss = 0.37;
  r.test_accuracy = 0.875;
  r.test_loss = 0.41;
  for (size_t p = 0; p < r.seconds.size(); ++p) r.seconds[p] = 0.5 * static_cast<double>(p + 1);
  const auto v = pack(r);
  ASSERT_EQ(v.size(), report_fields().size());
  const RankReport back = unpack(v);
  EXPECT_EQ(back.sampled, r.sampled);
  EXPECT_EQ(back.samples, r.samples);
  EXPECT_EQ(back.train_loss, r.train_loss);
  EXPECT_EQ(back.test_accuracy, r.test_accuracy);
  EXPECT_EQ(back.test_loss, r.test_loss);
  EXPECT_EQ(back.seconds, r.seconds);
}

TEST(Report, RoundLineListsSilosAndTheSlowestRankPerPhase) {
  std::vector<RankReport> reports(3);
  for (int i = 0; i < 3; ++i) {
    reports[i].sampled = i != 1;
    reports[i].samples = 100 * (i + 1);
    reports[i].train_loss = 1.0 + i;
    reports[i].test_accuracy = 0.5 + 0.125 * i;
    reports[i].test_loss = 0.25 * i;
    reports[i].seconds.fill(static_cast<double>(i));
  }
  reports[0].seconds[0] = 9.0;  // rank 0 trains slowest, rank 2 is slowest elsewhere
  RoundSummary s;
  s.round = 4;
  s.evaluated = false;
  s.reducer = "dense-flat";
  auto line = round_line(s, reports);
  EXPECT_EQ(line["round"], 4);
  EXPECT_EQ(line["sampled"], (std::vector<int>{0, 2}));
  ASSERT_EQ(line["silos"].size(), 3u);
  EXPECT_EQ(line["silos"][1]["samples"], 200);
  EXPECT_FALSE(line["silos"][1].contains("train_loss"));  // not sampled
  EXPECT_EQ(line["silos"][2]["train_loss"].get<double>(), 3.0);
  EXPECT_FALSE(line["silos"][0].contains("test_accuracy"));  // not evaluated
  EXPECT_FALSE(line.contains("accuracy"));
  EXPECT_EQ(line["seconds"]["train"].get<double>(), 9.0);
  EXPECT_EQ(line["seconds"]["aggregate"].get<double>(), 2.0);
  EXPECT_EQ(line["seconds"]["by_rank"]["train"], (std::vector<double>{9.0, 1.0, 2.0}));
  EXPECT_EQ(line["reducer"], "dense-flat");
  s.evaluated = true;
  s.accuracy = 0.8;
  line = round_line(s, reports);
  EXPECT_EQ(line["accuracy"].get<double>(), 0.8);
  EXPECT_EQ(line["silos"][2]["test_accuracy"].get<double>(), 0.75);
}

}  // namespace
}  // namespace fedsilo::fl
