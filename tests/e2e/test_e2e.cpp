// End-to-end tests of the fedsilo command: a real Fashion-MNIST subset partitioned into silos,
// federations under mpirun, resume and determinism, and bad inputs (non-zero exit on every rank,
// one clear message, no model written).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "checkpoint/model_file.h"
#include "config/config.h"
#include "core/h5.h"
#include "data/dataset.h"
#include "kernels/cpu/cpu_level.h"
#include "kernels/cpu/gemm.h"
#include "model/model.h"
#include "model/trainer.h"
#include "secagg/crypto.h"

namespace {
namespace stdfs = std::filesystem;
using nlohmann::json;

const std::string kTmp = FEDSILO_TEST_TMPDIR;
const std::string kBin = FEDSILO_BIN;
const std::string kMpi = FEDSILO_MPIEXEC_CMD;

struct RunResult {
  int code = -1;
  std::string output;
  double seconds = 0.0;
  std::vector<int> rank_codes;  // each rank's own exit code (train runs only)
};

RunResult run(const std::string& cmd) {
  RunResult r;
  const auto t0 = std::chrono::steady_clock::now();
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// mpirun -np N fedsilo train CONFIG FLAGS. Each rank records its own exit code in rcdir/rc.RANK
// and the wrapper exits 0 (else mpirun kills the other ranks before they record theirs);
// `code` is then the first non-zero rank code, as a plain mpirun would report.
RunResult train(int np, const std::string& config, const std::string& flags = "",
                const std::string& env = "") {
  const std::string rcdir = kTmp + "/rc";
  stdfs::remove_all(rcdir);
  stdfs::create_directories(rcdir);
  const std::string inner = env + (env.empty() ? "" : " ") + kBin + " train " + config + " -q " +
                            flags + "; echo $? > " + rcdir +
                            "/rc.$OMPI_COMM_WORLD_RANK";
  RunResult r = run("timeout 300 " + kMpi + " -np " + std::to_string(np) + " sh -c '" + inner + "'");
  for (int i = 0; i < np; ++i) {
    std::ifstream in(rcdir + "/rc." + std::to_string(i));
    int c = -1;
    in >> c;
    r.rank_codes.push_back(c);
  }
  r.code = r.code != 0 ? r.code : 0;
  for (int c : r.rank_codes) {
    if (c != 0 && r.code == 0) r.code = c;
  }
  return r;
}

std::string write_file(const std::string& path, const std::string& text) {
  stdfs::create_directories(stdfs::path(path).parent_path());
  std::ofstream(path) << text;
  return path;
}

std::string config_text(const std::string& name, const std::string& silos, int rounds,
                        const std::string& extra_local = "", const std::string& arch = "mlp") {
  std::ostringstream os;
  os << "[run]\nname = \"" << name << "\"\nseed = 1\nrounds = " << rounds << "\nout_dir = \""
     << kTmp << "/runs/" << name << "\"\ncheckpoint_every = 1\n"
     << "[data]\nsilos_dir = \"" << silos << "\"\n"
     << "[model]\narch = \"" << arch << "\"\n" << (arch == "mlp" ? "hidden = [64]\n" : "")
     << "[local]\nepochs = 2\nbatch_size = 32\nlr = 0.05\nmomentum = 0.9\nweight_decay = 1e-5\nthreads = 1\n"
     << extra_local << "[strategy]\nname = \"fedavg\"\nfraction = 1.0\n";
  return os.str();
}

class E2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    stdfs::create_directories(kTmp);
    for (int silos : {2, 4}) {
      const std::string dir = silos_dir(silos);
      if (stdfs::exists(dir + "/partition.json")) continue;
      auto r = run(kBin + " partition --dataset fashion-mnist --silos " + std::to_string(silos) +
                   " --scheme dirichlet:0.5 --seed 1 --max-train 4000 --max-test 1000 -q --out " + dir);
      ASSERT_EQ(r.code, 0) << r.output;
    }
  }
  // Every config.toml a run of this test wrote parses back as a valid config (it holds what
  // took effect).
  void SetUp() override { started_ = stdfs::file_time_type::clock::now() - std::chrono::seconds(1); }
  void TearDown() override {
    std::error_code ec;
    for (const auto& e : stdfs::recursive_directory_iterator(kTmp + "/runs", ec)) {
      if (e.path().filename() != "config.toml" || stdfs::last_write_time(e.path(), ec) < started_) continue;
      auto c = fedsilo::config::load_config(e.path().string());
      EXPECT_TRUE(c.ok()) << e.path() << ": " << c.status().message();
    }
  }
  stdfs::file_time_type started_;
  static std::string silos_dir(int silos) { return kTmp + "/fmnist-" + std::to_string(silos); }
  static RunResult signal_mpirun(const std::string& name, const std::string& signal);
  static std::string run_dir(const std::string& name) { return kTmp + "/runs/" + name; }

  // A fresh copy of the 4-silo partition to damage.
  static std::string copy_silos(const std::string& name) {
    const std::string dst = kTmp + "/bad-" + name;
    stdfs::remove_all(dst);
    stdfs::copy(silos_dir(4), dst, stdfs::copy_options::recursive);
    return dst;
  }

  // Every rank failed with the README's exit code `code`, one message naming `needle`, within
  // seconds, and no model.h5.
  static void expect_clean_failure(const RunResult& r, const std::string& needle,
                                   const std::string& run, int code) {
    EXPECT_EQ(r.code, code) << r.output;
    for (size_t i = 0; i < r.rank_codes.size(); ++i) {
      EXPECT_EQ(r.rank_codes[i], code) << "rank " << i << "\n" << r.output;
      EXPECT_NE(r.rank_codes[i], 0) << "rank " << i << " exited 0\n" << r.output;
      EXPECT_NE(r.rank_codes[i], -1) << "rank " << i << " left no exit code\n" << r.output;
    }
    EXPECT_NE(r.output.find(needle), std::string::npos) << "expected '" << needle << "' in:\n" << r.output;
    const std::regex err("fedsilo train: error:");
    const auto count = std::distance(std::sregex_iterator(r.output.begin(), r.output.end(), err),
                                     std::sregex_iterator());
    EXPECT_EQ(count, 1) << r.output;
    EXPECT_LT(r.seconds, 60.0);
    EXPECT_FALSE(stdfs::exists(run_dir(run) + "/model.h5"));
  }
};

std::vector<float> params_of(const std::string& path) {
  auto m = fedsilo::checkpoint::read_model_file(path);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? m->params : std::vector<float>{};
}

std::vector<json> metrics_without_timings(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto j = json::parse(line);
    j.erase("seconds");
    out.push_back(j);
  }
  return out;
}

TEST_F(E2E, FourSilosTwoRoundsReachSixtyPercent) {
  const auto cfg = write_file(kTmp + "/cfg/acc.toml", config_text("acc", silos_dir(4), 2));
  auto r = train(4, cfg, "--overwrite");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto m = metrics_without_timings(run_dir("acc") + "/metrics.jsonl");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_GE(m.back()["accuracy"].get<double>(), 0.60);
  EXPECT_EQ(m.back()["silos"].size(), 4u);
  EXPECT_GT(m.back()["bytes_sent"].get<int64_t>(), 0);
  for (const auto& s : m.back()["silos"]) {
    EXPECT_TRUE(s.contains("train_loss"));
    EXPECT_TRUE(s.contains("test_accuracy"));
  }
  // eval on the global test split agrees with the last round's accuracy.
  auto e = run(kBin + " eval " + run_dir("acc") + "/model.h5 --data " + silos_dir(4) + "/test.h5");
  ASSERT_EQ(e.code, 0) << e.output;
  char want[64];
  std::snprintf(want, sizeof want, "accuracy  %.4f", m.back()["accuracy"].get<double>());
  EXPECT_NE(e.output.find(want), std::string::npos) << e.output;
  auto i = run(kBin + " inspect " + run_dir("acc") + "/model.h5");
  ASSERT_EQ(i.code, 0) << i.output;
  EXPECT_NE(i.output.find("fc1.weight"), std::string::npos) << i.output;
}

