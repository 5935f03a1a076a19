// FairLoss: cross-entropy plus a smooth penalty for a wrong argmax
// (pytorch-fairloss 0.1.1; after the Penalized Logarithmic Loss of Ahmadian
// et al., 2025).
//
// For a row with logits z [C] and target y, beta = smooth_max_beta and
// k = scaling_factor:
//   loss = CE + (2 sigmoid(k (smoothmax_beta(z) - z_y)) - 1) / C,
//   smoothmax_beta(z) = logsumexp(beta z) / beta   (>= max_c z_c),
// with CE torch's per-sample cross-entropy with the same weight and label
// smoothing. The penalty is ~0 when y is the argmax by a margin of a few
// 1 / beta, and approaches 1 / C when the argmax is wrong by a few 1 / k.
// Rows whose target is ignore_index contribute nothing: 0 in reduction none,
// left out of sum and of mean's denominator (mean is the plain mean over the
// other rows, not weighted by class weight; NaN when there is none, as
// torch's mean of nothing). Computed by a fused op: one pass per row forward
// and backward, numerically stable for any finite beta, k and logits.
//
// Per-sample weights (sample_weight, w [N]; pytorch-fairloss has none, this
// is our definition, the focal losses' convention): with loss_i as above
// (0 at ignored rows),
//   none: w_i loss_i;   sum: sum_i w_i loss_i;
//   mean: sum_i w_i loss_i / sum_{i not ignored} w_i,
// divided by 1 instead where that mass is exactly 0 (all weights zero, every
// row ignored, or no rows): 0 with a zero gradient, where the unweighted mean
// is NaN. The class weights stay inside CE_i and do not enter the
// denominator. The weights receive no gradient.
#pragma once

#include "proxyloss/reduction.h"
#include "proxyloss/sample_weighted_loss.h"

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/common.h>
#include <torch/nn/modules/container/any_value.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace proxyloss {

struct FairLossOptions {
  // beta of the smooth maximum, finite and > 0; larger is closer to max.
  TORCH_ARG(double, smooth_max_beta) = 1000.0;
  // k, the sigmoid's scale, finite and >= 0 (0 turns the penalty off:
  // plain cross-entropy); larger makes the penalty closer to a step.
  TORCH_ARG(double, scaling_factor) = 1000.0;
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
  // Class weights [C] of the cross-entropy term (floating, on the device of
  // the logits); undefined for none. The penalty is not weighted. Receives
  // no gradient.
  TORCH_ARG(torch::Tensor, weight) = torch::Tensor();
  // Target value of rows to leave out.
  TORCH_ARG(int64_t, ignore_index) = -100;
  // eps in [0, 1] of the cross-entropy term, as torch's.
  TORCH_ARG(double, label_smoothing) = 0.0;
};

class FairLossImpl : public torch::nn::Cloneable<FairLossImpl>,
                     public SampleWeightedLoss {
 public:
  explicit FairLossImpl(FairLossOptions options = {});

  // Validates the options and registers a copy of options.weight as the
  // buffer `weight` (as torch::nn::CrossEntropyLoss registers its weight), so
  // it follows module->to(device) and torch::save/load.
  void reset() override;
  // torch::load: class weights of the module's shape, or a c10::Error and the
  // module unchanged.
  void load(torch::serialize::InputArchive& archive) override;
  void pretty_print(std::ostream& stream) const override;

  // logits [N, C] floating (float16/bfloat16 computed in float32), targets
  // [N] integer in [0, C) or ignore_index. Scalar for mean and sum, [N] for
  // none, in the dtype of logits. Uses the `weight` buffer.
  // sample_weight: undefined (no weights: the loss above, unchanged), or
  // per-row weights [N], floating, finite, >= 0 (else a c10::ValueError
  // naming sample_weight), detached, on the device of logits; reductions as
  // in the header comment. torch::nn::AnyModule (and Sequential) may call it
  // with two arguments or three.
  torch::Tensor forward(const torch::Tensor& logits, const torch::Tensor& targets,
                        const torch::Tensor& sample_weight = {});

  FairLossOptions options;
  // The class weights in use (buffer "weight"); undefined for none.
  torch::Tensor weight;

 protected:
  FORWARD_HAS_DEFAULT_ARGS({2, torch::nn::AnyValue(torch::Tensor())})
};

TORCH_MODULE(FairLoss);

namespace functional {

using FairLossFuncOptions = FairLossOptions;

// The same loss as proxyloss::FairLoss(options)->forward(logits, targets,
// sample_weight), with options.weight as class weights.
torch::Tensor fair_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                        const FairLossFuncOptions& options = {},
                        const torch::Tensor& sample_weight = {});

} // namespace functional
} // namespace proxyloss
