// FairLoss kernels on raw contiguous buffers: one pass per row over its C
// logits, forward and backward.
//
// These loops know nothing of tensors, autograd or options. For row i with
// logits z [C], target y, weights w (all 1 when `weight` is null), smoothing
// eps, beta = smooth_max_beta and k = scaling_factor:
//   m        = max_c z_c
//   lse      = log sum_c exp(z_c - m)                 (CE log-sum-exp, offset by m)
//   beta_lse = log sum_c exp(beta (z_c - m))          (smooth max, offset by beta m)
//   CE       = (1 - eps) w_y (lse - (z_y - m))
//            + (eps / C) (W lse - sum_c w_c (z_c - m)),   W = sum_c w_c
//              (torch's per-sample cross-entropy: log_softmax_c = z_c - m - lse)
//   d        = smoothmax_beta(z) - z_y = (m - z_y) + beta_lse / beta   (>= 0)
//   loss     = CE + (2 sigmoid(k d) - 1) / C
// Every exponent is <= 0, so nothing overflows for any finite beta, k and
// logits; NaN or +inf logits in a row make its loss NaN.
//
// The source file is compiled once per CPU capability (DEFAULT, AVX2), each
// copy in its own namespace; `cpu_capability.h` picks one at run time.
#pragma once

#include <cstdint>

namespace proxyloss {
namespace kernels {

// One batch. The caller guarantees targets[i] in [0, C) or == ignore_index;
// rows whose target is ignore_index get loss 0, statistics 0 and gradient 0.
template <typename T>
struct FairLossProblem {
  const T* logits;        // [N, C], row-major
  const int64_t* targets; // [N]
  const T* weight;        // [C], or nullptr for all ones
  int64_t N;
  int64_t C;
  double smooth_max_beta; // beta > 0, finite
  double scaling_factor;  // k >= 0, finite
  int64_t ignore_index;
  double label_smoothing; // eps in [0, 1]
};

// Per-row statistics written by forward (Ptr = T*) and read by backward
// (Ptr = const T*), each [N].
template <typename Ptr>
struct FairLossRowStats {
  Ptr row_max;  // m
  Ptr lse;      // lse
  Ptr beta_lse; // beta_lse
};

// Function table of one compiled capability.
struct FairLossKernels {
  // loss [N] and the statistics, overwritten.
  void (*forward_float)(const FairLossProblem<float>& problem, float* loss,
                        const FairLossRowStats<float*>& stats);
  void (*forward_double)(const FairLossProblem<double>& problem, double* loss,
                         const FairLossRowStats<double*>& stats);

  // With g = grad_loss[i], p_c = exp(z_c - m - lse) (softmax),
  // q_c = exp(beta (z_c - m) - beta_lse) (softmax of beta z),
  // a = dpenalty/dd = 2 k sigmoid'(k d) / C and A = (1 - eps) w_y + eps W / C:
  //   grad[i, c] = g (A p_c + a q_c - eps w_c / C - [c == y] ((1 - eps) w_y + a)).
  // grad_logits [N, C] is overwritten.
  void (*backward_float)(const FairLossProblem<float>& problem, const float* grad_loss,
                         const FairLossRowStats<const float*>& stats, float* grad_logits);
  void (*backward_double)(const FairLossProblem<double>& problem, const double* grad_loss,
                          const FairLossRowStats<const double*>& stats,
                          double* grad_logits);
};

// Defined once per compiled capability in fair_loss_kernel.cpp.
const FairLossKernels& fair_loss_kernels_DEFAULT();
#ifdef PROXYLOSS_HAVE_AVX2_KERNELS
const FairLossKernels& fair_loss_kernels_AVX2();
#endif

} // namespace kernels
} // namespace proxyloss
