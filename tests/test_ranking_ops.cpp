// The ops of the ranking pipeline (include/proxyloss/ops.h) on their own:
// soft_recall and selection_quantile against plain-torch oracles on every
// implementation, queue_push_ against the ring's rules, ranking_pool's pool
// and events, and the once-differentiable contract of every autograd op.
#include "support/kernel_paths.h"
#include "support/random_pools.h"
#include "support/test_support.h"

#include <proxyloss/proxyloss.h>

#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <exception>
#include <limits>
#include <string>

using test_support::max_abs;
using test_support::max_abs_diff;
using test_support::throws_with;

namespace {

// recall[c] = mean over the positives of class c of sigmoid((s - t_c) / tau),
// in plain torch ops (autograd gives the oracle gradient).
// With `weights` [M]: sum_m w_m sigmoid(...) / sum_m w_m over the positives.
torch::Tensor soft_recall_oracle(const torch::Tensor& scores, const torch::Tensor& labels,
                                 const torch::Tensor& thresholds, double tau,
                                 const torch::Tensor& weights = {}) {
  std::vector<torch::Tensor> recall;
  for (int64_t c = 0; c < scores.size(1); ++c) {
    const auto rows = labels.eq(c).nonzero().squeeze(1);
    const auto column = scores.select(1, c).index_select(0, rows);
    const auto terms = torch::sigmoid((column - thresholds[c]) / tau);
    if (weights.defined()) {
      const auto w = weights.index_select(0, rows);
      recall.push_back((terms * w).sum() / w.sum());
    } else {
      recall.push_back(terms.mean());
    }
  }
  return torch::stack(recall);
}

} // namespace

class SoftRecallOp : public test_support::KernelPathTest {};
PROXYLOSS_INSTANTIATE_KERNEL_PATHS(SoftRecallOp);

namespace {

// soft_recall of `pool` (row weights `w`: undefined for none) against the
// plain-torch oracle: NaN classes, values, and the gradient of a random
// combination of the classes.
void expect_soft_recall_matches_the_oracle(const test_support::RandomPool& pool,
                                           const torch::Tensor& thresholds,
                                           const torch::Tensor& w) {
  const auto row_weights =
      w.defined() ? c10::optional<torch::Tensor>(w) : c10::optional<torch::Tensor>();
  const auto x = pool.scores.clone().requires_grad_(true);
  const auto y = pool.scores.clone().requires_grad_(true);
  const auto got =
      proxyloss::ops::soft_recall(x, pool.labels, thresholds, pool.tau, row_weights);
  const auto want = soft_recall_oracle(y, pool.labels, thresholds, pool.tau, w);
  EXPECT_TRUE(torch::equal(torch::isnan(got), torch::isnan(want))) << pool.describe();
  ASSERT_LE(max_abs_diff(got, want), 1e-13) << pool.describe();
  const auto weights = torch::randn({pool.scores.size(1)}, torch::kDouble);
  torch::where(torch::isnan(got), torch::zeros_like(got), got * weights).sum().backward();
  const auto oracle =
      torch::where(torch::isnan(want), torch::zeros_like(want), want * weights).sum();
  if (oracle.requires_grad()) {
    oracle.backward();
  }
  // (A class whose positives weigh 0 gives the oracle 0/0 in its gradient.)
  const auto want_grad =
      y.grad().defined() ? torch::nan_to_num(y.grad()) : torch::zeros_like(y);
  // The oracle's sigmoid backward, s (1 - s), loses relative precision
  // where s is near 1; the op does not: compare against the largest entry.
  EXPECT_LE(max_abs_diff(x.grad(), want_grad), 1e-12 * std::max(1.0, max_abs(want_grad)))
      << pool.describe();
}

} // namespace

TEST_P(SoftRecallOp, MatchesThePlainTorchFormulaAndItsGradient) {
  for (uint64_t seed = 0; seed < 60; ++seed) {
    const auto pool = test_support::random_pool(seed, torch::kDouble);
    expect_soft_recall_matches_the_oracle(
        pool, proxyloss::ops::selection_quantile(pool.scores, 0.9, "linear").detach(),
        torch::Tensor());
  }
}

