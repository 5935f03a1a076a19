// Every bad option and bad input of FairLoss raises c10::Error with a message
// naming the option or argument, what was expected and what was got.
#include "support/test_support.h"

#include <proxyloss/fair_loss.h>
#include <proxyloss/fair_loss_op.h>

#include <cmath>
#include <limits>

using proxyloss::FairLoss;
using proxyloss::FairLossOptions;
using test_support::throws_with;

namespace {

FairLoss make(FairLossOptions options) {
  return FairLoss(std::move(options));
}

torch::Tensor labels(std::vector<int64_t> values) {
  return torch::tensor(values, torch::kLong);
}

constexpr double kInf = std::numeric_limits<double>::infinity();

} // namespace

TEST(FairLossErrors, SmoothMaxBetaMustBeFiniteAndPositive) {
  EXPECT_TRUE(throws_with([] { make(FairLossOptions().smooth_max_beta(0)); },
                          {"FairLoss", "smooth_max_beta", "> 0", "got 0"}));
  EXPECT_TRUE(throws_with([] { make(FairLossOptions().smooth_max_beta(-2)); },
                          {"smooth_max_beta", "got -2"}));
  EXPECT_TRUE(throws_with([] { make(FairLossOptions().smooth_max_beta(std::nan(""))); },
                          {"smooth_max_beta", "finite", "got nan"}));
  EXPECT_TRUE(throws_with([] { make(FairLossOptions().smooth_max_beta(kInf)); },
                          {"smooth_max_beta", "got inf"}));
}

TEST(FairLossErrors, ScalingFactorMustBeFiniteAndNonNegative) {
  EXPECT_TRUE(throws_with([] { make(FairLossOptions().scaling_factor(-1)); },
                          {"FairLoss", "scaling_factor", ">= 0", "got -1"}));
  EXPECT_TRUE(throws_with([] { make(FairLossOptions().scaling_factor(std::nan(""))); },
                          {"scaling_factor", "got nan"}));
  EXPECT_TRUE(throws_with([] { make(FairLossOptions().scaling_factor(kInf)); },
                          {"scaling_factor", "finite", "got inf"}));
  EXPECT_NO_THROW(make(FairLossOptions().scaling_factor(0)));
}

TEST(FairLossErrors, LabelSmoothingMustBeInTheUnitInterval) {
  EXPECT_TRUE(throws_with([] { make(FairLossOptions().label_smoothing(-0.1)); },
                          {"FairLoss", "label_smoothing", "[0, 1]", "got -0.1"}));
  EXPECT_TRUE(throws_with([] { make(FairLossOptions().label_smoothing(1.5)); },
                          {"label_smoothing", "got 1.5"}));
  EXPECT_TRUE(throws_with([] { make(FairLossOptions().label_smoothing(std::nan(""))); },
                          {"label_smoothing", "got nan"}));
  EXPECT_NO_THROW(make(FairLossOptions().label_smoothing(1.0)));
}

TEST(FairLossErrors, WeightMustBeAOneDimensionalFloatingTensor) {
  EXPECT_TRUE(throws_with(
      [] {
        make(FairLossOptions().weight(torch::ones({2, 3})));
      },
      {"FairLoss", "weight", "1-D", "[2, 3]"}));
  EXPECT_TRUE(
      throws_with([] { make(FairLossOptions().weight(torch::ones({3}, torch::kLong))); },
                  {"weight", "floating point", "Long"}));
}

TEST(FairLossErrors, WeightMustHaveOneEntryPerClass) {
  FairLoss fair(FairLossOptions().weight(torch::ones({4})));
  EXPECT_TRUE(throws_with(
      [&] {
        fair(torch::randn({2, 3}), labels({0, 1}));
      },
      {"FairLoss", "weight", "[C] with C = 3", "[4]"}));
}

TEST(FairLossErrors, WeightMustBeOnTheDeviceOfLogits) {
  const auto options = FairLossOptions().weight(torch::ones({3}, torch::kMeta));
  EXPECT_TRUE(throws_with(
      [&] {
        proxyloss::functional::fair_loss(torch::randn({2, 3}), labels({0, 1}), options);
      },
      {"fair_loss", "weight", "device of logits", "meta"}));
}

