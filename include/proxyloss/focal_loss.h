// Focal losses (Lin et al., "Focal Loss for Dense Object Detection", ICCV
// 2017), as the successor library (imbalanced_losses) defines them.
//
// SigmoidFocalLoss, per element: logit x, target t in [0, 1] (0/1 labels;
// soft labels follow the same formula), p = sigmoid(x),
//   ce      = -(t log p + (1 - t) log(1 - p))        (BCE with logits)
//   1 - p_t = p (1 - t) + (1 - p) t
//   loss    = alpha_t (1 - p_t)^gamma ce,   alpha_t = alpha t + (1 - alpha)(1 - t),
// and alpha_t = 1 when alpha < 0 (alpha weighting disabled).
// Reductions: none (shape of logits), sum, mean over all elements (NaN for an
// empty input, as torch's own losses and the successor).
//
// SoftmaxFocalLoss, per row i of logits [N, C] with target y, p = softmax(x_i),
// eps = label_smoothing:
//   ce_i   = -(1 - eps) log p_y - (eps / C) sum_c log p_c   (torch's cross entropy)
//   loss_i = alpha[y] (1 - p_y)^gamma ce_i                   (alpha[y] = 1 without alpha)
// The focal factor uses the unsmoothed p_y. Rows whose target is ignore_index
// give 0. Reductions: none ([N], 0 at ignored rows), sum, mean = sum /
// max(1, #valid rows), kMeanPositive = sum / max(1, #valid rows whose target is
// not background_class): background rows still count in the sum (RetinaNet),
// and a batch without positives divides by 1.
//
// Numerics: log p comes from logsigmoid / log_softmax, and (1 - p_t)^gamma is
// exp(gamma log(1 - p_t)) with log(1 - p_t) = logaddexp(log p + log(1 - t),
// log(1 - p) + log t), resp. logsumexp_{c != y} log p_c; 1 - p_t is never
// formed by subtraction, so saturated logits keep finite gradients for every
// gamma >= 0 (the successor's (1 - p_t)**gamma gives NaN gradients there when
// gamma < 1). float16 and bfloat16 logits are computed in float32; the result
// has the dtype of the logits.
#pragma once

#include "proxyloss/compat.h"
#include "proxyloss/distributed.h"
#include "proxyloss/reduction.h"
#include "proxyloss/sample_weighted_loss.h"

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/common.h>
#include <torch/nn/modules/container/any_value.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <ostream>
#include <string>

