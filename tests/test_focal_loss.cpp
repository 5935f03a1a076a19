// SigmoidFocalLoss and SoftmaxFocalLoss: values recorded from the successor
// library (imbalanced_losses.focal_loss, torch 1.13), random inputs against
// the plain-formula oracle in tests/support/focal_oracle.h, central-difference
// gradients, one test per behaviour of the contract, and every bad option and
// input.
#include "support/focal_oracle.h"
#include "support/test_support.h"

#include <proxyloss/focal_loss.h>

#include <cmath>
#include <random>
#include <sstream>

using proxyloss::SigmoidFocalLoss;
using proxyloss::SigmoidFocalLossOptions;
using proxyloss::SoftmaxFocalLoss;
using proxyloss::SoftmaxFocalLossOptions;
using test_support::max_abs;
using test_support::max_abs_diff;
using test_support::throws_with;

namespace F = proxyloss::functional;

namespace {

constexpr double kTol = 1e-12;     // float64 against recorded values and oracle
constexpr double kFloatTol = 2e-6; // float32, relative to max(1, |value|)

torch::Tensor doubles(std::initializer_list<double> values) {
  return torch::tensor(std::vector<double>(values), torch::kDouble);
}

torch::Tensor labels(std::initializer_list<int64_t> values) {
  return torch::tensor(std::vector<int64_t>(values), torch::kLong);
}

// The inputs of the recorded cases (tests/support/focal_oracle.h's formulas
// and the successor were run on exactly these).
torch::Tensor sigmoid_logits() {
  return doubles({1.5, -0.5, 2.0, -3.0, 0.0, 0.25, -1.75, 4.0, -2.5, 3.5, 0.75, -0.125})
      .reshape({3, 4});
}
torch::Tensor sigmoid_targets() {
  return doubles({1, 0, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0}).reshape({3, 4});
}
torch::Tensor soft_targets() {
  return doubles({0.9, 0.1, 0.5, 0.0, 0.2, 1.0, 0.3, 0.7, 0.6, 0.8, 0.05, 0.4})
      .reshape({3, 4});
}
torch::Tensor softmax_logits() {
  return doubles({2.0, -1.0, 0.5,   0.0, -0.5,  1.5, 0.25, -2.0, 0.0, 0.0,  3.0, -1.0,
                  1.0, 2.0,  -0.75, 0.5, -1.25, 0.5, 0.5,  2.5,  3.0, -2.0, 1.0, 0.25})
      .reshape({6, 4});
}
torch::Tensor softmax_targets() {
  return labels({0, 1, -100, 3, 0, 2});
}
torch::Tensor recorded_alpha() {
  return doubles({0.25, 0.5, 0.75, 1.0});
}

// Reduces an unreduced softmax oracle the way the contract says.
double reduce_softmax(const torch::Tensor& per_row, const torch::Tensor& targets,
                      proxyloss::FocalReduction reduction, int64_t ignore_index,
                      int64_t background_class) {
  const double sum = per_row.sum().item<double>();
  const auto valid = targets.ne(ignore_index);
  switch (reduction) {
    case proxyloss::FocalReduction::Sum:
      return sum;
    case proxyloss::FocalReduction::Mean:
      return sum / std::max<int64_t>(1, valid.sum().item<int64_t>());
    case proxyloss::FocalReduction::MeanPositive:
      return sum /
             std::max<int64_t>(
                 1,
                 valid.logical_and(targets.ne(background_class)).sum().item<int64_t>());
    default:
      ADD_FAILURE() << "reduce_softmax: none is not a scalar";
      return 0;
  }
}

// Central differences of a scalar function of a double tensor.
template <typename Fn>
torch::Tensor numeric_gradient(Fn&& fn, const torch::Tensor& x, double h = 1e-6) {
  auto value = [&](const torch::Tensor& v) -> double {
    const torch::Tensor out = fn(v);
    return out.item<double>();
  };
  auto grad = torch::zeros_like(x);
  auto flat_x = x.detach().clone();
  auto flat_g = grad.view({-1});
  auto view = flat_x.view({-1});
  for (int64_t i = 0; i < view.numel(); ++i) {
    const double saved = view[i].item<double>();
    view[i] = saved + h;
    const double up = value(flat_x);
    view[i] = saved - h;
    const double down = value(flat_x);
    view[i] = saved;
    flat_g[i] = (up - down) / (2 * h);
  }
  return grad;
}

template <typename Fn>
torch::Tensor autograd_gradient(Fn&& fn, const torch::Tensor& x) {
  const auto leaf = x.detach().clone().requires_grad_(true);
  fn(leaf).backward();
  return leaf.grad();
}

} // namespace

// =================================================================================
// SigmoidFocalLoss
// =================================================================================

TEST(SigmoidFocalLoss, DefaultOptionsFollowTheSuccessor) {
  const SigmoidFocalLossOptions options;
  EXPECT_EQ(options.alpha(), 0.25);
  EXPECT_EQ(options.gamma(), 2.0);
  EXPECT_EQ(proxyloss::reduction_kind(options.reduction()), proxyloss::Reduction::Mean);
}

TEST(SigmoidFocalLoss, IsDefaultConstructible) {
  SigmoidFocalLoss loss;
  const auto value = loss->forward(sigmoid_logits(), sigmoid_targets());
  EXPECT_NEAR(value.item<double>(), 0.10510796740283042, kTol);
}

TEST(SigmoidFocalLoss, MatchesSuccessorOnRecordedCases) {
  const auto x = sigmoid_logits();
  const auto t = sigmoid_targets();
  SigmoidFocalLoss none(
      SigmoidFocalLossOptions().alpha(0.25).gamma(2).reduction(torch::kNone));
  EXPECT_LE(
      max_abs_diff(
          none->forward(x, t),
          doubles({0.0016757117316439148, 0.05068011788812772, 0.0004508907088100952,
                   8.196249337274787e-05, 0.12996509635498973, 0.027600372816213796,
                   0.002633841433815513, 1.4678924304673125e-06, 0.5506175244099285,
                   6.3904409533568826e-06, 0.39331505270845846, 0.10426717995522089})
              .reshape({3, 4})),
      kTol);
  SigmoidFocalLoss sum(
      SigmoidFocalLossOptions().alpha(0.25).gamma(2).reduction(torch::kSum));
  EXPECT_NEAR(sum->forward(x, t).item<double>(), 1.261295608833965, kTol);

  SigmoidFocalLoss no_alpha(
      SigmoidFocalLossOptions().alpha(-1).gamma(0.5).reduction(torch::kNone));
  EXPECT_LE(max_abs_diff(
                no_alpha->forward(x, t),
                doubles({0.08602623152991618, 0.2912934651463975, 0.04382288099120449,
                         0.010581101849395938, 0.4901290717342736, 0.3810889343596694,
                         0.061649289194470686, 0.0024341354089101644, 2.4791458948504337,
                         0.005093514085036302, 0.9369215304095099, 0.4331297203599161})
                    .reshape({3, 4})),
            kTol);

  SigmoidFocalLoss float_sum(
      SigmoidFocalLossOptions().alpha(0.75).gamma(1.5).reduction(torch::kSum));
  const auto f = float_sum->forward(x.to(torch::kFloat), t.to(torch::kFloat));
  EXPECT_EQ(f.scalar_type(), torch::kFloat);
  EXPECT_NEAR(f.item<double>(), 2.160295248031616, kFloatTol * 2.16);

  EXPECT_LE(max_abs_diff(
                none->forward(x, soft_targets()),
                doubles({0.0063767477726568485, 0.059294652481081254, 0.14086600138037159,
                         8.196249337274787e-05, 0.11263641684099113, 0.027600372816213796,
                         0.05305205588999935, 0.04598196870881953, 0.24300833511160497,
                         0.01209232014684381, 0.3485201405014895, 0.09152861076610877})
                    .reshape({3, 4})),
            kTol);
}

TEST(SigmoidFocalLoss, GradientMatchesSuccessorOnRecordedCase) {
  SigmoidFocalLoss loss;
  const auto grad = autograd_gradient(
      [&](const torch::Tensor& x) { return loss->forward(x, sigmoid_targets()); },
      sigmoid_logits());
  EXPECT_LE(max_abs_diff(grad, doubles({-0.0003548146921507485, 0.00862106233443215,
                                        -0.00010147792073734961, 1.9679490405517538e-05,
                                        0.018642924696249147, -0.004334507898434674,
                                        0.0005767906690533505, -3.6146940044870333e-07,
                                        -0.02340423069905616, -1.558546939006919e-06,
                                        0.04061152032773774, 0.015670259434146586})
                                   .reshape({3, 4})),
            kTol);
}

