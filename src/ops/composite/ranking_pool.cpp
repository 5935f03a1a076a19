// proxyloss::_ranking_pool_forward: the pool a queued ranking loss ranks,
// from the live rows and the (detached) memory queue; the forward half of
// proxyloss::ranking_pool (its autograd Function: autograd/
// ranking_pool_autograd.cpp). CompositeExplicitAutograd: one opaque op on any
// device, so that a tracer (torch.compile) sees one op whose row count is
// data-dependent instead of the host reads inside it.
//
//   1. checks: logits [N, C] floating, targets [N] or [N, 1] integer on the
//      logits' device, multi-class targets in [0, C) or ignore_index; the
//      queue, when given, [Q, C] floating and [Q] integer (on any device);
//   2. pool = live rows followed by the queue rows (cast to the logits'
//      dtype), without the rows whose target is ignore_index;
//   3. max_pool_size: a larger pool is subsampled (each observed class first
//      gets max(1, cap / (2 * classes)) rows, the rest uniformly; torch's RNG);
//   4. binary mode (C == 1): a non-zero target is a positive of class 0;
//   5. scores in the compute dtype (float16/bfloat16 -> float32);
//   6. weights [M] (compute dtype): each pool row's weight, sample_weight [N]
//      for live rows (finite, >= 0: a ValueError otherwise), queue_weight [Q]
//      for queue rows, 1 where not given (all ones without either), carried
//      through steps 2 and 3 with their rows (the subsampling does not look
//      at them);
//   7. is_iid [M] bool: each pool row's iid flag, iid_mask [N] (nonzero =
//      iid) for live rows, queue_iid [Q] for queue rows, true where not
//      given, carried with the rows as the weights are.
// events[kNonFiniteLogits]: a live row that enters the pool has a NaN/inf logit
// (the queue's rows that can enter a pool are finite: the modules enqueue
// only finite batches, and their checkpoints are checked); events
// [kUnexpectedBinaryLabels]: binary mode saw a target other than 0/1;
// events[kSubsampled]: step 3 ran; events[kEmptyPool]: no row is left (the
// modules then leave the queue as it is, as the seed).
// pool_position [N] int64: the pool row of each live row, -1 for a live row
// that is not in the pool (ignore_index, or not drawn by step 3). The
// backward, proxyloss::_ranking_pool_backward, gathers the live rows'
// gradients through it: grad_logits[n] = grad_scores[pool_position[n]], 0
// where it is -1 (a gather: deterministic, no atomics).
#include "common/input_checks.h"
#include "common/ranking_options.h"
#include "ops/ranking.h"
#include "ops/sample_weights.h"
#include "proxyloss/ops.h"

#include <torch/library.h>

#include <algorithm>
#include <vector>

