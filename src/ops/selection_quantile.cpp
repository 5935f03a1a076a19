// What the implementations of proxyloss::selection_quantile share.
#include "ops/selection_quantile.h"

#include <c10/util/Exception.h>

namespace proxyloss {
namespace ops_impl {

QuantileInterpolation parse_interpolation(c10::string_view name,
                                          const std::string& what) {
  if (name == "linear") {
    return QuantileInterpolation::Linear;
  }
  if (name == "lower") {
    return QuantileInterpolation::Lower;
  }
  if (name == "higher") {
    return QuantileInterpolation::Higher;
  }
  if (name == "nearest") {
    return QuantileInterpolation::Nearest;
  }
  TORCH_CHECK_VALUE(name == "midpoint", what,
                    " must be one of linear, lower, higher, nearest, midpoint (as "
                    "torch::quantile), got \"",
                    std::string(name.data(), name.size()), "\"");
  return QuantileInterpolation::Midpoint;
}

void check_selection_quantile_inputs(const at::Tensor& values, double q) {
  constexpr const char* kOp = "proxyloss::selection_quantile";
  TORCH_CHECK_VALUE((values.dim() == 1 || values.dim() == 2) && values.size(0) > 0, kOp,
                    ": values must be [M] or [M, C] with M >= 1 (non-empty), got shape ",
                    values.sizes());
  TORCH_CHECK_VALUE(
      values.scalar_type() == at::kFloat || values.scalar_type() == at::kDouble, kOp,
      ": values must be float32 or float64, got ", values.scalar_type());
  TORCH_CHECK_VALUE(q >= 0 && q <= 1, kOp, ": q must be in [0, 1], got ", q);
}

} // namespace ops_impl
} // namespace proxyloss
