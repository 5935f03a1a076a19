// The ops behind PAUCAtBudgetLoss against dense oracles:
//   selection_quantiles against at::quantile (bitwise, every interpolation);
//   pauc_pairwise against the P x B formula summed in long double, in every
//   regime of its sorted kernel (all pairs in the window, all in one tail,
//   at the tail bound, ties, huge offsets), gradients against the analytic
//   formula and central differences in float64;
//   pauc_at_budget_loss against the reference's recipe written with ATen
//   (at::quantile, dense sigmoids) on batches with weights and iid masks.
#include "ops/pauc_pairwise.h"
#include "support/kernel_paths.h"
#include "support/test_support.h"

#include <proxyloss/ops.h>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace {

using test_support::max_abs_diff;

// --- selection_quantiles ---------------------------------------------------------

class SelectionQuantiles : public test_support::KernelPathTest {};

TEST_P(SelectionQuantiles, EqualTorchQuantileBitwise) {
  torch::manual_seed(11);
  const std::vector<std::string> modes = {"linear", "lower", "higher", "nearest",
                                          "midpoint"};
  for (const auto dtype : {torch::kFloat, torch::kDouble}) {
    for (const int64_t n : {1, 2, 3, 7, 200, 201, 500, 533, 4096}) {
      // Ties: rounded scores repeat values.
      auto values = (torch::randn({n}, dtype) * 4).round() / 4 +
                    torch::randn({n}, dtype) * (n % 2 == 0 ? 0 : 1);
      const auto levels =
          torch::tensor({1.0 - 0.0, 1.0 - 0.005, 0.75, 0.25, 0.5, 0.0, 1.0 - 0.013, 0.9},
                        torch::kDouble)
              .to(dtype);
      for (const auto& mode : modes) {
        const auto got = proxyloss::ops::selection_quantiles(values, levels, mode);
        const auto want = torch::quantile(values, levels, c10::nullopt, false, mode);
        EXPECT_TRUE(torch::equal(got, want))
            << "n=" << n << " mode=" << mode << " dtype=" << dtype << "\n"
            << got << "\n"
            << want;
      }
    }
  }
}

TEST_P(SelectionQuantiles, NaNAndEmptyGiveNaN) {
  const auto levels = torch::tensor({0.5, 0.9});
  auto values = torch::randn({10});
  values[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(proxyloss::ops::selection_quantiles(values, levels, "linear")
                  .isnan()
                  .all()
                  .item<bool>());
  EXPECT_TRUE(proxyloss::ops::selection_quantiles(torch::empty({0}), levels, "higher")
                  .isnan()
                  .all()
                  .item<bool>());
}

TEST_P(SelectionQuantiles, RefusesBadLevels) {
  const auto values = torch::randn({10});
  EXPECT_TRUE(test_support::throws_with(
      [&] {
        proxyloss::ops::selection_quantiles(values, torch::tensor({1.5}), "linear");
      },
      {"levels must be in [0, 1]"}));
  EXPECT_TRUE(test_support::throws_with(
      [&] {
        proxyloss::ops::selection_quantiles(values, torch::tensor({0.5}, torch::kDouble),
                                            "linear");
      },
      {"levels must be 1-D of the values' dtype"}));
}

PROXYLOSS_INSTANTIATE_KERNEL_PATHS(SelectionQuantiles);

// --- pauc_pairwise ----------------------------------------------------------------

struct PairwiseOracle {
  double pauc;
  std::vector<double> per_positive;
  std::vector<double> grad_p; // d pauc / d p_i
  std::vector<double> grad_b; // d pauc / d b_j
};

// The formula of ops/pauc_pairwise.h pair by pair, in long double.
PairwiseOracle pairwise_oracle(const torch::Tensor& p_in, const torch::Tensor& b_in,
                               double tau, const torch::Tensor& w_in) {
  const auto p = p_in.to(torch::kDouble).contiguous();
  const auto b = b_in.to(torch::kDouble).contiguous();
  const int64_t P = p.size(0);
  const int64_t B = b.size(0);
  std::vector<long double> w(P, 1.0L);
  if (w_in.defined()) {
    const auto wd = w_in.to(torch::kDouble).contiguous();
    for (int64_t i = 0; i < P; ++i) {
      w[i] = wd.data_ptr<double>()[i];
    }
  }
  long double mass = 0;
  for (const auto wi : w) {
    mass += wi;
  }
  PairwiseOracle out;
  out.per_positive.assign(P, 0);
  out.grad_p.assign(P, 0);
  out.grad_b.assign(B, 0);
  std::vector<long double> grad_b(B, 0);
  long double numerator = 0;
  for (int64_t i = 0; i < P; ++i) {
    long double S = 0;
    long double D = 0;
    for (int64_t j = 0; j < B; ++j) {
      const long double z =
          (static_cast<long double>(p.data_ptr<double>()[i]) - b.data_ptr<double>()[j]) /
          tau;
      const long double e = std::exp(-std::fabs(z));
      S += z >= 0 ? 1 / (1 + e) : e / (1 + e);
      const long double d = e / ((1 + e) * (1 + e));
      D += d;
      grad_b[j] -= w[i] * d;
    }
    numerator += w[i] * S;
    out.per_positive[i] = static_cast<double>(S / B);
    out.grad_p[i] = static_cast<double>(w[i] * D / (B * mass * tau));
  }
  for (int64_t j = 0; j < B; ++j) {
    out.grad_b[j] = static_cast<double>(grad_b[j] / (B * mass * tau));
  }
  out.pauc = static_cast<double>(numerator / (B * mass));
  return out;
}

torch::Tensor as_tensor(const std::vector<double>& values) {
  return torch::tensor(values, torch::kDouble);
}

// Largest |got - want| / max(|want|, floor) over the entries, in double;
// `floor` is the smallest magnitude the result's dtype holds to full
// relative precision (its smallest normal number): below it a float32
// result is denormal or 0, however exact the kernel.
double max_relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  const auto g = got.to(torch::kDouble);
  const auto w = want.to(torch::kDouble);
  const double floor = got.scalar_type() == torch::kFloat
                           ? std::numeric_limits<float>::min()
                           : std::numeric_limits<double>::min();
  return ((g - w).abs() / w.abs().clamp_min(floor)).max().item<double>();
}

