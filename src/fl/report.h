// One round's report: a small record per rank (its silo's counts and scores, its phase timings),
// gathered once per round, and the metrics.jsonl line rank 0 writes from all of them. Every
// field has a privacy class: public (round, bytes, timings) or silo-private (a silo's sample
// count, loss, accuracy), which secure aggregation will keep out of shared outputs.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "mpi/comm.h"

namespace fedsilo::fl {

enum class Privacy : uint8_t {
  kPublic,       // anyone who reads the run directory may see it
  kSiloPrivate,  // about one silo's records: its sample count, loss, accuracy
};

/// The phases a round's seconds are split into, in the report's order.
inline constexpr std::array<const char*, 9> kPhases = {
    "train", "aggregate", "eval", "checkpoint", "round", "compress", "intra", "inter", "decompress"};

/// What one rank reports for one round.
struct RankReport {
  // silo-private
  bool sampled = false;   // trained this round
  int64_t samples = 0;    // its training set's size (the FedAvg weight)
  double train_loss = 0;  // meaningful where sampled
  double test_accuracy = 0, test_loss = 0;  // on its own test split; meaningful where evaluated
  // public
  std::array<double, kPhases.size()> seconds{};
};

/// A report field's name in metrics.jsonl and its privacy class.
struct ReportField {
  const char* name;
  Privacy privacy;
};
/// Every field of RankReport in the order pack() writes them.
[[nodiscard]] std::span<const ReportField> report_fields();

/// The report as report_fields().size() doubles, and back.
[[nodiscard]] std::vector<double> pack(const RankReport& r);
[[nodiscard]] RankReport unpack(std::span<const double> v);

/// The report with its silo-private fields cleared (all but `sampled`, which is public: the
/// sampling is): what a rank shares under secure aggregation.
[[nodiscard]] RankReport public_part(const RankReport& r);

/// Every rank's report, in rank order, on every rank: one allgather. Collective.
[[nodiscard]] Result<std::vector<RankReport>> gather_reports(mpi::Comm& comm, const RankReport& mine);

/// What the round line holds beside the reports (public: the round, rank 0's bytes and the
/// names of what ran; the global model's test scores).
struct RoundSummary {
  int64_t round = 0;
  bool evaluated = false;
  double accuracy = 0, loss = 0;  // the global model's, where evaluated
  int64_t bytes_sent = 0, bytes_received = 0;
  int64_t intra_sent = 0, intra_received = 0, inter_sent = 0, inter_received = 0;
  double compression_ratio = 1.0;
  std::string reducer, device, cpu, blas;
  /// false under secure aggregation or differential privacy: the line leaves out every
  /// silo-private field (each silo keeps its own in its private directory).
  bool silo_fields = true;
  /// Under [privacy]: the largest epsilon over the silos after this round (a public bound on
  /// every silo's), and the delta it is for; negative: no privacy accounting.
  double epsilon = -1.0, delta = 0.0;
};

/// The metrics.jsonl line: `silos` (each silo's sample count, sampled flag, train loss where it
/// trained, test scores where evaluated), `sampled` (the ids), the summary's fields, and
/// `seconds`: each phase's slowest rank, and under `by_rank` every rank's.
[[nodiscard]] nlohmann::json round_line(const RoundSummary& summary,
                                        std::span<const RankReport> reports);

}  // namespace fedsilo::fl
