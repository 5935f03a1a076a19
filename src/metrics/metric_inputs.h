// Input checks and conversions shared by the metrics.
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

namespace proxyloss {
namespace metrics {
namespace detail {

// Scores [N] floating (or [N, 1]) and labels [N] integer or bool, as double
// scores and 0/1 labels (non-zero = positive) on the CPU. Throws c10::Error
// naming `metric` and the argument for bad shapes, dtypes or non-finite
// scores.
struct BinaryInputs {
  std::vector<double> scores;
  std::vector<char> positive;
  int64_t positives = 0;
};
BinaryInputs binary_inputs(const std::string& metric, const torch::Tensor& scores,
                           const torch::Tensor& labels);

// Probabilities [N, C] floating and targets [N] integer in [0, C), as a
// contiguous double [N, C] tensor and int64 [N] tensor on the CPU.
std::pair<torch::Tensor, torch::Tensor> multiclass_inputs(const std::string& metric,
                                                          const torch::Tensor& probs,
                                                          const torch::Tensor& targets);

} // namespace detail
} // namespace metrics
} // namespace proxyloss