class PaucPairwise : public test_support::KernelPathTest {
 protected:
  // Compares value, per_positive and both gradients with the oracle, each
  // relatively within `rtol`.
  void expect_matches_oracle(const torch::Tensor& p_in, const torch::Tensor& b_in,
                             double tau, const torch::Tensor& w, double rtol,
                             const std::string& what) {
    // The conditioning of exp (ops/pauc_pairwise.h): 4 (1 + |z|max) u_double
    // on top of the dtype's rounding, |z| capped where e^-|z| underflows.
    const double z_max = std::min(
        750.0,
        (p_in.to(torch::kDouble).max() - b_in.to(torch::kDouble).min())
                .abs()
                .max(
                    (p_in.to(torch::kDouble).min() - b_in.to(torch::kDouble).max()).abs())
                .item<double>() /
            tau);
    rtol += 4 * (1 + z_max) * std::numeric_limits<double>::epsilon() / 2;
    auto p = p_in.clone().requires_grad_(true);
    auto b = b_in.clone().requires_grad_(true);
    torch::Tensor pauc;
    torch::Tensor per_positive;
    std::tie(pauc, per_positive) = proxyloss::ops::pauc_pairwise(
        p, b, tau, w.defined() ? c10::optional<torch::Tensor>(w) : c10::nullopt);
    pauc.backward();
    const auto oracle = pairwise_oracle(p_in, b_in, tau, w);
    EXPECT_LE(
        max_relative_error(pauc.detach(), torch::tensor(oracle.pauc, torch::kDouble)),
        rtol)
        << what;
    EXPECT_LE(max_relative_error(per_positive, as_tensor(oracle.per_positive)), rtol)
        << what;
    EXPECT_LE(max_relative_error(p.grad(), as_tensor(oracle.grad_p)), rtol) << what;
    EXPECT_LE(max_relative_error(b.grad(), as_tensor(oracle.grad_b)), rtol) << what;
  }
};

// Unit roundoff of the dtype, the bound the kernel's header proves (plus the
// accumulation's and the final rounding's few ulps).
double tolerance(torch::Dtype dtype) {
  return dtype == torch::kFloat ? 4e-7 : 2e-14;
}

TEST_P(PaucPairwise, MatchesDenseOracleInEveryRegime) {
  torch::manual_seed(3);
  for (const auto dtype : {torch::kFloat, torch::kDouble}) {
    for (const double tau : {1e-4, 1e-2, 0.1, 1.0, 100.0}) {
      for (const bool weighted : {false, true}) {
        const auto p = torch::randn({37}, dtype) + 1;
        const auto b = torch::randn({23}, dtype);
        const auto w = weighted ? torch::rand({37}, dtype) * 2 : torch::Tensor();
        expect_matches_oracle(p, b, tau, w, tolerance(dtype),
                              "tau=" + std::to_string(tau));
      }
    }
  }
}

