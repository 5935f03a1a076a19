// proxyloss::metrics: hand-worked cases, ties, single-class and one-element
// inputs, and numbers checked against scikit-learn 1.2.1 (Debian's
// python3-sklearn), recorded here.
#include "support/test_support.h"

#include <proxyloss/proxyloss.h>

using namespace proxyloss::metrics;
using test_support::count_containing;
using test_support::throws_with;

namespace {

torch::Tensor d(std::vector<double> v) {
  return torch::tensor(v, torch::kDouble);
}
torch::Tensor l(std::vector<int64_t> v) {
  return torch::tensor(v, torch::kLong);
}

} // namespace

TEST(Metrics, AveragePrecisionHandWorkedWithTiesAsOneStep) {
  // Thresholds 0.9 (tp 1, fp 1), 0.5 (tp 2, fp 2), 0.1 (tp 3, fp 2):
  // AP = 1/3 * 1/2 + 1/3 * 1/2 + 1/3 * 3/5 = 0.5333...
  EXPECT_DOUBLE_EQ(average_precision(d({0.9, 0.9, 0.5, 0.5, 0.1}), l({1, 0, 1, 0, 1})),
                   0.5333333333333333);
}

TEST(Metrics, AveragePrecisionMatchesScikitLearn) {
  // sklearn.metrics.average_precision_score, values recorded by hand.
  EXPECT_DOUBLE_EQ(average_precision(d({0.8, 0.1, 0.4, 0.35, 0.9, 0.65, 0.2}),
                                     l({1, 0, 0, 1, 1, 0, 0})),
                   0.8666666666666667);
  const auto scores = d({-1.0, -1.5, -0.0, 0.5, 1.0, 0.0,  -0.5, -1.0, 0.5,  1.5,
                         0.5,  -1.0, -1.0, 1.5, 0.0, -1.5, -0.0, -1.0, -0.5, -0.5});
  const auto labels = l({0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0});
  EXPECT_DOUBLE_EQ(average_precision(scores, labels), 0.39781576448243117);
  EXPECT_DOUBLE_EQ(average_precision(d({0.5, 0.5}), l({0, 1})), 0.5);
}

TEST(Metrics, AveragePrecisionEdgeCases) {
  EXPECT_DOUBLE_EQ(average_precision(d({0.3}), l({1})), 1.0);
  EXPECT_DOUBLE_EQ(average_precision(d({0.1, 0.9}), l({1, 1})), 1.0);
  proxyloss::compat::ScopedWarningCollector warnings;
  EXPECT_EQ(average_precision(d({0.1, 0.2, 0.3}), l({0, 0, 0})), 0.0);
  EXPECT_EQ(count_containing(warnings.messages(), "no positive"), 1);
  // Perfect and float32/bool inputs.
  EXPECT_DOUBLE_EQ(average_precision(torch::tensor({0.1f, 0.9f, 0.8f}),
                                     torch::tensor({false, true, true})),
                   1.0);
}

