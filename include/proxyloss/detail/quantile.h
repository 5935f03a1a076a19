// The quantile of a 1-D tensor by selection (O(n), no sort), equal to
// torch::quantile for its five interpolation modes, with no size limit.
#pragma once

#include <torch/types.h>

#include <string>

namespace proxyloss {
namespace detail {

enum class QuantileInterpolation { Linear, Lower, Higher, Nearest, Midpoint };

// "linear", "lower", "higher", "nearest" or "midpoint"; anything else throws
// c10::Error naming `what` (the option) and the value.
QuantileInterpolation parse_interpolation(const std::string& name,
                                          const std::string& what);

// The q-quantile (q in [0, 1]) of `values` (1-D, float32 or float64, any
// device, at least one element), as torch::quantile computes it: the position
// r = q * (n - 1) in the values' dtype; lower/higher/nearest take the value at
// floor/ceil/round-half-even of r, linear lerps between floor and ceil with
// weight r - floor(r), midpoint with weight 1/2 (torch's lerp formula). NaN if
// any value is NaN. Returns a 0-dim tensor of the values' dtype and device;
// no gradient.
torch::Tensor quantile_by_selection(const torch::Tensor& values, double q,
                                    QuantileInterpolation interpolation);

} // namespace detail
} // namespace proxyloss
