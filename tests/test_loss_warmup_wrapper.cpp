// LossWarmupWrapper: whole schedules replayed step by step against
// hand-computed values, queue resets, checkpoints, option errors.
#include "support/test_support.h"

#include <proxyloss/proxyloss.h>

#include <filesystem>

using proxyloss::LossWarmupWrapper;
using proxyloss::LossWarmupWrapperOptions;
using proxyloss::SmoothAPLoss;
using proxyloss::SmoothAPLossOptions;
using test_support::throws_with;

namespace {

std::pair<torch::Tensor, torch::Tensor> batch(int64_t n, int64_t c, uint64_t seed) {
  torch::manual_seed(seed);
  return {torch::randn({n, c}, torch::kDouble),
          torch::arange(n, torch::kLong).remainder(c)};
}

int64_t queue_ptr(SmoothAPLoss& loss) {
  return loss->named_buffers()["queue_ptr"].item<int64_t>();
}

// A user's own loss that takes part in the schedule through the interface.
struct UserLossImpl : torch::nn::Cloneable<UserLossImpl>, proxyloss::RankingLossControl {
  void reset() override {}
  torch::Tensor forward(const torch::Tensor& logits, const torch::Tensor& /*targets*/) {
    return logits.sum() * tau;
  }
  double temperature() const override {
    return tau;
  }
  void set_temperature(double t) override {
    tau = t;
  }
  void reset_queue() override {
    ++queue_resets;
  }
  double tau = 1.0;
  int queue_resets = 0;
};
TORCH_MODULE(UserLoss);

} // namespace

TEST(LossWarmupWrapper, EpochModeScheduleReplaysAsHandComputed) {
  // warmup 2 epochs, blend 2 epochs, 3 batches per epoch, decay over 10 steps
  // from the switch (global step 6): tau(k) = 0.5 * 0.02^(k / 10).
  SmoothAPLoss main(SmoothAPLossOptions(2).queue_size(0).temperature(0.2));
  torch::nn::CrossEntropyLoss warmup;
  LossWarmupWrapper wrapper(warmup, main,
                            LossWarmupWrapperOptions()
                                .warmup_epochs(2)
                                .blend_epochs(2)
                                .temp_start(0.5)
                                .temp_end(0.01)
                                .temp_decay_steps(10));
  const std::vector<double> tau = {0.5,
                                   0.3381216689031207,
                                   0.22865252596366317,
                                   0.15462474735549586,
                                   0.10456395525912732,
                                   0.07071067811865475,
                                   0.04781762498950185,
                                   0.03233635032886788,
                                   0.021867241478865557,
                                   0.014787576366283138,
                                   0.01,
                                   0.01};
  const std::vector<double> weight_by_epoch = {0, 0, 1.0 / 3, 2.0 / 3, 1, 1};
  for (int64_t epoch = 0; epoch < 6; ++epoch) {
    wrapper->on_train_epoch_start(epoch);
    for (int64_t b = 0; b < 3; ++b) {
      const int64_t step = epoch * 3 + b;
      wrapper->on_train_batch_start(step);
      SCOPED_TRACE("epoch " + std::to_string(epoch) + " step " + std::to_string(step));
      EXPECT_EQ(wrapper->in_warmup(), epoch < 2);
      EXPECT_EQ(wrapper->in_blend(), epoch == 2 || epoch == 3);
      EXPECT_DOUBLE_EQ(wrapper->main_weight(), weight_by_epoch[epoch]);
      EXPECT_DOUBLE_EQ(wrapper->ap_weight(), weight_by_epoch[epoch]);
      const double expected_tau = step < 6 ? 0.2 : tau[step - 6];
      EXPECT_NEAR(*wrapper->current_temperature(), expected_tau, 1e-15 * expected_tau);
      // The loss is the blend of both, at the weights above.
      auto [x, t] = batch(12, 2, step);
      const double w = weight_by_epoch[epoch];
      const double ce = warmup(x, t).item<double>();
      const double ap = main(x, t).item<double>();
      EXPECT_NEAR(wrapper->forward(x, t).item<double>(), (1 - w) * ce + w * ap, 1e-12);
    }
  }
}