TEST(SigmoidFocalLoss, MatchesOracleOnRandomInputs) {
  std::mt19937_64 rng(7);
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  const std::vector<double> gammas{0, 0.5, 1, 2, 3.7};
  const std::vector<double> alphas{-1, 0, 0.25, 0.8, 1};
  for (int trial = 0; trial < 60; ++trial) {
    torch::manual_seed(trial);
    const bool is_double = trial % 2 == 0;
    const auto dtype = is_double ? torch::kDouble : torch::kFloat;
    const std::vector<int64_t> shape =
        pick(0, 1) ? std::vector<int64_t>{pick(1, 20)}
                   : std::vector<int64_t>{pick(1, 6), pick(1, 5), pick(1, 3)};
    const auto x = (torch::randn(shape, torch::kDouble) * 4).to(dtype);
    auto t = torch::randint(0, 2, shape, torch::kDouble);
    if (pick(0, 3) == 0) {
      t = torch::rand(shape, torch::kDouble); // soft labels
    }
    t = t.to(dtype);
    const double gamma = gammas[pick(0, 4)];
    const double alpha = alphas[pick(0, 4)];
    const auto want = oracle::sigmoid_focal(x, t, alpha, gamma);
    std::ostringstream where;
    where << "trial " << trial << " gamma=" << gamma << " alpha=" << alpha
          << (is_double ? " double" : " float");
    const double tol = is_double ? kTol : kFloatTol;
    auto options = SigmoidFocalLossOptions().alpha(alpha).gamma(gamma);
    const auto none = F::sigmoid_focal_loss(x, t, options.reduction(torch::kNone));
    EXPECT_EQ(none.scalar_type(), dtype) << where.str();
    EXPECT_LE(max_abs_diff(none, want), tol * std::max(1.0, max_abs(want)))
        << where.str();
    const double sum = want.sum().item<double>();
    EXPECT_NEAR(
        F::sigmoid_focal_loss(x, t, options.reduction(torch::kSum)).item<double>(), sum,
        tol * std::max(1.0, std::abs(sum)))
        << where.str();
    const double mean = want.mean().item<double>();
    EXPECT_NEAR(
        F::sigmoid_focal_loss(x, t, options.reduction(torch::kMean)).item<double>(), mean,
        tol * std::max(1.0, std::abs(mean)))
        << where.str();
  }
}

TEST(SigmoidFocalLoss, GradientsMatchCentralDifferences) {
  torch::manual_seed(3);
  const auto x = torch::randn({5, 3}, torch::kDouble) * 3;
  const auto hard = torch::randint(0, 2, {5, 3}, torch::kDouble);
  const auto soft = torch::rand({5, 3}, torch::kDouble);
  for (const double gamma : {0.0, 0.5, 1.0, 2.0}) {
    for (const double alpha : {-1.0, 0.25}) {
      for (const auto& t : {hard, soft}) {
        SigmoidFocalLoss loss(
            SigmoidFocalLossOptions().alpha(alpha).gamma(gamma).reduction(torch::kSum));
        const auto weights = torch::rand({5, 3}, torch::kDouble);
        SigmoidFocalLoss none(
            SigmoidFocalLossOptions().alpha(alpha).gamma(gamma).reduction(torch::kNone));
        auto fn = [&](const torch::Tensor& v) {
          return (none->forward(v, t) * weights).sum();
        };
        EXPECT_LE(max_abs_diff(autograd_gradient(fn, x), numeric_gradient(fn, x)), 1e-8)
            << "gamma=" << gamma << " alpha=" << alpha;
        auto fn_sum = [&](const torch::Tensor& v) { return loss->forward(v, t); };
        EXPECT_LE(max_abs_diff(autograd_gradient(fn_sum, x), numeric_gradient(fn_sum, x)),
                  1e-8);
      }
    }
  }
}

TEST(SigmoidFocalLoss, NegativeAlphaDisablesAlphaWeighting) {
  const auto x = sigmoid_logits();
  const auto t = sigmoid_targets();
  auto none = [&](double alpha) {
    return F::sigmoid_focal_loss(
        x, t, SigmoidFocalLossOptions().alpha(alpha).gamma(2).reduction(torch::kNone));
  };
  const auto disabled = none(-1);
  EXPECT_TRUE(torch::equal(none(-0.5), disabled));
  EXPECT_TRUE(torch::equal(none(-std::numeric_limits<double>::infinity()), disabled));
  EXPECT_LE(max_abs_diff(disabled, oracle::sigmoid_focal(x, t, -1, 2)), kTol);
  // alpha in [0, 1] weighs positives by alpha and negatives by 1 - alpha.
  const auto weights =
      torch::where(t.eq(1), torch::full_like(t, 0.25), torch::full_like(t, 0.75));
  EXPECT_LE(max_abs_diff(none(0.25), disabled * weights), kTol);
}

TEST(SigmoidFocalLoss, GammaZeroEqualsBinaryCrossEntropy) {
  torch::manual_seed(4);
  const auto x = torch::randn({7, 3}, torch::kDouble) * 5;
  const auto t = torch::randint(0, 2, {7, 3}, torch::kDouble);
  const auto bce = torch::nn::functional::binary_cross_entropy_with_logits(
      x, t,
      torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().reduction(
          torch::kNone));
  const auto got = F::sigmoid_focal_loss(
      x, t, SigmoidFocalLossOptions().alpha(-1).gamma(0).reduction(torch::kNone));
  EXPECT_LE(max_abs_diff(got, bce), kTol);
  const auto mean =
      F::sigmoid_focal_loss(x, t, SigmoidFocalLossOptions().alpha(-1).gamma(0));
  EXPECT_NEAR(mean.item<double>(), bce.mean().item<double>(), kTol);
}

TEST(SigmoidFocalLoss, ReductionNoneKeepsTheShapeOfLogits) {
  const auto x = torch::randn({2, 3, 4}, torch::kDouble);
  const auto t = torch::randint(0, 2, {2, 3, 4}, torch::kDouble);
  SigmoidFocalLoss loss(SigmoidFocalLossOptions().reduction(torch::kNone));
  const auto none = loss->forward(x, t);
  EXPECT_EQ(none.sizes(), x.sizes());
  EXPECT_LE(max_abs_diff(none, oracle::sigmoid_focal(x, t, 0.25, 2)), kTol);
}

TEST(SigmoidFocalLoss, ReductionSumAndMeanAreOverAllElements) {
  torch::manual_seed(5);
  const auto x = torch::randn({4, 5}, torch::kDouble);
  const auto t = torch::randint(0, 2, {4, 5}, torch::kDouble);
  const auto none =
      F::sigmoid_focal_loss(x, t, SigmoidFocalLossOptions().reduction(torch::kNone));
  const auto sum =
      F::sigmoid_focal_loss(x, t, SigmoidFocalLossOptions().reduction(torch::kSum));
  const auto mean =
      F::sigmoid_focal_loss(x, t, SigmoidFocalLossOptions().reduction(torch::kMean));
  EXPECT_EQ(sum.dim(), 0);
  EXPECT_EQ(mean.dim(), 0);
  EXPECT_NEAR(sum.item<double>(), none.sum().item<double>(), kTol);
  EXPECT_NEAR(mean.item<double>(), none.sum().item<double>() / 20, kTol);
}

TEST(SigmoidFocalLoss, EmptyInputGivesNaNMeanAndZeroSumAsTheSuccessor) {
  const auto x = torch::zeros({0, 3}, torch::kDouble).requires_grad_(true);
  const auto t = torch::zeros({0, 3}, torch::kDouble);
  EXPECT_TRUE(std::isnan(F::sigmoid_focal_loss(x, t).item<double>()));
  const auto sum =
      F::sigmoid_focal_loss(x, t, SigmoidFocalLossOptions().reduction(torch::kSum));
  EXPECT_EQ(sum.item<double>(), 0.0);
  sum.backward();
  EXPECT_EQ(x.grad().sizes(), x.sizes());
  EXPECT_EQ(F::sigmoid_focal_loss(x, t, SigmoidFocalLossOptions().reduction(torch::kNone))
                .sizes(),
            x.sizes());
}

