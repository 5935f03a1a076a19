// The fused Smooth-AP op (every implementation) against the dense oracle.
#include "support/kernel_paths.h"
#include "support/random_pools.h"
#include "support/ranking_oracle.h"
#include "support/test_support.h"

#include <proxyloss/ops.h>
#include "ops/cpu/kernel_selection.h"

#include <memory>

using test_support::max_abs;
using test_support::max_abs_diff;

namespace {

class SmoothAPOp : public test_support::KernelPathTest {};

// A scalar of ap with random per-class weights, NaN classes left out, so the
// backward pass sees a different gradient for each class.
torch::Tensor weighted_sum(const torch::Tensor& ap, const torch::Tensor& weights) {
  return torch::where(torch::isnan(ap), torch::zeros_like(ap), ap * weights).sum();
}

struct Result {
  torch::Tensor ap;
  torch::Tensor grad;
};

Result run_op(const test_support::RandomPool& pool, const torch::Tensor& weights) {
  auto scores = pool.scores.clone().requires_grad_(true);
  auto ap = proxyloss::ops::smooth_ap(scores, pool.labels, pool.tau);
  weighted_sum(ap, weights.to(ap.scalar_type())).backward();
  return {ap.detach(), scores.grad()};
}

Result run_oracle(const test_support::RandomPool& pool, const torch::Tensor& weights) {
  auto scores = pool.scores.to(torch::kDouble).clone().requires_grad_(true);
  auto ap = oracle::op_ap(scores, pool.labels, pool.tau);
  const auto loss = weighted_sum(ap, weights);
  if (!loss.requires_grad()) { // no class has a positive: nothing to differentiate
    return {ap.detach(), torch::zeros_like(scores)};
  }
  loss.backward();
  return {ap.detach(), scores.grad()};
}

// Float32 tolerance: inputs are identical, the fused op rounds each pairwise
// difference and sigmoid to float (relative 6e-8 each) and sums in blocks of
// at most 64 floats before double accumulation: ~1e-6 relative worst case on
// a rank, and a few 1e-6 on the AP. Gradients are held to the same relative
// precision of the largest gradient entry.
constexpr double kFloatTol = 1e-5;
constexpr double kDoubleTol = 1e-10;

void expect_matches_oracle(const test_support::RandomPool& pool) {
  const auto weights = torch::randn({pool.scores.size(1)}, torch::kDouble);
  const auto got = run_op(pool, weights);
  const auto want = run_oracle(pool, weights);
  const double tol = pool.scores.scalar_type() == torch::kFloat ? kFloatTol : kDoubleTol;
  EXPECT_LE(max_abs_diff(got.ap, want.ap), tol) << pool.describe();
  EXPECT_LE(max_abs_diff(got.grad, want.grad), tol * std::max(1.0, max_abs(want.grad)))
      << pool.describe();
}

// The analytic gradient [M, C] of f at `scores` (float64) against central
// differences, entry by entry.
template <typename F>
void expect_central_differences(const F& f, const torch::Tensor& scores,
                                const torch::Tensor& analytic, uint64_t seed) {
  const double eps = 1e-6;
  for (int64_t m = 0; m < scores.size(0); ++m) {
    for (int64_t c = 0; c < scores.size(1); ++c) {
      auto plus = scores.clone();
      auto minus = scores.clone();
      plus[m][c] += eps;
      minus[m][c] -= eps;
      const double numeric = (f(plus) - f(minus)) / (2 * eps);
      EXPECT_NEAR(analytic[m][c].item<double>(), numeric, 1e-7)
          << "seed " << seed << " row " << m << " class " << c;
    }
  }
}

} // namespace

TEST_P(SmoothAPOp, MatchesDenseOracleOnRandomPoolsFloat64) {
  for (uint64_t seed = 0; seed < 150; ++seed) {
    expect_matches_oracle(test_support::random_pool(seed, torch::kDouble));
  }
}

TEST_P(SmoothAPOp, MatchesDenseOracleOnRandomPoolsFloat32) {
  for (uint64_t seed = 1000; seed < 1150; ++seed) {
    expect_matches_oracle(test_support::random_pool(seed, torch::kFloat));
  }
}

TEST_P(SmoothAPOp, MatchesDenseOracleOnLargerPools) {
  for (uint64_t seed = 2000; seed < 2006; ++seed) {
    expect_matches_oracle(test_support::random_pool(seed, torch::kFloat, 3000));
  }
}