TEST_P(SoftRecallOp, WeightedMatchesThePlainTorchFormulaAndItsGradient) {
  for (uint64_t seed = 0; seed < 60; ++seed) {
    const auto pool = test_support::random_pool(seed, torch::kDouble);
    auto w = torch::rand({pool.scores.size(0)}, torch::kDouble) * 2;
    w.masked_fill_(torch::rand({pool.scores.size(0)}).lt(0.2), 0.0);
    if (seed % 3 == 0) {
      w.masked_fill_(pool.labels.eq(0), 0.0); // class 0's positives weigh nothing
    }
    const auto thresholds =
        proxyloss::ops::selection_quantile(pool.scores, 0.9, "linear").detach();
    expect_soft_recall_matches_the_oracle(pool, thresholds, w);
    // Unit weights: the unweighted op, to the bit.
    const auto plain =
        proxyloss::ops::soft_recall(pool.scores, pool.labels, thresholds, pool.tau);
    const auto ones =
        proxyloss::ops::soft_recall(pool.scores, pool.labels, thresholds, pool.tau,
                                    torch::ones({pool.scores.size(0)}, torch::kDouble));
    EXPECT_TRUE(torch::equal(torch::nan_to_num(plain), torch::nan_to_num(ones)));
  }
}

TEST_P(SoftRecallOp, Float32AgreesWithFloat64) {
  for (uint64_t seed = 100; seed < 130; ++seed) {
    const auto pool = test_support::random_pool(seed, torch::kFloat);
    const auto thresholds =
        proxyloss::ops::selection_quantile(pool.scores, 0.5, "higher");
    const auto got =
        proxyloss::ops::soft_recall(pool.scores, pool.labels, thresholds, pool.tau);
    const auto want =
        proxyloss::ops::soft_recall(pool.scores.to(torch::kDouble), pool.labels,
                                    thresholds.to(torch::kDouble), pool.tau);
    EXPECT_EQ(got.scalar_type(), torch::kFloat);
    EXPECT_LE(max_abs_diff(got, want), 1e-5) << pool.describe();
  }
}

TEST_P(SoftRecallOp, GradientMatchesCentralDifferences) {
  torch::manual_seed(3);
  const auto scores = torch::randn({40, 3}, torch::kDouble) * 0.3;
  const auto labels = torch::randint(-1, 3, {40}, torch::kLong);
  const auto thresholds = torch::tensor({0.1, -0.2, 0.0}, torch::kDouble);
  const double tau = 0.2;
  const auto weights = torch::tensor({0.7, -1.3, 2.0}, torch::kDouble);
  auto objective = [&](const torch::Tensor& s) {
    return (proxyloss::ops::soft_recall(s, labels, thresholds, tau) * weights).sum();
  };
  const auto x = scores.clone().requires_grad_(true);
  objective(x).backward();
  const double h = 1e-6;
  for (int64_t m = 0; m < 40; ++m) {
    for (int64_t c = 0; c < 3; ++c) {
      auto plus = scores.clone();
      auto minus = scores.clone();
      plus[m][c] += h;
      minus[m][c] -= h;
      const double numeric =
          (objective(plus).item<double>() - objective(minus).item<double>()) / (2 * h);
      EXPECT_NEAR(x.grad()[m][c].item<double>(), numeric, 1e-7) << m << ", " << c;
    }
  }
}

TEST_P(SoftRecallOp, GradientHasFullRelativePrecisionFarAboveTheThreshold) {
  // z = (s - t) / tau from 5 to 35: sigmoid'(z) = e / (1 + e)^2, e = exp(-z).
  const auto z = torch::arange(5.0, 35.0, 0.5, torch::kDouble);
  const int64_t P = z.size(0);
  const double tau = 0.01;
  const auto scores = (z * tau).unsqueeze(1).requires_grad_(true);
  const auto labels = torch::zeros({P}, torch::kLong);
  const auto thresholds = torch::zeros({1}, torch::kDouble);
  proxyloss::ops::soft_recall(scores, labels, thresholds, tau).sum().backward();
  for (int64_t i = 0; i < P; ++i) {
    const long double zi = static_cast<long double>(scores[i][0].item<double>()) /
                           static_cast<long double>(tau);
    const long double e = std::exp(-zi);
    const long double want = e / ((1 + e) * (1 + e)) / (tau * P);
    const double got = scores.grad()[i][0].item<double>();
    EXPECT_NEAR(got, static_cast<double>(want), 1e-13 * static_cast<double>(want))
        << "z = " << z[i].item<double>();
  }
}

