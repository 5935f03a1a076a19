// SmoothAPLoss and functional::smooth_ap_loss: calls of the
// proxyloss::smooth_ap_loss op (include/proxyloss/ops.h).
#include "proxyloss/smooth_ap_loss.h"

#include "common/optional_tensor.h"
#include "common/reduction.h"
#include "nn/ranking_warnings.h"
#include "proxyloss/ops.h"

namespace proxyloss {

RankingLossResult SmoothAPLossImpl::call_op(const torch::Tensor& logits,
                                            const torch::Tensor& targets,
                                            const RankingStepInputs& inputs) const {
  return ops::smooth_ap_loss(logits, targets, inputs.queue_logits, inputs.queue_targets,
                             options.num_classes(), options.temperature(),
                             common::reduction_string(options.reduction()),
                             options.ignore_index(), options.max_pool_size(),
                             inputs.sample_weight, inputs.queue_weight);
}

namespace functional {

torch::Tensor smooth_ap_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                             const SmoothAPLossFuncOptions& options,
                             const torch::Tensor& sample_weight) {
  const auto result = ops::smooth_ap_loss(
      logits, targets, c10::nullopt, c10::nullopt, options.num_classes(),
      options.temperature(), common::reduction_string(options.reduction()),
      options.ignore_index(), c10::nullopt, common::defined_or_nullopt(sample_weight));
  RankingWarningsIssued issued; // each call is an instance: it may warn each time
  nn_impl::warn_ranking_events("smooth_ap_loss", std::get<3>(result), targets,
                               torch::Tensor(), options.ignore_index(), 0, issued);
  return std::get<0>(result);
}

} // namespace functional
} // namespace proxyloss