TEST_P(SmoothAPOp, GradientMatchesCentralDifferencesInDouble) {
  for (uint64_t seed = 0; seed < 6; ++seed) {
    torch::manual_seed(seed);
    const int64_t M = 10 + seed;
    const int64_t C = 1 + seed % 3;
    const double tau = seed % 2 ? 0.5 : 0.1;
    auto scores = torch::randn({M, C}, torch::kDouble);
    auto labels = torch::randint(-1, C, {M}, torch::kLong);
    labels[0] = 0; // at least one positive of class 0
    const auto weights = torch::randn({C}, torch::kDouble);
    auto f = [&](const torch::Tensor& s) {
      torch::NoGradGuard no_grad;
      return weighted_sum(proxyloss::ops::smooth_ap(s, labels, tau), weights)
          .item<double>();
    };
    auto x = scores.clone().requires_grad_(true);
    weighted_sum(proxyloss::ops::smooth_ap(x, labels, tau), weights).backward();
    expect_central_differences(f, scores, x.grad(), seed);
  }
}

// Per-row weights of a pool: random in [0, 2), some exactly 0, and (every
// third seed) all the positives of class 0 at 0.
torch::Tensor random_row_weights(const test_support::RandomPool& pool, uint64_t seed) {
  auto w = torch::rand({pool.scores.size(0)}, torch::kDouble) * 2;
  w.masked_fill_(torch::rand({pool.scores.size(0)}).lt(0.2), 0.0);
  if (seed % 3 == 0) {
    w.masked_fill_(pool.labels.eq(0), 0.0);
  }
  return w;
}

TEST_P(SmoothAPOp, WeightedMatchesDenseOracleOnRandomPools) {
  for (uint64_t seed = 0; seed < 90; ++seed) {
    const auto dtype = seed % 2 ? torch::kFloat : torch::kDouble;
    const auto pool = test_support::random_pool(seed, dtype);
    const auto w = random_row_weights(pool, seed);
    const auto class_weights = torch::randn({pool.scores.size(1)}, torch::kDouble);
    auto x = pool.scores.clone().requires_grad_(true);
    const auto ap = proxyloss::ops::smooth_ap(x, pool.labels, pool.tau, w.to(dtype));
    weighted_sum(ap, class_weights.to(dtype)).backward();
    auto y = pool.scores.to(torch::kDouble).clone().requires_grad_(true);
    const auto want = oracle::op_ap(y, pool.labels, pool.tau, w);
    const auto loss = weighted_sum(want, class_weights);
    const auto want_grad = loss.requires_grad()
                               ? torch::autograd::grad({loss}, {y}, {}, {}, true)[0]
                               : torch::zeros_like(y);
    const double tol = dtype == torch::kFloat ? kFloatTol : kDoubleTol;
    // NaN exactly where the oracle is NaN (no positive, or no positive weight).
    EXPECT_TRUE(torch::equal(torch::isnan(ap), torch::isnan(want))) << pool.describe();
    EXPECT_LE(max_abs_diff(ap, want), tol) << pool.describe();
    const auto grad = x.grad().defined() ? x.grad() : torch::zeros_like(x);
    EXPECT_LE(max_abs_diff(torch::nan_to_num(grad), torch::nan_to_num(want_grad)),
              tol * std::max(1.0, max_abs(want_grad)))
        << pool.describe();
  }
}

TEST_P(SmoothAPOp, UnitWeightsAreBitwiseTheUnweightedOp) {
  for (uint64_t seed = 0; seed < 30; ++seed) {
    const auto pool =
        test_support::random_pool(seed, seed % 2 ? torch::kFloat : torch::kDouble);
    const auto class_weights =
        torch::randn({pool.scores.size(1)}, pool.scores.scalar_type());
    auto x = pool.scores.clone().requires_grad_(true);
    auto y = pool.scores.clone().requires_grad_(true);
    const auto plain = proxyloss::ops::smooth_ap(x, pool.labels, pool.tau);
    const auto ones = proxyloss::ops::smooth_ap(
        y, pool.labels, pool.tau,
        torch::ones({pool.scores.size(0)}, pool.scores.options()));
    EXPECT_TRUE(torch::equal(torch::nan_to_num(plain), torch::nan_to_num(ones)));
    weighted_sum(plain, class_weights).backward();
    weighted_sum(ones, class_weights).backward();
    if (x.grad().defined()) {
      EXPECT_TRUE(torch::equal(x.grad(), y.grad())) << pool.describe();
    }
  }
}

