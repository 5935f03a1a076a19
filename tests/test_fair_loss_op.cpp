// The FairLoss op (every implementation) against the oracle written from the
// formula, and its numerical behaviour at the extremes.
#include "support/fair_loss_oracle.h"
#include "support/kernel_paths.h"
#include "support/random_fair_batches.h"
#include "support/test_support.h"

#include <proxyloss/fair_loss_op.h>
#include "ops/cpu/kernel_selection.h"

#include <cmath>
#include <memory>

using test_support::max_abs;
using test_support::max_abs_diff;
using test_support::RandomFairBatch;

namespace {

class FairLossOp : public test_support::KernelPathTest {};

proxyloss::optional<torch::Tensor> weight_of(const oracle::FairLossParams& p) {
  return p.weight.defined() ? proxyloss::optional<torch::Tensor>(p.weight) : c10::nullopt;
}

torch::Tensor op_rows(const torch::Tensor& logits, const torch::Tensor& targets,
                      const oracle::FairLossParams& p) {
  return proxyloss::ops::fair_loss(logits, targets, weight_of(p), p.beta, p.k,
                                   p.ignore_index, p.label_smoothing);
}

struct Result {
  torch::Tensor rows; // [N]
  torch::Tensor grad; // [N, C], of sum_i g_i rows_i
};

// The upstream gradient g differs per row so that backward's scaling by it
// is checked too.
Result run_op(const RandomFairBatch& b, const torch::Tensor& g) {
  auto logits = b.logits.clone().requires_grad_(true);
  const auto rows = op_rows(logits, b.targets, b.params);
  (rows * g.to(rows.scalar_type())).sum().backward();
  return {rows.detach(), logits.grad()};
}

// The oracle in float64 on the same (possibly float32-rounded) logits.
Result run_oracle(const RandomFairBatch& b, const torch::Tensor& g) {
  auto logits = b.logits.to(torch::kDouble).clone().requires_grad_(true);
  auto params = b.params;
  if (params.weight.defined()) {
    params.weight = params.weight.to(torch::kDouble);
  }
  const auto rows = oracle::fair_loss_rows(logits, b.targets, params);
  (rows * g).sum().backward();
  return {rows.detach(), logits.grad()};
}

// Tolerances, relative to the size of what is compared (the loss row, the
// largest gradient entry), at least 1. Both are compared with the float64
// oracle evaluated on the very same logits.
// float64: every step is backward stable (sums of positive terms, exps of
// arguments <= 0, log1p of the non-maximal terms, expm1 for the target
// entry), so errors stay a small multiple of 1e-16 of the magnitudes
// involved (logits up to 1e3, beta x up to 1e7 before exp underflows).
// float32: the op rounds x = z - max, beta x and each exp to float (6e-8
// relative each) and sums in float blocks of at most 64 terms before
// double, so the log-sum-exps keep ~1e-6 relative precision; the per-row
// algebra is in double. Because the maxima are counted apart (log1p) the
// penalty's d = beta_lse / beta - x_y keeps that relative precision too, so
// k d does as well and the penalty needs no k-dependent allowance.
constexpr double kDoubleTol = 1e-10;
constexpr double kFloatTol = 1e-5;

double tolerance(const RandomFairBatch& b, double magnitude) {
  const double base = b.logits.scalar_type() == torch::kFloat ? kFloatTol : kDoubleTol;
  return base * std::max(1.0, magnitude);
}

void expect_matches_oracle(const RandomFairBatch& b) {
  const auto g = torch::rand({b.logits.size(0)}, torch::kDouble) + 0.5;
  const auto got = run_op(b, g);
  const auto want = run_oracle(b, g);
  EXPECT_EQ(got.rows.scalar_type(), b.logits.scalar_type());
  EXPECT_LE(max_abs_diff(got.rows, want.rows), tolerance(b, max_abs(want.rows)))
      << b.describe();
  EXPECT_LE(max_abs_diff(got.grad, want.grad), tolerance(b, max_abs(want.grad)))
      << b.describe();
}

} // namespace