TEST_F(E2E, OpenBlasRunsAtTheLevelOfTheKernels) {
  // fedsilo re-runs itself with OPENBLAS_CORETYPE matching its kernel level when OpenBLAS picked
  // a family of another level (0.3.21 picks SSE3 Prescott on Sapphire Rapids); a user's
  // OPENBLAS_CORETYPE wins. Metrics record the family in use.
  using namespace fedsilo::kernels;
  if (detected_cpu_level() < CpuLevel::kAvx2) GTEST_SKIP() << "this CPU has no AVX2";
  const char* natural = std::getenv("OPENBLAS_CORETYPE") == nullptr ? blas_core_name() : nullptr;
  if (natural == nullptr || !blas_core_level(natural)) {
    GTEST_SKIP() << "OpenBLAS's own family here is unknown to fedsilo's table (or forced)";
  }
  const auto cfg = write_file(kTmp + "/cfg/blas.toml", config_text("blas", silos_dir(2), 1));
  const auto blas_of_run = [&](const std::string& env) {
    auto r = train(2, cfg, "--overwrite", "env -u OPENBLAS_CORETYPE -u FEDSILO_BLAS_DETECTED " + env);
    EXPECT_EQ(r.code, 0) << r.output;
    const auto m = metrics_without_timings(run_dir("blas") + "/metrics.jsonl");
    return m.empty() ? std::string() : m.front().value("blas", std::string());
  };
  const std::string avx2 = blas_of_run("FEDSILO_CPU=avx2");
  if (*blas_core_level(natural) == CpuLevel::kAvx2) {
    // OpenBLAS's own family is already an AVX2 one (Haswell; Zen on AMD): left alone.
    EXPECT_EQ(avx2, natural);
  } else {
    EXPECT_EQ(avx2.rfind("Haswell", 0), 0u) << avx2 << " (OpenBLAS alone picks " << natural << ")";
    EXPECT_NE(avx2.find(std::string("(OpenBLAS detected ") + natural + ")"), std::string::npos) << avx2;
  }
  EXPECT_EQ(blas_of_run("FEDSILO_CPU=avx2 OPENBLAS_CORETYPE=Prescott"), "Prescott");
  EXPECT_EQ(blas_of_run("FEDSILO_CPU=generic"), natural);  // generic leaves OpenBLAS alone
}

TEST_F(E2E, SecureAggregationMatchesThePlainRunAndKeepsSiloFieldsHome) {
  // 4 silos, 2 rounds, 20 bits: the decoded sum is within 4 x 2^-20 of the float sum per
  // coordinate, so the accuracy follows the plain run's; metrics.jsonl and the log carry no
  // silo's sample count, loss or accuracy, which each silo keeps in its private directory.
  const std::string dir = silos_dir(4);
  const std::string secure = "[secure_aggregation]\nenabled = true\nrange = 1.0\nbits = 20\nmax_weight = 4000\n";
  const auto plain = write_file(kTmp + "/cfg/plain.toml", config_text("plainsa", dir, 2));
  const auto sec = write_file(kTmp + "/cfg/secure.toml", config_text("securesa", dir, 2) + secure);
  ASSERT_EQ(train(4, plain, "--overwrite").code, 0);
  auto r = train(4, sec, "--overwrite");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto p = metrics_without_timings(run_dir("plainsa") + "/metrics.jsonl");
  const auto m = metrics_without_timings(run_dir("securesa") + "/metrics.jsonl");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_NEAR(m.back()["accuracy"].get<double>(), p.back()["accuracy"].get<double>(), 0.005);
  EXPECT_EQ(m.back()["reducer"], "secure-dense-flat");
  for (const auto& line : m) {
    for (const auto& silo : line["silos"]) {
      for (const char* key : {"samples", "train_loss", "test_accuracy", "test_loss"}) {
        EXPECT_FALSE(silo.contains(key)) << key << " in " << silo.dump();
      }
    }
  }
  for (int s = 0; s < 4; ++s) {
    const auto own = metrics_without_timings(run_dir("securesa") + "/private/silo-0" + std::to_string(s) + "/metrics.jsonl");
    ASSERT_EQ(own.size(), 2u) << s;
    EXPECT_TRUE(own.back().contains("samples"));
    EXPECT_TRUE(own.back().contains("test_accuracy"));
  }
  // The model after secure rounds stays close to the plain one (the rounding is unbiased).
  const auto a = params_of(run_dir("plainsa") + "/model.h5");
  const auto b = params_of(run_dir("securesa") + "/model.h5");
  ASSERT_EQ(a.size(), b.size());
  double max_diff = 0;
  for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, static_cast<double>(std::abs(a[i] - b[i])));
  EXPECT_LT(max_diff, 1e-3);
  // With the progress lines on, no per-silo accuracy is printed.
  const std::string inner = kBin + " train " + sec + " --overwrite";
  auto loud = run("timeout 120 " + kMpi + " -np 4 " + inner);
  ASSERT_EQ(loud.code, 0) << loud.output;
  EXPECT_EQ(loud.output.find("silo acc"), std::string::npos) << loud.output;
  EXPECT_EQ(loud.output.find("per-silo accuracy"), std::string::npos) << loud.output;
}

TEST_F(E2E, SecureAggregationRefusesWhatItCannotProtect) {
  const std::string dir4 = silos_dir(4), dir2 = silos_dir(2);
  const std::string secure = "[secure_aggregation]\nenabled = true\nmax_weight = 4000\n";
  // Per-silo top-k: each silo's index set differs, so the masks could not cancel.
  auto topk = write_file(kTmp + "/cfg/satopk.toml", config_text("satopk", dir4, 1) + secure +
                                                      "[compression]\nmethod = \"topk\"\ndensity = 0.1\n");
  expect_clean_failure(train(4, topk, "--overwrite"), "compression.method = \"topk\"", "satopk", 2);
  auto r = train(4, topk, "--overwrite");
  EXPECT_NE(r.output.find("secure_aggregation.enabled = true"), std::string::npos) << r.output;
  // The previous aggregate's top-k is secure aggregation's shared set: refused without it.
  auto prev = write_file(kTmp + "/cfg/saprev.toml", config_text("saprev", dir4, 1) +
                                                      "[compression]\nmethod = \"topk-previous\"\ndensity = 0.1\n");
  expect_clean_failure(train(4, prev, "--overwrite"), "needs secure_aggregation.enabled = true", "saprev", 2);
  // Two silos: the sum would reveal the other's update.
  auto two = write_file(kTmp + "/cfg/satwo.toml", config_text("satwo", dir2, 1) + secure);
  expect_clean_failure(train(2, two, "--overwrite"), "at least 3 silos", "satwo", 2);
  // 20 bits and range 1000 do not fit 2^32 for 4 silos: the numbers are in the message.
  auto wide = write_file(kTmp + "/cfg/sawide.toml", config_text("sawide", dir4, 1) +
                                                      "[secure_aggregation]\nenabled = true\nmax_weight = 4000\n"
                                                      "range = 1000.0\nbits = 20\n");
  expect_clean_failure(train(4, wide, "--overwrite"), "do not fit 2^32 for 4 silos", "sawide", 2);
  // Half of 4 silos per round is 2 that train: refused in the first round, on every rank.
  auto half = write_file(kTmp + "/cfg/sahalf.toml",
                         std::regex_replace(config_text("sahalf", dir4, 1), std::regex("fraction = 1.0"),
                                            "fraction = 0.5") + secure);
  expect_clean_failure(train(4, half, "--overwrite"), "round 1 had 2", "sahalf", 2);
}

// Every file under `dir`, whole.
std::vector<std::pair<std::string, std::string>> files_under(const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : stdfs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    out.emplace_back(e.path().string(), std::string(std::istreambuf_iterator<char>(in), {}));
  }
  return out;
}

