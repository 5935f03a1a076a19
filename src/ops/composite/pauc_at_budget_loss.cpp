// proxyloss::pauc_at_budget_loss: PAUCAtBudgetLoss's whole forward but the
// queue update, from registered ops (the pool: _ranking_pool_rows; the band
// edges: selection_quantiles; the pairwise surrogate: pauc_pairwise; the
// trapezoid from ATen ops). CompositeImplicitAutograd: gradients come from
// those ops' own autograd.
//
// Per class c, with s the pool's scores of class c, P the positives, N the
// negatives, iid the pool rows flagged iid (live rows: iid_mask, 1 where not
// given; queue rows: queue_iid):
//   validity, in this order (the first failing check makes c invalid):
//     1. P and the iid negatives N_iid are non-empty;
//     2. the numerator positives P_num (P, or under pos_numerator "live" the
//        live rows of P) are non-empty;
//     3. weighted: the weights of P_num do not sum to exactly 0;
//     4. the reference population R (N_iid, or under budget_basis
//        "population" every iid row) has a dispersion scale > 1e-12
//        (otherwise c is also `degenerate`);
//     5. pairwise: the band (below) holds a negative.
//   edges and knots: the quantiles of R (detached) at levels 1 - alpha
//     (t_alpha), 1 - beta (t_beta) and, for the trapezoid, 1 - f_k with f_k =
//     linspace(alpha, beta, K) in the scores' dtype and the first / last
//     levels pinned to the edges' (so t_0 = t_alpha, t_{K-1} = t_beta); for
//     tau_scale "iqr" also 0.75 and 0.25; all by one selection, each equal to
//     torch::quantile with quantile_interpolation. The levels are rounded as
//     the reference rounds them: the edges from 1 - alpha in double, the
//     knots from 1 - f_k in the scores' dtype.
//   scale = Q(0.75) - Q(0.25) (iqr) or t_alpha - t_beta (band);
//   tau = temperature * max(scale, 1e-12)                 (in the dtype).
//   trapezoid: TPR_k = sum_{i in P_num} w_i sigmoid((s_i - t_k) / tau) / W
//              (w = 1, W = |P_num| unweighted), pAUC = (TPR_0 / 2 + TPR_1 +
//              ... + TPR_{K-2} + TPR_{K-1} / 2) / (K - 1); gradient to P_num.
//   pairwise:  band = { j in N : t_beta <= s_j <= t_alpha } (every negative:
//              iid or not, live or queue), pAUC = pauc_pairwise(s[P_num],
//              s[band], tau, w[P_num]); gradient to P_num and the band.
//   loss_c = 1 - pAUC.
// Diagnostics [C] (detached; NaN / 0 where c is invalid): t_alpha, t_beta,
// tau_eff = tau, pauc_var = the population variance over P_num of each
// positive's unweighted contribution v_i (trapezoid: sum_k omega_k
// sigmoid((s_i - t_k) / tau) / (K - 1); pairwise: its mean over the band),
// band_neg_count = |{ j in N_iid : t_beta <= s_j <= t_alpha }| (int64).
// scale [C] is the dispersion where step 4 ran (NaN elsewhere), degenerate
// [C] bool where step 4 failed (for the module's warning).
// loss / per_class / valid / events: as the other ranking losses
// (reduce_ranking_classes). Host reads: a few per class (the validity
// chain), as the reference.
#include "common/pauc_options.h"
#include "common/ranking_options.h"
#include "common/reduction.h"
#include "ops/dispatch.h"
#include "ops/ranking.h"
#include "ops/selection_quantile.h"
#include "proxyloss/ops.h"

#include <torch/library.h>

#include <limits>
#include <string>
#include <tuple>
#include <vector>