TEST(FairLossErrors, OptionsEditedAfterConstructionAreCheckedAtForward) {
  FairLoss fair;
  fair->options.smooth_max_beta(-1);
  EXPECT_TRUE(throws_with(
      [&] {
        fair(torch::randn({2, 3}), labels({0, 1}));
      },
      {"FairLoss", "smooth_max_beta", "got -1"}));
}

TEST(FairLossErrors, LogitsMustBeDefined) {
  EXPECT_TRUE(throws_with([] { FairLoss()(torch::Tensor(), labels({0})); },
                          {"FairLoss", "logits", "undefined"}));
}

TEST(FairLossErrors, LogitsMustBeTwoDimensionalWithAtLeastOneClass) {
  EXPECT_TRUE(throws_with(
      [] {
        FairLoss()(torch::randn({4}), labels({0, 1, 0, 1}));
      },
      {"FairLoss", "logits", "[N, C]", "got [4]"}));
  EXPECT_TRUE(throws_with(
      [] {
        FairLoss()(torch::randn({2, 3, 4}), labels({0, 1}));
      },
      {"logits", "[N, C]", "got [2, 3, 4]"}));
  EXPECT_TRUE(throws_with(
      [] {
        FairLoss()(torch::randn({2, 0}), labels({0, 1}));
      },
      {"logits", "C >= 1", "got [2, 0]"}));
}

TEST(FairLossErrors, LogitsMustBeFloatingPoint) {
  EXPECT_TRUE(throws_with(
      [] {
        FairLoss()(torch::ones({2, 3}, torch::kLong), labels({0, 1}));
      },
      {"FairLoss", "logits", "floating point", "got Long"}));
}

TEST(FairLossErrors, TargetsMustBeDefined) {
  EXPECT_TRUE(throws_with(
      [] {
        FairLoss()(torch::randn({2, 3}), torch::Tensor());
      },
      {"FairLoss", "targets", "undefined"}));
}

TEST(FairLossErrors, TargetsMustBeOneDimensionalWithOneEntryPerRow) {
  EXPECT_TRUE(throws_with(
      [] {
        FairLoss()(torch::randn({2, 3}), labels({0, 1, 2}));
      },
      {"FairLoss", "targets", "[N] with N = 2", "got [3]"}));
  EXPECT_TRUE(throws_with(
      [] {
        FairLoss()(torch::randn({2, 3}), labels({0, 1}).unsqueeze(1));
      },
      {"targets", "[N] with N = 2", "got [2, 1]"}));
}

TEST(FairLossErrors, TargetsMustBeIntegers) {
  EXPECT_TRUE(throws_with(
      [] {
        FairLoss()(torch::randn({2, 3}), torch::zeros({2}));
      },
      {"FairLoss", "targets", "integer", "got Float"}));
  EXPECT_TRUE(throws_with(
      [] {
        FairLoss()(torch::randn({2, 3}), torch::zeros({2}, torch::kBool));
      },
      {"targets", "integer", "got Bool"}));
}

TEST(FairLossErrors, TargetsMustBeOnTheDeviceOfLogits) {
  EXPECT_TRUE(throws_with(
      [] {
        FairLoss()(torch::randn({2, 3}),
                   torch::zeros({2}, torch::dtype(torch::kLong).device(torch::kMeta)));
      },
      {"FairLoss", "targets", "device of logits", "meta"}));
}

TEST(FairLossErrors, TargetsOutsideTheClassesThatAreNotIgnoredAreErrors) {
  EXPECT_TRUE(throws_with(
      [] {
        FairLoss()(torch::randn({4, 3}), labels({0, 3, 1, -1}));
      },
      {"targets", "[0, 3)", "ignore_index=-100", "got [3, -1]", "rows [1, 3]"}));
  EXPECT_TRUE(throws_with(
      [] {
        FairLoss(FairLossOptions().ignore_index(-1))(torch::randn({2, 3}),
                                                     labels({-100, 0}));
      },
      {"targets", "ignore_index=-1", "got [-100]"}));
  EXPECT_NO_THROW(FairLoss(FairLossOptions().ignore_index(-1))(torch::randn({2, 3}),
                                                               labels({-1, 2})));
}

