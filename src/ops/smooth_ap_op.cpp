// Dispatcher registration of the Smooth-AP ops and their autograd Function.
//
//   proxyloss::smooth_ap(scores, labels, temperature) -> ap
//       the differentiable entry point (Autograd kernel below);
//   proxyloss::smooth_ap_forward(...) -> (ap, rank_all, rank_pos, order)
//   proxyloss::smooth_ap_backward(grad_ap, scores, labels, rank_all, rank_pos,
//                                 order, temperature) -> grad_scores
//       the kernels: a fused CPU one, and a device-generic one built from
//       ATen ops (CompositeExplicitAutograd) for every other device.
#include "ops/smooth_ap_impl.h"
#include "proxyloss/ops.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace proxyloss {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using ForwardResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

ForwardResult call_forward(const at::Tensor& scores, const at::Tensor& labels,
                           double temperature) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("proxyloss::smooth_ap_forward", "")
          .typed<ForwardResult(const at::Tensor&, const at::Tensor&, double)>();
  return op.call(scores, labels, temperature);
}

at::Tensor call_backward(const at::Tensor& grad_ap, const at::Tensor& scores,
                         const at::Tensor& labels, const at::Tensor& rank_all,
                         const at::Tensor& rank_pos, const at::Tensor& order,
                         double temperature) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("proxyloss::smooth_ap_backward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&, const at::Tensor&, double)>();
  return op.call(grad_ap, scores, labels, rank_all, rank_pos, order, temperature);
}

class SmoothAPFunction : public torch::autograd::Function<SmoothAPFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& scores,
                            const at::Tensor& labels, double temperature) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    at::Tensor ap;
    at::Tensor rank_all;
    at::Tensor rank_pos;
    at::Tensor order;
    std::tie(ap, rank_all, rank_pos, order) = call_forward(scores, labels, temperature);
    ctx->save_for_backward({scores, labels, rank_all, rank_pos, order});
    ctx->saved_data["temperature"] = temperature;
    return ap;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const double temperature = ctx->saved_data["temperature"].toDouble();
    auto grad_scores = call_backward(grad_outputs[0], saved[0], saved[1], saved[2],
                                     saved[3], saved[4], temperature);
    return {grad_scores, at::Tensor(), at::Tensor()};
  }
};

at::Tensor smooth_ap_autograd(const at::Tensor& scores, const at::Tensor& labels,
                              double temperature) {
  return SmoothAPFunction::apply(scores, labels, temperature);
}

// Below autograd (inference mode, or no input requiring grad).
at::Tensor smooth_ap_no_grad(const at::Tensor& scores, const at::Tensor& labels,
                             double temperature) {
  return std::get<0>(call_forward(scores, labels, temperature));
}

} // namespace

namespace ops {

at::Tensor smooth_ap(const at::Tensor& scores, const at::Tensor& labels,
                     double temperature) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("proxyloss::smooth_ap", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double)>();
  return op.call(scores, labels, temperature);
}

} // namespace ops
} // namespace proxyloss

TORCH_LIBRARY(proxyloss, m) {
  m.def("smooth_ap(Tensor scores, Tensor labels, float temperature) -> Tensor");
  m.def(
      "smooth_ap_forward(Tensor scores, Tensor labels, float temperature)"
      " -> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "smooth_ap_backward(Tensor grad_ap, Tensor scores, Tensor labels,"
      " Tensor rank_all, Tensor rank_pos, Tensor order, float temperature) -> Tensor");
}

TORCH_LIBRARY_IMPL(proxyloss, Autograd, m) {
  m.impl("smooth_ap", &proxyloss::smooth_ap_autograd);
}

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("smooth_ap", &proxyloss::smooth_ap_no_grad);
  m.impl("smooth_ap_forward", &proxyloss::ops_impl::smooth_ap_forward_generic);
  m.impl("smooth_ap_backward", &proxyloss::ops_impl::smooth_ap_backward_generic);
}

TORCH_LIBRARY_IMPL(proxyloss, CPU, m) {
  m.impl("smooth_ap_forward", &proxyloss::ops_impl::smooth_ap_forward_cpu);
  m.impl("smooth_ap_backward", &proxyloss::ops_impl::smooth_ap_backward_cpu);
}
