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
// Weighted (sample_weight and/or queue_weight given): the pool's weights
// (ranking_pool) weight the positives' terms of smooth_ap / soft_recall (the
// ranks and the threshold stay unweighted), and a class is valid only where
// its positives' weight mass is > 0 too. Without weights the ops are called
// unweighted: every result is what it was before weights existed.
// per_class = loss where valid, NaN elsewhere (the logits' dtype); loss = the
// reduction over the valid classes (none: per_class, zeros for an empty
// pool; no valid class: a zero that keeps a graph to the logits).
//
// Shares (smooth_ap_loss's share_index / share_count, count > 1): the call
// computes share `index` of `count`, whose anchors are the pool rows m with
// m % count == index: per_class = [index == 0] - smooth_ap(..., anchors)
// where valid, and loss its reduction. Every step above is linear in the
// per-class values once `valid` is fixed (and valid, events and the pool do
// not depend on the share), so the shares' losses and per_class add up to
// those of count == 1 (to rounding), and so do their gradients; each share
// costs 1/count of the pair work. The row-modulo rule spreads every class's
// positives evenly over the shares, wherever they sit in the pool. (The
// pool's row order is the same in every share: the same inputs.)
//
// WithPool: the private ops _smooth_ap_loss_with_pool and
// _recall_at_quantile_loss_with_pool return the pool's labels [M] as a fifth
// result. The pool's row count M is data-dependent (an unbacked SymInt when
// torch.compile traces with capture_dynamic_output_shape_ops); TorchDynamo
// requires such a size to appear in an op's outputs, so the Python modules
// call these. Same results otherwise.
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

// Per-class losses (any value where invalid) -> (loss, per_class, valid).
// Written without a host read or a branch on the pool's size, so that a
// tracer (torch.compile) follows it with the pool's row count unknown: an
// empty pool needs no branch (every class is invalid there), only "none"
// reads the event to return zeros for it, as the seed does.
RankingLossResult reduce_ranking_classes(const at::Tensor& logits,
                                         const at::Tensor& class_loss,
                                         const at::Tensor& valid, Reduction reduction,
                                         const at::Tensor& events) {
  const auto typed = class_loss.to(logits.scalar_type());
  const auto nan =
      at::full({}, std::numeric_limits<double>::quiet_NaN(), typed.options());
  const auto zero = at::zeros({}, typed.options());
  const auto per_class = at::where(valid, typed, nan);
  if (reduction == Reduction::None) {
    // An empty pool: zeros with a graph to the logits (through where).
    const auto loss = at::where(events[ops::kEmptyPool], zero, per_class);
    return {loss, per_class, valid, events};
  }
  // The valid classes' losses (invalid ones masked by where, so their NaN
  // reaches neither the value nor the gradient); with none valid, a zero
  // that still has a graph to the logits (through where).
  const auto kept = at::where(valid, typed, zero);
  const auto count = valid.sum().clamp_min(1).to(typed.scalar_type());
  auto loss = common::reduce(kept, reduction, count);
  return {loss, per_class, valid, events};
}

namespace {

// The pipeline both losses share: the pool, then `per_class(scores,
// labels, weights)` -> (per-class loss, valid), then the reduction; weights
// is nullopt when the loss is unweighted, and a class is valid only where
// its positives weigh something. Returns the pool's labels after the four
// results (see WithPool below).
template <typename PerClass>
RankingLossWithPool ranking_loss(const at::Tensor& logits, const at::Tensor& targets,
                                 const optional<at::Tensor>& queue_logits,
                                 const optional<at::Tensor>& queue_targets,
                                 int64_t num_classes, int64_t ignore_index,
                                 optional<int64_t> max_pool_size, Reduction reduction,
                                 const optional<at::Tensor>& sample_weight,
                                 const optional<at::Tensor>& queue_weight,
                                 PerClass&& per_class) {
  at::Tensor scores;
  at::Tensor labels;
  at::Tensor events;
  at::Tensor pool_weights;
  std::tie(scores, labels, events, pool_weights) =
      ops::ranking_pool(logits, targets, queue_logits, queue_targets, num_classes,
                        ignore_index, max_pool_size, sample_weight, queue_weight);
  const bool weighted = sample_weight.has_value() || queue_weight.has_value();
  const auto weights = weighted ? optional<at::Tensor>(pool_weights) : c10::nullopt;
  at::Tensor class_loss;
  at::Tensor valid;
  std::tie(class_loss, valid) = per_class(scores, labels, weights);
  if (weighted) {
    valid = valid.logical_and(
        positive_mass_per_class(labels, pool_weights, num_classes).gt(0));
  }
  const auto result =
      reduce_ranking_classes(logits, class_loss, valid, reduction, events);
  return std::tuple_cat(result, std::make_tuple(labels));
}

RankingLossResult without_pool(const RankingLossWithPool& result) {
  return {std::get<0>(result), std::get<1>(result), std::get<2>(result),
          std::get<3>(result)};
}

} // namespace

