// Device-generic implementation of proxyloss::soft_recall from ATen ops: all
// classes at once through a [M, C] positive mask; no host synchronisation.
#include "ops/soft_recall.h"

#include <torch/library.h>

namespace proxyloss {
namespace ops_impl {
namespace {

// [M, C]: 1 where row m is a positive of class c, else 0 (scores' dtype).
at::Tensor positive_mask(const at::Tensor& scores, const at::Tensor& labels) {
  const auto classes = at::arange(scores.size(1), labels.options());
  return labels.unsqueeze(1).eq(classes.unsqueeze(0)).to(scores.scalar_type());
}

} // namespace

at::Tensor soft_recall_generic(const at::Tensor& scores, const at::Tensor& labels,
                               const at::Tensor& thresholds, double temperature) {
  check_soft_recall_inputs(scores, labels, thresholds, temperature);
  const auto mask = positive_mask(scores, labels).to(at::kDouble);
  const auto z = (scores - thresholds.unsqueeze(0)) / temperature;
  // Non-positive entries are masked by where, not multiplied: their z may be
  // non-finite without reaching a class's sum.
  const auto terms =
      at::where(mask.gt(0), z.sigmoid().to(at::kDouble), at::zeros_like(mask));
  return (terms.sum(0) / mask.sum(0)).to(scores.scalar_type());
}

at::Tensor soft_recall_backward_generic(const at::Tensor& grad_recall,
                                        const at::Tensor& scores,
                                        const at::Tensor& labels,
                                        const at::Tensor& thresholds,
                                        double temperature) {
  check_soft_recall_inputs(scores, labels, thresholds, temperature);
  const auto mask = positive_mask(scores, labels);
  const auto counts = mask.to(at::kDouble).sum(0);
  // g_c / (tau |P_c|), 0 for classes without positives.
  const auto scale = at::where(
      counts.gt(0), grad_recall.to(at::kDouble) / (temperature * counts.clamp_min(1)),
      at::zeros_like(counts));
  const auto z = (scores - thresholds.unsqueeze(0)) / temperature;
  const auto e = z.abs().neg().exp();
  const auto sigmoid_prime = e / (1 + e).square();
  const auto grad = sigmoid_prime.to(at::kDouble) * scale.unsqueeze(0);
  return at::where(mask.gt(0), grad, at::zeros_like(grad)).to(scores.scalar_type());
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("soft_recall", &proxyloss::ops_impl::soft_recall_generic);
  m.impl("_soft_recall_backward", &proxyloss::ops_impl::soft_recall_backward_generic);
}
