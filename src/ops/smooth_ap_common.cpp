// The O(M) parts of the Smooth-AP op shared by every implementation.
#include "ops/smooth_ap.h"

#include "ops/op_labels.h"
#include "ops/sample_weights.h"

#include <cmath>
#include <limits>

namespace proxyloss {
namespace ops_impl {
namespace {

// table [C] extended by one entry `fill` for the sentinel class, then
// gathered per row: [M].
at::Tensor per_row(const at::Tensor& table, const at::Tensor& sentinel, double fill) {
  const auto extended = at::cat({table, at::full({1}, fill, table.options())});
  return extended.index_select(0, sentinel);
}

} // namespace

void check_smooth_ap_inputs(const at::Tensor& scores, const at::Tensor& labels,
                            double temperature, const optional<at::Tensor>& weights,
                            const optional<at::Tensor>& anchors) {
  TORCH_CHECK(scores.dim() == 2,
              "proxyloss::smooth_ap: scores must be 2-D [M, C], got shape ",
              scores.sizes());
  TORCH_CHECK(scores.scalar_type() == at::kFloat || scores.scalar_type() == at::kDouble,
              "proxyloss::smooth_ap: scores must be float32 or float64, got ",
              scores.scalar_type());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == scores.size(0),
              "proxyloss::smooth_ap: labels must be 1-D [M] with M = ", scores.size(0),
              ", got shape ", labels.sizes());
  TORCH_CHECK(labels.scalar_type() == at::kLong,
              "proxyloss::smooth_ap: labels must be int64, got ", labels.scalar_type());
  TORCH_CHECK(labels.device() == scores.device(),
              "proxyloss::smooth_ap: labels must be on the device of scores (",
              scores.device(), "), got ", labels.device());
  TORCH_CHECK(std::isfinite(temperature) && temperature > 0,
              "proxyloss::smooth_ap: temperature must be finite and > 0, got ",
              temperature);
  if (weights.has_value()) {
    check_pool_weights("proxyloss::smooth_ap", scores, *weights);
  }
  if (anchors.has_value()) {
    TORCH_CHECK(anchors->dim() == 1 && anchors->size(0) == scores.size(0),
                "proxyloss::smooth_ap: anchors must be 1-D [M] with M = ", scores.size(0),
                ", got shape ", anchors->sizes());
    TORCH_CHECK(anchors->scalar_type() == at::kBool,
                "proxyloss::smooth_ap: anchors must be bool, got ",
                anchors->scalar_type());
    TORCH_CHECK(anchors->device() == scores.device(),
                "proxyloss::smooth_ap: anchors must be on the device of scores (",
                scores.device(), "), got ", anchors->device());
  }
}

at::Tensor class_masses(const at::Tensor& labels, const at::Tensor& weights,
                        int64_t num_classes) {
  return positive_mass_per_class(labels, weights, num_classes).cpu();
}

at::Tensor class_counts(const at::Tensor& labels, int64_t num_classes) {
  return positives_per_class(labels, num_classes).to(at::kCPU);
}

at::Tensor nonfinite_classes(const at::Tensor& scores) {
  return at::isfinite(scores).all(0).logical_not().to(at::kCPU);
}

at::Tensor ap_from_ranks(const at::Tensor& scores, const at::Tensor& labels,
                         const at::Tensor& rank_all, const at::Tensor& rank_pos,
                         const at::Tensor& weights, const at::Tensor& mass,
                         const at::Tensor& nonfinite) {
  const int64_t num_classes = scores.size(1);
  const auto sentinel = sentinel_labels(labels, num_classes);
  // Rows that are not (finite) positives keep rank 0: they add nothing.
  const auto all = rank_all.to(at::kDouble);
  auto ratio = at::where(all.gt(0), rank_pos.to(at::kDouble) / all, at::zeros_like(all));
  if (weights.defined()) {
    ratio = ratio * weights;
  }
  auto sums = at::zeros({num_classes + 1}, ratio.options());
  sums.index_add_(0, sentinel, ratio);
  // W_c == 0 (or P_c == 0): 0 / 0, NaN.
  auto ap = sums.narrow(0, 0, num_classes).cpu() / mass.to(at::kDouble);
  ap.masked_fill_(nonfinite, std::numeric_limits<double>::quiet_NaN());
  return ap.to(scores.options());
}

std::tuple<at::Tensor, at::Tensor> rank_coefficients(
    const at::Tensor& grad_ap, const at::Tensor& labels, const at::Tensor& rank_all,
    const at::Tensor& rank_pos, const at::Tensor& weights, const at::Tensor& mass) {
  const int64_t num_classes = grad_ap.size(0);
  const auto sentinel = sentinel_labels(labels, num_classes);
  const auto options = rank_all.options();
  // f = (g / W) w per row (unweighted: g / P), 0 for classes without
  // positives or positive weight, and for the sentinel.
  const auto class_mass = mass.to(grad_ap.device(), at::kDouble);
  const auto scale = at::where(class_mass.gt(0), grad_ap.to(at::kDouble) / class_mass,
                               at::zeros_like(class_mass));
  auto g_over_p = per_row(scale, sentinel, 0.0);
  if (weights.defined()) {
    g_over_p = g_over_p * weights;
  }
  const auto all = rank_all.to(at::kDouble);
  const auto pos = rank_pos.to(at::kDouble);
  // Rows that are not (finite) positives keep rank 0: guard the divisions.
  const auto is_pos = all.gt(0);
  const auto safe_all = at::where(is_pos, all, at::ones_like(all));
  const auto coef_all =
      at::where(is_pos, -g_over_p * pos / (safe_all * safe_all), at::zeros_like(all));
  const auto coef_pos =
      at::where(is_pos, coef_all + g_over_p / safe_all, at::zeros_like(all));
  return {coef_all.to(options), coef_pos.to(options)};
}

void poison_nonfinite_columns(at::Tensor& grad_scores, const at::Tensor& grad_ap,
                              const at::Tensor& nonfinite) {
  const auto poisoned = nonfinite.logical_and(grad_ap.cpu().ne(0));
  if (!poisoned.any().item<bool>()) {
    return;
  }
  const auto columns = poisoned.nonzero().squeeze(1).to(grad_scores.device());
  grad_scores.index_fill_(1, columns, std::numeric_limits<double>::quiet_NaN());
}

} // namespace ops_impl
} // namespace proxyloss