TEST(SigmoidFocalLoss, SaturatedLogitsKeepFiniteGradients) {
  // The successor's (1 - p_t)**gamma has an infinite derivative at 1 - p_t = 0
  // (sigmoid saturates to exactly 1 at x = 17 in float32), which makes its
  // gradient NaN for 0 < gamma < 1. Here the true gradient, ~0, comes out.
  for (const auto dtype : {torch::kFloat, torch::kDouble}) {
    const auto x =
        torch::tensor({200.0, -200.0, 50.0, 1000.0, -20.0}, dtype).requires_grad_(true);
    const auto t = torch::tensor({1.0, 0.0, 1.0, 1.0, 0.0}, dtype);
    const auto loss =
        F::sigmoid_focal_loss(x, t, SigmoidFocalLossOptions().alpha(-1).gamma(0.5));
    loss.backward();
    EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>()) << x.grad();
    EXPECT_LE(max_abs(x.grad()), 1e-12);
    EXPECT_GE(loss.item<double>(), 0.0);
    EXPECT_LE(loss.item<double>(), 1e-12);
  }
  // Misclassified saturated logits: loss ~ |x|, gradient ~ +-1 per element.
  const auto x = torch::tensor({-200.0, 200.0}, torch::kFloat).requires_grad_(true);
  const auto t = torch::tensor({1.0, 0.0}, torch::kFloat);
  const auto loss = F::sigmoid_focal_loss(
      x, t, SigmoidFocalLossOptions().alpha(-1).gamma(0.5).reduction(torch::kSum));
  loss.backward();
  EXPECT_NEAR(loss.item<double>(), 400.0, 1e-4);
  EXPECT_LE(max_abs_diff(x.grad(), torch::tensor({-1.0, 1.0})), 1e-6);
}

TEST(SigmoidFocalLoss, BoolTargetsEqualFloatTargets) {
  const auto x = sigmoid_logits();
  const auto t = sigmoid_targets();
  SigmoidFocalLoss loss(SigmoidFocalLossOptions().reduction(torch::kNone));
  EXPECT_TRUE(torch::equal(loss->forward(x, t.to(torch::kBool)), loss->forward(x, t)));
  // Targets of another floating dtype are used in the compute dtype.
  EXPECT_TRUE(torch::equal(loss->forward(x, t.to(torch::kFloat)), loss->forward(x, t)));
}

TEST(SigmoidFocalLoss, HalfAndBFloat16AreComputedInFloat32) {
  torch::manual_seed(6);
  const auto x32 = torch::randn({6, 4});
  const auto t = torch::randint(0, 2, {6, 4}).to(torch::kFloat);
  SigmoidFocalLoss loss(SigmoidFocalLossOptions().gamma(0.5).reduction(torch::kNone));
  for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
    const auto x = x32.to(dtype);
    const auto got = loss->forward(x.requires_grad_(true), t);
    EXPECT_EQ(got.scalar_type(), dtype);
    // Exactly the float32 result of the same (rounded) logits, rounded once.
    EXPECT_TRUE(torch::equal(got, loss->forward(x.to(torch::kFloat), t).to(dtype)));
    got.sum().backward();
    EXPECT_EQ(x.grad().scalar_type(), dtype);
    EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>());
  }
}

TEST(SigmoidFocalLoss, FunctionalEqualsModule) {
  const auto options =
      SigmoidFocalLossOptions().alpha(0.6).gamma(1.5).reduction(torch::kSum);
  SigmoidFocalLoss loss(options);
  EXPECT_TRUE(
      torch::equal(loss->forward(sigmoid_logits(), sigmoid_targets()),
                   F::sigmoid_focal_loss(sigmoid_logits(), sigmoid_targets(), options)));
  SigmoidFocalLoss defaults;
  EXPECT_TRUE(torch::equal(defaults->forward(sigmoid_logits(), sigmoid_targets()),
                           F::sigmoid_focal_loss(sigmoid_logits(), sigmoid_targets())));
}

TEST(SigmoidFocalLoss, PrettyPrint) {
  std::ostringstream out;
  SigmoidFocalLoss(SigmoidFocalLossOptions().alpha(-1).gamma(0.5).reduction(torch::kSum))
      ->pretty_print(out);
  EXPECT_EQ(out.str(),
            "proxyloss::SigmoidFocalLoss(alpha=-1, gamma=0.5, reduction=kSum)");
  std::ostringstream defaults;
  SigmoidFocalLoss()->pretty_print(defaults);
  EXPECT_EQ(defaults.str(),
            "proxyloss::SigmoidFocalLoss(alpha=0.25, gamma=2, reduction=kMean)");
}

TEST(SigmoidFocalLoss, CloneGivesAnEqualModule) {
  SigmoidFocalLoss loss(SigmoidFocalLossOptions().alpha(0.4).gamma(3));
  const auto copy =
      std::dynamic_pointer_cast<proxyloss::SigmoidFocalLossImpl>(loss->clone());
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->options.alpha(), 0.4);
  EXPECT_TRUE(torch::equal(copy->forward(sigmoid_logits(), sigmoid_targets()),
                           loss->forward(sigmoid_logits(), sigmoid_targets())));
}

// =================================================================================
// SoftmaxFocalLoss
// =================================================================================

TEST(SoftmaxFocalLoss, DefaultOptionsFollowTheSuccessor) {
  const SoftmaxFocalLossOptions options;
  EXPECT_FALSE(options.alpha().defined());
  EXPECT_EQ(options.gamma(), 2.0);
  EXPECT_EQ(proxyloss::focal_reduction_kind(options.reduction()),
            proxyloss::FocalReduction::Mean);
  EXPECT_EQ(options.label_smoothing(), 0.0);
  EXPECT_EQ(options.ignore_index(), -100);
  EXPECT_EQ(options.background_class(), 0);
}

TEST(SoftmaxFocalLoss, IsDefaultConstructible) {
  SoftmaxFocalLoss loss;
  const auto value = loss->forward(softmax_logits(), softmax_targets());
  EXPECT_EQ(value.dim(), 0);
  EXPECT_TRUE(std::isfinite(value.item<double>()));
}

TEST(SoftmaxFocalLoss, ReductionAcceptsTorchValuesAndKMeanPositive) {
  using proxyloss::focal_reduction_kind;
  using proxyloss::focal_reduction_name;
  using proxyloss::FocalReduction;
  auto options = SoftmaxFocalLossOptions();
  EXPECT_EQ(focal_reduction_kind(options.reduction(torch::kNone).reduction()),
            FocalReduction::None);
  EXPECT_EQ(focal_reduction_kind(options.reduction(torch::kSum).reduction()),
            FocalReduction::Sum);
  EXPECT_EQ(focal_reduction_kind(options.reduction(torch::kMean).reduction()),
            FocalReduction::Mean);
  EXPECT_EQ(focal_reduction_kind(options.reduction(proxyloss::kMeanPositive).reduction()),
            FocalReduction::MeanPositive);
  EXPECT_EQ(focal_reduction_name(proxyloss::kMeanPositive), "kMeanPositive");
  EXPECT_EQ(focal_reduction_name(torch::kNone), "kNone");
  EXPECT_EQ(focal_reduction_name(torch::kSum), "kSum");
  EXPECT_EQ(focal_reduction_name(torch::kMean), "kMean");
}

TEST(SoftmaxFocalLoss, MatchesSuccessorOnRecordedCases) {
  const auto x = softmax_logits();
  const auto y = softmax_targets();
  auto options =
      SoftmaxFocalLossOptions().alpha(recorded_alpha()).gamma(2).label_smoothing(0.1);
  EXPECT_LE(
      max_abs_diff(F::softmax_focal_loss(x, y, options.reduction(torch::kNone)),
                   doubles({0.010607149055957511, 0.026250420197106276, 0.0,
                            1.4858308646401486, 0.9222058979436204, 1.3188183450031785})),
      kTol);
  EXPECT_NEAR(F::softmax_focal_loss(x, y, options.reduction(torch::kMean)).item<double>(),
              0.7527425353680023, kTol);
  EXPECT_NEAR(F::softmax_focal_loss(x, y, options.reduction(torch::kSum)).item<double>(),
              3.7637126768400115, kTol);
  EXPECT_NEAR(F::softmax_focal_loss(x, y, options.reduction(proxyloss::kMeanPositive))
                  .item<double>(),
              1.2545708922800038, kTol);

  EXPECT_NEAR(F::softmax_focal_loss(
                  x, y,
                  SoftmaxFocalLossOptions().gamma(0.5).background_class(3).reduction(
                      proxyloss::kMeanPositive))
                  .item<double>(),
              2.0721135928169554, kTol);

  const auto f = F::softmax_focal_loss(
      x.to(torch::kFloat), y, SoftmaxFocalLossOptions().gamma(1).label_smoothing(0.2));
  EXPECT_EQ(f.scalar_type(), torch::kFloat);
  EXPECT_NEAR(f.item<double>(), 1.5428950786590576, kFloatTol * 1.54);

  // ignore_index may be a real class: its rows are left out.
  const auto y2 = labels({0, 2, 1, 2, 3, 1});
  const auto ignore2 = SoftmaxFocalLossOptions().gamma(2).ignore_index(2);
  EXPECT_NEAR(F::softmax_focal_loss(x, y2, ignore2).item<double>(), 2.003018446041772,
              kTol);
  EXPECT_LE(
      max_abs_diff(F::softmax_focal_loss(
                       x, y2, SoftmaxFocalLossOptions(ignore2).reduction(torch::kNone)),
                   doubles({0.0287717623333572, 0.0, 2.8404678765754277, 0.0,
                            0.013325385963493124, 5.12950875929481})),
      kTol);
}

