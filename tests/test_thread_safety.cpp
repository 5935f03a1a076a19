// Thread safety: two instances of a loss, each trained on its own batches
// from its own thread at the same time, give bit for bit the results they
// give one after the other. (One instance is not meant to be shared between
// threads, as no torch::nn::Module is.) Both schedules run on std::threads
// created the same way, so each gets the same OpenMP thread count and the
// kernels' deterministic reductions are comparable exactly.
#include "support/test_support.h"

#include <proxyloss/proxyloss.h>

#include <functional>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

struct Step {
  torch::Tensor loss;
  torch::Tensor grad;
};

// Builds a fresh instance and trains it for a few steps on batches drawn
// from its own generator (never the global one, which threads would share).
using Training = std::function<std::vector<Step>(uint64_t seed)>;

template <typename Module>
Training training(std::function<Module()> make, int64_t num_classes,
                  bool one_hot = false) {
  return [=](uint64_t seed) {
    auto module = make();
    auto generator = at::detail::createCPUGenerator(seed);
    std::vector<Step> steps;
    for (int step = 0; step < 6; ++step) {
      if constexpr (std::is_same_v<Module, proxyloss::LossWarmupWrapper>) {
        module->on_train_batch_start(step); // the temperature schedule
      }
      auto logits = (at::randn({700, num_classes}, generator) * 3).requires_grad_(true);
      auto targets = at::randint(0, num_classes, {700}, generator, torch::kLong);
      const auto target_input =
          one_hot ? torch::one_hot(targets, num_classes).to(torch::kFloat) : targets;
      auto loss = module->forward(logits, target_input);
      loss.backward();
      steps.push_back({loss.detach(), logits.grad()});
    }
    return steps;
  };
}

std::vector<Step> in_own_thread(const Training& train, uint64_t seed) {
  std::vector<Step> result;
  std::thread([&] { result = train(seed); }).join();
  return result;
}

void expect_same(const std::vector<Step>& a, const std::vector<Step>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i].loss, b[i].loss)) << "step " << i;
    EXPECT_TRUE(torch::equal(a[i].grad, b[i].grad)) << "step " << i;
  }
}

void expect_thread_safe(const Training& train) {
  const auto first = in_own_thread(train, 1);
  const auto second = in_own_thread(train, 2);
  ASSERT_FALSE(torch::equal(first[0].loss, second[0].loss)); // different work
  for (int round = 0; round < 3; ++round) {
    std::vector<Step> concurrent_first;
    std::vector<Step> concurrent_second;
    std::thread a([&] { concurrent_first = train(1); });
    std::thread b([&] { concurrent_second = train(2); });
    a.join();
    b.join();
    expect_same(concurrent_first, first);
    expect_same(concurrent_second, second);
  }
}

TEST(ThreadSafety, SmoothAPLoss) {
  expect_thread_safe(training<proxyloss::SmoothAPLoss>(
      [] {
        return proxyloss::SmoothAPLoss(
            proxyloss::SmoothAPLossOptions(4).queue_size(2048));
      },
      4));
}

TEST(ThreadSafety, RecallAtQuantileLoss) {
  expect_thread_safe(training<proxyloss::RecallAtQuantileLoss>(
      [] {
        return proxyloss::RecallAtQuantileLoss(
            proxyloss::RecallAtQuantileLossOptions(4).queue_size(2048).quantile(0.05));
      },
      4));
}

TEST(ThreadSafety, LossWarmupWrapper) {
  expect_thread_safe(training<proxyloss::LossWarmupWrapper>(
      [] {
        // No warmup: every step goes through the main loss and its schedule.
        return proxyloss::LossWarmupWrapper(
            torch::nn::CrossEntropyLoss(),
            proxyloss::SmoothAPLoss(proxyloss::SmoothAPLossOptions(3).queue_size(1024)),
            proxyloss::LossWarmupWrapperOptions().warmup_epochs(0).temp_decay_steps(4));
      },
      3));
}

TEST(ThreadSafety, FairLoss) {
  expect_thread_safe(training<proxyloss::FairLoss>(
      [] {
        return proxyloss::FairLoss(proxyloss::FairLossOptions().smooth_max_beta(20));
      },
      50));
}

TEST(ThreadSafety, FocalLosses) {
  expect_thread_safe(training<proxyloss::SoftmaxFocalLoss>(
      [] { return proxyloss::SoftmaxFocalLoss(); }, 10));
  expect_thread_safe(training<proxyloss::SigmoidFocalLoss>(
      [] { return proxyloss::SigmoidFocalLoss(); }, 10, /*one_hot=*/true));
}

} // namespace
