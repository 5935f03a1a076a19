// A loss that reports its per-class values from the same pass as the loss:
// the seed's `return_per_class=True`. LossWarmupWrapper forwards
// forward_per_class to a main loss that implements it.
#pragma once

#include <torch/types.h>

#include <tuple>

namespace proxyloss {

class PerClassLoss {
 public:
  virtual ~PerClassLoss() = default;
  // (loss, per_class [C] with NaN for degenerate classes, valid [C] bool);
  // sample_weight undefined or per-row weights [N].
  virtual std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> forward_per_class(
      const torch::Tensor& logits, const torch::Tensor& targets,
      const torch::Tensor& sample_weight = {}) = 0;
};

} // namespace proxyloss
