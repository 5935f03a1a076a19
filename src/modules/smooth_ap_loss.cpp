#include "proxyloss/smooth_ap_loss.h"

#include "proxyloss/ops.h"

#include <torch/types.h>

namespace proxyloss {
namespace {

// Half and bfloat16 scores are ranked in float32.
torch::Tensor wide_scores(const torch::Tensor& pool_logits) {
  const auto type = pool_logits.scalar_type();
  return type == torch::kFloat || type == torch::kDouble ? pool_logits
                                                         : pool_logits.to(torch::kFloat);
}

detail::PerClass smooth_ap_per_class(const torch::Tensor& pool_logits,
                                     const torch::Tensor& labels, double temperature) {
  const auto ap = ops::smooth_ap(wide_scores(pool_logits), labels, temperature);
  const auto positives = detail::positives_per_class(labels, pool_logits.size(1));
  const auto valid = positives.gt(0).logical_and(positives.lt(pool_logits.size(0)));
  return {(1 - ap).to(pool_logits.scalar_type()), valid};
}

} // namespace

detail::PerClass SmoothAPLossImpl::compute_per_class(const torch::Tensor& pool_logits,
                                                     const torch::Tensor& labels) const {
  return smooth_ap_per_class(pool_logits, labels, options.temperature());
}

namespace functional {

torch::Tensor smooth_ap_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                             const SmoothAPLossFuncOptions& options) {
  detail::RankingConfig config;
  config.loss_name = "smooth_ap_loss";
  config.num_classes = options.num_classes();
  config.temperature = options.temperature();
  config.ignore_index = options.ignore_index();
  detail::check_ranking_config(config);
  detail::QueuedRanking ranking(config, detail::MemoryQueue());
  const double tau = options.temperature();
  return std::get<0>(ranking.forward(
      logits, targets, options.reduction(), /*update_queue=*/false,
      [tau](const torch::Tensor& pool_logits, const torch::Tensor& labels) {
        return smooth_ap_per_class(pool_logits, labels, tau);
      }));
}

} // namespace functional
} // namespace proxyloss
