// The ops behind FairLoss and the focal losses, whole: option and input
// checks, the compute dtype, the per-row loss and the reduction
// (CompositeImplicitAutograd, registered in composite/). Their modules (C++
// in src/nn, Python in python/proxyloss) hold options and call these; the
// option checks are exported so that the modules can also run them when
// they are constructed.
#pragma once

#include "proxyloss/compat.h"

#include <ATen/ATen.h>

#include <string>

namespace proxyloss {
namespace ops_impl {

// FairLoss's options: smooth_max_beta finite > 0, scaling_factor finite >= 0,
// label_smoothing in [0, 1], weight undefined or 1-D floating.
void check_fair_loss_options(const std::string& who, double smooth_max_beta,
                             double scaling_factor, double label_smoothing,
                             const at::Tensor& weight);

// proxyloss::fair_loss_reduced: see proxyloss/fair_loss_op.h.
at::Tensor fair_loss_reduced(const at::Tensor& logits, const at::Tensor& targets,
                             const optional<at::Tensor>& weight, double smooth_max_beta,
                             double scaling_factor, c10::string_view reduction,
                             int64_t ignore_index, double label_smoothing,
                             const optional<at::Tensor>& sample_weight);

// SigmoidFocalLoss's options: alpha in [0, 1] or < 0 (off), gamma finite >= 0.
void check_sigmoid_focal_options(const std::string& who, double alpha, double gamma);

// SoftmaxFocalLoss's options: alpha undefined or 1-D floating, finite, >= 0;
// gamma finite >= 0; label_smoothing in [0, 1].
void check_softmax_focal_options(const std::string& who, const at::Tensor& alpha,
                                 double gamma, double label_smoothing);

// proxyloss::sigmoid_focal_loss and proxyloss::softmax_focal_loss: see
// proxyloss/ops.h.
at::Tensor sigmoid_focal_loss(const at::Tensor& logits, const at::Tensor& targets,
                              double alpha, double gamma, c10::string_view reduction,
                              const optional<at::Tensor>& sample_weight);
at::Tensor softmax_focal_loss(const at::Tensor& logits, const at::Tensor& targets,
                              const optional<at::Tensor>& alpha, double gamma,
                              c10::string_view reduction, double label_smoothing,
                              int64_t ignore_index, int64_t background_class,
                              const optional<at::Tensor>& sample_weight);

} // namespace ops_impl
} // namespace proxyloss
