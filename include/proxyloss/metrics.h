// Exact evaluation metrics, computed in double without gradients, in
// O(N log N). Inputs may live on any device and have any floating dtype;
// they are read on the CPU. Binary `labels` [N] (or [N, 1]): integer or
// bool, non-zero = positive, or floating with every value 0 or 1 (as
// scikit-learn reads them). Bad inputs throw c10::ValueError (ValueError in
// Python).
#pragma once

#include <torch/types.h>

#include <string>

namespace proxyloss {
namespace metrics {

// Average precision of binary `labels` (non-zero = positive) ranked by
// `scores`, equal to scikit-learn's average_precision_score: with the
// distinct scores as thresholds, from high to low,
//   AP = sum_k (R_k - R_{k-1}) P_k,
// so tied scores form one step. No positive gives 0, with a warning.
double average_precision(const torch::Tensor& scores, const torch::Tensor& labels);

// One-vs-rest AP per class of logits [N, C] and targets [N], rows with
// ignore_index left out: [C] double, NaN for a class without positives.
torch::Tensor average_precision_per_class(const torch::Tensor& logits,
                                          const torch::Tensor& targets,
                                          int64_t ignore_index = -100);

// Area under the ROC curve, equal to scikit-learn's roc_auc_score: the
// probability that a random positive scores above a random negative, ties
// counting one half. NaN, with a warning, when either class is absent.
double roc_auc(const torch::Tensor& scores, const torch::Tensor& labels);

// Fraction of the positives scoring at or above the threshold that
// RecallAtQuantileLoss uses: the 1 - quantile quantile of all scores with
// the given interpolation (as torch::quantile). NaN, with a warning, when
// there is no positive.
double recall_at_quantile(const torch::Tensor& scores, const torch::Tensor& labels,
                          double quantile, const std::string& interpolation = "higher");

// Penalized Brier score (Ahmadian et al. 2025) of probabilities [N, C] and
// targets [N], mean over samples of
//   sum_j (q_j - y_j)^2 + (C - 1) / C   when argmax q != y,
// a tie on the maximum counting as correct.
double penalized_brier_score(const torch::Tensor& probs, const torch::Tensor& targets);

// Penalized logarithmic loss (Ahmadian et al. 2025), mean over samples of
//   -log q_y + log C   when argmax q != y (a tie on the maximum is correct).
double penalized_log_loss(const torch::Tensor& probs, const torch::Tensor& targets);

} // namespace metrics
} // namespace proxyloss