TEST(SoftmaxFocalLoss, GradientMatchesSuccessorOnRecordedCases) {
  SoftmaxFocalLoss loss(SoftmaxFocalLossOptions()
                            .alpha(recorded_alpha())
                            .gamma(2)
                            .label_smoothing(0.1)
                            .reduction(proxyloss::kMeanPositive));
  const auto grad = autograd_gradient(
      [&](const torch::Tensor& x) { return loss->forward(x, softmax_targets()); },
      softmax_logits());
  EXPECT_LE(max_abs_diff(grad, doubles({-0.0065264774876277855,
                                        0.0006848837708696766,
                                        0.003679036742305752,
                                        0.0021625569744523595,
                                        0.004709975630686431,
                                        -0.015869281253505233,
                                        0.010422079358533632,
                                        0.0007372262642851614,
                                        0.0,
                                        0.0,
                                        0.0,
                                        0.0,
                                        0.08354032027154973,
                                        0.23780426707426808,
                                        0.009363377744674724,
                                        -0.3307079650904926,
                                        -0.08401961899438405,
                                        0.00758206601168308,
                                        0.00758206601168308,
                                        0.06885548697101788,
                                        0.25060788591000194,
                                        -0.00320420453857608,
                                        -0.25881343659679734,
                                        0.011409755225371564})
                                   .reshape({6, 4})),
            kTol);
}

TEST(SoftmaxFocalLoss, MatchesOracleOnRandomInputs) {
  std::mt19937_64 rng(11);
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  const std::vector<double> gammas{0, 0.5, 1, 2, 3.7};
  const std::vector<double> smoothings{0, 0.1, 0.5, 1};
  const std::vector<proxyloss::focal_reduction_t> reductions{torch::kMean, torch::kSum,
                                                             proxyloss::kMeanPositive};
  for (int trial = 0; trial < 80; ++trial) {
    torch::manual_seed(trial);
    const bool is_double = trial % 2 == 0;
    const auto dtype = is_double ? torch::kDouble : torch::kFloat;
    const int64_t N = pick(0, 30);
    const int64_t C = pick(1, 6);
    const auto x = (torch::randn({N, C}, torch::kDouble) * 3).to(dtype);
    auto y = torch::randint(0, C, {N}, torch::kLong);
    const int64_t ignore_index = pick(0, 1) ? -100 : pick(0, C - 1);
    if (N > 0 && pick(0, 1)) {
      y.index_fill_(0, torch::randint(0, N, {pick(1, N)}, torch::kLong), ignore_index);
    }
    const int64_t background = pick(-1, C - 1);
    std::vector<double> alpha;
    auto options = SoftmaxFocalLossOptions()
                       .gamma(gammas[pick(0, 4)])
                       .label_smoothing(smoothings[pick(0, 3)])
                       .ignore_index(ignore_index)
                       .background_class(background);
    if (pick(0, 1)) {
      for (int64_t c = 0; c < C; ++c) {
        alpha.push_back(std::uniform_real_distribution<double>(0, 2)(rng));
      }
      // float32 alpha with float32 logits, float64 with float64.
      options.alpha(torch::tensor(alpha, torch::kDouble).to(dtype));
      if (!is_double) {
        for (auto& a : alpha) {
          a = static_cast<float>(a);
        }
      }
    }
    const auto want = oracle::softmax_focal(x, y, alpha, options.gamma(),
                                            options.label_smoothing(), ignore_index);
    std::ostringstream where;
    where << "trial " << trial << " N=" << N << " C=" << C << " gamma=" << options.gamma()
          << " eps=" << options.label_smoothing() << " ignore_index=" << ignore_index
          << " background=" << background << (alpha.empty() ? "" : " alpha")
          << (is_double ? " double" : " float");
    const double tol = is_double ? kTol : kFloatTol;
    const auto none = F::softmax_focal_loss(x, y, options.reduction(torch::kNone));
    EXPECT_EQ(none.scalar_type(), dtype) << where.str();
    EXPECT_LE(max_abs_diff(none, want), tol * std::max(1.0, max_abs(want)))
        << where.str();
    for (const auto& reduction : reductions) {
      const double expected = reduce_softmax(
          want, y, proxyloss::focal_reduction_kind(reduction), ignore_index, background);
      const auto got = F::softmax_focal_loss(x, y, options.reduction(reduction));
      EXPECT_EQ(got.dim(), 0);
      EXPECT_NEAR(got.item<double>(), expected, tol * std::max(1.0, std::abs(expected)))
          << where.str() << " " << proxyloss::focal_reduction_name(reduction);
    }
  }
}

TEST(SoftmaxFocalLoss, GradientsMatchCentralDifferences) {
  torch::manual_seed(8);
  const auto x = torch::randn({6, 4}, torch::kDouble) * 2;
  const auto y = labels({0, 3, -100, 1, 2, 0});
  const auto alpha = doubles({0.3, 1.2, 0.7, 2.0});
  for (const double gamma : {0.0, 0.5, 1.0, 2.0}) {
    for (const double eps : {0.0, 0.2}) {
      for (const bool with_alpha : {false, true}) {
        auto options = SoftmaxFocalLossOptions().gamma(gamma).label_smoothing(eps).alpha(
            with_alpha ? alpha : torch::Tensor());
        const auto weights = torch::rand({6}, torch::kDouble);
        SoftmaxFocalLoss none(SoftmaxFocalLossOptions(options).reduction(torch::kNone));
        auto fn = [&](const torch::Tensor& v) {
          return (none->forward(v, y) * weights).sum();
        };
        const auto grad = autograd_gradient(fn, x);
        EXPECT_LE(max_abs_diff(grad, numeric_gradient(fn, x)), 1e-8)
            << "gamma=" << gamma << " eps=" << eps << " alpha=" << with_alpha;
        EXPECT_EQ(max_abs(grad[2]), 0.0); // the ignored row
        SoftmaxFocalLoss positive(
            SoftmaxFocalLossOptions(options).reduction(proxyloss::kMeanPositive));
        auto fn_pos = [&](const torch::Tensor& v) { return positive->forward(v, y); };
        EXPECT_LE(max_abs_diff(autograd_gradient(fn_pos, x), numeric_gradient(fn_pos, x)),
                  1e-8);
      }
    }
  }
}

TEST(SoftmaxFocalLoss, GammaZeroEqualsCrossEntropy) {
  torch::manual_seed(9);
  const auto x = torch::randn({8, 5}, torch::kDouble) * 3;
  const auto y = labels({0, 4, 2, -100, 1, 1, 3, -100});
  for (const double eps : {0.0, 0.3}) {
    namespace TF = torch::nn::functional;
    const auto ce = TF::cross_entropy(
        x, y, TF::CrossEntropyFuncOptions().label_smoothing(eps).reduction(torch::kNone));
    const auto options = SoftmaxFocalLossOptions().gamma(0).label_smoothing(eps);
    EXPECT_LE(
        max_abs_diff(F::softmax_focal_loss(
                         x, y, SoftmaxFocalLossOptions(options).reduction(torch::kNone)),
                     ce),
        kTol)
        << "eps=" << eps;
    const auto ce_mean =
        TF::cross_entropy(x, y, TF::CrossEntropyFuncOptions().label_smoothing(eps));
    EXPECT_NEAR(F::softmax_focal_loss(x, y, options).item<double>(),
                ce_mean.item<double>(), kTol);
  }
}

