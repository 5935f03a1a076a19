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

// Every rank's (logits, targets, sample_weight) over `group`.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> gather_focal_batch(
    const ProcessGroupPtr& group, const std::string& loss,
    const distributed_impl::OptionList& agreed, const torch::Tensor& logits,
    const torch::Tensor& targets, const torch::Tensor& sample_weight) {
  const auto batch = distributed_impl::gather_batch(
      group, loss, agreed,
      {{"logits", logits}, {"targets", targets}, {"sample_weight", sample_weight}},
      c10::nullopt, /*shared_seed=*/false);
  return {batch.tensors[0], batch.tensors[1], batch.tensors[2]};
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

torch::Tensor SigmoidFocalLossImpl::forward(const torch::Tensor& local_logits,
                                            const torch::Tensor& local_targets,
                                            const torch::Tensor& local_sample_weight) {
  torch::Tensor logits = local_logits;
  torch::Tensor targets = local_targets;
  torch::Tensor sample_weight = local_sample_weight;
  if (gathers()) {
    distributed_impl::OptionList agreed;
    agreed.add("alpha", options.alpha())
        .add("gamma", options.gamma())
        .add("reduction", reduction_name(options.reduction()));
    std::tie(logits, targets, sample_weight) =
        gather_focal_batch(process_group(), "SigmoidFocalLoss", agreed, logits, targets,
                           sample_weight);
  }
  // The op checks the options again: they may have been edited since reset().
  return nn_impl::naming_the_loss("SigmoidFocalLoss", [&] {
    return sigmoid_focal_op(logits, targets, options, sample_weight);
  });
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

torch::Tensor SoftmaxFocalLossImpl::forward(const torch::Tensor& local_logits,
                                            const torch::Tensor& local_targets,
                                            const torch::Tensor& local_sample_weight) {
  torch::Tensor logits = local_logits;
  torch::Tensor targets = local_targets;
  torch::Tensor sample_weight = local_sample_weight;
  if (gathers()) {
    distributed_impl::OptionList agreed;
    agreed.add_values("alpha", options.alpha())
        .add("gamma", options.gamma())
        .add("reduction", focal_reduction_name(options.reduction()))
        .add("label_smoothing", options.label_smoothing())
        .add("ignore_index", options.ignore_index())
        .add("background_class", options.background_class());
    std::tie(logits, targets, sample_weight) =
        gather_focal_batch(process_group(), "SoftmaxFocalLoss", agreed, logits, targets,
                           sample_weight);
  }
  // The op checks the options again: they may have been edited since reset().
  return nn_impl::naming_the_loss("SoftmaxFocalLoss", [&] {
    return softmax_focal_op(logits, targets, options, sample_weight);
  });
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