namespace proxyloss {
namespace ops_impl {
namespace {

constexpr const char* kOp = "proxyloss::pauc_at_budget_loss";
constexpr double kScaleFloor = 1e-12;

using PoolRows =
    std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

PoolRows pool_rows(const at::Tensor& logits, const at::Tensor& targets,
                   const optional<at::Tensor>& queue_logits,
                   const optional<at::Tensor>& queue_targets, int64_t num_classes,
                   int64_t ignore_index, optional<int64_t> max_pool_size,
                   const optional<at::Tensor>& sample_weight,
                   const optional<at::Tensor>& queue_weight,
                   const optional<at::Tensor>& iid_mask,
                   const optional<at::Tensor>& queue_iid) {
  static const auto op =
      typed_op<PoolRows(const at::Tensor&, const at::Tensor&, const optional<at::Tensor>&,
                        const optional<at::Tensor>&, int64_t, int64_t, optional<int64_t>,
                        const optional<at::Tensor>&, const optional<at::Tensor>&,
                        const optional<at::Tensor>&, const optional<at::Tensor>&)>(
          "proxyloss::_ranking_pool_rows");
  return op.call(logits, targets, queue_logits, queue_targets, num_classes, ignore_index,
                 max_pool_size, sample_weight, queue_weight, iid_mask, queue_iid);
}

// The quantile levels, in `dtype` on the scores' device: [knots (K, trapezoid
// only), 1 - alpha, 1 - beta, (0.75, 0.25 for iqr)].
at::Tensor band_levels(double alpha, double beta, int64_t n_knots, bool trapezoid,
                       bool iqr, const at::TensorOptions& options) {
  const auto host = at::TensorOptions().dtype(options.dtype());
  // 1 - alpha and 1 - beta in double, then rounded to the dtype.
  const auto edges =
      at::tensor({1.0 - alpha, 1.0 - beta}, host.dtype(at::kDouble)).to(options.dtype());
  std::vector<at::Tensor> parts;
  if (trapezoid) {
    auto knots = 1 - at::linspace(alpha, beta, n_knots, host);
    knots[0] = edges[0];
    knots[n_knots - 1] = edges[1];
    parts.push_back(knots);
  }
  parts.push_back(edges);
  if (iqr) {
    parts.push_back(
        at::tensor({0.75, 0.25}, host.dtype(at::kDouble)).to(options.dtype()));
  }
  return at::cat(parts).to(options.device());
}

struct ClassResult {
  at::Tensor loss; // 0-dim, differentiable
  double t_alpha;
  double t_beta;
  double tau;
  double pauc_var;
  int64_t band_neg_count;
};

} // namespace

ops::PaucLossResult pauc_at_budget_loss(
    const at::Tensor& logits, const at::Tensor& targets,
    const optional<at::Tensor>& queue_logits, const optional<at::Tensor>& queue_targets,
    int64_t num_classes, double alpha, double beta, c10::string_view surrogate,
    int64_t n_knots, c10::string_view tau_scale, c10::string_view pos_numerator,
    c10::string_view budget_basis, double temperature, c10::string_view reduction_name,
    int64_t ignore_index, c10::string_view quantile_interpolation,
    optional<int64_t> max_pool_size, const optional<at::Tensor>& sample_weight,
    const optional<at::Tensor>& queue_weight, const optional<at::Tensor>& iid_mask,
    const optional<at::Tensor>& queue_iid) {
  common::check_ranking_options(kOp, num_classes, temperature, ignore_index,
                                max_pool_size);
  const auto choice = common::check_pauc_options(
      kOp, alpha, beta, n_knots, std::string(surrogate), std::string(tau_scale),
      std::string(pos_numerator), std::string(budget_basis));
  const std::string interpolation(quantile_interpolation);
  parse_interpolation(interpolation, std::string(kOp) + ": quantile_interpolation");
  const auto reduction = common::parse_reduction(kOp, std::string(reduction_name));

  at::Tensor scores;
  at::Tensor labels;
  at::Tensor events;
  at::Tensor weights;
  at::Tensor is_iid;
  at::Tensor is_live;
  std::tie(scores, labels, events, weights, is_iid, is_live) =
      pool_rows(logits, targets, queue_logits, queue_targets, num_classes, ignore_index,
                max_pool_size, sample_weight, queue_weight, iid_mask, queue_iid);
  const bool weighted = sample_weight.has_value() || queue_weight.has_value();
  const int64_t knots = choice.pairwise ? 0 : n_knots;
  const auto levels = band_levels(alpha, beta, n_knots, !choice.pairwise,
                                  !choice.band_scale, scores.options());
  // The trapezoid's weights omega = [1/2, 1, ..., 1, 1/2].
  auto omega = at::ones({n_knots}, scores.options());
  omega[0] = 0.5;
  omega[n_knots - 1] = 0.5;

  const double nan = std::numeric_limits<double>::quiet_NaN();
  // An invalid class's loss: a zero with a graph to the logits (an empty
  // slice's sum: never NaN), so that a step where no class is valid still
  // back-propagates (zeros), as the reference's logits.sum() * 0.
  std::vector<at::Tensor> class_loss(num_classes, scores.narrow(0, 0, 0).sum());
  std::vector<uint8_t> valid(num_classes, 0);
  std::vector<uint8_t> degenerate(num_classes, 0);
  std::vector<double> t_alpha(num_classes, nan);
  std::vector<double> t_beta(num_classes, nan);
  std::vector<double> tau_eff(num_classes, nan);
  std::vector<double> pauc_var(num_classes, nan);
  std::vector<double> scale_of(num_classes, nan);
  std::vector<int64_t> band_neg_count(num_classes, 0);

  for (int64_t c = 0; c < num_classes; ++c) {
    const auto is_pos = labels.eq(c);
    const auto is_neg = is_pos.logical_not();
    const auto iid_neg = is_neg.logical_and(is_iid);
    if (is_pos.sum().item<int64_t>() == 0 || iid_neg.sum().item<int64_t>() == 0) {
      continue; // 1.
    }
    const auto numerator = choice.live_numerator ? is_pos.logical_and(is_live) : is_pos;
    if (choice.live_numerator && numerator.sum().item<int64_t>() == 0) {
      continue; // 2.
    }
    optional<at::Tensor> w;
    if (weighted) {
      w = weights.masked_select(numerator);
      if (w->sum().item<double>() == 0.0) {
        continue; // 3.
      }
    }
    const auto column = scores.select(1, c);
    const auto detached = column.detach();
    const auto reference =
        detached.masked_select(choice.population_basis ? is_iid : iid_neg);
    const auto v = ops::selection_quantiles(reference, levels, interpolation);
    const auto edge_alpha = v[knots];
    const auto edge_beta = v[knots + 1];
    const auto scale =
        choice.band_scale ? edge_alpha - edge_beta : v[knots + 2] - v[knots + 3];
    scale_of[c] = scale.item<double>();
    if (scale.le(kScaleFloor).item<bool>()) { // 4. (a NaN scale passes, as torch's)
      degenerate[c] = 1;
      continue;
    }
    const auto tau = scale.clamp_min(kScaleFloor) * temperature;
    const auto positives = column.masked_select(numerator);
    const auto in_band = detached.ge(edge_beta).logical_and(detached.le(edge_alpha));
    at::Tensor pauc;
    at::Tensor per_positive;
    if (choice.pairwise) {
      const auto band = is_neg.logical_and(in_band);
      if (band.sum().item<int64_t>() == 0) {
        continue; // 5.
      }
      std::tie(pauc, per_positive) = ops::pauc_pairwise(
          positives, column.masked_select(band), tau.item<double>(), w);
    } else {
      const auto z = at::sigmoid(
          (positives.unsqueeze(1) - v.narrow(0, 0, n_knots).unsqueeze(0)) / tau);
      const auto tpr =
          w.has_value() ? (z * w->unsqueeze(1)).sum(0) / w->sum() : z.mean(0);
      pauc =
          (0.5 * tpr[0] + tpr.narrow(0, 1, n_knots - 2).sum() + 0.5 * tpr[n_knots - 1]) /
          static_cast<double>(n_knots - 1);
      per_positive = (z.detach() * omega).sum(1) / static_cast<double>(n_knots - 1);
    }
    valid[c] = 1;
    class_loss[c] = 1 - pauc;
    t_alpha[c] = edge_alpha.item<double>();
    t_beta[c] = edge_beta.item<double>();
    tau_eff[c] = tau.item<double>();
    pauc_var[c] = per_positive.var(/*unbiased=*/false).item<double>();
    band_neg_count[c] = iid_neg.logical_and(in_band).sum().item<int64_t>();
  }

  const auto device = scores.device();
  const auto values = [&](const std::vector<double>& host) {
    return at::tensor(host, at::TensorOptions().dtype(at::kDouble))
        .to(device, scores.scalar_type());
  };
  const auto flags = [&](const std::vector<uint8_t>& host) {
    return at::tensor(host, at::TensorOptions().dtype(at::kByte)).to(device, at::kBool);
  };
  const auto reduced = reduce_ranking_classes(logits, at::stack(class_loss), flags(valid),
                                              reduction, events);
  return {std::get<0>(reduced),
          std::get<1>(reduced),
          std::get<2>(reduced),
          std::get<3>(reduced),
          values(t_alpha),
          values(t_beta),
          values(tau_eff),
          at::tensor(band_neg_count, at::TensorOptions().dtype(at::kLong)).to(device),
          values(pauc_var),
          values(scale_of),
          flags(degenerate)};
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeImplicitAutograd, m) {
  m.impl("pauc_at_budget_loss", &proxyloss::ops_impl::pauc_at_budget_loss);
}
