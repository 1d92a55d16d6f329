// Local-training throughput of the CPU and CUDA backends: samples/s of train_local (shuffle,
// gather, forward, backward, SGD with momentum) for the NIID-Bench CNN and the 784-200-200-10
// MLP on Fashion-MNIST. A program, not a timed test: it validates the gradients first, warms up,
// times `repeats` epochs over the same `batches x batch` samples (or the first --samples ones,
// so that several batch sizes see the same data; the last batch may then be smaller), reports
// median and spread, and writes JSON beside the table. See benchmarks/RESULTS.md, sections
// "Local training (CPU)" and the GPU table.
//
// Usage: local_train [--data DIR | --synthetic] [--device cpu|cuda] [--threads 2] [--batch 64]
//                    [--batches 200 | --samples N] [--repeats 7] [--models niid-cnn,mlp]
//                    [--json FILE] [--commit SHA] [--profile] [--arrangements] [--dp | --dp-discrete]
// --device cuda times model::GpuTrainer (data uploaded once, each step a replayed CUDA graph;
// the clock covers the whole train_local call: parameter copies in and out, the per-epoch
// shuffle upload and read-back) after checking one GPU step against the CPU step.
// --profile adds per-layer times; --arrangements also times the step loop (forward_backward +
// SGD) with the batch split across fedsilo threads (single-threaded OpenBLAS) against one
// fedsilo thread driving a multi-threaded OpenBLAS (both CPU only).
// --dp (CPU) also times DP-SGD (privacy.level = "sample": Poisson batches of expected size
// --batch, per-example clipping to norm 1, Gaussian noise of multiplier 1 from the AES-CTR
// streams and the Ziggurat), repeat by repeat interleaved with the plain epochs; samples/s
// counts the Poisson batches' samples. --dp-discrete: the same with the hardened sampler (an
// exact discrete Gaussian on a grid) instead of the Ziggurat.
// The commit comes from --commit, else $FEDSILO_COMMIT, else "unknown".
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "benchmarks/common/machine.h"
#include "core/philox.h"
#include "data/dataset.h"
#include "kernels/cpu/cpu_level.h"
#include "kernels/cpu/gemm.h"
#include "model/gpu_trainer.h"
#include "model/model.h"
#include "model/trainer.h"
#include "optim/sgd.h"
#include "privacy/dp_random.h"

namespace {

using fedsilo::model::Model;
using fedsilo::model::ModelSpec;

struct Options {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  bool synthetic = false;
  int threads = 2;
  int batch = 64;
  int batches = 200;
  int64_t samples = 0;  // 0: batch * batches
  int repeats = 7;
  std::string device = "cpu";
  std::vector<std::string> models{"niid-cnn", "mlp"};
  std::string json_path = "local_train.json";
  std::string commit;
  bool profile = false;
  bool arrangements = false;
  bool dp = false;  // also DP-SGD (clip 1, noise multiplier 1), interleaved with the plain runs
  bool dp_discrete = false;  // --dp-discrete: the hardened sampler
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string& dst) {
      if (i + 1 >= argc) return false;
      dst = argv[++i];
      return true;
    };
    std::string v;
    if (a == "--synthetic") {
      o.synthetic = true;
    } else if (a == "--profile") {
      o.profile = true;
    } else if (a == "--arrangements") {
      o.arrangements = true;
    } else if (a == "--dp") {
      o.dp = true;
    } else if (a == "--dp-discrete") {
      o.dp = true;
      o.dp_discrete = true;
    } else if (a == "--data" && value(v)) {
      o.data_dir = v;
    } else if (a == "--threads" && value(v)) {
      o.threads = std::atoi(v.c_str());
    } else if (a == "--batch" && value(v)) {
      o.batch = std::atoi(v.c_str());
    } else if (a == "--batches" && value(v)) {
      o.batches = std::atoi(v.c_str());
    } else if (a == "--samples" && value(v)) {
      o.samples = std::atoll(v.c_str());
    } else if (a == "--device" && value(v)) {
      o.device = v;
    } else if (a == "--repeats" && value(v)) {
      o.repeats = std::atoi(v.c_str());
    } else if (a == "--models" && value(v)) {
      o.models = split_commas(v);
    } else if (a == "--json" && value(v)) {
      o.json_path = v;
    } else if (a == "--commit" && value(v)) {
      o.commit = v;
    } else {
      std::fprintf(stderr, "local_train: unknown or incomplete argument '%s'\n", a.c_str());
      return false;
    }
  }
  if (o.threads < 1 || o.batch < 1 || o.batches < 1 || o.repeats < 1 || o.samples < 0) {
    std::fprintf(stderr,
                 "local_train: --threads, --batch, --batches, --repeats must be >= 1, "
                 "--samples >= 0\n");
    return false;
  }
  if (o.device != "cpu" && o.device != "cuda") {
    std::fprintf(stderr, "local_train: --device must be cpu or cuda, got '%s'\n", o.device.c_str());
    return false;
  }
  if (o.samples > 0) o.batches = static_cast<int>((o.samples + o.batch - 1) / o.batch);
  o.commit = fedsilo::bench::commit_or_env(o.commit);
  return true;
}