TEST_F(E2E, SecureSharedIndexRunResumesBitwiseAndKeepsKeyMaterialOut) {
  // Secure aggregation with the top-k 10% of the previous aggregate, summed node by node on 2
  // emulated nodes at level node: 4 rounds straight equal 2 + 2 resumed, bit for bit (each
  // silo's residual and the previous aggregate are restored). The key pairs come from
  // FEDSILO_INSECURE_TEST_KEYS, so this test can recompute every secret scalar and shared secret
  // and look for them (raw and in hex) in every file of both runs and in their output.
  const std::string extra =
      "[secure_aggregation]\nenabled = true\nrange = 1.0\nbits = 20\nmax_weight = 4000\n"
      "[compression]\nmethod = \"topk-previous\"\ndensity = 0.1\nerror_feedback = true\n"
      "level = \"node\"\n[allreduce]\nalgorithm = \"dense-hier\"\n[topology]\nemulated_nodes = 2\n";
  const std::string dir = silos_dir(4);
  const auto full = write_file(kTmp + "/cfg/skfull.toml", config_text("skfull", dir, 4) + extra);
  const auto part2 = write_file(kTmp + "/cfg/skpart2.toml", config_text("skpart", dir, 2) + extra);
  const auto part4 = write_file(kTmp + "/cfg/skpart4.toml", config_text("skpart", dir, 4) + extra);
  const std::string keys = "FEDSILO_INSECURE_TEST_KEYS=e2e-keys";
  std::string output;
  for (const auto& [cfg, flags] : {std::pair{full, "--overwrite"}, std::pair{part2, "--overwrite"},
                                   std::pair{part4, "--resume"}}) {
    auto r = train(4, cfg, flags, keys);
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("FEDSILO_INSECURE_TEST_KEYS is set"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("hides nothing"), std::string::npos) << r.output;
    output += r.output;
  }
  const auto a = params_of(run_dir("skfull") + "/model.h5");
  const auto b = params_of(run_dir("skpart") + "/model.h5");
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  const auto m = metrics_without_timings(run_dir("skfull") + "/metrics.jsonl");
  EXPECT_EQ(m, metrics_without_timings(run_dir("skpart") + "/metrics.jsonl"));
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m.back()["reducer"], "secure-dense-hier");
  EXPECT_GT(m.back()["compression_ratio"].get<double>(), 5.0);
  EXPECT_GT(m.back()["accuracy"].get<double>(), 0.3);
  auto f = fedsilo::h5::File::open_read(run_dir("skpart") + "/private/silo-03/ckpt-000004.h5");
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->has("residual"));
  EXPECT_TRUE(f->has("previous_aggregate"));

  // The key material of the run: each silo's secret scalar and every pair's shared secret.
  std::vector<std::string> secrets;
  std::vector<fedsilo::secagg::KeyPair> pairs;
  for (int s = 0; s < 4; ++s) {
    auto kp = fedsilo::secagg::test_keypair("e2e-keys", s);
    ASSERT_TRUE(kp.ok());
    pairs.push_back(std::move(kp).value());
  }
  for (int s = 0; s < 4; ++s) {
    secrets.emplace_back(reinterpret_cast<const char*>(pairs[s].secret.data()), 32);
    for (int p = s + 1; p < 4; ++p) {
      auto shared = fedsilo::secagg::shared_secret(pairs[s].secret, pairs[p].public_key, "peer");
      ASSERT_TRUE(shared.ok());
      secrets.emplace_back(reinterpret_cast<const char*>(shared->data()), 32);
    }
  }
  ASSERT_EQ(secrets.size(), 10u);
  auto searched = files_under(run_dir("skfull"));
  for (auto& named : files_under(run_dir("skpart"))) searched.push_back(std::move(named));
  searched.emplace_back("the runs' output", output);
  ASSERT_GT(searched.size(), 20u);  // config, metrics, checkpoints, markers, private state
  for (const std::string& key : secrets) {
    const std::string hex = fedsilo::secagg::to_hex(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(key.data()), key.size()));
    // Any 16 bytes of a key, raw or in hex, would be a leak.
    for (const auto& [path, bytes] : searched) {
      EXPECT_EQ(bytes.find(key.substr(0, 16)), std::string::npos) << path;
      EXPECT_EQ(bytes.find(key.substr(16)), std::string::npos) << path;
      EXPECT_EQ(bytes.find(hex.substr(0, 32)), std::string::npos) << path;
      EXPECT_EQ(bytes.find(hex.substr(32)), std::string::npos) << path;
    }
  }
}

// DP-SGD in every silo ([privacy] level = "sample"): 4 rounds straight equal 2 + 2 resumed bit
// for bit (each silo's secret key is read back from its private directory, so the resumed
// rounds draw the same noise), while a fresh start draws a new key and another model; the shared
// metrics carry the largest epsilon over the silos, growing round by round, and no silo's
// sample count, loss or accuracy, which each silo keeps (with its own epsilon) in its private
// directory; the key (0600) appears in no other file and in no output.
TEST_F(E2E, PrivateRunResumesBitwiseKeepsSiloFieldsHomeAndReportsEpsilon) {
  const std::string extra = "[privacy]\nlevel = \"sample\"\nnoise_multiplier = 1.0\nclip = 1.0\n";
  const std::string dir = silos_dir(4);
  const auto full = write_file(kTmp + "/cfg/dpfull.toml", config_text("dpfull", dir, 4) + extra);
  const auto part2 = write_file(kTmp + "/cfg/dppart2.toml", config_text("dppart", dir, 2) + extra);
  const auto part4 = write_file(kTmp + "/cfg/dppart4.toml", config_text("dppart", dir, 4) + extra);
  std::string output;
  for (const auto& [cfg, flags] : {std::pair{full, "--overwrite"}, std::pair{part2, "--overwrite"},
                                   std::pair{part4, "--resume"}}) {
    auto r = train(4, cfg, flags);
    ASSERT_EQ(r.code, 0) << r.output;
    output += r.output;
  }
  // Two fresh private runs draw different keys, so different noise and models.
  const auto a = params_of(run_dir("dpfull") + "/model.h5");
  const auto b = params_of(run_dir("dppart") + "/model.h5");
  ASSERT_EQ(a.size(), b.size());
  EXPECT_NE(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  const auto m = metrics_without_timings(run_dir("dppart") + "/metrics.jsonl");
  ASSERT_EQ(m.size(), 4u);
  double previous = 0.0;
  for (const auto& line : m) {
    ASSERT_TRUE(line.contains("epsilon")) << line.dump();
    EXPECT_GT(line["epsilon"].get<double>(), previous);
    previous = line["epsilon"].get<double>();
    EXPECT_EQ(line["delta"].get<double>(), 1e-5);
    for (const auto& silo : line["silos"]) {
      for (const char* key : {"samples", "train_loss", "test_accuracy", "test_loss"}) {
        EXPECT_FALSE(silo.contains(key)) << key << " in " << silo.dump();
      }
    }
  }
  EXPECT_GT(m.back()["accuracy"].get<double>(), 0.3);
  double largest = 0.0;
  std::vector<std::string> keys;
  for (int s = 0; s < 4; ++s) {
    const std::string priv = run_dir("dppart") + "/private/silo-0" + std::to_string(s);
    const auto own = metrics_without_timings(priv + "/metrics.jsonl");
    ASSERT_EQ(own.size(), 4u) << s;
    EXPECT_TRUE(own.back().contains("samples"));
    EXPECT_TRUE(own.back().contains("test_accuracy"));
    largest = std::max(largest, own.back()["epsilon"].get<double>());
    struct stat st {};
    ASSERT_EQ(::stat((priv + "/dp.key").c_str(), &st), 0) << priv;
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(st.st_size, 32);
    std::ifstream in(priv + "/dp.key", std::ios::binary);
    keys.emplace_back(std::string(std::istreambuf_iterator<char>(in), {}));
  }
  EXPECT_EQ(largest, m.back()["epsilon"].get<double>());  // the public bound is the largest
  auto searched = files_under(run_dir("dppart"));
  searched.emplace_back("the runs' output", output);
  for (const std::string& key : keys) {
    const std::string hex = fedsilo::secagg::to_hex(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(key.data()), key.size()));
    for (const auto& [path, bytes] : searched) {
      if (path.ends_with("/dp.key")) continue;
      EXPECT_EQ(bytes.find(key.substr(0, 16)), std::string::npos) << path;
      EXPECT_EQ(bytes.find(hex.substr(0, 32)), std::string::npos) << path;
    }
  }
  // A resumed private run reads its key back; without it, it stops naming the file.
  stdfs::remove(run_dir("dppart") + "/private/silo-02/dp.key");
  const auto part6 = write_file(kTmp + "/cfg/dppart6.toml", config_text("dppart", dir, 6) + extra);
  expect_clean_failure(train(4, part6, "--resume"), "silo-02: privacy: cannot read the silo's DP key",
                       "dppart-none", 1);
  // Bitwise resume: with the noise derived from the run seed (tests only), 4 rounds straight
  // equal 2 + 2 resumed, metrics included.
  const std::string test_noise = "FEDSILO_INSECURE_DP_NOISE=1";
  for (const auto& [cfg, flags] : {std::pair{full, "--overwrite"}, std::pair{part2, "--overwrite"},
                                   std::pair{part4, "--resume"}}) {
    auto r = train(4, cfg, flags, test_noise);
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("FEDSILO_INSECURE_DP_NOISE is set"), std::string::npos) << r.output;
  }
  const auto c = params_of(run_dir("dpfull") + "/model.h5");
  const auto d = params_of(run_dir("dppart") + "/model.h5");
  ASSERT_EQ(c.size(), d.size());
  EXPECT_EQ(0, std::memcmp(c.data(), d.data(), c.size() * sizeof(float)));
  EXPECT_EQ(metrics_without_timings(run_dir("dpfull") + "/metrics.jsonl"),
            metrics_without_timings(run_dir("dppart") + "/metrics.jsonl"));
}

