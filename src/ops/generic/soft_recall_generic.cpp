// Device-generic implementation of proxyloss::soft_recall from ATen ops: all
// classes at once through a [M, C] positive mask; no host synchronisation.
#include "ops/sample_weights.h"
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
                               const at::Tensor& thresholds, double temperature,
                               const optional<at::Tensor>& weights_in) {
  check_soft_recall_inputs(scores, labels, thresholds, temperature, weights_in);
  const auto weights = weights_in_double(weights_in);
  auto mask = positive_mask(scores, labels).to(at::kDouble);
  if (weights.defined()) {
    mask = mask * weights.unsqueeze(1); // w_m where row m is a positive of c
  }
  const auto z = (scores - thresholds.unsqueeze(0)) / temperature;
  // Non-positive entries are masked by where, not multiplied: their z may be
  // non-finite without reaching a class's sum.
  const auto is_positive = positive_mask(scores, labels).gt(0);
  const auto terms =
      at::where(is_positive, z.sigmoid().to(at::kDouble) * mask, at::zeros_like(mask));
  // W_c == 0: 0 / 0, NaN.
  return (terms.sum(0) / mask.sum(0)).to(scores.scalar_type());
}

at::Tensor soft_recall_backward_generic(const at::Tensor& grad_recall,
                                        const at::Tensor& scores,
                                        const at::Tensor& labels,
                                        const at::Tensor& thresholds, double temperature,
                                        const optional<at::Tensor>& weights_in) {
  check_soft_recall_inputs(scores, labels, thresholds, temperature, weights_in);
  const auto weights = weights_in_double(weights_in);
  const auto mask = positive_mask(scores, labels);
  auto mass_terms = mask.to(at::kDouble);
  if (weights.defined()) {
    mass_terms = mass_terms * weights.unsqueeze(1);
  }
  const auto mass = mass_terms.sum(0);
  // g_c / (tau W_c) (W_c = |P_c| unweighted), 0 where W_c == 0.
  const auto scale = at::where(
      mass.gt(0),
      grad_recall.to(at::kDouble) / (temperature * at::where(mass.gt(0), mass, 1.0)),
      at::zeros_like(mass));
  const auto z = (scores - thresholds.unsqueeze(0)) / temperature;
  const auto e = z.abs().neg().exp();
  const auto sigmoid_prime = e / (1 + e).square();
  auto grad = sigmoid_prime.to(at::kDouble) * scale.unsqueeze(0);
  if (weights.defined()) {
    grad = grad * weights.unsqueeze(1);
  }
  return at::where(mask.gt(0), grad, at::zeros_like(grad)).to(scores.scalar_type());
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("soft_recall", &proxyloss::ops_impl::soft_recall_generic);
  m.impl("_soft_recall_backward", &proxyloss::ops_impl::soft_recall_backward_generic);
}
