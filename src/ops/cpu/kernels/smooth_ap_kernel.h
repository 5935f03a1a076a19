// Smooth-AP kernels for one class, on raw sorted buffers: exact, and cheap
// where the sigmoid saturates.
//
// These loops know nothing of tensors, autograd or options. The caller gives
// one class's pool scores as two ascending arrays, pos[0, P) (the positives)
// and neg[0, N) (the negatives), and gets back per-positive soft ranks
// (forward) or per-row gradients (backward) in the same sorted order.
//
// Windowed evaluation. For an anchor u and d = (x - u) / tau, the pairs with
// |d| < K (a window found by monotone sweeps over the sorted arrays) are
// evaluated term by term; the pairs outside it use two-term tail forms of
// the alternating series
//   sigmoid(d)  = e^d - e^2d + R,           |R| <= e^3d      (d <= -K)
//   sigmoid(d)  = 1 - e^-d + e^-2d - R      |R| <= e^-3d     (d >=  K)
//   sigmoid'(d) = e^-|d| - 2 e^-2|d| + R,   |R| <= 3 e^-3|d|
// whose sums over a tail are O(1) from prefix/suffix sums of exponentials,
// precomputed once in O(P + N). Each tail term's relative error is at most
// 3 e^-2K: K = 9 for float (3 e^-18 = 4.6e-8 < 2^-24 = 6.0e-8, the unit
// roundoff) and K = 19 for double (3 e^-38 = 9.4e-17 < 2^-53 = 1.1e-16), so
// the tails are exact to the format's rounding however many terms they hold.
// When the window covers the pool (large tau) this is the dense stream.
//
// Each pair in a window is evaluated once. The anchors are the positives;
// a positive pair {l < k} is evaluated at k only, where e = e^{-|d|} gives
// both sigmoid(d) = e / (1 + e) (to k) and sigmoid(-d) = 1 / (1 + e) (to l),
// and sigmoid' is even; a (positive, negative) pair gives the positive's row
// and, in backward, the negative's column. Column terms are summed per
// parallel task and the tasks' sums added in task order: deterministic for
// a given thread count.
//
// Exponentials inside windows: where a side's sorted entries are visited by
// many anchors, e^{(x - u)/tau} is the product of a per-entry factor and a
// per-(anchor, block of 512 entries) factor, both computed in double and
// rounded once (relative error <= 1.5 ulp, none from rounding x - u), so the
// dense stream needs no exp per pair; elsewhere an inline polynomial exp
// (float, < 2 ulp) or at::vec's exp (double). The terms are then summed in
// T over at most 65 per SIMD lane before each addition in double, keeping
// ~1e-7 relative error (float) on sums of any length.
//
// Crowded windows. Where the windows hold many pairs per row (unseparated
// scores, an untrained model; or a large tau) and the sorted scores are
// dense, a class is evaluated instead by block expansions (sigmoid_sums.h):
// the near field of each block of anchors (|d| < 2 in float, 3 in double)
// by Taylor expansions about block centres, the rest by the alternating
// exponential series summed over re-centred block prefix sums, at O(1)
// cost per row and per pair of nearby blocks, exact to the format's rounding
// (bounds proved in that header). Which algorithm a class gets is decided by
// an estimate of both costs from the windows and the blocks (no arithmetic);
// detail::ForceSmoothAPAlgorithm (ops/cpu/kernel_selection.h) forces one for
// tests. The expansions evaluate every row on its own, so their results do
// not depend on the thread count at all.
//
// The source file is compiled once per CPU capability (DEFAULT, AVX2), each
// copy in its own namespace; `cpu_capability.h` picks one at run time.
#pragma once

#include <cstdint>

namespace proxyloss {
namespace kernels {

// Function table of one compiled capability.
struct SmoothAPKernels {
  // For each positive k in [0, P), with d = (x - pos[k]) / tau:
  //   rank_pos[k] = 0.5 + sum_{l <  P} sigmoid(d(pos[l]))   (= 1 + sum_{l != k})
  //   rank_all[k] = rank_pos[k] + sum_{j < N} sigmoid(d(neg[j]))
  // The l == k term is sigmoid(0) = 0.5 exactly, hence the 0.5 offset.
  void (*forward_float)(const float* pos, int64_t P, const float* neg, int64_t N,
                        float inv_tau, float* rank_all, float* rank_pos);
  void (*forward_double)(const double* pos, int64_t P, const double* neg, int64_t N,
                         double inv_tau, double* rank_all, double* rank_pos);

  // With a_k = dL/drank_all[k] (coef_all) and ab_k = a_k + dL/drank_pos[k]
  // (coef_pos), the pair (positive k, row j) adds
  // w = sigmoid'(d_kj) / tau * (j positive ? ab_k : a_k) to grad[j] and -w
  // to grad[k]:
  //   grad_neg[j] = inv_tau sum_k s'(neg[j] - pos[k]) a_k
  //   grad_pos[k] = inv_tau ( sum_l s'_kl ab_l - ab_k sum_l s'_kl - a_k sum_j s'_kj )
  // (s' is even; the l == k pair cancels exactly). Outputs are overwritten.
  void (*backward_float)(const float* pos, int64_t P, const float* neg, int64_t N,
                         float inv_tau, const float* coef_all, const float* coef_pos,
                         float* grad_pos, float* grad_neg);
  void (*backward_double)(const double* pos, int64_t P, const double* neg, int64_t N,
                          double inv_tau, const double* coef_all, const double* coef_pos,
                          double* grad_pos, double* grad_neg);
};

// Defined once per compiled capability in smooth_ap_kernel.cpp.
const SmoothAPKernels& smooth_ap_kernels_DEFAULT();
#ifdef PROXYLOSS_HAVE_AVX2_KERNELS
const SmoothAPKernels& smooth_ap_kernels_AVX2();
#endif

} // namespace kernels
} // namespace proxyloss