TEST(SoftmaxFocalLoss, AlphaWeighsEachRowByItsTargetClass) {
  const auto x = softmax_logits();
  const auto y = labels({0, 1, 2, 3, 0, 2});
  const auto alpha = doubles({0.1, 2.0, 0.5, 1.5});
  auto none = [&](const torch::Tensor& a) {
    return F::softmax_focal_loss(
        x, y, SoftmaxFocalLossOptions().alpha(a).gamma(1.5).reduction(torch::kNone));
  };
  const auto plain = none(torch::Tensor());
  EXPECT_LE(max_abs_diff(none(alpha), plain * doubles({0.1, 2.0, 0.5, 1.5, 0.1, 0.5})),
            kTol);
  // A float32 alpha is converted to the dtype of the logits (its float32
  // values, 0.1f included, are used in float64).
  EXPECT_TRUE(torch::equal(none(alpha.to(torch::kFloat)),
                           none(alpha.to(torch::kFloat).to(torch::kDouble))));
  // The mean is divided by the row count, not by the alpha mass (as the successor).
  const auto mean =
      F::softmax_focal_loss(x, y, SoftmaxFocalLossOptions().alpha(alpha).gamma(1.5));
  EXPECT_NEAR(mean.item<double>(), none(alpha).sum().item<double>() / 6, kTol);
}

TEST(SoftmaxFocalLoss, LabelSmoothingSmoothsOnlyTheCrossEntropyTerm) {
  const auto x = softmax_logits();
  const auto y = labels({0, 1, 2, 3, 0, 2});
  const double eps = 0.25;
  const auto got = F::softmax_focal_loss(
      x, y,
      SoftmaxFocalLossOptions().gamma(2).label_smoothing(eps).reduction(torch::kNone));
  // (1 - p_y)^gamma from the unsmoothed p_y, times torch's smoothed CE.
  namespace TF = torch::nn::functional;
  const auto ce = TF::cross_entropy(
      x, y, TF::CrossEntropyFuncOptions().label_smoothing(eps).reduction(torch::kNone));
  const auto p_y = torch::softmax(x, 1).gather(1, y.unsqueeze(1)).squeeze(1);
  EXPECT_LE(max_abs_diff(got, (1 - p_y).pow(2) * ce), kTol);
  // eps = 1: the CE term is the uniform one, -(1/C) sum_c log p_c.
  const auto uniform = F::softmax_focal_loss(
      x, y,
      SoftmaxFocalLossOptions().gamma(2).label_smoothing(1).reduction(torch::kNone));
  EXPECT_LE(max_abs_diff(uniform, (1 - p_y).pow(2) * -torch::log_softmax(x, 1).mean(1)),
            kTol);
}

TEST(SoftmaxFocalLoss, IgnoreIndexRowsContributeNothing) {
  const auto x = softmax_logits().requires_grad_(true);
  const auto y = labels({0, -1, 2, -1, 1, 3});
  const auto options = SoftmaxFocalLossOptions().gamma(2).ignore_index(-1);
  const auto none = F::softmax_focal_loss(
      x, y, SoftmaxFocalLossOptions(options).reduction(torch::kNone));
  EXPECT_EQ(none[1].item<double>(), 0.0);
  EXPECT_EQ(none[3].item<double>(), 0.0);
  // The mean divides by the 4 valid rows.
  const auto mean = F::softmax_focal_loss(x, y, options);
  EXPECT_NEAR(mean.item<double>(), none.sum().item<double>() / 4, kTol);
  mean.backward();
  EXPECT_EQ(max_abs(x.grad()[1]), 0.0);
  EXPECT_EQ(max_abs(x.grad()[3]), 0.0);
  EXPECT_GT(max_abs(x.grad()[0]), 0.0);
  // Equal to the loss over the valid rows alone.
  const auto kept = labels({0, 2, 4, 5});
  EXPECT_NEAR(
      mean.item<double>(),
      F::softmax_focal_loss(x.detach().index_select(0, kept), y.index_select(0, kept),
                            SoftmaxFocalLossOptions().gamma(2))
          .item<double>(),
      kTol);
}

TEST(SoftmaxFocalLoss, AllRowsIgnoredGiveZeroWithAGraph) {
  const auto x = softmax_logits().requires_grad_(true);
  const auto y = labels({-100, -100, -100, -100, -100, -100});
  for (const auto& reduction : std::vector<proxyloss::focal_reduction_t>{
           torch::kMean, torch::kSum, proxyloss::kMeanPositive}) {
    const auto loss =
        F::softmax_focal_loss(x, y, SoftmaxFocalLossOptions().reduction(reduction));
    EXPECT_EQ(loss.item<double>(), 0.0);
    ASSERT_TRUE(loss.requires_grad());
    loss.backward();
    EXPECT_EQ(max_abs(x.grad()), 0.0);
    x.grad().zero_();
  }
}

TEST(SoftmaxFocalLoss, EmptyBatchGivesZeroWithAGraph) {
  const auto x = torch::zeros({0, 4}, torch::kDouble).requires_grad_(true);
  const auto y = torch::zeros({0}, torch::kLong);
  for (const auto& reduction : std::vector<proxyloss::focal_reduction_t>{
           torch::kMean, torch::kSum, proxyloss::kMeanPositive}) {
    const auto loss =
        F::softmax_focal_loss(x, y, SoftmaxFocalLossOptions().reduction(reduction));
    EXPECT_EQ(loss.item<double>(), 0.0);
    loss.backward();
    EXPECT_EQ(x.grad().sizes(), x.sizes());
  }
  EXPECT_EQ(F::softmax_focal_loss(x, y, SoftmaxFocalLossOptions().reduction(torch::kNone))
                .sizes(),
            torch::IntArrayRef({0}));
}

TEST(SoftmaxFocalLoss, MeanPositiveDividesByTheValidNonBackgroundRows) {
  const auto x = softmax_logits();
  const auto y = labels({0, 1, -100, 3, 0, 2}); // valid: 5 rows, 3 of them not class 0
  const auto options = SoftmaxFocalLossOptions().gamma(2);
  const double sum =
      F::softmax_focal_loss(x, y, SoftmaxFocalLossOptions(options).reduction(torch::kSum))
          .item<double>();
  EXPECT_NEAR(
      F::softmax_focal_loss(
          x, y, SoftmaxFocalLossOptions(options).reduction(proxyloss::kMeanPositive))
          .item<double>(),
      sum / 3, kTol);
  EXPECT_NEAR(F::softmax_focal_loss(x, y, options).item<double>(), sum / 5, kTol);
}

TEST(SoftmaxFocalLoss, BackgroundClassSelectsTheNegativeClass) {
  const auto x = softmax_logits();
  const auto y = labels({0, 1, -100, 3, 3, 2}); // class 3: 2 rows, others: 3 valid rows
  auto mean_positive = [&](int64_t background) {
    return F::softmax_focal_loss(x, y,
                                 SoftmaxFocalLossOptions()
                                     .background_class(background)
                                     .reduction(proxyloss::kMeanPositive))
        .item<double>();
  };
  const double sum =
      F::softmax_focal_loss(x, y, SoftmaxFocalLossOptions().reduction(torch::kSum))
          .item<double>();
  EXPECT_NEAR(mean_positive(3), sum / 3, kTol);
  EXPECT_NEAR(mean_positive(0), sum / 4, kTol);
  // A background class outside [0, C): every valid row is positive.
  EXPECT_NEAR(mean_positive(-1), sum / 5, kTol);
  EXPECT_NEAR(mean_positive(7), F::softmax_focal_loss(x, y).item<double>(), kTol);
}

TEST(SoftmaxFocalLoss, MeanPositiveWithoutPositivesDividesByOneAsTheSuccessor) {
  // All valid rows are background: the successor's count.clamp(min=1) makes
  // the loss the sum of the background rows' losses (not zero).
  const auto x = softmax_logits().narrow(0, 0, 3).clone().requires_grad_(true);
  const auto y = labels({0, 0, 0});
  const auto loss = F::softmax_focal_loss(
      x, y, SoftmaxFocalLossOptions().gamma(2).reduction(proxyloss::kMeanPositive));
  EXPECT_NEAR(loss.item<double>(), 4.820482360940417,
              kTol); // recorded from the successor
  loss.backward();
  EXPECT_LE(max_abs_diff(
                x.grad(),
                doubles({-0.06522545056984047, 0.007954351469638594, 0.03564893004310681,
                         0.02162216905709509, -1.1093661365572551, 0.8425338342792382,
                         0.24138998503801024, 0.025442317240006312, -1.1252621049433122,
                         0.05245141779901906, 1.0535148888757402, 0.019295798268552974})
                    .reshape({3, 4})),
            kTol);
}

TEST(SoftmaxFocalLoss, ReductionNoneGivesOneValuePerRow) {
  const auto x = softmax_logits();
  const auto y = softmax_targets();
  SoftmaxFocalLoss loss(SoftmaxFocalLossOptions().reduction(torch::kNone));
  const auto none = loss->forward(x, y);
  EXPECT_EQ(none.sizes(), torch::IntArrayRef({6}));
  EXPECT_LE(max_abs_diff(none, oracle::softmax_focal(x, y, {}, 2, 0, -100)), kTol);
}