namespace proxyloss {
namespace ops_impl {
namespace {

constexpr const char* kOp = "proxyloss::ranking_pool";

void check_logits(const at::Tensor& logits, int64_t num_classes) {
  common::check_defined(kOp, logits, "logits");
  TORCH_CHECK_VALUE(logits.dim() == 2 && logits.size(1) == num_classes, kOp,
                    ": logits must have shape [N, ", num_classes,
                    "] (num_classes=", num_classes, "), got ", logits.sizes());
  common::check_floating_logits(kOp, logits);
}

void check_queue(const at::Tensor& logits, const optional<at::Tensor>& queue_logits,
                 const optional<at::Tensor>& queue_targets,
                 const optional<at::Tensor>& queue_weight) {
  TORCH_CHECK_VALUE(queue_logits.has_value() == queue_targets.has_value(), kOp,
                    ": queue_logits and queue_targets must be given together");
  TORCH_CHECK_VALUE(!queue_weight.has_value() || queue_logits.has_value(), kOp,
                    ": queue_weight needs queue_logits and queue_targets");
  if (!queue_logits.has_value()) {
    return;
  }
  const auto& q_logits = *queue_logits;
  const auto& q_targets = *queue_targets;
  TORCH_CHECK_VALUE(q_logits.dim() == 2 && q_logits.size(1) == logits.size(1), kOp,
                    ": queue_logits must have shape [Q, ", logits.size(1), "], got ",
                    q_logits.sizes());
  TORCH_CHECK_VALUE(at::isFloatingType(q_logits.scalar_type()), kOp,
                    ": queue_logits must be floating point, got ",
                    q_logits.scalar_type());
  TORCH_CHECK_VALUE(q_targets.dim() == 1 && q_targets.size(0) == q_logits.size(0), kOp,
                    ": queue_targets must have shape [Q] with Q = ", q_logits.size(0),
                    " (the rows of queue_logits), got ", q_targets.sizes());
  TORCH_CHECK_VALUE(at::isIntegralType(q_targets.scalar_type(), /*includeBool=*/false),
                    kOp, ": queue_targets must be an integer tensor, got ",
                    q_targets.scalar_type());
  if (queue_weight.has_value()) {
    TORCH_CHECK_VALUE(
        queue_weight->dim() == 1 && queue_weight->size(0) == q_logits.size(0), kOp,
        ": queue_weight must have shape [Q] with Q = ", q_logits.size(0),
        " (the rows of queue_logits), got ", queue_weight->sizes());
    TORCH_CHECK_VALUE(at::isFloatingType(queue_weight->scalar_type()), kOp,
                      ": queue_weight must be floating point, got ",
                      queue_weight->scalar_type());
  }
}

at::TensorOptions bool_options(const at::Tensor& like) {
  return like.options().dtype(at::kBool);
}

// iid_mask [N] (any dtype: nonzero = iid) on the logits' device; queue_iid
// [Q] bool or uint8, only with a queue.
void check_iid(const at::Tensor& logits, const optional<at::Tensor>& queue_logits,
               const optional<at::Tensor>& iid_mask,
               const optional<at::Tensor>& queue_iid) {
  if (iid_mask.has_value()) {
    TORCH_CHECK_VALUE(iid_mask->dim() == 1 && iid_mask->size(0) == logits.size(0), kOp,
                      ": iid_mask must have shape [N] with N = ", logits.size(0),
                      " (the rows of logits), got ", iid_mask->sizes());
    TORCH_CHECK_VALUE(iid_mask->device() == logits.device(), kOp,
                      ": iid_mask must be on the device of logits (", logits.device(),
                      "), got ", iid_mask->device());
  }
  if (queue_iid.has_value()) {
    TORCH_CHECK_VALUE(queue_logits.has_value(), kOp,
                      ": queue_iid needs queue_logits and queue_targets");
    TORCH_CHECK_VALUE(
        queue_iid->dim() == 1 && queue_iid->size(0) == queue_logits->size(0), kOp,
        ": queue_iid must have shape [Q] with Q = ", queue_logits->size(0),
        " (the rows of queue_logits), got ", queue_iid->sizes());
    TORCH_CHECK_VALUE(
        queue_iid->scalar_type() == at::kBool || queue_iid->scalar_type() == at::kByte,
        kOp, ": queue_iid must be bool or uint8, got ", queue_iid->scalar_type());
  }
}

// The live rows' weights: sample_weight [N] checked (finite, >= 0) in the
// compute dtype, or ones.
at::Tensor live_weights(const at::Tensor& logits,
                        const optional<at::Tensor>& sample_weight, at::ScalarType dtype) {
  const int64_t N = logits.size(0);
  if (!sample_weight.has_value()) {
    return at::ones({N}, logits.options().dtype(dtype));
  }
  TORCH_CHECK_VALUE(sample_weight->dim() == 1 && sample_weight->size(0) == N, kOp,
                    ": sample_weight must have shape [N] with N = ", N,
                    " (the rows of logits), got ", sample_weight->sizes());
  TORCH_CHECK_VALUE(sample_weight->device() == logits.device(), kOp,
                    ": sample_weight must be on the device of logits (", logits.device(),
                    "), got ", sample_weight->device());
  return checked_sample_weight(kOp, *sample_weight, dtype);
}

// Rows to keep: a quota per observed class, then uniformly from the rest.
at::Tensor subsample_rows(const at::Tensor& targets, int64_t cap) {
  const int64_t M = targets.size(0);
  const auto index_options = targets.options().dtype(at::kLong);
  const auto classes = std::get<0>(at::_unique(targets, /*sorted=*/true));
  const int64_t quota = std::max<int64_t>(1, cap / (2 * classes.size(0)));
  std::vector<at::Tensor> reserved;
  for (int64_t k = 0; k < classes.size(0); ++k) {
    const auto rows = targets.eq(classes[k]).nonzero().squeeze(1);
    const int64_t keep = std::min<int64_t>(rows.size(0), quota);
    reserved.push_back(rows.index_select(
        0, at::randperm(rows.size(0), index_options).narrow(0, 0, keep)));
  }
  auto chosen = at::cat(reserved);
  if (chosen.size(0) >= cap) {
    return chosen.index_select(
        0, at::randperm(chosen.size(0), index_options).narrow(0, 0, cap));
  }
  auto taken = at::zeros({M}, index_options.dtype(at::kBool));
  taken.index_fill_(0, chosen, true);
  const auto rest = taken.logical_not().nonzero().squeeze(1);
  const auto extra = rest.index_select(
      0, at::randperm(rest.size(0), index_options).narrow(0, 0, cap - chosen.size(0)));
  return at::cat({chosen, extra});
}

// The pool row of each of the first `live_rows` rows of the concatenation
// (live rows, queue rows), given `source`, the concatenation row each pool
// row came from: -1 where a live row did not enter the pool. `increasing`:
// source is strictly increasing (rows dropped, none drawn), so the live rows
// were all kept, in front, when source[live_rows - 1] == live_rows - 1 (the
// common case of a queue with empty slots: no scatter needed).
at::Tensor live_pool_positions(const at::Tensor& source, int64_t live_rows,
                               bool increasing) {
  if (increasing && source.size(0) >= live_rows &&
      (live_rows == 0 || source[live_rows - 1].item<int64_t>() == live_rows - 1)) {
    return at::arange(live_rows, source.options());
  }
  auto position = at::full({live_rows}, -1, source.options());
  const auto from_live = source.lt(live_rows);
  position.index_put_(
      {source.masked_select(from_live)},
      at::arange(source.size(0), source.options()).masked_select(from_live));
  return position;
}

} // namespace

RankingPoolForward ranking_pool_forward(
    const at::Tensor& logits_arg, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, int64_t ignore_index, optional<int64_t> max_pool_size,
    const optional<at::Tensor>& sample_weight, const optional<at::Tensor>& queue_weight,
    const optional<at::Tensor>& iid_mask, const optional<at::Tensor>& queue_iid) {
  TORCH_CHECK_VALUE(num_classes > 0, kOp, ": num_classes must be > 0, got ", num_classes);
  TORCH_CHECK_VALUE(!max_pool_size.has_value() || *max_pool_size > 0, kOp,
                    ": max_pool_size must be > 0 when set, got ",
                    max_pool_size.value_or(0));
  check_logits(logits_arg, num_classes);
  const auto logits = logits_arg.detach();
  const auto live_targets =
      common::checked_class_targets(kOp, logits, targets, /*allow_column=*/true,
                                    /*allow_bool=*/true);
  if (num_classes > 1) {
    common::check_target_range(kOp, live_targets, num_classes, ignore_index);
  }
  check_queue(logits, queue_logits, queue_targets, queue_weight);
  check_iid(logits, queue_logits, iid_mask, queue_iid);
  const auto dtype = common::compute_dtype(logits.scalar_type());

  auto pool_logits = logits;
  auto pool_targets = live_targets;
  // Unweighted: no weights travel with the rows (all ones, made at the end).
  const bool weighted = sample_weight.has_value() || queue_weight.has_value();
  at::Tensor pool_weights;
  if (weighted) {
    pool_weights = live_weights(logits, sample_weight, dtype);
  }
  if (queue_logits.has_value()) {
    pool_logits = at::cat(
        {logits, queue_logits->detach().to(logits.device(), logits.scalar_type())});
    pool_targets = at::cat({live_targets, queue_targets->to(logits.device(), at::kLong)});
    if (weighted) {
      pool_weights =
          at::cat({pool_weights,
                   queue_weight.has_value()
                       ? queue_weight->detach().to(logits.device(), dtype)
                       : at::ones({queue_logits->size(0)}, pool_weights.options())});
    }
  }
  // The iid flags travel only when given (all true otherwise, made at the end).
  const bool flagged = iid_mask.has_value() || queue_iid.has_value();
  at::Tensor pool_iid;
  if (flagged) {
    pool_iid = iid_mask.has_value() ? iid_mask->detach().ne(0)
                                    : at::ones({logits.size(0)}, bool_options(logits));
    if (queue_logits.has_value()) {
      pool_iid = at::cat(
          {pool_iid, queue_iid.has_value()
                         ? queue_iid->detach().to(logits.device()).ne(0)
                         : at::ones({queue_logits->size(0)}, bool_options(logits))});
    }
  }
  // source: the concatenation row of each pool row; undefined while it is
  // the identity (nothing dropped, nothing drawn).
  at::Tensor source;
  const auto kept = pool_targets.ne(ignore_index);
  const bool all_kept = kept.all().item<bool>();
  if (!all_kept) {
    source = kept.nonzero().squeeze(1);
    pool_logits = pool_logits.index_select(0, source);
    pool_targets = pool_targets.index_select(0, source);
    if (weighted) {
      pool_weights = pool_weights.index_select(0, source);
    }
    if (flagged) {
      pool_iid = pool_iid.index_select(0, source);
    }
  }
  // Device-side: the live rows that enter the pool hold a NaN or inf.
  const auto finite = at::isfinite(logits);
  const auto nonfinite = all_kept ? finite.all().logical_not()
                                  : finite.all(/*dim=*/1)
                                        .logical_or(live_targets.eq(ignore_index))
                                        .all()
                                        .logical_not();
  const int64_t live_rows = logits.size(0);
  const bool subsampled =
      max_pool_size.has_value() && pool_logits.size(0) > *max_pool_size;
  if (subsampled) {
    const auto rows = subsample_rows(pool_targets, *max_pool_size);
    pool_logits = pool_logits.index_select(0, rows);
    pool_targets = pool_targets.index_select(0, rows);
    if (weighted) {
      pool_weights = pool_weights.index_select(0, rows);
    }
    if (flagged) {
      pool_iid = pool_iid.index_select(0, rows);
    }
    source = source.defined() ? source.index_select(0, rows) : rows;
  }
  const auto pool_position =
      source.defined()
          ? live_pool_positions(source, live_rows, /*increasing=*/!subsampled)
          : at::arange(live_rows, live_targets.options().dtype(at::kLong));
  // events: the host-known flags first, then the device-side ones copied in.
  auto events = at::zeros({4}, kept.options());
  if (subsampled) {
    events[ops::kSubsampled].fill_(true);
  }
  if (pool_logits.size(0) == 0) {
    events[ops::kEmptyPool].fill_(true);
  }
  events[ops::kNonFiniteLogits].copy_(nonfinite);
  auto labels = pool_targets;
  if (num_classes == 1) {
    events[ops::kUnexpectedBinaryLabels].copy_(
        pool_targets.ne(0).logical_and(pool_targets.ne(1)).any());
    labels = at::where(pool_targets.ne(0), at::zeros_like(pool_targets),
                       at::full_like(pool_targets, -1));
  }
  auto scores = pool_logits.to(dtype);
  // Fresh outputs, as the schema promises (no alias of an input): without a
  // queue, a dropped row or a dtype change, the pool is the live batch.
  if (scores.is_alias_of(logits)) {
    scores = scores.clone();
  }
  if (labels.is_alias_of(targets)) {
    labels = labels.clone();
  }
  if (!weighted) {
    pool_weights = at::ones({scores.size(0)}, scores.options());
  }
  if (!flagged) {
    pool_iid = at::ones({scores.size(0)}, bool_options(logits));
  }
  return {scores, labels, events, pool_weights, pool_position, pool_iid};
}

namespace {

// Whether pool_position is 0, 1, ..., N - 1: the live rows are the pool's
// first rows, in order (nothing dropped or drawn from the live batch; the
// queue's rows, if any, follow), the common case, whose backward is a copy.
bool live_rows_lead_the_pool(const at::Tensor& grad_scores,
                             const at::Tensor& pool_position) {
  const int64_t N = pool_position.size(0);
  if (grad_scores.size(0) < N) {
    return false;
  }
  if (!pool_position.is_cpu()) {
    return at::equal(pool_position, at::arange(N, pool_position.options()));
  }
  const auto position = pool_position.contiguous();
  const int64_t* p = position.data_ptr<int64_t>();
  bool identity = true;
  for (int64_t n = 0; n < N; ++n) {
    identity = identity && p[n] == n;
  }
  return identity;
}

} // namespace

at::Tensor ranking_pool_backward(const at::Tensor& grad_scores,
                                 const at::Tensor& pool_position, int64_t num_classes) {
  if (live_rows_lead_the_pool(grad_scores, pool_position)) {
    // A fresh tensor, as the schema promises.
    return grad_scores.narrow(0, 0, pool_position.size(0)).clone();
  }
  if (grad_scores.size(0) == 0) {
    return at::zeros({pool_position.size(0), num_classes}, grad_scores.options());
  }
  const auto dropped = pool_position.lt(0).unsqueeze(1);
  return grad_scores.index_select(0, pool_position.clamp_min(0)).masked_fill_(dropped, 0);
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("_ranking_pool_forward", &proxyloss::ops_impl::ranking_pool_forward);
  m.impl("_ranking_pool_backward", &proxyloss::ops_impl::ranking_pool_backward);
}