RankingLossWithPool smooth_ap_loss_with_pool(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, double temperature, c10::string_view reduction_name,
    int64_t ignore_index, optional<int64_t> max_pool_size,
    const optional<at::Tensor>& sample_weight, const optional<at::Tensor>& queue_weight,
    int64_t share_index, int64_t share_count) {
  constexpr const char* kOp = "proxyloss::smooth_ap_loss";
  common::check_ranking_options(kOp, num_classes, temperature, ignore_index,
                                max_pool_size);
  const auto reduction = common::parse_reduction(kOp, std::string(reduction_name));
  TORCH_CHECK(share_count >= 1 && share_index >= 0 && share_index < share_count, kOp,
              ": share_index must be in [0, share_count) and share_count >= 1, got "
              "share_index = ",
              share_index, ", share_count = ", share_count);
  return ranking_loss(
      logits, targets, queue_logits, queue_targets, num_classes, ignore_index,
      max_pool_size, reduction, sample_weight, queue_weight,
      [&](const at::Tensor& scores, const at::Tensor& labels,
          const optional<at::Tensor>& weights) {
        optional<at::Tensor> anchors;
        if (share_count > 1) {
          anchors = at::arange(labels.size(0), labels.options())
                        .remainder(share_count)
                        .eq(share_index);
        }
        const auto ap = ops::smooth_ap(scores, labels, temperature, weights, anchors);
        const auto positives = positives_per_class(labels, num_classes);
        const auto pool_rows = at::ones_like(labels).sum();
        const auto valid = positives.gt(0).logical_and(positives.lt(pool_rows));
        // The constant 1 of 1 - ap belongs to one share only.
        return std::make_tuple((share_index == 0 ? 1.0 : 0.0) - ap, valid);
      });
}

RankingLossWithPool recall_at_quantile_loss_with_pool(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, double quantile, c10::string_view interpolation,
    double temperature, c10::string_view reduction_name, int64_t ignore_index,
    optional<int64_t> max_pool_size, const optional<at::Tensor>& sample_weight,
    const optional<at::Tensor>& queue_weight) {
  constexpr const char* kOp = "proxyloss::recall_at_quantile_loss";
  common::check_ranking_options(kOp, num_classes, temperature, ignore_index,
                                max_pool_size);
  common::check_quantile(kOp, quantile);
  parse_interpolation(interpolation, std::string(kOp) + ": interpolation");
  const auto reduction = common::parse_reduction(kOp, std::string(reduction_name));
  const std::string mode(interpolation);
  return ranking_loss(
      logits, targets, queue_logits, queue_targets, num_classes, ignore_index,
      max_pool_size, reduction, sample_weight, queue_weight,
      [&](const at::Tensor& scores, const at::Tensor& labels,
          const optional<at::Tensor>& weights) {
        const auto detached = scores.detach();
        // Non-finite scores make the class NaN (never a wrong finite value).
        const auto thresholds = at::where(
            at::isfinite(detached).all(/*dim=*/0),
            ops::selection_quantile(detached, 1.0 - quantile, mode),
            at::full({}, std::numeric_limits<double>::quiet_NaN(), detached.options()));
        const auto recall =
            ops::soft_recall(scores, labels, thresholds, temperature, weights);
        const auto valid = positives_per_class(labels, num_classes).gt(0);
        return std::make_tuple(1 - recall, valid);
      });
}

RankingLossResult smooth_ap_loss(const at::Tensor& logits, const at::Tensor& targets,
                                 const optional<at::Tensor>& queue_logits,
                                 const optional<at::Tensor>& queue_targets,
                                 int64_t num_classes, double temperature,
                                 c10::string_view reduction, int64_t ignore_index,
                                 optional<int64_t> max_pool_size,
                                 const optional<at::Tensor>& sample_weight,
                                 const optional<at::Tensor>& queue_weight,
                                 int64_t share_index, int64_t share_count) {
  return without_pool(
      smooth_ap_loss_with_pool(logits, targets, queue_logits, queue_targets, num_classes,
                               temperature, reduction, ignore_index, max_pool_size,
                               sample_weight, queue_weight, share_index, share_count));
}

RankingLossResult recall_at_quantile_loss(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, double quantile, c10::string_view interpolation,
    double temperature, c10::string_view reduction, int64_t ignore_index,
    optional<int64_t> max_pool_size, const optional<at::Tensor>& sample_weight,
    const optional<at::Tensor>& queue_weight) {
  return without_pool(recall_at_quantile_loss_with_pool(
      logits, targets, queue_logits, queue_targets, num_classes, quantile, interpolation,
      temperature, reduction, ignore_index, max_pool_size, sample_weight, queue_weight));
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeImplicitAutograd, m) {
  m.impl("smooth_ap_loss", &proxyloss::ops_impl::smooth_ap_loss);
  m.impl("recall_at_quantile_loss", &proxyloss::ops_impl::recall_at_quantile_loss);
  m.impl("_smooth_ap_loss_with_pool", &proxyloss::ops_impl::smooth_ap_loss_with_pool);
  m.impl("_recall_at_quantile_loss_with_pool",
         &proxyloss::ops_impl::recall_at_quantile_loss_with_pool);
}
