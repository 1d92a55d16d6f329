// Compressor throughput on the CPU: exact top-k select, sampled top-k, and the fused
// error-feedback step (top-k + fp16 values), in elements/s per core, next to a plain memory
// read (sum) of the same buffer and std::nth_element top-k. A program, not a timed test: it
// validates every result first, warms up, times `repeats` runs, reports median and min/max,
// and writes JSON beside the table. See benchmarks/RESULTS.md, "Compressors (CPU)".
//
// Usage: compressors [--threads 2] [--sizes 22,24] [--densities 0.01,0.001] [--repeats 7]
//                    [--json FILE] [--commit SHA]
// The commit comes from --commit, else $FEDSILO_COMMIT, else "unknown".
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "benchmarks/common/machine.h"
#include "core/philox.h"
#include "kernels/cpu/error_feedback.h"
#include "kernels/cpu/topk.h"
#include "kernels/cpu/topk_sampled.h"

namespace {

namespace fk = fedsilo::kernels;

struct Options {
  int threads = 2;
  std::vector<int> log2_sizes{22, 24};
  std::vector<double> densities{0.01, 0.001};
  int repeats = 7;
  std::string json_path = "compressors.json";
  std::string commit;
};

template <typename T>
std::vector<T> split_list(const std::string& s) {
  std::vector<T> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(static_cast<T>(std::stod(item)));
  }
  return out;
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "compressors: '%s' needs a value\n", a.c_str());
      return false;
    }
    const std::string v = argv[++i];
    if (a == "--threads") {
      o.threads = std::atoi(v.c_str());
    } else if (a == "--sizes") {
      o.log2_sizes = split_list<int>(v);
    } else if (a == "--densities") {
      o.densities = split_list<double>(v);
    } else if (a == "--repeats") {
      o.repeats = std::atoi(v.c_str());
    } else if (a == "--json") {
      o.json_path = v;
    } else if (a == "--commit") {
      o.commit = v;
    } else {
      std::fprintf(stderr, "compressors: unknown argument '%s'\n", a.c_str());
      return false;
    }
  }
  if (o.threads < 1 || o.repeats < 1 || o.log2_sizes.empty() || o.densities.empty()) {
    std::fprintf(stderr, "compressors: --threads and --repeats must be >= 1, lists non-empty\n");
    return false;
  }
  for (const int s : o.log2_sizes) {
    if (s < 10 || s > 30) {
      std::fprintf(stderr, "compressors: --sizes are log2 sizes in [10, 30]\n");
      return false;
    }
  }
  for (const double d : o.densities) {
    if (!(d > 0.0 && d <= 1.0)) {
      std::fprintf(stderr, "compressors: densities must be in (0, 1]\n");
      return false;
    }
  }
  o.commit = fedsilo::bench::commit_or_env(o.commit);
  return true;
}

struct Timing {
  double median = 0, min = 0, max = 0;
};

// Warm-up once, then `repeats` timed runs of body(); setup() runs untimed before each.
Timing time_it(int repeats, const std::function<void()>& setup, const std::function<void()>& body) {
  setup();
  body();
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    setup();
    const auto t0 = std::chrono::steady_clock::now();
    body();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  const size_t n = t.size();
  return {n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]), t.front(), t.back()};
}

// Random-normal updates (what a silo's update looks like to a selector), one Philox stream
// per chunk so filling 2^24 values uses every thread.
std::vector<float> normal_data(int64_t n, uint32_t stream, double sd, int threads) {
  std::vector<float> v(static_cast<size_t>(n));
  constexpr int64_t kChunk = 1 << 16;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t c = 0; c < (n + kChunk - 1) / kChunk; ++c) {
    fedsilo::Philox rng(2024, stream, static_cast<uint32_t>(c), fedsilo::RngPurpose::kNoise);
    for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) {
      v[static_cast<size_t>(i)] = static_cast<float>(sd * rng.normal());
    }
  }
  return v;
}

// The memory-read baseline: the sum of the buffer (a streaming, vectorised reduction).
double read_sum(const std::vector<float>& x, int threads) {
  double total = 0.0;
  const auto n = static_cast<int64_t>(x.size());
  const float* p = x.data();
#pragma omp parallel for num_threads(threads) schedule(static, 1) reduction(+ : total)
  for (int c = 0; c < threads; ++c) {
    const int64_t b = fk::chunk_begin(n, c, threads), e = fk::chunk_begin(n, c + 1, threads);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = b; i < e; ++i) s += p[i];
    total += s;
  }
  return total;
}