TEST_P(SoftRecallOp, ClassWithoutPositivesIsNaN) {
  const auto scores = torch::randn({5, 2}, torch::kDouble);
  const auto labels = torch::tensor({0, 0, -1, 7, 0}, torch::kLong);
  const auto recall =
      proxyloss::ops::soft_recall(scores, labels, torch::zeros({2}, torch::kDouble), 0.1);
  EXPECT_FALSE(std::isnan(recall[0].item<double>()));
  EXPECT_TRUE(std::isnan(recall[1].item<double>()));
}

TEST(SoftRecallOp, RejectsBadArguments) {
  const auto scores = torch::randn({4, 2});
  const auto labels = torch::zeros({4}, torch::kLong);
  EXPECT_TRUE(throws_with(
      [&] { proxyloss::ops::soft_recall(scores, labels, torch::zeros({3}), 0.1); },
      {"thresholds", "C = 2", "[3]"}));
  EXPECT_TRUE(throws_with(
      [&] {
        proxyloss::ops::soft_recall(scores, labels, torch::zeros({2}, torch::kDouble),
                                    0.1);
      },
      {"thresholds", "dtype of scores"}));
  EXPECT_TRUE(throws_with(
      [&] { proxyloss::ops::soft_recall(scores, labels, torch::zeros({2}), 0.0); },
      {"temperature", "got 0"}));
  EXPECT_TRUE(throws_with(
      [&] {
        proxyloss::ops::soft_recall(scores, labels.to(torch::kInt), torch::zeros({2}),
                                    0.1);
      },
      {"labels", "int64"}));
}

class SelectionQuantileOp : public test_support::KernelPathTest {};
PROXYLOSS_INSTANTIATE_KERNEL_PATHS(SelectionQuantileOp);

TEST_P(SelectionQuantileOp, EachColumnEqualsTorchQuantile) {
  for (uint64_t seed = 0; seed < 40; ++seed) {
    auto pool =
        test_support::random_pool(seed, seed % 2 ? torch::kFloat : torch::kDouble);
    auto values = pool.scores;
    if (seed % 7 == 3) {
      values[0][0] = std::numeric_limits<double>::quiet_NaN(); // that column is NaN
    }
    for (const double q : {0.0, 0.005, 0.5, 0.95, 1.0}) {
      for (const char* mode : {"linear", "lower", "higher", "nearest", "midpoint"}) {
        const auto got = proxyloss::ops::selection_quantile(values, q, mode);
        ASSERT_EQ(got.sizes(), torch::IntArrayRef({values.size(1)}));
        for (int64_t c = 0; c < values.size(1); ++c) {
          const auto want =
              torch::quantile(values.select(1, c), q, c10::nullopt, false, mode);
          const double g = got[c].item<double>();
          const double w = want.item<double>();
          EXPECT_TRUE(g == w || (std::isnan(g) && std::isnan(w)))
              << pool.describe() << " q=" << q << " mode=" << mode << " column " << c
              << ": " << g << " vs " << w;
        }
      }
    }
  }
}

TEST(QueuePushOp, WritesAtThePointerAndWraps) {
  auto q_logits = torch::zeros({5, 2});
  auto q_targets = torch::full({5}, -100, torch::kLong);
  auto q_ptr = torch::zeros({1}, torch::kLong);
  const auto a = torch::arange(6, torch::kDouble).reshape({3, 2});
  proxyloss::ops::queue_push_(q_logits, q_targets, q_ptr, a, torch::tensor({0, 1, 0}));
  EXPECT_EQ(q_ptr.item<int64_t>(), 3);
  const auto b = torch::arange(6, 10, torch::kDouble).reshape({2, 2}) + 0.1;
  proxyloss::ops::queue_push_(q_logits, q_targets, q_ptr, b, torch::tensor({{1}, {1}}));
  EXPECT_EQ(q_ptr.item<int64_t>(), 0);
  const auto c = torch::full({3, 2}, 0.5, torch::kDouble);
  proxyloss::ops::queue_push_(q_logits, q_targets, q_ptr, c, torch::tensor({1, 0, 1}));
  EXPECT_EQ(q_ptr.item<int64_t>(), 3);
  // Rows are stored in the queue's dtype (float32 here).
  const auto want = torch::cat({c, b.narrow(0, 0, 2)}).to(torch::kFloat);
  EXPECT_TRUE(torch::equal(q_logits, want)) << q_logits;
  EXPECT_TRUE(torch::equal(q_targets, torch::tensor({1, 0, 1, 1, 1})));
}

