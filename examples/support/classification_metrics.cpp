#include "support/classification_metrics.h"

#include <torch/torch.h>

namespace demo {

double accuracy(const torch::Tensor& logits, const torch::Tensor& targets) {
  const auto predicted = logits.argmax(/*dim=*/1);
  return predicted.eq(targets).to(torch::kDouble).mean().item<double>();
}

double macro_f1(const torch::Tensor& logits, const torch::Tensor& targets) {
  const int64_t classes = logits.size(1);
  const auto predicted = logits.argmax(/*dim=*/1);
  double sum = 0.0;
  for (int64_t c = 0; c < classes; ++c) {
    const auto is_predicted = predicted.eq(c);
    const auto is_target = targets.eq(c);
    const double tp = (is_predicted & is_target).sum().item<double>();
    const double fp = (is_predicted & ~is_target).sum().item<double>();
    const double fn = (~is_predicted & is_target).sum().item<double>();
    const double denominator = 2.0 * tp + fp + fn;
    sum += denominator > 0.0 ? 2.0 * tp / denominator : 0.0;
  }
  return sum / static_cast<double>(classes);
}

} // namespace demo
