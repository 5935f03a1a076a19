// proxyloss::FairLoss and proxyloss::functional::fair_loss: the seed's example,
// equality with the reference package, and one test per behaviour of the
// contract (spec/API.md, "FairLoss").
#include "support/fair_loss_oracle.h"
#include "support/test_support.h"

#include <proxyloss/fair_loss.h>
#include <proxyloss/fair_loss_op.h>
#include <proxyloss/reduction.h>

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

using proxyloss::FairLoss;
using proxyloss::FairLossOptions;
using test_support::max_abs_diff;

namespace {

namespace F = torch::nn::functional;

torch::Tensor long_tensor(std::vector<int64_t> values) {
  return torch::tensor(values, torch::kLong);
}

std::string printed(const FairLoss& loss) {
  std::ostringstream out;
  loss->pretty_print(out);
  return out.str();
}

oracle::FairLossParams params_of(const FairLossOptions& o) {
  oracle::FairLossParams p;
  p.beta = o.smooth_max_beta();
  p.k = o.scaling_factor();
  p.weight = o.weight();
  p.ignore_index = o.ignore_index();
  p.label_smoothing = o.label_smoothing();
  return p;
}

// A batch with a bit of everything: [6, 5] logits, one ignored row.
struct Batch {
  torch::Tensor logits;
  torch::Tensor targets;
};

Batch mixed_batch(torch::Dtype dtype = torch::kDouble) {
  torch::manual_seed(11);
  return {(torch::randn({6, 5}, torch::kDouble) * 2).to(dtype),
          long_tensor({0, 3, -100, 4, 1, 1})};
}

} // namespace

// The seed's README: cross-entropy prefers sample 2, FairLoss sample 1.
TEST(FairLoss, SeedExampleGivesTheSeedsNumbers) {
  const auto logits = torch::tensor({{0.34f, 0.33f, 0.33f}, {0.49f, 0.51f, 0.0f}});
  const auto targets = long_tensor({0, 0});
  const auto ce = F::cross_entropy(logits, targets,
                                   F::CrossEntropyFuncOptions().reduction(torch::kNone));
  FairLoss fair(FairLossOptions().reduction(torch::kNone));
  const auto loss = fair(logits, targets);
  ASSERT_EQ(loss.scalar_type(), torch::kFloat);
  const std::vector<double> want_ce = {1.0920, 0.9681};
  const std::vector<double> want_fair = {1.0920, 1.3014};
  for (int64_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(ce[i].item<double>(), want_ce[i], 5e-5) << i;
    EXPECT_NEAR(loss[i].item<double>(), want_fair[i], 5e-5) << i;
  }
  EXPECT_LT(loss[0].item<double>(), loss[1].item<double>());
  EXPECT_GT(ce[0].item<double>(), ce[1].item<double>());
}

