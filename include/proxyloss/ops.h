// The ops behind the losses, registered with the PyTorch dispatcher as
// `proxyloss::*`: callable from C++ (these functions), TorchScript and
// Python (torch.ops.proxyloss.*, after torch.ops.load_library on
// libproxyloss.so). Every number the ranking losses and FairLoss return is
// computed by one of them: their modules hold options and queue buffers,
// warn, and call these.
// Most users want the modules instead. FairLoss's ops are in fair_loss_op.h.
//
// Conventions: "labels" are op labels, row m a positive of class labels[m]
// when 0 <= labels[m] < C and a negative of every class otherwise; "targets"
// are what a user passes (class indices, ignore_index, 0/1 in binary mode).
// float16/bfloat16 logits are computed in float32. Ops are differentiable
// once (a second differentiation raises a clear error).
#pragma once

#include "proxyloss/compat.h"

#include <ATen/Tensor.h>

#include <string>
#include <tuple>

namespace proxyloss {
namespace ops {

// Per-class Smooth-AP (Brown et al. 2020) of a ranking pool, differentiable
// in `scores`.
//
//   scores [M, C] float32 or float64; labels [M] int64 (op labels). For class
//   c with positives P_c and tau = temperature:
//     R_i  = 1 + sum_{j != i}         sigmoid((s_jc - s_ic) / tau)
//     R+_i = 1 + sum_{j != i, j in P} sigmoid((s_jc - s_ic) / tau)
//     ap[c] = (1 / |P_c|) sum_{i in P_c} R+_i / R_i
//   weights (optional): [M] floating, finite, >= 0, on the scores' device,
//   constants (no gradient); they weight the positives' terms, the ranks
//   stay unweighted:
//     ap[c] = sum_{i in P_c} w_i R+_i / R_i / sum_{i in P_c} w_i
//   Returns ap [C] in the dtype of scores: NaN where a class has no positive
//   (weighted: no positive weight; such a class gets no gradient) or a
//   non-finite score. Time O(M log M + window pairs) on the CPU, extra
//   memory O(M C): the pairwise matrix is never stored.
//   anchors (optional): [M] bool on the scores' device; only the flagged
//   positives' terms are summed (each still divided by the whole class's
//   |P_c| or weight), the ranks still run over every row. Over a partition
//   of the rows into anchor sets the results add up to ap without anchors
//   (to rounding), each set costing its share of the pair work: how the
//   ranks of a distributed loss split it.
at::Tensor smooth_ap(const at::Tensor& scores, const at::Tensor& labels,
                     double temperature,
                     const optional<at::Tensor>& weights = c10::nullopt,
                     const optional<at::Tensor>& anchors = c10::nullopt);

// The q-quantile (q in [0, 1]) of `values` [M] (a 0-dim result) or of each
// column of `values` [M, C] (a [C] result), float32/float64 (M = 0: NaN), by
// selection in O(M) per column, equal to torch::quantile with the same
// interpolation ("linear", "lower", "higher", "nearest", "midpoint"); NaN for
// a column holding a NaN. Not differentiable (a detached threshold).
at::Tensor selection_quantile(const at::Tensor& values, double q,
                              const std::string& interpolation);

// Per-class soft recall above fixed thresholds, differentiable in `scores`:
//   recall[c] = (1 / |P_c|) sum_{m in P_c} sigmoid((s_mc - t_c) / tau)
// scores [M, C] float32/float64, labels [M] int64 (op labels), thresholds [C]
// in the dtype of scores (no gradient). NaN for a class without positives.
// weights (optional, as for smooth_ap): recall[c] = sum_{m in P_c} w_m
// sigmoid(...) / sum_{m in P_c} w_m, NaN where that mass is 0.
at::Tensor soft_recall(const at::Tensor& scores, const at::Tensor& labels,
                       const at::Tensor& thresholds, double temperature,
                       const optional<at::Tensor>& weights = c10::nullopt);

// Indices into the `events` tensor [4] bool of the ranking ops: what a module
// may want to warn about once.
enum RankingEvent : int64_t {
  kNonFiniteLogits = 0,        // a live row entering the pool has NaN/inf logits
  kUnexpectedBinaryLabels = 1, // binary mode saw targets other than 0/1
  kSubsampled = 2,             // the pool exceeded max_pool_size and was subsampled
  kEmptyPool = 3,              // no row entered the pool (the queue is left as it is)
};

// The pool a queued ranking loss ranks: the live rows (logits [N, C]
// floating, targets [N] or [N, 1] integer, multi-class targets in [0, C) or
// ignore_index) followed by the queue rows (queue_logits [Q, C], cast to the
// logits' dtype and device, detached, queue_targets [Q]; both or neither), without
// the ignore_index rows, subsampled to max_pool_size when larger (a quota of
// max(1, cap / (2 * classes)) rows per observed class first, the rest
// uniformly, torch's RNG), binary targets (C == 1) turned into op labels.
// sample_weight [N] (finite, >= 0) and queue_weight [Q] (optional, detached)
// weigh the live and the queue rows (1 where not given) and travel with
// their rows. Returns (scores [M, C] in the compute dtype, labels [M],
// events [4], weights [M] in the compute dtype, all ones without weights);
// differentiable in the logits (a pool row's gradient reaches its live row;
// the queue is detached), once.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ranking_pool(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, int64_t ignore_index, optional<int64_t> max_pool_size,
    const optional<at::Tensor>& sample_weight = c10::nullopt,
    const optional<at::Tensor>& queue_weight = c10::nullopt);

// SmoothAPLoss's forward without the queue update: 1 - smooth_ap per class of
// ranking_pool(...), valid where a class has a positive and a negative;
// reduction "mean" / "sum" over the valid classes (a zero with a graph when
// none is) or "none". Returns (loss, per_class [C] NaN where invalid,
// valid [C] bool, events [4] bool). With sample_weight / queue_weight (as
// for ranking_pool; either makes the loss weighted), the positives' terms
// are weighted (smooth_ap's weights; ranks unweighted) and a class whose
// positives weigh 0 in the pool is invalid too.
// share_index / share_count (0 <= index < count): with count > 1 the call
// computes one share of the loss: the anchors are the pool rows m with m %
// count == index (smooth_ap's anchors), loss and per_class are this share's
// part (per_class: [index == 0] - ap share), and summed over the count shares
// (each on the same inputs) they are the loss and per_class of count == 1,
// to rounding; valid and events are the same in every share. A distributed
// loss gives each rank one share and adds the results.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> smooth_ap_loss(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, double temperature, const std::string& reduction,
    int64_t ignore_index, optional<int64_t> max_pool_size,
    const optional<at::Tensor>& sample_weight = c10::nullopt,
    const optional<at::Tensor>& queue_weight = c10::nullopt, int64_t share_index = 0,
    int64_t share_count = 1);