// Odd seeds: anchored (every other row an anchor, as a share of 2).
TEST_P(SmoothAPOp, WeightedGradientMatchesCentralDifferencesInDouble) {
  for (uint64_t seed = 0; seed < 8; ++seed) {
    torch::manual_seed(seed);
    const int64_t M = 12 + seed;
    const int64_t C = 1 + seed % 3;
    const double tau = seed % 2 ? 0.5 : 0.1;
    const auto scores = torch::randn({M, C}, torch::kDouble);
    auto labels = torch::randint(-1, C, {M}, torch::kLong);
    labels[0] = 0;
    const auto w = torch::rand({M}, torch::kDouble) + 0.1;
    c10::optional<torch::Tensor> anchors;
    if (seed % 2) {
      anchors = torch::arange(M).remainder(2).eq(int64_t(seed / 2 % 2));
    }
    const auto class_weights = torch::randn({C}, torch::kDouble);
    auto f = [&](const torch::Tensor& s) {
      torch::NoGradGuard no_grad;
      return weighted_sum(proxyloss::ops::smooth_ap(s, labels, tau, w, anchors),
                          class_weights)
          .item<double>();
    };
    auto x = scores.clone().requires_grad_(true);
    weighted_sum(proxyloss::ops::smooth_ap(x, labels, tau, w, anchors), class_weights)
        .backward();
    expect_central_differences(f, scores, x.grad(), seed);
  }
}

TEST_P(SmoothAPOp, BadWeightsAreRefusedNamingThem) {
  const auto scores = torch::randn({4, 2});
  const auto labels = torch::tensor({0, 1, 0, -1});
  EXPECT_TRUE(test_support::throws_with(
      [&] { proxyloss::ops::smooth_ap(scores, labels, 0.1, torch::ones({3})); },
      {"weights must be 1-D [M] with M = 4"}));
  EXPECT_TRUE(test_support::throws_with(
      [&] { proxyloss::ops::smooth_ap(scores, labels, 0.1, -torch::ones({4})); },
      {"weights must be finite and >= 0"}));
}

// Anchors (the shares of a distributed loss): each share against the dense
// oracle of its terms, the shares' sum against the op without anchors.
namespace {

torch::Tensor share_anchors(int64_t M, int64_t index, int64_t count) {
  return torch::arange(M, torch::kLong).remainder(count).eq(index);
}

// ap and the gradient of weighted_sum(ap, class_weights) with anchors (or
// none: undefined).
Result run_anchored(const torch::Tensor& scores, const torch::Tensor& labels, double tau,
                    const torch::Tensor& weights, const torch::Tensor& anchors,
                    const torch::Tensor& class_weights) {
  auto x = scores.clone().requires_grad_(true);
  const auto ap = proxyloss::ops::smooth_ap(
      x, labels, tau,
      weights.defined() ? c10::optional<torch::Tensor>(weights) : c10::nullopt,
      anchors.defined() ? c10::optional<torch::Tensor>(anchors) : c10::nullopt);
  const auto loss = weighted_sum(ap, class_weights.to(ap.scalar_type()));
  auto grad =
      loss.requires_grad() ? torch::autograd::grad({loss}, {x})[0] : torch::zeros_like(x);
  return {ap.detach(), grad};
}

} // namespace

TEST_P(SmoothAPOp, AnchoredSharesMatchTheDenseOracle) {
  for (uint64_t seed = 0; seed < 80; ++seed) {
    const auto dtype = seed % 2 ? torch::kFloat : torch::kDouble;
    const auto pool = test_support::random_pool(seed, dtype);
    const int64_t M = pool.scores.size(0);
    const auto w = seed % 3 == 0 ? random_row_weights(pool, seed) : torch::Tensor();
    // Row-modulo shares, and arbitrary subsets.
    const int64_t count = 2 + seed % 3;
    const auto anchors =
        seed % 4 == 3 ? torch::rand({M}).lt(0.3) : share_anchors(M, seed % count, count);
    const auto class_weights = torch::randn({pool.scores.size(1)}, torch::kDouble);
    const auto got = run_anchored(pool.scores, pool.labels, pool.tau,
                                  w.defined() ? w.to(dtype) : w, anchors, class_weights);
    auto y = pool.scores.to(torch::kDouble).clone().requires_grad_(true);
    const auto want = oracle::op_ap(y, pool.labels, pool.tau, w, anchors);
    const auto loss = weighted_sum(want, class_weights);
    const auto want_grad = loss.requires_grad() ? torch::autograd::grad({loss}, {y})[0]
                                                : torch::zeros_like(y);
    const double tol = dtype == torch::kFloat ? kFloatTol : kDoubleTol;
    EXPECT_TRUE(torch::equal(torch::isnan(got.ap), torch::isnan(want)))
        << pool.describe();
    EXPECT_LE(max_abs_diff(got.ap, want), tol) << pool.describe();
    EXPECT_LE(max_abs_diff(torch::nan_to_num(got.grad), torch::nan_to_num(want_grad)),
              tol * std::max(1.0, max_abs(want_grad)))
        << pool.describe();
  }
}