// The library baseline: std::nth_element on indices by (|x| descending, index ascending), then
// sort the k winners ascending (single-threaded).
std::vector<uint32_t> nth_element_topk(const std::vector<float>& x, int64_t k,
                                       std::vector<uint32_t>& idx) {
  std::iota(idx.begin(), idx.end(), 0u);
  auto before = [&x](uint32_t a, uint32_t b) {
    const uint32_t ka = fk::magnitude_key(x[a]), kb = fk::magnitude_key(x[b]);
    return ka != kb ? ka > kb : a < b;
  };
  std::nth_element(idx.begin(), idx.begin() + k, idx.end(), before);
  std::vector<uint32_t> top(idx.begin(), idx.begin() + k);
  std::sort(top.begin(), top.end());
  return top;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) return 2;
  const std::string machine = fedsilo::bench::cpu_model_name();
  std::printf("compressors: machine %s, %d hardware threads\n", machine.c_str(),
              omp_get_num_procs());
  std::printf("  threads %d, repeats %d (after 1 warm-up), commit %s\n", o.threads, o.repeats,
              o.commit.c_str());
  std::printf("  data: N(0, 1e-3) updates, residual N(0, 1e-3); EF step = top-k + fp16 values\n");
  std::printf(
      "  rate = elements / median time / cores used (nth_element: 1 core);\n"
      "  GB/s = bytes the op must move (read 4n; select 8n: two reads; EF 16n) / median\n\n");

  nlohmann::json out;
  out["benchmark"] = "compressors";
  out["machine"] = machine;
  out["threads"] = o.threads;
  out["repeats"] = o.repeats;
  out["commit"] = o.commit;
  out["rows"] = nlohmann::json::array();

  std::printf("%-10s %-8s %-14s %10s %10s %10s %14s %9s\n", "n", "density", "op", "median_ms",
              "min_ms", "max_ms", "Melem/s/core", "GB/s");
  bool all_valid = true;
  for (const int lg : o.log2_sizes) {
    const int64_t n = int64_t{1} << lg;
    const auto x = normal_data(n, 1, 1e-3, o.threads);
    const auto residual0 = normal_data(n, 2, 1e-3, o.threads);
    std::vector<float> residual(residual0.size());
    std::vector<uint32_t> scratch(static_cast<size_t>(n));

    // cores: the threads the op used (nth_element is single-threaded whatever --threads says).
    auto row = [&](double density, const char* op, const Timing& t, double bytes, bool valid,
                   int cores) {
      const double rate = static_cast<double>(n) / t.median / cores;
      std::printf("2^%-8d %-8g %-14s %10.3f %10.3f %10.3f %14.1f %9.2f%s\n", lg, density, op,
                  t.median * 1e3, t.min * 1e3, t.max * 1e3, rate * 1e-6, bytes / t.median * 1e-9,
                  valid ? "" : "  INVALID");
      out["rows"].push_back({{"n", n},
                             {"density", density},
                             {"op", op},
                             {"median_s", t.median},
                             {"min_s", t.min},
                             {"max_s", t.max},
                             {"elements_per_s_per_core", rate},
                             {"gb_per_s", bytes / t.median * 1e-9},
                             {"valid", valid},
                             {"cores", cores}});
      all_valid = all_valid && valid;
    };

    // Plain read: 4n bytes.
    {
      double s = 0.0;
      const Timing t = time_it(
          o.repeats, [] {}, [&] { s = read_sum(x, o.threads); });
      double ref = 0.0;
      for (const float v : x) ref += v;
      row(0.0, "read-sum", t, 4.0 * n, std::abs(s - ref) <= 1e-3 * (1.0 + std::abs(ref)),
          o.threads);
    }
    for (const double d : o.densities) {
      const auto k = static_cast<int64_t>(std::llround(d * static_cast<double>(n)));
      // Validate first: the radix select against nth_element, with the benchmark's threads.
      std::vector<uint32_t> ref, got;
      const Timing t_nth = time_it(
          std::max(1, o.repeats / 2), [] {}, [&] { ref = nth_element_topk(x, k, scratch); });
      const Timing t_topk = time_it(
          o.repeats, [] {}, [&] { got = fk::topk_indices(x, k, o.threads); });
      row(d, "topk-exact", t_topk, 8.0 * n, got == ref, o.threads);

      fk::SampledTopkStats st;
      const Timing t_s = time_it(
          o.repeats, [] {},
          [&] {
            fedsilo::Philox rng(7, 1, 0, fedsilo::RngPurpose::kCompression);
            got = fk::topk_sampled_indices(x, k, rng, o.threads, &st);
          });
      bool sampled_ok = std::abs(static_cast<int64_t>(got.size()) - k) <= fk::sampled_topk_slack(k);
      {
        // Every selected |x| >= every unselected |x|: the k-th largest bound from ref.
        uint32_t min_sel = ~0u;
        for (const uint32_t i : got) min_sel = std::min(min_sel, fk::magnitude_key(x[i]));
        std::vector<char> chosen(static_cast<size_t>(n), 0);
        for (const uint32_t i : got) chosen[i] = 1;
        for (int64_t i = 0; i < n && sampled_ok; ++i) {
          sampled_ok = chosen[static_cast<size_t>(i)] || fk::magnitude_key(x[i]) <= min_sel;
        }
      }
      row(d, "topk-sampled", t_s, 8.0 * n, sampled_ok, o.threads);

      // Fused EF step: 12n bytes (update, residual in; acc out) + 4n (candidate pass).
      fk::ErrorFeedbackParams p;
      p.k = k;
      p.value_type = fk::ValueType::kFp16;
      p.threads = o.threads;
      fk::SparseVector sent;
      const Timing t_ef = time_it(
          o.repeats, [&] { std::copy(residual0.begin(), residual0.end(), residual.begin()); },
          [&] { sent = fk::error_feedback_step(x, residual, {}, p); });
      bool ef_ok = sent.nnz() == k;
      {
        std::vector<float> acc(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) acc[i] = x[i] + residual0[i];
        ef_ok = ef_ok && sent.indices == nth_element_topk(acc, k, scratch);
        std::vector<float> dense(static_cast<size_t>(n), 0.0f);
        for (int64_t j = 0; j < sent.nnz(); ++j) dense[sent.indices[j]] = sent.values[j];
        for (int64_t i = 0; i < n && ef_ok; ++i) ef_ok = dense[i] + residual[i] == acc[i];
      }
      row(d, "ef-topk-fp16", t_ef, 16.0 * n, ef_ok, o.threads);
      row(d, "nth_element", t_nth, 4.0 * n, true, 1);
    }
  }
  std::ofstream(o.json_path) << out.dump(2) << "\n";
  std::printf("\nJSON: %s%s\n", o.json_path.c_str(), all_valid ? "" : " (SOME RESULTS INVALID)");
  return all_valid ? 0 : 1;
}
