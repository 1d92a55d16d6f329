// The [device] table (kind = cpu | cuda | auto): parsing, validation, canonical form, the resume
// hash, and how a kind resolves on a machine without a usable GPU (this CI machine: a build
// without CUDA, or CUDA with no device).
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "model/gpu_trainer.h"
#include "mpi/device_allreduce.h"

namespace fedsilo {
namespace {

const std::string kBase = "[data]\nsilos_dir = \"/tmp/silos\"\n";

Result<config::Config> parse(const std::string& extra) {
  return config::parse_config(kBase + extra, "t.toml");
}

TEST(DeviceConfig, DefaultsToCpu) {
  auto c = parse("");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(std::string(fedsilo::config::name(c->device.kind)), "cpu");
}

TEST(DeviceConfig, AcceptsCpuCudaAndAuto) {
  for (const char* kind : {"cpu", "cuda", "auto"}) {
    auto c = parse(std::string("[device]\nkind = \"") + kind + "\"\n");
    ASSERT_TRUE(c.ok()) << kind << ": " << c.status().to_string();
    EXPECT_EQ(std::string(fedsilo::config::name(c->device.kind)), kind);
  }
}

// GPU ranks sum secure aggregation's masked words on the GPUs (an ncclUint32 sum), dense or
// with a shared index set at either level; plain node-level compression still cannot use NCCL.
TEST(DeviceConfig, SecureAggregationRunsOnGpuRanksWithNccl) {
  const std::string secure = "[secure_aggregation]\nenabled = true\nmax_weight = 6000\n";
  for (const char* zip : {"", "[compression]\nmethod = \"randk\"\ndensity = 0.1\n",
                          "[compression]\nmethod = \"randk\"\ndensity = 0.1\nlevel = \"node\"\n"
                          "[allreduce]\nalgorithm = \"auto\"\n"}) {
    auto c = parse(secure + zip + "[device]\nkind = \"cuda\"\nreduce = \"nccl\"\n");
    EXPECT_TRUE(c.ok()) << zip << ": " << c.status().to_string();
  }
  auto plain = parse("[compression]\nmethod = \"randk\"\ndensity = 0.1\nlevel = \"node\"\n"
                     "[allreduce]\nalgorithm = \"auto\"\n[device]\nkind = \"cuda\"\nreduce = \"nccl\"\n");
  ASSERT_FALSE(plain.ok());
  EXPECT_NE(plain.status().message().find("device.reduce"), std::string::npos) << plain.status().message();
}

TEST(DeviceConfig, UnknownKindIsRejectedNamingTheKeyAndValue) {
  auto c = parse("[device]\nkind = \"gpu\"\n");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  const std::string m = c.status().message();
  EXPECT_NE(m.find("t.toml"), std::string::npos) << m;
  EXPECT_NE(m.find("device.kind"), std::string::npos) << m;
  EXPECT_NE(m.find("'gpu'"), std::string::npos) << m;
  EXPECT_NE(m.find("cpu, cuda, auto"), std::string::npos) << m;
}

TEST(DeviceConfig, WrongTypeAndUnknownKeyNameTheKey) {
  auto t = parse("[device]\nkind = 1\n");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("device.kind"), std::string::npos) << t.status().message();
  auto k = parse("[device]\ngpus = 2\n");
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("device.gpus"), std::string::npos) << k.status().message();
  EXPECT_NE(k.status().message().find("kind"), std::string::npos) << k.status().message();
}

TEST(DeviceConfig, CanonicalTextRoundTrips) {
  auto c = parse("[device]\nkind = \"auto\"\n");
  ASSERT_TRUE(c.ok());
  const std::string text = config::to_toml(c.value());
  EXPECT_NE(text.find("[device]"), std::string::npos) << text;
  auto again = config::parse_config(text, "canonical.toml");
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(std::string(fedsilo::config::name(again->device.kind)), "auto");
}

