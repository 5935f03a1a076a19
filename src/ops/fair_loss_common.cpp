// Input checks of the FairLoss ops, shared by every implementation.
#include "ops/fair_loss.h"

#include "common/input_checks.h"

#include <cmath>
#include <utility>

namespace proxyloss {
namespace ops_impl {
namespace {

constexpr const char* kOp = "proxyloss::fair_loss";

void check_config(const FairLossConfig& config) {
  TORCH_CHECK(std::isfinite(config.smooth_max_beta) && config.smooth_max_beta > 0, kOp,
              ": smooth_max_beta must be finite and > 0, got ", config.smooth_max_beta);
  TORCH_CHECK(std::isfinite(config.scaling_factor) && config.scaling_factor >= 0, kOp,
              ": scaling_factor must be finite and >= 0, got ", config.scaling_factor);
  TORCH_CHECK(config.label_smoothing >= 0 && config.label_smoothing <= 1, kOp,
              ": label_smoothing must be in [0, 1], got ", config.label_smoothing);
}

} // namespace

void check_fair_loss_inputs(const at::Tensor& logits, const at::Tensor& targets,
                            const optional<at::Tensor>& weight,
                            const FairLossConfig& config) {
  check_config(config);
  TORCH_CHECK(logits.dim() == 2 && logits.size(1) >= 1, kOp,
              ": logits must be 2-D [N, C] with C >= 1, got shape ", logits.sizes());
  TORCH_CHECK(logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kDouble,
              kOp, ": logits must be float32 or float64, got ", logits.scalar_type());
  const int64_t N = logits.size(0);
  const int64_t C = logits.size(1);
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == N, kOp,
              ": targets must be 1-D [N] with N = ", N, ", got shape ", targets.sizes());
  TORCH_CHECK(targets.scalar_type() == at::kLong, kOp, ": targets must be int64, got ",
              targets.scalar_type());
  common::check_same_device(kOp, logits, targets, "targets");
  if (weight.has_value() && weight->defined()) {
    TORCH_CHECK(weight->dim() == 1 && weight->size(0) == C, kOp,
                ": weight must be 1-D [C] with C = ", C, ", got shape ", weight->sizes());
    TORCH_CHECK(weight->scalar_type() == logits.scalar_type(), kOp,
                ": weight must have the dtype of logits (", logits.scalar_type(),
                "), got ", weight->scalar_type());
    common::check_same_device(kOp, logits, *weight, "weight");
  }
}

void fail_on_bad_targets(const at::Tensor& targets, int64_t num_classes,
                         int64_t ignore_index) {
  common::check_target_range(kOp, targets, num_classes, ignore_index);
}

void check_fair_loss_saved(const at::Tensor& grad_loss, const at::Tensor& logits,
                           const at::Tensor& row_max, const at::Tensor& lse,
                           const at::Tensor& beta_lse) {
  const int64_t N = logits.size(0);
  const std::pair<const char*, const at::Tensor*> rows[] = {{"grad_loss", &grad_loss},
                                                            {"row_max", &row_max},
                                                            {"lse", &lse},
                                                            {"beta_lse", &beta_lse}};
  for (const auto& named : rows) {
    const at::Tensor& t = *named.second;
    TORCH_CHECK(t.dim() == 1 && t.size(0) == N, kOp, ": ", named.first,
                " must be 1-D [N] with N = ", N, ", got shape ", t.sizes());
    TORCH_CHECK(t.scalar_type() == logits.scalar_type(), kOp, ": ", named.first,
                " must have the dtype of logits (", logits.scalar_type(), "), got ",
                t.scalar_type());
    common::check_same_device(kOp, logits, t, named.first);
  }
}

} // namespace ops_impl
} // namespace proxyloss
