// Device-generic implementation of proxyloss::selection_quantile: one
// at::kthvalue over dim 0 (two when interpolating) for all columns at once;
// the positions depend on M only, so no value is read on the host.
#include "ops/selection_quantile.h"

#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <limits>
#include <vector>

namespace proxyloss {
namespace ops_impl {

at::Tensor selection_quantile_generic(const at::Tensor& values_in, double q,
                                      c10::string_view interpolation) {
  check_selection_quantile_inputs(values_in, q);
  if (values_in.size(0) == 0) {
    return quantile_of_nothing(values_in);
  }
  const auto mode =
      parse_interpolation(interpolation, "proxyloss::selection_quantile: interpolation");
  const auto values = values_in.detach();
  const int64_t M = values.size(0);
  QuantilePosition position{};
  AT_DISPATCH_FLOATING_TYPES(values.scalar_type(), "selection_quantile_position",
                             [&] { position = quantile_position<scalar_t>(M, q, mode); });
  auto out = std::get<0>(at::kthvalue(values, position.below + 1, /*dim=*/0));
  if (position.interpolate) {
    const auto above =
        position.distinct_upper
            ? std::get<0>(at::kthvalue(values, position.below + 2, /*dim=*/0))
            : out;
    // torch's lerp with the weight in the values' dtype (FMA rounding on the
    // CPU; other devices may differ by an ulp).
    out = at::lerp(out, above, position.weight);
  }
  const auto nan =
      at::full({}, std::numeric_limits<double>::quiet_NaN(), values.options());
  return at::where(at::isnan(values).any(/*dim=*/0), nan, out);
}

// One sort, then each level's ranks gathered (the positions depend on n and
// the levels only).
at::Tensor selection_quantiles_generic(const at::Tensor& values_in,
                                       const at::Tensor& levels,
                                       c10::string_view interpolation) {
  check_selection_quantiles_inputs(values_in, levels);
  const auto mode =
      parse_interpolation(interpolation, "proxyloss::selection_quantiles: interpolation");
  const auto values = values_in.detach();
  const int64_t n = values.size(0);
  const auto nan = at::full({levels.size(0)}, std::numeric_limits<double>::quiet_NaN(),
                            values.options());
  if (n == 0 || levels.size(0) == 0) {
    return nan;
  }
  const auto sorted = std::get<0>(values.sort());
  std::vector<int64_t> below;
  std::vector<int64_t> above;
  std::vector<double> weight;
  for (const double q : levels_on_host(levels)) {
    QuantilePosition position{};
    AT_DISPATCH_FLOATING_TYPES(values.scalar_type(), "selection_quantiles_position", [&] {
      position = quantile_position<scalar_t>(n, q, mode);
    });
    below.push_back(position.below);
    above.push_back(position.distinct_upper ? position.below + 1 : position.below);
    weight.push_back(position.interpolate ? position.weight : 0.0);
  }
  const auto on_device = [&](const std::vector<int64_t>& ranks) {
    return at::tensor(ranks, at::TensorOptions().dtype(at::kLong)).to(values.device());
  };
  const auto lower = sorted.index_select(0, on_device(below));
  const auto upper = sorted.index_select(0, on_device(above));
  // lower, higher and nearest read one rank; linear and midpoint always
  // lerp (as torch: lerp(-inf, -inf, 0) is NaN).
  const bool interpolating =
      mode == QuantileInterpolation::Linear || mode == QuantileInterpolation::Midpoint;
  const auto out =
      interpolating ? at::lerp(lower, upper,
                               at::tensor(weight, at::TensorOptions().dtype(at::kDouble))
                                   .to(values.options()))
                    : lower;
  return at::where(at::isnan(values).any(), nan, out);
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("selection_quantile", &proxyloss::ops_impl::selection_quantile_generic);
  m.impl("selection_quantiles", &proxyloss::ops_impl::selection_quantiles_generic);
}
