// The autograd Function of proxyloss::ranking_pool and of the private
// _ranking_pool_rows (the same pool with each row's iid flag and liveness):
// forward calls the private op _ranking_pool_forward and saves each live
// row's pool row (pool_position, [N]); backward gathers the pool's score
// gradients back to the live logits through it (_ranking_pool_backward) and
// casts them to the logits' dtype (the scores are in the compute dtype).
// Queue rows get no gradient: the queue is detached. Differentiable once.
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
    std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using PoolResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
// (scores, labels, events, weights, is_iid [M] bool, is_live [M] bool).
using PoolRows =
    std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// is_live [M] bool: the pool rows some live row went to.
at::Tensor live_rows_of_pool(const at::Tensor& pool_position, int64_t pool_rows) {
  auto is_live = at::zeros({pool_rows}, pool_position.options().dtype(at::kBool));
  const auto entered = pool_position.ge(0);
  is_live.index_fill_(0, pool_position.masked_select(entered), true);
  return is_live;
}

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
                         const optional<at::Tensor>& queue_weight,
                         const optional<at::Tensor>& iid_mask,
                         const optional<at::Tensor>& queue_iid) {
  static const auto op = typed_op<PoolForward(
      const at::Tensor&, const at::Tensor&, const optional<at::Tensor>&,
      const optional<at::Tensor>&, int64_t, int64_t, optional<int64_t>,
      const optional<at::Tensor>&, const optional<at::Tensor>&,
      const optional<at::Tensor>&, const optional<at::Tensor>&)>(
      "proxyloss::_ranking_pool_forward");
  return op.call(logits, targets, queue_logits, queue_targets, num_classes, ignore_index,
                 max_pool_size, sample_weight, queue_weight, iid_mask, queue_iid);
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
  static variable_list forward(
      AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& targets,
      const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
      int64_t num_classes, int64_t ignore_index, optional<int64_t> max_pool_size,
      const optional<at::Tensor>& sample_weight, const optional<at::Tensor>& queue_weight,
      const optional<at::Tensor>& iid_mask, const optional<at::Tensor>& queue_iid,
      bool with_rows) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    at::Tensor scores;
    at::Tensor labels;
    at::Tensor events;
    at::Tensor weights;
    at::Tensor pool_position;
    at::Tensor is_iid;
    std::tie(scores, labels, events, weights, pool_position, is_iid) = call_forward(
        logits, targets, queue_logits, queue_targets, num_classes, ignore_index,
        max_pool_size, sample_weight, queue_weight, iid_mask, queue_iid);
    ctx->save_for_backward({pool_position});
    ctx->saved_data["num_classes"] = num_classes;
    ctx->saved_data["logits_dtype"] = static_cast<int64_t>(logits.scalar_type());
    if (!with_rows) {
      ctx->mark_non_differentiable({labels, events, weights});
      return {scores, labels, events, weights};
    }
    const auto is_live = live_rows_of_pool(pool_position, scores.size(0));
    ctx->mark_non_differentiable({labels, events, weights, is_iid, is_live});
    return {scores, labels, events, weights, is_iid, is_live};
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
    variable_list all(12);
    all[0] = grads[0];
    return all;
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
      max_pool_size, common::detached(sample_weight), common::detached(queue_weight),
      c10::nullopt, c10::nullopt, /*with_rows=*/false);
  return {outputs[0], outputs[1], outputs[2], outputs[3]};
}

PoolRows ranking_pool_rows_autograd(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, int64_t ignore_index, optional<int64_t> max_pool_size,
    const optional<at::Tensor>& sample_weight, const optional<at::Tensor>& queue_weight,
    const optional<at::Tensor>& iid_mask, const optional<at::Tensor>& queue_iid) {
  check_defined_inputs(logits, targets);
  const auto outputs = RankingPoolFunction::apply(
      logits, targets, queue_logits, queue_targets, num_classes, ignore_index,
      max_pool_size, common::detached(sample_weight), common::detached(queue_weight),
      common::detached(iid_mask), common::detached(queue_iid), /*with_rows=*/true);
  return {outputs[0], outputs[1], outputs[2], outputs[3], outputs[4], outputs[5]};
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
  const auto outputs = call_forward(
      logits, targets, queue_logits, queue_targets, num_classes, ignore_index,
      max_pool_size, sample_weight, queue_weight, c10::nullopt, c10::nullopt);
  return {std::get<0>(outputs), std::get<1>(outputs), std::get<2>(outputs),
          std::get<3>(outputs)};
}

PoolRows ranking_pool_rows_no_grad(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, int64_t ignore_index, optional<int64_t> max_pool_size,
    const optional<at::Tensor>& sample_weight, const optional<at::Tensor>& queue_weight,
    const optional<at::Tensor>& iid_mask, const optional<at::Tensor>& queue_iid) {
  check_defined_inputs(logits, targets);
  const auto outputs = call_forward(logits, targets, queue_logits, queue_targets,
                                    num_classes, ignore_index, max_pool_size,
                                    sample_weight, queue_weight, iid_mask, queue_iid);
  const auto& scores = std::get<0>(outputs);
  return {scores,
          std::get<1>(outputs),
          std::get<2>(outputs),
          std::get<3>(outputs),
          std::get<5>(outputs),
          live_rows_of_pool(std::get<4>(outputs), scores.size(0))};
}

} // namespace
} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, Autograd, m) {
  m.impl("ranking_pool", &proxyloss::ops_impl::ranking_pool_autograd);
  m.impl("_ranking_pool_rows", &proxyloss::ops_impl::ranking_pool_rows_autograd);
}

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("ranking_pool", &proxyloss::ops_impl::ranking_pool_no_grad);
  m.impl("_ranking_pool_rows", &proxyloss::ops_impl::ranking_pool_rows_no_grad);
}