TEST(LossWarmupWrapper, StepModeScheduleReplaysAsHandComputed) {
  // warmup 4 steps, blend 3 steps, final weight 0.8: weights 0.2, 0.4, 0.6
  // then 0.8; switch at step 4, tau(k) = 0.2 * 0.1^(k / 5).
  UserLoss main;
  LossWarmupWrapper wrapper(torch::nn::CrossEntropyLoss(), main,
                            LossWarmupWrapperOptions()
                                .warmup_steps(4)
                                .blend_steps(3)
                                .final_main_weight(0.8)
                                .temp_start(0.2)
                                .temp_end(0.02)
                                .temp_decay_steps(5));
  const std::vector<double> weights = {0,   0,   0,   0,   0.2, 0.4,
                                       0.6, 0.8, 0.8, 0.8, 0.8, 0.8};
  const std::vector<double> tau = {0.2,
                                   0.12619146889603866,
                                   0.07962143411069945,
                                   0.0502377286301916,
                                   0.03169786384922227,
                                   0.02,
                                   0.02,
                                   0.02};
  for (int64_t step = 0; step < 12; ++step) {
    wrapper->on_train_epoch_start(step / 5); // epochs do not drive step mode
    wrapper->on_train_batch_start(step);
    SCOPED_TRACE("step " + std::to_string(step));
    EXPECT_EQ(wrapper->in_warmup(), step < 4);
    EXPECT_EQ(wrapper->in_blend(), step >= 4 && step < 7);
    EXPECT_NEAR(wrapper->main_weight(), weights[step], 1e-15);
    const double expected_tau = step < 4 ? 1.0 : tau[step - 4];
    EXPECT_NEAR(*wrapper->current_temperature(), expected_tau, 1e-15);
  }
  EXPECT_EQ(main->queue_resets, 1); // at the switch only
}

TEST(LossWarmupWrapper, NoWarmupStartsInTheMainPhaseAtTempStart) {
  SmoothAPLoss main(SmoothAPLossOptions(2).temperature(0.3));
  LossWarmupWrapper wrapper(torch::nn::CrossEntropyLoss(), main,
                            LossWarmupWrapperOptions().temp_start(0.05).temp_end(0.005));
  EXPECT_FALSE(wrapper->in_warmup());
  EXPECT_EQ(wrapper->main_weight(), 1.0);
  EXPECT_EQ(*wrapper->current_temperature(), 0.05);
  wrapper->on_train_epoch_start(0);
  wrapper->on_train_batch_start(5000); // half of the default 10000 decay steps
  EXPECT_NEAR(*wrapper->current_temperature(), 0.05 * std::pow(0.1, 0.5), 1e-15);
}

TEST(LossWarmupWrapper, DefaultsFollowTheContract) {
  const LossWarmupWrapperOptions o;
  EXPECT_EQ(o.warmup_epochs(), 0);
  EXPECT_EQ(o.blend_epochs(), 0);
  EXPECT_FALSE(o.warmup_steps().has_value());
  EXPECT_FALSE(o.blend_steps().has_value());
  EXPECT_EQ(o.temp_start(), 0.05);
  EXPECT_EQ(o.temp_end(), 0.005);
  EXPECT_EQ(o.temp_decay_steps(), 10000);
  EXPECT_EQ(o.final_main_weight(), 1.0);
  EXPECT_FALSE(o.reset_queue_each_epoch());
}

