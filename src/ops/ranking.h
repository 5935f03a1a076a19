// The ranking pipeline behind the queued ranking losses, as ops (composite:
// built from other ops, so autograd and every device come with them):
//
//   proxyloss::ranking_pool      live rows + queue -> the pool a loss ranks
//   proxyloss::smooth_ap_loss    pool -> smooth_ap per class -> reduction
//   proxyloss::recall_at_quantile_loss
//                                pool -> selection_quantile (detached) ->
//                                soft_recall per class -> reduction
//   proxyloss::queue_push_       the live batch into the queue buffers
//
// See include/proxyloss/ops.h for each op's contract. Seams for what comes
// next: per-row weights and masks (sample_weight, iid_mask) join the pool as
// further row-aligned tensors beside the targets; a distributed caller passes
// the rows it gathered from every process as the live rows; a CUDA backend
// registers kernels for the per-class ops (smooth_ap, soft_recall,
// selection_quantile), which the composite ops call through the dispatcher.
#pragma once

#include "proxyloss/compat.h"

#include <ATen/ATen.h>
#include <c10/util/string_view.h>

#include <tuple>

namespace proxyloss {
namespace ops_impl {

// (scores [M, C] in the compute dtype, labels [M] int64, events [4] bool).
std::tuple<at::Tensor, at::Tensor, at::Tensor> ranking_pool(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, int64_t ignore_index, optional<int64_t> max_pool_size);

// (loss, per_class [C], valid [C] bool, events [4] bool).
using RankingLossResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

RankingLossResult smooth_ap_loss(const at::Tensor& logits, const at::Tensor& targets,
                                 const optional<at::Tensor>& queue_logits,
                                 const optional<at::Tensor>& queue_targets,
                                 int64_t num_classes, double temperature,
                                 c10::string_view reduction, int64_t ignore_index,
                                 optional<int64_t> max_pool_size);

RankingLossResult recall_at_quantile_loss(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, double quantile, c10::string_view interpolation,
    double temperature, c10::string_view reduction, int64_t ignore_index,
    optional<int64_t> max_pool_size);

void queue_push_(at::Tensor& queue_logits, at::Tensor& queue_targets,
                 at::Tensor& queue_ptr, const at::Tensor& logits,
                 const at::Tensor& targets);

} // namespace ops_impl
} // namespace proxyloss