TEST(QueuePushOp, BatchOfAtLeastTheQueueSizeReplacesItWithItsLastRows) {
  auto q_logits = torch::zeros({3, 1}, torch::kDouble);
  auto q_targets = torch::full({3}, -100, torch::kLong);
  auto q_ptr = torch::tensor({2}, torch::kLong);
  const auto rows = torch::arange(7, torch::kDouble).unsqueeze(1);
  proxyloss::ops::queue_push_(q_logits, q_targets, q_ptr, rows, torch::arange(7) % 2);
  EXPECT_TRUE(torch::equal(q_logits, rows.narrow(0, 4, 3)));
  EXPECT_TRUE(torch::equal(q_targets, torch::tensor({0, 1, 0})));
  EXPECT_EQ(q_ptr.item<int64_t>(), 0);
}

TEST(QueuePushOp, WeightsAndIidFlagsTravelWithTheirRows) {
  auto q_logits = torch::zeros({4, 1});
  auto q_targets = torch::full({4}, -100, torch::kLong);
  auto q_ptr = torch::tensor({3}, torch::kLong);
  auto q_weight = torch::ones({4});
  auto q_iid = torch::ones({4}, torch::kBool);
  proxyloss::ops::queue_push_(
      q_logits, q_targets, q_ptr, torch::ones({2, 1}), torch::tensor({0, 1}), q_weight,
      torch::tensor({0.5, 2.0}, torch::kDouble), q_iid, torch::tensor({false, true}));
  EXPECT_TRUE(torch::equal(q_weight, torch::tensor({2.0f, 1.0f, 1.0f, 0.5f})));
  EXPECT_TRUE(torch::equal(q_iid, torch::tensor({true, true, true, false})));
  // Without weights or flags the rows get 1 and true.
  proxyloss::ops::queue_push_(q_logits, q_targets, q_ptr, torch::ones({2, 1}),
                              torch::tensor({0, 1}), q_weight, c10::nullopt, q_iid);
  EXPECT_TRUE(torch::equal(q_weight, torch::tensor({2.0f, 1.0f, 1.0f, 0.5f})));
  proxyloss::ops::queue_push_(q_logits, q_targets, q_ptr, torch::ones({5, 1}),
                              torch::zeros({5}, torch::kLong), q_weight,
                              torch::arange(5).to(torch::kFloat), q_iid,
                              torch::tensor({true, true, false, true, false}));
  EXPECT_TRUE(torch::equal(q_weight, torch::tensor({1.0f, 2.0f, 3.0f, 4.0f})));
  EXPECT_TRUE(torch::equal(q_iid, torch::tensor({true, false, true, false})));
  EXPECT_EQ(q_ptr.item<int64_t>(), 0);
  EXPECT_TRUE(throws_with(
      [&] {
        proxyloss::ops::queue_push_(q_logits, q_targets, q_ptr, torch::ones({1, 1}),
                                    torch::zeros({1}, torch::kLong), q_weight,
                                    torch::tensor({-1.0f}));
      },
      {"sample_weight", "finite and >= 0"}));
  EXPECT_TRUE(throws_with(
      [&] {
        proxyloss::ops::queue_push_(q_logits, q_targets, q_ptr, torch::ones({1, 1}),
                                    torch::zeros({1}, torch::kLong), c10::nullopt,
                                    torch::tensor({1.0f}));
      },
      {"sample_weight needs queue_weight"}));
}

TEST(QueuePushOp, EmptyBatchChangesNothingAndBadBuffersAreErrors) {
  auto q_logits = torch::ones({4, 2});
  auto q_targets = torch::zeros({4}, torch::kLong);
  auto q_ptr = torch::tensor({1}, torch::kLong);
  proxyloss::ops::queue_push_(q_logits, q_targets, q_ptr, torch::zeros({0, 2}),
                              torch::zeros({0}, torch::kLong));
  EXPECT_EQ(q_ptr.item<int64_t>(), 1);
  EXPECT_TRUE(torch::equal(q_logits, torch::ones({4, 2})));
  EXPECT_TRUE(throws_with(
      [&] {
        proxyloss::ops::queue_push_(q_logits, q_targets, q_ptr, torch::zeros({2, 3}),
                                    torch::zeros({2}, torch::kLong));
      },
      {"logits", "[N, 2]", "[2, 3]"}));
  auto short_targets = torch::zeros({3}, torch::kLong);
  EXPECT_TRUE(throws_with(
      [&] {
        proxyloss::ops::queue_push_(q_logits, short_targets, q_ptr, torch::zeros({1, 2}),
                                    torch::zeros({1}, torch::kLong));
      },
      {"queue_targets", "Q = 4"}));
}