TEST_P(SmoothAPOp, AnchorSharesAddUpToTheOpWithoutAnchors) {
  for (uint64_t seed = 100; seed < 160; ++seed) {
    const auto dtype = seed % 2 ? torch::kFloat : torch::kDouble;
    const auto pool = test_support::random_pool(seed, dtype, 600);
    const int64_t M = pool.scores.size(0);
    const auto w =
        seed % 3 == 0 ? random_row_weights(pool, seed).to(dtype) : torch::Tensor();
    const auto class_weights = torch::randn({pool.scores.size(1)}, torch::kDouble);
    const auto whole = run_anchored(pool.scores, pool.labels, pool.tau, w,
                                    torch::Tensor(), class_weights);
    const int64_t count = 2 + seed % 4;
    auto ap = torch::zeros_like(whole.ap);
    auto grad = torch::zeros_like(whole.grad);
    for (int64_t index = 0; index < count; ++index) {
      const auto share = run_anchored(pool.scores, pool.labels, pool.tau, w,
                                      share_anchors(M, index, count), class_weights);
      ap += share.ap;
      grad += share.grad;
    }
    const double tol = dtype == torch::kFloat ? kFloatTol : kDoubleTol;
    EXPECT_TRUE(torch::equal(torch::isnan(ap), torch::isnan(whole.ap)))
        << pool.describe();
    EXPECT_LE(max_abs_diff(ap, whole.ap), tol) << pool.describe();
    EXPECT_LE(max_abs_diff(torch::nan_to_num(grad), torch::nan_to_num(whole.grad)),
              tol * std::max(1.0, max_abs(whole.grad)))
        << pool.describe();
  }
}

TEST_P(SmoothAPOp, AllRowsAsAnchorsAreBitwiseTheOpWithoutAnchors) {
  for (uint64_t seed = 200; seed < 230; ++seed) {
    const auto pool =
        test_support::random_pool(seed, seed % 2 ? torch::kFloat : torch::kDouble);
    const auto class_weights = torch::randn({pool.scores.size(1)}, torch::kDouble);
    const auto all = torch::ones({pool.scores.size(0)}, torch::kBool);
    const auto whole = run_anchored(pool.scores, pool.labels, pool.tau, {},
                                    torch::Tensor(), class_weights);
    const auto anchored =
        run_anchored(pool.scores, pool.labels, pool.tau, {}, all, class_weights);
    EXPECT_TRUE(torch::equal(torch::nan_to_num(whole.ap), torch::nan_to_num(anchored.ap)))
        << pool.describe();
    EXPECT_TRUE(
        torch::equal(torch::nan_to_num(whole.grad), torch::nan_to_num(anchored.grad)))
        << pool.describe();
  }
}

