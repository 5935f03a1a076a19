// The ranking pipeline behind the queued ranking losses, as ops:
//
//   proxyloss::ranking_pool      live rows + queue -> the pool a loss ranks
//                                (an autograd Function over the private
//                                halves _ranking_pool_forward / _backward)
//   proxyloss::smooth_ap_loss    pool -> smooth_ap per class -> reduction
//   proxyloss::recall_at_quantile_loss
//                                pool -> selection_quantile (detached) ->
//                                soft_recall per class -> reduction
//   proxyloss::queue_push_       the live batch into the queue buffers
//
// The two losses are composite (built from the other ops); ranking_pool is
// opaque, so that torch.compile traces a loss as ops with fake kernels: the
// pool's row count is the one data-dependent size, which only ranking_pool's
// fake kernel needs to know is unknown.
//
// See include/proxyloss/ops.h for each op's contract. Seams for what comes
// next: per-row weights and masks (sample_weight, iid_mask) join the pool as
// further row-aligned tensors beside the targets; a distributed caller passes
// the rows it gathered from every process as the live rows; a CUDA backend
// registers kernels for the per-class ops (smooth_ap, soft_recall,
// selection_quantile), which the composite ops call through the dispatcher.
#pragma once

#include "proxyloss/compat.h"
#include "proxyloss/ops.h"
#include "proxyloss/reduction.h"

#include <ATen/ATen.h>
#include <c10/util/string_view.h>

#include <tuple>

namespace proxyloss {
namespace ops_impl {

// (scores [M, C] in the compute dtype, labels [M] int64, events [4] bool,
//  weights [M] in the compute dtype, pool_position [N] int64: each live
//  row's pool row, -1 if not in the pool, is_iid [M] bool).
using RankingPoolForward =
    std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

RankingPoolForward ranking_pool_forward(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, int64_t ignore_index, optional<int64_t> max_pool_size,
    const optional<at::Tensor>& sample_weight, const optional<at::Tensor>& queue_weight,
    const optional<at::Tensor>& iid_mask, const optional<at::Tensor>& queue_iid);

// grad_logits [N, C] (grad_scores' dtype): grad_scores[pool_position[n]], 0
// where pool_position[n] == -1.
at::Tensor ranking_pool_backward(const at::Tensor& grad_scores,
                                 const at::Tensor& pool_position, int64_t num_classes);

// (loss, per_class [C], valid [C] bool, events [4] bool).
using RankingLossResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
// The same and the pool's labels [M] (see composite/ranking_losses.cpp).
using RankingLossWithPool =
    std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Per-class losses [C] (any value where invalid) and valid [C] bool ->
// (loss, per_class, valid, events): per_class = loss where valid, NaN
// elsewhere (the logits' dtype); loss = the reduction over the valid classes
// (none: per_class, zeros for an empty pool; no valid class: a zero that
// keeps a graph to the logits). No host read.
RankingLossResult reduce_ranking_classes(const at::Tensor& logits,
                                         const at::Tensor& class_loss,
                                         const at::Tensor& valid, Reduction reduction,
                                         const at::Tensor& events);

RankingLossWithPool smooth_ap_loss_with_pool(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, double temperature, c10::string_view reduction,
    int64_t ignore_index, optional<int64_t> max_pool_size,
    const optional<at::Tensor>& sample_weight, const optional<at::Tensor>& queue_weight,
    int64_t share_index, int64_t share_count);

RankingLossWithPool recall_at_quantile_loss_with_pool(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, double quantile, c10::string_view interpolation,
    double temperature, c10::string_view reduction, int64_t ignore_index,
    optional<int64_t> max_pool_size, const optional<at::Tensor>& sample_weight,
    const optional<at::Tensor>& queue_weight);

RankingLossResult smooth_ap_loss(const at::Tensor& logits, const at::Tensor& targets,
                                 const optional<at::Tensor>& queue_logits,
                                 const optional<at::Tensor>& queue_targets,
                                 int64_t num_classes, double temperature,
                                 c10::string_view reduction, int64_t ignore_index,
                                 optional<int64_t> max_pool_size,
                                 const optional<at::Tensor>& sample_weight,
                                 const optional<at::Tensor>& queue_weight,
                                 int64_t share_index, int64_t share_count);

RankingLossResult recall_at_quantile_loss(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, double quantile, c10::string_view interpolation,
    double temperature, c10::string_view reduction, int64_t ignore_index,
    optional<int64_t> max_pool_size, const optional<at::Tensor>& sample_weight,
    const optional<at::Tensor>& queue_weight);

ops::PaucLossResult pauc_at_budget_loss(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, double alpha, double beta, c10::string_view surrogate,
    int64_t n_knots, c10::string_view tau_scale, c10::string_view pos_numerator,
    c10::string_view budget_basis, double temperature, c10::string_view reduction,
    int64_t ignore_index, c10::string_view quantile_interpolation,
    optional<int64_t> max_pool_size, const optional<at::Tensor>& sample_weight,
    const optional<at::Tensor>& queue_weight, const optional<at::Tensor>& iid_mask,
    const optional<at::Tensor>& queue_iid);

void queue_push_(at::Tensor& queue_logits, at::Tensor& queue_targets,
                 at::Tensor& queue_ptr, const at::Tensor& logits,
                 const at::Tensor& targets, const optional<at::Tensor>& queue_weight,
                 const optional<at::Tensor>& sample_weight,
                 const optional<at::Tensor>& queue_iid,
                 const optional<at::Tensor>& iid_mask);

} // namespace ops_impl
} // namespace proxyloss
