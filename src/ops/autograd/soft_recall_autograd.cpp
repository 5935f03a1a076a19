// The autograd Function of proxyloss::soft_recall: the gradient reaches the
// scores (the thresholds are constants) through the private op
// _soft_recall_backward. Differentiable once.
#include "common/optional_tensor.h"
#include "ops/autograd/once_differentiable.h"
#include "ops/dispatch.h"
#include "ops/soft_recall.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace proxyloss {
namespace ops_impl {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class SoftRecallFunction : public torch::autograd::Function<SoftRecallFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& scores,
                            const at::Tensor& labels, const at::Tensor& thresholds,
                            double temperature, const optional<at::Tensor>& weights) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    static const auto op =
        typed_op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                            double, const optional<at::Tensor>&)>(
            "proxyloss::soft_recall");
    auto recall = op.call(scores, labels, thresholds, temperature, weights);
    ctx->save_for_backward({scores, labels, thresholds, weights.value_or(at::Tensor())});
    ctx->saved_data["temperature"] = temperature;
    return recall;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    static const auto op =
        typed_op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                            const at::Tensor&, double, const optional<at::Tensor>&)>(
            "proxyloss::_soft_recall_backward");
    const auto saved = ctx->get_saved_variables();
    const double temperature = ctx->saved_data["temperature"].toDouble();
    at::Tensor grad_scores;
    {
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      grad_scores = op.call(grad_outputs[0], saved[0], saved[1], saved[2], temperature,
                            common::defined_or_nullopt(saved[3]));
    }
    auto grads = once_differentiable({grad_scores}, "proxyloss::soft_recall");
    return {grads[0], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// The weights are constants: detached, so that no gradient is asked of them.
at::Tensor soft_recall_autograd(const at::Tensor& scores, const at::Tensor& labels,
                                const at::Tensor& thresholds, double temperature,
                                const optional<at::Tensor>& weights) {
  return SoftRecallFunction::apply(scores, labels, thresholds, temperature,
                                   common::detached(weights));
}

} // namespace
} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, Autograd, m) {
  m.impl("soft_recall", &proxyloss::ops_impl::soft_recall_autograd);
}
