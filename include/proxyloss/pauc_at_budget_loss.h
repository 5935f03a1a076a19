// PAUCAtBudgetLoss: 1 - the normalised partial AUC over a false-positive-rate
// band [alpha, beta] ("catch as many positives as possible inside an alert
// budget of beta"), over the pool (live batch + memory queue), one-vs-rest
// per class; imbalanced-losses 0.6.0's PAUCAtBudgetLoss with its options.
//
// For class c with pool scores s = logits[:, c], positives P, negatives N,
// and R the reference population (the iid negatives, budget_basis "fpr", or
// every iid row, "population"; a row is iid unless its iid_mask entry is 0):
//   t_alpha = quantile_R(1 - alpha), t_beta = quantile_R(1 - beta)   (detached)
//   tau     = temperature * (IQR of R  |  t_alpha - t_beta)  (tau_scale)
//   trapezoid: t_k = quantile_R(1 - f_k), f_k = linspace(alpha, beta, K),
//     pAUC = (1 / (K - 1)) sum_k omega_k TPR_k,  omega = [1/2, 1, ..., 1, 1/2],
//     TPR_k = mean_{i in P_num} sigmoid((s_i - t_k) / tau)
//   pairwise: pAUC = mean over i in P_num, j in N with t_beta <= s_j <= t_alpha
//     of sigmoid((s_i - s_j) / tau)
//   loss_c = 1 - pAUC
// P_num is every pooled positive (pos_numerator "pool") or the live ones
// ("live"). With sample_weight, TPR_k and the pairwise mean weight each
// positive by its weight (thresholds and the band unweighted). The
// quantiles are found by selection in O(M) and equal torch::quantile with
// quantile_interpolation; the trapezoid costs O(|P| K); the pairwise
// surrogate runs over sorted scores without a [P, band] matrix
// (proxyloss::pauc_pairwise). A class is degenerate (left out of mean / sum,
// NaN in reduction none and in per_class) when it has no positive or no iid
// negative, no live positive under "live", zero positive weight, a
// dispersion <= 1e-12 (warned once), or (pairwise) an empty band.
#pragma once

#include "proxyloss/compat.h"
#include "proxyloss/queued_ranking_loss.h"
#include "proxyloss/reduction.h"

#include <torch/arg.h>
#include <torch/nn/pimpl.h>

#include <string>

namespace proxyloss {

struct PAUCAtBudgetLossOptions {
  /* implicit */ PAUCAtBudgetLossOptions(int64_t num_classes)
      : num_classes_(num_classes) {}

  // Number of classes C (logits are [N, C]); 1 selects binary mode.
  TORCH_ARG(int64_t, num_classes);
  // The false-positive-rate band, 0 <= alpha < beta <= 1.
  TORCH_ARG(double, alpha) = 0.0;
  TORCH_ARG(double, beta) = 0.005;
  // "trapezoid" (TPR at n_knots thresholds) or "pairwise" (positive vs band
  // negative pairs).
  TORCH_ARG(std::string, surrogate) = "trapezoid";
  TORCH_ARG(int64_t, n_knots) = 2;
  // The temperature's unit: "iqr" (the reference population's interquartile
  // range) or "band" (t_alpha - t_beta).
  TORCH_ARG(std::string, tau_scale) = "iqr";
  // The positives of the numerator: "pool" (all pooled) or "live" (this batch's).
  TORCH_ARG(std::string, pos_numerator) = "pool";
  // Whose quantiles place the band: "fpr" (iid negatives) or "population"
  // (every iid row).
  TORCH_ARG(std::string, budget_basis) = "fpr";
  TORCH_ARG(int64_t, queue_size) = 1024;
  TORCH_ARG(double, temperature) = 0.1;
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
  TORCH_ARG(int64_t, ignore_index) = -100;
  TORCH_ARG(bool, update_queue_in_eval) = false;
  // As torch::quantile: "linear", "lower", "higher", "nearest" or "midpoint".
  TORCH_ARG(std::string, quantile_interpolation) = "higher";
  TORCH_ARG(optional<int64_t>, max_pool_size) = c10::nullopt;
};

// Per-class diagnostics of the last forward ([C] each, detached): t_alpha,
// t_beta, tau_eff, pauc_var (the population variance over the numerator
// positives of each one's unweighted contribution to pAUC) in the compute
// dtype, NaN for invalid classes; band_neg_count (the iid negatives in
// [t_beta, t_alpha], int64, 0 for invalid classes); grad_pos_count (this
// batch's non-ignored positives, int64; this rank's own when the batch is
// gathered over a process group).
struct PAUCDiagnostics {
  torch::Tensor t_alpha;
  torch::Tensor t_beta;
  torch::Tensor tau_eff;
  torch::Tensor band_neg_count;
  torch::Tensor pauc_var;
  torch::Tensor grad_pos_count;
};

class PAUCAtBudgetLossImpl
    : public QueuedRankingLoss<PAUCAtBudgetLossImpl, PAUCAtBudgetLossOptions> {
 public:
  static constexpr const char* kName = "PAUCAtBudgetLoss";
  static constexpr bool kQueuesIid = true;
  using QueuedRankingLoss::QueuedRankingLoss;

  // As SmoothAPLoss's forward, plus iid_mask: undefined (every row iid) or
  // [N], any dtype, nonzero where the row is an unbiased sample of the
  // population (only iid rows place the band); queued with its rows.
  torch::Tensor forward(const torch::Tensor& logits, const torch::Tensor& targets,
                        const torch::Tensor& sample_weight = {},
                        const torch::Tensor& iid_mask = {});

  // (loss, per_class, valid) as forward_per_class, with iid_mask.
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> forward_with_iid(
      const torch::Tensor& logits, const torch::Tensor& targets,
      const torch::Tensor& sample_weight, const torch::Tensor& iid_mask);

  // The diagnostics of the last forward (undefined tensors before the first).
  const PAUCDiagnostics& last_diagnostics() const {
    return last_diagnostics_;
  }

  // The hooks of QueuedRankingLoss.
  void check_extra_options() const;
  void print_extra_options(std::ostream& stream) const;
  void describe_extra_options(distributed_impl::OptionList& options) const;
  RankingLossResult call_op(const torch::Tensor& logits, const torch::Tensor& targets,
                            const RankingStepInputs& inputs);

  FORWARD_HAS_DEFAULT_ARGS({2, torch::nn::AnyValue(torch::Tensor())},
                           {3, torch::nn::AnyValue(torch::Tensor())})

 private:
  PAUCDiagnostics last_diagnostics_;
};

TORCH_MODULE(PAUCAtBudgetLoss);

} // namespace proxyloss
