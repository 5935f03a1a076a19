// Every bad option and bad input of SmoothAPLoss raises c10::Error with a
// message naming the argument, what was expected and what was got.
#include "support/test_support.h"

#include <proxyloss/proxyloss.h>

using proxyloss::SmoothAPLoss;
using proxyloss::SmoothAPLossOptions;
using test_support::throws_with;

namespace {

SmoothAPLoss make(SmoothAPLossOptions options) {
  return SmoothAPLoss(std::move(options));
}

torch::Tensor labels(std::initializer_list<int64_t> values) {
  return torch::tensor(std::vector<int64_t>(values), torch::kLong);
}

} // namespace

TEST(SmoothAPLossErrors, NumClassesMustBePositive) {
  EXPECT_TRUE(
      throws_with([] { make(SmoothAPLossOptions(0)); }, {"num_classes", "> 0", "got 0"}));
  EXPECT_TRUE(
      throws_with([] { make(SmoothAPLossOptions(-3)); }, {"num_classes", "got -3"}));
}

TEST(SmoothAPLossErrors, QueueSizeMustBeNonNegative) {
  EXPECT_TRUE(throws_with([] { make(SmoothAPLossOptions(2).queue_size(-1)); },
                          {"queue_size", ">= 0", "got -1"}));
}

TEST(SmoothAPLossErrors, TemperatureMustBePositiveAndFinite) {
  EXPECT_TRUE(throws_with([] { make(SmoothAPLossOptions(2).temperature(0)); },
                          {"temperature", "> 0", "got 0"}));
  EXPECT_TRUE(throws_with([] { make(SmoothAPLossOptions(2).temperature(-0.5)); },
                          {"temperature", "got -0.5"}));
  EXPECT_TRUE(throws_with([] { make(SmoothAPLossOptions(2).temperature(std::nan(""))); },
                          {"temperature", "got nan"}));
}

TEST(SmoothAPLossErrors, MaxPoolSizeMustBePositive) {
  EXPECT_TRUE(throws_with([] { make(SmoothAPLossOptions(2).max_pool_size(0)); },
                          {"max_pool_size", "> 0", "got 0"}));
}

TEST(SmoothAPLossErrors, IgnoreIndexMustNotBeAValidTarget) {
  EXPECT_TRUE(throws_with([] { make(SmoothAPLossOptions(4).ignore_index(2)); },
                          {"ignore_index", "ignore_index=2", "num_classes=4"}));
  EXPECT_TRUE(throws_with([] { make(SmoothAPLossOptions(1).ignore_index(1)); },
                          {"ignore_index", "binary mode"}));
  EXPECT_NO_THROW(make(SmoothAPLossOptions(4).ignore_index(4)));
}

TEST(SmoothAPLossErrors, OptionsEditedAfterConstructionAreCheckedAtForward) {
  SmoothAPLoss loss(SmoothAPLossOptions(2));
  loss->options.temperature(-1);
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::randn({4, 2}), labels({0, 1, 0, 1}));
      },
      {"temperature", "got -1"}));
}

TEST(SmoothAPLossErrors, LogitsMustBeTwoDimensionalWithNumClassesColumns) {
  SmoothAPLoss loss(SmoothAPLossOptions(3));
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::randn({4}), labels({0, 1, 2, 0}));
      },
      {"logits", "[N, 3]", "[4]"}));
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::randn({4, 2}), labels({0, 1, 1, 0}));
      },
      {"logits", "[N, 3]", "num_classes=3", "[4, 2]"}));
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::randn({4, 3, 1}), labels({0, 1, 1, 0}));
      },
      {"logits", "[4, 3, 1]"}));
}

TEST(SmoothAPLossErrors, LogitsMustBeFloatingPoint) {
  SmoothAPLoss loss(SmoothAPLossOptions(2));
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::ones({4, 2}, torch::kLong), labels({0, 1, 1, 0}));
      },
      {"logits", "floating point", "Long"}));
}

TEST(SmoothAPLossErrors, TargetsMustMatchTheRowsOfLogits) {
  SmoothAPLoss loss(SmoothAPLossOptions(2));
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::randn({4, 2}), labels({0, 1, 1}));
      },
      {"targets", "[N] or [N, 1]", "N = 4", "[3]"}));
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::randn({4, 2}), torch::zeros({4, 2}, torch::kLong));
      },
      {"targets", "[4, 2]"}));
}

TEST(SmoothAPLossErrors, TargetsMustBeIntegers) {
  SmoothAPLoss loss(SmoothAPLossOptions(2));
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::randn({4, 2}), torch::zeros({4}));
      },
      {"targets", "integer", "Float"}));
}