// privacy.max_epsilon: before the round that would take a silo past the budget, the run
// checkpoints, writes model.h5 for the rounds done and stops on every rank with exit 6; a
// resume stops again at once.
TEST_F(E2E, PrivacyBudgetStopsWithExitSixAndTheModelOfTheRoundsDone) {
  const std::string dir = silos_dir(4);
  const std::string dp = "[privacy]\nlevel = \"sample\"\nnoise_multiplier = 1.0\n";
  const std::string test_noise = "FEDSILO_INSECURE_DP_NOISE=1";
  const auto two = write_file(kTmp + "/cfg/dpb2.toml", config_text("dpb2", dir, 2) + dp);
  const auto three = write_file(kTmp + "/cfg/dpb3.toml", config_text("dpb3", dir, 3) + dp);
  ASSERT_EQ(train(4, two, "--overwrite", test_noise).code, 0);
  ASSERT_EQ(train(4, three, "--overwrite", test_noise).code, 0);
  const auto m = metrics_without_timings(run_dir("dpb3") + "/metrics.jsonl");
  ASSERT_EQ(m.size(), 3u);
  const double budget = 0.5 * (m[1]["epsilon"].get<double>() + m[2]["epsilon"].get<double>());
  const auto capped = write_file(kTmp + "/cfg/dpbcap.toml",
                                 config_text("dpbcap", dir, 3) + dp + "max_epsilon = " + std::to_string(budget) + "\n");
  for (const char* flags : {"--overwrite", "--resume"}) {
    auto r = train(4, capped, flags, test_noise);
    EXPECT_EQ(r.code, 6) << r.output;
    for (size_t i = 0; i < r.rank_codes.size(); ++i) EXPECT_EQ(r.rank_codes[i], 6) << "rank " << i;
    EXPECT_NE(r.output.find("privacy budget spent: round 3 would take a silo to epsilon"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("stopped after round 2 of 3"), std::string::npos) << r.output;
  }
  const auto a = params_of(run_dir("dpb2") + "/model.h5");
  const auto b = params_of(run_dir("dpbcap") + "/model.h5");
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  EXPECT_EQ(metrics_without_timings(run_dir("dpbcap") + "/metrics.jsonl").size(), 2u);
}

// Bad privacy settings: a clear error on every rank, nothing trained.
TEST_F(E2E, PrivacyRefusesBadSettingsOnEveryRank) {
  const std::string dir = silos_dir(4);
  const std::string dp = "[privacy]\nlevel = \"sample\"\n";
  struct Bad {
    std::string extra, needle;
    int code;
  };
  const std::vector<Bad> cases = {
      {"noise_multiplier = 0.0\n", "privacy.noise_multiplier: must be > 0", 2},
      {"noise_multiplier = 1.0\nclip = -1.0\n", "privacy.clip: must be > 0", 2},
      {"noise_multiplier = 1.0\ndelta = 1.5\n", "privacy.delta: must be in (0, 1)", 2},
      {"noise_multiplier = 1.0\naccountant = \"moments\"\n", "privacy.accountant", 2},
      {"noise_multiplier = 1.0\ntarget_epsilon = 3.0\n", "needs exactly one of privacy.noise_multiplier (the noise) and privacy.target_epsilon (the noise from the accountant), not both", 2},
      {"clip = 1.0\n", "needs exactly one of privacy.noise_multiplier", 2},
      {"noise_multiplier = 1.0\ndelta = 0.01\n", "privacy.delta = 0.01 is not below 1 / silo-0", 2},
      {"target_epsilon = 0.01\n", "privacy.target_epsilon, silo-0", 2},
  };
  for (const Bad& b : cases) {
    SCOPED_TRACE(b.extra);
    const auto cfg = write_file(kTmp + "/cfg/dpbad.toml", config_text("dpbad", dir, 2) + dp + b.extra);
    expect_clean_failure(train(4, cfg, "--overwrite"), b.needle, "dpbad", b.code);
  }
  // A batch larger than a silo's records (the sample rate would exceed 1).
  std::string text = config_text("dpbig", dir, 2) + dp + "noise_multiplier = 1.0\n";
  text.replace(text.find("batch_size = 32"), 15, "batch_size = 3000");
  const auto big = write_file(kTmp + "/cfg/dpbig.toml", text);
  expect_clean_failure(train(4, big, "--overwrite"), "local.batch_size = 3000 is larger than silo-0", "dpbig", 2);
}

TEST_F(E2E, OneRoundGivesTheSampleWeightedMeanOfLocalModels) {
  const std::string dir = silos_dir(2);
  const auto cfg = write_file(kTmp + "/cfg/mean.toml", config_text("mean", dir, 1));
  // The replay below runs in this process, on the OpenBLAS family it loaded: the run must use
  // the same one (else fedsilo may switch it to its kernel level, and the GEMMs round apart).
  auto r = train(2, cfg, "--overwrite",
                 std::string("OPENBLAS_CORETYPE=") + fedsilo::kernels::blas_core_name());
  ASSERT_EQ(r.code, 0) << r.output;
  const auto global = params_of(run_dir("mean") + "/model.h5");

  // Replay both silos' local training here and average by sample count.
  fedsilo::model::ModelSpec spec{"mlp", {64}, {1, 28, 28}, 10};
  auto net = fedsilo::model::Model::build(spec);
  ASSERT_TRUE(net.ok());
  std::vector<float> init(static_cast<size_t>(net->num_params()));
  net->init_params(init, 1);
  std::vector<double> mean(init.size(), 0.0);
  double total = 0;
  for (int s = 0; s < 2; ++s) {
    auto ds = fedsilo::data::read_dataset(dir + "/silo-0" + std::to_string(s) + "/train.h5");
    ASSERT_TRUE(ds.ok());
    std::vector<float> local = init;
    fedsilo::model::LocalTrainOptions o;
    o.epochs = 2; o.batch_size = 32; o.lr = 0.05f; o.momentum = 0.9f; o.weight_decay = 1e-5f;
    o.threads = 1; o.seed = 1; o.round = 1; o.silo = static_cast<uint32_t>(s);
    ASSERT_TRUE(fedsilo::model::train_local(net.value(), local, init, ds.value(), o).ok());
    const double n = static_cast<double>(ds->size());
    for (size_t i = 0; i < local.size(); ++i) mean[i] += n * local[i];
    total += n;
  }
  ASSERT_EQ(global.size(), mean.size());
  double max_err = 0;
  for (size_t i = 0; i < mean.size(); ++i) max_err = std::max(max_err, std::abs(mean[i] / total - global[i]));
  EXPECT_LT(max_err, 1e-5);
}

TEST_F(E2E, SixRoundsEqualThreeThenResumeBitwise) {
  const std::string dir = silos_dir(4);
  const auto full = write_file(kTmp + "/cfg/full.toml", config_text("full", dir, 6));
  const auto again = write_file(kTmp + "/cfg/again.toml", config_text("again", dir, 6));
  const auto part3 = write_file(kTmp + "/cfg/part.toml", config_text("part", dir, 3));
  const auto part6 = write_file(kTmp + "/cfg/part6.toml", config_text("part", dir, 6));
  ASSERT_EQ(train(4, full, "--overwrite").code, 0);
  ASSERT_EQ(train(4, again, "--overwrite").code, 0);
  ASSERT_EQ(train(4, part3, "--overwrite").code, 0);
  auto r = train(4, part6, "--resume");
  ASSERT_EQ(r.code, 0) << r.output;

  const auto a = params_of(run_dir("full") + "/model.h5");
  const auto b = params_of(run_dir("again") + "/model.h5");
  const auto c = params_of(run_dir("part") + "/model.h5");
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  ASSERT_EQ(a.size(), c.size());
  EXPECT_EQ(0, std::memcmp(a.data(), c.data(), a.size() * sizeof(float)));
  EXPECT_EQ(metrics_without_timings(run_dir("full") + "/metrics.jsonl"),
            metrics_without_timings(run_dir("part") + "/metrics.jsonl"));
}

TEST_F(E2E, StrategiesResumeBitwiseWithTheirState) {
  // Every strategy but FedAvg (E2E.SixRoundsEqualThreeThenResumeBitwise). The server optimizers
  // keep state across rounds (m, v; FedAvgM's velocity), SCAFFOLD the
  // server's c (global checkpoint) and each silo's c_s (its private checkpoint), with
  // compression a residual for each of its two parts; FedNova keeps none. A run resumed after
  // round 2 equals the uninterrupted one only if the checkpoint carried that state (without it,
  // FedAdam's first resumed step would start from m = 0), with every silo sampled and with half
  // of them (partial participation: SCAFFOLD's c moves by 1/N of the sampled updates).
  const std::string dir = silos_dir(4);
  const std::string from = "name = \"fedavg\"\nfraction = 1.0\n";
  const std::string topk = "[compression]\nmethod = \"topk\"\ndensity = 0.1\n";
  for (const std::string& strategy : std::vector<std::string>{
           "name = \"fedadam\"\nserver_lr = 0.01\ntau = 0.01\n",
           "name = \"fedavgm\"\nserver_lr = 1.0\nserver_momentum = 0.5\n",
           "name = \"fedyogi\"\nserver_lr = 0.01\ntau = 0.01\n",
           "name = \"fedadagrad\"\nserver_lr = 0.1\ntau = 0.01\n",
           "name = \"fedprox\"\nmu = 0.01\n",
           "name = \"scaffold\"\nfraction = 1.0\n", "name = \"scaffold\"\nfraction = 0.5\n" + topk,
           "name = \"fednova\"\nfraction = 1.0\n", "name = \"fednova\"\nfraction = 0.5\n" + topk}) {
    auto text = [&](const std::string& run, int rounds) {
      auto t = config_text(run, dir, rounds);
      t.replace(t.find(from), from.size(), strategy);
      return t;
    };
    ASSERT_EQ(train(4, write_file(kTmp + "/cfg/alg-full.toml", text("alg-full", 4)), "--overwrite").code, 0)
        << strategy;
    auto r = train(4, write_file(kTmp + "/cfg/alg-part.toml", text("alg-part", 2)), "--overwrite");
    ASSERT_EQ(r.code, 0) << r.output;
    r = train(4, write_file(kTmp + "/cfg/alg-part4.toml", text("alg-part", 4)), "--resume");
    ASSERT_EQ(r.code, 0) << r.output;
    const auto a = params_of(run_dir("alg-full") + "/model.h5");
    const auto b = params_of(run_dir("alg-part") + "/model.h5");
    ASSERT_FALSE(a.empty());
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << strategy;
    const auto m = metrics_without_timings(run_dir("alg-full") + "/metrics.jsonl");
    EXPECT_EQ(m, metrics_without_timings(run_dir("alg-part") + "/metrics.jsonl")) << strategy;
    // It trains: the accuracy after 4 rounds is well above chance.
    EXPECT_GT(m.back()["accuracy"].get<double>(), 0.4) << strategy;
  }
}

TEST_F(E2E, ScaffoldAndFedNovaUnderSecureAggregationFollowThePlainRun) {
  // The control-variate updates and FedNova's a_s are summed masked like the model update
  // (a_s in its own word, coded against the largest a_s any silo can have): 2 rounds, 20 bits,
  // the model stays within 1e-3 of the plain run's. The range covers SCAFFOLD's control
  // updates, which are gradients (values beyond it would be clipped like any other).
  const std::string dir = silos_dir(4);
  const std::string from = "name = \"fedavg\"\nfraction = 1.0\n";
  const std::string secure = "[secure_aggregation]\nenabled = true\nrange = 8.0\nbits = 20\nmax_weight = 4000\n";
  for (const std::string name : {"scaffold", "fednova"}) {
    auto text = [&](const std::string& run) {
      auto t = config_text(run, dir, 2);
      t.replace(t.find(from), from.size(), "name = \"" + name + "\"\nfraction = 1.0\n");
      return t;
    };
    ASSERT_EQ(train(4, write_file(kTmp + "/cfg/alg-plain.toml", text("alg-plain")), "--overwrite").code, 0);
    auto r = train(4, write_file(kTmp + "/cfg/alg-sec.toml", text("alg-sec") + secure), "--overwrite");
    ASSERT_EQ(r.code, 0) << r.output;
    const auto a = params_of(run_dir("alg-plain") + "/model.h5");
    const auto b = params_of(run_dir("alg-sec") + "/model.h5");
    ASSERT_EQ(a.size(), b.size());
    double max_diff = 0;
    for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, static_cast<double>(std::abs(a[i] - b[i])));
    EXPECT_LT(max_diff, 1e-3) << name;
    EXPECT_GT(max_diff, 0.0) << name << ": the secure run rounds, so it cannot be bitwise the plain one";
    EXPECT_EQ(metrics_without_timings(run_dir("alg-sec") + "/metrics.jsonl").back()["reducer"],
              "secure-dense-flat");
  }
}