TEST(RankingPoolOp, DropsIgnoredRowsAppendsTheQueueAndReportsEvents) {
  const auto logits = torch::tensor({{0.5, 1.0}, {0.1, 0.2}, {0.3, 0.4}}, torch::kDouble);
  const auto targets = torch::tensor({1, -100, 0}, torch::kLong);
  const auto q_logits = torch::tensor({{2.0f, 3.0f}, {0.0f, 0.0f}});
  const auto q_targets = torch::tensor({0, -100}, torch::kLong);
  torch::Tensor scores, labels, events, weights;
  std::tie(scores, labels, events, weights) = proxyloss::ops::ranking_pool(
      logits, targets, q_logits, q_targets, 2, -100, c10::nullopt);
  EXPECT_TRUE(torch::equal(
      scores, torch::tensor({{0.5, 1.0}, {0.3, 0.4}, {2.0, 3.0}}, torch::kDouble)));
  EXPECT_TRUE(torch::equal(labels, torch::tensor({1, 0, 0})));
  EXPECT_TRUE(torch::equal(events, torch::tensor({false, false, false, false})));
  EXPECT_TRUE(torch::equal(weights, torch::ones({3}, torch::kDouble)));
}

TEST(RankingPoolOp, CarriesTheWeightsWithTheirRows) {
  const auto logits = torch::tensor({{0.5, 1.0}, {0.1, 0.2}, {0.3, 0.4}}, torch::kDouble);
  const auto targets = torch::tensor({1, -100, 0}, torch::kLong);
  const auto q_logits = torch::tensor({{2.0f, 3.0f}, {0.0f, 0.0f}, {1.0f, 1.0f}});
  const auto q_targets = torch::tensor({0, -100, 1}, torch::kLong);
  const auto live_w = torch::tensor({0.5f, 7.0f, 0.0f}); // any floating dtype
  const auto queue_w = torch::tensor({2.0f, 9.0f, 3.0f});
  auto weights = std::get<3>(proxyloss::ops::ranking_pool(
      logits, targets, q_logits, q_targets, 2, -100, c10::nullopt, live_w, queue_w));
  EXPECT_TRUE(torch::equal(weights, torch::tensor({0.5, 0.0, 2.0, 3.0}, torch::kDouble)));
  // Weights on one side only: 1 on the other.
  weights = std::get<3>(proxyloss::ops::ranking_pool(logits, targets, q_logits, q_targets,
                                                     2, -100, c10::nullopt, live_w));
  EXPECT_TRUE(torch::equal(weights, torch::tensor({0.5, 0.0, 1.0, 1.0}, torch::kDouble)));
  weights = std::get<3>(proxyloss::ops::ranking_pool(logits, targets, q_logits, q_targets,
                                                     2, -100, c10::nullopt, c10::nullopt,
                                                     queue_w));
  EXPECT_TRUE(torch::equal(weights, torch::tensor({1.0, 1.0, 2.0, 3.0}, torch::kDouble)));
  // Subsampled: each kept row keeps its own weight (weight = 10 * row + 1).
  const auto many = torch::randn({40, 2});
  const auto many_targets = torch::arange(40) % 2;
  const auto row_weights = torch::arange(40).to(torch::kFloat) * 10 + 1;
  torch::Tensor scores, labels, events;
  std::tie(scores, labels, events, weights) = proxyloss::ops::ranking_pool(
      many, many_targets, c10::nullopt, c10::nullopt, 2, -100, 8, row_weights);
  ASSERT_EQ(weights.size(0), 8);
  for (int64_t i = 0; i < 8; ++i) {
    const int64_t row = (weights[i].item<int64_t>() - 1) / 10;
    EXPECT_TRUE(torch::equal(scores[i], many[row]));
    EXPECT_EQ(labels[i].item<int64_t>(), many_targets[row].item<int64_t>());
  }
}

