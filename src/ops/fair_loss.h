// Implementations behind the private ops proxyloss::_fair_loss_forward and
// proxyloss::_fair_loss_backward (the halves of proxyloss::fair_loss).
//
// Op contract (all implementations):
//   logits [N, C] float32/float64 (C >= 1), targets [N] int64 with values in
//   [0, C) or == ignore_index, weight undefined or [C] in the dtype of logits,
//   smooth_max_beta finite > 0, scaling_factor finite >= 0, label_smoothing
//   in [0, 1]; all tensors on one device. Per row (see
//   kernels/fair_loss_kernel.h for the full derivation):
//     loss[i] = CE_i + (2 sigmoid(k (smoothmax_beta(z_i) - z_i[y_i])) - 1) / C
//   with CE_i torch's per-sample cross-entropy (same weight, label smoothing),
//   and 0 for rows whose target is ignore_index.
//   Forward also returns per-row statistics row_max, lse, beta_lse ([N] each,
//   0 on ignored rows); backward needs only those and the inputs: one pass
//   per row, O(N) saved memory.
#pragma once

#include "proxyloss/compat.h"

#include <ATen/ATen.h>

#include <tuple>

namespace proxyloss {
namespace ops_impl {

// The scalar options and the row-independent parts of the contract.
struct FairLossConfig {
  double smooth_max_beta;
  double scaling_factor;
  int64_t ignore_index;
  double label_smoothing;
};

// Checks the contract above but for the targets' values: options, shapes,
// dtypes and devices (no pass over the data).
void check_fair_loss_inputs(const at::Tensor& logits, const at::Tensor& targets,
                            const optional<at::Tensor>& weight,
                            const FairLossConfig& config);

// Throws, naming the offending values and rows, if a target is outside
// [0, num_classes) and not ignore_index (ATen ops, any device). The CPU
// implementation first scans its contiguous targets itself, which is
// cheaper, and calls this only for the message.
void fail_on_bad_targets(const at::Tensor& targets, int64_t num_classes,
                         int64_t ignore_index);

// Checks grad_loss and the saved statistics: [N] in the dtype of logits.
void check_fair_loss_saved(const at::Tensor& grad_loss, const at::Tensor& logits,
                           const at::Tensor& row_max, const at::Tensor& lse,
                           const at::Tensor& beta_lse);

// (loss, row_max, lse, beta_lse)
using FairLossForward = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

FairLossForward fair_loss_forward_cpu(const at::Tensor& logits, const at::Tensor& targets,
                                      const optional<at::Tensor>& weight,
                                      double smooth_max_beta, double scaling_factor,
                                      int64_t ignore_index, double label_smoothing);
at::Tensor fair_loss_backward_cpu(const at::Tensor& grad_loss, const at::Tensor& logits,
                                  const at::Tensor& targets,
                                  const optional<at::Tensor>& weight,
                                  const at::Tensor& row_max, const at::Tensor& lse,
                                  const at::Tensor& beta_lse, double smooth_max_beta,
                                  double scaling_factor, int64_t ignore_index,
                                  double label_smoothing);

FairLossForward fair_loss_forward_generic(const at::Tensor& logits,
                                          const at::Tensor& targets,
                                          const optional<at::Tensor>& weight,
                                          double smooth_max_beta, double scaling_factor,
                                          int64_t ignore_index, double label_smoothing);
at::Tensor fair_loss_backward_generic(const at::Tensor& grad_loss,
                                      const at::Tensor& logits, const at::Tensor& targets,
                                      const optional<at::Tensor>& weight,
                                      const at::Tensor& row_max, const at::Tensor& lse,
                                      const at::Tensor& beta_lse, double smooth_max_beta,
                                      double scaling_factor, int64_t ignore_index,
                                      double label_smoothing);

} // namespace ops_impl
} // namespace proxyloss
