// Dispatcher registration of the FairLoss ops and their autograd Function.
//
//   proxyloss::fair_loss(logits, targets, weight, smooth_max_beta,
//                        scaling_factor, ignore_index, label_smoothing) -> loss
//       the differentiable entry point (Autograd kernel below);
//   proxyloss::fair_loss_forward(...) -> (loss, row_max, lse, beta_lse)
//   proxyloss::fair_loss_backward(grad_loss, logits, targets, weight, row_max,
//                                 lse, beta_lse, ...) -> grad_logits
//       the kernels: a fused CPU one, and a device-generic one built from
//       ATen ops (CompositeExplicitAutograd) for every other device.
// The schemas join the `proxyloss` library as a fragment (TORCH_LIBRARY is
// in smooth_ap_op.cpp).
#include "proxyloss/fair_loss_op.h"
#include "ops/fair_loss_impl.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace proxyloss {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

ops_impl::FairLossForward call_forward(const at::Tensor& logits,
                                       const at::Tensor& targets,
                                       const optional<at::Tensor>& weight,
                                       const ops_impl::FairLossConfig& c) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("proxyloss::fair_loss_forward", "")
          .typed<ops_impl::FairLossForward(const at::Tensor&, const at::Tensor&,
                                           const optional<at::Tensor>&, double, double,
                                           int64_t, double)>();
  return op.call(logits, targets, weight, c.smooth_max_beta, c.scaling_factor,
                 c.ignore_index, c.label_smoothing);
}

at::Tensor call_backward(const at::Tensor& grad_loss, const at::Tensor& logits,
                         const at::Tensor& targets, const optional<at::Tensor>& weight,
                         const at::Tensor& row_max, const at::Tensor& lse,
                         const at::Tensor& beta_lse, const ops_impl::FairLossConfig& c) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("proxyloss::fair_loss_backward", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                            const optional<at::Tensor>&, const at::Tensor&,
                            const at::Tensor&, const at::Tensor&, double, double, int64_t,
                            double)>();
  return op.call(grad_loss, logits, targets, weight, row_max, lse, beta_lse,
                 c.smooth_max_beta, c.scaling_factor, c.ignore_index, c.label_smoothing);
}

class FairLossFunction : public torch::autograd::Function<FairLossFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& logits,
                            const at::Tensor& targets, const optional<at::Tensor>& weight,
                            double smooth_max_beta, double scaling_factor,
                            int64_t ignore_index, double label_smoothing) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    const ops_impl::FairLossConfig config{smooth_max_beta, scaling_factor, ignore_index,
                                          label_smoothing};
    at::Tensor loss;
    at::Tensor row_max;
    at::Tensor lse;
    at::Tensor beta_lse;
    std::tie(loss, row_max, lse, beta_lse) =
        call_forward(logits, targets, weight, config);
    const at::Tensor w = weight.has_value() ? *weight : at::Tensor();
    ctx->save_for_backward({logits, targets, w, row_max, lse, beta_lse});
    ctx->saved_data["smooth_max_beta"] = smooth_max_beta;
    ctx->saved_data["scaling_factor"] = scaling_factor;
    ctx->saved_data["ignore_index"] = ignore_index;
    ctx->saved_data["label_smoothing"] = label_smoothing;
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const ops_impl::FairLossConfig config{ctx->saved_data["smooth_max_beta"].toDouble(),
                                          ctx->saved_data["scaling_factor"].toDouble(),
                                          ctx->saved_data["ignore_index"].toInt(),
                                          ctx->saved_data["label_smoothing"].toDouble()};
    const optional<at::Tensor> weight =
        saved[2].defined() ? optional<at::Tensor>(saved[2]) : c10::nullopt;
    auto grad_logits = call_backward(grad_outputs[0], saved[0], saved[1], weight,
                                     saved[3], saved[4], saved[5], config);
    return {grad_logits,  at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor fair_loss_autograd(const at::Tensor& logits, const at::Tensor& targets,
                              const optional<at::Tensor>& weight, double smooth_max_beta,
                              double scaling_factor, int64_t ignore_index,
                              double label_smoothing) {
  return FairLossFunction::apply(logits, targets, weight, smooth_max_beta, scaling_factor,
                                 ignore_index, label_smoothing);
}

// Below autograd (inference mode, or no input requiring grad).
at::Tensor fair_loss_no_grad(const at::Tensor& logits, const at::Tensor& targets,
                             const optional<at::Tensor>& weight, double smooth_max_beta,
                             double scaling_factor, int64_t ignore_index,
                             double label_smoothing) {
  return std::get<0>(
      call_forward(logits, targets, weight,
                   {smooth_max_beta, scaling_factor, ignore_index, label_smoothing}));
}

} // namespace

namespace ops {

at::Tensor fair_loss(const at::Tensor& logits, const at::Tensor& targets,
                     const optional<at::Tensor>& weight, double smooth_max_beta,
                     double scaling_factor, int64_t ignore_index,
                     double label_smoothing) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("proxyloss::fair_loss", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                         const optional<at::Tensor>&, double, double,
                                         int64_t, double)>();
  return op.call(logits, targets, weight, smooth_max_beta, scaling_factor, ignore_index,
                 label_smoothing);
}

} // namespace ops
} // namespace proxyloss

TORCH_LIBRARY_FRAGMENT(proxyloss, m) {
  m.def(
      "fair_loss(Tensor logits, Tensor targets, Tensor? weight, float smooth_max_beta,"
      " float scaling_factor, int ignore_index, float label_smoothing) -> Tensor");
  m.def(
      "fair_loss_forward(Tensor logits, Tensor targets, Tensor? weight,"
      " float smooth_max_beta, float scaling_factor, int ignore_index,"
      " float label_smoothing) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "fair_loss_backward(Tensor grad_loss, Tensor logits, Tensor targets,"
      " Tensor? weight, Tensor row_max, Tensor lse, Tensor beta_lse,"
      " float smooth_max_beta, float scaling_factor, int ignore_index,"
      " float label_smoothing) -> Tensor");
}

TORCH_LIBRARY_IMPL(proxyloss, Autograd, m) {
  m.impl("fair_loss", &proxyloss::fair_loss_autograd);
}

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("fair_loss", &proxyloss::fair_loss_no_grad);
  m.impl("fair_loss_forward", &proxyloss::ops_impl::fair_loss_forward_generic);
  m.impl("fair_loss_backward", &proxyloss::ops_impl::fair_loss_backward_generic);
}

TORCH_LIBRARY_IMPL(proxyloss, CPU, m) {
  m.impl("fair_loss_forward", &proxyloss::ops_impl::fair_loss_forward_cpu);
  m.impl("fair_loss_backward", &proxyloss::ops_impl::fair_loss_backward_cpu);
}