// Uniform pixels with random labels: same shapes and work as Fashion-MNIST.
fedsilo::data::Dataset synthetic_data(int64_t n) {
  fedsilo::data::Dataset ds;
  ds.chw = {1, 28, 28};
  ds.num_classes = 10;
  ds.name = "synthetic";
  fedsilo::Philox rng(1, 0, 0, fedsilo::RngPurpose::kNoise);
  ds.x.resize(static_cast<size_t>(n * 784));
  for (auto& v : ds.x) v = static_cast<float>(rng.uniform());
  for (int64_t i = 0; i < n; ++i) ds.y.push_back(static_cast<int32_t>(rng.below(10)));
  return ds;
}

fedsilo::data::Dataset head(const fedsilo::data::Dataset& ds, int64_t n) {
  fedsilo::data::Dataset out;
  out.chw = ds.chw;
  out.num_classes = ds.num_classes;
  out.name = ds.name;
  out.x.assign(ds.x.begin(), ds.x.begin() + n * ds.sample_size());
  out.y.assign(ds.y.begin(), ds.y.begin() + n);
  return out;
}

// Validation before timing: the float model (with the benchmark's thread count) against the
// double reference path on one batch of real data.
bool validate(const Model& m, const fedsilo::data::Dataset& ds, int threads, double& rel_err) {
  const int b = 16;
  std::vector<float> p(static_cast<size_t>(m.num_params())), g(p.size());
  m.init_params(p, 1);
  auto ws = m.make_workspace(b, threads);
  const float loss = m.forward_backward(p, ds.x.data(), ds.y.data(), b, g, *ws);
  const std::vector<double> pd(p.begin(), p.end());
  const std::vector<double> xd(ds.x.begin(), ds.x.begin() + b * ds.sample_size());
  std::vector<double> gd(pd.size());
  const double ld = m.forward_backward_reference(pd, xd.data(), ds.y.data(), b, gd);
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < g.size(); ++i) {
    num += (g[i] - gd[i]) * (g[i] - gd[i]);
    den += gd[i] * gd[i];
  }
  rel_err = std::sqrt(num / den);
  return std::isfinite(loss) && std::abs(loss - ld) < 1e-4 * ld && rel_err < 1e-4;
}

