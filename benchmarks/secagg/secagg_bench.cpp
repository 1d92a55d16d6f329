// Secure aggregation's compute per silo (benchmarks/RESULTS.md, "Secure aggregation"): the
// AES-128-CTR mask keystream in GB/s on one core beside a plain memory read of the same bytes,
// and one silo's code, code + masks fused (with P - 1 peers) and decode for an update of n floats.
//
//   secagg_bench [--n FLOATS] [--peers P-1] [--repeats R] [--json FILE] [--commit SHA]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../common/machine.h"
#include "secagg/crypto.h"
#include "secagg/masking.h"

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Stat {
  double median, min, max;
};
Stat stat(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}
}  // namespace

int main(int argc, char** argv) {
  using namespace fedsilo;
  int64_t n = int64_t{1} << 24;
  int peers = 7, repeats = 7;
  std::string json_path, commit;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "secagg_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--n") n = std::stoll(next());
    else if (a == "--peers") peers = std::stoi(next());
    else if (a == "--repeats") repeats = std::stoi(next());
    else if (a == "--json") json_path = next();
    else if (a == "--commit") commit = next();
    else {
      std::fprintf(stderr, "secagg_bench: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  const auto N = static_cast<size_t>(n);
  const double bytes = 4.0 * static_cast<double>(n);

  // Keystream and a plain read of the same bytes, one core.
  std::vector<uint8_t> key(16, 7);
  auto ks = secagg::Keystream::create(key);
  if (!ks.ok()) return 1;
  std::vector<uint32_t> buf(N, 1u);
  std::vector<double> t_ks, t_read;
  volatile uint64_t sink = 0;
  for (int r = 0; r < repeats + 1; ++r) {
    auto t0 = Clock::now();
    if (!ks->fill(0, buf).ok()) return 1;
    const double k = since(t0);
    t0 = Clock::now();
    sink = sink + std::accumulate(buf.begin(), buf.end(), uint64_t{0});
    const double rd = since(t0);
    if (r > 0) {
      t_ks.push_back(bytes / k / 1e9);
      t_read.push_back(bytes / rd / 1e9);
    }
  }

  // One silo's round: the fixed-point code alone (rounding words from the AES keystream), the
  // code and `peers` masks fused in one pass (secagg::RoundMasker, as a round runs it), decode.
  std::vector<float> update(N);
  for (size_t i = 0; i < N; ++i) update[i] = static_cast<float>(static_cast<int>(i % 2001) - 1000) * 1e-4f;
  std::vector<uint32_t> codes(N);
  std::vector<float> decoded(N);
  const secagg::FixedPoint fp{1.0, 20};
  std::vector<secagg::MaskPeer> mask_peers;
  for (int p = 1; p <= peers; ++p) {
    auto s = secagg::Secret::allocate();
    if (!s.ok()) return 1;
    std::memset(s->data(), p, secagg::kKeyBytes);
    mask_peers.push_back({p, std::move(s).value()});
  }
  std::vector<double> t_enc, t_mask, t_dec;
  for (int r = 0; r < repeats + 1; ++r) {
    const auto key = secagg::rounding_key(1, static_cast<uint32_t>(r), 0);
    auto coder = secagg::RoundMasker::create(key, 0, {});
    auto masker = secagg::RoundMasker::create(key, 0, mask_peers);
    if (!coder.ok() || !masker.ok()) return 1;
    auto t0 = Clock::now();
    if (!coder->code_and_mask(update, fp, 0, codes).ok()) return 1;
    const double e = since(t0);
    t0 = Clock::now();
    if (!masker->code_and_mask(update, fp, 0, codes).ok()) return 1;
    const double m = since(t0);
    t0 = Clock::now();
    secagg::decode(codes, fp, decoded);
    const double d = since(t0);
    if (r > 0) {
      t_enc.push_back(e);
      t_mask.push_back(m);
      t_dec.push_back(d);
    }
  }
  const Stat ks_s = stat(t_ks), rd_s = stat(t_read), enc = stat(t_enc), mask = stat(t_mask), dec = stat(t_dec);
  std::printf("secagg_bench: %s, n = %lld floats (%.0f MiB), %d peers, %d repeats, one core\n",
              bench::cpu_model_name().c_str(), static_cast<long long>(n), bytes / 1048576.0, peers, repeats);
  std::printf("  AES-128-CTR keystream   %6.2f GB/s  [%.2f, %.2f]\n", ks_s.median, ks_s.min, ks_s.max);
  std::printf("  plain read (sum)        %6.2f GB/s  [%.2f, %.2f]\n", rd_s.median, rd_s.min, rd_s.max);
  std::printf("  code (AES rounding)     %8.1f ms  [%.1f, %.1f]\n", 1e3 * enc.median, 1e3 * enc.min, 1e3 * enc.max);
  std::printf("  code + masks (%d peers)  %8.1f ms  [%.1f, %.1f]  = %.2f GB/s of keystream\n", peers,
              1e3 * mask.median, 1e3 * mask.min, 1e3 * mask.max, (peers + 1) * bytes / mask.median / 1e9);
  std::printf("  decode                  %8.1f ms  [%.1f, %.1f]\n", 1e3 * dec.median, 1e3 * dec.min, 1e3 * dec.max);
  if (!json_path.empty()) {
    nlohmann::json j = {{"benchmark", "secagg_bench"}, {"machine", bench::cpu_model_name()},
                        {"commit", bench::commit_or_env(commit)}, {"n", n}, {"peers", peers},
                        {"repeats", repeats},
                        {"keystream_GBps", {{"median", ks_s.median}, {"min", ks_s.min}, {"max", ks_s.max}}},
                        {"read_GBps", {{"median", rd_s.median}, {"min", rd_s.min}, {"max", rd_s.max}}},
                        {"code_ms", 1e3 * enc.median}, {"code_and_masks_ms", 1e3 * mask.median},
                        {"decode_ms", 1e3 * dec.median},
                        {"keystream_bytes_per_round", peers * bytes}};
    std::ofstream(json_path) << j.dump(2) << "\n";
  }
  return sink == 42 ? 3 : 0;
}
