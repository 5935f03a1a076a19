// The argument checks every implementation of proxyloss::soft_recall shares.
#include "ops/soft_recall.h"

#include "ops/sample_weights.h"

#include <c10/util/Exception.h>

#include <cmath>

namespace proxyloss {
namespace ops_impl {

void check_soft_recall_inputs(const at::Tensor& scores, const at::Tensor& labels,
                              const at::Tensor& thresholds, double temperature,
                              const optional<at::Tensor>& weights) {
  constexpr const char* kOp = "proxyloss::soft_recall";
  TORCH_CHECK_VALUE(scores.dim() == 2, kOp, ": scores must be 2-D [M, C], got shape ",
                    scores.sizes());
  TORCH_CHECK_VALUE(
      scores.scalar_type() == at::kFloat || scores.scalar_type() == at::kDouble, kOp,
      ": scores must be float32 or float64, got ", scores.scalar_type());
  TORCH_CHECK_VALUE(labels.dim() == 1 && labels.size(0) == scores.size(0), kOp,
                    ": labels must be 1-D [M] with M = ", scores.size(0), ", got shape ",
                    labels.sizes());
  TORCH_CHECK_VALUE(labels.scalar_type() == at::kLong, kOp,
                    ": labels must be int64, got ", labels.scalar_type());
  TORCH_CHECK_VALUE(thresholds.dim() == 1 && thresholds.size(0) == scores.size(1), kOp,
                    ": thresholds must be 1-D [C] with C = ", scores.size(1),
                    ", got shape ", thresholds.sizes());
  TORCH_CHECK_VALUE(thresholds.scalar_type() == scores.scalar_type(), kOp,
                    ": thresholds must have the dtype of scores (", scores.scalar_type(),
                    "), got ", thresholds.scalar_type());
  for (const auto* tensor : {&labels, &thresholds}) {
    TORCH_CHECK_VALUE(tensor->device() == scores.device(), kOp,
                      ": labels and thresholds must be on the device of scores (",
                      scores.device(), "), got ", tensor->device());
  }
  TORCH_CHECK_VALUE(std::isfinite(temperature) && temperature > 0, kOp,
                    ": temperature must be finite and > 0, got ", temperature);
  if (weights.has_value()) {
    check_pool_weights(kOp, scores, *weights);
  }
}

} // namespace ops_impl
} // namespace proxyloss