TEST_P(FairLossOp, MatchesOracleOnRandomBatchesFloat64) {
  for (uint64_t seed = 0; seed < 300; ++seed) {
    expect_matches_oracle(test_support::random_fair_batch(seed, torch::kDouble));
  }
}

TEST_P(FairLossOp, MatchesOracleOnRandomBatchesFloat32) {
  for (uint64_t seed = 1000; seed < 1300; ++seed) {
    expect_matches_oracle(test_support::random_fair_batch(seed, torch::kFloat));
  }
}

TEST_P(FairLossOp, MatchesOracleOnLargerBatches) {
  for (uint64_t seed = 2000; seed < 2004; ++seed) {
    expect_matches_oracle(test_support::random_fair_batch(seed, torch::kFloat, 2000));
  }
}

TEST_P(FairLossOp, GradientMatchesCentralDifferencesInDouble) {
  for (uint64_t seed = 0; seed < 8; ++seed) {
    torch::manual_seed(seed);
    const int64_t N = 3 + seed % 3;
    const int64_t C = 2 + seed;
    oracle::FairLossParams p;
    p.beta = seed % 2 ? 3.0 : 0.7; // smooth enough for differences at eps = 1e-6
    p.k = seed % 3 == 0 ? 0.0 : 2.5;
    p.label_smoothing = seed % 4 < 2 ? 0.0 : 0.2;
    p.weight = seed % 2 ? torch::rand({C}, torch::kDouble) + 0.5 : torch::Tensor();
    p.ignore_index = -100;
    const auto logits = torch::randn({N, C}, torch::kDouble) * 2;
    auto targets = torch::randint(0, C, {N}, torch::kLong);
    targets[N - 1] = p.ignore_index;
    const auto g = torch::rand({N}, torch::kDouble) + 0.5;
    auto f = [&](const torch::Tensor& z) {
      torch::NoGradGuard no_grad;
      return (op_rows(z, targets, p) * g).sum().item<double>();
    };
    auto x = logits.clone().requires_grad_(true);
    (op_rows(x, targets, p) * g).sum().backward();
    const auto analytic = x.grad();
    const double eps = 1e-6;
    for (int64_t i = 0; i < N; ++i) {
      for (int64_t c = 0; c < C; ++c) {
        auto plus = logits.clone();
        auto minus = logits.clone();
        plus[i][c] += eps;
        minus[i][c] -= eps;
        const double numeric = (f(plus) - f(minus)) / (2 * eps);
        EXPECT_NEAR(analytic[i][c].item<double>(), numeric, 1e-7)
            << "seed " << seed << " row " << i << " class " << c;
      }
    }
  }
}

TEST_P(FairLossOp, IgnoredRowsGiveZeroLossAndZeroGradient) {
  auto logits = torch::randn({5, 4}, torch::kDouble).requires_grad_(true);
  const auto targets = torch::tensor({1, -100, 3, -100, 0}, torch::kLong);
  oracle::FairLossParams p;
  const auto rows = op_rows(logits, targets, p);
  rows.sum().backward();
  for (const int64_t i : {1, 3}) {
    EXPECT_EQ(rows[i].item<double>(), 0.0);
    EXPECT_EQ(logits.grad()[i].abs().sum().item<double>(), 0.0);
  }
  for (const int64_t i : {0, 2, 4}) {
    EXPECT_GT(rows[i].item<double>(), 0.0);
    EXPECT_GT(logits.grad()[i].abs().sum().item<double>(), 0.0);
  }
}

TEST_P(FairLossOp, IgnoreIndexInsideTheClassRangeIgnoresThatClass) {
  const auto logits = torch::randn({4, 3}, torch::kDouble);
  const auto targets = torch::tensor({0, 1, 2, 1}, torch::kLong);
  oracle::FairLossParams p;
  p.ignore_index = 1;
  const auto rows = op_rows(logits, targets, p);
  EXPECT_EQ(rows[1].item<double>(), 0.0);
  EXPECT_EQ(rows[3].item<double>(), 0.0);
  EXPECT_LE(max_abs_diff(rows, oracle::fair_loss_rows(logits, targets, p)), kDoubleTol);
}

