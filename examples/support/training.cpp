#include "support/training.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>

namespace demo {

double train_epoch(torch::nn::Sequential& model, torch::optim::Optimizer& optimizer,
                   const LossFunction& loss, const Dataset& data,
                   const TrainEpochOptions& options, int64_t& global_step) {
  model->train();
  const int64_t n = data.x.size(0);
  const auto order = torch::randperm(n, options.generator, torch::kLong);
  double loss_sum = 0.0;
  int64_t batches = 0;
  for (int64_t start = 0; start < n; start += options.batch_size) {
    const auto rows = order.narrow(0, start, std::min(options.batch_size, n - start));
    if (options.on_batch_start) {
      options.on_batch_start(global_step);
    }
    const auto value =
        loss(model->forward(data.x.index_select(0, rows)), data.y.index_select(0, rows));
    optimizer.zero_grad();
    value.backward();
    optimizer.step();
    loss_sum += value.item<double>();
    ++batches;
    ++global_step;
  }
  return batches ? loss_sum / static_cast<double>(batches) : 0.0;
}

at::Generator seeded_generator(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

torch::Tensor predict(torch::nn::Sequential& model, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  model->eval();
  auto out = model->forward(x);
  model->train();
  return out;
}

} // namespace demo
