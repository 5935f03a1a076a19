// The FairLoss ops, registered with the PyTorch dispatcher as
// `proxyloss::fair_loss` and `proxyloss::fair_loss_reduced` (callable from
// C++, TorchScript and torch.ops). Most users want proxyloss::FairLoss
// (fair_loss.h) instead.
#pragma once

#include "proxyloss/compat.h"

#include <ATen/Tensor.h>

#include <string>

namespace proxyloss {
namespace ops {

// Per-sample FairLoss, differentiable in `logits` (once; not in `weight`).
//
//   logits [N, C] float32 or float64 (C >= 1); targets [N] int64 with values
//   in [0, C) or == ignore_index; weight undefined/nullopt or [C] in the dtype
//   of logits; all on one device. With beta = smooth_max_beta > 0 and
//   k = scaling_factor >= 0, both finite, eps = label_smoothing in [0, 1]:
//     loss[i] = CE_i + (2 sigmoid(k (smoothmax_beta(z_i) - z_i[y_i])) - 1) / C
//     smoothmax_beta(z) = logsumexp(beta z) / beta
//   where CE_i is torch's per-sample cross-entropy with the same weight and
//   label smoothing (log_softmax p, W = sum_c w_c):
//     CE_i = (1 - eps) w_y (-log p_y) + (eps / C) sum_c w_c (-log p_c).
//   Rows whose target is ignore_index get 0 and no gradient. Returns [N] in
//   the dtype of logits. One pass per row forward and backward; saves three
//   numbers per row.
at::Tensor fair_loss(const at::Tensor& logits, const at::Tensor& targets,
                     const optional<at::Tensor>& weight, double smooth_max_beta,
                     double scaling_factor, int64_t ignore_index, double label_smoothing);

// FairLoss whole, as proxyloss::FairLoss computes it (fair_loss.h): checks
// the options and inputs, computes float16/bfloat16 logits in float32, any
// integer targets, weight in any floating dtype; reduction "none" (the rows
// of fair_loss), "sum", or "mean" (over the rows not ignored; NaN when every
// row is). The result has the logits' dtype.
// sample_weight: nullopt (the above, unchanged), or per-row weights w [N]
// (floating, finite, >= 0; detached and cast to the compute dtype; a
// ValueError naming sample_weight otherwise), as the focal losses take them:
//   none: w_i loss_i (0 at ignored rows); sum: sum_i w_i loss_i;
//   mean: sum_i w_i loss_i / sum_{i not ignored} w_i, divided by 1 instead
//         where that mass is exactly 0 (all-zero weights, every row ignored,
//         no rows): 0 with a zero gradient, not NaN.
at::Tensor fair_loss_reduced(const at::Tensor& logits, const at::Tensor& targets,
                             const optional<at::Tensor>& weight, double smooth_max_beta,
                             double scaling_factor, const std::string& reduction,
                             int64_t ignore_index, double label_smoothing,
                             const optional<at::Tensor>& sample_weight = c10::nullopt);

} // namespace ops
} // namespace proxyloss
