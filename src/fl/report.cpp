// The round's per-rank reports and the metrics line built from them.
#include "fl/report.h"

#include <algorithm>

namespace fedsilo::fl {

namespace {
constexpr size_t kSiloFields = 5;  // sampled, samples, train_loss, test_accuracy, test_loss

constexpr std::array<ReportField, kSiloFields + kPhases.size()> kFields = {{
    {"sampled", Privacy::kSiloPrivate},
    {"samples", Privacy::kSiloPrivate},
    {"train_loss", Privacy::kSiloPrivate},
    {"test_accuracy", Privacy::kSiloPrivate},
    {"test_loss", Privacy::kSiloPrivate},
    {"seconds.train", Privacy::kPublic},
    {"seconds.aggregate", Privacy::kPublic},
    {"seconds.eval", Privacy::kPublic},
    {"seconds.checkpoint", Privacy::kPublic},
    {"seconds.round", Privacy::kPublic},
    {"seconds.compress", Privacy::kPublic},
    {"seconds.intra", Privacy::kPublic},
    {"seconds.inter", Privacy::kPublic},
    {"seconds.decompress", Privacy::kPublic},
}};
}  // namespace

std::span<const ReportField> report_fields() { return kFields; }

std::vector<double> pack(const RankReport& r) {
  std::vector<double> v = {r.sampled ? 1.0 : 0.0, static_cast<double>(r.samples), r.train_loss,
                           r.test_accuracy, r.test_loss};
  v.insert(v.end(), r.seconds.begin(), r.seconds.end());
  return v;
}

RankReport unpack(std::span<const double> v) {
  RankReport r;
  r.sampled = v[0] != 0.0;
  r.samples = static_cast<int64_t>(v[1]);
  r.train_loss = v[2];
  r.test_accuracy = v[3];
  r.test_loss = v[4];
  std::copy(v.begin() + kSiloFields, v.begin() + kFields.size(), r.seconds.begin());
  return r;
}

RankReport public_part(const RankReport& r) {
  RankReport out;
  out.sampled = r.sampled;
  out.seconds = r.seconds;
  return out;
}

Result<std::vector<RankReport>> gather_reports(mpi::Comm& comm, const RankReport& mine) {
  const std::vector<double> packed = pack(mine);
  std::vector<double> all;
  FEDSILO_CHECK(comm.allgather(std::span<const double>(packed), all));
  std::vector<RankReport> out;
  for (size_t at = 0; at + kFields.size() <= all.size(); at += kFields.size()) {
    out.push_back(unpack(std::span<const double>(all).subspan(at, kFields.size())));
  }
  return out;
}

nlohmann::json round_line(const RoundSummary& s, std::span<const RankReport> reports) {
  using nlohmann::json;
  json silos = json::array();
  std::vector<int> sampled;
  for (size_t i = 0; i < reports.size(); ++i) {
    const RankReport& r = reports[i];
    json js = {{"silo", static_cast<int>(i)}, {"sampled", r.sampled}};
    if (r.sampled) sampled.push_back(static_cast<int>(i));
    if (s.silo_fields) js["samples"] = r.samples;
    if (s.silo_fields && r.sampled) js["train_loss"] = r.train_loss;
    if (s.silo_fields && s.evaluated) {
      js["test_accuracy"] = r.test_accuracy;
      js["test_loss"] = r.test_loss;
    }
    silos.push_back(js);
  }
  json seconds = json::object(), by_rank = json::object();
  for (size_t p = 0; p < kPhases.size(); ++p) {
    double slowest = 0.0;
    json each = json::array();
    for (const RankReport& r : reports) {
      slowest = std::max(slowest, r.seconds[p]);
      each.push_back(r.seconds[p]);
    }
    seconds[kPhases[p]] = slowest;
    by_rank[kPhases[p]] = each;
  }
  seconds["by_rank"] = by_rank;
  json line = {{"round", s.round},
               {"sampled", sampled},
               {"silos", silos},
               {"bytes_sent", s.bytes_sent},
               {"bytes_received", s.bytes_received},
               {"bytes", {{"intra_sent", s.intra_sent},
                          {"intra_received", s.intra_received},
                          {"inter_sent", s.inter_sent},
                          {"inter_received", s.inter_received}}},
               {"compression_ratio", s.compression_ratio},
               {"reducer", s.reducer},
               {"device", s.device},
               {"cpu", s.cpu},
               {"blas", s.blas},
               {"seconds", seconds}};
  if (s.evaluated) {
    line["accuracy"] = s.accuracy;
    line["loss"] = s.loss;
  }
  if (s.epsilon >= 0.0) {
    line["epsilon"] = s.epsilon;
    line["delta"] = s.delta;
  }
  return line;
}

}  // namespace fedsilo::fl