// beta = 1e4 and logits of size 1e3 put beta z at 1e7, far past exp's range
// in float32 (88): every exponent must stay <= 0.
TEST_P(FairLossOp, StableForLargeBetaAndLargeLogitsInFloat32) {
  torch::manual_seed(3);
  const int64_t N = 64;
  const int64_t C = 100;
  for (const double beta : {1e3, 1e4}) {
    for (const double k : {1.0, 1e3, 1e4}) {
      oracle::FairLossParams p;
      p.beta = beta;
      p.k = k;
      p.label_smoothing = 0.1;
      p.weight = torch::rand({C}) + 0.5;
      const auto logits =
          (torch::randn({N, C}) * 1e3).clamp(-1e3, 1e3).requires_grad_(true);
      auto targets = torch::randint(0, C, {N}, torch::kLong);
      // Half the rows have their target as the argmax (penalty ~0), half not
      // (penalty ~1/C): both ends of the sigmoid.
      const auto argmax = std::get<1>(logits.detach().max(1));
      targets.narrow(0, 0, N / 2).copy_(argmax.narrow(0, 0, N / 2));
      const auto rows = op_rows(logits, targets, p);
      rows.sum().backward();
      EXPECT_TRUE(torch::isfinite(rows).all().item<bool>()) << beta << " " << k;
      EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>()) << beta << " " << k;
      RandomFairBatch b{logits.detach(), targets, p, 1e3};
      expect_matches_oracle(b);
    }
  }
}

// Up to float32 rounding of the logits themselves, large offsets change
// nothing: the op only sees differences z - max.
TEST_P(FairLossOp, InvariantToAConstantShiftOfTheLogits) {
  torch::manual_seed(4);
  const auto logits = torch::randn({16, 10}, torch::kDouble);
  const auto targets = torch::randint(0, 10, {16}, torch::kLong);
  oracle::FairLossParams p;
  p.label_smoothing = 0.3;
  EXPECT_LE(max_abs_diff(op_rows(logits, targets, p), op_rows(logits + 1e3, targets, p)),
            1e-9);
}

TEST_P(FairLossOp, NonFiniteLogitsMakeOnlyTheirRowNaN) {
  for (const double bad : {std::nan(""), double(INFINITY)}) {
    auto logits = torch::randn({4, 5}, torch::kFloat);
    logits[2][3] = bad;
    logits = logits.requires_grad_(true);
    const auto targets = torch::tensor({0, 1, 2, 3}, torch::kLong);
    const auto rows = op_rows(logits, targets, oracle::FairLossParams());
    EXPECT_TRUE(std::isnan(rows[2].item<float>())) << bad;
    for (const int64_t i : {0, 1, 3}) {
      EXPECT_TRUE(std::isfinite(rows[i].item<float>())) << bad;
    }
    rows.sum().backward();
    EXPECT_TRUE(torch::isnan(logits.grad()[2]).all().item<bool>());
    EXPECT_TRUE(torch::isfinite(logits.grad().narrow(0, 0, 2)).all().item<bool>());
  }
}

TEST_P(FairLossOp, NonContiguousLogitsAreAccepted) {
  const auto base = torch::randn({7, 12}, torch::kDouble);
  const auto logits = base.t(); // [12, 7], not contiguous
  const auto targets = torch::randint(0, 7, {12}, torch::kLong);
  oracle::FairLossParams p;
  p.weight = torch::rand({14}, torch::kDouble).slice(0, 0, 14, 2); // strided [7]
  EXPECT_LE(max_abs_diff(op_rows(logits, targets, p),
                         oracle::fair_loss_rows(logits, targets, p)),
            kDoubleTol);
}

TEST_P(FairLossOp, EmptyBatchGivesEmptyLoss) {
  auto logits = torch::zeros({0, 3}).requires_grad_(true);
  const auto rows =
      op_rows(logits, torch::zeros({0}, torch::kLong), oracle::FairLossParams());
  EXPECT_EQ(rows.sizes(), torch::IntArrayRef({0}));
  rows.sum().backward();
  EXPECT_EQ(logits.grad().sizes(), logits.sizes());
}

PROXYLOSS_INSTANTIATE_KERNEL_PATHS(FairLossOp);
