// Dense oracles of the ranking losses, written from the seeds' formulas
// (proxy-losses 0.1.3 and its successor) in plain torch ops. Smooth-AP builds
// the [P, M] pairwise matrix, as the seed does; RecallAtQuantile uses
// torch::quantile. Gradients come from torch's autograd.
#pragma once

#include <proxyloss/reduction.h>

#include <torch/torch.h>

#include <functional>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace oracle {

inline double nan() {
  return std::numeric_limits<double>::quiet_NaN();
}

// Smooth-AP of one class: scores [M], is_pos [M] bool. Follows the seed's
// _compute_smooth_ap but also evaluates the all-positive case (AP = 1).
// Returns an undefined tensor when there is no positive.
// With `weights` [M] (defined): the positives' terms weighted,
// sum_k w_k rank_pos_k / rank_all_k / sum_k w_k (the successor's weighted AP).
// With `anchors` [M] bool (defined): only the anchor positives' terms are
// summed, over the whole class's P (or weight): the op's anchored share.
inline torch::Tensor class_ap(const torch::Tensor& scores, const torch::Tensor& is_pos,
                              double tau, const torch::Tensor& weights = {},
                              const torch::Tensor& anchors = {}) {
  const int64_t M = scores.size(0);
  const auto pos_idx = is_pos.nonzero().squeeze(1);
  const int64_t P = pos_idx.size(0);
  if (P == 0) {
    return {};
  }
  const auto diff = scores.unsqueeze(0) - scores.index_select(0, pos_idx).unsqueeze(1);
  auto soft = torch::sigmoid(diff / tau); // [P, M]
  auto self_mask = torch::zeros({P, M}, torch::kBool);
  self_mask.index_put_({torch::arange(P), pos_idx}, true);
  soft = soft.masked_fill(self_mask, 0.0);
  const auto rank_all = 1.0 + soft.sum(1);
  const auto rank_pos = 1.0 + soft.index_select(1, pos_idx).sum(1);
  if (anchors.defined()) {
    const auto w = weights.defined() ? weights.index_select(0, pos_idx).to(scores.dtype())
                                     : torch::ones({P}, scores.options());
    const auto kept = anchors.index_select(0, pos_idx).to(scores.dtype());
    return (rank_pos / rank_all * w * kept).sum() / w.sum();
  }
  if (weights.defined()) {
    const auto w = weights.index_select(0, pos_idx).to(scores.scalar_type());
    return (rank_pos / rank_all * w).sum() / w.sum();
  }
  return (rank_pos / rank_all).mean();
}

// The op's contract: ap [C], row m positive of class labels[m] if in range.
inline torch::Tensor op_ap(const torch::Tensor& scores, const torch::Tensor& labels,
                           double tau, const torch::Tensor& weights = {},
                           const torch::Tensor& anchors = {}) {
  const int64_t C = scores.size(1);
  std::vector<torch::Tensor> aps;
  for (int64_t c = 0; c < C; ++c) {
    auto ap = class_ap(scores.select(1, c), labels.eq(c), tau, weights, anchors);
    aps.push_back(ap.defined() ? ap : torch::full({}, nan(), scores.options()));
  }
  return torch::stack(aps);
}

// The seed's queued ranking module (queue, ignore_index, binary mode,
// degenerate classes, reductions), transcribed; `class_loss` computes one
// class: (loss, valid) from the pool scores [M] and the positive mask [M].
struct QueuedRankingModule {
  using ClassLoss = std::function<std::pair<torch::Tensor, bool>(
      const torch::Tensor& scores, const torch::Tensor& is_pos)>;
  int64_t num_classes;
  int64_t queue_size;
  ClassLoss class_loss;
  proxyloss::Reduction reduction = proxyloss::Reduction::Mean;
  int64_t ignore_index = -100;
  bool update_queue_in_eval = false;
  torch::Dtype queue_dtype = torch::kFloat;
  torch::Tensor q_logits;
  torch::Tensor q_targets;
  int64_t q_ptr = 0;

  QueuedRankingModule(int64_t C, int64_t Q, ClassLoss loss)
      : num_classes(C), queue_size(Q), class_loss(std::move(loss)) {
    reset_queue();
  }

  void reset_queue() {
    // The seed's buffer: float32 (torch.zeros' default dtype) unless the
    // module is converted; rows are rounded into it.
    q_logits = torch::zeros({queue_size, num_classes}, queue_dtype);
    q_targets = torch::full({queue_size}, ignore_index, torch::kLong);
    q_ptr = 0;
  }

