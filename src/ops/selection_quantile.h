// The quantile by selection behind proxyloss::selection_quantile: O(M) per
// column (no sort), equal to torch::quantile for its five interpolation
// modes, with no size limit.
//
// Op contract (every implementation): values [M] or [M, C] float32/float64,
// q in [0, 1]; M = 0 gives NaN per column (torch::quantile raises instead:
// the empty pool of a ranking loss needs no branch). Per column, as torch::quantile
// computes it: the position r = q (M - 1) (in the values' dtype, or in float64 on
// LibTorch releases that compute ranks there: quantile_ranks_in_double); lower / higher /
// nearest take the value at floor / ceil / round-half-even of r; linear lerps between
// floor and ceil with weight r - floor(r), midpoint with weight 1/2 (torch's
// lerp formula). NaN for a column holding a NaN. Returns a 0-dim tensor for
// [M], [C] for [M, C], in the values' dtype; never differentiable.
//
// proxyloss::selection_quantiles(values [n], levels [L], interpolation):
// the quantiles of one vector at L levels (levels in the values' dtype, each
// in [0, 1]), [L], each exactly what selection_quantile (and torch::quantile)
// gives for that level; one multi-selection of the distinct ranks the
// levels read (O(n log L)); all NaN for n = 0 or a NaN in values.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/string_view.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace proxyloss {
namespace ops_impl {

enum class QuantileInterpolation { Linear, Lower, Higher, Nearest, Midpoint };

// "linear", "lower", "higher", "nearest" or "midpoint"; anything else throws
// c10::Error naming `what` (the option) and the value.
QuantileInterpolation parse_interpolation(c10::string_view name, const std::string& what);

// Which sorted positions a quantile reads and how it combines them.
struct QuantilePosition {
  int64_t below;       // 0-based rank of the lower value
  bool interpolate;    // linear/midpoint: lerp(lower, upper, weight), always (as
                       // torch: lerp(-inf, -inf, 0) is NaN)
  bool distinct_upper; // the upper value is the one at rank below + 1 (else
                       // upper = lower)
  double weight;       // lerp weight (in the values' dtype)
};

// The position of the q-quantile of n values of dtype T, with the rank
// computed in R: r = R(T(q)) * R(n - 1) (q first rounded to the values' dtype,
// as torch::quantile takes it), the lerp weight r - floor(r) rounded to T.
template <typename R, typename T>
QuantilePosition quantile_position_in(int64_t n, double q, QuantileInterpolation mode) {
  const int64_t last = n - 1;
  R rank = static_cast<R>(static_cast<T>(q)) * static_cast<R>(last);
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
  const int64_t below = std::min<int64_t>(static_cast<int64_t>(rank), last);
  const int64_t above = std::min<int64_t>(static_cast<int64_t>(std::ceil(rank)), last);
  const bool interpolating =
      mode == QuantileInterpolation::Linear || mode == QuantileInterpolation::Midpoint;
  const T weight = mode == QuantileInterpolation::Midpoint
                       ? T(0.5)
                       : static_cast<T>(rank - static_cast<R>(below));
  return {below, interpolating, interpolating && above > below,
          static_cast<double>(weight)};
}

// Whether this LibTorch's torch::quantile computes the rank of float32 values
// in float64 (PyTorch PR #187574, 2026: ranks in double where the device has
// it, so that sizes beyond 2^24 are exact) rather than in float32 (before).
// Probed once against at::quantile, so that the selection equals
// torch::quantile of the LibTorch it runs with, whichever release.
bool quantile_ranks_in_double();

// The position of the q-quantile of n values of dtype T, as torch does.
template <typename T>
QuantilePosition quantile_position(int64_t n, double q, QuantileInterpolation mode) {
  return quantile_ranks_in_double() ? quantile_position_in<double, T>(n, q, mode)
                                    : quantile_position_in<T, T>(n, q, mode);
}

// torch's lerp: start + w (end - start) for |w| < 1/2, else
// end - (end - start)(1 - w), exact at both ends. Torch's CPU kernels
// evaluate both with a fused multiply-add (explicitly in 2.x, by compiler
// contraction in 1.13's AVX2 build), so std::fma reproduces its rounding.
template <typename T>
T torch_lerp(T start, T end, T weight) {
  const T span = end - start;
  return std::abs(weight) < T(0.5) ? std::fma(weight, span, start)
                                   : std::fma(-span, T(1) - weight, end);
}

// Checks the op contract above (the ops' shared argument checks).
// The result for M = 0: NaN, a 0-dim tensor for [0], [C] for [0, C].
at::Tensor quantile_of_nothing(const at::Tensor& values);

void check_selection_quantile_inputs(const at::Tensor& values, double q);

void check_selection_quantiles_inputs(const at::Tensor& values, const at::Tensor& levels);

// The levels on the host as doubles (exact: each is a value of the values'
// dtype).
std::vector<double> levels_on_host(const at::Tensor& levels);

at::Tensor selection_quantiles_cpu(const at::Tensor& values, const at::Tensor& levels,
                                   c10::string_view interpolation);
at::Tensor selection_quantiles_generic(const at::Tensor& values, const at::Tensor& levels,
                                       c10::string_view interpolation);

at::Tensor selection_quantile_cpu(const at::Tensor& values, double q,
                                  c10::string_view interpolation);
at::Tensor selection_quantile_generic(const at::Tensor& values, double q,
                                      c10::string_view interpolation);

} // namespace ops_impl
} // namespace proxyloss
