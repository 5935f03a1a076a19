#include "proxyloss/smooth_ap_loss.h"

#include "proxyloss/ops.h"

#include <torch/types.h>

#include <ostream>

namespace proxyloss {
namespace {

// 1 - AP per class; valid when the class has a positive and a negative.
// Half and bfloat16 scores are ranked in float32.
detail::PerClass smooth_ap_per_class(const torch::Tensor& pool_logits,
                                     const torch::Tensor& labels, double temperature) {
  const auto wide = pool_logits.scalar_type() == torch::kFloat ||
                    pool_logits.scalar_type() == torch::kDouble;
  const auto scores = wide ? pool_logits : pool_logits.to(torch::kFloat);
  const auto ap = ops::smooth_ap(scores, labels, temperature);
  const auto positives = detail::positives_per_class(labels, pool_logits.size(1));
  const auto valid = positives.gt(0).logical_and(positives.lt(pool_logits.size(0)));
  return {(1 - ap).to(pool_logits.scalar_type()), valid};
}

detail::RankingConfig ranking_config(const SmoothAPLossOptions& options) {
  detail::RankingConfig config;
  config.loss_name = "SmoothAPLoss";
  config.num_classes = options.num_classes();
  config.queue_size = options.queue_size();
  config.temperature = options.temperature();
  config.ignore_index = options.ignore_index();
  config.max_pool_size = options.max_pool_size();
  return config;
}

} // namespace

SmoothAPLossImpl::SmoothAPLossImpl(SmoothAPLossOptions options_)
    : options(std::move(options_)) {
  reset();
}

void SmoothAPLossImpl::reset() {
  auto config = ranking_config(options);
  detail::check_ranking_config(config);
  detail::MemoryQueue queue(*this, options.queue_size(), options.num_classes(),
                            options.ignore_index());
  ranking_ = detail::QueuedRanking(std::move(config), std::move(queue));
}

void SmoothAPLossImpl::pretty_print(std::ostream& stream) const {
  stream << "proxyloss::SmoothAPLoss(num_classes=" << options.num_classes()
         << ", queue_size=" << options.queue_size()
         << ", temperature=" << options.temperature()
         << ", reduction=" << reduction_name(options.reduction())
         << ", ignore_index=" << options.ignore_index() << ", update_queue_in_eval="
         << (options.update_queue_in_eval() ? "true" : "false") << ", max_pool_size=";
  if (options.max_pool_size().has_value()) {
    stream << *options.max_pool_size();
  } else {
    stream << "None";
  }
  stream << ")";
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor>
SmoothAPLossImpl::forward_per_class(const torch::Tensor& logits,
                                    const torch::Tensor& targets) {
  // Options may have been edited since reset(): check them again.
  ranking_.update_config(ranking_config(options));
  const double tau = options.temperature();
  const bool update = is_training() || options.update_queue_in_eval();
  return ranking_.forward(
      logits, targets, options.reduction(), update,
      [tau](const torch::Tensor& pool_logits, const torch::Tensor& labels) {
        return smooth_ap_per_class(pool_logits, labels, tau);
      });
}

torch::Tensor SmoothAPLossImpl::forward(const torch::Tensor& logits,
                                        const torch::Tensor& targets) {
  return std::get<0>(forward_per_class(logits, targets));
}

void SmoothAPLossImpl::reset_queue() {
  ranking_.queue().reset();
}

double SmoothAPLossImpl::temperature() const {
  return options.temperature();
}

void SmoothAPLossImpl::set_temperature(double temperature) {
  detail::check_temperature("SmoothAPLoss", temperature);
  options.temperature(temperature);
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
