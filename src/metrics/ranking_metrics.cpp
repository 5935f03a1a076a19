// average_precision, average_precision_per_class, roc_auc, recall_at_quantile.
#include "metrics/metric_inputs.h"
#include "ops/selection_quantile.h"
#include "proxyloss/metrics.h"
#include "proxyloss/ops.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <limits>
#include <numeric>

namespace proxyloss {
namespace metrics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Row indices ordered by score, highest first.
std::vector<int64_t> descending_order(const std::vector<double>& scores) {
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  return order;
}

double average_precision_of(const detail::BinaryInputs& in) {
  const auto order = descending_order(in.scores);
  double ap = 0;
  double previous_recall = 0;
  int64_t tp = 0;
  int64_t seen = 0;
  const int64_t n = static_cast<int64_t>(order.size());
  for (int64_t k = 0; k < n;) {
    // One step per distinct score: the whole tie group at once.
    const double threshold = in.scores[order[k]];
    for (; k < n && in.scores[order[k]] == threshold; ++k, ++seen) {
      tp += in.positive[order[k]];
    }
    const double recall = double(tp) / double(in.positives);
    ap += (recall - previous_recall) * (double(tp) / double(seen));
    previous_recall = recall;
  }
  return ap;
}

} // namespace

double average_precision(const torch::Tensor& scores, const torch::Tensor& labels) {
  const auto in = detail::binary_inputs("average_precision", scores, labels);
  if (in.positives == 0) {
    TORCH_WARN("average_precision: no positive label; returning 0 (as scikit-learn)");
    return 0.0;
  }
  return average_precision_of(in);
}

torch::Tensor average_precision_per_class(const torch::Tensor& logits,
                                          const torch::Tensor& targets,
                                          int64_t ignore_index) {
  TORCH_CHECK_VALUE(
      logits.defined() && logits.dim() == 2,
      "average_precision_per_class: ", "logits must have shape [N, C], got ",
      logits.defined() ? logits.sizes() : torch::IntArrayRef{});
  TORCH_CHECK_VALUE(
      targets.defined() && targets.dim() == 1 && targets.size(0) == logits.size(0),
      "average_precision_per_class: targets must have shape [N] with N = ",
      logits.size(0));
  const auto kept = targets.ne(ignore_index).nonzero().squeeze(1);
  const auto x = logits.index_select(0, kept.to(logits.device()));
  const auto y = targets.index_select(0, kept);
  const int64_t C = logits.size(1);
  auto out = torch::full({C}, kNaN, torch::kDouble);
  for (int64_t c = 0; c < C; ++c) {
    const auto in =
        detail::binary_inputs("average_precision_per_class", x.select(1, c), y.eq(c));
    if (in.positives > 0) {
      out[c] = average_precision_of(in);
    }
  }
  return out;
}

double roc_auc(const torch::Tensor& scores, const torch::Tensor& labels) {
  const auto in = detail::binary_inputs("roc_auc", scores, labels);
  const int64_t n = static_cast<int64_t>(in.scores.size());
  const int64_t negatives = n - in.positives;
  if (in.positives == 0 || negatives == 0) {
    TORCH_WARN(
        "roc_auc: only one class present in labels; ROC AUC is undefined, "
        "returning NaN");
    return kNaN;
  }
  // Mann-Whitney U: over tie groups in ascending score order, each positive
  // beats the negatives below its group and half of those within it.
  auto order = descending_order(in.scores);
  std::reverse(order.begin(), order.end());
  double wins = 0;
  int64_t negatives_below = 0;
  for (int64_t k = 0; k < n;) {
    const double value = in.scores[order[k]];
    int64_t group_pos = 0;
    int64_t group_neg = 0;
    for (; k < n && in.scores[order[k]] == value; ++k) {
      in.positive[order[k]] ? ++group_pos : ++group_neg;
    }
    wins += double(group_pos) * (double(negatives_below) + 0.5 * double(group_neg));
    negatives_below += group_neg;
  }
  return wins / (double(in.positives) * double(negatives));
}

double recall_at_quantile(const torch::Tensor& scores, const torch::Tensor& labels,
                          double quantile, const std::string& interpolation) {
  TORCH_CHECK_VALUE(quantile > 0 && quantile < 1,
                    "recall_at_quantile: quantile must be in (0, 1), got ", quantile);
  ops_impl::parse_interpolation(interpolation, "recall_at_quantile: interpolation");
  const auto in = detail::binary_inputs("recall_at_quantile", scores, labels);
  if (in.positives == 0) {
    TORCH_WARN("recall_at_quantile: no positive label; returning NaN");
    return kNaN;
  }
  const auto values = torch::tensor(in.scores, torch::kDouble);
  const double threshold =
      ops::selection_quantile(values, 1.0 - quantile, interpolation).item<double>();
  int64_t above = 0;
  for (size_t i = 0; i < in.scores.size(); ++i) {
    above += in.positive[i] && in.scores[i] >= threshold;
  }
  return double(above) / double(in.positives);
}

} // namespace metrics
} // namespace proxyloss