TEST(DeviceConfig, DefaultKindLeavesTheResumeHashAsBeforeDeviceExisted) {
  // Hashes of these configs as computed before [device] existed (commit 5cfe8ad): checkpoints
  // of runs made then must still resume.
  auto plain = parse("");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(config::resume_hash(plain.value()), "0d092dccfdf8df6e");
  auto mlp = config::parse_config(
      "[run]\nname = \"h\"\nseed = 7\n[data]\nsilos_dir = \"/tmp/silos\"\n[model]\narch = "
      "\"mlp\"\nhidden = [200, 200]\n[local]\nbatch_size = 32\n",
      "t.toml");
  ASSERT_TRUE(mlp.ok());
  EXPECT_EQ(config::resume_hash(mlp.value()), "604a1e149d277ef1");
  // Writing the default explicitly changes nothing either.
  auto explicit_cpu = parse("[device]\nkind = \"cpu\"\n");
  ASSERT_TRUE(explicit_cpu.ok());
  EXPECT_EQ(config::resume_hash(explicit_cpu.value()), config::resume_hash(plain.value()));
}

TEST(DeviceConfig, NonDefaultKindEntersTheResumeHash) {
  // A run's numbers depend on the backend (float sums in other orders): resuming a CPU run on a
  // GPU, or the reverse, is refused like any other changed setting.
  auto plain = parse("");
  auto cuda = parse("[device]\nkind = \"cuda\"\n");
  auto autod = parse("[device]\nkind = \"auto\"\n");
  ASSERT_TRUE(plain.ok() && cuda.ok() && autod.ok());
  EXPECT_NE(config::resume_hash(cuda.value()), config::resume_hash(plain.value()));
  EXPECT_NE(config::resume_hash(autod.value()), config::resume_hash(plain.value()));
  EXPECT_NE(config::resume_hash(autod.value()), config::resume_hash(cuda.value()));
}

TEST(DeviceChoice, CpuIsAlwaysTheCpu) {
  for (int local_rank : {0, 3}) {
    auto d = model::choose_device("cpu", local_rank);
    ASSERT_TRUE(d.ok()) << d.status().to_string();
    EXPECT_FALSE(d->cuda);
    EXPECT_EQ(d->label, "cpu");
  }
}

TEST(DeviceChoice, UnknownKindNamesTheKey) {
  auto d = model::choose_device("tpu", 0);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("device.kind = \"tpu\""), std::string::npos)
      << d.status().message();
}

