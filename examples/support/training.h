// The demos' training and evaluation loops: mini-batch SGD over a shuffled
// dataset, and no-grad prediction.
#pragma once

#include "support/make_classification.h"

#include <ATen/core/Generator.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>

namespace demo {

// loss(logits, targets) -> scalar tensor.
using LossFunction =
    std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>;

struct TrainEpochOptions {
  int64_t batch_size = 512;
  // Draws the batch order; undefined: torch's global generator. A run of its
  // own generator is repeatable even beside other runs on other threads.
  at::Generator generator;
  // Called before each batch with the global step (counted from 0 over the
  // whole run): LossWarmupWrapper::on_train_batch_start.
  std::function<void(int64_t)> on_batch_start;
};

// One epoch: the rows in a random order (torch::randperm), batches of batch_size (the
// last one smaller), a step of `optimizer` on each. Advances `global_step` by the number
// of batches and returns the mean batch loss.
double train_epoch(torch::nn::Sequential& model, torch::optim::Optimizer& optimizer,
                   const LossFunction& loss, const Dataset& data,
                   const TrainEpochOptions& options, int64_t& global_step);

// A CPU generator seeded with `seed`, for TrainEpochOptions::generator.
at::Generator seeded_generator(uint64_t seed);

// The model's outputs on `x` in eval mode without gradients; the model is
// put back in training mode after.
torch::Tensor predict(torch::nn::Sequential& model, const torch::Tensor& x);

} // namespace demo
