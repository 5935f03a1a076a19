#include "support/mlp.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/linear.h>

#include <stdexcept>

namespace demo {

torch::nn::Sequential make_mlp(const std::vector<int64_t>& widths) {
  if (widths.size() < 2) {
    throw std::invalid_argument("make_mlp: needs an input and an output width");
  }
  torch::nn::Sequential mlp;
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    if (i > 0) {
      mlp->push_back(torch::nn::ReLU());
    }
    mlp->push_back(torch::nn::Linear(widths[i], widths[i + 1]));
  }
  return mlp;
}

} // namespace demo