TEST(RankingPoolOp, RefusesBadWeightsNamingThem) {
  const auto logits = torch::randn({3, 2});
  const auto targets = torch::tensor({0, 1, 0});
  const auto q_logits = torch::randn({2, 2});
  const auto q_targets = torch::tensor({0, 1});
  const auto pool = [&](const c10::optional<torch::Tensor>& w,
                        const c10::optional<torch::Tensor>& queue_w, bool with_queue) {
    proxyloss::ops::ranking_pool(
        logits, targets,
        with_queue ? c10::optional<torch::Tensor>(q_logits) : c10::nullopt,
        with_queue ? c10::optional<torch::Tensor>(q_targets) : c10::nullopt, 2, -100,
        c10::nullopt, w, queue_w);
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const auto& bad :
       {torch::tensor({1.0, -1.0, 1.0}), torch::tensor({1.0, nan, 1.0}),
        torch::tensor({1.0, std::numeric_limits<double>::infinity(), 1.0})}) {
    EXPECT_TRUE(throws_with([&] { pool(bad, c10::nullopt, false); },
                            {"sample_weight must be finite and >= 0"}));
  }
  EXPECT_TRUE(throws_with([&] { pool(torch::ones({2}), c10::nullopt, false); },
                          {"sample_weight must have shape [N] with N = 3"}));
  EXPECT_TRUE(
      throws_with([&] { pool(torch::ones({3}, torch::kLong), c10::nullopt, false); },
                  {"sample_weight must be floating point"}));
  EXPECT_TRUE(throws_with([&] { pool(c10::nullopt, torch::ones({2}), false); },
                          {"queue_weight needs queue_logits and queue_targets"}));
  EXPECT_TRUE(throws_with([&] { pool(c10::nullopt, torch::ones({3}), true); },
                          {"queue_weight must have shape [Q] with Q = 2"}));
}

TEST(RankingPoolOp, BinaryModeRelabelsAndFlagsUnexpectedTargets) {
  const auto logits = torch::randn({4, 1});
  torch::Tensor scores, labels, events, weights;
  std::tie(scores, labels, events, weights) =
      proxyloss::ops::ranking_pool(logits, torch::tensor({0, 1, 3, -100}), c10::nullopt,
                                   c10::nullopt, 1, -100, c10::nullopt);
  EXPECT_TRUE(torch::equal(labels, torch::tensor({-1, 0, 0})));
  EXPECT_TRUE(events[proxyloss::ops::kUnexpectedBinaryLabels].item<bool>());
}

TEST(RankingPoolOp, FlagsNonFiniteLiveRowsSubsamplingAndAnEmptyPool) {
  auto logits = torch::randn({6, 2});
  logits[1][0] = std::numeric_limits<float>::infinity();
  auto targets = torch::tensor({0, 1, 0, 1, 0, 1});
  auto events = std::get<2>(proxyloss::ops::ranking_pool(logits, targets, c10::nullopt,
                                                         c10::nullopt, 2, -100, 4));
  EXPECT_TRUE(events[proxyloss::ops::kNonFiniteLogits].item<bool>());
  EXPECT_TRUE(events[proxyloss::ops::kSubsampled].item<bool>());
  EXPECT_FALSE(events[proxyloss::ops::kEmptyPool].item<bool>());
  // A non-finite logit in an ignored row never enters the pool.
  targets[1] = -100;
  events = std::get<2>(proxyloss::ops::ranking_pool(logits, targets, c10::nullopt,
                                                    c10::nullopt, 2, -100, c10::nullopt));
  EXPECT_FALSE(events[proxyloss::ops::kNonFiniteLogits].item<bool>());
  events = std::get<2>(
      proxyloss::ops::ranking_pool(logits, torch::full({6}, -100, torch::kLong),
                                   c10::nullopt, c10::nullopt, 2, -100, c10::nullopt));
  EXPECT_TRUE(events[proxyloss::ops::kEmptyPool].item<bool>());
}