TEST_F(E2E, ScaffoldAndFedNovaRefuseWhatTheyCannotRun) {
  const std::string dir = silos_dir(4);
  const std::string from = "name = \"fedavg\"\nfraction = 1.0\n";
  auto with = [&](const std::string& name, const std::string& strategy, const std::string& extra) {
    auto t = config_text(name, dir, 1);
    t.replace(t.find(from), from.size(), strategy);
    return write_file(kTmp + "/cfg/" + name + ".toml", t + extra);
  };
  expect_clean_failure(train(4, with("scafcuda", "name = \"scaffold\"\n", "[device]\nkind = \"cuda\"\n"), "--overwrite"),
                       "device.kind = \"cpu\"", "scafcuda", 2);
  expect_clean_failure(train(4, with("novaauto", "name = \"fednova\"\n", "[device]\nkind = \"auto\"\n"), "--overwrite"),
                       "FedNova step count", "novaauto", 2);
  expect_clean_failure(
      train(4, with("scafnode", "name = \"scaffold\"\n",
                    "[compression]\nmethod = \"topk\"\nlevel = \"node\"\n[allreduce]\nalgorithm = \"sparse-hier\"\n"),
            "--overwrite"),
      "compression.level = \"node\"", "scafnode", 2);
  expect_clean_failure(
      train(4, with("scafint8", "name = \"scaffold\"\n",
                    "[compression]\nmethod = \"topk\"\nvalue_type = \"int8\"\n"), "--overwrite"),
      "compression.value_type = \"int8\"", "scafint8", 2);
  // Keys of other strategies.
  expect_clean_failure(train(4, with("scafmu", "name = \"scaffold\"\nmu = 0.1\n", ""), "--overwrite"),
                       "strategy.mu", "scafmu", 2);
  expect_clean_failure(train(4, with("novalr", "name = \"fednova\"\nserver_lr = 0.1\n", ""), "--overwrite"),
                       "strategy.server_lr", "novalr", 2);
}

TEST_F(E2E, FractionSamplesSilosAndFedProxTrains) {
  auto text = config_text("frac", silos_dir(4), 3);
  const std::string from = "name = \"fedavg\"\nfraction = 1.0";
  text.replace(text.find(from), from.size(), "name = \"fedprox\"\nmu = 0.01\nfraction = 0.5");
  auto r = train(4, write_file(kTmp + "/cfg/frac.toml", text), "--overwrite");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto m = metrics_without_timings(run_dir("frac") + "/metrics.jsonl");
  ASSERT_EQ(m.size(), 3u);
  std::set<std::vector<int>> draws;
  for (const auto& line : m) {
    const auto sampled = line["sampled"].get<std::vector<int>>();
    EXPECT_EQ(sampled.size(), 2u);
    draws.insert(sampled);
    for (const auto& s : line["silos"]) {
      const bool in = std::find(sampled.begin(), sampled.end(), s["silo"].get<int>()) != sampled.end();
      EXPECT_EQ(s["sampled"].get<bool>(), in);
      EXPECT_EQ(s.contains("train_loss"), in) << "unsampled silos train nothing";
    }
  }
  EXPECT_GT(m.back()["accuracy"].get<double>(), 0.5);
}