// RecallAtQuantileLoss's forward without the queue update: per class, the
// detached threshold theta_c = selection_quantile(pool column, 1 - quantile)
// (NaN when the column holds a non-finite score) and loss_c = 1 -
// soft_recall(...)[c], valid where the class has a positive; reductions,
// results and weights as smooth_ap_loss (the thresholds stay unweighted).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> recall_at_quantile_loss(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, double quantile, const std::string& interpolation,
    double temperature, const std::string& reduction, int64_t ignore_index,
    optional<int64_t> max_pool_size,
    const optional<at::Tensor>& sample_weight = c10::nullopt,
    const optional<at::Tensor>& queue_weight = c10::nullopt);

// The quantiles of `values` [n] (float32/float64) at `levels` [L] (in the
// values' dtype, each in [0, 1]): [L], each equal to selection_quantile (and
// torch::quantile) at that level, by one multi-selection in O(n log L); NaN
// for n = 0 or a NaN in values. Not differentiable.
at::Tensor selection_quantiles(const at::Tensor& values, const at::Tensor& levels,
                               const std::string& interpolation);

// PAUCAtBudgetLoss's pairwise surrogate, differentiable in positives and
// negatives: positives p [P], negatives b [B] (float32/float64), tau > 0,
// weights [P] (optional, finite, >= 0, constants):
//   pauc = sum_i w_i sum_j sigmoid((p_i - b_j) / tau) / (B sum_i w_i)
// (the mean over the P x B pairs without weights) and per_positive [P] =
// sum_j sigmoid((p_i - b_j) / tau) / B (no gradient). NaN when P, B or the
// weight mass is 0. CPU: over sorted scores, the far pairs from prefix sums,
// exact to the format's rounding, without a [P, B] matrix.
std::tuple<at::Tensor, at::Tensor> pauc_pairwise(
    const at::Tensor& positives, const at::Tensor& negatives, double tau,
    const optional<at::Tensor>& weights = c10::nullopt);

