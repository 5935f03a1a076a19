// Low-level ops behind the losses, registered with the PyTorch dispatcher as
// `proxyloss::*` (callable from C++, TorchScript and torch.ops). Most users
// want the loss modules instead.
#pragma once

#include <ATen/Tensor.h>

namespace proxyloss {
namespace ops {

// Per-class Smooth-AP (Brown et al. 2020) of a ranking pool, differentiable
// in `scores`.
//
//   scores [M, C] float32 or float64; labels [M] int64. Row m is a positive of
//   class labels[m] when 0 <= labels[m] < C, otherwise a negative of every
//   class. For class c with positives P_c and tau = temperature:
//     R_i  = 1 + sum_{j != i}         sigmoid((s_jc - s_ic) / tau)
//     R+_i = 1 + sum_{j != i, j in P} sigmoid((s_jc - s_ic) / tau)
//     ap[c] = (1 / |P_c|) sum_{i in P_c} R+_i / R_i
//   Returns ap [C] in the dtype of scores: NaN where a class has no positive
//   or a non-finite score. Time O(sum_c P_c * M), extra memory O(M): the
//   pairwise matrix is streamed, never stored.
at::Tensor smooth_ap(const at::Tensor& scores, const at::Tensor& labels,
                     double temperature);

} // namespace ops
} // namespace proxyloss