TEST_P(PaucPairwise, ExactAtTheTailBound) {
  // Pairs at z = +-H (1 +- 1e-9) and ties: each pair sits just inside or just
  // outside a tail, where the kernel switches from the exact sigmoid to its
  // expansion; the error bound 2 e^-H < u must hold on both sides.
  for (const auto dtype : {torch::kFloat, torch::kDouble}) {
    const double H = proxyloss::ops_impl::pauc_pairwise_tail_bound(dtype);
    const double tau = 0.25;
    std::vector<double> p_values;
    std::vector<double> b_values = {0.0, 0.0, 0.5, -0.5};
    for (const double side : {-1.0, 1.0}) {
      for (const double nudge : {1 - 1e-9, 1.0, 1 + 1e-9}) {
        p_values.push_back(side * H * tau * nudge);
      }
    }
    const auto p = torch::tensor(p_values, torch::kDouble).to(dtype);
    const auto b = torch::tensor(b_values, torch::kDouble).to(dtype);
    expect_matches_oracle(p, b, tau, torch::Tensor(), tolerance(dtype), "bound");
    // Every pair in one tail.
    expect_matches_oracle(p.abs() + 3 * H * tau, b, tau, torch::Tensor(),
                          tolerance(dtype), "high tail");
    expect_matches_oracle(-p.abs() - 3 * H * tau, b, tau, torch::Tensor(),
                          tolerance(dtype), "low tail");
  }
}

TEST_P(PaucPairwise, HugeOffsetsAndTies) {
  torch::manual_seed(5);
  const auto p = torch::randint(0, 4, {50}, torch::kDouble) * 0.01 + 1e6;
  const auto b = torch::randint(0, 4, {40}, torch::kDouble) * 0.01 + 1e6 - 0.01;
  expect_matches_oracle(p, b, 0.003, torch::rand({50}, torch::kDouble), 2e-14, "offsets");
}

TEST_P(PaucPairwise, GradientsMatchCentralDifferences) {
  torch::manual_seed(7);
  const auto p = torch::randn({6}, torch::kDouble);
  const auto b = torch::randn({5}, torch::kDouble);
  const auto w = torch::rand({6}, torch::kDouble);
  const double tau = 0.3;
  const auto value = [&](const torch::Tensor& pp, const torch::Tensor& bb) {
    return std::get<0>(proxyloss::ops::pauc_pairwise(pp, bb, tau, w)).item<double>();
  };
  auto pg = p.clone().requires_grad_(true);
  auto bg = b.clone().requires_grad_(true);
  std::get<0>(proxyloss::ops::pauc_pairwise(pg, bg, tau, w)).backward();
  const double h = 1e-6;
  for (int64_t i = 0; i < 6; ++i) {
    auto up = p.clone();
    auto down = p.clone();
    up[i] += h;
    down[i] -= h;
    EXPECT_NEAR(pg.grad()[i].item<double>(), (value(up, b) - value(down, b)) / (2 * h),
                1e-8);
  }
  for (int64_t j = 0; j < 5; ++j) {
    auto up = b.clone();
    auto down = b.clone();
    up[j] += h;
    down[j] -= h;
    EXPECT_NEAR(bg.grad()[j].item<double>(), (value(p, up) - value(p, down)) / (2 * h),
                1e-8);
  }
}

TEST_P(PaucPairwise, UndefinedCasesAreNaN) {
  const auto p = torch::randn({4});
  const auto b = torch::randn({3});
  EXPECT_TRUE(
      std::isnan(std::get<0>(proxyloss::ops::pauc_pairwise(p, torch::empty({0}), 0.1))
                     .item<float>()));
  EXPECT_TRUE(
      std::isnan(std::get<0>(proxyloss::ops::pauc_pairwise(p, b, 0.1, torch::zeros({4})))
                     .item<float>()));
  auto with_nan = b.clone();
  with_nan[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(
      std::get<0>(proxyloss::ops::pauc_pairwise(p, with_nan, 0.1)).item<float>()));
  EXPECT_TRUE(test_support::throws_with([&] { proxyloss::ops::pauc_pairwise(p, b, 0.0); },
                                        {"tau must be finite and > 0"}));
  EXPECT_TRUE(test_support::throws_with(
      [&] { proxyloss::ops::pauc_pairwise(p, b.to(torch::kDouble), 0.1); },
      {"negatives must have the dtype of positives"}));
}

INSTANTIATE_TEST_SUITE_P(Paths, PaucPairwise,
                         ::testing::Values(test_support::KernelPath::Fused,
                                           test_support::KernelPath::Generic),
                         test_support::kernel_path_name);