TEST_P(SmoothAPOp, ClassWithoutAnchorsIsZeroAndGetsNoGradient) {
  const auto scores = torch::randn({6, 3}, torch::kDouble);
  const auto labels = torch::tensor({0, 0, 1, -1, 1, 0}, torch::kLong);
  // Rows 2 and 4 (class 1's positives) are not anchors; class 2 has none.
  const auto anchors = torch::tensor({true, false, false, true, false, true});
  const auto got =
      run_anchored(scores, labels, 0.1, {}, anchors, torch::ones({3}, torch::kDouble));
  EXPECT_EQ(got.ap[1].item<double>(), 0.0);
  EXPECT_TRUE(std::isnan(got.ap[2].item<double>()));
  EXPECT_GT(got.ap[0].item<double>(), 0.0);
  EXPECT_EQ(got.grad.select(1, 1).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(got.grad.select(1, 2).abs().sum().item<double>(), 0.0);
}

TEST_P(SmoothAPOp, BadAnchorsAreRefusedNamingThem) {
  const auto scores = torch::randn({4, 2});
  const auto labels = torch::tensor({0, 1, 0, -1});
  EXPECT_TRUE(test_support::throws_with(
      [&] {
        proxyloss::ops::smooth_ap(scores, labels, 0.1, c10::nullopt,
                                  torch::ones({3}, torch::kBool));
      },
      {"anchors must be 1-D [M] with M = 4"}));
  EXPECT_TRUE(test_support::throws_with(
      [&] {
        proxyloss::ops::smooth_ap(scores, labels, 0.1, c10::nullopt, torch::ones({4}));
      },
      {"anchors must be bool"}));
}

TEST_P(SmoothAPOp, ClassWithoutPositivesIsNaNAndGetsNoGradient) {
  auto scores = torch::randn({6, 3}, torch::kDouble).requires_grad_(true);
  const auto labels = torch::tensor({0, 0, 1, -1, 1, 0}, torch::kLong);
  const auto ap = proxyloss::ops::smooth_ap(scores, labels, 0.1);
  EXPECT_TRUE(std::isnan(ap[2].item<double>()));
  EXPECT_FALSE(std::isnan(ap[0].item<double>()));
  weighted_sum(ap, torch::ones({3}, torch::kDouble)).backward();
  EXPECT_EQ(scores.grad().select(1, 2).abs().sum().item<double>(), 0.0);
}

TEST_P(SmoothAPOp, NonFiniteScoresMakeTheirClassNaN) {
  for (double bad : {std::nan(""), double(INFINITY), -double(INFINITY)}) {
    auto scores = torch::randn({8, 2}, torch::kFloat);
    scores[3][1] = bad;
    scores = scores.requires_grad_(true);
    const auto labels = torch::tensor({0, 1, 0, 1, 0, 1, 0, 1}, torch::kLong);
    const auto ap = proxyloss::ops::smooth_ap(scores, labels, 0.05);
    EXPECT_FALSE(std::isnan(ap[0].item<float>()));
    EXPECT_TRUE(std::isnan(ap[1].item<float>())) << bad;
    ap.sum().backward();
    EXPECT_TRUE(torch::isnan(scores.grad().select(1, 1)).all().item<bool>());
    EXPECT_TRUE(torch::isfinite(scores.grad().select(1, 0)).all().item<bool>());
  }
}

TEST_P(SmoothAPOp, NonContiguousScoresAreAccepted) {
  const auto base = torch::randn({4, 30}, torch::kDouble);
  const auto scores = base.t(); // [30, 4], not contiguous
  const auto labels = torch::randint(0, 4, {30}, torch::kLong);
  EXPECT_LE(max_abs_diff(proxyloss::ops::smooth_ap(scores, labels, 0.1),
                         oracle::op_ap(scores, labels, 0.1)),
            kDoubleTol);
}

TEST_P(SmoothAPOp, EmptyPoolGivesAllNaN) {
  const auto ap = proxyloss::ops::smooth_ap(torch::zeros({0, 3}),
                                            torch::zeros({0}, torch::kLong), 0.1);
  EXPECT_EQ(ap.size(0), 3);
  EXPECT_TRUE(torch::isnan(ap).all().item<bool>());
}

// Positive pairs are evaluated once per unordered pair (sigmoid(d) to one,
// sigmoid(-d) to the other; sigmoid' (ab_l - ab_k) antisymmetrically): classes
// that are all or mostly positive, with ties among the positives, at
// temperatures whose windows cover part of the class or all of it.
TEST_P(SmoothAPOp, SymmetricPositivePairsMatchTheOracle) {
  for (uint64_t seed = 0; seed < 4; ++seed) {
    torch::manual_seed(seed);
    const int64_t M = 700;
    auto labels = torch::zeros({M}, torch::kLong); // class 0: every row
    labels.narrow(0, 0, 100).fill_(1);             // class 1: 100 rows
    auto scores = torch::randn({M, 2}, torch::kDouble);
    if (seed % 2 == 1) {
      scores = torch::round(scores * 4) / 4; // many ties, positives among them
    }
    for (const double tau : {0.02, 0.3, 5.0}) {
      for (const auto dtype : {torch::kFloat, torch::kDouble}) {
        expect_matches_oracle({scores.to(dtype), labels, tau});
      }
    }
  }
}

// Large sides are factored by blocks of 512 sorted entries (one exp per
// entry and one per anchor and block instead of one per pair); blocks whose
// spread exceeds 32 tau are evaluated directly. A dense cluster with far
// outliers gives both kinds of blocks, vectors across block boundaries and
// windows that end inside a block.
TEST_P(SmoothAPOp, FactoredAndDirectBlocksMatchTheOracle) {
  for (uint64_t seed = 0; seed < 3; ++seed) {
    torch::manual_seed(seed);
    const int64_t M = 2500;
    auto scores = torch::randn({M, 1}, torch::kDouble) * 0.2;
    const auto outliers = torch::randperm(M, torch::kLong).narrow(0, 0, M / 10);
    scores.index_put_({outliers}, torch::randn({M / 10, 1}, torch::kDouble) * 50);
    auto labels =
        torch::where(torch::rand({M}, torch::kDouble).lt(0.3),
                     torch::zeros({M}, torch::kLong), torch::full({M}, -1, torch::kLong));
    for (const double tau : {0.01, 0.1}) {
      for (const auto dtype : {torch::kFloat, torch::kDouble}) {
        expect_matches_oracle({scores.to(dtype), labels, tau});
      }
    }
  }
}

// Pools of one to three rows; one positive among many negatives.
TEST_P(SmoothAPOp, TinyPoolsMatchTheOracle) {
  for (int64_t M = 1; M <= 3; ++M) {
    for (uint64_t seed = 0; seed < 8; ++seed) {
      torch::manual_seed(seed);
      const auto scores = torch::randn({M, 2}, torch::kDouble);
      auto labels = torch::randint(-1, 2, {M}, torch::kLong);
      labels[0] = 0;
      expect_matches_oracle({scores, labels, 0.5});
    }
  }
  torch::manual_seed(0);
  auto labels = torch::full({4096}, -1, torch::kLong);
  labels[17] = 0;
  expect_matches_oracle({torch::randn({4096, 1}, torch::kFloat), labels, 0.5});
}

// Sorting: negative and positive scores, -0 and +0, repeated values.
TEST_P(SmoothAPOp, SignedZerosAndRepeatedScoresMatchTheOracle) {
  const auto scores =
      torch::tensor({0.0, -0.0, 1.5, -1.5, -0.0, 0.0, 2.0, -3.0, 1.5, -1.5},
                    torch::kDouble)
          .reshape({10, 1});
  const auto labels = torch::tensor({0, 0, -1, 0, -1, -1, 0, -1, 0, -1}, torch::kLong);
  for (const auto dtype : {torch::kFloat, torch::kDouble}) {
    expect_matches_oracle({scores.to(dtype), labels, 0.3});
  }
}

// --- Crowded windows: block expansions (src/ops/cpu/kernels/sigmoid_sums.h) ---

// Unseparated scores (positives drawn like negatives: every window crowded),
// a majority class, from tiny to large temperatures, with ties and with a
// huge offset (1e6: float32 scores on a 1/16 grid, all tied in blocks): the
// expansions, forced and as chosen by cost, against the oracle.
TEST_P(SmoothAPOp, CrowdedWindowsMatchTheOracle) {
  for (uint64_t seed = 0; seed < 3; ++seed) {
    torch::manual_seed(seed);
    const int64_t M = 1000;
    auto labels = torch::full({M}, -1, torch::kLong);
    labels.narrow(0, 0, 850).fill_(0); // class 0: 85 %
    labels.narrow(0, 850, 50).fill_(1);
    auto scores = torch::randn({M, 2}, torch::kDouble);
    if (seed == 1) {
      scores = torch::round(scores * 8) / 8; // heavy ties
    }
    if (seed == 2) {
      scores = scores + 1e6;
    }
    for (const double tau : {0.003, 0.05, 0.5, 5.0}) {
      for (const auto dtype : {torch::kFloat, torch::kDouble}) {
        const test_support::RandomPool pool{scores.to(dtype), labels, tau};
        {
          const proxyloss::detail::ForceSmoothAPAlgorithm forced(
              proxyloss::detail::SmoothAPAlgorithm::kExpansions);
          expect_matches_oracle(pool);
        }
        expect_matches_oracle(pool);
      }
    }
  }
}

// At the expansions' error bounds (sigmoid_sums.h): blocks of spread exactly
// s = tau / 2 on both sides (pairs at |t| = s, the Taylor bound's worst
// case) at every distance across the near field, and far clusters exactly D
// temperatures away (d = -D and d = +D, the far series' worst case). tau =
// 2^-6 and the grid 2^-11 are exact in float. Ranks must hold to float
// rounding: the AP to 2e-7 relative, as the window tails' test.
TEST(SmoothAPOpExpansions, PairsAtTheErrorBoundsMatchTheOracle) {
  const proxyloss::detail::ForceSmoothAPAlgorithm forced(
      proxyloss::detail::SmoothAPAlgorithm::kExpansions);
  const double tau = 1.0 / 64;
  const double grid = tau / 32;
  const int64_t spread = 16; // grid steps: s tau
  for (const auto dtype : {torch::kFloat, torch::kDouble}) {
    const double D = dtype == torch::kFloat ? 2.0 : 3.0;
    std::vector<double> values;
    std::vector<int64_t> labels;
    for (int copy = 0; copy < 16; ++copy) { // positives: one block of spread s
      values.push_back(0.0);
      labels.push_back(0);
      values.push_back(double(spread) * grid);
      labels.push_back(0);
    }
    // Negatives: blocks of spread s from just above the lower far cluster to
    // just below the upper one, so d0 takes every value across the near field.
    const auto reach = int64_t(32 * D);
    for (int64_t g = -reach + spread + 1; g < reach; ++g) {
      for (int copy = 0; copy < 8; ++copy) {
        values.push_back(double(g) * grid);
        labels.push_back(-1);
      }
    }
    for (int copy = 0; copy < 64; ++copy) { // far clusters at d = -D and d = +D
      values.push_back(-D * tau);
      labels.push_back(-1);
      values.push_back(D * tau + double(spread) * grid);
      labels.push_back(-1);
    }
    const auto scores = torch::tensor(values, torch::kDouble)
                            .reshape({int64_t(values.size()), 1})
                            .to(dtype);
    const auto y = torch::tensor(labels, torch::kLong);
    auto x = scores.clone().requires_grad_(true);
    auto x_ref = scores.to(torch::kDouble).requires_grad_(true);
    const auto got = proxyloss::ops::smooth_ap(x, y, tau);
    const auto want = oracle::op_ap(x_ref, y, tau);
    const double rel = dtype == torch::kFloat ? 2e-7 : 1e-14;
    EXPECT_NEAR(got.item<double>(), want.item<double>(), rel * want.item<double>())
        << dtype;
    got.sum().backward();
    want.sum().backward();
    EXPECT_LE(max_abs_diff(x.grad(), x_ref.grad()),
              (dtype == torch::kFloat ? 1e-6 : 1e-13) * max_abs(x_ref.grad()))
        << dtype;
  }
}

// The expansions evaluate every query on its own: the result does not depend
// on the thread count.
TEST(SmoothAPOpExpansions, ResultsDoNotDependOnTheThreadCount) {
  const proxyloss::detail::ForceSmoothAPAlgorithm forced(
      proxyloss::detail::SmoothAPAlgorithm::kExpansions);
  torch::manual_seed(5);
  const int64_t M = 20000;
  const auto scores = torch::randn({M, 1}, torch::kFloat);
  auto labels = torch::full({M}, -1, torch::kLong);
  labels.narrow(0, 0, M / 20).fill_(0);
  auto run = [&] {
    auto x = scores.clone().requires_grad_(true);
    const auto ap = proxyloss::ops::smooth_ap(x, labels, 0.05);
    ap.sum().backward();
    return std::make_pair(ap.detach(), x.grad());
  };
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = run();
  at::set_num_threads(std::max(2, threads));
  const auto many = run();
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one.first, many.first));
  EXPECT_TRUE(torch::equal(one.second, many.second));
}

