// One silo's DP-SGD local round from given initial weights: the native half of
// benchmarks/privacy/dp_round_check.py, which runs Opacus from the same weights and compares the
// two (issue 16's "fedsilo ahead of Opacus" diagnostic). A diagnostic, not a timed benchmark.
//
// Usage: dp_round_check TRAIN_H5 INIT_BIN OUT_BIN BATCH SIGMA CLIP LR MOMENTUM EPOCHS KEY_SEED
// Trains niid-cnn (PyTorch's parameter order: conv1.weight, conv1.bias, ..., fc3.bias) from the
// float32 values in INIT_BIN with train_local's DP-SGD path exactly as `fedsilo train` calls it
// for round 1 of silo 0: Poisson rate BATCH / N, ceil(N / BATCH) steps an epoch, clip CLIP,
// noise multiplier SIGMA, division by BATCH, SGD(LR, MOMENTUM) with a fresh momentum buffer. The
// secret streams come from the tests-only key of (KEY_SEED, silo 0), so runs are repeatable.
// Writes the trained parameters to OUT_BIN (float32) and prints steps, samples and mean loss.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "model/model.h"
#include "model/trainer.h"
#include "privacy/dp_random.h"

namespace {

using namespace fedsilo;

int fail(const std::string& what) {
  std::fprintf(stderr, "dp_round_check: %s\n", what.c_str());
  return 2;
}

double number(const char* text, const char* name) {
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  if (end == text || *end != '\0') {
    std::fprintf(stderr, "dp_round_check: %s = '%s' is not a number\n", name, text);
    std::exit(2);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 11) {
    return fail("usage: dp_round_check TRAIN_H5 INIT_BIN OUT_BIN BATCH SIGMA CLIP LR MOMENTUM "
                "EPOCHS KEY_SEED");
  }
  auto ds = data::read_dataset(argv[1]);
  if (!ds.ok()) return fail(ds.status().message());
  model::ModelSpec spec;
  spec.arch = "niid-cnn";
  spec.input_chw = ds->chw;
  spec.num_classes = ds->num_classes;
  auto model = model::Model::build(spec);
  if (!model.ok()) return fail(model.status().message());

  const auto np = static_cast<size_t>(model->num_params());
  std::vector<float> params(np);
  std::ifstream in(argv[2], std::ios::binary);
  in.read(reinterpret_cast<char*>(params.data()), static_cast<std::streamsize>(np * sizeof(float)));
  if (!in || in.peek() != EOF) {
    return fail(std::string(argv[2]) + ": expected exactly " + std::to_string(np) +
                " float32 values (niid-cnn's parameters)");
  }
  const std::vector<float> global = params;

  auto key = privacy::insecure_test_key(static_cast<uint64_t>(number(argv[10], "KEY_SEED")), 0);
  if (!key.ok()) return fail(key.status().message());
  auto random = privacy::RoundRandom::create(*key, 1);
  if (!random.ok()) return fail(random.status().message());

  model::LocalTrainOptions opts;
  opts.batch_size = static_cast<int>(number(argv[4], "BATCH"));
  opts.dp_noise_multiplier = number(argv[5], "SIGMA");
  opts.dp_clip = number(argv[6], "CLIP");
  opts.lr = static_cast<float>(number(argv[7], "LR"));
  opts.momentum = static_cast<float>(number(argv[8], "MOMENTUM"));
  opts.epochs = static_cast<int>(number(argv[9], "EPOCHS"));
  opts.round = 1;
  opts.dp_random = &*random;
  auto stats = model::train_local(*model, params, global, *ds, opts);
  if (!stats.ok()) return fail(stats.status().message());

  const std::string out = argv[3];
  {
    std::ofstream f(out + ".tmp", std::ios::binary);
    f.write(reinterpret_cast<const char*>(params.data()),
            static_cast<std::streamsize>(np * sizeof(float)));
    if (!f) return fail(out + ".tmp: write failed");
  }
  if (std::rename((out + ".tmp").c_str(), out.c_str()) != 0) return fail(out + ": rename failed");
  std::printf("steps %lld samples %lld loss %.6f\n", static_cast<long long>(stats->steps),
              static_cast<long long>(stats->samples_processed), stats->mean_loss);
  return 0;
}