// Values of the reference package pytorch-fairloss 0.1.1 (fairloss.FairLoss
// wrapping nn.CrossEntropyLoss(reduction="none", weight, label_smoothing)),
// computed with torch 1.13 in float64 (torch.set_default_dtype(torch.float64),
// under which the unmodified package computes entirely in float64) and
// printed with 17 significant digits.
TEST(FairLoss, EqualsTheReferencePackage) {
  struct Case {
    const char* name;
    std::vector<std::vector<double>> logits;
    std::vector<int64_t> targets;
    double beta;
    double k;
    proxyloss::reduction_t reduction;
    std::vector<double> weight; // empty: none
    double label_smoothing;
    std::vector<double> want;
  };
  const std::vector<std::vector<double>> z45 = {{1.25, -0.5, 0.75, 2.0, -1.5},
                                                {0.1, 0.2, 0.3, 0.4, 0.5},
                                                {3.0, 2.99, -2.0, 0.0, 1.0},
                                                {-0.25, -0.25, 1.5, -3.0, 0.5}};
  const std::vector<Case> cases = {
      {"seed_example",
       {{0.34, 0.33, 0.33}, {0.49, 0.51, 0.0}},
       {0, 0},
       1000.0,
       1000.0,
       torch::kNone,
       {},
       0.0,
       {1.0919718780501697, 1.3013917846631577}},
      {"defaults_mean",
       z45,
       {3, 4, 1, 0},
       1000.0,
       1000.0,
       torch::kMean,
       {},
       0.0,
       {1.3830678400754732}},
      {"defaults_sum",
       z45,
       {3, 4, 1, 0},
       1000.0,
       1000.0,
       torch::kSum,
       {},
       0.0,
       {5.5322713603018929}},
      {"soft_weighted_smoothed",
       z45,
       {3, 4, 1, 0},
       2.0,
       5.0,
       torch::kNone,
       {0.5, 1.0, 2.0, 1.5, 0.25},
       0.1,
       {1.1021805678076693, 0.67253584098441854, 1.2357858973790063, 1.4830545617865607}},
      {"large_logits",
       {{12.0, -7.5, 30.25, 29.5},
        {-40.0, -39.0, -41.5, -38.875},
        {100.0, 99.5, 0.0, -100.0}},
       {2, 1, 1},
       10.0,
       0.5,
       torch::kNone,
       {1.0, 2.0, 0.5, 1.0},
       0.0,
       {0.19343896290708082, 1.9073731493605095, 1.9792835398435875}},
      {"weighted_mean_is_plain",
       {{0.5, 1.5, -1.0}, {2.0, 0.0, 1.0}, {0.0, 0.0, 3.0}},
       {1, 0, 0},
       1000.0,
       1000.0,
       torch::kMean,
       {3.0, 0.5, 1.0},
       0.2,
       {3.4500795806555451}},
  };
  for (const auto& c : cases) {
    std::vector<torch::Tensor> rows;
    for (const auto& row : c.logits) {
      rows.push_back(torch::tensor(row, torch::kDouble));
    }
    auto options = FairLossOptions()
                       .smooth_max_beta(c.beta)
                       .scaling_factor(c.k)
                       .reduction(c.reduction)
                       .label_smoothing(c.label_smoothing);
    if (!c.weight.empty()) {
      options.weight(torch::tensor(c.weight, torch::kDouble));
    }
    const auto got =
        FairLoss(options)(torch::stack(rows), long_tensor(c.targets)).reshape({-1});
    ASSERT_EQ(got.numel(), static_cast<int64_t>(c.want.size())) << c.name;
    for (size_t i = 0; i < c.want.size(); ++i) {
      EXPECT_NEAR(got[i].item<double>(), c.want[i], 1e-12 * std::max(1.0, c.want[i]))
          << c.name << " [" << i << "]";
    }
  }
}

TEST(FairLoss, IsDefaultConstructibleWithTheDocumentedDefaults) {
  FairLoss fair;
  EXPECT_EQ(fair->options.smooth_max_beta(), 1000.0);
  EXPECT_EQ(fair->options.scaling_factor(), 1000.0);
  EXPECT_EQ(proxyloss::reduction_kind(fair->options.reduction()),
            proxyloss::Reduction::Mean);
  EXPECT_FALSE(fair->options.weight().defined());
  EXPECT_EQ(fair->options.ignore_index(), -100);
  EXPECT_EQ(fair->options.label_smoothing(), 0.0);
  const auto loss = fair(torch::randn({4, 3}), long_tensor({0, 1, 2, 0}));
  EXPECT_EQ(loss.dim(), 0);
}

TEST(FairLoss, PrettyPrintNamesEveryOption) {
  EXPECT_EQ(printed(FairLoss()),
            "proxyloss::FairLoss(smooth_max_beta=1000, scaling_factor=1000, "
            "reduction=kMean, weight=None, ignore_index=-100, label_smoothing=0)");
  EXPECT_EQ(printed(FairLoss(FairLossOptions()
                                 .smooth_max_beta(50)
                                 .scaling_factor(2.5)
                                 .reduction(torch::kNone)
                                 .weight(torch::ones({3}))
                                 .ignore_index(-1)
                                 .label_smoothing(0.1))),
            "proxyloss::FairLoss(smooth_max_beta=50, scaling_factor=2.5, "
            "reduction=kNone, weight=[3], ignore_index=-1, label_smoothing=0.1)");
}