TEST(RankingLossOps, RejectBadOptionsNamingThem) {
  const auto logits = torch::randn({4, 2});
  const auto targets = torch::tensor({0, 1, 0, 1});
  EXPECT_TRUE(throws_with(
      [&] {
        proxyloss::ops::smooth_ap_loss(logits, targets, c10::nullopt, c10::nullopt, 2,
                                       0.1, "average", -100, c10::nullopt);
      },
      {"proxyloss::smooth_ap_loss", "reduction", "\"average\""}));
  EXPECT_TRUE(throws_with(
      [&] {
        proxyloss::ops::recall_at_quantile_loss(logits, targets, c10::nullopt,
                                                c10::nullopt, 2, 1.5, "higher", 0.1,
                                                "mean", -100, c10::nullopt);
      },
      {"proxyloss::recall_at_quantile_loss", "quantile", "got 1.5"}));
  EXPECT_TRUE(throws_with(
      [&] {
        proxyloss::ops::recall_at_quantile_loss(logits, targets, c10::nullopt,
                                                c10::nullopt, 2, 0.1, "cubic", 0.1,
                                                "mean", -100, c10::nullopt);
      },
      {"interpolation", "cubic"}));
}

// smooth_ap_loss's shares (the ranks of a distributed loss): over share_index
// = 0 .. count - 1, the losses, per_class and gradients add up to the loss
// without shares; valid and events are those of the whole loss.
TEST(RankingLossOps, SmoothAPLossSharesAddUpToTheWholeLoss) {
  using proxyloss::ops::smooth_ap_loss;
  for (uint64_t seed = 0; seed < 36; ++seed) {
    torch::manual_seed(seed);
    const int64_t C = 1 + seed % 4;
    const int64_t N = seed % 9 == 8 ? 0 : 5 + seed * 7 % 60; // some empty batches
    const int64_t Q = seed % 2 ? 40 : 0;
    const auto reduction = std::vector<std::string>{"mean", "sum", "none"}[seed % 3];
    const auto logits = torch::randn({N, C}, torch::kDouble);
    auto targets = torch::randint(0, C == 1 ? 2 : C, {N}, torch::kLong);
    targets.masked_fill_(torch::rand({N}).lt(0.1), -100);
    c10::optional<torch::Tensor> queue_logits;
    c10::optional<torch::Tensor> queue_targets;
    if (Q > 0) {
      queue_logits = torch::randn({Q, C}, torch::kDouble);
      queue_targets = torch::randint(0, C == 1 ? 2 : C, {Q}, torch::kLong);
    }
    c10::optional<torch::Tensor> weights;
    if (seed % 4 == 1) {
      weights = torch::rand({N}, torch::kDouble);
    }
    const double tau = seed % 5 == 0 ? 0.5 : 0.05;
    const auto run = [&](int64_t index, int64_t count) {
      auto x = logits.clone().requires_grad_(true);
      const auto result =
          smooth_ap_loss(x, targets, queue_logits, queue_targets, C, tau, reduction, -100,
                         c10::nullopt, weights, c10::nullopt, index, count);
      const auto loss = std::get<0>(result);
      auto grad = torch::autograd::grad({loss.sum()}, {x}, {}, {}, false, true)[0];
      return std::make_tuple(result, grad.defined() ? grad : torch::zeros_like(x));
    };
    const auto whole = run(0, 1);
    const auto& want = std::get<0>(whole);
    const int64_t count = 2 + seed % 3;
    auto loss = torch::zeros_like(std::get<0>(want));
    auto per_class = torch::zeros_like(std::get<1>(want));
    auto grad = torch::zeros_like(logits);
    for (int64_t index = 0; index < count; ++index) {
      const auto share = run(index, count);
      const auto& got = std::get<0>(share);
      loss += std::get<0>(got);
      per_class += std::get<1>(got);
      grad += std::get<1>(share);
      EXPECT_TRUE(torch::equal(std::get<2>(got), std::get<2>(want))) << "seed " << seed;
      EXPECT_TRUE(torch::equal(std::get<3>(got), std::get<3>(want))) << "seed " << seed;
    }
    EXPECT_LE(max_abs_diff(loss, std::get<0>(want)), 1e-12) << "seed " << seed;
    EXPECT_TRUE(torch::equal(torch::isnan(per_class), torch::isnan(std::get<1>(want))));
    EXPECT_LE(
        max_abs_diff(torch::nan_to_num(per_class), torch::nan_to_num(std::get<1>(want))),
        1e-12)
        << "seed " << seed;
    EXPECT_LE(max_abs_diff(grad, std::get<1>(whole)),
              1e-12 * std::max(1.0, max_abs(std::get<1>(whole))))
        << "seed " << seed;
  }
}

