// proxyloss::smooth_ap_loss and proxyloss::recall_at_quantile_loss: a queued
// ranking loss's whole forward but the queue update, from registered ops.
// CompositeImplicitAutograd: gradients come from the per-class ops' own
// autograd Functions (smooth_ap, soft_recall).
//
// Per class c of the pool (ranking_pool):
//   Smooth-AP:         loss_c = 1 - smooth_ap(scores, labels, tau)[c],
//                      valid where the class has a positive and a negative;
//   RecallAtQuantile:  theta = selection_quantile(scores, 1 - quantile)
//                      (detached; NaN for a column with a non-finite score),
//                      loss_c = 1 - soft_recall(scores, labels, theta, tau)[c],
//                      valid where the class has a positive.
// per_class = loss where valid, NaN elsewhere (the logits' dtype); loss = the
// reduction over the valid classes (none: per_class; an empty pool or no
// valid class: a zero that keeps a graph to the logits).
#include "common/ranking_options.h"
#include "common/reduction.h"
#include "ops/op_labels.h"
#include "ops/ranking.h"
#include "ops/selection_quantile.h"
#include "proxyloss/ops.h"

#include <torch/library.h>

#include <limits>
#include <string>
#include <tuple>

namespace proxyloss {
namespace ops_impl {
namespace {

// A scalar zero that still has a graph to `logits` (gradient 0), and stays 0
// even when the logits hold NaN.
at::Tensor zero_with_graph(const at::Tensor& logits) {
  return logits.narrow(0, 0, 0).sum();
}

// The result for an empty pool: zero loss with a graph, every class invalid.
RankingLossResult empty_pool_result(const at::Tensor& logits, int64_t num_classes,
                                    Reduction reduction, const at::Tensor& events) {
  auto zero = zero_with_graph(logits);
  auto loss = reduction == Reduction::None ? zero.expand({num_classes}).clone() : zero;
  auto per_class =
      at::full({num_classes}, std::numeric_limits<double>::quiet_NaN(), logits.options());
  auto valid = at::zeros({num_classes}, logits.options().dtype(at::kBool));
  return {loss, per_class, valid, events};
}

// Per-class losses (any value where invalid) -> (loss, per_class, valid).
RankingLossResult reduce_classes(const at::Tensor& logits, const at::Tensor& class_loss,
                                 const at::Tensor& valid, Reduction reduction,
                                 const at::Tensor& events) {
  const auto typed = class_loss.to(logits.scalar_type());
  const auto per_class =
      at::where(valid, typed,
                at::full({}, std::numeric_limits<double>::quiet_NaN(), typed.options()));
  if (reduction == Reduction::None) {
    return {per_class, per_class, valid, events};
  }
  // The valid classes' losses (invalid ones masked by where, so their NaN
  // reaches neither the value nor the gradient); with none valid, a zero
  // that still has a graph to the logits (through where).
  const auto kept = at::where(valid, typed, at::zeros({}, typed.options()));
  const auto count = valid.sum().clamp_min(1).to(typed.scalar_type());
  auto loss = common::reduce(kept, reduction, count);
  return {loss, per_class, valid, events};
}

// The pipeline both losses share: the pool, then `per_class(scores,
// labels)` -> (per-class loss, valid), then the reduction.
template <typename PerClass>
RankingLossResult ranking_loss(const at::Tensor& logits, const at::Tensor& targets,
                               const optional<at::Tensor>& queue_logits,
                               const optional<at::Tensor>& queue_targets,
                               int64_t num_classes, int64_t ignore_index,
                               optional<int64_t> max_pool_size, Reduction reduction,
                               PerClass&& per_class) {
  at::Tensor scores;
  at::Tensor labels;
  at::Tensor events;
  std::tie(scores, labels, events) =
      ops::ranking_pool(logits, targets, queue_logits, queue_targets, num_classes,
                        ignore_index, max_pool_size);
  if (scores.size(0) == 0) {
    return empty_pool_result(logits, num_classes, reduction, events);
  }
  at::Tensor class_loss;
  at::Tensor valid;
  std::tie(class_loss, valid) = per_class(scores, labels);
  return reduce_classes(logits, class_loss, valid, reduction, events);
}

} // namespace

RankingLossResult smooth_ap_loss(const at::Tensor& logits, const at::Tensor& targets,
                                 const optional<at::Tensor>& queue_logits,
                                 const optional<at::Tensor>& queue_targets,
                                 int64_t num_classes, double temperature,
                                 c10::string_view reduction_name, int64_t ignore_index,
                                 optional<int64_t> max_pool_size) {
  constexpr const char* kOp = "proxyloss::smooth_ap_loss";
  common::check_ranking_options(kOp, num_classes, temperature, ignore_index,
                                max_pool_size);
  const auto reduction = common::parse_reduction(kOp, std::string(reduction_name));
  return ranking_loss(
      logits, targets, queue_logits, queue_targets, num_classes, ignore_index,
      max_pool_size, reduction, [&](const at::Tensor& scores, const at::Tensor& labels) {
        const auto ap = ops::smooth_ap(scores, labels, temperature);
        const auto positives = positives_per_class(labels, num_classes);
        const auto valid = positives.gt(0).logical_and(positives.lt(scores.size(0)));
        return std::make_tuple(1 - ap, valid);
      });
}

RankingLossResult recall_at_quantile_loss(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, double quantile, c10::string_view interpolation,
    double temperature, c10::string_view reduction_name, int64_t ignore_index,
    optional<int64_t> max_pool_size) {
  constexpr const char* kOp = "proxyloss::recall_at_quantile_loss";
  common::check_ranking_options(kOp, num_classes, temperature, ignore_index,
                                max_pool_size);
  common::check_quantile(kOp, quantile);
  parse_interpolation(interpolation, std::string(kOp) + ": interpolation");
  const auto reduction = common::parse_reduction(kOp, std::string(reduction_name));
  const std::string mode(interpolation);
  return ranking_loss(
      logits, targets, queue_logits, queue_targets, num_classes, ignore_index,
      max_pool_size, reduction, [&](const at::Tensor& scores, const at::Tensor& labels) {
        const auto detached = scores.detach();
        // Non-finite scores make the class NaN (never a wrong finite value).
        const auto thresholds = at::where(
            at::isfinite(detached).all(/*dim=*/0),
            ops::selection_quantile(detached, 1.0 - quantile, mode),
            at::full({}, std::numeric_limits<double>::quiet_NaN(), detached.options()));
        const auto recall = ops::soft_recall(scores, labels, thresholds, temperature);
        const auto valid = positives_per_class(labels, num_classes).gt(0);
        return std::make_tuple(1 - recall, valid);
      });
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeImplicitAutograd, m) {
  m.impl("smooth_ap_loss", &proxyloss::ops_impl::smooth_ap_loss);
  m.impl("recall_at_quantile_loss", &proxyloss::ops_impl::recall_at_quantile_loss);
}