namespace proxyloss {

// --- the kMeanPositive reduction -------------------------------------------------

namespace enumtype {
// The type of proxyloss::kMeanPositive, after torch's TORCH_ENUM_DECLARE.
struct kMeanPositive {
  constexpr kMeanPositive() {}
};
} // namespace enumtype

// Sum over valid rows divided by the number of valid non-background rows.
inline constexpr enumtype::kMeanPositive kMeanPositive{};

// torch::kNone, torch::kMean, torch::kSum or proxyloss::kMeanPositive; the
// same variant template as torch's reduction_t (c10::variant or std::variant).
using focal_reduction_t = compat::extend_variant_t<reduction_t, enumtype::kMeanPositive>;

enum class FocalReduction { None, Mean, Sum, MeanPositive };

namespace detail {
struct FocalReductionKind {
  FocalReduction operator()(const torch::enumtype::kNone&) const {
    return FocalReduction::None;
  }
  FocalReduction operator()(const torch::enumtype::kMean&) const {
    return FocalReduction::Mean;
  }
  FocalReduction operator()(const torch::enumtype::kSum&) const {
    return FocalReduction::Sum;
  }
  FocalReduction operator()(const enumtype::kMeanPositive&) const {
    return FocalReduction::MeanPositive;
  }
};
} // namespace detail

inline FocalReduction focal_reduction_kind(const focal_reduction_t& reduction) {
  return compat::visit_variant(detail::FocalReductionKind{}, reduction);
}

// "kNone", "kMean", "kSum" or "kMeanPositive".
std::string focal_reduction_name(const focal_reduction_t& reduction);

// --- SigmoidFocalLoss ------------------------------------------------------------

struct SigmoidFocalLossOptions {
  // Weight of the positives in [0, 1] (negatives get 1 - alpha); any value
  // < 0 disables alpha weighting.
  TORCH_ARG(double, alpha) = 0.25;
  // Focusing exponent gamma >= 0; 0 gives binary cross-entropy.
  TORCH_ARG(double, gamma) = 2.0;
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

// Handed a process group of more than one rank (set_process_group,
// proxyloss/distributed.h), either loss computes the loss of every rank's rows
// concatenated in rank order (targets and sample_weight with their rows), so
// that mean and kMeanPositive normalise over the global batch; none returns
// the global batch's rows.
class SigmoidFocalLossImpl : public torch::nn::Cloneable<SigmoidFocalLossImpl>,
                             public SampleWeightedLoss,
                             public DistributedLoss {
 public:
  explicit SigmoidFocalLossImpl(SigmoidFocalLossOptions options = {});

  // Validates the options (there is no state).
  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  // logits floating, any shape; targets of the same shape, floating point or
  // bool, values in [0, 1]. Scalar for mean and sum, the shape of logits for
  // none.
  // sample_weight: undefined (no weights), or per-element weights [N, ...]
  // (dim 0 the logits', the rest broadcastable to their shape), floating,
  // finite, >= 0, detached: none scales each element, sum adds the scaled
  // elements, mean divides that sum by the weight mass over all elements (1
  // where that mass is exactly 0). As imbalanced-losses 0.6.0.
  // torch::nn::AnyModule (and Sequential) may call it with two arguments or
  // three.
  torch::Tensor forward(const torch::Tensor& logits, const torch::Tensor& targets,
                        const torch::Tensor& sample_weight = {});

  SigmoidFocalLossOptions options;

 protected:
  FORWARD_HAS_DEFAULT_ARGS({2, torch::nn::AnyValue(torch::Tensor())})
};

TORCH_MODULE(SigmoidFocalLoss);

// --- SoftmaxFocalLoss ------------------------------------------------------------

struct SoftmaxFocalLossOptions {
  // Per-class weights [C] (floating, finite, >= 0), alpha[y] scaling each row
  // of target y; undefined disables them. Used on the device and in the
  // compute dtype of the logits (copied there at each call when it lives
  // elsewhere).
  TORCH_ARG(torch::Tensor, alpha) = {};
  // Focusing exponent gamma >= 0; 0 gives cross-entropy.
  TORCH_ARG(double, gamma) = 2.0;
  // torch::kNone, torch::kMean, torch::kSum or proxyloss::kMeanPositive.
  TORCH_ARG(focal_reduction_t, reduction) = torch::kMean;
  // Label smoothing eps in [0, 1] of the cross-entropy term, as torch's.
  TORCH_ARG(double, label_smoothing) = 0.0;
  // Target value of rows that contribute nothing (padding).
  TORCH_ARG(int64_t, ignore_index) = -100;
  // The negative class, left out of kMeanPositive's denominator. A value
  // outside [0, C) makes every valid row positive (kMeanPositive == kMean).
  TORCH_ARG(int64_t, background_class) = 0;
};

class SoftmaxFocalLossImpl : public torch::nn::Cloneable<SoftmaxFocalLossImpl>,
                             public SampleWeightedLoss,
                             public DistributedLoss {
 public:
  explicit SoftmaxFocalLossImpl(SoftmaxFocalLossOptions options = {});

  // Validates the options (there is no state: alpha stays an option).
  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  // logits [N, C] floating; targets [N] integer class indices in [0, C) or
  // ignore_index. Scalar for mean, sum and kMeanPositive, [N] for none.
  // sample_weight: undefined (no weights), or per-row weights [N],
  // floating, finite, >= 0, detached: none scales each row, sum adds the
  // scaled rows, mean and kMeanPositive divide that sum by the weight mass of
  // the rows they count (1 where that mass is exactly 0). As
  // imbalanced-losses 0.6.0. torch::nn::AnyModule (and Sequential) may call
  // it with two arguments or three.
  torch::Tensor forward(const torch::Tensor& logits, const torch::Tensor& targets,
                        const torch::Tensor& sample_weight = {});

  SoftmaxFocalLossOptions options;

 protected:
  FORWARD_HAS_DEFAULT_ARGS({2, torch::nn::AnyValue(torch::Tensor())})
};

TORCH_MODULE(SoftmaxFocalLoss);

// --- functional forms ------------------------------------------------------------

namespace functional {

using SigmoidFocalLossFuncOptions = SigmoidFocalLossOptions;
using SoftmaxFocalLossFuncOptions = SoftmaxFocalLossOptions;

// The same as SigmoidFocalLoss(options)->forward(logits, targets,
// sample_weight) (undefined sample_weight: no weights).
torch::Tensor sigmoid_focal_loss(const torch::Tensor& logits,
                                 const torch::Tensor& targets,
                                 const SigmoidFocalLossFuncOptions& options = {},
                                 const torch::Tensor& sample_weight = {});

// The same as SoftmaxFocalLoss(options)->forward(logits, targets,
// sample_weight) (undefined sample_weight: no weights).
torch::Tensor softmax_focal_loss(const torch::Tensor& logits,
                                 const torch::Tensor& targets,
                                 const SoftmaxFocalLossFuncOptions& options = {},
                                 const torch::Tensor& sample_weight = {});

} // namespace functional
} // namespace proxyloss
