// `fedsilo eval MODEL.h5 --data FILE.h5`: accuracy and loss of a saved model on a data file.
#include <cstdio>
#include <thread>

#include "checkpoint/model_file.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "data/dataset.h"
#include "model/model.h"
#include "model/trainer.h"

namespace fedsilo::cli {

static Status eval(const EvalArgs& args) {
  FEDSILO_ASSIGN_OR_RETURN(checkpoint::LoadedModel loaded, checkpoint::read_model_file(args.model));
  if (loaded.spec.arch == "pytorch") {
    return invalid_argument(args.model + " holds a PyTorch model trained through fedsilo.torch "
                            "(arch \"pytorch\"): fedsilo eval runs the built-in architectures; "
                            "load the run's model.pt into your network and evaluate it with PyTorch");
  }
  FEDSILO_ASSIGN_OR_RETURN(data::Dataset ds, data::read_dataset(args.data));
  if (ds.chw != loaded.spec.input_chw || ds.num_classes != loaded.spec.num_classes) {
    return invalid_argument(
        "--data " + args.data + ": samples are " + std::to_string(ds.chw[0]) + "x" +
        std::to_string(ds.chw[1]) + "x" + std::to_string(ds.chw[2]) + " with " +
        std::to_string(ds.num_classes) + " classes; the model expects " +
        std::to_string(loaded.spec.input_chw[0]) + "x" + std::to_string(loaded.spec.input_chw[1]) +
        "x" + std::to_string(loaded.spec.input_chw[2]) + " with " +
        std::to_string(loaded.spec.num_classes));
  }
  FEDSILO_ASSIGN_OR_RETURN(model::Model net, model::Model::build(loaded.spec));
  if (net.num_params() != static_cast<int64_t>(loaded.params.size())) {
    return corrupt_data(args.model + ": parameter count does not match its arch");
  }
  const int threads = args.threads > 0 ? args.threads
                                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const auto stats = model::evaluate(net, loaded.params, ds, args.batch_size, threads);
  std::printf("model     %s (%s, round %lld)\n", args.model.c_str(), loaded.spec.arch.c_str(),
              static_cast<long long>(loaded.meta.round));
  std::printf("data      %s (%lld samples)\n", args.data.c_str(), static_cast<long long>(stats.samples));
  std::printf("accuracy  %.4f\n", stats.accuracy);
  std::printf("loss      %.4f\n", stats.mean_loss);
  return {};
}

int run_eval(const EvalArgs& args) {
  const Status st = eval(args);
  if (!st.ok()) std::fprintf(stderr, "fedsilo eval: error: %s\n", st.message().c_str());
  return exit_code_for(st);
}

}  // namespace fedsilo::cli
