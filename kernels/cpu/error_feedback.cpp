// The fused error-feedback step.
//
// Memory traffic for n floats (top-k, no momentum): pass A reads update and residual and writes
// acc over the residual (12 n bytes); the rest touches ~k elements. The top-k selections need
// no second pass over acc: a sample of acc (computed at ~12.8 K positions for 1%, before pass
// A, from the same inputs and in the same order, so bitwise acc) sets a magnitude threshold a
// few sample spreads below the k-th largest, and pass A collects the candidates at or above it
// while each tile is in L1 (~1.3 k of them); exact top-k then selects among the candidates
// (every element at or above the k-th largest magnitude is one of them), sampled top-k trims
// them as it always does. Where the sample misjudges (too few candidates, or a tie-heavy
// threshold that collects too many), exact top-k falls back to its histogram select over acc
// and sampled top-k to its own further passes: the same result, one or two reads later. 12 n
// bytes in all against 16 n with a separate selection pass. With momentum, pass A also reads
// and writes the velocity (20 n bytes).
#include "kernels/cpu/error_feedback.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <vector>

#include "core/philox.h"
#include "kernels/cpu/quantize.h"
#include "kernels/cpu/randk.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cpu/topk.h"
#include "kernels/cpu/topk_sampled.h"

namespace fedsilo::kernels {

namespace {

// Tile for pass A: the vector loop writes 2048 acc floats (8 KiB), the histogram then reads
// them back from L1.
constexpr int64_t kTile = 2048;
constexpr float kFloatMax = std::numeric_limits<float>::max();

// The candidates pass A collects for a top-k selection: indices with magnitude key >= min_key,
// ascending, up to `cap` of them (past it the chunk gives up: `overflow`).
struct Collector {
  uint32_t min_key = 0;
  int64_t cap = 0;
  std::vector<uint32_t> out;
  bool overflow = false;
};

// Pass A over [b, e): writes acc (into residual, or nothing without error feedback), returns
// whether any acc was non-finite, adds |acc| to hist when given, collects candidates into
// `col` when given. With addends (which need
// error feedback), the tile of update + addends is summed into an L1 buffer first, in the order
// ((update + a0) + a1) + ...: what adding each addend into the update would give.
bool accumulate_chunk(const float* update, std::span<const float* const> addends,
                      float* residual, float* velocity, float momentum, bool error_feedback,
                      int64_t b, int64_t e, MagnitudeHistogram* hist, Collector* col) {
  unsigned bad = 0;
  alignas(64) float sum[kTile];
  uint32_t hits[kTile + 1];  // collect_at_or_above may write one past the last hit
  for (int64_t t0 = b; t0 < e; t0 += kTile) {
    const int64_t len = std::min(e, t0 + kTile) - t0;
    const float* u = update + t0;  // this tile's update, indexed from 0
    if (!addends.empty()) {
      for (int64_t i = 0; i < len; ++i) sum[i] = u[i] + addends[0][t0 + i];
      for (size_t q = 1; q < addends.size(); ++q) {
        const float* a = addends[q] + t0;
        for (int64_t i = 0; i < len; ++i) sum[i] += a[i];
      }
      u = sum;
    }
    const float* acc = u;
    float* r = error_feedback ? residual + t0 : nullptr;
    if (error_feedback && momentum != 0.0f) {
      float* vel = velocity + t0;
      for (int64_t i = 0; i < len; ++i) {
        // One rounding (fused), whatever the build flags: the CUDA twin computes the same bits.
        const float v = std::fma(momentum, vel[i], u[i]);
        vel[i] = v;
        const float a = r[i] + v;
        r[i] = a;
        bad |= static_cast<unsigned>(!(std::abs(a) <= kFloatMax));
      }
      acc = r;
    } else if (error_feedback) {
      for (int64_t i = 0; i < len; ++i) {
        const float a = u[i] + r[i];
        r[i] = a;
        bad |= static_cast<unsigned>(!(std::abs(a) <= kFloatMax));
      }
      acc = r;
    } else {
      for (int64_t i = 0; i < len; ++i) bad |= static_cast<unsigned>(!(std::abs(u[i]) <= kFloatMax));
    }
    if (hist != nullptr) hist->add(acc, len);
    if (col != nullptr && !col->overflow) {
      const int64_t p = collect_at_or_above(acc, 0, len, col->min_key, hits);
      if (static_cast<int64_t>(col->out.size()) + p > col->cap) {
        col->overflow = true;
        col->out = {};
      } else {
        for (int64_t j = 0; j < p; ++j) col->out.push_back(static_cast<uint32_t>(t0) + hits[j]);
      }
    }
  }
  return bad == 0;
}

}  // namespace

SparseVector error_feedback_step(std::span<const float> update, std::span<float> residual,
                                 std::span<float> velocity, const ErrorFeedbackParams& p,
                                 ErrorFeedbackReport* report) {
  return error_feedback_step(update, {}, residual, velocity, p, report);
}

SparseVector error_feedback_step(std::span<const float> update,
                                 std::span<const float* const> addends, std::span<float> residual,
                                 std::span<float> velocity, const ErrorFeedbackParams& p,
                                 ErrorFeedbackReport* report) {
  if (!addends.empty() && !p.error_feedback) {
    // Without a residual to hold it, the sum is written out first.
    std::vector<float> sum(update.begin(), update.end());
    for (const float* a : addends) add_into(sum.data(), a, static_cast<int64_t>(sum.size()));
    return error_feedback_step(sum, {}, residual, velocity, p, report);
  }
  ErrorFeedbackReport rep;
  const auto n = static_cast<int64_t>(update.size());
  const bool ef = p.error_feedback;
  const float momentum = ef ? p.momentum : 0.0f;
  const int chunks = compressor_threads(p.threads, n);
  const bool top = (p.method == SelectMethod::kTopk || p.method == SelectMethod::kTopkSampled) &&
                   p.k > 0 && p.k < n;

  // The top-k selections' sample, drawn before pass A changes residual and velocity: acc at
  // the sample positions, computed as pass A will (same operands, same order: the same bits).
  // Exact top-k's result does not depend on the sample (only its speed does); it uses the
  // sampled selector's stream.
  std::optional<SampledThreshold> plan;
  if (top || p.method == SelectMethod::kTopkSampled) {  // sampled: also none or all (k <= 0, k >= n)
    Philox rng(p.seed, p.round, p.silo | kSamplingStreamBit, RngPurpose::kCompression);
    plan.emplace(n, p.k, rng, [&](int64_t i) {
      float v = update[static_cast<size_t>(i)];
      for (const float* a : addends) v += a[i];
      if (!ef) return v;
      if (momentum != 0.0f) return residual[static_cast<size_t>(i)] + std::fma(momentum, velocity[static_cast<size_t>(i)], v);
      return v + residual[static_cast<size_t>(i)];
    });
  }
  // A threshold of 0 would collect everything: then the separate passes are cheaper.
  const bool fuse = plan && plan->first_min_key() > 0;
  const bool want_hist = p.method == SelectMethod::kTopk && top && !fuse;

  // Pass A: acc, finiteness, and the candidates (fused top-k) or per-chunk histograms (exact
  // top-k otherwise). A chunk collects at most twice its share of the expected candidates
  // (plus a tile's worth): more means a tie-heavy threshold, and the fallback is cheaper.
  std::vector<uint32_t> hists(want_hist ? static_cast<size_t>(chunks) * kTopkBuckets : 0, 0);
  std::vector<Collector> cols(fuse ? static_cast<size_t>(chunks) : 0);
  unsigned bad = 0;
#pragma omp parallel for num_threads(chunks) schedule(static, 1) reduction(| : bad)
  for (int c = 0; c < chunks; ++c) {
    const int64_t b = chunk_begin(n, c, chunks), e = chunk_begin(n, c + 1, chunks);
    Collector* col = nullptr;
    if (fuse) {
      col = &cols[static_cast<size_t>(c)];
      col->min_key = plan->first_min_key();
      col->cap = static_cast<int64_t>(2.0 * plan->expected_candidates() * static_cast<double>(e - b) /
                                      static_cast<double>(n)) + kTile;
    }
    if (want_hist) {
      MagnitudeHistogram h;
      bad |= static_cast<unsigned>(!accumulate_chunk(update.data(), addends, residual.data(),
                                                     velocity.data(), momentum, ef, b, e, &h, col));
      h.merge_into(hists.data() + static_cast<size_t>(c) * kTopkBuckets);
    } else {
      bad |= static_cast<unsigned>(!accumulate_chunk(update.data(), addends, residual.data(),
                                                     velocity.data(), momentum, ef, b, e, nullptr, col));
    }
  }
  SparseVector out;
  out.length = n;
  if (bad != 0) {
    rep.finite = false;
    if (report != nullptr) *report = rep;
    return out;
  }
  const std::span<const float> acc =
      ef ? std::span<const float>(residual.data(), residual.size()) : update;

  // The fused pass's candidates, in chunk order (ascending); empty when it collected none.
  bool collected = fuse;
  std::vector<uint32_t> cand;
  if (fuse) {
    size_t total = 0;
    for (const auto& col : cols) {
      collected = collected && !col.overflow;
      total += col.out.size();
    }
    if (collected) {
      cand.reserve(total);
      for (const auto& col : cols) cand.insert(cand.end(), col.out.begin(), col.out.end());
    }
  }

  // Selection.
  std::vector<uint32_t> idx;
  switch (p.method) {
    case SelectMethod::kAll:
      idx.resize(static_cast<size_t>(n));
      std::iota(idx.begin(), idx.end(), 0u);
      break;
    case SelectMethod::kTopk:
      if (collected && static_cast<int64_t>(cand.size()) >= p.k) {
        idx = topk_among(acc, cand, p.k);  // every element of the top k is a candidate
      } else if (want_hist) {
        idx = topk_indices_from_histograms(acc, p.k, hists, chunks);
      } else {
        idx = topk_indices(acc, p.k, p.threads);  // k <= 0, k >= n, or the sample misjudged
      }
      break;
    case SelectMethod::kTopkSampled:
      if (top && !collected) cand = threshold_pass(acc, plan->first_min_key(), p.threads);
      idx = plan->finish(acc, std::move(cand), p.threads, &rep.sampled);
      break;
    case SelectMethod::kRandk:
      idx = randk_indices(n, p.k, p.seed, p.round);
      break;
  }

  // Quantize the selected values to what the receiver will decode.
  std::vector<float> sent(idx.size());
  for (size_t j = 0; j < idx.size(); ++j) sent[j] = acc[idx[j]];
  round_trip_values(p.value_type, sent, RoundingStream{p.seed, p.round, p.silo});
  for (const float s : sent) {
    if (!(std::abs(s) <= kFloatMax)) {
      rep.overflow = true;
      if (report != nullptr) *report = rep;
      return out;
    }
  }

  // New residual on the sent coordinates: exactly acc - sent (elsewhere it already holds acc).
  if (ef) {
    float* r = residual.data();
    for (size_t j = 0; j < idx.size(); ++j) r[idx[j]] = r[idx[j]] - sent[j];
    if (momentum != 0.0f) {
      for (const uint32_t i : idx) velocity[i] = 0.0f;
    }
  }
  out.indices = std::move(idx);
  out.values = std::move(sent);
  if (report != nullptr) *report = rep;
  return out;
}

}  // namespace fedsilo::kernels