TEST(SoftmaxFocalLoss, ReductionSumAndMeanAreOverValidRows) {
  const auto x = softmax_logits();
  const auto y = softmax_targets();
  const auto none = oracle::softmax_focal(x, y, {}, 2, 0, -100);
  SoftmaxFocalLoss sum(SoftmaxFocalLossOptions().reduction(torch::kSum));
  SoftmaxFocalLoss mean(SoftmaxFocalLossOptions().reduction(torch::kMean));
  EXPECT_NEAR(sum->forward(x, y).item<double>(), none.sum().item<double>(), kTol);
  EXPECT_NEAR(mean->forward(x, y).item<double>(), none.sum().item<double>() / 5, kTol);
}

TEST(SoftmaxFocalLoss, SingleClassGivesZeroLossAndZeroGradient) {
  // p_y = 1: the successor gets NaN gradients here for gamma < 1.
  for (const double gamma : {0.0, 0.5, 2.0}) {
    const auto x = doubles({1.5, -2.0, 0.0}).reshape({3, 1}).requires_grad_(true);
    const auto loss = F::softmax_focal_loss(
        x, labels({0, 0, 0}),
        SoftmaxFocalLossOptions().gamma(gamma).label_smoothing(0.1));
    EXPECT_EQ(loss.item<double>(), 0.0);
    loss.backward();
    EXPECT_EQ(max_abs(x.grad()), 0.0) << "gamma=" << gamma;
    EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>());
  }
}

TEST(SoftmaxFocalLoss, SaturatedLogitsKeepFiniteGradients) {
  // p_y rounds to 1 in float32 (1 - p_y ~ 1e-52): the successor's
  // (1 - p_y)**0.5 gives loss 0 and NaN gradients; here both stay accurate.
  const auto x64 = doubles({120, 0, 0, 0, 90, -30}).reshape({2, 3});
  const auto y = labels({0, 1});
  const auto options =
      SoftmaxFocalLossOptions().gamma(0.5).label_smoothing(0.1).reduction(torch::kSum);
  const auto want = F::softmax_focal_loss(x64, y, options).item<double>();
  const auto x = x64.to(torch::kFloat).requires_grad_(true);
  const auto loss = F::softmax_focal_loss(x, y, options);
  EXPECT_GT(want, 0.0);
  EXPECT_NEAR(loss.item<double>(), want, kFloatTol * want);
  loss.backward();
  EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>()) << x.grad();
  const auto grad64 = autograd_gradient(
      [&](const torch::Tensor& v) { return F::softmax_focal_loss(v, y, options); }, x64);
  EXPECT_LE(max_abs_diff(x.grad(), grad64), 1e-6 * std::max(1.0, max_abs(grad64)));
}

TEST(SoftmaxFocalLoss, HalfAndBFloat16AreComputedInFloat32) {
  torch::manual_seed(10);
  const auto x32 = torch::randn({6, 4});
  const auto y = softmax_targets();
  SoftmaxFocalLoss loss(SoftmaxFocalLossOptions()
                            .alpha(recorded_alpha())
                            .gamma(0.5)
                            .reduction(torch::kNone));
  for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
    const auto x = x32.to(dtype);
    const auto got = loss->forward(x.requires_grad_(true), y);
    EXPECT_EQ(got.scalar_type(), dtype);
    EXPECT_TRUE(torch::equal(got, loss->forward(x.to(torch::kFloat), y).to(dtype)));
    got.sum().backward();
    EXPECT_EQ(x.grad().scalar_type(), dtype);
    EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>());
  }
}

TEST(SoftmaxFocalLoss, OtherIntegerTargetTypesAreAccepted) {
  const auto x = softmax_logits();
  const auto y = labels({0, 1, 2, 3, 0, 2});
  const auto expected = F::softmax_focal_loss(x, y);
  EXPECT_TRUE(torch::equal(F::softmax_focal_loss(x, y.to(torch::kInt)), expected));
  EXPECT_TRUE(torch::equal(F::softmax_focal_loss(x, y.to(torch::kUInt8)), expected));
}

TEST(SoftmaxFocalLoss, FunctionalEqualsModule) {
  const auto options = SoftmaxFocalLossOptions()
                           .alpha(recorded_alpha())
                           .gamma(1)
                           .label_smoothing(0.05)
                           .reduction(proxyloss::kMeanPositive);
  SoftmaxFocalLoss loss(options);
  EXPECT_TRUE(
      torch::equal(loss->forward(softmax_logits(), softmax_targets()),
                   F::softmax_focal_loss(softmax_logits(), softmax_targets(), options)));
  SoftmaxFocalLoss defaults;
  EXPECT_TRUE(torch::equal(defaults->forward(softmax_logits(), softmax_targets()),
                           F::softmax_focal_loss(softmax_logits(), softmax_targets())));
}

TEST(SoftmaxFocalLoss, PrettyPrint) {
  std::ostringstream defaults;
  SoftmaxFocalLoss()->pretty_print(defaults);
  EXPECT_EQ(defaults.str(),
            "proxyloss::SoftmaxFocalLoss(alpha=None, gamma=2, reduction=kMean, "
            "label_smoothing=0, ignore_index=-100, background_class=0)");
  std::ostringstream out;
  SoftmaxFocalLoss(SoftmaxFocalLossOptions()
                       .alpha(recorded_alpha())
                       .gamma(0.5)
                       .reduction(proxyloss::kMeanPositive)
                       .label_smoothing(0.1)
                       .ignore_index(-1)
                       .background_class(3))
      ->pretty_print(out);
  EXPECT_EQ(out.str(),
            "proxyloss::SoftmaxFocalLoss(alpha=[0.25, 0.5, 0.75, 1], gamma=0.5, "
            "reduction=kMeanPositive, label_smoothing=0.1, ignore_index=-1, "
            "background_class=3)");
  std::ostringstream many;
  SoftmaxFocalLoss(SoftmaxFocalLossOptions().alpha(torch::ones({10})))
      ->pretty_print(many);
  EXPECT_NE(many.str().find("alpha=[1, 1, 1, 1, 1, 1, 1, 1, ...]"), std::string::npos)
      << many.str();
}

TEST(SoftmaxFocalLoss, CloneGivesAnEqualModule) {
  SoftmaxFocalLoss loss(SoftmaxFocalLossOptions()
                            .alpha(recorded_alpha())
                            .reduction(proxyloss::kMeanPositive));
  const auto copy =
      std::dynamic_pointer_cast<proxyloss::SoftmaxFocalLossImpl>(loss->clone());
  ASSERT_TRUE(copy);
  EXPECT_TRUE(torch::equal(copy->forward(softmax_logits(), softmax_targets()),
                           loss->forward(softmax_logits(), softmax_targets())));
}

// =================================================================================
// Bad options and inputs
// =================================================================================

TEST(SigmoidFocalLossErrors, GammaMustBeFiniteAndNonNegative) {
  EXPECT_TRUE(throws_with([] { SigmoidFocalLoss(SigmoidFocalLossOptions().gamma(-1)); },
                          {"SigmoidFocalLoss", "gamma", ">= 0", "got -1"}));
  EXPECT_TRUE(
      throws_with([] { SigmoidFocalLoss(SigmoidFocalLossOptions().gamma(std::nan(""))); },
                  {"gamma", "got nan"}));
  EXPECT_TRUE(throws_with(
      [] {
        SigmoidFocalLoss(
            SigmoidFocalLossOptions().gamma(std::numeric_limits<double>::infinity()));
      },
      {"gamma", "finite", "got inf"}));
}

TEST(SigmoidFocalLossErrors, AlphaAboveOneOrNaNIsAnError) {
  EXPECT_TRUE(throws_with([] { SigmoidFocalLoss(SigmoidFocalLossOptions().alpha(1.5)); },
                          {"alpha", "[0, 1]", "< 0 to disable", "got 1.5"}));
  EXPECT_TRUE(
      throws_with([] { SigmoidFocalLoss(SigmoidFocalLossOptions().alpha(std::nan(""))); },
                  {"alpha", "got nan"}));
  EXPECT_NO_THROW(SigmoidFocalLoss(SigmoidFocalLossOptions().alpha(1)));
  EXPECT_NO_THROW(SigmoidFocalLoss(SigmoidFocalLossOptions().alpha(0)));
}

