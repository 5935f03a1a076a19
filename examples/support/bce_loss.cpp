#include "support/bce_loss.h"

#include <torch/nn/functional/loss.h>

namespace demo {

torch::Tensor BinaryCrossEntropyLossImpl::forward(const torch::Tensor& logits,
                                                  const torch::Tensor& targets) {
  return torch::nn::functional::binary_cross_entropy_with_logits(
      logits.reshape({-1}), targets.reshape({-1}).to(logits.scalar_type()));
}

} // namespace demo
