// Binary cross-entropy on one logit per row, with the integer 0/1 targets
// the ranking losses take: the warmup loss of the binary demos (the seed's
// BCEWarmupLoss), usable inside proxyloss::LossWarmupWrapper.
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace demo {

class BinaryCrossEntropyLossImpl
    : public torch::nn::Cloneable<BinaryCrossEntropyLossImpl> {
 public:
  void reset() override {}
  // logits [N, 1] (or [N]) floating, targets [N] integer 0/1: the mean of
  // binary_cross_entropy_with_logits.
  torch::Tensor forward(const torch::Tensor& logits, const torch::Tensor& targets);
};

TORCH_MODULE(BinaryCrossEntropyLoss);

} // namespace demo