PROXYLOSS_INSTANTIATE_KERNEL_PATHS(SmoothAPOp);

// The CPU forward saves each class's sort order for its backward; a backward
// given another implementation's (empty) order sorts again, with the same
// result.
TEST(SmoothAPOpSavedOrder, BackwardWithoutTheForwardsOrderMatches) {
  torch::manual_seed(3);
  const auto scores = torch::randn({400, 3}, torch::kDouble);
  const auto labels = torch::randint(-1, 3, {400}, torch::kLong);
  const auto weights = torch::randn({3}, torch::kDouble);
  auto x = scores.clone().requires_grad_(true);
  weighted_sum(proxyloss::ops::smooth_ap(x, labels, 0.2), weights).backward();
  auto y = scores.clone().requires_grad_(true);
  torch::Tensor ap;
  {
    proxyloss::detail::ForceGenericKernels generic;
    ap = proxyloss::ops::smooth_ap(y, labels, 0.2);
  }
  weighted_sum(ap, weights).backward(); // the fused backward, no saved order
  EXPECT_LE(max_abs_diff(x.grad(), y.grad()),
            kDoubleTol * std::max(1.0, max_abs(x.grad())));
}

// Column sums are kept per task and added in task order: the same input gives
// bitwise the same output, also where the work is split between threads.
TEST(SmoothAPOpDeterminism, RepeatedCallsAreBitwiseEqual) {
  torch::manual_seed(11);
  const int64_t M = 6000;
  const auto scores = torch::randn({M, 2}, torch::kFloat);
  auto labels = torch::zeros({M}, torch::kLong);
  labels.narrow(0, 0, M / 10).fill_(1);
  auto run = [&] {
    auto x = scores.clone().requires_grad_(true);
    const auto ap = proxyloss::ops::smooth_ap(x, labels, 0.5);
    ap.sum().backward();
    return std::make_pair(ap.detach(), x.grad());
  };
  const auto first = run();
  for (int repeat = 0; repeat < 3; ++repeat) {
    const auto again = run();
    EXPECT_TRUE(torch::equal(first.first, again.first));
    EXPECT_TRUE(torch::equal(first.second, again.second));
  }
}

