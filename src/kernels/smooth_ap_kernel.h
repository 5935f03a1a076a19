// Streaming Smooth-AP kernels for one class, on raw contiguous buffers.
//
// These loops know nothing of tensors, autograd or options. The caller lays
// out one class's pool scores as `v[0, P)` = the P positives followed by
// `v[P, M)` = the M - P negatives, and gets back per-positive soft ranks
// (forward) or per-row gradients in the same layout (backward).
//
// The source file is compiled once per CPU capability (DEFAULT, AVX2), each
// copy in its own namespace; `cpu_capability.h` picks one at run time.
#pragma once

#include <cstdint>

namespace proxyloss {
namespace kernels {

// Function table of one compiled capability.
struct SmoothAPKernels {
  // For each positive k in [0, P), with d_kj = (v_j - v_k) * inv_tau:
  //   rank_pos[k] = 0.5 + sum_{j <  P} sigmoid(d_kj)   (= 1 + sum_{j in P, j != k})
  //   rank_all[k] = rank_pos[k] + sum_{j >= P} sigmoid(d_kj)
  // The j == k term is sigmoid(0) = 0.5 exactly, hence the 0.5 offsets.
  void (*forward_float)(const float* v, int64_t P, int64_t M, float inv_tau,
                        float* rank_all, float* rank_pos);
  void (*forward_double)(const double* v, int64_t P, int64_t M, double inv_tau,
                         double* rank_all, double* rank_pos);

  // With a_k = dL/drank_all[k] (coef_all) and a_k + b_k, b_k = dL/drank_pos[k]
  // (coef_pos), the pair (k, j) adds w_kj = sigmoid'(d_kj) * inv_tau *
  // (j < P ? a_k + b_k : a_k) to grad[j] and -w_kj to grad[k]:
  //   grad[j] = sum_k w_kj - [j < P] sum_l w_jl.
  // The j == k pair cancels exactly. grad is overwritten.
  void (*backward_float)(const float* v, int64_t P, int64_t M, float inv_tau,
                         const float* coef_all, const float* coef_pos, float* grad);
  void (*backward_double)(const double* v, int64_t P, int64_t M, double inv_tau,
                          const double* coef_all, const double* coef_pos, double* grad);
};

// Defined once per compiled capability in smooth_ap_kernel.cpp.
const SmoothAPKernels& smooth_ap_kernels_DEFAULT();
#ifdef PROXYLOSS_HAVE_AVX2_KERNELS
const SmoothAPKernels& smooth_ap_kernels_AVX2();
#endif

} // namespace kernels
} // namespace proxyloss