TEST(FairLoss, MatchesTheOracleForEveryReduction) {
  const auto batch = mixed_batch();
  const auto options = FairLossOptions()
                           .smooth_max_beta(20)
                           .scaling_factor(3)
                           .weight(torch::rand({5}, torch::kDouble) + 0.5)
                           .label_smoothing(0.05);
  for (const auto reduction :
       {proxyloss::reduction_t(torch::kNone), proxyloss::reduction_t(torch::kSum),
        proxyloss::reduction_t(torch::kMean)}) {
    auto o = options;
    o.reduction(reduction);
    const auto got = FairLoss(o)(batch.logits, batch.targets);
    const auto want = oracle::fair_loss(batch.logits, batch.targets, params_of(o),
                                        proxyloss::reduction_kind(reduction));
    EXPECT_LE(max_abs_diff(got, want), 1e-12) << proxyloss::reduction_name(reduction);
  }
}

// The reference averages the per-sample losses; torch's weighted
// cross-entropy would divide by the sum of the targets' weights instead.
TEST(FairLoss, MeanIsThePlainMeanOverSamplesNotTheWeightedMean) {
  const auto logits = torch::randn({5, 3}, torch::kDouble);
  const auto targets = long_tensor({0, 1, 2, 0, 0});
  const auto weight = torch::tensor({4.0, 0.5, 1.0}, torch::kDouble);
  const auto rows =
      FairLoss(FairLossOptions().weight(weight).reduction(torch::kNone))(logits, targets);
  const auto mean = FairLoss(FairLossOptions().weight(weight))(logits, targets);
  EXPECT_NEAR(mean.item<double>(), rows.mean().item<double>(), 1e-14);
  const double weighted_mean =
      rows.sum().item<double>() / weight.index_select(0, targets).sum().item<double>();
  EXPECT_GT(std::abs(mean.item<double>() - weighted_mean), 1e-3);
}

TEST(FairLoss, IgnoredRowsAreZeroInNoneAndLeftOutOfSumAndMean) {
  const auto batch = mixed_batch();
  const auto rows =
      FairLoss(FairLossOptions().reduction(torch::kNone))(batch.logits, batch.targets);
  EXPECT_EQ(rows[2].item<double>(), 0.0);
  const auto kept = long_tensor({0, 1, 3, 4, 5});
  const auto kept_rows = FairLoss(FairLossOptions().reduction(torch::kNone))(
      batch.logits.index_select(0, kept), batch.targets.index_select(0, kept));
  EXPECT_LE(max_abs_diff(rows.index_select(0, kept), kept_rows), 1e-14);
  const auto mean = FairLoss()(batch.logits, batch.targets);
  EXPECT_NEAR(mean.item<double>(), kept_rows.mean().item<double>(), 1e-14);
  const auto sum =
      FairLoss(FairLossOptions().reduction(torch::kSum))(batch.logits, batch.targets);
  EXPECT_NEAR(sum.item<double>(), kept_rows.sum().item<double>(), 1e-13);
}

TEST(FairLoss, IgnoredRowsReceiveNoGradient) {
  const auto batch = mixed_batch();
  auto logits = batch.logits.clone().requires_grad_(true);
  FairLoss()(logits, batch.targets).backward();
  EXPECT_EQ(logits.grad()[2].abs().sum().item<double>(), 0.0);
  EXPECT_GT(logits.grad()[0].abs().sum().item<double>(), 0.0);
}

// As torch's mean of nothing (and the reference on an empty batch): NaN,
// with a zero gradient rather than NaN.
TEST(FairLoss, MeanOverNoCountedRowIsNaN) {
  auto logits = torch::randn({3, 4}).requires_grad_(true);
  const auto all_ignored = long_tensor({-100, -100, -100});
  const auto mean = FairLoss()(logits, all_ignored);
  EXPECT_TRUE(std::isnan(mean.item<float>()));
  mean.backward();
  EXPECT_EQ(logits.grad().abs().sum().item<float>(), 0.0f);
  const auto sum =
      FairLoss(FairLossOptions().reduction(torch::kSum))(logits, all_ignored);
  EXPECT_EQ(sum.item<float>(), 0.0f);
  const auto empty = FairLoss()(torch::zeros({0, 4}), torch::zeros({0}, torch::kLong));
  EXPECT_TRUE(std::isnan(empty.item<float>()));
}

