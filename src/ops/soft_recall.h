// Implementations behind the proxyloss::soft_recall op and its private
// backward, proxyloss::_soft_recall_backward.
//
// Op contract (all implementations):
//   scores [M, C] float32/float64, labels [M] int64, thresholds [C] in the
//   dtype of scores, temperature tau > 0. Row m is a positive of class
//   labels[m] when 0 <= labels[m] < C, otherwise a negative of every class.
//   For class c with positives P_c:
//     z_mc      = (s_mc - t_c) / tau
//     recall[c] = (1 / |P_c|) sum_{m in P_c} sigmoid(z_mc)     (NaN if P_c empty)
//   or, with weights w [M] (finite, >= 0, constants),
//     recall[c] = sum_{m in P_c} w_m sigmoid(z_mc) / W_c,  W_c = sum_{m in P_c} w_m
//   (NaN and no gradient where W_c == 0; with every w_m = 1, the unweighted
//   arithmetic to the bit).
//   The thresholds are constants (no gradient). Backward:
//     d recall[c] / d s_mc = sigmoid'(z_mc) / (tau |P_c|)   for m in P_c, else 0
//   (weighted: w_m sigmoid'(z_mc) / (tau W_c)),
//   with sigmoid'(z) = e / (1 + e)^2, e = exp(-|z|): full relative precision
//   for every z (sigmoid(z) (1 - sigmoid(z)) cancels once sigmoid(z) is near
//   1, which costs float64 up to 1e-6 of relative accuracy at z = 25).
//   Sums are accumulated in double. Time O(M C), extra memory O(C).
#pragma once

#include "proxyloss/compat.h"

#include <ATen/ATen.h>

namespace proxyloss {
namespace ops_impl {

void check_soft_recall_inputs(const at::Tensor& scores, const at::Tensor& labels,
                              const at::Tensor& thresholds, double temperature,
                              const optional<at::Tensor>& weights);

at::Tensor soft_recall_cpu(const at::Tensor& scores, const at::Tensor& labels,
                           const at::Tensor& thresholds, double temperature,
                           const optional<at::Tensor>& weights);
at::Tensor soft_recall_backward_cpu(const at::Tensor& grad_recall,
                                    const at::Tensor& scores, const at::Tensor& labels,
                                    const at::Tensor& thresholds, double temperature,
                                    const optional<at::Tensor>& weights);

at::Tensor soft_recall_generic(const at::Tensor& scores, const at::Tensor& labels,
                               const at::Tensor& thresholds, double temperature,
                               const optional<at::Tensor>& weights);
at::Tensor soft_recall_backward_generic(const at::Tensor& grad_recall,
                                        const at::Tensor& scores,
                                        const at::Tensor& labels,
                                        const at::Tensor& thresholds, double temperature,
                                        const optional<at::Tensor>& weights);

} // namespace ops_impl
} // namespace proxyloss