TEST(SigmoidFocalLossErrors, OptionsEditedAfterConstructionAreCheckedAtForward) {
  SigmoidFocalLoss loss;
  loss->options.gamma(-2);
  EXPECT_TRUE(throws_with([&] { loss->forward(sigmoid_logits(), sigmoid_targets()); },
                          {"SigmoidFocalLoss", "gamma", "got -2"}));
}

TEST(SigmoidFocalLossErrors, FunctionalChecksItsOptions) {
  EXPECT_TRUE(throws_with(
      [] {
        F::sigmoid_focal_loss(sigmoid_logits(), sigmoid_targets(),
                              SigmoidFocalLossOptions().alpha(2));
      },
      {"sigmoid_focal_loss", "alpha", "got 2"}));
}

TEST(SigmoidFocalLossErrors, LogitsMustBeFloatingPoint) {
  SigmoidFocalLoss loss;
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::ones({3, 4}, torch::kLong), sigmoid_targets());
      },
      {"logits", "floating point", "Long"}));
}

TEST(SigmoidFocalLossErrors, TargetsMustHaveTheShapeOfLogits) {
  SigmoidFocalLoss loss;
  EXPECT_TRUE(throws_with([&] { loss->forward(sigmoid_logits(), torch::zeros({3})); },
                          {"targets", "shape of logits", "[3, 4]", "got [3]"}));
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(sigmoid_logits(), torch::zeros({4, 3}));
      },
      {"targets", "[3, 4]", "got [4, 3]"}));
}

TEST(SigmoidFocalLossErrors, TargetsMustBeFloatingOrBool) {
  SigmoidFocalLoss loss;
  EXPECT_TRUE(throws_with(
      [&] { loss->forward(sigmoid_logits(), sigmoid_targets().to(torch::kLong)); },
      {"targets", "floating point", "bool", "Long", "SoftmaxFocalLoss"}));
}

TEST(SigmoidFocalLossErrors, TargetsMustBeInZeroOne) {
  SigmoidFocalLoss loss;
  auto t = sigmoid_targets();
  t[0][1] = 1.5;
  t[2][3] = -1;
  EXPECT_TRUE(throws_with([&] { loss->forward(sigmoid_logits(), t); },
                          {"targets", "in [0, 1]", "got [1.5, -1]"}));
  auto n = sigmoid_targets();
  n[1][0] = std::nan("");
  EXPECT_TRUE(
      throws_with([&] { loss->forward(sigmoid_logits(), n); }, {"targets", "got [nan]"}));
}

TEST(SigmoidFocalLossErrors, TargetsMustBeOnTheDeviceOfLogits) {
  SigmoidFocalLoss loss;
  const auto logits = torch::empty({3, 4}, torch::TensorOptions().device(torch::kMeta));
  EXPECT_TRUE(
      throws_with([&] { loss->forward(logits, sigmoid_targets().to(torch::kFloat)); },
                  {"targets", "device of logits", "meta", "cpu"}));
}

TEST(SigmoidFocalLossErrors, UndefinedTensorsAreAnError) {
  SigmoidFocalLoss loss;
  EXPECT_TRUE(throws_with([&] { loss->forward(torch::Tensor(), sigmoid_targets()); },
                          {"logits", "undefined"}));
  EXPECT_TRUE(throws_with([&] { loss->forward(sigmoid_logits(), torch::Tensor()); },
                          {"targets", "undefined"}));
}

TEST(SoftmaxFocalLossErrors, GammaMustBeFiniteAndNonNegative) {
  EXPECT_TRUE(throws_with([] { SoftmaxFocalLoss(SoftmaxFocalLossOptions().gamma(-0.5)); },
                          {"SoftmaxFocalLoss", "gamma", ">= 0", "got -0.5"}));
}

TEST(SoftmaxFocalLossErrors, LabelSmoothingMustBeInZeroOne) {
  EXPECT_TRUE(throws_with(
      [] { SoftmaxFocalLoss(SoftmaxFocalLossOptions().label_smoothing(1.5)); },
      {"label_smoothing", "[0, 1]", "got 1.5"}));
  EXPECT_TRUE(throws_with(
      [] { SoftmaxFocalLoss(SoftmaxFocalLossOptions().label_smoothing(-0.1)); },
      {"label_smoothing", "got -0.1"}));
  EXPECT_TRUE(throws_with(
      [] { SoftmaxFocalLoss(SoftmaxFocalLossOptions().label_smoothing(std::nan(""))); },
      {"label_smoothing", "got nan"}));
}

TEST(SoftmaxFocalLossErrors, AlphaMustBeAOneDimensionalFloatingTensor) {
  EXPECT_TRUE(throws_with(
      [] {
        SoftmaxFocalLoss(SoftmaxFocalLossOptions().alpha(torch::ones({2, 2})));
      },
      {"alpha", "1-D", "[C]", "got shape [2, 2]"}));
  EXPECT_TRUE(throws_with(
      [] {
        SoftmaxFocalLoss(SoftmaxFocalLossOptions().alpha(torch::ones({4}, torch::kLong)));
      },
      {"alpha", "floating point", "Long"}));
}

TEST(SoftmaxFocalLossErrors, AlphaMustBeFiniteAndNonNegative) {
  EXPECT_TRUE(throws_with(
      [] {
        SoftmaxFocalLoss(SoftmaxFocalLossOptions().alpha(doubles({0.5, -1, 1, 2})));
      },
      {"alpha", "finite and >= 0", "got [-1]"}));
  EXPECT_TRUE(throws_with(
      [] {
        SoftmaxFocalLoss(SoftmaxFocalLossOptions().alpha(
            doubles({0.5, std::nan(""), 1, std::numeric_limits<double>::infinity()})));
      },
      {"alpha", "got [nan, inf]"}));
}

TEST(SoftmaxFocalLossErrors, AlphaMustHaveOneEntryPerClass) {
  SoftmaxFocalLoss loss(SoftmaxFocalLossOptions().alpha(doubles({1, 1, 1})));
  EXPECT_TRUE(throws_with([&] { loss->forward(softmax_logits(), softmax_targets()); },
                          {"alpha", "one entry per class", "C = 4", "got 3"}));
}

TEST(SoftmaxFocalLossErrors, OptionsEditedAfterConstructionAreCheckedAtForward) {
  SoftmaxFocalLoss loss;
  loss->options.label_smoothing(2);
  EXPECT_TRUE(throws_with([&] { loss->forward(softmax_logits(), softmax_targets()); },
                          {"SoftmaxFocalLoss", "label_smoothing", "got 2"}));
}

TEST(SoftmaxFocalLossErrors, FunctionalChecksItsOptions) {
  EXPECT_TRUE(throws_with(
      [] {
        F::softmax_focal_loss(softmax_logits(), softmax_targets(),
                              SoftmaxFocalLossOptions().gamma(-1));
      },
      {"softmax_focal_loss", "gamma", "got -1"}));
}

TEST(SoftmaxFocalLossErrors, LogitsMustBeNByC) {
  SoftmaxFocalLoss loss;
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::randn({4}), labels({0, 1, 2, 3}));
      },
      {"logits", "[N, C]", "got [4]"}));
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::randn({4, 3, 2}), labels({0, 1, 2, 0}));
      },
      {"logits", "[N, C]", "got [4, 3, 2]"}));
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::randn({4, 0}), labels({0, 1, 2, 0}));
      },
      {"logits", "C >= 1", "got [4, 0]"}));
}

TEST(SoftmaxFocalLossErrors, LogitsMustBeFloatingPoint) {
  SoftmaxFocalLoss loss;
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::ones({6, 4}, torch::kInt), softmax_targets());
      },
      {"logits", "floating point", "Int"}));
}

TEST(SoftmaxFocalLossErrors, TargetsMustMatchTheRowsOfLogits) {
  SoftmaxFocalLoss loss;
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(softmax_logits(), labels({0, 1, 2}));
      },
      {"targets", "[N]", "N = 6", "got [3]"}));
  EXPECT_TRUE(throws_with(
      [&] { loss->forward(softmax_logits(), softmax_targets().unsqueeze(1)); },
      {"targets", "[N]", "got [6, 1]"}));
}

TEST(SoftmaxFocalLossErrors, TargetsMustBeIntegerClassIndices) {
  SoftmaxFocalLoss loss;
  EXPECT_TRUE(throws_with(
      [&] { loss->forward(softmax_logits(), softmax_targets().to(torch::kFloat)); },
      {"targets", "integer", "class indices", "Float"}));
  EXPECT_TRUE(
      throws_with([&] { loss->forward(softmax_logits(), softmax_targets().gt(0)); },
                  {"targets", "integer", "Bool"}));
}