TEST(FairLoss, GradientOfTheMeanMatchesTheOracle) {
  const auto batch = mixed_batch();
  const auto options = FairLossOptions()
                           .smooth_max_beta(5)
                           .scaling_factor(2)
                           .weight(torch::rand({5}, torch::kDouble) + 0.5)
                           .label_smoothing(0.1);
  auto x = batch.logits.clone().requires_grad_(true);
  FairLoss fair(options);
  fair(x, batch.targets).backward();
  auto y = batch.logits.clone().requires_grad_(true);
  oracle::fair_loss(y, batch.targets, params_of(options), proxyloss::Reduction::Mean)
      .backward();
  EXPECT_LE(max_abs_diff(x.grad(), y.grad()), 1e-12);
}

// k = 0 turns the penalty off: what is left is torch's cross-entropy, with
// its weight and label smoothing.
TEST(FairLoss, ZeroScalingFactorGivesTorchsCrossEntropy) {
  const auto batch = mixed_batch();
  const auto weight = torch::rand({5}, torch::kDouble) + 0.5;
  for (const double smoothing : {0.0, 0.3, 1.0}) {
    const auto got = FairLoss(FairLossOptions()
                                  .scaling_factor(0)
                                  .weight(weight)
                                  .label_smoothing(smoothing)
                                  .reduction(torch::kNone))(batch.logits, batch.targets);
    const auto want = F::cross_entropy(
        batch.logits, batch.targets,
        F::CrossEntropyFuncOptions().weight(weight).label_smoothing(smoothing).reduction(
            torch::kNone));
    EXPECT_LE(max_abs_diff(got, want), 1e-13) << smoothing;
  }
}

// With large beta and k the penalty is a step: ~0 when the target is the
// argmax, ~1/C when it is not.
TEST(FairLoss, PenaltyIsNearZeroForACorrectArgmaxAndNearOneOverCForAWrongOne) {
  const auto logits = torch::tensor({{2.0, 0.0, 0.5, 1.0}, {0.0, 2.0, 0.5, 1.0}});
  const auto targets = long_tensor({0, 0});
  const auto fair = FairLoss(FairLossOptions().reduction(torch::kNone))(logits, targets);
  const auto ce = F::cross_entropy(logits, targets,
                                   F::CrossEntropyFuncOptions().reduction(torch::kNone));
  const auto penalty = fair - ce;
  EXPECT_NEAR(penalty[0].item<float>(), 0.0, 1e-6);
  EXPECT_NEAR(penalty[1].item<float>(), 0.25, 1e-6);
}

TEST(FairLoss, FunctionalEqualsTheModule) {
  const auto batch = mixed_batch(torch::kFloat);
  const auto options = FairLossOptions().smooth_max_beta(30).scaling_factor(7).weight(
      torch::rand({5}) + 1);
  EXPECT_TRUE(
      torch::equal(proxyloss::functional::fair_loss(batch.logits, batch.targets, options),
                   FairLoss(options)(batch.logits, batch.targets)));
  EXPECT_TRUE(torch::equal(proxyloss::functional::fair_loss(batch.logits, batch.targets),
                           FairLoss()(batch.logits, batch.targets)));
}

TEST(FairLoss, HalfAndBFloat16LogitsAreComputedInFloat32) {
  const auto batch = mixed_batch(torch::kFloat);
  for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
    auto low = batch.logits.to(dtype).requires_grad_(true);
    const auto loss =
        FairLoss(FairLossOptions().reduction(torch::kNone))(low, batch.targets);
    EXPECT_EQ(loss.scalar_type(), dtype);
    auto wide = low.detach().to(torch::kFloat).requires_grad_(true);
    const auto want =
        FairLoss(FairLossOptions().reduction(torch::kNone))(wide, batch.targets);
    EXPECT_TRUE(torch::equal(loss, want.to(dtype))) << dtype;
    loss.sum().backward();
    want.sum().backward();
    EXPECT_EQ(low.grad().scalar_type(), dtype);
    EXPECT_TRUE(torch::equal(low.grad(), wide.grad().to(dtype))) << dtype;
  }
}

