// The losses on a CUDA device (the generic ATen implementations of the ops,
// the queue's buffers on the GPU) against the same computation on the CPU.
// Skipped where LibTorch has no CUDA or no GPU is present (CI has none).
#include "support/random_pools.h"
#include "support/test_support.h"

#include <proxyloss/proxyloss.h>

#include <gtest/gtest.h>
#include <torch/torch.h>

using test_support::max_abs_diff;

namespace {

class OnCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) {
      GTEST_SKIP() << "no CUDA device";
    }
  }
  const torch::Device cuda{torch::kCUDA, 0};
};

TEST_F(OnCuda, SmoothAPOpMatchesCpu) {
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const auto pool = test_support::random_pool(seed, torch::kDouble, 2000);
    const auto weights = torch::randn({pool.scores.size(1)}, torch::kDouble);
    auto run = [&](const torch::Device& device) {
      auto scores = pool.scores.to(device).clone().requires_grad_(true);
      auto ap = proxyloss::ops::smooth_ap(scores, pool.labels.to(device), pool.tau);
      torch::nan_to_num(ap * weights.to(device), 0.0).sum().backward();
      return std::make_pair(ap.detach().cpu(), scores.grad().cpu());
    };
    const auto cpu = run(torch::kCPU);
    const auto gpu = run(cuda);
    ASSERT_EQ(gpu.first.device().type(), torch::kCPU);
    EXPECT_TRUE(torch::equal(torch::isnan(cpu.first), torch::isnan(gpu.first)))
        << pool.describe();
    EXPECT_LT(max_abs_diff(cpu.first, gpu.first), 1e-10) << pool.describe();
    EXPECT_LT(max_abs_diff(cpu.second, gpu.second), 1e-8) << pool.describe();
  }
}

TEST_F(OnCuda, FairLossOpMatchesCpu) {
  torch::manual_seed(3);
  const auto logits = torch::randn({257, 11}, torch::kDouble) * 3;
  auto targets = torch::randint(0, 11, {257}, torch::kLong);
  targets.index_put_({torch::indexing::Slice(0, 5)}, -100);
  const auto weight = torch::rand({11}, torch::kDouble) + 0.5;
  auto run = [&](const torch::Device& device) {
    auto x = logits.to(device).clone().requires_grad_(true);
    auto loss = proxyloss::ops::fair_loss(x, targets.to(device), weight.to(device), 50.0,
                                          30.0, -100, 0.1);
    loss.sum().backward();
    return std::make_pair(loss.detach().cpu(), x.grad().cpu());
  };
  const auto cpu = run(torch::kCPU);
  const auto gpu = run(cuda);
  EXPECT_LT(max_abs_diff(cpu.first, gpu.first), 1e-10);
  EXPECT_LT(max_abs_diff(cpu.second, gpu.second), 1e-10);
}

// Train-mode steps through the queue: same losses and gradients, and the
// queue buffers stay on the module's device.
template <typename Module, typename Options>
void expect_queued_steps_match(const Options& options, const torch::Device& cuda) {
  Module on_cpu(options);
  Module on_gpu(options);
  on_gpu->to(cuda);
  torch::manual_seed(11);
  for (int step = 0; step < 6; ++step) {
    const auto logits = torch::randn({64, options.num_classes()}) * 2;
    const auto targets = torch::randint(0, options.num_classes(), {64}, torch::kLong);
    auto x_cpu = logits.clone().requires_grad_(true);
    auto x_gpu = logits.to(cuda).requires_grad_(true); // a copy: a leaf
    const auto loss_cpu = on_cpu(x_cpu, targets);
    const auto loss_gpu = on_gpu(x_gpu, targets.to(cuda));
    loss_cpu.backward();
    loss_gpu.backward();
    EXPECT_NEAR(loss_cpu.template item<double>(), loss_gpu.template item<double>(), 1e-5)
        << step;
    EXPECT_LT(max_abs_diff(x_cpu.grad(), x_gpu.grad().cpu()), 1e-5) << step;
  }
  for (const auto& buffer : on_gpu->buffers()) {
    EXPECT_TRUE(buffer.is_cuda());
  }
}

TEST_F(OnCuda, SmoothAPLossQueueOnDevice) {
  expect_queued_steps_match<proxyloss::SmoothAPLoss>(
      proxyloss::SmoothAPLossOptions(3).queue_size(150).temperature(0.1), cuda);
}

TEST_F(OnCuda, RecallAtQuantileLossQueueOnDevice) {
  expect_queued_steps_match<proxyloss::RecallAtQuantileLoss>(
      proxyloss::RecallAtQuantileLossOptions(3).queue_size(150).quantile(0.1), cuda);
}

TEST_F(OnCuda, TargetsOnAnotherDeviceAreAnError) {
  proxyloss::SmoothAPLoss loss(proxyloss::SmoothAPLossOptions(2));
  loss->to(cuda);
  const auto logits = torch::randn({8, 2}, torch::TensorOptions().device(cuda));
  const auto targets = torch::zeros({8}, torch::kLong);
  EXPECT_TRUE(test_support::throws_with([&] { loss(logits, targets); },
                                        {"targets", "device of logits"}));
}

} // namespace