TEST(DeviceChoice, AutoIsTheCpuWithoutADevice) {
  if (model::cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is visible here";
  auto d = model::choose_device("auto", 0);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_FALSE(d->cuda);
  EXPECT_EQ(d->label, "cpu");
}

TEST(DeviceChoice, CudaWithoutADeviceIsAClearError) {
  if (model::cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is visible here";
  auto d = model::choose_device("cuda", 0);
  ASSERT_FALSE(d.ok());
  const std::string m = d.status().message();
  if (!model::cuda_built()) {
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(m,
              "device.kind = \"cuda\": this fedsilo was built without CUDA (configure with "
              "-DFEDSILO_CUDA=ON)");
  } else {
    EXPECT_EQ(d.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(m.find("device.kind = \"cuda\": no CUDA device is visible"), std::string::npos) << m;
  }
}

TEST(DeviceChoice, GpuTrainerCannotBeCreatedWithoutADevice) {
  if (model::cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is visible here";
  auto m = model::Model::build({"mlp", {8}, {1, 4, 4}, 3});
  ASSERT_TRUE(m.ok());
  auto t = model::GpuTrainer::create(m.value(), 0, 64);
  ASSERT_FALSE(t.ok());
  EXPECT_FALSE(t.status().message().empty());
}


TEST(DeviceReduceConfig, DefaultsToAutoAndAcceptsEachPath) {
  auto d = parse("");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(std::string(fedsilo::config::name(d->device.reduce)), "auto");
  for (const char* path : {"auto", "nccl", "host"}) {
    auto c = parse(std::string("[device]\nkind = \"cuda\"\nreduce = \"") + path + "\"\n");
    ASSERT_TRUE(c.ok()) << path << ": " << c.status().to_string();
    EXPECT_EQ(std::string(fedsilo::config::name(c->device.reduce)), path);
    auto again = config::parse_config(config::to_toml(c.value()), "canonical.toml");
    ASSERT_TRUE(again.ok()) << again.status().to_string();
    EXPECT_EQ(std::string(fedsilo::config::name(again->device.reduce)), path);
  }
}

TEST(DeviceReduceConfig, UnknownPathIsRejectedNamingTheKeyAndValue) {
  auto c = parse("[device]\nkind = \"cuda\"\nreduce = \"mpi\"\n");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  const std::string m = c.status().message();
  EXPECT_NE(m.find("device.reduce"), std::string::npos) << m;
  EXPECT_NE(m.find("'mpi'"), std::string::npos) << m;
  EXPECT_NE(m.find("auto, nccl, host"), std::string::npos) << m;
  auto t = parse("[device]\nreduce = 2\n");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("device.reduce"), std::string::npos) << t.status().message();
}

TEST(DeviceReduceConfig, IncompatibleSettingsNameBoth) {
  auto cpu = parse("[device]\nreduce = \"nccl\"\n");
  ASSERT_FALSE(cpu.ok());
  EXPECT_NE(cpu.status().message().find("device.reduce"), std::string::npos);
  EXPECT_NE(cpu.status().message().find("device.kind"), std::string::npos) << cpu.status().message();
  auto topk = parse("[device]\nkind = \"cuda\"\nreduce = \"nccl\"\n[compression]\nmethod = \"topk\"\n");
  ASSERT_FALSE(topk.ok());
  EXPECT_NE(topk.status().message().find("device.reduce"), std::string::npos);
  EXPECT_NE(topk.status().message().find("compression.method"), std::string::npos)
      << topk.status().message();
  // Compressed updates are summed on the host whatever device.reduce says: a reduce the user
  // wrote would have no effect, so it is refused naming both keys.
  auto host = parse("[device]\nkind = \"auto\"\nreduce = \"host\"\n[compression]\nmethod = \"topk\"\n");
  ASSERT_FALSE(host.ok());
  EXPECT_NE(host.status().message().find("device.reduce"), std::string::npos);
  EXPECT_NE(host.status().message().find("compression.method"), std::string::npos) << host.status().message();
  EXPECT_TRUE(parse("[device]\nkind = \"auto\"\n[compression]\nmethod = \"topk\"\n").ok());
}

TEST(DeviceReduceConfig, DefaultLeavesTheResumeHashAndOthersEnterIt) {
  auto plain = parse("[device]\nkind = \"cuda\"\n");
  auto explicit_auto = parse("[device]\nkind = \"cuda\"\nreduce = \"auto\"\n");
  auto host = parse("[device]\nkind = \"cuda\"\nreduce = \"host\"\n");
  ASSERT_TRUE(plain.ok() && explicit_auto.ok() && host.ok());
  EXPECT_EQ(config::resume_hash(explicit_auto.value()), config::resume_hash(plain.value()));
  EXPECT_NE(config::resume_hash(host.value()), config::resume_hash(plain.value()));
}

TEST(DeviceAllreduceCheck, UnknownPathNamesTheKey) {
  const Status s = mpi::DeviceAllreduce::check("ring", 0);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("device.reduce = \"ring\""), std::string::npos) << s.message();
}

TEST(DeviceAllreduceCheck, WithoutCudaOrADeviceIsAClearError) {
  // create() runs this check on every rank and agrees on it before any CUDA or NCCL call.
  if (model::cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is visible here";
  for (const char* path : {"auto", "host", "nccl"}) {
    const Status s = mpi::DeviceAllreduce::check(path, 0);
    ASSERT_FALSE(s.ok()) << path;
    const std::string m = s.message();
    EXPECT_NE(m.find(std::string("device.reduce = \"") + path + "\""), std::string::npos) << m;
    if (!mpi::DeviceAllreduce::cuda_built()) {
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << m;
      EXPECT_NE(m.find("built without CUDA"), std::string::npos) << m;
    } else if (std::string(path) == "nccl" && !mpi::DeviceAllreduce::nccl_built()) {
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << m;
      EXPECT_NE(m.find("built without NCCL"), std::string::npos) << m;
    } else {
      EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << m;
      EXPECT_NE(m.find("no CUDA device is visible"), std::string::npos) << m;
    }
  }
}

TEST(DeviceAllreduceCheck, NcclWithoutNcclInTheBuildNamesTheOption) {
  if (!mpi::DeviceAllreduce::cuda_built() || mpi::DeviceAllreduce::nccl_built()) {
    GTEST_SKIP() << "needs a build with CUDA and without NCCL";
  }
  const Status s = mpi::DeviceAllreduce::check("nccl", 0);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("FEDSILO_NCCL"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace fedsilo