// At a large pool the float32 kernel keeps ~1e-6 relative accuracy against a
// double reference, thanks to blockwise double accumulation.
TEST(SmoothAPOpAccuracy, Float32MatchesDoubleOracleAtQuarterMillionRows) {
  torch::manual_seed(7);
  const int64_t M = 1 << 18;
  auto scores = torch::randn({M, 1}, torch::kFloat);
  auto labels = torch::full({M}, -1, torch::kLong);
  const auto positives = torch::randperm(M, torch::kLong).narrow(0, 0, 16);
  labels.index_fill_(0, positives, 0);
  scores.index_add_(0, positives, torch::full({16, 1}, 1.5f)); // positives rank high
  const double tau = 0.05;
  const double got = proxyloss::ops::smooth_ap(scores, labels, tau).item<double>();
  const double want =
      oracle::op_ap(scores.to(torch::kDouble), labels, tau).item<double>();
  EXPECT_LE(std::abs(got - want), 1e-6 * std::abs(want)) << got << " vs " << want;
}

// The windowed kernel: pairs farther than K tau (K = 9 in float) are summed
// by their two-term exponential tail forms, not dropped. Below a positive,
// 50,000 negatives sit just outside the window (d = -9.5: sigmoid = 7.5e-5,
// whose second-order term e^-19 is 7.5e-5 of it) and 50,000 far out
// (d = -18.5): dropping either tail or the second-order term would be an
// error far above float rounding.
TEST(SmoothAPOpWindow, TailsOutsideTheWindowAreSummedNotDropped) {
  const int64_t N = 100000;
  const double tau = 0.01;
  auto scores = torch::zeros({N + 2, 1}, torch::kFloat);
  scores.narrow(0, 0, N / 2).fill_(-9.5 * tau);      // lower tail, near the window
  scores.narrow(0, N / 2, N / 2).fill_(-18.5 * tau); // lower tail, far
  scores[N][0] = 0.0f;                               // positive
  scores[N + 1][0] = 0.5f;                           // a negative far above: upper tail
  auto labels = torch::full({N + 2}, -1, torch::kLong);
  labels[N] = 0;
  auto x = scores.clone().requires_grad_(true);
  auto y = scores.to(torch::kDouble).requires_grad_(true);
  const auto got_ap = proxyloss::ops::smooth_ap(x, labels, tau);
  const auto want_ap = oracle::op_ap(y, labels, tau);
  const double got = got_ap.item<double>();
  const double want = want_ap.item<double>();
  EXPECT_NEAR(got, want, 2e-7 * want);
  // Gradients too: each tail negative gets sigmoid'(d) / tau of gradient,
  // and the positive their sum.
  got_ap.sum().backward();
  want_ap.sum().backward();
  EXPECT_LE(max_abs_diff(x.grad(), y.grad()), 1e-5 * max_abs(y.grad()));
  EXPECT_NEAR(x.grad()[0][0].item<double>(), y.grad()[0][0].item<double>(),
              1e-5 * std::abs(y.grad()[0][0].item<double>()));
  // Sanity: the tails matter at this precision.
  const double dropped = 1.0 / (1.0 + 1.0); // rank_pos = 1, rank_all = 1 + 1 (above)
  EXPECT_GT(std::abs(want - dropped), 0.1);
}

