// CPU implementation of the FairLoss ops: the fused per-row kernels on the
// contiguous logits, with no [N, C] temporary besides the gradient itself.
#include "ops/cpu/kernel_selection.h"
#include "ops/cpu/kernels/cpu_capability.h"
#include "ops/fair_loss.h"

#include <ATen/Dispatch.h>
#include <torch/library.h>

namespace proxyloss {
namespace ops_impl {
namespace {

// The kernel's view of contiguous inputs.
template <typename T>
kernels::FairLossProblem<T> problem_of(const at::Tensor& logits,
                                       const at::Tensor& targets,
                                       const at::Tensor& weight,
                                       const FairLossConfig& config) {
  return {logits.data_ptr<T>(),
          targets.data_ptr<int64_t>(),
          weight.defined() ? weight.data_ptr<T>() : nullptr,
          logits.size(0),
          logits.size(1),
          config.smooth_max_beta,
          config.scaling_factor,
          config.ignore_index,
          config.label_smoothing};
}

void run_forward(const kernels::FairLossKernels& k,
                 const kernels::FairLossProblem<float>& p, float* loss,
                 const kernels::FairLossRowStats<float*>& stats) {
  k.forward_float(p, loss, stats);
}
void run_forward(const kernels::FairLossKernels& k,
                 const kernels::FairLossProblem<double>& p, double* loss,
                 const kernels::FairLossRowStats<double*>& stats) {
  k.forward_double(p, loss, stats);
}
void run_backward(const kernels::FairLossKernels& k,
                  const kernels::FairLossProblem<float>& p, const float* grad_loss,
                  const kernels::FairLossRowStats<const float*>& stats, float* grad) {
  k.backward_float(p, grad_loss, stats, grad);
}
void run_backward(const kernels::FairLossKernels& k,
                  const kernels::FairLossProblem<double>& p, const double* grad_loss,
                  const kernels::FairLossRowStats<const double*>& stats, double* grad) {
  k.backward_double(p, grad_loss, stats, grad);
}

// The range check of the targets as one plain loop: no ATen temporaries,
// no parallel region.
void check_targets(const at::Tensor& targets, int64_t num_classes, int64_t ignore_index) {
  const auto* y = targets.data_ptr<int64_t>();
  for (int64_t i = 0; i < targets.numel(); ++i) {
    if (y[i] != ignore_index && (y[i] < 0 || y[i] >= num_classes)) {
      fail_on_bad_targets(targets, num_classes, ignore_index);
    }
  }
}

at::Tensor contiguous_weight(const optional<at::Tensor>& weight) {
  return weight.has_value() && weight->defined() ? weight->contiguous() : at::Tensor();
}

} // namespace

FairLossForward fair_loss_forward_cpu(const at::Tensor& logits_in,
                                      const at::Tensor& targets_in,
                                      const optional<at::Tensor>& weight_in,
                                      double smooth_max_beta, double scaling_factor,
                                      int64_t ignore_index, double label_smoothing) {
  if (detail::generic_kernels_forced()) {
    return fair_loss_forward_generic(logits_in, targets_in, weight_in, smooth_max_beta,
                                     scaling_factor, ignore_index, label_smoothing);
  }
  const FairLossConfig config{smooth_max_beta, scaling_factor, ignore_index,
                              label_smoothing};
  check_fair_loss_inputs(logits_in, targets_in, weight_in, config);
  const auto logits = logits_in.contiguous();
  const auto targets = targets_in.contiguous();
  check_targets(targets, logits.size(1), ignore_index);
  const auto weight = contiguous_weight(weight_in);
  const int64_t N = logits.size(0);
  auto loss = at::empty({N}, logits.options());
  auto row_max = at::empty({N}, logits.options());
  auto lse = at::empty({N}, logits.options());
  auto beta_lse = at::empty({N}, logits.options());
  const auto& kernels = kernels::fair_loss_kernels();

  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "proxyloss_fair_loss_forward", [&] {
    run_forward(kernels, problem_of<scalar_t>(logits, targets, weight, config),
                loss.data_ptr<scalar_t>(),
                {row_max.data_ptr<scalar_t>(), lse.data_ptr<scalar_t>(),
                 beta_lse.data_ptr<scalar_t>()});
  });
  return {loss, row_max, lse, beta_lse};
}

at::Tensor fair_loss_backward_cpu(const at::Tensor& grad_loss_in,
                                  const at::Tensor& logits_in,
                                  const at::Tensor& targets_in,
                                  const optional<at::Tensor>& weight_in,
                                  const at::Tensor& row_max_in, const at::Tensor& lse_in,
                                  const at::Tensor& beta_lse_in, double smooth_max_beta,
                                  double scaling_factor, int64_t ignore_index,
                                  double label_smoothing) {
  if (detail::generic_kernels_forced()) {
    return fair_loss_backward_generic(grad_loss_in, logits_in, targets_in, weight_in,
                                      row_max_in, lse_in, beta_lse_in, smooth_max_beta,
                                      scaling_factor, ignore_index, label_smoothing);
  }
  const FairLossConfig config{smooth_max_beta, scaling_factor, ignore_index,
                              label_smoothing};
  check_fair_loss_inputs(logits_in, targets_in, weight_in, config);
  check_fair_loss_saved(grad_loss_in, logits_in, row_max_in, lse_in, beta_lse_in);
  const auto logits = logits_in.contiguous();
  const auto targets = targets_in.contiguous();
  check_targets(targets, logits.size(1), ignore_index);
  const auto weight = contiguous_weight(weight_in);
  const auto grad_loss = grad_loss_in.contiguous();
  const auto row_max = row_max_in.contiguous();
  const auto lse = lse_in.contiguous();
  const auto beta_lse = beta_lse_in.contiguous();
  auto grad_logits = at::empty_like(logits, at::MemoryFormat::Contiguous);
  const auto& kernels = kernels::fair_loss_kernels();

  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "proxyloss_fair_loss_backward", [&] {
    run_backward(kernels, problem_of<scalar_t>(logits, targets, weight, config),
                 grad_loss.data_ptr<scalar_t>(),
                 {row_max.data_ptr<scalar_t>(), lse.data_ptr<scalar_t>(),
                  beta_lse.data_ptr<scalar_t>()},
                 grad_logits.data_ptr<scalar_t>());
  });
  return grad_logits;
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CPU, m) {
  m.impl("_fair_loss_forward", &proxyloss::ops_impl::fair_loss_forward_cpu);
  m.impl("_fair_loss_backward", &proxyloss::ops_impl::fair_loss_backward_cpu);
}
