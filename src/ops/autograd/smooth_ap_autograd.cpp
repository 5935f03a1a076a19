// The autograd Function of proxyloss::smooth_ap: forward calls the private
// op _smooth_ap_forward and saves what _smooth_ap_backward needs (the ranks
// and the sort order, O(M C)); the backward is differentiable once.
#include "common/optional_tensor.h"
#include "ops/autograd/once_differentiable.h"
#include "ops/dispatch.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace proxyloss {
namespace ops_impl {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using ForwardResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

ForwardResult call_forward(const at::Tensor& scores, const at::Tensor& labels,
                           double temperature, const optional<at::Tensor>& weights,
                           const optional<at::Tensor>& anchors) {
  static const auto op =
      typed_op<ForwardResult(const at::Tensor&, const at::Tensor&, double,
                             const optional<at::Tensor>&, const optional<at::Tensor>&)>(
          "proxyloss::_smooth_ap_forward");
  return op.call(scores, labels, temperature, weights, anchors);
}

at::Tensor call_backward(const at::Tensor& grad_ap, const at::Tensor& scores,
                         const at::Tensor& labels, const at::Tensor& rank_all,
                         const at::Tensor& rank_pos, const at::Tensor& order,
                         double temperature, const optional<at::Tensor>& weights,
                         const optional<at::Tensor>& anchors) {
  static const auto op =
      typed_op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                          const at::Tensor&, const at::Tensor&, const at::Tensor&, double,
                          const optional<at::Tensor>&, const optional<at::Tensor>&)>(
          "proxyloss::_smooth_ap_backward");
  return op.call(grad_ap, scores, labels, rank_all, rank_pos, order, temperature, weights,
                 anchors);
}

class SmoothAPFunction : public torch::autograd::Function<SmoothAPFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& scores,
                            const at::Tensor& labels, double temperature,
                            const optional<at::Tensor>& weights,
                            const optional<at::Tensor>& anchors) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    at::Tensor ap;
    at::Tensor rank_all;
    at::Tensor rank_pos;
    at::Tensor order;
    std::tie(ap, rank_all, rank_pos, order) =
        call_forward(scores, labels, temperature, weights, anchors);
    ctx->save_for_backward({scores, labels, rank_all, rank_pos, order,
                            weights.value_or(at::Tensor()),
                            anchors.value_or(at::Tensor())});
    ctx->saved_data["temperature"] = temperature;
    return ap;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const double temperature = ctx->saved_data["temperature"].toDouble();
    at::Tensor grad_scores;
    {
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      grad_scores = call_backward(
          grad_outputs[0], saved[0], saved[1], saved[2], saved[3], saved[4], temperature,
          common::defined_or_nullopt(saved[5]), common::defined_or_nullopt(saved[6]));
    }
    auto grads = once_differentiable({grad_scores}, "proxyloss::smooth_ap");
    return {grads[0], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// The weights are constants: detached, so that no gradient is asked of them.
at::Tensor smooth_ap_autograd(const at::Tensor& scores, const at::Tensor& labels,
                              double temperature, const optional<at::Tensor>& weights,
                              const optional<at::Tensor>& anchors) {
  return SmoothAPFunction::apply(scores, labels, temperature, common::detached(weights),
                                 anchors);
}

// Below autograd (inference mode, or no input requiring grad).
at::Tensor smooth_ap_no_grad(const at::Tensor& scores, const at::Tensor& labels,
                             double temperature, const optional<at::Tensor>& weights,
                             const optional<at::Tensor>& anchors) {
  return std::get<0>(call_forward(scores, labels, temperature, weights, anchors));
}

} // namespace
} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, Autograd, m) {
  m.impl("smooth_ap", &proxyloss::ops_impl::smooth_ap_autograd);
}

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("smooth_ap", &proxyloss::ops_impl::smooth_ap_no_grad);
}