  void enqueue(const torch::Tensor& logits, const torch::Tensor& targets) {
    if (queue_size == 0) {
      return;
    }
    const int64_t n = logits.size(0);
    const auto l = logits.detach().to(q_logits.scalar_type());
    if (n >= queue_size) {
      q_logits.copy_(l.narrow(0, n - queue_size, queue_size));
      q_targets.copy_(targets.narrow(0, n - queue_size, queue_size));
      q_ptr = 0;
      return;
    }
    for (int64_t i = 0; i < n; ++i) {
      q_logits[(q_ptr + i) % queue_size].copy_(l[i]);
      q_targets[(q_ptr + i) % queue_size].copy_(targets[i]);
    }
    q_ptr = (q_ptr + n) % queue_size;
  }

  // (out, per_class, valid); logits are used in double.
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> forward(
      const torch::Tensor& logits_in, const torch::Tensor& targets_in, bool training) {
    auto targets = targets_in.dim() == 2 ? targets_in.squeeze(1) : targets_in;
    targets = targets.to(torch::kLong);
    const auto logits = logits_in.to(torch::kDouble);
    auto all_logits = logits;
    auto all_targets = targets;
    if (queue_size > 0) {
      all_logits = torch::cat({logits, q_logits.to(torch::kDouble)});
      all_targets = torch::cat({targets, q_targets});
    }
    const auto keep = all_targets.ne(ignore_index).nonzero().squeeze(1);
    all_logits = all_logits.index_select(0, keep);
    all_targets = all_targets.index_select(0, keep);
    const int64_t C = num_classes;
    if (all_logits.size(0) == 0) {
      auto out = logits.sum() * 0.0;
      if (reduction == proxyloss::Reduction::None) {
        out = out.expand({C});
      }
      return {out, torch::full({C}, nan(), torch::kDouble),
              torch::zeros({C}, torch::kBool)};
    }
    std::vector<torch::Tensor> losses;
    std::vector<bool> valid;
    for (int64_t c = 0; c < C; ++c) {
      const auto is_pos = C == 1 ? all_targets.ne(0) : all_targets.eq(c);
      const auto result = class_loss(all_logits.select(1, c), is_pos);
      losses.push_back(result.first);
      valid.push_back(result.second);
    }
    const auto loss_vec = torch::stack(losses);
    auto valid_vec = torch::zeros({C}, torch::kBool);
    for (int64_t c = 0; c < C; ++c) {
      valid_vec[c] = bool(valid[c]);
    }
    if (training || update_queue_in_eval) {
      enqueue(logits_in, targets);
    }
    const auto per_class = loss_vec.masked_fill(valid_vec.logical_not(), nan());
    torch::Tensor out;
    if (reduction == proxyloss::Reduction::None) {
      out = per_class;
    } else {
      const auto kept = loss_vec.index_select(0, valid_vec.nonzero().squeeze(1));
      if (kept.numel() == 0) {
        out = logits.sum() * 0.0;
      } else {
        out = reduction == proxyloss::Reduction::Sum ? kept.sum() : kept.mean();
      }
    }
    return {out, per_class, valid_vec};
  }
};

// The seed's SmoothAPLoss: valid classes have a positive and a negative.
struct SmoothAPModule : QueuedRankingModule {
  SmoothAPModule(int64_t C, int64_t Q, double tau)
      : QueuedRankingModule(
            C, Q, [tau](const torch::Tensor& scores, const torch::Tensor& is_pos) {
              const int64_t P = is_pos.sum().item<int64_t>();
              const bool ok = P > 0 && P < scores.size(0);
              return std::make_pair(ok ? 1.0 - class_ap(scores, is_pos, tau)
                                       : torch::zeros({}, torch::kDouble),
                                    ok);
            }) {}
};

// The seed's RecallAtQuantileLoss: threshold by torch::quantile of all pool
// scores (detached), soft recall of the positives; valid with a positive.
struct RecallAtQuantileModule : QueuedRankingModule {
  RecallAtQuantileModule(int64_t C, int64_t Q, double tau, double quantile,
                         std::string interpolation)
      : QueuedRankingModule(
            C, Q, [=](const torch::Tensor& scores, const torch::Tensor& is_pos) {
              if (is_pos.sum().item<int64_t>() == 0) {
                return std::make_pair(torch::zeros({}, torch::kDouble), false);
              }
              const auto theta = torch::quantile(scores.detach(), 1.0 - quantile,
                                                 c10::nullopt, false, interpolation);
              const auto soft =
                  torch::sigmoid((scores.masked_select(is_pos) - theta) / tau);
              return std::make_pair(1.0 - soft.mean(), true);
            }) {}
};

} // namespace oracle
