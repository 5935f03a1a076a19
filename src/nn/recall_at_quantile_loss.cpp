// RecallAtQuantileLoss: calls of the proxyloss::recall_at_quantile_loss op
// (include/proxyloss/ops.h).
#include "proxyloss/recall_at_quantile_loss.h"

#include "common/ranking_options.h"
#include "common/reduction.h"
#include "distributed/gather_batch.h"
#include "ops/selection_quantile.h"
#include "proxyloss/ops.h"

namespace proxyloss {

void RecallAtQuantileLossImpl::check_extra_options() const {
  common::check_quantile(kName, options.quantile());
  ops_impl::parse_interpolation(options.interpolation(),
                                std::string(kName) + ": interpolation");
}

RankingLossResult RecallAtQuantileLossImpl::call_op(
    const torch::Tensor& logits, const torch::Tensor& targets,
    const RankingStepInputs& inputs) const {
  return ops::recall_at_quantile_loss(
      logits, targets, inputs.queue_logits, inputs.queue_targets, options.num_classes(),
      options.quantile(), options.interpolation(), options.temperature(),
      common::reduction_string(options.reduction()), options.ignore_index(),
      options.max_pool_size(), inputs.sample_weight, inputs.queue_weight);
}

void RecallAtQuantileLossImpl::describe_extra_options(
    distributed_impl::OptionList& agreed) const {
  agreed.add("quantile", options.quantile())
      .add("interpolation", options.interpolation());
}

void RecallAtQuantileLossImpl::print_extra_options(std::ostream& stream) const {
  stream << ", quantile=" << options.quantile()
         << ", interpolation=" << options.interpolation();
}

} // namespace proxyloss