TEST(SoftmaxFocalLossErrors, TargetsOutsideTheClassesAreAnError) {
  SoftmaxFocalLoss loss;
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(softmax_logits(), labels({0, 4, -100, 3, -1, 2}));
      },
      {"targets", "[0, 4)", "ignore_index=-100", "got [4, -1]"}));
  SoftmaxFocalLoss ignore_minus_one(SoftmaxFocalLossOptions().ignore_index(-1));
  EXPECT_TRUE(
      throws_with([&] { ignore_minus_one->forward(softmax_logits(), softmax_targets()); },
                  {"targets", "ignore_index=-1", "got [-100]"}));
}

TEST(SoftmaxFocalLossErrors, TargetsMustBeOnTheDeviceOfLogits) {
  SoftmaxFocalLoss loss;
  const auto logits = torch::empty({6, 4}, torch::TensorOptions().device(torch::kMeta));
  EXPECT_TRUE(throws_with([&] { loss->forward(logits, softmax_targets()); },
                          {"targets", "device of logits", "meta", "cpu"}));
}

TEST(SoftmaxFocalLossErrors, UndefinedTensorsAreAnError) {
  SoftmaxFocalLoss loss;
  EXPECT_TRUE(throws_with([&] { loss->forward(torch::Tensor(), softmax_targets()); },
                          {"logits", "undefined"}));
  EXPECT_TRUE(throws_with([&] { loss->forward(softmax_logits(), torch::Tensor()); },
                          {"targets", "undefined"}));
}

// --- sample_weight ---------------------------------------------------------------

// Weighted reductions, against the unweighted oracle rows: none scales each
// term, sum adds the scaled terms, mean (and kMeanPositive) divide by the
// weight mass of the terms they count, 1 where that mass is exactly 0.
TEST(SoftmaxFocalLoss, SampleWeightScalesRowsAndMeansDivideByTheirMass) {
  const auto x = softmax_logits();
  const auto y = softmax_targets();
  const auto rows = oracle::softmax_focal(x, y, {}, 2, 0, -100);
  const auto w = torch::rand({y.size(0)}, torch::kDouble) * 2;
  const auto valid = y.ne(-100).to(torch::kDouble);
  const auto positive = y.ne(-100).logical_and(y.ne(0)).to(torch::kDouble);
  const auto weighted_sum = (rows * w).sum().item<double>();
  const auto make = [](proxyloss::focal_reduction_t reduction) {
    return SoftmaxFocalLoss(SoftmaxFocalLossOptions().reduction(reduction));
  };
  EXPECT_LE(max_abs_diff(make(torch::kNone)->forward(x, y, w), rows * w), kTol);
  EXPECT_NEAR(make(torch::kSum)->forward(x, y, w).item<double>(), weighted_sum, kTol);
  EXPECT_NEAR(make(torch::kMean)->forward(x, y, w).item<double>(),
              weighted_sum / (w * valid).sum().item<double>(), kTol);
  EXPECT_NEAR(make(proxyloss::kMeanPositive)->forward(x, y, w).item<double>(),
              weighted_sum / (w * positive).sum().item<double>(), kTol);
  EXPECT_EQ(make(torch::kMean)->forward(x, y, torch::zeros_like(w)).item<double>(), 0.0);
}

TEST(SigmoidFocalLoss, SampleWeightBroadcastsOverTrailingDims) {
  const auto x = torch::randn({6, 3}, torch::kDouble);
  const auto t = torch::rand({6, 3}).lt(0.4).to(torch::kDouble);
  const auto elements = oracle::sigmoid_focal(x, t, 0.25, 2.0);
  const auto w = torch::rand({6, 1}, torch::kDouble);
  SigmoidFocalLoss mean(SigmoidFocalLossOptions().reduction(torch::kMean));
  SigmoidFocalLoss none(SigmoidFocalLossOptions().reduction(torch::kNone));
  EXPECT_LE(max_abs_diff(none->forward(x, t, w), elements * w), kTol);
  EXPECT_NEAR(mean->forward(x, t, w).item<double>(),
              (elements * w).sum().item<double>() / (w.sum().item<double>() * 3), kTol);
}

TEST(FocalLossErrors, BadSampleWeightsNameTheLossAndTheArgument) {
  const auto x = torch::randn({4, 3});
  const auto y = torch::tensor({0, 1, 2, 0}, torch::kLong);
  SoftmaxFocalLoss softmax;
  SigmoidFocalLoss sigmoid;
  EXPECT_TRUE(throws_with(
      [&] {
        softmax->forward(x, y, torch::tensor({1.0, -2.0, 1.0, 1.0}));
      },
      {"SoftmaxFocalLoss", "sample_weight must be finite and >= 0", "-2",
       "at rows [1]"}));
  EXPECT_TRUE(throws_with([&] { softmax->forward(x, y, torch::ones({3})); },
                          {"SoftmaxFocalLoss", "sample_weight", "[N]", "N = 4"}));
  EXPECT_TRUE(throws_with(
      [&] {
        sigmoid->forward(x, torch::zeros({4, 3}), torch::ones({4, 2}));
      },
      {"SigmoidFocalLoss", "sample_weight", "broadcast"}));
  // Undefined: no weights.
  EXPECT_TRUE(
      torch::equal(softmax->forward(x, y, torch::Tensor()), softmax->forward(x, y)));
}

TEST(FocalLoss, FunctionalFormsTakeSampleWeight) {
  const auto x = softmax_logits();
  const auto y = softmax_targets();
  const auto w = torch::rand({y.size(0)}, torch::kDouble) * 2;
  const auto options =
      SoftmaxFocalLossOptions().gamma(1).reduction(proxyloss::kMeanPositive);
  EXPECT_TRUE(torch::equal(F::softmax_focal_loss(x, y, options, w),
                           SoftmaxFocalLoss(options)->forward(x, y, w)));
  EXPECT_TRUE(torch::equal(F::softmax_focal_loss(x, y, options, torch::Tensor()),
                           F::softmax_focal_loss(x, y, options)));
  const auto xs = sigmoid_logits();
  const auto ts = sigmoid_targets();
  const auto ws = torch::rand({3, 1}, torch::kDouble);
  const auto sigmoid_options =
      SigmoidFocalLossOptions().alpha(0.4).reduction(torch::kSum);
  EXPECT_TRUE(torch::equal(F::sigmoid_focal_loss(xs, ts, sigmoid_options, ws),
                           SigmoidFocalLoss(sigmoid_options)->forward(xs, ts, ws)));
  EXPECT_NEAR(F::sigmoid_focal_loss(xs, ts, sigmoid_options, ws).item<double>(),
              (oracle::sigmoid_focal(xs, ts, 0.4, 2.0) * ws).sum().item<double>(), kTol);
  EXPECT_TRUE(torch::equal(F::sigmoid_focal_loss(xs, ts, {}, torch::Tensor()),
                           F::sigmoid_focal_loss(xs, ts)));
  EXPECT_TRUE(throws_with([&] { F::softmax_focal_loss(x, y, {}, torch::ones({2})); },
                          {"proxyloss::softmax_focal_loss", "sample_weight", "N = 6"}));
}

// forward's sample_weight is a default argument (FORWARD_HAS_DEFAULT_ARGS),
// so the type-erased holders call it with two arguments or three.
TEST(FocalLoss, AnyModuleAndSequentialCallForwardWithTwoOrThreeArguments) {
  const auto x = softmax_logits();
  const auto y = softmax_targets();
  const auto w = torch::rand({y.size(0)}, torch::kDouble);
  SoftmaxFocalLoss softmax;
  torch::nn::AnyModule any_softmax(softmax);
  EXPECT_TRUE(torch::equal(any_softmax.forward(x, y), softmax(x, y)));
  EXPECT_TRUE(torch::equal(any_softmax.forward(x, y, w), softmax(x, y, w)));
  EXPECT_TRUE(torch::equal(torch::nn::Sequential(softmax)->forward(x, y), softmax(x, y)));
  SigmoidFocalLoss sigmoid;
  const auto xs = sigmoid_logits();
  const auto ts = sigmoid_targets();
  const auto ws = torch::rand({3, 4}, torch::kDouble);
  torch::nn::AnyModule any_sigmoid(sigmoid);
  EXPECT_TRUE(torch::equal(any_sigmoid.forward(xs, ts), sigmoid(xs, ts)));
  EXPECT_TRUE(torch::equal(any_sigmoid.forward(xs, ts, ws), sigmoid(xs, ts, ws)));
}