TEST(SmoothAPOpWindow, WindowsCoveringThePoolAndNearlyEmptyWindowsMatchTheOracle) {
  for (uint64_t seed = 0; seed < 10; ++seed) {
    torch::manual_seed(seed);
    const int64_t M = 500;
    auto labels = torch::randint(-1, 3, {M}, torch::kLong);
    labels[0] = 0;
    // tau = 5 with unit scores: every pair is inside the window (dense stream).
    const auto covering = torch::randn({M, 3}, torch::kDouble);
    // tau = 0.001 with scores spread over 1e4: windows hold almost nothing.
    const auto sparse = torch::randn({M, 3}, torch::kDouble) * 1e4;
    for (const auto& [scores, tau] :
         {std::make_pair(covering, 5.0), std::make_pair(sparse, 1e-3)}) {
      auto x = scores.clone().requires_grad_(true);
      auto y = scores.clone().requires_grad_(true);
      const auto w = torch::randn({3}, torch::kDouble);
      const auto got = proxyloss::ops::smooth_ap(x, labels, tau);
      const auto want = oracle::op_ap(y, labels, tau);
      EXPECT_LE(max_abs_diff(got, want), kDoubleTol) << "tau " << tau;
      weighted_sum(got, w).backward();
      weighted_sum(want, w).backward();
      EXPECT_LE(max_abs_diff(x.grad(), y.grad()),
                kDoubleTol * std::max(1.0, max_abs(y.grad())))
          << "tau " << tau;
    }
  }
}