// --- pauc_at_budget_loss against the recipe written with ATen ----------------------

struct PaucCase {
  std::string surrogate;
  int64_t n_knots;
  std::string tau_scale;
  std::string budget_basis;
  std::string interpolation;
};

// One class's 1 - pAUC, from the reference's steps with torch::quantile and
// dense sigmoids (s: the class's scores, pos / iid masks, w: weights or
// undefined). Assumes the class is valid.
torch::Tensor class_loss_oracle(const torch::Tensor& s, const torch::Tensor& pos,
                                const torch::Tensor& iid, const torch::Tensor& w,
                                double alpha, double beta, double temperature,
                                const PaucCase& c) {
  const auto dtype = s.scalar_type();
  const auto neg = pos.logical_not();
  const auto ref = s.detach().masked_select(
      c.budget_basis == "population" ? iid : neg.logical_and(iid));
  const auto edges = torch::tensor({1.0 - alpha, 1.0 - beta}, torch::kDouble).to(dtype);
  const auto q = [&](const torch::Tensor& levels) {
    return torch::quantile(ref, levels, c10::nullopt, false, c.interpolation);
  };
  const auto e = q(edges);
  const auto scale = c.tau_scale == "band"
                         ? e[0] - e[1]
                         : q(torch::tensor({0.75}, torch::kDouble).to(dtype))[0] -
                               q(torch::tensor({0.25}, torch::kDouble).to(dtype))[0];
  const auto tau = scale * temperature;
  const auto p = s.masked_select(pos);
  const auto wp = w.defined() ? w.masked_select(pos) : torch::ones_like(p);
  if (c.surrogate == "pairwise") {
    const auto band =
        neg.logical_and(s.detach().ge(e[1])).logical_and(s.detach().le(e[0]));
    const auto b = s.masked_select(band);
    const auto z = torch::sigmoid((p.unsqueeze(1) - b.unsqueeze(0)) / tau);
    return 1 - (wp.unsqueeze(1) * z).sum() / (wp.sum() * b.size(0));
  }
  auto levels = 1 - torch::linspace(alpha, beta, c.n_knots, dtype);
  levels[0] = edges[0];
  levels[c.n_knots - 1] = edges[1];
  const auto t = q(levels);
  const auto z = torch::sigmoid((p.unsqueeze(1) - t.unsqueeze(0)) / tau);
  const auto tpr = (z * wp.unsqueeze(1)).sum(0) / wp.sum();
  auto omega = torch::ones({c.n_knots}, dtype);
  omega[0] = 0.5;
  omega[c.n_knots - 1] = 0.5;
  return 1 - (tpr * omega).sum() / static_cast<double>(c.n_knots - 1);
}

TEST(PaucAtBudgetLossOp, MatchesTheRecipeWithWeightsAndIidMasks) {
  torch::manual_seed(13);
  const std::vector<PaucCase> cases = {{"trapezoid", 2, "iqr", "fpr", "higher"},
                                       {"trapezoid", 5, "band", "population", "linear"},
                                       {"trapezoid", 3, "iqr", "fpr", "nearest"},
                                       {"pairwise", 2, "iqr", "fpr", "lower"},
                                       {"pairwise", 2, "band", "population", "midpoint"}};
  const double alpha = 0.02;
  const double beta = 0.3;
  const double temperature = 0.2;
  for (const auto dtype : {torch::kFloat, torch::kDouble}) {
    for (const auto& c : cases) {
      const int64_t N = 400;
      const int64_t C = 3;
      const auto logits = torch::randn({N, C}, dtype).requires_grad_(true);
      const auto targets = torch::randint(0, C, {N}, torch::kLong);
      const auto iid = torch::rand({N}).gt(0.2);
      const auto w = torch::rand({N}, dtype);
      const auto result = proxyloss::ops::pauc_at_budget_loss(
          logits, targets, c10::nullopt, c10::nullopt, C, alpha, beta, c.surrogate,
          c.n_knots, c.tau_scale, "pool", c.budget_basis, temperature, "none", -100,
          c.interpolation, c10::nullopt, w, c10::nullopt, iid, c10::nullopt);
      const auto loss = std::get<0>(result);
      ASSERT_TRUE(std::get<2>(result).all().item<bool>());
      std::vector<torch::Tensor> want;
      for (int64_t k = 0; k < C; ++k) {
        want.push_back(class_loss_oracle(logits.select(1, k), targets.eq(k), iid, w,
                                         alpha, beta, temperature, c));
      }
      const auto oracle = torch::stack(want);
      const double tol = dtype == torch::kFloat ? 2e-6 : 1e-13;
      EXPECT_LE(max_abs_diff(loss, oracle), tol) << c.surrogate << " " << c.tau_scale;
      const auto grad = torch::autograd::grad({loss.sum()}, {logits})[0];
      const auto grad_oracle = torch::autograd::grad({oracle.sum()}, {logits})[0];
      EXPECT_LE(max_abs_diff(grad, grad_oracle), tol * 10) << c.surrogate;
    }
  }
}