TEST_F(E2E, LevelNodeResumeKeepsTheRankToNodeLayout) {
  // The checkpoint records each rank's node. At level node the residuals live on the leaders,
  // so resuming on another layout (a requeue onto other nodes; emulated here) is refused on
  // every rank, naming both layouts and the sbatch flags that pin them; the same layout resumes.
  const std::string node_level =
      "[compression]\nmethod = \"topk\"\ndensity = 0.05\nerror_feedback = true\n"
      "level = \"node\"\n[allreduce]\nalgorithm = \"sparse-hier\"\n";
  const std::string dir = silos_dir(4);
  const auto part2 = write_file(kTmp + "/cfg/lay2.toml", config_text("layout", dir, 2) + node_level);
  const auto part4 = write_file(kTmp + "/cfg/lay4.toml", config_text("layout", dir, 4) + node_level);
  ASSERT_EQ(train(4, part2, "--overwrite", "FEDSILO_EMULATED_NODES=2").code, 0);
  auto r = train(4, part4, "--resume", "FEDSILO_EMULATED_NODES=4");
  // (expect_clean_failure would also demand no model.h5: the 2-round run has one.)
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_EQ(r.rank_codes, std::vector<int>(4, 2)) << r.output;
  EXPECT_NE(r.output.find("2 nodes x 2 ranks (nodes 0,0,1,1), this run has 4 nodes x 1 rank "
                          "(nodes 0,1,2,3)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("sbatch --nodes=2 --ntasks-per-node=2"), std::string::npos) << r.output;
  r = train(4, part4, "--resume", "FEDSILO_EMULATED_NODES=2");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(metrics_without_timings(run_dir("layout") + "/metrics.jsonl").size(), 4u);
  // Without state on the leaders (dense), another layout resumes.
  const auto dense2 = write_file(kTmp + "/cfg/dlay2.toml", config_text("dlayout", dir, 2));
  const auto dense4 = write_file(kTmp + "/cfg/dlay4.toml", config_text("dlayout", dir, 4));
  ASSERT_EQ(train(4, dense2, "--overwrite", "FEDSILO_EMULATED_NODES=2").code, 0);
  r = train(4, dense4, "--resume", "FEDSILO_EMULATED_NODES=4");
  EXPECT_EQ(r.code, 0) << r.output;
}

TEST_F(E2E, CompressedRunResumesBitwiseWithItsResidual) {
  // Top-k 5% with error feedback at node level on 2 emulated nodes: the residual lives in each
  // leader's private state, so a resumed run only equals a straight one if it is restored.
  // `auto` weighs the leaders' measured compression time against the link: at 1 Mbit/s a dense
  // update (~200 KB, 1.6 s) never beats compression, however loaded the machine (at 0.1 Gbit/s
  // a CI machine busy with other work once measured compression slow enough to send dense).
  const std::string compression =
      "[compression]\nmethod = \"topk\"\ndensity = 0.05\nvalue_type = \"fp16\"\n"
      "error_feedback = true\nlevel = \"node\"\n[allreduce]\nalgorithm = \"auto\"\n"
      "link_gbps = 0.001\n[topology]\nemulated_nodes = 2\n";
  const std::string dir = silos_dir(4);
  const auto full = write_file(kTmp + "/cfg/zfull.toml", config_text("zfull", dir, 4) + compression);
  const auto part2 = write_file(kTmp + "/cfg/zpart2.toml", config_text("zpart", dir, 2) + compression);
  const auto part4 = write_file(kTmp + "/cfg/zpart4.toml", config_text("zpart", dir, 4) + compression);
  ASSERT_EQ(train(4, full, "--overwrite").code, 0);
  ASSERT_EQ(train(4, part2, "--overwrite").code, 0);
  auto r = train(4, part4, "--resume");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto a = params_of(run_dir("zfull") + "/model.h5");
  const auto b = params_of(run_dir("zpart") + "/model.h5");
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  const auto m = metrics_without_timings(run_dir("zfull") + "/metrics.jsonl");
  EXPECT_EQ(m, metrics_without_timings(run_dir("zpart") + "/metrics.jsonl"));
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m.back()["reducer"], "sparse-hier");
  EXPECT_GT(m.back()["compression_ratio"].get<double>(), 10.0);
  EXPECT_GT(m.back()["bytes"]["inter_sent"].get<int64_t>(), 0);
  EXPECT_GT(m.back()["accuracy"].get<double>(), 0.5);
  // The leaders' residuals are checkpointed privately.
  auto f = fedsilo::h5::File::open_read(run_dir("zpart") + "/private/silo-00/ckpt-000004.h5");
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->has("residual"));
  // fedsilo inspect knows the files fedsilo writes there.
  auto i = run(kBin + " inspect " + run_dir("zpart") + "/private/silo-00/ckpt-000004.h5");
  EXPECT_EQ(i.code, 0) << i.output;
  EXPECT_NE(i.output.find("fedsilo silo state (private to silo 0)"), std::string::npos) << i.output;
  EXPECT_NE(i.output.find("round        4"), std::string::npos) << i.output;
  EXPECT_TRUE(std::regex_search(i.output, std::regex("residual +[0-9]+ values, [1-9][0-9]* non-zero")))
      << i.output;
}

TEST_F(E2E, AutoAtNodeLevelSendsDenseWhereCompressionDoesNotPay) {
  // A link so fast that compressing the node sums costs more than sending them: auto picks a
  // dense algorithm, and the run equals an uncompressed one bitwise (exact sums, no residual).
  const std::string dir = silos_dir(4);
  const std::string node =
      "[compression]\nmethod = \"topk\"\ndensity = 0.05\nerror_feedback = true\nlevel = \"node\"\n"
      "[allreduce]\nalgorithm = \"auto\"\nlink_gbps = 1000.0\nlink_latency_us = 0.0\n"
      "[topology]\nemulated_nodes = 2\n";
  const std::string plain = "[allreduce]\nalgorithm = \"dense-flat\"\n[topology]\nemulated_nodes = 2\n";
  const auto a_cfg = write_file(kTmp + "/cfg/autodense.toml", config_text("autodense", dir, 2) + node);
  const auto b_cfg = write_file(kTmp + "/cfg/plaindense.toml", config_text("plaindense", dir, 2) + plain);
  auto r = train(4, a_cfg, "--overwrite");
  ASSERT_EQ(r.code, 0) << r.output;
  ASSERT_EQ(train(4, b_cfg, "--overwrite").code, 0);
  const auto m = metrics_without_timings(run_dir("autodense") + "/metrics.jsonl");
  ASSERT_EQ(m.size(), 2u);
  const std::string chosen = m.back()["reducer"];
  EXPECT_TRUE(chosen == "dense-flat" || chosen == "dense-hier") << chosen;
  EXPECT_EQ(m.back()["compression_ratio"].get<double>(), 1.0);
  const auto a = params_of(run_dir("autodense") + "/model.h5");
  const auto b = params_of(run_dir("plaindense") + "/model.h5");
  ASSERT_EQ(a.size(), b.size());
  if (chosen == "dense-flat") {
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  } else {
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5) << i;
  }
}

TEST_F(E2E, ResumeWithoutCheckpointStartsAtRoundZero) {
  const auto cfg = write_file(kTmp + "/cfg/fresh.toml", config_text("fresh", silos_dir(2), 1));
  stdfs::remove_all(run_dir("fresh"));
  auto r = train(2, cfg, "--resume");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(metrics_without_timings(run_dir("fresh") + "/metrics.jsonl").size(), 1u);
}

TEST_F(E2E, UnknownKeyIsRejected) {
  auto text = config_text("badkey", silos_dir(2), 1);
  text.replace(text.find("epochs"), 6, "epochz");
  auto r = train(2, write_file(kTmp + "/cfg/badkey.toml", text));
  expect_clean_failure(r, "local.epochz", "badkey", 2);
}

TEST_F(E2E, WrongTypeIsRejected) {
  auto text = config_text("badtype", silos_dir(2), 1);
  text.replace(text.find("rounds = 1"), 10, "rounds = \"1\"");
  expect_clean_failure(train(2, write_file(kTmp + "/cfg/badtype.toml", text)), "run.rounds", "badtype", 2);
}

TEST_F(E2E, InvalidValuesAreRejected) {
  struct Case { std::string from, to, key; };
  for (const Case& c : {Case{"lr = 0.05", "lr = 0.0", "local.lr"},
                        Case{"rounds = 1", "rounds = 0", "run.rounds"},
                        Case{"fraction = 1.0", "fraction = 1.5", "strategy.fraction"},
                        Case{"arch = \"mlp\"", "arch = \"vgg\"", "model.arch"}}) {
    auto text = config_text("badval", silos_dir(2), 1);
    text.replace(text.find(c.from), c.from.size(), c.to);
    expect_clean_failure(train(2, write_file(kTmp + "/cfg/badval.toml", text)), c.key, "badval", 2);
  }
}

TEST_F(E2E, RankCountDifferentFromSiloCountIsRejected) {
  const auto cfg = write_file(kTmp + "/cfg/ranks.toml", config_text("ranks", silos_dir(4), 1));
  expect_clean_failure(train(2, cfg), "silo count 4", "ranks", 2);
}