// One timed pass of `batches` plain steps (forward_backward + SGD, data in order): samples/s.
double step_loop_rate(const Model& m, const fedsilo::data::Dataset& ds,
                      const std::vector<float>& init, const Options& o,
                      fedsilo::model::Workspace& ws) {
  std::vector<float> p = init, g(init.size());
  fedsilo::optim::Sgd sgd(m.num_params(), {0.01f, 0.9f, 0.0f, 0.0f});
  const auto t0 = std::chrono::steady_clock::now();
  for (int b = 0; b < o.batches; ++b) {
    const int64_t first = int64_t{b} * o.batch;
    m.forward_backward(p, ds.sample(first), ds.y.data() + first, o.batch, g, ws);
    (void)sgd.step(p, g, init, &ws.team());
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(o.batches) * o.batch / sec;
}

// Validation of the GPU backend before timing it: one train_local step (the first batch) on the
// GPU against the same step on the CPU; relative error of the parameters and of the step.
bool validate_gpu(const Model& m, const fedsilo::data::Dataset& ds, int batch,
                  fedsilo::model::GpuTrainer& gpu, double& rel_err) {
  const fedsilo::data::Dataset one = head(ds, std::min<int64_t>(batch, ds.size()));
  std::vector<float> init(static_cast<size_t>(m.num_params()));
  m.init_params(init, 1);
  fedsilo::model::LocalTrainOptions lo;
  lo.batch_size = batch;
  lo.lr = 0.01f;
  lo.momentum = 0.9f;
  lo.threads = 1;
  std::vector<float> cpu = init;
  if (!fedsilo::model::train_local(m, cpu, init, one, lo).ok()) return false;
  auto one_id = gpu.add_dataset(one);
  if (!one_id.ok()) return false;
  std::vector<float> g = init;
  auto r = gpu.train_local(g, init, one_id.value(), lo);
  if (!r.ok()) {
    std::fprintf(stderr, "local_train: GPU step: %s\n", r.status().to_string().c_str());
    return false;
  }
  double num = 0.0, den = 0.0, step_num = 0.0, step_den = 0.0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double d = static_cast<double>(g[i]) - cpu[i];
    num += d * d;
    den += static_cast<double>(cpu[i]) * cpu[i];
    const double sc = static_cast<double>(cpu[i]) - init[i];
    step_num += d * d;
    step_den += sc * sc;
  }
  rel_err = std::sqrt(num / den);
  const double step_err = std::sqrt(step_num / step_den);
  return std::isfinite(rel_err) && rel_err <= 1e-5 && step_err <= 1e-3;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  fedsilo::kernels::match_blas_core_to_cpu_level(argv);  // as the fedsilo command does
  Options o;
  if (!parse(argc, argv, o)) return 2;
  const int64_t n = o.samples > 0 ? o.samples : int64_t{o.batch} * o.batches;
  const bool cuda = o.device == "cuda";
  std::string gpu_label;
  if (cuda) {
    auto d = fedsilo::model::choose_device("cuda", 0);
    if (!d.ok()) {
      std::fprintf(stderr, "local_train: --device cuda: %s\n", d.status().message().c_str());
      return 1;
    }
    gpu_label = d->label;
  }

  fedsilo::data::Dataset all;
  if (o.synthetic) {
    all = synthetic_data(n);
  } else {
    auto r = fedsilo::data::read_idx_pair(o.data_dir + "/train-images-idx3-ubyte.gz",
                                          o.data_dir + "/train-labels-idx1-ubyte.gz");
    if (!r.ok()) {
      std::fprintf(stderr, "local_train: %s (pass --synthetic to run without the data)\n",
                   r.status().to_string().c_str());
      return 1;
    }
    all = std::move(r).value();
  }
  if (all.size() < n) {
    std::fprintf(stderr, "local_train: need %lld samples, the data has %lld\n",
                 static_cast<long long>(n), static_cast<long long>(all.size()));
    return 1;
  }
  const fedsilo::data::Dataset ds = head(all, n);
  const std::string machine = fedsilo::bench::cpu_model_name();
  const std::string cpu_error = fedsilo::kernels::cpu_level_error();
  if (!cpu_error.empty()) {
    std::fprintf(stderr, "local_train: %s\n", cpu_error.c_str());
    return 2;
  }
  const fedsilo::kernels::CpuLevel level = fedsilo::kernels::cpu_level();
  const bool forced = level != fedsilo::kernels::detected_cpu_level();
  std::printf("local_train: machine %s, OpenBLAS core %s, device %s, CPU kernels %s%s\n",
              machine.c_str(), fedsilo::kernels::blas_core_description().c_str(), cuda ? gpu_label.c_str() : "cpu",
              fedsilo::kernels::cpu_level_name(level),
              forced ? " (forced by FEDSILO_CPU; the CPU has more)" : "");
  std::printf(
      "  threads %d, batch %d, %d batches (%lld samples) per repeat, %d repeats, data %s, "
      "commit %s\n",
      o.threads, o.batch, o.batches, static_cast<long long>(n), o.repeats,
      o.synthetic ? "synthetic" : (o.data_dir + " (train, first samples)").c_str(),
      o.commit.c_str());
  std::printf(
      "  SGD lr 0.01 momentum 0.9; one train_local epoch per repeat (shuffle, gather, "
      "forward, backward, update)\n\n");

  nlohmann::json out;
  out["benchmark"] = "local_train";
  out["machine"] = machine;
  out["openblas_core"] = fedsilo::kernels::blas_core_name();
  out["openblas_core_detected"] = std::getenv("FEDSILO_BLAS_DETECTED") != nullptr
                                      ? std::getenv("FEDSILO_BLAS_DETECTED")
                                      : fedsilo::kernels::blas_core_name();
  out["cpu_level"] = fedsilo::kernels::cpu_level_name(level);
  out["cpu_level_detected"] = fedsilo::kernels::cpu_level_name(fedsilo::kernels::detected_cpu_level());
  out["device"] = cuda ? gpu_label : "cpu";
  out["threads"] = cuda ? 0 : o.threads;
  out["samples"] = n;
  out["batch"] = o.batch;
  out["batches"] = o.batches;
  out["repeats"] = o.repeats;
  out["data"] = o.synthetic ? "synthetic" : o.data_dir;
  out["commit"] = o.commit;
  out["results"] = nlohmann::json::array();

  std::printf("%-10s %10s %14s %14s %14s %12s %10s\n", "model", "params", "samples/s med", "min",
              "max", "ms/batch", "loss");
  for (const std::string& arch : o.models) {
    ModelSpec spec{arch, arch == "mlp" ? std::vector<int>{200, 200} : std::vector<int>{}, ds.chw,
                   ds.num_classes};
    auto built = Model::build(spec);
    if (!built.ok()) {
      std::fprintf(stderr, "local_train: %s\n", built.status().to_string().c_str());
      return 1;
    }
    const Model& m = built.value();
    double rel_err = 0.0;
    if (!validate(m, ds, o.threads, rel_err)) {
      std::fprintf(stderr, "local_train: %s: gradients differ from the double reference (%g)\n",
                   arch.c_str(), rel_err);
      return 1;
    }
    std::unique_ptr<fedsilo::model::GpuTrainer> gpu;
    int gpu_data = -1;
    double gpu_rel_err = 0.0;
    if (cuda) {
      // Created once, as a run does: the data goes to the device here, outside the clock.
      auto t = fedsilo::model::GpuTrainer::create(m, 0, o.batch);
      auto id = t.ok() ? t.value()->add_dataset(ds) : fedsilo::Result<int>(t.status());
      if (!id.ok()) {
        std::fprintf(stderr, "local_train: %s\n", id.status().to_string().c_str());
        return 1;
      }
      gpu = std::move(t).value();
      gpu_data = id.value();
      if (!validate_gpu(m, ds, o.batch, *gpu, gpu_rel_err)) {
        std::fprintf(stderr, "local_train: %s: the GPU step differs from the CPU step (%g)\n",
                     arch.c_str(), gpu_rel_err);
        return 1;
      }
    }
    std::vector<float> init(static_cast<size_t>(m.num_params())), p(init.size());
    m.init_params(init, 1);
    fedsilo::model::LocalTrainOptions lo;
    lo.batch_size = o.batch;
    lo.lr = 0.01f;
    lo.momentum = 0.9f;
    lo.threads = o.threads;
    auto train = [&]() {
      return cuda ? gpu->train_local(p, init, gpu_data, lo)
                  : fedsilo::model::train_local(m, p, init, ds, lo);
    };
    // Warm-up: one epoch (page faults, thread start, caches, frequency; on the GPU the step's
    // first direct launch and its graph capture).
    p = init;
    if (auto r = train(); !r.ok()) {
      std::fprintf(stderr, "local_train: %s\n", r.status().to_string().c_str());
      return 1;
    }
    std::vector<double> rates, dp_rates;
    double last_loss = 0.0, dp_last_loss = 0.0;
    // DP-SGD's secret stream: a fixed test key (the same AES-CTR work as a key from the OS).
    auto dp_key = fedsilo::privacy::insecure_test_key(1, 0);
    if (!dp_key.ok()) return 1;
    auto train_dp = [&](uint32_t round) -> fedsilo::Result<fedsilo::model::LocalTrainStats> {
      FEDSILO_ASSIGN_OR_RETURN(auto random, fedsilo::privacy::RoundRandom::create(dp_key.value(), round));
      fedsilo::model::LocalTrainOptions dp = lo;
      dp.dp_random = &random;
      dp.dp_clip = 1.0;
      dp.dp_noise_multiplier = 1.0;
      dp.dp_discrete = o.dp_discrete;
      return fedsilo::model::train_local(m, p, init, ds, dp);
    };
    const bool with_dp = o.dp && !cuda;
    if (with_dp) {
      p = init;
      if (auto r = train_dp(0); !r.ok()) {  // warm-up
        std::fprintf(stderr, "local_train: %s\n", r.status().to_string().c_str());
        return 1;
      }
    }
    for (int r = 0; r < o.repeats; ++r) {
      p = init;
      lo.round = static_cast<uint32_t>(r + 1);
      auto res = train();
      if (!res.ok()) {
        std::fprintf(stderr, "local_train: %s\n", res.status().to_string().c_str());
        return 1;
      }
      rates.push_back(static_cast<double>(res->samples_processed) / res->seconds);
      last_loss = res->mean_loss;
      if (with_dp) {
        p = init;
        auto d = train_dp(static_cast<uint32_t>(r + 1));
        if (!d.ok()) {
          std::fprintf(stderr, "local_train: DP-SGD: %s\n", d.status().to_string().c_str());
          return 1;
        }
        dp_rates.push_back(static_cast<double>(d->samples_processed) / d->seconds);
        dp_last_loss = d->mean_loss;
      }
    }
    const double med = median(rates);
    const auto [lo_it, hi_it] = std::minmax_element(rates.begin(), rates.end());
    std::printf("%-10s %10lld %14.0f %14.0f %14.0f %12.3f %10.4f\n", arch.c_str(),
                static_cast<long long>(m.num_params()), med, *lo_it, *hi_it, 1e3 * o.batch / med,
                last_loss);
    nlohmann::json row{{"model", arch},
                       {"params", m.num_params()},
                       {"samples_per_s_median", med},
                       {"samples_per_s_min", *lo_it},
                       {"samples_per_s_max", *hi_it},
                       {"samples_per_s_all", rates},
                       {"mean_loss_last_repeat", last_loss},
                       {"validation_rel_err", rel_err}};
    if (cuda) row["gpu_step_rel_err"] = gpu_rel_err;
    if (with_dp) {
      const double dmed = median(dp_rates);
      const auto [dlo, dhi] = std::minmax_element(dp_rates.begin(), dp_rates.end());
      std::printf("%-10s %10lld %14.0f %14.0f %14.0f %12.3f %10.4f   DP-SGD: %.2fx the plain speed\n",
                  (arch + "+dp").c_str(), static_cast<long long>(m.num_params()), dmed, *dlo, *dhi,
                  1e3 * o.batch / dmed, dp_last_loss, dmed / med);
      row["dp"] = {{"clip", 1.0},
                   {"noise_multiplier", 1.0},
                   {"sampler", o.dp_discrete ? "discrete" : "ziggurat"},
                   {"samples_per_s_median", dmed},
                   {"samples_per_s_min", *dlo},
                   {"samples_per_s_max", *dhi},
                   {"samples_per_s_all", dp_rates},
                   {"ratio_to_plain", dmed / med}};
    }

    if (o.profile && !cuda) {
      // Per-layer times of the thread running the first chunk, over `batches` steps.
      auto ws = m.make_workspace(o.batch, o.threads);
      std::vector<float> g(p.size());
      for (int b = 0; b < 10; ++b) {
        m.forward_backward(p, ds.sample(int64_t{b} * o.batch), ds.y.data() + int64_t{b} * o.batch,
                           o.batch, g, *ws);
      }
      ws->set_profiling(true);
      for (int b = 0; b < o.batches; ++b) {
        m.forward_backward(p, ds.sample(int64_t{b} * o.batch), ds.y.data() + int64_t{b} * o.batch,
                           o.batch, g, *ws);
      }
      nlohmann::json prof = nlohmann::json::array();
      for (const auto& t : ws->profile()) {
        const double f = 1e6 * t.forward_seconds / o.batches,
                     bw = 1e6 * t.backward_seconds / o.batches;
        std::printf("    %-8s forward %8.1f us  backward %8.1f us  (per batch)\n", t.layer.c_str(),
                    f, bw);
        prof.push_back({{"layer", t.layer}, {"forward_us", f}, {"backward_us", bw}});
      }
      row["profile_per_batch"] = prof;
    }
    if (o.arrangements && !cuda) {
      // Interleaved repeat by repeat (A B C A B C ...), so drifts in machine speed hit all three.
      struct Arr {
        const char* name;
        int threads, blas;
      };
      const std::vector<Arr> arrs{
          {"batch split", o.threads, 1}, {"threaded BLAS", 1, o.threads}, {"one thread", 1, 1}};
      std::vector<std::unique_ptr<fedsilo::model::Workspace>> wss;
      for (const Arr& a : arrs) {
        wss.push_back(m.make_workspace(o.batch, a.threads));
        wss.back()->set_blas_threads(a.blas);
      }
      std::vector<std::vector<double>> rates(arrs.size());
      for (int r = 0; r <= o.repeats; ++r) {  // r == 0 warms up
        for (size_t i = 0; i < arrs.size(); ++i) {
          const double rate = step_loop_rate(m, ds, init, o, *wss[i]);
          if (r > 0) rates[i].push_back(rate);
        }
      }
      nlohmann::json arr = nlohmann::json::array();
      for (size_t i = 0; i < arrs.size(); ++i) {
        const double med2 = median(rates[i]);
        std::printf("    step loop, %-13s (%d fedsilo x %d OpenBLAS threads): %8.0f samples/s\n",
                    arrs[i].name, arrs[i].threads, arrs[i].blas, med2);
        arr.push_back({{"arrangement", arrs[i].name},
                       {"fedsilo_threads", arrs[i].threads},
                       {"openblas_threads", arrs[i].blas},
                       {"samples_per_s_median", med2},
                       {"samples_per_s_all", rates[i]}});
      }
      row["arrangements"] = arr;
    }
    out["results"].push_back(row);
  }
  std::ofstream(o.json_path) << out.dump(2) << "\n";
  std::printf("\nwrote %s\n", o.json_path.c_str());
  return 0;
}
