// FairLoss module and functional: options, the class-weight buffer, and
// calls of the op proxyloss::fair_loss_reduced, which checks the inputs and
// computes the loss (src/ops/composite/fair_loss_reduced.cpp).
#include "proxyloss/fair_loss.h"

#include "common/optional_tensor.h"
#include "common/reduction.h"
#include "nn/naming_the_loss.h"
#include "ops/module_losses.h"
#include "proxyloss/fair_loss_op.h"
#include "serialize/checked_load.h"

#include <ostream>
#include <string>

namespace proxyloss {
namespace {

void check_options(const std::string& who, const FairLossOptions& options) {
  ops_impl::check_fair_loss_options(who, options.smooth_max_beta(),
                                    options.scaling_factor(), options.label_smoothing(),
                                    options.weight());
}

torch::Tensor fair_loss_op(const torch::Tensor& logits, const torch::Tensor& targets,
                           const torch::Tensor& weight, const FairLossOptions& options,
                           const torch::Tensor& sample_weight) {
  return ops::fair_loss_reduced(logits, targets, common::defined_or_nullopt(weight),
                                options.smooth_max_beta(), options.scaling_factor(),
                                common::reduction_string(options.reduction()),
                                options.ignore_index(), options.label_smoothing(),
                                common::defined_or_nullopt(sample_weight));
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
                                    const torch::Tensor& targets,
                                    const torch::Tensor& sample_weight) {
  return nn_impl::naming_the_loss("FairLoss", [&] {
    return fair_loss_op(logits, targets, weight, options, sample_weight);
  });
}

namespace functional {

torch::Tensor fair_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                        const FairLossFuncOptions& options,
                        const torch::Tensor& sample_weight) {
  return fair_loss_op(logits, targets, options.weight(), options, sample_weight);
}

} // namespace functional
} // namespace proxyloss
