// Implementations behind the proxyloss::pauc_pairwise op (PAUCAtBudgetLoss's
// pairwise surrogate) and its private halves _pauc_pairwise_forward /
// _pauc_pairwise_backward.
//
// Op contract (all implementations):
//   positives p [P] and negatives b [B], float32/float64 of one dtype and
//   device, tau > 0 finite, weights w [P] (optional; finite, >= 0,
//   constants). With z_ij = (p_i - b_j) / tau:
//     S_i             = sum_j sigmoid(z_ij)
//     per_positive[i] = S_i / B                      (no gradient)
//     pauc            = sum_i w_i S_i / (B W),  W = sum_i w_i   (w = 1 when
//                       not given: the mean over the P x B pairs)
//   NaN (and a NaN gradient) when P = 0, B = 0, W = 0 or an input is NaN.
//   Backward, with sigmoid'(z) = e / (1 + e)^2, e = exp(-|z|):
//     d pauc / d p_i = + w_i / (B W tau) sum_j sigmoid'(z_ij)
//     d pauc / d b_j = - 1 / (B W tau) sum_i w_i sigmoid'(z_ij)
//   Sums are accumulated in double; no [P, B] matrix is formed.
//
// The CPU kernel works on sorted scores. For a pair with z >= H (the high
// tail) sigmoid(z) = 1 - e^-z (1 - e^-z + ...) and sigmoid'(z) = e^-z (1 -
// 2 e^-z + ...); for z <= -H (the low tail) sigmoid(z) = e^z (1 - e^z + ...)
// and sigmoid'(z) = e^z (1 - 2 e^z + ...). So, with H chosen such that
// 2 e^-H is below the unit roundoff u of the dtype (H = 18 for float32:
// 2 e^-18 = 3.0e-8 < 2^-24; H = 38 for float64: 2 e^-38 = 6.3e-17 < 2^-53):
//   - a high-tail pair counts exactly 1 in S_i (relative error of S_i <= e^-H
//     < u, since S_i >= the count) and e^-z in the gradients;
//   - a low-tail pair counts e^z in S_i and in the gradients;
//   - e^{+-z} summed over a tail is one exponential times a re-centred
//     prefix or suffix sum over the sorted scores (every exponent <= 0: no
//     overflow), so each tail costs O(1) per row after O((P + B) log) sorts;
//   - the pairs between (the window, |z| < H) are evaluated one by one.
// Every term is thus within 2 e^-H < u relatively of its exact value, each
// sum is of non-negative terms, and the result is exact to the format's
// rounding (plus the double accumulation's), up to the conditioning of
// exp that any evaluation in floating point has: z (and the tails'
// re-centred exponents) are rounded in double, which moves e^{+-z} by a
// relative |z| u_double (at most ~745 u_double = 8e-14 before e^-|z|
// underflows; the tests allow 4 (1 + |z|max) u_double besides the
// dtype's own rounding). A pair's tail is decided by
// the same double expression (p - b >= H tau, b - p >= H tau) in the forward
// and in both backward passes. Time O((P + B) log(P + B) + sum of window
// sizes), which is O(P B) only when every pair is within H temperatures.
#pragma once

#include "proxyloss/compat.h"

#include <ATen/ATen.h>

#include <tuple>

namespace proxyloss {
namespace ops_impl {

// (pauc 0-dim, per_positive [P]), in the inputs' dtype.
using PaucPairwiseForward = std::tuple<at::Tensor, at::Tensor>;
// (grad_positives [P], grad_negatives [B]).
using PaucPairwiseGrads = std::tuple<at::Tensor, at::Tensor>;

void check_pauc_pairwise_inputs(const at::Tensor& positives, const at::Tensor& negatives,
                                double tau, const optional<at::Tensor>& weights);

// Whether the result is NaN by the contract: P = 0, B = 0 or a NaN input
// (the weight mass is the caller's to check).
bool pauc_pairwise_undefined(const at::Tensor& positives, const at::Tensor& negatives);

// The tail bound H of the CPU kernel for a dtype (see above).
double pauc_pairwise_tail_bound(at::ScalarType dtype);

PaucPairwiseForward pauc_pairwise_forward_cpu(const at::Tensor& positives,
                                              const at::Tensor& negatives, double tau,
                                              const optional<at::Tensor>& weights);
PaucPairwiseGrads pauc_pairwise_backward_cpu(const at::Tensor& grad_pauc,
                                             const at::Tensor& positives,
                                             const at::Tensor& negatives, double tau,
                                             const optional<at::Tensor>& weights);

PaucPairwiseForward pauc_pairwise_forward_generic(const at::Tensor& positives,
                                                  const at::Tensor& negatives, double tau,
                                                  const optional<at::Tensor>& weights);
PaucPairwiseGrads pauc_pairwise_backward_generic(const at::Tensor& grad_pauc,
                                                 const at::Tensor& positives,
                                                 const at::Tensor& negatives, double tau,
                                                 const optional<at::Tensor>& weights);

} // namespace ops_impl
} // namespace proxyloss