TEST_F(E2E, BadSiloFilesAreRejectedNamingTheSilo) {
  using fedsilo::h5::File;
  struct Case {
    std::string name, needle;
    std::function<void(const std::string& silo_dir)> damage;
  };
  const std::vector<Case> cases = {
      {"missing", "silo-02", [](const std::string& d) { stdfs::remove(d + "/train.h5"); }},
      {"truncated", "silo-02",
       [](const std::string& d) { stdfs::resize_file(d + "/train.h5", stdfs::file_size(d + "/train.h5") / 2); }},
      {"corrupt", "silo-02",
       [](const std::string& d) {
         std::fstream f(d + "/train.h5", std::ios::in | std::ios::out | std::ios::binary);
         const std::string junk(4096, '\x5a');
         f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
       }},
      {"dtype", "'y'",
       [](const std::string& d) {
         auto ds = fedsilo::data::read_dataset(d + "/train.h5").value();
         auto f = File::create(d + "/train.h5");
         std::vector<float> yf(ds.y.begin(), ds.y.end());
         ASSERT_TRUE(f->write_f32("x", ds.x, {ds.size(), 1, 28, 28}).ok());
         ASSERT_TRUE(f->write_f32("y", yf, {ds.size()}).ok());
         ASSERT_TRUE(f->write_attr_i64("", "num_classes", 10).ok());
         ASSERT_TRUE(f->write_attr_i64("", "channels", 1).ok());
         ASSERT_TRUE(f->write_attr_i64("", "height", 28).ok());
         ASSERT_TRUE(f->write_attr_i64("", "width", 28).ok());
         ASSERT_TRUE(f->close().ok());
       }},
      {"shape", "silo-02",
       [](const std::string& d) {
         auto ds = fedsilo::data::read_dataset(d + "/train.h5").value();
         ds.chw = {1, 14, 56};
         ASSERT_TRUE(fedsilo::data::write_dataset(d + "/train.h5", ds).ok());
       }},
      {"label", "label",
       [](const std::string& d) {
         auto ds = fedsilo::data::read_dataset(d + "/train.h5").value();
         auto f = File::create(d + "/train.h5");
         ds.y[5] = 10;
         ASSERT_TRUE(f->write_f32("x", ds.x, {ds.size(), 1, 28, 28}).ok());
         ASSERT_TRUE(f->write_i32("y", ds.y, {ds.size()}).ok());
         ASSERT_TRUE(f->write_attr_i64("", "num_classes", 10).ok());
         ASSERT_TRUE(f->write_attr_i64("", "channels", 1).ok());
         ASSERT_TRUE(f->write_attr_i64("", "height", 28).ok());
         ASSERT_TRUE(f->write_attr_i64("", "width", 28).ok());
         ASSERT_TRUE(f->close().ok());
       }},
      {"empty", "no samples",
       [](const std::string& d) {
         auto f = File::create(d + "/train.h5");
         ASSERT_TRUE(f->write_f32("x", std::vector<float>{}, {0, 1, 28, 28}).ok());
         ASSERT_TRUE(f->write_i32("y", std::vector<int32_t>{}, {0}).ok());
         ASSERT_TRUE(f->write_attr_i64("", "num_classes", 10).ok());
         ASSERT_TRUE(f->write_attr_i64("", "channels", 1).ok());
         ASSERT_TRUE(f->write_attr_i64("", "height", 28).ok());
         ASSERT_TRUE(f->write_attr_i64("", "width", 28).ok());
         ASSERT_TRUE(f->close().ok());
       }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string silos = copy_silos(c.name);
    c.damage(silos + "/silo-02");
    const auto cfg = write_file(kTmp + "/cfg/silo-" + c.name + ".toml",
                                config_text("silo-" + c.name, silos, 1));
    stdfs::remove_all(run_dir("silo-" + c.name));
    auto r = train(4, cfg);
    expect_clean_failure(r, c.needle, "silo-" + c.name, 1);  // a data error, whatever is wrong
    EXPECT_NE(r.output.find("silo-02"), std::string::npos) << r.output;
  }
}

TEST_F(E2E, DivergenceInRoundOneNamesRoundAndSilo) {
  auto text = config_text("div1", silos_dir(2), 2);
  text.replace(text.find("lr = 0.05"), 9, "lr = 1e30");
  auto r = train(2, write_file(kTmp + "/cfg/div1.toml", text), "--overwrite");
  expect_clean_failure(r, "round 1", "div1", 4);
  EXPECT_NE(r.output.find("silo-0"), std::string::npos) << r.output;
  EXPECT_TRUE(r.output.find("nan") != std::string::npos ||
              r.output.find("not finite") != std::string::npos) << r.output;
}

TEST_F(E2E, DivergenceAfterGoodRoundsKeepsTheLastGoodCheckpoint) {
  // Two good rounds; then silo-01's features blow up (values 1e30: finite, but the loss is
  // not), and resuming to round 4 must stop in round 3 naming silo-01, keeping checkpoint 2.
  const std::string silos = kTmp + "/bad-diverge";
  stdfs::remove_all(silos);
  stdfs::copy(silos_dir(2), silos, stdfs::copy_options::recursive);
  const auto cfg2 = write_file(kTmp + "/cfg/div2.toml", config_text("div2", silos, 2));
  const auto cfg4 = write_file(kTmp + "/cfg/div4.toml", config_text("div2", silos, 4));
  ASSERT_EQ(train(2, cfg2, "--overwrite").code, 0);
  stdfs::remove(run_dir("div2") + "/model.h5");
  auto ds = fedsilo::data::read_dataset(silos + "/silo-01/train.h5").value();
  for (float& v : ds.x) v = v * 1e30f + 1e30f;
  ASSERT_TRUE(fedsilo::data::write_dataset(silos + "/silo-01/train.h5", ds).ok());
  auto r = train(2, cfg4, "--resume");
  expect_clean_failure(r, "round 3, silo-01", "div2", 4);
  EXPECT_TRUE(stdfs::exists(run_dir("div2") + "/checkpoints/ckpt-000002.done"));
  EXPECT_TRUE(stdfs::exists(run_dir("div2") + "/checkpoints/ckpt-000002.h5"));
  EXPECT_FALSE(stdfs::exists(run_dir("div2") + "/checkpoints/ckpt-000003.done"));
}

TEST_F(E2E, ExistingRunNeedsResumeOrOverwrite) {
  const auto cfg = write_file(kTmp + "/cfg/exists.toml", config_text("exists", silos_dir(2), 1));
  ASSERT_EQ(train(2, cfg, "--overwrite").code, 0);
  auto r = train(2, cfg);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("--resume"), std::string::npos) << r.output;
  EXPECT_TRUE(stdfs::exists(run_dir("exists") + "/model.h5")) << "the finished run must be kept";
}

TEST_F(E2E, ResumeWithDifferentConfigIsRejectedNamingTheKey) {
  const auto cfg = write_file(kTmp + "/cfg/diff.toml", config_text("diff", silos_dir(2), 1));
  ASSERT_EQ(train(2, cfg, "--overwrite").code, 0);
  auto text = config_text("diff", silos_dir(2), 2);
  text.replace(text.find("batch_size = 32"), 15, "batch_size = 16");
  auto r = train(2, write_file(kTmp + "/cfg/diff2.toml", text), "--resume");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("different config: local.batch_size = 16 (was 32)"), std::string::npos) << r.output;
}

TEST_F(E2E, ResumeOfAFinishedRunSaysSoAndChangesNothing) {
  const auto cfg = write_file(kTmp + "/cfg/done.toml", config_text("done", silos_dir(2), 2));
  ASSERT_EQ(train(2, cfg, "--overwrite").code, 0);
  const auto model = params_of(run_dir("done") + "/model.h5");
  const auto metrics = metrics_without_timings(run_dir("done") + "/metrics.jsonl");
  const auto written = stdfs::last_write_time(run_dir("done") + "/model.h5");
  auto r = run("timeout 120 " + kMpi + " -np 2 " + kBin + " train " + cfg + " --resume");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("has finished all 2 rounds"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("rounds 3..2"), std::string::npos) << r.output;
  EXPECT_EQ(stdfs::last_write_time(run_dir("done") + "/model.h5"), written);
  EXPECT_EQ(params_of(run_dir("done") + "/model.h5"), model);
  EXPECT_EQ(metrics_without_timings(run_dir("done") + "/metrics.jsonl"), metrics);
}

TEST_F(E2E, MissingDataSaysWhatMakesIt) {
  auto text = config_text("nodata", kTmp + "/no-such-silos", 1);
  auto r = train(2, write_file(kTmp + "/cfg/nodata.toml", text));
  expect_clean_failure(r, "no-such-silos does not exist; make it with `fedsilo partition", "nodata", 1);
  text = "# data: benchmarks/somewhere/run.sh writes it\n" + text;
  r = train(2, write_file(kTmp + "/cfg/nodata2.toml", text));
  expect_clean_failure(r, "says it is made by: benchmarks/somewhere/run.sh writes it", "nodata", 1);
  // --check reads no data: the same config is valid.
  auto c = run(kBin + " train --check " + kTmp + "/cfg/nodata2.toml");
  EXPECT_EQ(c.code, 0) << c.output;
  EXPECT_NE(c.output.find("is valid"), std::string::npos) << c.output;
}

