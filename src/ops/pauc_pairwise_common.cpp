// The argument checks every implementation of proxyloss::pauc_pairwise
// shares, and the CPU kernel's tail bound.
#include "ops/pauc_pairwise.h"

#include "ops/sample_weights.h"

#include <c10/util/Exception.h>

#include <cmath>

namespace proxyloss {
namespace ops_impl {

void check_pauc_pairwise_inputs(const at::Tensor& positives, const at::Tensor& negatives,
                                double tau, const optional<at::Tensor>& weights) {
  constexpr const char* kOp = "proxyloss::pauc_pairwise";
  TORCH_CHECK_VALUE(positives.dim() == 1, kOp, ": positives must be 1-D [P], got shape ",
                    positives.sizes());
  TORCH_CHECK_VALUE(negatives.dim() == 1, kOp, ": negatives must be 1-D [B], got shape ",
                    negatives.sizes());
  TORCH_CHECK_VALUE(
      positives.scalar_type() == at::kFloat || positives.scalar_type() == at::kDouble,
      kOp, ": positives must be float32 or float64, got ", positives.scalar_type());
  TORCH_CHECK_VALUE(negatives.scalar_type() == positives.scalar_type(), kOp,
                    ": negatives must have the dtype of positives (",
                    positives.scalar_type(), "), got ", negatives.scalar_type());
  TORCH_CHECK_VALUE(negatives.device() == positives.device(), kOp,
                    ": negatives must be on the device of positives (",
                    positives.device(), "), got ", negatives.device());
  TORCH_CHECK_VALUE(std::isfinite(tau) && tau > 0, kOp,
                    ": tau must be finite and > 0, got ", tau);
  if (weights.has_value()) {
    check_pool_weights(kOp, positives, *weights);
  }
}

bool pauc_pairwise_undefined(const at::Tensor& positives, const at::Tensor& negatives) {
  return positives.size(0) == 0 || negatives.size(0) == 0 ||
         at::isnan(positives).any().item<bool>() ||
         at::isnan(negatives).any().item<bool>();
}

double pauc_pairwise_tail_bound(at::ScalarType dtype) {
  return dtype == at::kFloat ? 18.0 : 38.0;
}

} // namespace ops_impl
} // namespace proxyloss