TEST(LossWarmupWrapper, QueueIsResetAtThePhaseSwitch) {
  SmoothAPLoss main(SmoothAPLossOptions(2).queue_size(32));
  LossWarmupWrapper wrapper(torch::nn::CrossEntropyLoss(), main,
                            LossWarmupWrapperOptions().warmup_epochs(1));
  wrapper->on_train_epoch_start(0);
  wrapper->on_train_batch_start(0);
  auto [x, t] = batch(8, 2, 1);
  main(x, t); // warmup-era rows in the queue
  ASSERT_EQ(queue_ptr(main), 8);
  wrapper->on_train_epoch_start(1);
  EXPECT_EQ(queue_ptr(main), 8); // reset waits for the first main-phase batch
  wrapper->on_train_batch_start(1);
  EXPECT_EQ(queue_ptr(main), 0);
  EXPECT_TRUE(main->named_buffers()["queue_targets"].eq(-100).all().item<bool>());
  wrapper->forward(x, t);
  wrapper->on_train_batch_start(2);
  EXPECT_EQ(queue_ptr(main), 8); // not reset again
}

TEST(LossWarmupWrapper, ResetQueueEachEpochInTheMainPhase) {
  SmoothAPLoss main(SmoothAPLossOptions(2).queue_size(32));
  LossWarmupWrapper wrapper(torch::nn::CrossEntropyLoss(), main,
                            LossWarmupWrapperOptions().reset_queue_each_epoch(true));
  auto [x, t] = batch(8, 2, 2);
  wrapper->on_train_epoch_start(0);
  wrapper->on_train_batch_start(0);
  wrapper->forward(x, t);
  EXPECT_EQ(queue_ptr(main), 8);
  wrapper->on_train_epoch_start(1);
  EXPECT_EQ(queue_ptr(main), 0);
}

TEST(LossWarmupWrapper, ForwardPerClassOnlyAtFullMainWeight) {
  SmoothAPLoss main(SmoothAPLossOptions(2).queue_size(0));
  LossWarmupWrapper wrapper(torch::nn::CrossEntropyLoss(), main,
                            LossWarmupWrapperOptions().warmup_epochs(1).blend_epochs(1));
  auto [x, t] = batch(8, 2, 3);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    wrapper->on_train_epoch_start(epoch);
    wrapper->on_train_batch_start(epoch);
    EXPECT_TRUE(throws_with([&] { wrapper->forward_per_class(x, t); },
                            {"forward_per_class", "main_weight() == 1"}));
  }
  wrapper->on_train_epoch_start(2);
  wrapper->on_train_batch_start(2);
  torch::Tensor loss, per_class, valid;
  std::tie(loss, per_class, valid) = wrapper->forward_per_class(x, t);
  EXPECT_EQ(per_class.size(0), 2);
  EXPECT_NEAR(loss.item<double>(), main(x, t).item<double>(), 1e-12);
}

TEST(LossWarmupWrapper, MainLossWithoutControlWarnsOnceAndHasNoTemperature) {
  proxyloss::compat::ScopedWarningCollector warnings;
  LossWarmupWrapper wrapper(torch::nn::CrossEntropyLoss(), torch::nn::CrossEntropyLoss(),
                            LossWarmupWrapperOptions().warmup_epochs(1));
  EXPECT_EQ(test_support::count_containing(warnings.messages(), "RankingLossControl"), 1);
  EXPECT_FALSE(wrapper->current_temperature().has_value());
  wrapper->on_train_epoch_start(1);
  wrapper->on_train_batch_start(3);
  auto [x, t] = batch(4, 3, 4);
  EXPECT_NO_THROW(wrapper->forward(x, t));
  EXPECT_TRUE(throws_with([&] { wrapper->forward_per_class(x, t); }, {"PerClassLoss"}));
}

TEST(LossWarmupWrapper, UserLossImplementingTheInterfaceIsScheduled) {
  UserLoss main;
  LossWarmupWrapper wrapper(
      torch::nn::CrossEntropyLoss(), main,
      LossWarmupWrapperOptions().temp_start(0.4).temp_end(0.1).temp_decay_steps(2));
  wrapper->on_train_batch_start(2);
  EXPECT_DOUBLE_EQ(main->tau, 0.1);
  auto [x, t] = batch(4, 2, 5);
  EXPECT_DOUBLE_EQ(wrapper->forward(x, t).item<double>(), x.sum().item<double>() * 0.1);
}