// The README's exit-code table, per subcommand (train's 3 to 7 have their own tests here and in
// tests/slurm; 6 is reserved and only the job script's handling of it is testable today).
TEST_F(E2E, ExitCodesFollowTheReadmeTable) {
  const std::string model = run_dir("codes") + "/model.h5";
  const auto cfg = write_file(kTmp + "/cfg/codes.toml", config_text("codes", silos_dir(2), 1));
  ASSERT_EQ(train(2, cfg, "--overwrite").code, 0);
  const std::string garbage = write_file(kTmp + "/garbage.h5", "not an HDF5 file");
  const std::string bad_cfg = write_file(kTmp + "/cfg/codes-bad.toml", "[run]\nrounds = 0\n");
  const std::string part = kTmp + "/codes-part";
  stdfs::remove_all(part);
  struct Case { std::string args; int code; std::string needle; };
  const std::vector<Case> cases = {
      {"--help", 0, "Subcommands"},
      {"--version", 0, "fedsilo"},
      {"", 2, "subcommand"},
      {"trian x.toml", 2, "unknown subcommand 'trian', did you mean 'train'?"},
      {"--frobnicate", 2, ""},
      // train (outside MPI: --check, and flag errors before MPI starts)
      {"train --help", 0, "--check"},
      {"train --check " + cfg, 0, "is valid"},
      {"train --check " + bad_cfg, 2, "run.rounds"},
      {"train --check " + kTmp + "/cfg/absent.toml", 2, "absent.toml"},
      {"train --check " + cfg + " --no-such-flag", 2, "--no-such-flag"},
      // partition
      {"partition --dataset fashion-mnist --silos 2 --max-train 200 --max-test 50 -q --out " + part, 0, ""},
      {"partition --dataset fashion-mnist --silos 2 --max-train 200 --max-test 50 -q --out " + part, 3, "--overwrite"},
      {"partition --dataset fashion-mnist --silos 2 --scheme bogus --out " + part + "-b", 2, "--scheme"},
      {"partition --dataset fashion-mnist --silos x --out " + part + "-b", 2, "--silos"},
      {"partition --dataset fashion-mnist --idx-dir " + kTmp + "/no-idx --out " + part + "-c", 1, "no-idx"},
      {"partition --out " + part + "-d", 2, "--dataset"},
      // slurm
      {"slurm " + cfg, 0, "#SBATCH --ntasks=2"},
      {"slurm " + bad_cfg, 2, "run.rounds"},
      {"slurm " + write_file(kTmp + "/cfg/codes-nodata.toml", config_text("x", kTmp + "/nothing", 1)), 1,
       "does not exist"},
      {"slurm", 2, "config"},
      // inspect
      {"inspect " + model, 0, "fedsilo model"},
      {"inspect " + kTmp + "/absent.h5", 1, "absent.h5"},
      {"inspect " + garbage, 1, "not an HDF5 file"},
      {"inspect", 2, "file"},
      // eval
      {"eval " + model + " --data " + silos_dir(2) + "/test.h5", 0, "accuracy"},
      {"eval " + kTmp + "/absent.h5 --data " + silos_dir(2) + "/test.h5", 1, "absent.h5"},
      {"eval " + model + " --data " + garbage, 1, "not an HDF5 file"},
      {"eval " + model + " --data " + silos_dir(2) + "/test.h5 --batch-size 0", 2, "--batch-size"},
      {"eval " + model, 2, "--data"},
      // bench (its flags are parsed before MPI starts)
      {"bench allreduce --no-such-flag", 2, ""},
  };
  for (const auto& c : cases) {
    auto r = run(kBin + " " + c.args);
    EXPECT_EQ(r.code, c.code) << "fedsilo " << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.needle), std::string::npos) << "fedsilo " << c.args << "\n" << r.output;
  }
  // The run directory already holds a run: 3 on every rank.
  auto exists = train(2, cfg);
  EXPECT_EQ(exists.code, 3) << exists.output;
  EXPECT_EQ(exists.rank_codes, (std::vector<int>{3, 3})) << exists.output;
}

// SIGTERM (scancel; what mpirun sends the ranks on Ctrl-C) stops local training at once: the
// round in flight is dropped, the last completed one is checkpointed (here it was not yet:
// checkpoint_every = 50), every rank exits 7 with one message, and --resume then ends with the
// same model as a run never stopped.
TEST_F(E2E, SigtermCheckpointsTheLastRoundAndResumesBitwise) {
  const int rounds = 30;
  auto text = config_text("term", silos_dir(2), rounds);
  text.replace(text.find("checkpoint_every = 1"), 20, "checkpoint_every = 50");
  const auto cfg = write_file(kTmp + "/cfg/term.toml", text);
  auto ref_text = config_text("term-ref", silos_dir(2), rounds);
  const auto ref = write_file(kTmp + "/cfg/term-ref.toml", ref_text);
  ASSERT_EQ(train(2, ref, "--overwrite").code, 0);
  stdfs::remove_all(run_dir("term"));
  // In the background, once two rounds are done, SIGTERM to both fedsilo ranks.
  const std::string metrics = run_dir("term") + "/metrics.jsonl";
  const std::string killer =
      "(for i in $(seq 600); do [ \"$(cat " + metrics + " 2>/dev/null | wc -l)\" -ge 2 ] && break; "
      "sleep 0.05; done; pkill -TERM -f '^" + kBin + " train " + cfg + "') & ";
  auto r = run(killer + "timeout 300 " + kMpi + " -np 2 sh -c '" + kBin + " train " + cfg +
               "; echo rank $OMPI_COMM_WORLD_RANK exit $?'");
  EXPECT_NE(r.output.find("rank 0 exit 7"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 1 exit 7"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("fedsilo train: stopped: SIGTERM: stopped after round "), std::string::npos) << r.output;
  EXPECT_FALSE(stdfs::exists(run_dir("term") + "/model.h5"));
  auto done = metrics_without_timings(metrics);
  ASSERT_GE(done.size(), 2u);
  ASSERT_LT(done.size(), static_cast<size_t>(rounds)) << "the run ended before the signal";
  const auto last = done.back()["round"].get<int64_t>();
  char ckpt[64];
  std::snprintf(ckpt, sizeof ckpt, "/checkpoints/ckpt-%06lld.done", static_cast<long long>(last));
  EXPECT_TRUE(stdfs::exists(run_dir("term") + ckpt)) << "round " << last << " was not checkpointed";
  auto resumed = train(2, cfg, "--resume");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_EQ(params_of(run_dir("term") + "/model.h5"), params_of(run_dir("term-ref") + "/model.h5"));
  EXPECT_EQ(metrics_without_timings(metrics).size(), static_cast<size_t>(rounds));
}

// A 200-round run of `name` on 2 silos that checkpoints only when it is stopped: mpirun in the
// background, `signal` sent to mpirun once 3 rounds are done (and mpirun is well past its
// start-up, where it kills at once). Returns the output with "mpirun exit CODE" last; checks
// that the stop left the last round in metrics.jsonl checkpointed and no model.
RunResult E2E::signal_mpirun(const std::string& name, const std::string& signal) {
  auto text = config_text(name, silos_dir(2), 200);
  text.replace(text.find("checkpoint_every = 1"), 20, "checkpoint_every = 999");  // only the stop's
  const auto cfg = write_file(kTmp + "/cfg/" + name + ".toml", text);
  const std::string dir = kTmp + "/runs/" + name;
  stdfs::remove_all(dir);
  const std::string metrics = dir + "/metrics.jsonl";
  // No `timeout` around mpirun: the signal must reach mpirun itself (200 short rounds end anyway).
  auto r = run("exec 2>&1; " + kMpi + " -np 2 " + kBin + " train " + cfg + " -q & pid=$!; "
               "for i in $(seq 600); do [ \"$(cat " + metrics + " 2>/dev/null | wc -l)\" -ge 3 ] && break; "
               "sleep 0.05; done; sleep 1; kill -" + signal + " $pid; wait $pid; echo \"mpirun exit $?\"");
  const auto done = metrics_without_timings(metrics);
  EXPECT_FALSE(done.empty()) << r.output;
  EXPECT_LT(done.size(), 200u) << "the run ended before the signal";
  if (!done.empty()) {
    char ckpt[64];
    std::snprintf(ckpt, sizeof ckpt, "/checkpoints/ckpt-%06lld.done",
                  static_cast<long long>(done.back()["round"].get<int64_t>()));
    EXPECT_TRUE(stdfs::exists(dir + ckpt)) << "the last round was not checkpointed\n" << r.output;
  }
  EXPECT_FALSE(stdfs::exists(dir + "/model.h5"));
  return r;
}

// SIGUSR1 (what Slurm sends before a time limit; mpirun forwards it): the round finishes, is
// checkpointed, and every rank exits 5, which mpirun passes on.
TEST_F(E2E, Sigusr1CheckpointsTheRoundAndExitsFive) {
  const auto r = signal_mpirun("usr1", "USR1");
  EXPECT_NE(r.output.find("mpirun exit 5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("fedsilo train: stopped: SIGUSR1: stopped after round "), std::string::npos) << r.output;
}

// Ctrl-C: SIGINT to mpirun, which passes SIGTERM to the ranks: they stop cleanly (at most one
// message, the last round checkpointed, no model). mpirun itself then exits 1 (Open MPI's code
// for a job it aborted; it cannot forward SIGINT), whatever the ranks return; the ranks' own 7 is
// what srun reports and what the SIGTERM test above checks.
TEST_F(E2E, SigintToMpirunStopsCleanly) {
  const auto r = signal_mpirun("int", "INT");
  EXPECT_NE(r.output.find("mpirun exit 1"), std::string::npos) << r.output;
  const std::regex stopped("fedsilo train: stopped: SIGTERM: stopped after round [0-9]+ of 200, checkpointed");
  const auto count = std::distance(std::sregex_iterator(r.output.begin(), r.output.end(), stopped),
                                   std::sregex_iterator());
  // mpirun, aborting, may drop what the ranks print as it tears down.
  EXPECT_LE(count, 1) << r.output;
}

}  // namespace
