// The C++ entry points of include/proxyloss/ops.h and fair_loss_op.h: each a
// call through the dispatcher, so that autograd and the per-device
// implementations apply exactly as from Python.
#include "proxyloss/ops.h"
#include "proxyloss/fair_loss_op.h"

#include "ops/dispatch.h"

#include <c10/util/string_view.h>

namespace proxyloss {
namespace ops {

using ops_impl::typed_op;
using RankingLossResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

at::Tensor smooth_ap(const at::Tensor& scores, const at::Tensor& labels,
                     double temperature, const optional<at::Tensor>& weights,
                     const optional<at::Tensor>& anchors) {
  static const auto op =
      typed_op<at::Tensor(const at::Tensor&, const at::Tensor&, double,
                          const optional<at::Tensor>&, const optional<at::Tensor>&)>(
          "proxyloss::smooth_ap");
  return op.call(scores, labels, temperature, weights, anchors);
}

at::Tensor selection_quantile(const at::Tensor& values, double q,
                              const std::string& interpolation) {
  static const auto op =
      typed_op<at::Tensor(const at::Tensor&, double, c10::string_view)>(
          "proxyloss::selection_quantile");
  return op.call(values, q, interpolation);
}

at::Tensor soft_recall(const at::Tensor& scores, const at::Tensor& labels,
                       const at::Tensor& thresholds, double temperature,
                       const optional<at::Tensor>& weights) {
  static const auto op =
      typed_op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, double,
                          const optional<at::Tensor>&)>("proxyloss::soft_recall");
  return op.call(scores, labels, thresholds, temperature, weights);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ranking_pool(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, int64_t ignore_index, optional<int64_t> max_pool_size,
    const optional<at::Tensor>& sample_weight, const optional<at::Tensor>& queue_weight) {
  static const auto op =
      typed_op<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
          const at::Tensor&, const at::Tensor&, const optional<at::Tensor>&,
          const optional<at::Tensor>&, int64_t, int64_t, optional<int64_t>,
          const optional<at::Tensor>&, const optional<at::Tensor>&)>(
          "proxyloss::ranking_pool");
  return op.call(logits, targets, queue_logits, queue_targets, num_classes, ignore_index,
                 max_pool_size, sample_weight, queue_weight);
}

RankingLossResult smooth_ap_loss(const at::Tensor& logits, const at::Tensor& targets,
                                 const optional<at::Tensor>& queue_logits,
                                 const optional<at::Tensor>& queue_targets,
                                 int64_t num_classes, double temperature,
                                 const std::string& reduction, int64_t ignore_index,
                                 optional<int64_t> max_pool_size,
                                 const optional<at::Tensor>& sample_weight,
                                 const optional<at::Tensor>& queue_weight,
                                 int64_t share_index, int64_t share_count) {
  static const auto op = typed_op<RankingLossResult(
      const at::Tensor&, const at::Tensor&, const optional<at::Tensor>&,
      const optional<at::Tensor>&, int64_t, double, c10::string_view, int64_t,
      optional<int64_t>, const optional<at::Tensor>&, const optional<at::Tensor>&,
      int64_t, int64_t)>("proxyloss::smooth_ap_loss");
  return op.call(logits, targets, queue_logits, queue_targets, num_classes, temperature,
                 reduction, ignore_index, max_pool_size, sample_weight, queue_weight,
                 share_index, share_count);
}

RankingLossResult recall_at_quantile_loss(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, double quantile, const std::string& interpolation,
    double temperature, const std::string& reduction, int64_t ignore_index,
    optional<int64_t> max_pool_size, const optional<at::Tensor>& sample_weight,
    const optional<at::Tensor>& queue_weight) {
  static const auto op = typed_op<RankingLossResult(
      const at::Tensor&, const at::Tensor&, const optional<at::Tensor>&,
      const optional<at::Tensor>&, int64_t, double, c10::string_view, double,
      c10::string_view, int64_t, optional<int64_t>, const optional<at::Tensor>&,
      const optional<at::Tensor>&)>("proxyloss::recall_at_quantile_loss");
  return op.call(logits, targets, queue_logits, queue_targets, num_classes, quantile,
                 interpolation, temperature, reduction, ignore_index, max_pool_size,
                 sample_weight, queue_weight);
}

at::Tensor selection_quantiles(const at::Tensor& values, const at::Tensor& levels,
                               const std::string& interpolation) {
  static const auto op =
      typed_op<at::Tensor(const at::Tensor&, const at::Tensor&, c10::string_view)>(
          "proxyloss::selection_quantiles");
  return op.call(values, levels, interpolation);
}

std::tuple<at::Tensor, at::Tensor> pauc_pairwise(const at::Tensor& positives,
                                                 const at::Tensor& negatives, double tau,
                                                 const optional<at::Tensor>& weights) {
  static const auto op = typed_op<std::tuple<at::Tensor, at::Tensor>(
      const at::Tensor&, const at::Tensor&, double, const optional<at::Tensor>&)>(
      "proxyloss::pauc_pairwise");
  return op.call(positives, negatives, tau, weights);
}

PaucLossResult pauc_at_budget_loss(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, double alpha, double beta, const std::string& surrogate,
    int64_t n_knots, const std::string& tau_scale, const std::string& pos_numerator,
    const std::string& budget_basis, double temperature, const std::string& reduction,
    int64_t ignore_index, const std::string& quantile_interpolation,
    optional<int64_t> max_pool_size, const optional<at::Tensor>& sample_weight,
    const optional<at::Tensor>& queue_weight, const optional<at::Tensor>& iid_mask,
    const optional<at::Tensor>& queue_iid) {
  static const auto op = typed_op<PaucLossResult(
      const at::Tensor&, const at::Tensor&, const optional<at::Tensor>&,
      const optional<at::Tensor>&, int64_t, double, double, c10::string_view, int64_t,
      c10::string_view, c10::string_view, c10::string_view, double, c10::string_view,
      int64_t, c10::string_view, optional<int64_t>, const optional<at::Tensor>&,
      const optional<at::Tensor>&, const optional<at::Tensor>&,
      const optional<at::Tensor>&)>("proxyloss::pauc_at_budget_loss");
  return op.call(logits, targets, queue_logits, queue_targets, num_classes, alpha, beta,
                 surrogate, n_knots, tau_scale, pos_numerator, budget_basis, temperature,
                 reduction, ignore_index, quantile_interpolation, max_pool_size,
                 sample_weight, queue_weight, iid_mask, queue_iid);
}

void queue_push_(at::Tensor& queue_logits, at::Tensor& queue_targets,
                 at::Tensor& queue_ptr, const at::Tensor& logits,
                 const at::Tensor& targets, const optional<at::Tensor>& queue_weight,
                 const optional<at::Tensor>& sample_weight,
                 const optional<at::Tensor>& queue_iid,
                 const optional<at::Tensor>& iid_mask) {
  static const auto op =
      typed_op<void(at::Tensor&, at::Tensor&, at::Tensor&, const at::Tensor&,
                    const at::Tensor&, const optional<at::Tensor>&,
                    const optional<at::Tensor>&, const optional<at::Tensor>&,
                    const optional<at::Tensor>&)>("proxyloss::queue_push_");
  op.call(queue_logits, queue_targets, queue_ptr, logits, targets, queue_weight,
          sample_weight, queue_iid, iid_mask);
}

at::Tensor fair_loss(const at::Tensor& logits, const at::Tensor& targets,
                     const optional<at::Tensor>& weight, double smooth_max_beta,
                     double scaling_factor, int64_t ignore_index,
                     double label_smoothing) {
  static const auto op =
      typed_op<at::Tensor(const at::Tensor&, const at::Tensor&,
                          const optional<at::Tensor>&, double, double, int64_t, double)>(
          "proxyloss::fair_loss");
  return op.call(logits, targets, weight, smooth_max_beta, scaling_factor, ignore_index,
                 label_smoothing);
}

at::Tensor fair_loss_reduced(const at::Tensor& logits, const at::Tensor& targets,
                             const optional<at::Tensor>& weight, double smooth_max_beta,
                             double scaling_factor, const std::string& reduction,
                             int64_t ignore_index, double label_smoothing,
                             const optional<at::Tensor>& sample_weight) {
  static const auto op = typed_op<at::Tensor(
      const at::Tensor&, const at::Tensor&, const optional<at::Tensor>&, double, double,
      c10::string_view, int64_t, double, const optional<at::Tensor>&)>(
      "proxyloss::fair_loss_reduced");
  return op.call(logits, targets, weight, smooth_max_beta, scaling_factor, reduction,
                 ignore_index, label_smoothing, sample_weight);
}

at::Tensor sigmoid_focal_loss(const at::Tensor& logits, const at::Tensor& targets,
                              double alpha, double gamma, const std::string& reduction,
                              const optional<at::Tensor>& sample_weight) {
  static const auto op =
      typed_op<at::Tensor(const at::Tensor&, const at::Tensor&, double, double,
                          c10::string_view, const optional<at::Tensor>&)>(
          "proxyloss::sigmoid_focal_loss");
  return op.call(logits, targets, alpha, gamma, reduction, sample_weight);
}

at::Tensor softmax_focal_loss(const at::Tensor& logits, const at::Tensor& targets,
                              const optional<at::Tensor>& alpha, double gamma,
                              const std::string& reduction, double label_smoothing,
                              int64_t ignore_index, int64_t background_class,
                              const optional<at::Tensor>& sample_weight) {
  static const auto op = typed_op<at::Tensor(
      const at::Tensor&, const at::Tensor&, const optional<at::Tensor>&, double,
      c10::string_view, double, int64_t, int64_t, const optional<at::Tensor>&)>(
      "proxyloss::softmax_focal_loss");
  return op.call(logits, targets, alpha, gamma, reduction, label_smoothing, ignore_index,
                 background_class, sample_weight);
}

} // namespace ops
} // namespace proxyloss