TEST(FairLoss, IntegerTargetsOfAnyWidthAreAccepted) {
  const auto batch = mixed_batch();
  const auto targets = long_tensor({0, 3, 2, 4, 1, 1});
  const auto want = FairLoss()(batch.logits, targets);
  for (const auto dtype : {torch::kInt, torch::kShort, torch::kChar, torch::kByte}) {
    EXPECT_TRUE(torch::equal(FairLoss()(batch.logits, targets.to(dtype)), want)) << dtype;
  }
}

TEST(FairLoss, WeightIsABufferThatFollowsTheModule) {
  FairLoss fair(FairLossOptions().weight(torch::tensor({1.0f, 2.0f, 3.0f})));
  const auto buffers = fair->named_buffers();
  ASSERT_TRUE(buffers.contains("weight"));
  fair->to(torch::kDouble);
  EXPECT_EQ(fair->weight.scalar_type(), torch::kDouble);
  const auto logits = torch::randn({4, 3}, torch::kDouble);
  const auto targets = long_tensor({0, 1, 2, 2});
  oracle::FairLossParams p;
  p.weight = torch::tensor({1.0, 2.0, 3.0}, torch::kDouble);
  EXPECT_NEAR(
      fair(logits, targets).item<double>(),
      oracle::fair_loss(logits, targets, p, proxyloss::Reduction::Mean).item<double>(),
      1e-12);
}

TEST(FairLoss, SaveAndLoadRoundTripTheWeight) {
  const test_support::UniqueTempFile file("fair_loss_weight");
  const std::string& path = file.path();
  FairLoss saved(FairLossOptions().weight(torch::tensor({0.5f, 2.0f})));
  torch::save(saved, path);
  FairLoss loaded(FairLossOptions().weight(torch::zeros({2})));
  torch::load(loaded, path);
  EXPECT_TRUE(torch::equal(loaded->weight, torch::tensor({0.5f, 2.0f})));
  FairLoss unweighted;
  torch::save(unweighted, path);
  FairLoss loaded_unweighted;
  torch::load(loaded_unweighted, path);
  EXPECT_FALSE(loaded_unweighted->weight.defined());
}

TEST(FairLoss, CloneCopiesOptionsAndWeight) {
  FairLoss fair(FairLossOptions().smooth_max_beta(3).weight(torch::tensor({1.0f, 4.0f})));
  const auto copy = std::dynamic_pointer_cast<proxyloss::FairLossImpl>(fair->clone());
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->options.smooth_max_beta(), 3.0);
  EXPECT_TRUE(torch::equal(copy->weight, fair->weight));
  copy->weight.mul_(2);
  EXPECT_TRUE(torch::equal(fair->weight, torch::tensor({1.0f, 4.0f})));
}

TEST(FairLoss, OptionsEditedAfterConstructionTakeEffect) {
  const auto batch = mixed_batch();
  FairLoss fair;
  const auto before = fair(batch.logits, batch.targets);
  fair->options.smooth_max_beta(2.0).scaling_factor(3.0);
  const auto after = fair(batch.logits, batch.targets);
  const auto want = FairLoss(FairLossOptions().smooth_max_beta(2.0).scaling_factor(3.0))(
      batch.logits, batch.targets);
  EXPECT_TRUE(torch::equal(after, want));
  EXPECT_FALSE(torch::equal(before, after));
}

TEST(FairLoss, InferenceModeGivesTheSameLoss) {
  const auto batch = mixed_batch();
  const auto want = FairLoss()(batch.logits, batch.targets);
  c10::InferenceMode guard;
  EXPECT_TRUE(torch::equal(FairLoss()(batch.logits, batch.targets), want));
}

// --- sample_weight ---------------------------------------------------------------
// Our definition (the reference has none), the focal losses' convention:
// none w_i loss_i, sum their sum, mean their sum over the weight mass of the
// rows not ignored (1 where that mass is exactly 0).

