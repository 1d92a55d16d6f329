// Uses the installed fedsilo library: builds a model, initialises it, checks a known count.
#include <cstdio>
#include <vector>

#include "config/config.h"
#include "model/model.h"

int main() {
  auto net = fedsilo::model::Model::build({"niid-cnn", {}, {1, 28, 28}, 10});
  if (!net.ok()) {
    std::fprintf(stderr, "%s\n", net.status().message().c_str());
    return 1;
  }
  std::vector<float> params(static_cast<size_t>(net->num_params()));
  net->init_params(params, 1);
  auto cfg = fedsilo::config::parse_config("[data]\nsilos_dir = \"x\"\n", "inline");
  std::printf("niid-cnn parameters %lld, config ok %d\n",
              static_cast<long long>(net->num_params()), cfg.ok() ? 1 : 0);
  return net->num_params() == 44426 && cfg.ok() ? 0 : 1;
}
