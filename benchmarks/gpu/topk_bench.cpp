// Exact top-k of |x| on the GPU (kernels/cuda/topk.h) for n = 2^24, 2^26, 2^28 fp32 and
// k = density * n: the comparison with torch.topk (benchmarks/gpu/torch_topk.py, same inputs:
// N(0, 1), k = int(density * n)). A program, not a timed test: it checks every size against the
// CPU twin (kernels::topk_indices) first, warms up, times `repeats` calls with CUDA events on one
// stream, and reports the median with min and max, the GB/s of one read of the input at the
// median (4n bytes / time), and a device-to-device copy of the input as the bandwidth floor
// (the torch script's "one read" reference). Writes JSON beside the table.
//
// Usage: gpu_topk_bench [--sizes 24,26,28] [--density 0.01] [--repeats 20] [--warmup 3]
//                       [--json FILE] [--commit SHA] [--no-check]
#include <cuda_runtime.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "benchmarks/common/machine.h"
#include "core/philox.h"
#include "kernels/cpu/topk.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/device_info.h"
#include "kernels/cuda/topk.h"
#include "kernels/cuda/workspace.h"

namespace {

namespace kc = fedsilo::kernels::cuda;

struct Options {
  std::vector<int> log2_sizes{24, 26, 28};
  double density = 0.01;
  int repeats = 20;
  int warmup = 3;
  std::string json_path = "gpu_topk.json";
  std::string commit;
  bool check = true;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--no-check") {
      o.check = false;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "gpu_topk_bench: '%s' needs a value\n", a.c_str());
      return false;
    }
    const std::string v = argv[++i];
    if (a == "--sizes") {
      o.log2_sizes.clear();
      std::stringstream ss(v);
      for (std::string item; std::getline(ss, item, ',');) {
        if (!item.empty()) o.log2_sizes.push_back(std::stoi(item));
      }
    } else if (a == "--density") {
      o.density = std::stod(v);
    } else if (a == "--repeats") {
      o.repeats = std::max(1, std::stoi(v));
    } else if (a == "--warmup") {
      o.warmup = std::max(0, std::stoi(v));
    } else if (a == "--json") {
      o.json_path = v;
    } else if (a == "--commit") {
      o.commit = v;
    } else {
      std::fprintf(stderr, "gpu_topk_bench: unknown option '%s'\n", a.c_str());
      return false;
    }
  }
  for (const int lg : o.log2_sizes) {
    if (lg < 10 || lg > 31) {
      std::fprintf(stderr, "gpu_topk_bench: sizes are log2(n) in [10, 31]\n");
      return false;
    }
  }
  return true;
}

// N(0, 1) from Philox blocks by Box-Muller, two values a block, in parallel (counter-based, so
// the same input for any thread count).
std::vector<float> normal_input(int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  const int64_t pairs = (n + 1) / 2;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < pairs; ++p) {
    const auto b = fedsilo::philox4x32_10(
        {static_cast<uint32_t>(p), static_cast<uint32_t>(p >> 32), 0, 0x70F1u}, {2024, 5});
    const double u1 = (static_cast<double>(b[0]) + 0.5) * 0x1p-32;
    const double u2 = static_cast<double>(b[1]) * 0x1p-32;
    const double r = std::sqrt(-2.0 * std::log(u1));
    x[static_cast<size_t>(2 * p)] = static_cast<float>(r * std::cos(6.283185307179586 * u2));
    if (2 * p + 1 < n) {
      x[static_cast<size_t>(2 * p + 1)] = static_cast<float>(r * std::sin(6.283185307179586 * u2));
    }
  }
  return x;
}

struct Timing {
  double median = 0, min = 0, max = 0;
};

Timing summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  Timing t;
  const size_t m = ms.size();
  t.median = m % 2 == 1 ? ms[m / 2] : 0.5 * (ms[m / 2 - 1] + ms[m / 2]);
  t.min = ms.front();
  t.max = ms.back();
  return t;
}

#define BENCH_CUDA(call)                                                                      \
  do {                                                                                        \
    const cudaError_t e_ = (call);                                                            \
    if (e_ != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "gpu_topk_bench: %s failed: %s\n", #call, cudaGetErrorString(e_)); \
      return 1;                                                                               \
    }                                                                                         \
  } while (0)

