// The autograd Function of proxyloss::ranking_pool: forward calls the private
// op _ranking_pool_forward and saves each live row's pool row
// (pool_position, [N]); backward gathers the pool's score gradients back to
// the live logits through it (_ranking_pool_backward) and casts them to the
// logits' dtype (the scores are in the compute dtype). Queue rows get no
// gradient: the queue is detached. Differentiable once.
#include "common/input_checks.h"
#include "common/optional_tensor.h"
#include "ops/autograd/once_differentiable.h"
#include "ops/dispatch.h"
#include "proxyloss/compat.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace proxyloss {
namespace ops_impl {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using PoolForward =
    std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using PoolResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Undefined tensors are refused before the dispatcher and autograd see them
// (which would fail with a message naming neither).
void check_defined_inputs(const at::Tensor& logits, const at::Tensor& targets) {
  common::check_defined("proxyloss::ranking_pool", logits, "logits");
  common::check_defined("proxyloss::ranking_pool", targets, "targets");
}

PoolForward call_forward(const at::Tensor& logits, const at::Tensor& targets,
                         const optional<at::Tensor>& queue_logits,
                         const optional<at::Tensor>& queue_targets, int64_t num_classes,
                         int64_t ignore_index, optional<int64_t> max_pool_size,
                         const optional<at::Tensor>& sample_weight,
                         const optional<at::Tensor>& queue_weight) {
  static const auto op = typed_op<PoolForward(
      const at::Tensor&, const at::Tensor&, const optional<at::Tensor>&,
      const optional<at::Tensor>&, int64_t, int64_t, optional<int64_t>,
      const optional<at::Tensor>&, const optional<at::Tensor>&)>(
      "proxyloss::_ranking_pool_forward");
  return op.call(logits, targets, queue_logits, queue_targets, num_classes, ignore_index,
                 max_pool_size, sample_weight, queue_weight);
}

at::Tensor call_backward(const at::Tensor& grad_scores, const at::Tensor& pool_position,
                         int64_t num_classes) {
  static const auto op =
      typed_op<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t)>(
          "proxyloss::_ranking_pool_backward");
  return op.call(grad_scores, pool_position, num_classes);
}

class RankingPoolFunction : public torch::autograd::Function<RankingPoolFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits,
                               const at::Tensor& targets,
                               const optional<at::Tensor>& queue_logits,
                               const optional<at::Tensor>& queue_targets,
                               int64_t num_classes, int64_t ignore_index,
                               optional<int64_t> max_pool_size,
                               const optional<at::Tensor>& sample_weight,
                               const optional<at::Tensor>& queue_weight) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    at::Tensor scores;
    at::Tensor labels;
    at::Tensor events;
    at::Tensor weights;
    at::Tensor pool_position;
    std::tie(scores, labels, events, weights, pool_position) =
        call_forward(logits, targets, queue_logits, queue_targets, num_classes,
                     ignore_index, max_pool_size, sample_weight, queue_weight);
    ctx->save_for_backward({pool_position});
    ctx->saved_data["num_classes"] = num_classes;
    ctx->saved_data["logits_dtype"] = static_cast<int64_t>(logits.scalar_type());
    ctx->mark_non_differentiable({labels, events, weights});
    return {scores, labels, events, weights};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto pool_position = ctx->get_saved_variables()[0];
    const int64_t num_classes = ctx->saved_data["num_classes"].toInt();
    const auto logits_dtype =
        static_cast<at::ScalarType>(ctx->saved_data["logits_dtype"].toInt());
    at::Tensor grad_logits;
    if (grad_outputs[0].defined()) {
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      grad_logits =
          call_backward(grad_outputs[0], pool_position, num_classes).to(logits_dtype);
    }
    auto grads = once_differentiable({grad_logits}, "proxyloss::ranking_pool");
    return {grads[0],     at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

PoolResult ranking_pool_autograd(const at::Tensor& logits, const at::Tensor& targets,
                                 const optional<at::Tensor>& queue_logits,
                                 const optional<at::Tensor>& queue_targets,
                                 int64_t num_classes, int64_t ignore_index,
                                 optional<int64_t> max_pool_size,
                                 const optional<at::Tensor>& sample_weight,
                                 const optional<at::Tensor>& queue_weight) {
  check_defined_inputs(logits, targets);
  // The weights are constants (detached), as the queue is.
  const auto outputs = RankingPoolFunction::apply(
      logits, targets, queue_logits, queue_targets, num_classes, ignore_index,
      max_pool_size, common::detached(sample_weight), common::detached(queue_weight));
  return {outputs[0], outputs[1], outputs[2], outputs[3]};
}

// Below autograd (inference mode, or no input requiring grad).
PoolResult ranking_pool_no_grad(const at::Tensor& logits, const at::Tensor& targets,
                                const optional<at::Tensor>& queue_logits,
                                const optional<at::Tensor>& queue_targets,
                                int64_t num_classes, int64_t ignore_index,
                                optional<int64_t> max_pool_size,
                                const optional<at::Tensor>& sample_weight,
                                const optional<at::Tensor>& queue_weight) {
  check_defined_inputs(logits, targets);
  const auto outputs =
      call_forward(logits, targets, queue_logits, queue_targets, num_classes,
                   ignore_index, max_pool_size, sample_weight, queue_weight);
  return {std::get<0>(outputs), std::get<1>(outputs), std::get<2>(outputs),
          std::get<3>(outputs)};
}

} // namespace
} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, Autograd, m) {
  m.impl("ranking_pool", &proxyloss::ops_impl::ranking_pool_autograd);
}

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("ranking_pool", &proxyloss::ops_impl::ranking_pool_no_grad);
}