TEST(LossWarmupWrapper, WarnsOnceWhenTheBatchHookIsNeverCalled) {
  proxyloss::compat::ScopedWarningCollector warnings;
  SmoothAPLoss main(SmoothAPLossOptions(2).queue_size(0));
  LossWarmupWrapper wrapper(torch::nn::CrossEntropyLoss(), main);
  auto [x, t] = batch(4, 2, 6);
  wrapper->forward(x, t);
  wrapper->forward(x, t);
  EXPECT_EQ(test_support::count_containing(warnings.messages(), "on_train_batch_start"),
            1);
}

// Trains a wrapper 7 steps (4 per epoch), saves and loads it into a fresh one,
// then trains both 4 more steps: the same schedule and loss throughout.
void expect_checkpoint_continues_the_schedule(const LossWarmupWrapperOptions& options) {
  auto make = [&] {
    return LossWarmupWrapper(torch::nn::CrossEntropyLoss(),
                             SmoothAPLoss(SmoothAPLossOptions(2).queue_size(16)),
                             options);
  };
  auto run = [](LossWarmupWrapper& w, int64_t from, int64_t to) {
    for (int64_t step = from; step < to; ++step) {
      if (step % 4 == 0) {
        w->on_train_epoch_start(step / 4);
      }
      w->on_train_batch_start(step);
      auto [x, t] = batch(6, 2, 100 + step);
      w->forward(x.to(torch::kFloat), t);
    }
  };
  auto saved = make();
  run(saved, 0, 7);
  const test_support::UniqueTempFile file("wrapper");
  torch::save(saved, file.path());
  auto loaded = make();
  torch::load(loaded, file.path());
  EXPECT_EQ(loaded->in_blend(), saved->in_blend());
  EXPECT_EQ(loaded->main_weight(), saved->main_weight());
  EXPECT_EQ(*loaded->current_temperature(), *saved->current_temperature());
  run(saved, 7, 11);
  run(loaded, 7, 11);
  EXPECT_EQ(loaded->main_weight(), saved->main_weight());
  EXPECT_EQ(*loaded->current_temperature(), *saved->current_temperature());
  auto [x, t] = batch(6, 2, 999);
  EXPECT_EQ(loaded->forward(x.to(torch::kFloat), t).item<float>(),
            saved->forward(x.to(torch::kFloat), t).item<float>());
}

TEST(LossWarmupWrapper, CheckpointRoundTripContinuesTheSameSchedule) {
  expect_checkpoint_continues_the_schedule(LossWarmupWrapperOptions()
                                               .warmup_epochs(1)
                                               .blend_epochs(2)
                                               .temp_start(0.5)
                                               .temp_end(0.05)
                                               .temp_decay_steps(20));
}

TEST(LossWarmupWrapper, StepModeCheckpointRoundTripContinuesTheSameSchedule) {
  expect_checkpoint_continues_the_schedule(LossWarmupWrapperOptions()
                                               .warmup_steps(3)
                                               .blend_steps(5)
                                               .temp_start(0.5)
                                               .temp_end(0.05)
                                               .temp_decay_steps(6));
}

TEST(LossWarmupWrapper, CloneIsIndependent) {
  SmoothAPLoss main(SmoothAPLossOptions(2).queue_size(8).temperature(0.3));
  LossWarmupWrapper wrapper(torch::nn::CrossEntropyLoss(), main,
                            LossWarmupWrapperOptions().temp_start(0.2));
  auto copy =
      std::dynamic_pointer_cast<proxyloss::LossWarmupWrapperImpl>(wrapper->clone());
  ASSERT_TRUE(copy);
  EXPECT_EQ(*copy->current_temperature(), 0.2);
  copy->on_train_batch_start(10000);
  EXPECT_DOUBLE_EQ(*copy->current_temperature(), 0.005); // exp(log(ratio)) rounds
  EXPECT_EQ(*wrapper->current_temperature(), 0.2);
}