namespace {

const std::vector<proxyloss::reduction_t>& all_reductions() {
  static const std::vector<proxyloss::reduction_t> reductions = {
      torch::kNone, torch::kSum, torch::kMean};
  return reductions;
}

FairLossOptions weighted_test_options() {
  torch::manual_seed(23);
  return FairLossOptions()
      .smooth_max_beta(5)
      .scaling_factor(2)
      .weight(torch::rand({5}, torch::kDouble) + 0.5)
      .label_smoothing(0.1);
}

// Per-row weights for mixed_batch(): one zero, the ignored row (2) weighted.
torch::Tensor row_weights() {
  return torch::tensor({0.5, 2.0, 7.0, 0.0, 1.25, 3.0}, torch::kDouble);
}

// Central differences of a scalar function of a double tensor.
template <typename Fn>
torch::Tensor central_differences(Fn&& fn, const torch::Tensor& x, double h = 1e-6) {
  auto point = x.detach().clone();
  auto grad = torch::zeros_like(point);
  auto flat = point.view({-1});
  auto flat_grad = grad.view({-1});
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double saved = flat[i].item<double>();
    flat[i] = saved + h;
    const double up = fn(point).template item<double>();
    flat[i] = saved - h;
    const double down = fn(point).template item<double>();
    flat[i] = saved;
    flat_grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

} // namespace

TEST(FairLoss, SampleWeightScalesRowsAndMeanDividesByTheMassOfTheRowsNotIgnored) {
  const auto batch = mixed_batch();
  const auto w = row_weights();
  for (const auto& reduction : all_reductions()) {
    auto o = weighted_test_options();
    o.reduction(reduction);
    const auto got = FairLoss(o)->forward(batch.logits, batch.targets, w);
    const auto want =
        oracle::weighted_fair_loss(batch.logits, batch.targets, w, params_of(o),
                                   proxyloss::reduction_kind(reduction));
    EXPECT_LE(max_abs_diff(got, want), 1e-12) << proxyloss::reduction_name(reduction);
  }
  // The mean by hand: the ignored row's weight 7 is not in the denominator.
  auto o = weighted_test_options();
  const auto rows = FairLoss(o.reduction(torch::kNone))(batch.logits, batch.targets);
  const double want = (rows * w).sum().item<double>() / (0.5 + 2.0 + 0.0 + 1.25 + 3.0);
  EXPECT_NEAR(FairLoss(weighted_test_options())
                  ->forward(batch.logits, batch.targets, w)
                  .item<double>(),
              want, 1e-13);
}

TEST(FairLoss, SampleWeightGradientMatchesTheOracleAndCentralDifferences) {
  const auto batch = mixed_batch();
  const auto w = row_weights();
  for (const auto& reduction : all_reductions()) {
    auto o = weighted_test_options();
    o.reduction(reduction);
    FairLoss fair(o);
    const auto kind = proxyloss::reduction_kind(reduction);
    // A scalar of the loss: the sum of none's rows, each with its own factor.
    const auto cotangent = kind == proxyloss::Reduction::None
                               ? torch::linspace(-1.0, 2.0, 6, torch::kDouble)
                               : torch::ones({}, torch::kDouble);
    const auto scalar = [&](const torch::Tensor& x) {
      return (fair->forward(x, batch.targets, w) * cotangent).sum();
    };
    auto x = batch.logits.clone().requires_grad_(true);
    scalar(x).backward();
    auto y = batch.logits.clone().requires_grad_(true);
    (oracle::weighted_fair_loss(y, batch.targets, w, params_of(o), kind) * cotangent)
        .sum()
        .backward();
    const std::string name = proxyloss::reduction_name(reduction);
    EXPECT_LE(max_abs_diff(x.grad(), y.grad()), 1e-12) << name;
    EXPECT_LE(max_abs_diff(x.grad(), central_differences(scalar, batch.logits)), 1e-8)
        << name;
    // Rows of weight 0 and ignored rows get no gradient.
    EXPECT_EQ(x.grad()[3].abs().sum().item<double>(), 0.0) << name;
    EXPECT_EQ(x.grad()[2].abs().sum().item<double>(), 0.0) << name;
  }
}

// The path without weights is the one before sample_weight existed: the
// per-row op reduced by its plain sum / count of the rows not ignored.
TEST(FairLoss, WithoutSampleWeightTheLossIsBitwiseUnchanged) {
  for (const auto dtype : {torch::kFloat, torch::kDouble}) {
    const auto batch = mixed_batch(dtype);
    auto o = weighted_test_options();
    o.weight(o.weight().to(dtype));
    const auto rows = proxyloss::ops::fair_loss(batch.logits, batch.targets, o.weight(),
                                                o.smooth_max_beta(), o.scaling_factor(),
                                                o.ignore_index(), o.label_smoothing());
    const auto count = batch.targets.ne(o.ignore_index()).sum();
    FairLoss mean(o);
    EXPECT_TRUE(torch::equal(mean(batch.logits, batch.targets), rows.sum() / count));
    EXPECT_TRUE(torch::equal(mean->forward(batch.logits, batch.targets, torch::Tensor()),
                             mean(batch.logits, batch.targets)));
    EXPECT_TRUE(torch::equal(
        FairLoss(o.reduction(torch::kNone))(batch.logits, batch.targets), rows));
    EXPECT_TRUE(torch::equal(
        FairLoss(o.reduction(torch::kSum))(batch.logits, batch.targets), rows.sum()));
  }
}

TEST(FairLoss, SampleWeightOfOnesGivesTheUnweightedValues) {
  const auto batch = mixed_batch();
  const auto ones = torch::ones({6}, torch::kDouble);
  for (const auto& reduction : all_reductions()) {
    auto o = weighted_test_options();
    FairLoss fair(o.reduction(reduction));
    EXPECT_LE(max_abs_diff(fair->forward(batch.logits, batch.targets, ones),
                           fair(batch.logits, batch.targets)),
              1e-15)
        << proxyloss::reduction_name(reduction);
  }
}

// Weight 0 takes a row out exactly as leaving it out of the batch would.
TEST(FairLoss, ZeroSampleWeightsLeaveRowsOutOfTheSumAndTheMass) {
  const auto batch = mixed_batch();
  const auto w = torch::tensor({1.0, 0.0, 1.0, 2.0, 0.0, 1.0}, torch::kDouble);
  const auto kept = long_tensor({0, 3, 5}); // nonzero weight, not ignored
  const auto o = weighted_test_options();
  const auto got = FairLoss(o)->forward(batch.logits, batch.targets, w);
  const auto want =
      FairLoss(o)->forward(batch.logits.index_select(0, kept),
                           batch.targets.index_select(0, kept), w.index_select(0, kept));
  EXPECT_NEAR(got.item<double>(), want.item<double>(), 1e-14);
}

// Zero weight mass (all weights 0, every row ignored, or no rows): the
// weighted mean divides by 1, giving 0 with a zero gradient, as the focal
// losses; the unweighted mean of nothing stays NaN (torch's).
TEST(FairLoss, WeightedMeanOverZeroMassIsZeroWithAZeroGradient) {
  const auto batch = mixed_batch();
  auto x = batch.logits.clone().requires_grad_(true);
  const auto zero =
      FairLoss()->forward(x, batch.targets, torch::zeros({6}, torch::kDouble));
  EXPECT_EQ(zero.item<double>(), 0.0);
  zero.backward();
  EXPECT_EQ(x.grad().abs().sum().item<double>(), 0.0);

  auto z = torch::randn({3, 4}).requires_grad_(true);
  const auto all_ignored = long_tensor({-100, -100, -100});
  const auto w = torch::tensor({1.0f, 2.0f, 3.0f});
  EXPECT_TRUE(std::isnan(FairLoss()(z, all_ignored).item<float>()));
  const auto weighted = FairLoss()->forward(z, all_ignored, w);
  EXPECT_EQ(weighted.item<float>(), 0.0f);
  weighted.backward();
  EXPECT_EQ(z.grad().abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(FairLoss(FairLossOptions().reduction(torch::kSum))
                ->forward(z, all_ignored, w)
                .item<float>(),
            0.0f);

  const auto empty = FairLoss()->forward(
      torch::zeros({0, 4}), torch::zeros({0}, torch::kLong), torch::zeros({0}));
  EXPECT_EQ(empty.item<float>(), 0.0f);
}

TEST(FairLoss, IgnoredRowsWithSampleWeightsContributeNothing) {
  const auto batch = mixed_batch();
  const auto w = row_weights(); // row 2, ignored, has weight 7
  const auto kept = long_tensor({0, 1, 3, 4, 5});
  for (const auto& reduction : all_reductions()) {
    auto o = weighted_test_options();
    FairLoss fair(o.reduction(reduction));
    auto x = batch.logits.clone().requires_grad_(true);
    const auto got = fair->forward(x, batch.targets, w);
    const auto want =
        fair->forward(batch.logits.index_select(0, kept),
                      batch.targets.index_select(0, kept), w.index_select(0, kept));
    const std::string name = proxyloss::reduction_name(reduction);
    if (proxyloss::reduction_kind(reduction) == proxyloss::Reduction::None) {
      EXPECT_EQ(got[2].item<double>(), 0.0) << name;
      EXPECT_LE(max_abs_diff(got.index_select(0, kept), want), 1e-14) << name;
    } else {
      EXPECT_NEAR(got.item<double>(), want.item<double>(), 1e-13) << name;
    }
    got.sum().backward();
    EXPECT_EQ(x.grad()[2].abs().sum().item<double>(), 0.0) << name;
  }
}

TEST(FairLoss, SampleWeightIsDetachedAndCastToTheComputeDtype) {
  const auto batch = mixed_batch();
  auto x = batch.logits.clone().requires_grad_(true);
  auto w = (torch::rand({6}) + 0.5).requires_grad_(true); // float32, with a graph
  const auto loss = FairLoss()->forward(x, batch.targets, w);
  EXPECT_EQ(loss.scalar_type(), torch::kDouble);
  loss.backward();
  EXPECT_FALSE(w.grad().defined());
  EXPECT_TRUE(x.grad().defined());
  // float16 logits compute in float32, with the weight cast to float32.
  const auto half = batch.logits.to(torch::kHalf);
  const auto w64 = row_weights();
  const auto low = FairLoss(FairLossOptions().reduction(torch::kNone))
                       ->forward(half, batch.targets, w64);
  EXPECT_EQ(low.scalar_type(), torch::kHalf);
  const auto wide =
      FairLoss(FairLossOptions().reduction(torch::kNone))
          ->forward(half.to(torch::kFloat), batch.targets, w64.to(torch::kFloat));
  EXPECT_TRUE(torch::equal(low, wide.to(torch::kHalf)));
}

TEST(FairLoss, FunctionalTakesSampleWeight) {
  const auto batch = mixed_batch();
  const auto o = weighted_test_options();
  const auto w = row_weights();
  EXPECT_TRUE(
      torch::equal(proxyloss::functional::fair_loss(batch.logits, batch.targets, o, w),
                   FairLoss(o)->forward(batch.logits, batch.targets, w)));
  EXPECT_TRUE(torch::equal(
      proxyloss::functional::fair_loss(batch.logits, batch.targets, o, torch::Tensor()),
      FairLoss(o)(batch.logits, batch.targets)));
}

// forward's sample_weight is a default argument (FORWARD_HAS_DEFAULT_ARGS),
// so the type-erased holders call it with two arguments or three.
TEST(FairLoss, AnyModuleAndSequentialCallForwardWithTwoOrThreeArguments) {
  const auto batch = mixed_batch();
  const auto w = row_weights();
  FairLoss fair(weighted_test_options());
  torch::nn::AnyModule any(fair);
  EXPECT_TRUE(torch::equal(any.forward(batch.logits, batch.targets),
                           fair(batch.logits, batch.targets)));
  EXPECT_TRUE(torch::equal(any.forward(batch.logits, batch.targets, w),
                           fair(batch.logits, batch.targets, w)));
  torch::nn::Sequential sequential(fair);
  EXPECT_TRUE(torch::equal(sequential->forward(batch.logits, batch.targets),
                           fair(batch.logits, batch.targets)));
}