TEST(FairLossErrors, TheOpChecksItsOwnContract) {
  const auto logits = torch::randn({2, 3});
  auto call = [](const torch::Tensor& z, const torch::Tensor& t,
                 const proxyloss::optional<torch::Tensor>& w) {
    return proxyloss::ops::fair_loss(z, t, w, 1000.0, 1000.0, -100, 0.0);
  };
  EXPECT_TRUE(throws_with(
      [&] {
        call(logits, labels({0, 1}).to(torch::kInt), {});
      },
      {"proxyloss::fair_loss", "targets", "int64", "got Int"}));
  EXPECT_TRUE(throws_with(
      [&] {
        call(logits.to(torch::kHalf), labels({0, 1}), {});
      },
      {"proxyloss::fair_loss", "logits", "float32 or float64", "Half"}));
  EXPECT_TRUE(throws_with(
      [&] {
        call(logits, labels({0, 1}), torch::ones({3}, torch::kDouble));
      },
      {"proxyloss::fair_loss", "weight", "dtype of logits", "got Double"}));
  EXPECT_TRUE(throws_with(
      [&] {
        proxyloss::ops::fair_loss(logits, labels({0, 1}), {}, 0.0, 1.0, -100, 0.0);
      },
      {"proxyloss::fair_loss", "smooth_max_beta", "got 0"}));
}

// sample_weight: [N], floating, finite, >= 0, on the device of logits; each
// violation a c10::ValueError naming the loss and sample_weight.
TEST(FairLossErrors, BadSampleWeightsAreValueErrorsNamingSampleWeight) {
  const auto z = torch::randn({4, 3});
  const auto y = labels({0, 1, 2, 0});
  FairLoss fair;
  const auto value_error = [&](const torch::Tensor& w) {
    try {
      fair->forward(z, y, w);
    } catch (const c10::ValueError&) {
      return true;
    } catch (...) {
    }
    return false;
  };
  const auto negative = torch::tensor({1.0f, -2.0f, 1.0f, 1.0f});
  EXPECT_TRUE(throws_with(
      [&] { fair->forward(z, y, negative); },
      {"FairLoss", "sample_weight must be finite and >= 0", "-2", "at rows [1]"}));
  EXPECT_TRUE(value_error(negative));
  const auto nan = torch::tensor({1.0f, 1.0f, std::nanf(""), 1.0f});
  EXPECT_TRUE(throws_with([&] { fair->forward(z, y, nan); },
                          {"FairLoss", "sample_weight must be finite", "at rows [2]"}));
  EXPECT_TRUE(value_error(nan));
  const auto inf = torch::full({4}, kInf, torch::kDouble);
  EXPECT_TRUE(throws_with([&] { fair->forward(z, y, inf); },
                          {"FairLoss", "sample_weight must be finite"}));
  // Checked in its own dtype: a float64 -1e-300 (-0 in float32) is refused.
  EXPECT_TRUE(value_error(torch::tensor({1.0, -1e-300, 1.0, 1.0}, torch::kDouble)));
  for (const auto& shape :
       {std::vector<int64_t>{3}, std::vector<int64_t>{4, 1}, std::vector<int64_t>{}}) {
    const auto w = torch::ones(shape);
    EXPECT_TRUE(throws_with([&] { fair->forward(z, y, w); },
                            {"FairLoss", "sample_weight", "[N] with N = 4"}))
        << c10::IntArrayRef(shape);
    EXPECT_TRUE(value_error(w));
  }
  const auto integer = torch::ones({4}, torch::kLong);
  EXPECT_TRUE(throws_with([&] { fair->forward(z, y, integer); },
                          {"FairLoss", "sample_weight must be floating point", "Long"}));
  EXPECT_TRUE(value_error(integer));
  EXPECT_TRUE(throws_with([&] { fair->forward(z, y, torch::ones({4}, torch::kMeta)); },
                          {"FairLoss", "sample_weight", "device of logits", "meta"}));
}

TEST(FairLossErrors, TheReducedOpNamesSampleWeight) {
  EXPECT_TRUE(throws_with(
      [] {
        proxyloss::ops::fair_loss_reduced(torch::randn({2, 3}), labels({0, 1}), {}, 10.0,
                                          10.0, "mean", -100, 0.0,
                                          torch::tensor({1.0, -1.0}));
      },
      {"proxyloss::fair_loss_reduced", "sample_weight must be finite and >= 0"}));
  EXPECT_TRUE(throws_with(
      [] {
        proxyloss::functional::fair_loss(torch::randn({2, 3}), labels({0, 1}), {},
                                         torch::ones({5}));
      },
      {"proxyloss::fair_loss_reduced", "sample_weight", "[N] with N = 2", "[5]"}));
}