TEST(LossWarmupWrapper, PrettyPrint) {
  LossWarmupWrapper wrapper(torch::nn::CrossEntropyLoss(),
                            SmoothAPLoss(SmoothAPLossOptions(2)),
                            LossWarmupWrapperOptions().warmup_steps(100).blend_steps(10));
  std::ostringstream out;
  wrapper->pretty_print(out);
  EXPECT_EQ(
      out.str(),
      "proxyloss::LossWarmupWrapper(warmup_steps=100, blend_steps=10, temp_start=0.05, "
      "temp_end=0.005, temp_decay_steps=10000, final_main_weight=1, "
      "reset_queue_each_epoch=false)");
}

TEST(LossWarmupWrapperErrors, InvalidOptionCombinationsNameTheOptions) {
  auto make = [](LossWarmupWrapperOptions o) {
    LossWarmupWrapper(torch::nn::CrossEntropyLoss(), SmoothAPLoss(SmoothAPLossOptions(2)),
                      o);
  };
  using O = LossWarmupWrapperOptions;
  EXPECT_TRUE(throws_with([&] { make(O().warmup_epochs(2).warmup_steps(10)); },
                          {"warmup_epochs", "warmup_steps", "both"}));
  EXPECT_TRUE(
      throws_with([&] { make(O().warmup_steps(10).blend_epochs(1).blend_steps(5)); },
                  {"blend_epochs", "blend_steps", "both"}));
  EXPECT_TRUE(
      throws_with([&] { make(O().blend_steps(5)); }, {"blend_steps", "warmup_steps"}));
  EXPECT_TRUE(
      throws_with([&] { make(O().warmup_epochs(-1)); }, {"warmup_epochs", "got -1"}));
  EXPECT_TRUE(
      throws_with([&] { make(O().blend_epochs(-2)); }, {"blend_epochs", "got -2"}));
  EXPECT_TRUE(
      throws_with([&] { make(O().warmup_steps(-3)); }, {"warmup_steps", "got -3"}));
  EXPECT_TRUE(throws_with([&] { make(O().warmup_steps(3).blend_steps(-4)); },
                          {"blend_steps", "got -4"}));
  EXPECT_TRUE(throws_with([&] { make(O().temp_start(0)); }, {"temp_start", "got 0"}));
  EXPECT_TRUE(throws_with([&] { make(O().temp_end(-0.1)); }, {"temp_end", "got -0.1"}));
  EXPECT_TRUE(
      throws_with([&] { make(O().temp_decay_steps(0)); }, {"temp_decay_steps", "got 0"}));
  EXPECT_TRUE(throws_with([&] { make(O().final_main_weight(0)); },
                          {"final_main_weight", "(0, 1]", "got 0"}));
  EXPECT_TRUE(throws_with([&] { make(O().final_main_weight(1.5)); },
                          {"final_main_weight", "got 1.5"}));
}

// --- sample_weight ---------------------------------------------------------------

namespace {

// A loss that declares its third argument sample_weight and records what it
// got (undefined when called with two arguments).
struct WeightRecordingLossImpl : torch::nn::Cloneable<WeightRecordingLossImpl>,
                                 proxyloss::SampleWeightedLoss {
  void reset() override {}
  torch::Tensor forward(const torch::Tensor& logits, const torch::Tensor& /*targets*/,
                        const torch::Tensor& sample_weight = {}) {
    ++calls;
    seen = sample_weight;
    return sample_weight.defined() ? (logits.sum(1) * sample_weight).sum() : logits.sum();
  }
  int calls = 0;
  torch::Tensor seen;

 protected:
  FORWARD_HAS_DEFAULT_ARGS({2, torch::nn::AnyValue(torch::Tensor())})
};
TORCH_MODULE(WeightRecordingLoss);

// A two-argument loss that does not declare sample_weight.
struct TwoArgumentLossImpl : torch::nn::Cloneable<TwoArgumentLossImpl> {
  void reset() override {}
  torch::Tensor forward(const torch::Tensor& logits, const torch::Tensor& /*targets*/) {
    ++calls;
    return logits.sum() * 2;
  }
  int calls = 0;
};
TORCH_MODULE(TwoArgumentLoss);

} // namespace

