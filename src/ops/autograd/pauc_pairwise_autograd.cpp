// The autograd Function of proxyloss::pauc_pairwise: the gradient reaches
// the positives and the negatives through the private op
// _pauc_pairwise_backward (recomputed from the inputs: nothing but them is
// saved); per_positive is a diagnostic without gradient. Differentiable once.
#include "common/optional_tensor.h"
#include "ops/autograd/once_differentiable.h"
#include "ops/dispatch.h"
#include "ops/pauc_pairwise.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace proxyloss {
namespace ops_impl {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

PaucPairwiseForward call_forward(const at::Tensor& positives, const at::Tensor& negatives,
                                 double tau, const optional<at::Tensor>& weights) {
  static const auto op = typed_op<PaucPairwiseForward(
      const at::Tensor&, const at::Tensor&, double, const optional<at::Tensor>&)>(
      "proxyloss::_pauc_pairwise_forward");
  return op.call(positives, negatives, tau, weights);
}

class PaucPairwiseFunction : public torch::autograd::Function<PaucPairwiseFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& positives,
                               const at::Tensor& negatives, double tau,
                               const optional<at::Tensor>& weights) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    at::Tensor pauc;
    at::Tensor per_positive;
    std::tie(pauc, per_positive) = call_forward(positives, negatives, tau, weights);
    ctx->save_for_backward({positives, negatives, weights.value_or(at::Tensor())});
    ctx->saved_data["tau"] = tau;
    ctx->mark_non_differentiable({per_positive});
    return {pauc, per_positive};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    static const auto op = typed_op<PaucPairwiseGrads(
        const at::Tensor&, const at::Tensor&, const at::Tensor&, double,
        const optional<at::Tensor>&)>("proxyloss::_pauc_pairwise_backward");
    const auto saved = ctx->get_saved_variables();
    at::Tensor grad_positives;
    at::Tensor grad_negatives;
    if (grad_outputs[0].defined()) {
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      std::tie(grad_positives, grad_negatives) =
          op.call(grad_outputs[0], saved[0], saved[1], ctx->saved_data["tau"].toDouble(),
                  common::defined_or_nullopt(saved[2]));
    }
    auto grads =
        once_differentiable({grad_positives, grad_negatives}, "proxyloss::pauc_pairwise");
    return {grads[0], grads[1], at::Tensor(), at::Tensor()};
  }
};

// The weights are constants: detached, so that no gradient is asked of them.
PaucPairwiseForward pauc_pairwise_autograd(const at::Tensor& positives,
                                           const at::Tensor& negatives, double tau,
                                           const optional<at::Tensor>& weights) {
  const auto outputs =
      PaucPairwiseFunction::apply(positives, negatives, tau, common::detached(weights));
  return {outputs[0], outputs[1]};
}

// Below autograd (inference mode, or no input requiring grad).
PaucPairwiseForward pauc_pairwise_no_grad(const at::Tensor& positives,
                                          const at::Tensor& negatives, double tau,
                                          const optional<at::Tensor>& weights) {
  return call_forward(positives, negatives, tau, weights);
}

} // namespace
} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, Autograd, m) {
  m.impl("pauc_pairwise", &proxyloss::ops_impl::pauc_pairwise_autograd);
}

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("pauc_pairwise", &proxyloss::ops_impl::pauc_pairwise_no_grad);
}
