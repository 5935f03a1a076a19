// Implementations behind the private ops proxyloss::_smooth_ap_forward and
// proxyloss::_smooth_ap_backward (the halves of proxyloss::smooth_ap).
//
// Op contract (all implementations):
//   scores [M, C] float32/float64, labels [M] int64, temperature > 0.
//   Row m is a positive of class labels[m] when 0 <= labels[m] < C; any other
//   label makes it a negative of every class. For class c with P_c positives:
//     rank_all[m] = 1 + sum_{j != m} sigmoid((s_jc - s_mc) / tau)   (m positive of c)
//     rank_pos[m] = 1 + sum_{j != m, j in P_c} sigmoid(...)
//     ap[c]       = mean over positives of rank_pos / rank_all
//   or, with weights w [M] (finite, >= 0; the ranks stay unweighted),
//     ap[c]       = sum_{m in P_c} w_m rank_pos / rank_all / W_c,
//     W_c         = sum_{m in P_c} w_m.
//   ap[c] is NaN when P_c == 0 (weighted: W_c == 0; no gradient then) or
//   when column c holds a non-finite score (its gradient column is then NaN
//   too, unless its incoming gradient is 0). The unweighted arithmetic is the
//   weighted one with every w_m = 1, to the bit.
//   anchors (optional) [M] bool on the scores' device: only the positives
//   flagged are anchors. Their terms alone enter ap[c] (still divided by the
//   whole class's P_c or W_c), and rank_all / rank_pos are computed for them
//   only (0 for every other row); the ranks still run over the whole pool.
//   Summed over a partition of the rows into anchor sets, the ap's are the
//   ap without anchors (to rounding): the ranks of a distributed loss each
//   evaluate one set and add the results (composite/ranking_losses.cpp).
//   The NaN rules do not depend on the anchors; a class without an anchor
//   has ap 0 (or NaN by those rules) and no gradient.
//   Forward returns (ap, rank_all, rank_pos, order), saved for backward:
//   rank_all and rank_pos are [M]; order is what the implementation needs to
//   skip work in backward (the CPU one: each class's sort order, [C, M]
//   int64; the generic one: an empty tensor). Every backward accepts any
//   order, recomputing what it needs when the order is not its own. The
//   [P, M] pairwise matrix is never materialised whole.
#pragma once

#include "proxyloss/compat.h"

#include <ATen/ATen.h>

#include <tuple>

namespace proxyloss {
namespace ops_impl {

// Also checks `weights` when given ([M] floating on the scores' device,
// finite and >= 0) and `anchors` ([M] bool on the scores' device).
void check_smooth_ap_inputs(const at::Tensor& scores, const at::Tensor& labels,
                            double temperature, const optional<at::Tensor>& weights,
                            const optional<at::Tensor>& anchors);

// Positives per class: [C] int64, on the CPU.
at::Tensor class_counts(const at::Tensor& labels, int64_t num_classes);

// The positives' weight mass per class, W_c: [C] float64 on the CPU
// (`weights` float64 [M], from weights_in_double).
at::Tensor class_masses(const at::Tensor& labels, const at::Tensor& weights,
                        int64_t num_classes);

// Classes whose score column holds NaN or +-inf: [C] bool, on the CPU.
at::Tensor nonfinite_classes(const at::Tensor& scores);

// ap[c] = (weighted) mean over the positives of class c of rank_pos /
// rank_all, computed in double, NaN for classes without positives (or
// positive weight) or with non-finite scores. `weights`: float64 [M] or
// undefined; `mass`: class_masses when weighted, else the counts.
at::Tensor ap_from_ranks(const at::Tensor& scores, const at::Tensor& labels,
                         const at::Tensor& rank_all, const at::Tensor& rank_pos,
                         const at::Tensor& weights, const at::Tensor& mass,
                         const at::Tensor& nonfinite);

// Per-row chain-rule coefficients of the positives, 0 elsewhere:
//   coef_all[m] = dL/drank_all[m] = -f_m rank_pos / rank_all^2
//   coef_pos[m] = dL/drank_all[m] + dL/drank_pos[m] = coef_all[m] + f_m / rank_all
// with c = labels[m], g = grad_ap and f_m = (g_c / W_c) w_m (unweighted:
// g_c / P_c; 0 where W_c == 0). `weights` and `mass` as for ap_from_ranks.
std::tuple<at::Tensor, at::Tensor> rank_coefficients(
    const at::Tensor& grad_ap, const at::Tensor& labels, const at::Tensor& rank_all,
    const at::Tensor& rank_pos, const at::Tensor& weights, const at::Tensor& mass);

// Sets the gradient column of every non-finite class that receives a
// non-zero gradient to NaN.
void poison_nonfinite_columns(at::Tensor& grad_scores, const at::Tensor& grad_ap,
                              const at::Tensor& nonfinite);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> smooth_ap_forward_cpu(
    const at::Tensor& scores, const at::Tensor& labels, double temperature,
    const optional<at::Tensor>& weights, const optional<at::Tensor>& anchors);
at::Tensor smooth_ap_backward_cpu(const at::Tensor& grad_ap, const at::Tensor& scores,
                                  const at::Tensor& labels, const at::Tensor& rank_all,
                                  const at::Tensor& rank_pos, const at::Tensor& order,
                                  double temperature, const optional<at::Tensor>& weights,
                                  const optional<at::Tensor>& anchors);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> smooth_ap_forward_generic(
    const at::Tensor& scores, const at::Tensor& labels, double temperature,
    const optional<at::Tensor>& weights, const optional<at::Tensor>& anchors);
at::Tensor smooth_ap_backward_generic(const at::Tensor& grad_ap, const at::Tensor& scores,
                                      const at::Tensor& labels,
                                      const at::Tensor& rank_all,
                                      const at::Tensor& rank_pos, const at::Tensor& order,
                                      double temperature,
                                      const optional<at::Tensor>& weights,
                                      const optional<at::Tensor>& anchors);

} // namespace ops_impl
} // namespace proxyloss
