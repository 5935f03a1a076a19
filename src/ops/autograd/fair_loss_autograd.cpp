// The autograd Function of proxyloss::fair_loss: forward calls the private
// op _fair_loss_forward and saves three numbers per row; _fair_loss_backward
// turns them into the gradient in one pass. Differentiable once.
#include "common/optional_tensor.h"
#include "ops/autograd/once_differentiable.h"
#include "ops/dispatch.h"
#include "ops/fair_loss.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace proxyloss {
namespace ops_impl {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

FairLossForward call_forward(const at::Tensor& logits, const at::Tensor& targets,
                             const optional<at::Tensor>& weight,
                             const FairLossConfig& c) {
  static const auto op = typed_op<FairLossForward(
      const at::Tensor&, const at::Tensor&, const optional<at::Tensor>&, double, double,
      int64_t, double)>("proxyloss::_fair_loss_forward");
  return op.call(logits, targets, weight, c.smooth_max_beta, c.scaling_factor,
                 c.ignore_index, c.label_smoothing);
}

at::Tensor call_backward(const at::Tensor& grad_loss, const at::Tensor& logits,
                         const at::Tensor& targets, const optional<at::Tensor>& weight,
                         const at::Tensor& row_max, const at::Tensor& lse,
                         const at::Tensor& beta_lse, const FairLossConfig& c) {
  static const auto op =
      typed_op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                          const optional<at::Tensor>&, const at::Tensor&,
                          const at::Tensor&, const at::Tensor&, double, double, int64_t,
                          double)>("proxyloss::_fair_loss_backward");
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
    const FairLossConfig config{smooth_max_beta, scaling_factor, ignore_index,
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
    const FairLossConfig config{ctx->saved_data["smooth_max_beta"].toDouble(),
                                ctx->saved_data["scaling_factor"].toDouble(),
                                ctx->saved_data["ignore_index"].toInt(),
                                ctx->saved_data["label_smoothing"].toDouble()};
    const optional<at::Tensor> weight = common::defined_or_nullopt(saved[2]);
    at::Tensor grad_logits;
    {
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      grad_logits = call_backward(grad_outputs[0], saved[0], saved[1], weight, saved[3],
                                  saved[4], saved[5], config);
    }
    grad_logits = once_differentiable({grad_logits}, "proxyloss::fair_loss")[0];
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

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, Autograd, m) {
  m.impl("fair_loss", &proxyloss::ops_impl::fair_loss_autograd);
}

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("fair_loss", &proxyloss::ops_impl::fair_loss_no_grad);
}