// (loss, per_class [C], valid [C] bool, events [4] bool, t_alpha [C],
//  t_beta [C], tau_eff [C], band_neg_count [C] int64, pauc_var [C],
//  scale [C], degenerate [C] bool).
using PaucLossResult =
    std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
               at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// PAUCAtBudgetLoss's forward without the queue update (the math:
// proxyloss/pauc_at_budget_loss.h): the pool of ranking_pool plus each row's
// iid flag (iid_mask [N], any dtype, nonzero = iid; queue_iid [Q] bool or
// uint8; true where not given); per class the band edges and knots as
// quantiles of the iid negatives (budget_basis "fpr") or of every iid row
// ("population"), tau = temperature * (IQR or band width), and 1 - pAUC by
// the trapezoid over n_knots thresholds or the pairwise surrogate over the
// band's negatives; numerator positives all pooled ones ("pool") or the
// live ones ("live"). Validity, diagnostics (detached; NaN / 0 where
// invalid), reductions and weights as imbalanced-losses 0.6.0's
// PAUCAtBudgetLoss (src/ops/composite/pauc_at_budget_loss.cpp states them);
// scale [C] is each class's dispersion and degenerate [C] the classes
// skipped because it is <= 1e-12.
PaucLossResult pauc_at_budget_loss(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, double alpha, double beta, const std::string& surrogate,
    int64_t n_knots, const std::string& tau_scale, const std::string& pos_numerator,
    const std::string& budget_basis, double temperature, const std::string& reduction,
    int64_t ignore_index, const std::string& quantile_interpolation,
    optional<int64_t> max_pool_size,
    const optional<at::Tensor>& sample_weight = c10::nullopt,
    const optional<at::Tensor>& queue_weight = c10::nullopt,
    const optional<at::Tensor>& iid_mask = c10::nullopt,
    const optional<at::Tensor>& queue_iid = c10::nullopt);

// Pushes a detached copy of the batch (logits [N, C], targets [N] or [N, 1])
// into the circular queue, in place: rows at slots (ptr + i) mod Q and ptr
// advanced, or, for N >= Q, the last Q rows replace the queue and ptr = 0.
// Rows are stored in queue_logits' dtype. No host synchronisation. The
// optional per-row buffers travel the same way: queue_weight [Q] gets
// sample_weight [N] (1 where not given), queue_iid [Q] bool or uint8 gets
// iid_mask [N] as 0/1 (1 where not given).
void queue_push_(at::Tensor& queue_logits, at::Tensor& queue_targets,
                 at::Tensor& queue_ptr, const at::Tensor& logits,
                 const at::Tensor& targets,
                 const optional<at::Tensor>& queue_weight = c10::nullopt,
                 const optional<at::Tensor>& sample_weight = c10::nullopt,
                 const optional<at::Tensor>& queue_iid = c10::nullopt,
                 const optional<at::Tensor>& iid_mask = c10::nullopt);

// SigmoidFocalLoss (proxyloss/focal_loss.h, which states the math): logits
// any shape, floating; targets of that shape, floating in [0, 1] or bool;
// alpha in [0, 1] or < 0 (off); gamma >= 0; reduction "mean", "sum" or
// "none". The result has the logits' dtype. Built from ATen ops (any device).
// sample_weight (optional): [N, ...] with N the logits' dim 0, the rest
// broadcastable to the logits' shape, finite and >= 0, detached: none scales
// each element, sum adds the scaled elements, mean divides that sum by the
// weight mass (broadcast to every element; floored to 1 where exactly 0).
at::Tensor sigmoid_focal_loss(const at::Tensor& logits, const at::Tensor& targets,
                              double alpha, double gamma, const std::string& reduction,
                              const optional<at::Tensor>& sample_weight = c10::nullopt);

// SoftmaxFocalLoss (proxyloss/focal_loss.h): logits [N, C], targets [N]
// class indices or ignore_index; alpha nullopt or [C] >= 0; reduction "mean",
// "sum", "none" or "mean_positive" (over the valid rows not of
// background_class). sample_weight (optional): [N], finite and >= 0,
// detached: none scales each row, sum adds the scaled rows, mean /
// mean_positive divide that sum by the weight mass of the rows they count
// (floored to 1 where exactly 0).
at::Tensor softmax_focal_loss(const at::Tensor& logits, const at::Tensor& targets,
                              const optional<at::Tensor>& alpha, double gamma,
                              const std::string& reduction, double label_smoothing,
                              int64_t ignore_index, int64_t background_class,
                              const optional<at::Tensor>& sample_weight = c10::nullopt);

} // namespace ops
} // namespace proxyloss