TEST(RankingLossOps, SmoothAPLossRefusesBadShares) {
  const auto logits = torch::randn({4, 2});
  const auto targets = torch::tensor({0, 1, 0, 1});
  for (const auto& share :
       {std::make_pair(int64_t(0), int64_t(0)), std::make_pair(int64_t(2), int64_t(2)),
        std::make_pair(int64_t(-1), int64_t(3))}) {
    EXPECT_TRUE(throws_with(
        [&] {
          proxyloss::ops::smooth_ap_loss(logits, targets, c10::nullopt, c10::nullopt, 2,
                                         0.1, "mean", -100, c10::nullopt, c10::nullopt,
                                         c10::nullopt, share.first, share.second);
        },
        {"proxyloss::smooth_ap_loss", "share_index must be in [0, share_count)"}));
  }
}

// --- differentiable once ------------------------------------------------------------

namespace {

// `loss(x)` is differentiable; create_graph works, a second differentiation
// raises the op's "differentiable once" error.
template <typename Loss>
void expect_differentiable_once(const torch::Tensor& input, Loss&& loss,
                                const std::string& op) {
  const auto x = input.clone().requires_grad_(true);
  const auto grads = torch::autograd::grad({loss(x)}, {x}, {}, /*retain_graph=*/true,
                                           /*create_graph=*/true);
  ASSERT_TRUE(grads[0].defined());
  // The autograd engine's Error node throws a std::runtime_error.
  std::string message;
  try {
    grads[0].sum().backward();
  } catch (const std::exception& error) {
    message = error.what();
  }
  EXPECT_NE(message.find(op + " is differentiable once"), std::string::npos) << message;
  EXPECT_NE(message.find("double backward"), std::string::npos) << message;
  // Without create_graph nothing changes.
  const auto y = input.clone().requires_grad_(true);
  loss(y).backward();
  EXPECT_TRUE(y.grad().defined());
  EXPECT_FALSE(y.grad().requires_grad());
}

} // namespace

TEST(DifferentiableOnce, EveryAutogradOpRefusesDoubleBackwardClearly) {
  torch::manual_seed(8);
  const auto scores = torch::randn({20, 2}, torch::kDouble);
  const auto labels = torch::randint(0, 2, {20}, torch::kLong);
  expect_differentiable_once(
      scores,
      [&](const torch::Tensor& x) {
        return proxyloss::ops::smooth_ap(x, labels, 0.1).sum();
      },
      "proxyloss::smooth_ap");
  expect_differentiable_once(
      scores,
      [&](const torch::Tensor& x) {
        return proxyloss::ops::soft_recall(x, labels, torch::zeros({2}, torch::kDouble),
                                           0.1)
            .sum();
      },
      "proxyloss::soft_recall");
  expect_differentiable_once(
      scores,
      [&](const torch::Tensor& x) {
        return proxyloss::ops::fair_loss(x, labels, c10::nullopt, 10.0, 10.0, -100, 0.0)
            .sum();
      },
      "proxyloss::fair_loss");
}

TEST(OpSchemas, ForwardAndBackwardHalvesArePrivate) {
  auto& dispatcher = c10::Dispatcher::singleton();
  for (const char* name :
       {"proxyloss::_smooth_ap_forward", "proxyloss::_smooth_ap_backward",
        "proxyloss::_soft_recall_backward", "proxyloss::_fair_loss_forward",
        "proxyloss::_fair_loss_backward", "proxyloss::smooth_ap",
        "proxyloss::soft_recall", "proxyloss::selection_quantile",
        "proxyloss::ranking_pool", "proxyloss::smooth_ap_loss",
        "proxyloss::recall_at_quantile_loss", "proxyloss::queue_push_",
        "proxyloss::fair_loss"}) {
    EXPECT_TRUE(dispatcher.findSchema({name, ""}).has_value()) << name;
  }
  for (const char* name :
       {"proxyloss::smooth_ap_forward", "proxyloss::smooth_ap_backward",
        "proxyloss::fair_loss_forward", "proxyloss::fair_loss_backward"}) {
    EXPECT_FALSE(dispatcher.findSchema({name, ""}).has_value()) << name;
  }
}
