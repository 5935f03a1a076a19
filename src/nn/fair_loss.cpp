// FairLoss module and functional: option and input checks, dtype handling
// and the reduction around the fused op (proxyloss::ops::fair_loss).
#include "proxyloss/fair_loss.h"

#include "common/input_checks.h"
#include "common/reduction.h"
#include "proxyloss/fair_loss_op.h"
#include "serialize/checked_load.h"

#include <cmath>
#include <ostream>

namespace proxyloss {
namespace {

void check_options(const char* name, const FairLossOptions& options) {
  const double beta = options.smooth_max_beta();
  const double k = options.scaling_factor();
  const double eps = options.label_smoothing();
  TORCH_CHECK(std::isfinite(beta) && beta > 0, name,
              ": smooth_max_beta must be finite and > 0, got ", beta);
  TORCH_CHECK(std::isfinite(k) && k >= 0, name,
              ": scaling_factor must be finite and >= 0 (0 turns the penalty off), got ",
              k);
  TORCH_CHECK(eps >= 0 && eps <= 1, name, ": label_smoothing must be in [0, 1], got ",
              eps);
  const auto& weight = options.weight();
  if (weight.defined()) {
    TORCH_CHECK(weight.dim() == 1, name, ": weight must be 1-D [C], got shape ",
                weight.sizes());
    TORCH_CHECK(at::isFloatingType(weight.scalar_type()), name,
                ": weight must be floating point, got ", weight.scalar_type());
  }
}

// The checks the op cannot make on what it is given after conversion:
// dtypes before they are converted, shapes and devices with the names the
// user knows. Targets' values are checked by the op.
void check_inputs(const char* name, const torch::Tensor& logits,
                  const torch::Tensor& targets, const torch::Tensor& weight) {
  common::check_defined(name, logits, "logits");
  common::check_defined(name, targets, "targets");
  TORCH_CHECK(logits.dim() == 2 && logits.size(1) >= 1, name,
              ": logits must have shape [N, C] with C >= 1, got ", logits.sizes());
  common::check_floating_logits(name, logits);
  common::checked_class_targets(name, logits, targets, /*allow_column=*/false,
                                /*allow_bool=*/false);
  if (weight.defined()) {
    const int64_t C = logits.size(1);
    TORCH_CHECK(weight.dim() == 1 && weight.size(0) == C, name,
                ": weight must have shape [C] with C = ", C,
                " (the columns of logits), got ", weight.sizes());
    TORCH_CHECK(at::isFloatingType(weight.scalar_type()), name,
                ": weight must be floating point, got ", weight.scalar_type());
    common::check_same_device(name, logits, weight, "weight");
  }
}

torch::Tensor compute(const char* name, const torch::Tensor& logits,
                      const torch::Tensor& targets, const torch::Tensor& weight,
                      const FairLossOptions& options) {
  check_options(name, options);
  check_inputs(name, logits, targets, weight);
  const auto dtype = common::compute_dtype(logits.scalar_type());
  const auto long_targets = targets.to(torch::kLong);
  const optional<torch::Tensor> compute_weight =
      weight.defined() ? optional<torch::Tensor>(weight.to(dtype)) : c10::nullopt;
  const auto per_row = ops::fair_loss(logits.to(dtype), long_targets, compute_weight,
                                      options.smooth_max_beta(), options.scaling_factor(),
                                      options.ignore_index(), options.label_smoothing());
  // mean: the plain mean over the rows that are not ignored (NaN when none is).
  const auto out = common::reduce(per_row, reduction_kind(options.reduction()),
                                  long_targets.ne(options.ignore_index()).sum());
  return out.to(logits.scalar_type());
}

} // namespace

FairLossImpl::FairLossImpl(FairLossOptions options_) : options(std::move(options_)) {
  reset();
}

void FairLossImpl::reset() {
  check_options("FairLoss", options);
  // A copy, not the options' tensor itself: Cloneable::clone() re-runs
  // reset() on a copy of the options and then replaces the new buffer's data
  // in place, which would otherwise reach the original module's weight.
  const auto& w = options.weight();
  weight = register_buffer("weight", w.defined() ? w.detach().clone() : torch::Tensor());
}

void FairLossImpl::load(torch::serialize::InputArchive& archive) {
  const auto expected = weight.defined() ? weight.sizes().vec() : std::vector<int64_t>{};
  detail::load_or_leave_unchanged(*this, archive, "FairLoss", [&] {
    if (!weight.defined()) { // only an unweighted checkpoint fits
      torch::Tensor saved;
      TORCH_CHECK(!archive.try_read("weight", saved, /*is_buffer=*/true),
                  "the checkpoint has class weights of shape ", saved.sizes(),
                  " but this module has none; construct it with a weight of that shape");
      return;
    }
    TORCH_CHECK(
        weight.sizes().vec() == expected && at::isFloatingType(weight.scalar_type()),
        "checkpoint weight has shape ", weight.sizes(), " and dtype ",
        weight.scalar_type(), ", expected floating with shape ",
        c10::IntArrayRef(expected));
  });
}

void FairLossImpl::pretty_print(std::ostream& stream) const {
  stream << "proxyloss::FairLoss(smooth_max_beta=" << options.smooth_max_beta()
         << ", scaling_factor=" << options.scaling_factor()
         << ", reduction=" << reduction_name(options.reduction()) << ", weight=";
  if (weight.defined()) {
    stream << weight.sizes();
  } else {
    stream << "None";
  }
  stream << ", ignore_index=" << options.ignore_index()
         << ", label_smoothing=" << options.label_smoothing() << ")";
}

torch::Tensor FairLossImpl::forward(const torch::Tensor& logits,
                                    const torch::Tensor& targets) {
  return compute("FairLoss", logits, targets, weight, options);
}

namespace functional {

torch::Tensor fair_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                        const FairLossFuncOptions& options) {
  return compute("fair_loss", logits, targets, options.weight(), options);
}

} // namespace functional
} // namespace proxyloss