// Warmup, blend and main phase with weighted losses on both sides: each
// receives the weights; the blend is of the two weighted losses.
TEST(LossWarmupWrapper, SampleWeightReachesBothLossesWhenBothTakeIt) {
  proxyloss::compat::ScopedWarningCollector warnings; // FairLoss: no RankingLossControl
  proxyloss::SoftmaxFocalLoss warmup(proxyloss::SoftmaxFocalLossOptions().gamma(1.5));
  proxyloss::FairLoss main(
      proxyloss::FairLossOptions().smooth_max_beta(5).scaling_factor(2));
  LossWarmupWrapper wrapper(warmup, main,
                            LossWarmupWrapperOptions().warmup_epochs(1).blend_epochs(1));
  auto [x, t] = batch(8, 3, 21);
  const auto w = torch::rand({8}, torch::kDouble) * 2;
  const double focal = warmup(x, t, w).item<double>();
  const double fair = main(x, t, w).item<double>();
  EXPECT_GT(std::abs(focal - warmup(x, t).item<double>()), 1e-6); // the weights matter
  EXPECT_GT(std::abs(fair - main(x, t).item<double>()), 1e-6);
  const std::vector<double> main_weight = {0.0, 0.5, 1.0};
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    wrapper->on_train_epoch_start(epoch);
    wrapper->on_train_batch_start(epoch);
    const double a = main_weight[epoch];
    EXPECT_NEAR(wrapper->forward(x, t, w).item<double>(), (1 - a) * focal + a * fair,
                1e-12)
        << "epoch " << epoch;
    EXPECT_TRUE(
        torch::equal(wrapper->forward(x, t, torch::Tensor()), wrapper->forward(x, t)))
        << "epoch " << epoch;
  }
}

// torch::nn::CrossEntropyLoss is no SampleWeightedLoss: it is called with
// (logits, targets) while the main loss gets the weights.
TEST(LossWarmupWrapper, SampleWeightSkipsAWarmupLossThatDoesNotTakeIt) {
  torch::nn::CrossEntropyLoss warmup;
  proxyloss::SoftmaxFocalLoss main;
  proxyloss::compat::ScopedWarningCollector warnings;
  LossWarmupWrapper wrapper(warmup, main,
                            LossWarmupWrapperOptions().warmup_epochs(1).blend_epochs(1));
  auto [x, t] = batch(8, 3, 22);
  const auto w = torch::rand({8}, torch::kDouble);
  wrapper->on_train_epoch_start(0);
  EXPECT_TRUE(torch::equal(wrapper->forward(x, t, w), warmup(x, t)));
  wrapper->on_train_epoch_start(1);
  wrapper->on_train_batch_start(1);
  EXPECT_NEAR(wrapper->forward(x, t, w).item<double>(),
              0.5 * warmup(x, t).item<double>() + 0.5 * main(x, t, w).item<double>(),
              1e-12);
}