TEST(SmoothAPLossErrors, MultiClassTargetsOutsideTheClassesAreAnError) {
  SmoothAPLoss loss(SmoothAPLossOptions(3));
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::randn({5, 3}), labels({0, 3, 1, -1, 2}));
      },
      {"targets", "[0, 3)", "ignore_index=-100", "[3, -1]"}));
  // Nothing was enqueued by the failed call.
  EXPECT_EQ(loss->named_buffers()["queue_ptr"].item<int64_t>(), 0);
}

TEST(SmoothAPLossErrors, UndefinedTensorsAreAnError) {
  SmoothAPLoss loss(SmoothAPLossOptions(2));
  EXPECT_TRUE(throws_with([&] { loss->forward(torch::Tensor(), labels({0})); },
                          {"logits", "undefined"}));
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::randn({1, 2}), torch::Tensor());
      },
      {"targets", "undefined"}));
}

TEST(SmoothAPLossErrors, OtherIntegerTargetTypesAreAccepted) {
  SmoothAPLoss loss(SmoothAPLossOptions(2).queue_size(0));
  const auto x = torch::randn({4, 2});
  const auto expected = loss->forward(x, labels({0, 1, 1, 0}));
  EXPECT_EQ(loss->forward(x, labels({0, 1, 1, 0}).to(torch::kInt)).item<float>(),
            expected.item<float>());
  EXPECT_EQ(loss->forward(x, labels({0, 1, 1, 0}).to(torch::kUInt8)).item<float>(),
            expected.item<float>());
}

TEST(SmoothAPOpErrors, OpChecksItsArguments) {
  const auto x = torch::randn({4, 2});
  EXPECT_TRUE(throws_with(
      [&] {
        proxyloss::ops::smooth_ap(x, labels({0, 1, 1}), 0.1);
      },
      {"labels", "M = 4", "[3]"}));
  EXPECT_TRUE(throws_with(
      [&] {
        proxyloss::ops::smooth_ap(x, labels({0, 1, 1, 0}).to(torch::kInt), 0.1);
      },
      {"labels", "int64", "Int"}));
  EXPECT_TRUE(throws_with(
      [&] {
        proxyloss::ops::smooth_ap(x.to(torch::kHalf), labels({0, 1, 1, 0}), 0.1);
      },
      {"scores", "float32 or float64", "Half"}));
  EXPECT_TRUE(throws_with(
      [&] {
        proxyloss::ops::smooth_ap(x[0], labels({0, 1}), 0.1);
      },
      {"scores", "2-D"}));
  EXPECT_TRUE(throws_with(
      [&] {
        proxyloss::ops::smooth_ap(x, labels({0, 1, 1, 0}), 0.0);
      },
      {"temperature", "got 0"}));
}

TEST(SmoothAPLossErrors, TargetsMustBeOnTheDeviceOfLogits) {
  SmoothAPLoss loss(SmoothAPLossOptions(2));
  const auto logits = torch::empty({4, 2}, torch::TensorOptions().device(torch::kMeta));
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(logits, labels({0, 1, 1, 0}));
      },
      {"targets", "device of logits", "meta", "cpu"}));
}

TEST(SmoothAPLossErrors, EditingTheQueueShapeNeedsReset) {
  SmoothAPLoss loss(SmoothAPLossOptions(2).queue_size(8));
  loss->options.queue_size(16);
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::randn({4, 2}), labels({0, 1, 0, 1}));
      },
      {"queue_size", "reset()"}));
  loss->reset();
  EXPECT_EQ(loss->named_buffers()["queue_logits"].size(0), 16);
  EXPECT_NO_THROW(loss->forward(torch::randn({4, 2}), labels({0, 1, 0, 1})));
}

TEST(SmoothAPLossErrors, FunctionalChecksItsOptionsAndInputs) {
  namespace F = proxyloss::functional;
  const auto x = torch::randn({4, 3});
  const auto t = torch::tensor({0, 1, 2, 0}, torch::kLong);
  EXPECT_TRUE(throws_with([&] { F::smooth_ap_loss(x, t, F::SmoothAPLossFuncOptions(0)); },
                          {"num_classes", "got 0"}));
  EXPECT_TRUE(throws_with(
      [&] { F::smooth_ap_loss(x, t, F::SmoothAPLossFuncOptions(3).temperature(0)); },
      {"temperature", "got 0"}));
  EXPECT_TRUE(throws_with([&] { F::smooth_ap_loss(x, t, F::SmoothAPLossFuncOptions(2)); },
                          {"logits must have shape [N, 2]", "got [4, 3]"}));
  EXPECT_TRUE(throws_with(
      [&] { F::smooth_ap_loss(x, t.to(torch::kFloat), F::SmoothAPLossFuncOptions(3)); },
      {"targets must be an integer tensor", "Float"}));
}
