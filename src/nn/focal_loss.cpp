// The focal-loss modules and functional forms: options, and calls of the
// ops proxyloss::sigmoid_focal_loss / softmax_focal_loss, which compute them
// (src/ops/composite/focal_losses.cpp).
#include "proxyloss/focal_loss.h"

#include "common/input_checks.h"
#include "common/optional_tensor.h"
#include "common/reduction.h"
#include "distributed/gather_batch.h"
#include "nn/naming_the_loss.h"
#include "ops/module_losses.h"
#include "proxyloss/ops.h"

#include <ostream>
#include <string>
#include <vector>

namespace proxyloss {
namespace {

void check_options(const std::string& who, const SigmoidFocalLossOptions& options) {
  ops_impl::check_sigmoid_focal_options(who, options.alpha(), options.gamma());
}

void check_options(const std::string& who, const SoftmaxFocalLossOptions& options) {
  ops_impl::check_softmax_focal_options(who, options.alpha(), options.gamma(),
                                        options.label_smoothing());
}

// The op's reduction argument: "none", "mean", "sum" or "mean_positive".
std::string focal_reduction_string(const focal_reduction_t& reduction) {
  switch (focal_reduction_kind(reduction)) {
    case FocalReduction::None:
      return "none";
    case FocalReduction::Sum:
      return "sum";
    case FocalReduction::Mean:
      return "mean";
    case FocalReduction::MeanPositive:
      break;
  }
  return "mean_positive";
}

// The op calls behind the modules and the functional forms.

torch::Tensor sigmoid_focal_op(const torch::Tensor& logits, const torch::Tensor& targets,
                               const SigmoidFocalLossOptions& options,
                               const torch::Tensor& sample_weight = {}) {
  return ops::sigmoid_focal_loss(logits, targets, options.alpha(), options.gamma(),
                                 common::reduction_string(options.reduction()),
                                 common::defined_or_nullopt(sample_weight));
}

torch::Tensor softmax_focal_op(const torch::Tensor& logits, const torch::Tensor& targets,
                               const SoftmaxFocalLossOptions& options,
                               const torch::Tensor& sample_weight = {}) {
  return ops::softmax_focal_loss(
      logits, targets, common::defined_or_nullopt(options.alpha()), options.gamma(),
      focal_reduction_string(options.reduction()), options.label_smoothing(),
      options.ignore_index(), options.background_class(),
      common::defined_or_nullopt(sample_weight));
}

// What the ranks of a process group must agree on.
distributed_impl::OptionList agreed_options(const SigmoidFocalLossOptions& options) {
  distributed_impl::OptionList agreed;
  agreed.add("alpha", options.alpha())
      .add("gamma", options.gamma())
      .add("reduction", reduction_name(options.reduction()));
  return agreed;
}

distributed_impl::OptionList agreed_options(const SoftmaxFocalLossOptions& options) {
  distributed_impl::OptionList agreed;
  agreed.add_values("alpha", options.alpha())
      .add("gamma", options.gamma())
      .add("reduction", focal_reduction_name(options.reduction()))
      .add("label_smoothing", options.label_smoothing())
      .add("ignore_index", options.ignore_index())
      .add("background_class", options.background_class());
  return agreed;
}

// A focal module's forward: `op` on this batch, or on every rank's batch
// when the loss gathers over a process group.
template <typename Options, typename Op>
torch::Tensor focal_forward(const DistributedLoss& loss, const char* name,
                            const Options& options, Op op, const torch::Tensor& logits,
                            const torch::Tensor& targets,
                            const torch::Tensor& sample_weight) {
  std::vector<torch::Tensor> batch = {logits, targets, sample_weight};
  if (loss.gathers()) {
    batch =
        distributed_impl::gather_batch(
            loss.process_group(), name, agreed_options(options),
            {{"logits", logits}, {"targets", targets}, {"sample_weight", sample_weight}},
            c10::nullopt, /*shared_seed=*/false)
            .tensors;
  }
  // The op checks the options again: they may have been edited since reset().
  return nn_impl::naming_the_loss(
      name, [&] { return op(batch[0], batch[1], options, batch[2]); });
}

} // namespace

std::string focal_reduction_name(const focal_reduction_t& reduction) {
  switch (focal_reduction_kind(reduction)) {
    case FocalReduction::None:
      return "kNone";
    case FocalReduction::Sum:
      return "kSum";
    case FocalReduction::Mean:
      return "kMean";
    case FocalReduction::MeanPositive:
      break;
  }
  return "kMeanPositive";
}

// --- SigmoidFocalLoss ------------------------------------------------------------

SigmoidFocalLossImpl::SigmoidFocalLossImpl(SigmoidFocalLossOptions options_)
    : options(std::move(options_)) {
  reset();
}

void SigmoidFocalLossImpl::reset() {
  check_options("SigmoidFocalLoss", options);
}

void SigmoidFocalLossImpl::pretty_print(std::ostream& stream) const {
  stream << "proxyloss::SigmoidFocalLoss(alpha=" << options.alpha()
         << ", gamma=" << options.gamma()
         << ", reduction=" << reduction_name(options.reduction()) << ")";
}

torch::Tensor SigmoidFocalLossImpl::forward(const torch::Tensor& logits,
                                            const torch::Tensor& targets,
                                            const torch::Tensor& sample_weight) {
  return focal_forward(*this, "SigmoidFocalLoss", options, sigmoid_focal_op, logits,
                       targets, sample_weight);
}

// --- SoftmaxFocalLoss ------------------------------------------------------------

SoftmaxFocalLossImpl::SoftmaxFocalLossImpl(SoftmaxFocalLossOptions options_)
    : options(std::move(options_)) {
  reset();
}

void SoftmaxFocalLossImpl::reset() {
  check_options("SoftmaxFocalLoss", options);
}

void SoftmaxFocalLossImpl::pretty_print(std::ostream& stream) const {
  stream << "proxyloss::SoftmaxFocalLoss(alpha="
         << (options.alpha().defined() ? common::first_values(options.alpha()) : "None")
         << ", gamma=" << options.gamma()
         << ", reduction=" << focal_reduction_name(options.reduction())
         << ", label_smoothing=" << options.label_smoothing()
         << ", ignore_index=" << options.ignore_index()
         << ", background_class=" << options.background_class() << ")";
}

torch::Tensor SoftmaxFocalLossImpl::forward(const torch::Tensor& logits,
                                            const torch::Tensor& targets,
                                            const torch::Tensor& sample_weight) {
  return focal_forward(*this, "SoftmaxFocalLoss", options, softmax_focal_op, logits,
                       targets, sample_weight);
}

// --- functional forms ------------------------------------------------------------

namespace functional {

torch::Tensor sigmoid_focal_loss(const torch::Tensor& logits,
                                 const torch::Tensor& targets,
                                 const SigmoidFocalLossFuncOptions& options,
                                 const torch::Tensor& sample_weight) {
  return sigmoid_focal_op(logits, targets, options, sample_weight);
}

torch::Tensor softmax_focal_loss(const torch::Tensor& logits,
                                 const torch::Tensor& targets,
                                 const SoftmaxFocalLossFuncOptions& options,
                                 const torch::Tensor& sample_weight) {
  return softmax_focal_op(logits, targets, options, sample_weight);
}

} // namespace functional
} // namespace proxyloss