// "Takes it" is the proxyloss::SampleWeightedLoss declaration; without
// weights every loss is called with two arguments.
TEST(LossWarmupWrapper, SampleWeightGoesToAWarmupLossThatDeclaresIt) {
  WeightRecordingLoss warmup;
  TwoArgumentLoss main;
  proxyloss::compat::ScopedWarningCollector warnings;
  LossWarmupWrapper wrapper(warmup, main, LossWarmupWrapperOptions().warmup_epochs(1));
  auto [x, t] = batch(4, 2, 23);
  const auto w = torch::tensor({1.0, 0.0, 2.0, 0.5}, torch::kDouble);
  wrapper->on_train_epoch_start(0);
  EXPECT_NEAR(wrapper->forward(x, t, w).item<double>(),
              (x.sum(1) * w).sum().item<double>(), 1e-12);
  ASSERT_TRUE(warmup->seen.defined());
  EXPECT_TRUE(torch::equal(warmup->seen, w));
  wrapper->forward(x, t);
  EXPECT_FALSE(warmup->seen.defined());
  EXPECT_EQ(warmup->calls, 2);
  // The main phase: a two-argument main loss without weights works...
  wrapper->on_train_epoch_start(1);
  wrapper->on_train_batch_start(4);
  EXPECT_NEAR(wrapper->forward(x, t).item<double>(), x.sum().item<double>() * 2, 1e-12);
  // ... and given weights it is an error (the main loss always gets them).
  EXPECT_TRUE(throws_with([&] { wrapper->forward(x, t, w); },
                          {"forward() method expects 2 argument(s)", "received 3"}));
}

TEST(LossWarmupWrapper, IsASampleWeightedLossForAnyModuleAndClones) {
  proxyloss::compat::ScopedWarningCollector warnings;
  proxyloss::SoftmaxFocalLoss warmup;
  proxyloss::FairLoss main;
  LossWarmupWrapper wrapper(warmup, main, LossWarmupWrapperOptions().warmup_epochs(2));
  EXPECT_NE(dynamic_cast<proxyloss::SampleWeightedLoss*>(wrapper.get()), nullptr);
  auto [x, t] = batch(6, 3, 24);
  const auto w = torch::rand({6}, torch::kDouble);
  torch::nn::AnyModule any(wrapper);
  EXPECT_TRUE(torch::equal(any.forward(x, t), warmup(x, t)));
  EXPECT_TRUE(torch::equal(any.forward(x, t, w), warmup(x, t, w)));
  const auto copy =
      std::dynamic_pointer_cast<proxyloss::LossWarmupWrapperImpl>(wrapper->clone());
  ASSERT_TRUE(copy);
  EXPECT_TRUE(torch::equal(copy->forward(x, t, w), warmup(x, t, w)));
}

namespace {

// A per-class main loss that records the weights its forward_per_class got.
struct PerClassRecordingLossImpl : torch::nn::Cloneable<PerClassRecordingLossImpl>,
                                   proxyloss::PerClassLoss {
  void reset() override {}
  torch::Tensor forward(const torch::Tensor& logits, const torch::Tensor& /*targets*/) {
    return logits.sum();
  }
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> forward_per_class(
      const torch::Tensor& logits, const torch::Tensor& /*targets*/,
      const torch::Tensor& sample_weight) override {
    seen = sample_weight;
    return {logits.sum(), logits.sum(0), torch::ones({logits.size(1)}, torch::kBool)};
  }
  torch::Tensor seen;
};
TORCH_MODULE(PerClassRecordingLoss);

} // namespace

TEST(LossWarmupWrapper, ForwardPerClassPassesSampleWeightOn) {
  proxyloss::compat::ScopedWarningCollector warnings;
  PerClassRecordingLoss main;
  LossWarmupWrapper wrapper(torch::nn::CrossEntropyLoss(), main);
  auto [x, t] = batch(4, 2, 25);
  const auto w = torch::tensor({1.0, 2.0, 0.0, 1.0}, torch::kDouble);
  wrapper->forward_per_class(x, t, w);
  ASSERT_TRUE(main->seen.defined());
  EXPECT_TRUE(torch::equal(main->seen, w));
  wrapper->forward_per_class(x, t);
  EXPECT_FALSE(main->seen.defined());
}
