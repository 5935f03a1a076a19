#include "proxyloss/detail/quantile.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace proxyloss {
namespace detail {
namespace {

// The k-th and (k+1)-th smallest values (0-based), k + 1 <= n - 1 when
// `need_next`. CPU: one nth_element and a min over the upper part, O(n).
// Other devices: at::kthvalue.
template <typename T>
std::pair<T, T> select_pair(const at::Tensor& values, int64_t k, bool need_next) {
  if (values.device().is_cpu()) {
    const auto contiguous = values.contiguous();
    const T* data = contiguous.data_ptr<T>();
    std::vector<T> buffer(data, data + contiguous.numel());
    std::nth_element(buffer.begin(), buffer.begin() + k, buffer.end());
    const T below = buffer[k];
    const T next =
        need_next ? *std::min_element(buffer.begin() + k + 1, buffer.end()) : below;
    return {below, next};
  }
  const T below = std::get<0>(at::kthvalue(values, k + 1)).template item<T>();
  const T next =
      need_next ? std::get<0>(at::kthvalue(values, k + 2)).template item<T>() : below;
  return {below, next};
}

// torch's lerp: start + w (end - start) for |w| < 1/2, else
// end - (end - start)(1 - w), exact at both ends. Torch's CPU kernels
// evaluate both with a fused multiply-add (explicitly in 2.x, by compiler
// contraction in 1.13's AVX2 build), so std::fma reproduces its rounding.
template <typename T>
T lerp(T start, T end, T weight) {
  const T span = end - start;
  return std::abs(weight) < T(0.5) ? std::fma(weight, span, start)
                                   : std::fma(-span, T(1) - weight, end);
}

template <typename T>
T quantile_value(const at::Tensor& values, double q, QuantileInterpolation mode) {
  const int64_t last = values.numel() - 1;
  // As torch::quantile: q becomes a tensor of the values' dtype, and the
  // position is computed in that dtype.
  T rank = static_cast<T>(q) * static_cast<T>(last);
  switch (mode) {
    case QuantileInterpolation::Lower:
      rank = std::floor(rank);
      break;
    case QuantileInterpolation::Higher:
      rank = std::ceil(rank);
      break;
    case QuantileInterpolation::Nearest:
      rank = std::nearbyint(rank); // round half to even, as torch.round
      break;
    default:
      break;
  }
  const auto below_index = std::min<int64_t>(static_cast<int64_t>(rank), last);
  const bool interpolate =
      mode == QuantileInterpolation::Linear || mode == QuantileInterpolation::Midpoint;
  const auto above_index = std::min<int64_t>(static_cast<int64_t>(std::ceil(rank)), last);
  const auto pair =
      select_pair<T>(values, below_index, interpolate && above_index > below_index);
  if (!interpolate) {
    return pair.first;
  }
  const T weight = mode == QuantileInterpolation::Midpoint
                       ? T(0.5)
                       : rank - static_cast<T>(below_index);
  return lerp(pair.first, pair.second, weight);
}

} // namespace

QuantileInterpolation parse_interpolation(const std::string& name,
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
  TORCH_CHECK(name == "midpoint", what,
              " must be one of linear, lower, higher, nearest, midpoint (as "
              "torch::quantile), got \"",
              name, "\"");
  return QuantileInterpolation::Midpoint;
}

torch::Tensor quantile_by_selection(const torch::Tensor& values_in, double q,
                                    QuantileInterpolation interpolation) {
  TORCH_CHECK(values_in.dim() == 1 && values_in.numel() > 0,
              "quantile_by_selection: values must be 1-D and non-empty, got shape ",
              values_in.sizes());
  TORCH_CHECK(
      values_in.scalar_type() == at::kFloat || values_in.scalar_type() == at::kDouble,
      "quantile_by_selection: values must be float32 or float64, got ",
      values_in.scalar_type());
  TORCH_CHECK(q >= 0 && q <= 1, "quantile_by_selection: q must be in [0, 1], got ", q);
  const auto values = values_in.detach();
  if (at::isnan(values).any().item<bool>()) {
    return at::full({}, std::numeric_limits<double>::quiet_NaN(), values.options());
  }
  at::Tensor result;
  AT_DISPATCH_FLOATING_TYPES(values.scalar_type(), "quantile_by_selection", [&] {
    result = at::full({}, quantile_value<scalar_t>(values, q, interpolation),
                      values.options());
  });
  return result;
}

} // namespace detail
} // namespace proxyloss
