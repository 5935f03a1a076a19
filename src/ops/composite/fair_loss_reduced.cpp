// proxyloss::fair_loss_reduced: FairLoss whole, what FairLoss's modules call.
// Checks the options and the inputs (with the names a user knows, before any
// conversion), computes float16/bfloat16 in float32, takes the per-row loss
// from proxyloss::fair_loss (the fused, differentiable op) and reduces it:
//   none: the rows ([N], 0 at ignored rows); sum: their sum;
//   mean: their sum / #rows not ignored (NaN when every row is, as torch's
//         mean of nothing; not weighted by class weight, as pytorch-fairloss).
// The result has the dtype of the logits.
#include "common/input_checks.h"
#include "common/reduction.h"
#include "ops/module_losses.h"
#include "proxyloss/fair_loss_op.h"

#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cmath>
#include <string>

namespace proxyloss {
namespace ops_impl {
namespace {

constexpr const char* kOp = "proxyloss::fair_loss_reduced";

void check_inputs(const at::Tensor& logits, const at::Tensor& targets,
                  const optional<at::Tensor>& weight) {
  common::check_defined(kOp, logits, "logits");
  common::check_defined(kOp, targets, "targets");
  TORCH_CHECK_VALUE(logits.dim() == 2 && logits.size(1) >= 1, kOp,
                    ": logits must have shape [N, C] with C >= 1, got ", logits.sizes());
  common::check_floating_logits(kOp, logits);
  common::checked_class_targets(kOp, logits, targets, /*allow_column=*/false,
                                /*allow_bool=*/false);
  if (weight.has_value() && weight->defined()) {
    const int64_t C = logits.size(1);
    TORCH_CHECK_VALUE(weight->dim() == 1 && weight->size(0) == C, kOp,
                      ": weight must have shape [C] with C = ", C,
                      " (the columns of logits), got ", weight->sizes());
    common::check_same_device(kOp, logits, *weight, "weight");
  }
}

} // namespace

void check_fair_loss_options(const std::string& who, double smooth_max_beta,
                             double scaling_factor, double label_smoothing,
                             const at::Tensor& weight) {
  TORCH_CHECK_VALUE(std::isfinite(smooth_max_beta) && smooth_max_beta > 0, who,
                    ": smooth_max_beta must be finite and > 0, got ", smooth_max_beta);
  TORCH_CHECK_VALUE(
      std::isfinite(scaling_factor) && scaling_factor >= 0, who,
      ": scaling_factor must be finite and >= 0 (0 turns the penalty off), got ",
      scaling_factor);
  TORCH_CHECK_VALUE(label_smoothing >= 0 && label_smoothing <= 1, who,
                    ": label_smoothing must be in [0, 1], got ", label_smoothing);
  if (weight.defined()) {
    TORCH_CHECK_VALUE(weight.dim() == 1, who, ": weight must be 1-D [C], got shape ",
                      weight.sizes());
    TORCH_CHECK_VALUE(at::isFloatingType(weight.scalar_type()), who,
                      ": weight must be floating point, got ", weight.scalar_type());
  }
}

at::Tensor fair_loss_reduced(const at::Tensor& logits, const at::Tensor& targets,
                             const optional<at::Tensor>& weight, double smooth_max_beta,
                             double scaling_factor, c10::string_view reduction_name,
                             int64_t ignore_index, double label_smoothing) {
  const at::Tensor weight_or_none = weight.has_value() ? *weight : at::Tensor();
  check_fair_loss_options(kOp, smooth_max_beta, scaling_factor, label_smoothing,
                          weight_or_none);
  const auto reduction = common::parse_reduction(kOp, std::string(reduction_name));
  check_inputs(logits, targets, weight);
  const auto dtype = common::compute_dtype(logits.scalar_type());
  const auto long_targets = targets.to(at::kLong);
  const optional<at::Tensor> compute_weight =
      weight_or_none.defined() ? optional<at::Tensor>(weight_or_none.detach().to(dtype))
                               : c10::nullopt;
  const auto per_row =
      ops::fair_loss(logits.to(dtype), long_targets, compute_weight, smooth_max_beta,
                     scaling_factor, ignore_index, label_smoothing);
  const auto out =
      common::reduce(per_row, reduction, long_targets.ne(ignore_index).sum());
  return out.to(logits.scalar_type());
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeImplicitAutograd, m) {
  m.impl("fair_loss_reduced", &proxyloss::ops_impl::fair_loss_reduced);
}