TEST(Metrics, AveragePrecisionPerClass) {
  const auto logits = torch::tensor(
      {{0.9, 0.1}, {0.2, 0.8}, {0.6, 0.4}, {0.3, 0.7}, {5.0, 5.0}}, torch::kDouble);
  const auto targets = l({0, 1, 1, 1, -100});
  const auto ap = average_precision_per_class(logits, targets);
  EXPECT_EQ(ap.scalar_type(), torch::kDouble);
  // Class 0: positive row 0 ranks first: AP 1. Class 1: scores 0.8, 0.7 (pos),
  // 0.4 (pos) above 0.1 (neg): AP 1.
  EXPECT_DOUBLE_EQ(ap[0].item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(ap[1].item<double>(), 1.0);
  const auto three = average_precision_per_class(torch::randn({4, 3}), l({0, 0, 1, 1}));
  EXPECT_TRUE(std::isnan(three[2].item<double>()));
}

TEST(Metrics, RocAucMatchesScikitLearn) {
  EXPECT_DOUBLE_EQ(roc_auc(d({0.9, 0.9, 0.5, 0.5, 0.1}), l({1, 0, 1, 0, 1})),
                   0.3333333333333333);
  EXPECT_DOUBLE_EQ(
      roc_auc(d({0.8, 0.1, 0.4, 0.35, 0.9, 0.65, 0.2}), l({1, 0, 0, 1, 1, 0, 0})),
      0.8333333333333333);
  const auto scores = d({-1.0, -1.5, -0.0, 0.5, 1.0, 0.0,  -0.5, -1.0, 0.5,  1.5,
                         0.5,  -1.0, -1.0, 1.5, 0.0, -1.5, -0.0, -1.0, -0.5, -0.5});
  const auto labels = l({0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0});
  EXPECT_DOUBLE_EQ(roc_auc(scores, labels), 0.3434343434343434);
  EXPECT_DOUBLE_EQ(roc_auc(d({0.5, 0.5}), l({0, 1})), 0.5);
}

TEST(Metrics, RocAucWithOneClassIsNaNWithAWarning) {
  proxyloss::compat::ScopedWarningCollector warnings;
  EXPECT_TRUE(std::isnan(roc_auc(d({0.1, 0.2}), l({1, 1}))));
  EXPECT_TRUE(std::isnan(roc_auc(d({0.4}), l({0}))));
  EXPECT_EQ(count_containing(warnings.messages(), "only one class"), 2);
}

TEST(Metrics, RecallAtQuantileUsesTheLossThreshold) {
  // 10 scores 0..9; top 20 % with "higher": threshold = quantile(0.8) at
  // position 7.2 -> ceil -> 8. Positives at 9, 8, 3: recall 2/3.
  const auto scores = torch::arange(10, torch::kDouble);
  const auto labels = l({0, 0, 0, 1, 0, 0, 0, 0, 1, 1});
  EXPECT_DOUBLE_EQ(recall_at_quantile(scores, labels, 0.2), 2.0 / 3.0);
  // "lower" -> position 7 -> threshold 7: still 2/3; quantile 0.7 -> 3: all.
  EXPECT_DOUBLE_EQ(recall_at_quantile(scores, labels, 0.2, "lower"), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(recall_at_quantile(scores, labels, 0.7, "linear"), 1.0);
  proxyloss::compat::ScopedWarningCollector warnings;
  EXPECT_TRUE(
      std::isnan(recall_at_quantile(scores, torch::zeros({10}, torch::kLong), 0.2)));
}

TEST(Metrics, PenalizedBrierScoreAndLogLossHandWorked) {
  // Row 0 correct; row 1 wrong (0.3 < 0.4); row 2 ties on the maximum:
  // counted correct.
  const auto probs =
      torch::tensor({{0.7, 0.2, 0.1}, {0.3, 0.4, 0.3}, {0.5, 0.5, 0.0}}, torch::kDouble);
  const auto targets = l({0, 0, 1});
  // PBS = (0.14 + (0.74 + 2/3) + 0.5) / 3
  EXPECT_DOUBLE_EQ(penalized_brier_score(probs, targets), 0.6822222222222223);
  // PLL = (-log 0.7 + (-log 0.3 + log 3) - log 0.5) / 3
  EXPECT_DOUBLE_EQ(penalized_log_loss(probs, targets), 1.1174690724975747);
  // A single correct one-hot sample scores 0.
  EXPECT_DOUBLE_EQ(penalized_brier_score(torch::tensor({{0.0, 1.0}}), l({1})), 0.0);
  EXPECT_DOUBLE_EQ(penalized_log_loss(torch::tensor({{0.0, 1.0}}), l({1})), 0.0);
}

TEST(Metrics, SuperiorPropertyCorrectArgmaxAlwaysScoresBetter) {
  // The FairLoss seed's example as probabilities: sample 2 is more confident
  // on the true class but wrong; both rules prefer sample 1.
  const auto right = torch::softmax(torch::tensor({{0.34, 0.33, 0.33}}), 1);
  const auto wrong = torch::softmax(torch::tensor({{0.49, 0.51, 0.0}}), 1);
  EXPECT_LT(penalized_log_loss(right, l({0})), penalized_log_loss(wrong, l({0})));
  EXPECT_LT(penalized_brier_score(right, l({0})), penalized_brier_score(wrong, l({0})));
}

// Floating labels are binary when every value is 0 or 1 (scikit-learn reads
// them so); anything else is refused, naming the value.
TEST(Metrics, FloatingZeroOneLabelsAreBinaryLabels) {
  const auto scores = d({0.3, 0.1, 0.7, 0.2, 0.9});
  const auto labels = l({0, 1, 1, 0, 1});
  for (const auto dtype : {torch::kFloat, torch::kDouble}) {
    EXPECT_EQ(average_precision(scores, labels.to(dtype)),
              average_precision(scores, labels));
    EXPECT_EQ(roc_auc(scores, labels.to(dtype)), roc_auc(scores, labels));
  }
  EXPECT_TRUE(throws_with(
      [&] {
        average_precision(scores, d({0, 1, 0.5, 0, 1}));
      },
      {"average_precision", "floating labels must be 0 or 1", "0.5"}));
  try {
    roc_auc(scores, d({0, 1, 2, 0, 1}));
    ADD_FAILURE() << "no error";
  } catch (const c10::ValueError&) { // ValueError in Python
  }
}

TEST(MetricsErrors, BadInputsNameTheMetricAndArgument) {
  EXPECT_TRUE(throws_with(
      [] {
        average_precision(d({0.1, 0.2}), l({1}));
      },
      {"average_precision", "labels", "N = 2"}));
  EXPECT_TRUE(throws_with(
      [] {
        average_precision(l({1, 2}), l({1, 0}));
      },
      {"scores", "floating point"}));
  EXPECT_TRUE(throws_with(
      [] {
        roc_auc(d({0.1, std::nan("")}), l({1, 0}));
      },
      {"roc_auc", "finite"}));
  EXPECT_TRUE(throws_with([] { recall_at_quantile(d({0.1}), l({1}), 1.0); },
                          {"quantile", "(0, 1)"}));
  EXPECT_TRUE(throws_with(
      [] {
        penalized_log_loss(torch::ones({2, 3}), l({0, 3}));
      },
      {"penalized_log_loss", "targets", "[0, 3)"}));
  EXPECT_TRUE(throws_with([] { penalized_brier_score(torch::ones({3}), l({0})); },
                          {"penalized_brier_score", "probs", "[N, C]"}));
}
