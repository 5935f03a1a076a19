// proxyloss::fair_loss_reduced: FairLoss whole, what FairLoss's modules call.
// Checks the options and the inputs (with the names a user knows, before any
// conversion), computes float16/bfloat16 in float32, takes the per-row loss
// from proxyloss::fair_loss (the fused, differentiable op) and reduces it:
//   none: the rows ([N], 0 at ignored rows); sum: their sum;
//   mean: their sum / #rows not ignored (NaN when every row is, as torch's
//         mean of nothing; not weighted by class weight, as pytorch-fairloss).
// With sample_weight w [N] (checked finite and >= 0, detached, in the compute
// dtype; ops/sample_weights.h), as the focal losses: none: w_i loss_i; sum:
// their sum; mean: their sum / sum of w_i over the rows not ignored, divided
// by 1 where that mass is exactly 0 (all weights zero, every row ignored, or
// no rows), which gives 0, not NaN. Without it the computation is unchanged.
// The result has the dtype of the logits.
#include "common/input_checks.h"
#include "common/reduction.h"
#include "ops/module_losses.h"
#include "ops/sample_weights.h"
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

// FairLoss's sample_weight: one per row, [N], as SoftmaxFocalLoss's.
at::Tensor checked_row_weight(const at::Tensor& logits, const at::Tensor& sample_weight,
                              at::ScalarType dtype) {
  common::check_defined(kOp, sample_weight, "sample_weight");
  TORCH_CHECK_VALUE(sample_weight.dim() == 1 && sample_weight.size(0) == logits.size(0),
                    kOp, ": sample_weight must have shape [N] with N = ", logits.size(0),
                    " (the rows of logits), got ", sample_weight.sizes());
  common::check_same_device(kOp, logits, sample_weight, "sample_weight");
  return checked_sample_weight(kOp, sample_weight, dtype);
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
                             int64_t ignore_index, double label_smoothing,
                             const optional<at::Tensor>& sample_weight) {
  const at::Tensor weight_or_none = weight.has_value() ? *weight : at::Tensor();
  check_fair_loss_options(kOp, smooth_max_beta, scaling_factor, label_smoothing,
                          weight_or_none);
  const auto reduction = common::parse_reduction(kOp, std::string(reduction_name));
  check_inputs(logits, targets, weight);
  const auto dtype = common::compute_dtype(logits.scalar_type());
  const auto row_weight = sample_weight.has_value()
                              ? checked_row_weight(logits, *sample_weight, dtype)
                              : at::Tensor();
  const auto long_targets = targets.to(at::kLong);
  const optional<at::Tensor> compute_weight =
      weight_or_none.defined() ? optional<at::Tensor>(weight_or_none.detach().to(dtype))
                               : c10::nullopt;
  const auto per_row =
      ops::fair_loss(logits.to(dtype), long_targets, compute_weight, smooth_max_beta,
                     scaling_factor, ignore_index, label_smoothing);
  if (row_weight.defined()) {
    const auto valid = long_targets.ne(ignore_index);
    const auto weighted = per_row * row_weight; // 0 at ignored rows, as per_row
    const auto out =
        reduction == Reduction::Mean
            ? weighted_mean(
                  weighted.sum(),
                  at::where(valid, row_weight, at::zeros_like(row_weight)).sum())
            : common::reduce(weighted, reduction, {});
    return out.to(logits.scalar_type());
  }
  const auto out =
      common::reduce(per_row, reduction, long_targets.ne(ignore_index).sum());
  return out.to(logits.scalar_type());
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeImplicitAutograd, m) {
  m.impl("fair_loss_reduced", &proxyloss::ops_impl::fair_loss_reduced);
}