TEST(PaucAtBudgetLossOp, ValidityChainAndSentinels) {
  torch::manual_seed(17);
  const auto logits = torch::randn({60, 2});
  auto targets = torch::zeros({60}, torch::kLong);
  targets.narrow(0, 0, 10).fill_(1);
  // Class 0 has positives and negatives; make every negative of class 1 non-iid.
  const auto iid = targets.eq(0).logical_not();
  const auto result = proxyloss::ops::pauc_at_budget_loss(
      logits, targets, c10::nullopt, c10::nullopt, 2, 0.0, 0.2, "trapezoid", 2, "iqr",
      "pool", "fpr", 0.1, "none", -100, "higher", c10::nullopt, c10::nullopt,
      c10::nullopt, iid, c10::nullopt);
  const auto valid = std::get<2>(result);
  // Class 0: its negatives are the class-1 rows, all iid -> valid. Class 1:
  // its negatives are the class-0 rows, none iid -> invalid (check 1).
  EXPECT_TRUE(valid[0].item<bool>());
  EXPECT_FALSE(valid[1].item<bool>());
  EXPECT_TRUE(std::isnan(std::get<1>(result)[1].item<float>()));
  EXPECT_TRUE(std::isnan(std::get<4>(result)[1].item<float>()));
  EXPECT_EQ(std::get<7>(result)[1].item<int64_t>(), 0);
  EXPECT_FALSE(std::get<10>(result)[1].item<bool>());
  // Constant negatives: degenerate (scale 0), flagged.
  auto flat = torch::zeros({60, 1});
  flat.narrow(0, 0, 10).fill_(1);
  const auto binary = targets.clone();
  const auto degenerate = proxyloss::ops::pauc_at_budget_loss(
      flat, binary, c10::nullopt, c10::nullopt, 1, 0.0, 0.2, "pairwise", 2, "iqr", "pool",
      "fpr", 0.1, "mean", -100, "higher", c10::nullopt);
  EXPECT_TRUE(std::get<10>(degenerate)[0].item<bool>());
  EXPECT_FALSE(std::get<2>(degenerate)[0].item<bool>());
  EXPECT_EQ(std::get<9>(degenerate)[0].item<float>(), 0.0f);
  EXPECT_EQ(std::get<0>(degenerate).item<float>(), 0.0f);
}

TEST(PaucAtBudgetLossOp, RefusesBadOptions) {
  const auto logits = torch::randn({8, 1});
  const auto targets = torch::randint(0, 2, {8});
  const auto call = [&](double alpha, double beta, int64_t knots, const std::string& s,
                        const std::string& scale) {
    proxyloss::ops::pauc_at_budget_loss(logits, targets, c10::nullopt, c10::nullopt, 1,
                                        alpha, beta, s, knots, scale, "pool", "fpr", 0.1,
                                        "mean", -100, "higher", c10::nullopt);
  };
  EXPECT_TRUE(test_support::throws_with([&] { call(0.2, 0.2, 2, "trapezoid", "iqr"); },
                                        {"0 <= alpha < beta <= 1"}));
  EXPECT_TRUE(test_support::throws_with([&] { call(0.0, 0.2, 1, "trapezoid", "iqr"); },
                                        {"n_knots must be >= 2"}));
  EXPECT_TRUE(test_support::throws_with([&] { call(0.0, 0.2, 2, "hinge", "iqr"); },
                                        {"surrogate must be"}));
  EXPECT_TRUE(test_support::throws_with([&] { call(0.0, 0.2, 2, "pairwise", "std"); },
                                        {"tau_scale must be"}));
  EXPECT_TRUE(test_support::throws_with(
      [&] {
        proxyloss::ops::pauc_at_budget_loss(
            logits, targets, c10::nullopt, c10::nullopt, 1, 0.0, 0.2, "trapezoid", 2,
            "iqr", "pool", "fpr", 0.1, "mean", -100, "higher", c10::nullopt, c10::nullopt,
            c10::nullopt, torch::ones({7}), c10::nullopt);
      },
      {"iid_mask must have shape [N]"}));
}

} // namespace