#define BENCH_OK(expr)                                                                 \
  do {                                                                                 \
    const fedsilo::Status s_ = (expr);                                                 \
    if (!s_.ok()) {                                                                    \
      std::fprintf(stderr, "gpu_topk_bench: %s: %s\n", #expr, s_.to_string().c_str()); \
      return 1;                                                                        \
    }                                                                                  \
  } while (0)

int run(const Options& o) {
  if (kc::device_count() == 0) {
    std::fprintf(stderr, "gpu_topk_bench: no CUDA device\n");
    return 2;
  }
  BENCH_OK(kc::set_device(0));
  cudaDeviceProp prop{};
  BENCH_CUDA(cudaGetDeviceProperties(&prop, 0));
  auto stream_r = kc::create_stream();
  if (!stream_r.ok()) {
    std::fprintf(stderr, "gpu_topk_bench: %s\n", stream_r.status().to_string().c_str());
    return 1;
  }
  const kc::Stream stream = stream_r.value();
  const auto cs = static_cast<cudaStream_t>(stream.handle);
  cudaEvent_t start, stop;
  BENCH_CUDA(cudaEventCreate(&start));
  BENCH_CUDA(cudaEventCreate(&stop));

  const std::string commit = fedsilo::bench::commit_or_env(o.commit);
  std::printf("gpu_topk_bench on %s (%d SMs), host %s, commit %s\n", prop.name,
              prop.multiProcessorCount, fedsilo::bench::cpu_model_name().c_str(), commit.c_str());
  std::printf("exact top-k of |x|, x ~ N(0,1) fp32, k = %g n, median of %d after %d warm-up\n",
              o.density, o.repeats, o.warmup);
  std::printf("%12s %10s %9s %8s %8s %9s %10s %8s %s\n", "n", "k", "topk ms", "min", "max",
              "read GB/s", "copy GB/s", "read ms", "check");

  nlohmann::json out = {{"benchmark", "gpu_topk"},
                        {"device", prop.name},
                        {"sms", prop.multiProcessorCount},
                        {"host_cpu", fedsilo::bench::cpu_model_name()},
                        {"commit", commit},
                        {"density", o.density},
                        {"repeats", o.repeats},
                        {"warmup", o.warmup},
                        {"results", nlohmann::json::array()}};
  kc::Workspace ws;
  int status = 0;
  for (const int lg : o.log2_sizes) {
    const int64_t n = int64_t{1} << lg;
    const int64_t k =
        std::max<int64_t>(1, static_cast<int64_t>(o.density * static_cast<double>(n)));
    const auto x = normal_input(n);
    auto dx = kc::DeviceArray<float>::from_host(x, stream);
    auto dcopy = kc::DeviceArray<float>::create(static_cast<size_t>(n));
    auto di = kc::DeviceArray<uint32_t>::create(static_cast<size_t>(k));
    auto dv = kc::DeviceArray<float>::create(static_cast<size_t>(k));
    if (!dx.ok() || !dcopy.ok() || !di.ok() || !dv.ok()) {
      std::fprintf(stderr, "gpu_topk_bench: cannot allocate for n = 2^%d\n", lg);
      return 1;
    }
    auto once = [&]() { return kc::topk(dx->data(), n, k, di->data(), dv->data(), ws, stream); };

    // Check against the CPU twin first.
    std::string check = "skipped";
    BENCH_OK(once());
    BENCH_OK(kc::synchronize(stream));
    if (o.check) {
      const auto want = fedsilo::kernels::topk_indices(x, k, 0);
      std::vector<uint32_t> got(static_cast<size_t>(k));
      std::vector<float> got_val(static_cast<size_t>(k));
      BENCH_OK(di->to_host(got, stream));
      BENCH_OK(dv->to_host(got_val, stream));
      bool ok = got == want;
      for (size_t j = 0; ok && j < got.size(); ++j) ok = got_val[j] == x[got[j]];
      check = ok ? "ok" : "MISMATCH";
      if (!ok) status = 3;
    }

    for (int w = 0; w < o.warmup; ++w) BENCH_OK(once());
    std::vector<double> times, copies;
    for (int r = 0; r < o.repeats; ++r) {
      BENCH_CUDA(cudaEventRecord(start, cs));
      BENCH_OK(once());
      BENCH_CUDA(cudaEventRecord(stop, cs));
      BENCH_CUDA(cudaEventSynchronize(stop));
      float ms = 0;
      BENCH_CUDA(cudaEventElapsedTime(&ms, start, stop));
      times.push_back(ms);
    }
    for (int r = 0; r < o.repeats; ++r) {
      BENCH_CUDA(cudaEventRecord(start, cs));
      BENCH_CUDA(cudaMemcpyAsync(dcopy->data(), dx->data(), sizeof(float) * static_cast<size_t>(n),
                                 cudaMemcpyDeviceToDevice, cs));
      BENCH_CUDA(cudaEventRecord(stop, cs));
      BENCH_CUDA(cudaEventSynchronize(stop));
      float ms = 0;
      BENCH_CUDA(cudaEventElapsedTime(&ms, start, stop));
      copies.push_back(ms);
    }
    const Timing t = summarize(times);
    const Timing c = summarize(copies);
    const double bytes = 4.0 * static_cast<double>(n);
    const double read_gbs = bytes / (t.median * 1e-3) / 1e9;
    const double copy_gbs = 2.0 * bytes / (c.median * 1e-3) / 1e9;
    const double one_read_ms = bytes / (copy_gbs * 1e9) * 1e3;
    std::printf("%12lld %10lld %9.4f %8.4f %8.4f %9.0f %10.0f %8.4f %s\n",
                static_cast<long long>(n), static_cast<long long>(k), t.median, t.min, t.max,
                read_gbs, copy_gbs, one_read_ms, check.c_str());
    std::fflush(stdout);
    out["results"].push_back({{"n", n},
                              {"k", k},
                              {"topk_ms_median", t.median},
                              {"topk_ms_min", t.min},
                              {"topk_ms_max", t.max},
                              {"read_GBps_at_median", read_gbs},
                              {"copy_GBps", copy_gbs},
                              {"one_read_ms", one_read_ms},
                              {"check", check}});
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  kc::destroy_stream(stream);
  std::ofstream f(o.json_path);
  f << out.dump(2) << "\n";
  std::printf("wrote %s\n", o.json_path.c_str());
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) return 64;
  return run(o);
}
