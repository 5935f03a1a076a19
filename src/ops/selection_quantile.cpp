// What the implementations of proxyloss::selection_quantile share.
#include "ops/selection_quantile.h"

#include <c10/util/Exception.h>

#include <limits>

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

namespace {

// q (n - 1) = 0.995 * 236 is 234.82000732 with a float32 rank and 234.82000113
// with a float64 one; on values whose sorted ranks 234 and 235 are 0 and 1,
// torch::quantile returns the weight itself, which tells the two apart.
bool probe_quantile_ranks_in_double() {
  constexpr int64_t n = 237;
  constexpr double q = 0.995;
  const auto values =
      at::arange(n, at::TensorOptions().dtype(at::kFloat)).ge(235).to(at::kFloat);
  const double got =
      at::quantile(values, q, c10::nullopt, false, "linear").item<double>();
  return got ==
         quantile_position_in<double, float>(n, q, QuantileInterpolation::Linear).weight;
}

} // namespace

bool quantile_ranks_in_double() {
  static const bool in_double = probe_quantile_ranks_in_double();
  return in_double;
}

void check_selection_quantile_inputs(const at::Tensor& values, double q) {
  constexpr const char* kOp = "proxyloss::selection_quantile";
  TORCH_CHECK_VALUE(values.dim() == 1 || values.dim() == 2, kOp,
                    ": values must be [M] or [M, C], got shape ", values.sizes());
  TORCH_CHECK_VALUE(
      values.scalar_type() == at::kFloat || values.scalar_type() == at::kDouble, kOp,
      ": values must be float32 or float64, got ", values.scalar_type());
  TORCH_CHECK_VALUE(q >= 0 && q <= 1, kOp, ": q must be in [0, 1], got ", q);
}

void check_selection_quantiles_inputs(const at::Tensor& values,
                                      const at::Tensor& levels) {
  constexpr const char* kOp = "proxyloss::selection_quantiles";
  TORCH_CHECK_VALUE(values.dim() == 1, kOp, ": values must be 1-D [n], got shape ",
                    values.sizes());
  TORCH_CHECK_VALUE(
      values.scalar_type() == at::kFloat || values.scalar_type() == at::kDouble, kOp,
      ": values must be float32 or float64, got ", values.scalar_type());
  TORCH_CHECK_VALUE(levels.dim() == 1 && levels.scalar_type() == values.scalar_type(),
                    kOp, ": levels must be 1-D of the values' dtype (",
                    values.scalar_type(), "), got shape ", levels.sizes(), " and dtype ",
                    levels.scalar_type());
  for (const double q : levels_on_host(levels)) {
    TORCH_CHECK_VALUE(q >= 0 && q <= 1, kOp, ": levels must be in [0, 1], got ", q);
  }
}

std::vector<double> levels_on_host(const at::Tensor& levels) {
  const auto host = levels.detach().to(at::kCPU, at::kDouble).contiguous();
  const double* data = host.data_ptr<double>();
  return std::vector<double>(data, data + host.numel());
}

at::Tensor quantile_of_nothing(const at::Tensor& values) {
  return values.dim() == 1
             ? at::full({}, std::numeric_limits<double>::quiet_NaN(), values.options())
             : at::full({values.size(1)}, std::numeric_limits<double>::quiet_NaN(),
                        values.options());
}

} // namespace ops_impl
} // namespace proxyloss
