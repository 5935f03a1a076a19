// SmoothAPLoss: each behaviour of the contract, and random queue sequences
// against the seed's module transcribed in tests/support/ranking_oracle.h.
#include "support/queued_step.h"
#include "support/ranking_oracle.h"
#include "support/test_support.h"

#include <proxyloss/proxyloss.h>
#include "ops/cpu/kernel_selection.h"

#include <cstdio>
#include <filesystem>
#include <random>
#include <sstream>

using proxyloss::SmoothAPLoss;
using proxyloss::SmoothAPLossOptions;
using test_support::count_containing;
using test_support::max_abs;
using test_support::max_abs_diff;

namespace {

constexpr double kTol = 1e-10; // double logits throughout, unless stated

torch::Tensor randn(int64_t n, int64_t c) {
  return torch::randn({n, c}, torch::kDouble);
}

// A batch where every class has positives and negatives.
std::pair<torch::Tensor, torch::Tensor> balanced_batch(int64_t n, int64_t c) {
  return {randn(n, c), torch::arange(n, torch::kLong).remainder(c)};
}

} // namespace

// --- random sequences against the seed's module --------------------------------

void run_queue_sequence(uint64_t seed, bool generic) {
  std::mt19937_64 rng(seed);
  torch::manual_seed(seed);
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  const int64_t C = pick(1, 5);
  const int64_t Q = std::vector<int64_t>{0, 7, 32, 100}[pick(0, 3)];
  const double tau = std::vector<double>{0.01, 0.1, 0.5}[pick(0, 2)];
  const auto reduction = std::vector<proxyloss::reduction_t>{torch::kMean, torch::kSum,
                                                             torch::kNone}[pick(0, 2)];
  const bool update_in_eval = pick(0, 1) == 1;
  SmoothAPLoss loss(SmoothAPLossOptions(C)
                        .queue_size(Q)
                        .temperature(tau)
                        .reduction(reduction)
                        .update_queue_in_eval(update_in_eval));
  oracle::SmoothAPModule reference(C, Q, tau);
  reference.reduction = proxyloss::reduction_kind(reduction);
  reference.update_queue_in_eval = update_in_eval;
  std::unique_ptr<proxyloss::detail::ForceGenericKernels> force;
  if (generic) {
    force = std::make_unique<proxyloss::detail::ForceGenericKernels>();
  }
  for (int step = 0; step < 8; ++step) {
    const bool training = pick(0, 3) != 0;
    loss->train(training);
    const int64_t N = pick(0, 40);
    auto logits = randn(N, C);
    auto targets = C == 1 ? torch::randint(0, 2, {N}, torch::kLong)
                          : torch::randint(0, C, {N}, torch::kLong);
    if (N > 0 && pick(0, 1)) {
      targets.index_fill_(0, torch::randint(0, N, {pick(1, N)}, torch::kLong), -100);
    }
    std::ostringstream where;
    where << "seed " << seed << " step " << step << " C=" << C << " Q=" << Q
          << " N=" << N;
    test_support::expect_step_matches(loss, reference, logits, targets, training, kTol,
                                      where.str());
    if (Q > 0) {
      EXPECT_LE(max_abs_diff(loss->named_buffers()["queue_logits"], reference.q_logits),
                0.0)
          << where.str();
      EXPECT_TRUE(
          torch::equal(loss->named_buffers()["queue_targets"], reference.q_targets))
          << where.str();
      EXPECT_EQ(loss->named_buffers()["queue_ptr"].item<int64_t>(), reference.q_ptr)
          << where.str();
    }
  }
}

TEST(SmoothAPLoss, MatchesSeedModuleOverRandomQueueSequences) {
  for (uint64_t seed = 0; seed < 60; ++seed) {
    run_queue_sequence(seed, /*generic=*/false);
  }
}

TEST(SmoothAPLoss, GenericPathMatchesSeedModuleOverRandomQueueSequences) {
  for (uint64_t seed = 100; seed < 130; ++seed) {
    run_queue_sequence(seed, /*generic=*/true);
  }
}

// --- named behaviours ---------------------------------------------------------------

TEST(SmoothAPLoss, DefaultOptionsFollowTheSeed) {
  const SmoothAPLossOptions options(3);
  EXPECT_EQ(options.queue_size(), 1024);
  EXPECT_EQ(options.temperature(), 0.01);
  EXPECT_EQ(proxyloss::reduction_kind(options.reduction()), proxyloss::Reduction::Mean);
  EXPECT_EQ(options.ignore_index(), -100);
  EXPECT_FALSE(options.update_queue_in_eval());
  EXPECT_FALSE(options.max_pool_size().has_value());
}

TEST(SmoothAPLoss, MultiClassIsOneVsRestPerClass) {
  torch::manual_seed(1);
  auto [logits, targets] = balanced_batch(24, 3);
  SmoothAPLoss loss(
      SmoothAPLossOptions(3).queue_size(0).temperature(0.1).reduction(torch::kNone));
  const auto per_class = loss->forward(logits, targets);
  for (int64_t c = 0; c < 3; ++c) {
    const auto ap = oracle::class_ap(logits.select(1, c), targets.eq(c), 0.1);
    EXPECT_NEAR(per_class[c].item<double>(), 1 - ap.item<double>(), kTol);
  }
}

TEST(SmoothAPLoss, PerfectRankingGivesZeroAndWorstGivesNearOne) {
  const auto targets = torch::arange(16, torch::kLong).remainder(4);
  auto perfect = torch::full({16, 4}, -10.0, torch::kDouble);
  auto worst = torch::full({16, 4}, 10.0, torch::kDouble);
  for (int64_t i = 0; i < 16; ++i) {
    perfect[i][targets[i].item<int64_t>()] = 10.0;
    worst[i][targets[i].item<int64_t>()] = -10.0;
  }
  SmoothAPLoss loss(SmoothAPLossOptions(4).queue_size(0));
  EXPECT_NEAR(loss->forward(perfect, targets).item<double>(), 0.0, 1e-6);
  EXPECT_GT(loss->forward(worst, targets).item<double>(), 0.7);
}

TEST(SmoothAPLoss, BinaryModeRanksColumnZeroWithTargetsZeroOne) {
  torch::manual_seed(2);
  const auto logits = randn(30, 1);
  const auto targets = torch::randint(0, 2, {30}, torch::kLong);
  SmoothAPLoss loss(SmoothAPLossOptions(1).queue_size(0).temperature(0.05));
  const auto ap = oracle::class_ap(logits.select(1, 0), targets.eq(1), 0.05);
  EXPECT_NEAR(loss->forward(logits, targets).item<double>(), 1 - ap.item<double>(), kTol);
}

TEST(SmoothAPLoss, BinaryModeWarnsOnceForNonBinaryTargetsAndCountsThemPositive) {
  torch::manual_seed(3);
  const auto logits = randn(10, 1);
  const auto targets = torch::tensor({0, 1, 2, 0, 5, 0, 1, 0, 0, 0}, torch::kLong);
  SmoothAPLoss loss(SmoothAPLossOptions(1).queue_size(0).temperature(0.05));
  proxyloss::compat::ScopedWarningCollector warnings;
  const auto first = loss->forward(logits, targets);
  loss->forward(logits, targets);
  EXPECT_EQ(count_containing(warnings.messages(), "expects targets in {0, 1}"), 1);
  EXPECT_EQ(count_containing(warnings.messages(), "[2, 5]"), 1);
  const auto ap = oracle::class_ap(logits.select(1, 0), targets.ne(0), 0.05);
  EXPECT_NEAR(first.item<double>(), 1 - ap.item<double>(), kTol);
}

TEST(SmoothAPLoss, TargetsOfShapeNx1AreAccepted) {
  torch::manual_seed(4);
  auto [logits, targets] = balanced_batch(12, 3);
  SmoothAPLoss loss(SmoothAPLossOptions(3).queue_size(0));
  EXPECT_NEAR(loss->forward(logits, targets.unsqueeze(1)).item<double>(),
              loss->forward(logits, targets).item<double>(), 0.0);
}

TEST(SmoothAPLoss, IgnoreIndexRowsAreDroppedFromThePool) {
  torch::manual_seed(5);
  auto [logits, targets] = balanced_batch(12, 3);
  auto padded_logits = torch::cat({logits, randn(5, 3) * 100});
  auto padded_targets = torch::cat({targets, torch::full({5}, -7, torch::kLong)});
  SmoothAPLoss loss(SmoothAPLossOptions(3).queue_size(0).ignore_index(-7));
  EXPECT_NEAR(loss->forward(padded_logits, padded_targets).item<double>(),
              loss->forward(logits, targets).item<double>(), kTol);
}

TEST(SmoothAPLoss, DegenerateClassesAreExcludedFromMeanAndSum) {
  torch::manual_seed(6);
  const auto logits = randn(8, 3);
  // Class 2 has no positive (the all-positive case is tested in binary mode).
  const auto targets = torch::tensor({0, 1, 0, 1, 0, 1, 0, 1}, torch::kLong);
  SmoothAPLoss none(SmoothAPLossOptions(3).queue_size(0).reduction(torch::kNone));
  SmoothAPLoss mean(SmoothAPLossOptions(3).queue_size(0).reduction(torch::kMean));
  SmoothAPLoss sum(SmoothAPLossOptions(3).queue_size(0).reduction(torch::kSum));
  const auto per_class = none->forward(logits, targets);
  EXPECT_TRUE(std::isnan(per_class[2].item<double>()));
  EXPECT_NEAR(mean->forward(logits, targets).item<double>(),
              (per_class[0] + per_class[1]).item<double>() / 2, kTol);
  EXPECT_NEAR(sum->forward(logits, targets).item<double>(),
              (per_class[0] + per_class[1]).item<double>(), kTol);
}

TEST(SmoothAPLoss, AllPositiveClassIsDegenerateAndNaNInNone) {
  SmoothAPLoss loss(SmoothAPLossOptions(1).queue_size(0).reduction(torch::kNone));
  const auto out = loss->forward(randn(5, 1), torch::ones({5}, torch::kLong));
  EXPECT_TRUE(std::isnan(out[0].item<double>()));
  SmoothAPLoss mean(SmoothAPLossOptions(1).queue_size(0));
  auto logits = randn(5, 1).requires_grad_(true);
  const auto zero = mean->forward(logits, torch::ones({5}, torch::kLong));
  EXPECT_EQ(zero.item<double>(), 0.0);
  zero.backward();
  EXPECT_EQ(logits.grad().abs().sum().item<double>(), 0.0);
}

TEST(SmoothAPLoss, EmptyPoolGivesZeroLossWithAGraph) {
  for (auto reduction :
       {proxyloss::reduction_t(torch::kMean), proxyloss::reduction_t(torch::kNone)}) {
    SmoothAPLoss loss(SmoothAPLossOptions(3).queue_size(16).reduction(reduction));
    auto logits = randn(4, 3).requires_grad_(true);
    const auto targets = torch::full({4}, -100, torch::kLong);
    torch::Tensor out, per_class, valid;
    std::tie(out, per_class, valid) = loss->forward_per_class(logits, targets);
    EXPECT_TRUE(out.requires_grad());
    EXPECT_EQ(out.abs().sum().item<double>(), 0.0);
    EXPECT_TRUE(torch::isnan(per_class).all().item<bool>());
    EXPECT_FALSE(valid.any().item<bool>());
    out.sum().backward();
    EXPECT_EQ(logits.grad().abs().sum().item<double>(), 0.0);
    // An empty pool does not advance the queue (as the seed).
    EXPECT_EQ(loss->named_buffers()["queue_ptr"].item<int64_t>(), 0);
  }
  SmoothAPLoss none(SmoothAPLossOptions(3).queue_size(0).reduction(torch::kNone));
  EXPECT_EQ(none->forward(randn(0, 3), torch::zeros({0}, torch::kLong)).sizes(),
            torch::IntArrayRef({3}));
}

TEST(SmoothAPLoss, ForwardPerClassMatchesForwardInOnePass) {
  torch::manual_seed(7);
  auto [logits, targets] = balanced_batch(20, 4);
  targets[0] = 3;
  SmoothAPLoss a(SmoothAPLossOptions(4).queue_size(0));
  SmoothAPLoss none(SmoothAPLossOptions(4).queue_size(0).reduction(torch::kNone));
  torch::Tensor out, per_class, valid;
  std::tie(out, per_class, valid) = a->forward_per_class(logits, targets);
  EXPECT_NEAR(out.item<double>(), a->forward(logits, targets).item<double>(), 0.0);
  EXPECT_LE(max_abs_diff(per_class, none->forward(logits, targets)), 0.0);
  EXPECT_TRUE(valid.all().item<bool>());
  EXPECT_EQ(valid.scalar_type(), torch::kBool);
}

TEST(SmoothAPLoss, QueueBuffersAreNamedAsTheContract) {
  SmoothAPLoss loss(SmoothAPLossOptions(3).queue_size(10).ignore_index(-5));
  auto buffers = loss->named_buffers();
  ASSERT_EQ(buffers.size(), 4u);
  EXPECT_TRUE(torch::equal(buffers["queue_weight"], torch::ones({10})));
  EXPECT_EQ(buffers["queue_logits"].sizes(), torch::IntArrayRef({10, 3}));
  EXPECT_EQ(buffers["queue_targets"].sizes(), torch::IntArrayRef({10}));
  EXPECT_TRUE(buffers["queue_targets"].eq(-5).all().item<bool>());
  EXPECT_EQ(buffers["queue_ptr"].sizes(), torch::IntArrayRef({1}));
  SmoothAPLoss no_queue(SmoothAPLossOptions(3).queue_size(0));
  EXPECT_EQ(no_queue->named_buffers().size(), 0u);
}

TEST(SmoothAPLoss, QueueIsDetachedAndTheGradientReachesLiveRowsOnly) {
  torch::manual_seed(8);
  SmoothAPLoss loss(SmoothAPLossOptions(2).queue_size(8).temperature(0.1));
  auto first = randn(8, 2).requires_grad_(true);
  loss->forward(first, torch::arange(8, torch::kLong).remainder(2)).backward();
  auto second = randn(4, 2).requires_grad_(true);
  const auto out = loss->forward(second, torch::tensor({0, 1, 0, 1}, torch::kLong));
  out.backward();
  EXPECT_GT(second.grad().abs().sum().item<double>(), 0.0);
  EXPECT_FALSE(loss->named_buffers()["queue_logits"].requires_grad());
}

TEST(SmoothAPLoss, BatchIsEnqueuedAfterTheLossIsComputed) {
  torch::manual_seed(9);
  auto [logits, targets] = balanced_batch(6, 2);
  SmoothAPLoss queued(SmoothAPLossOptions(2).queue_size(50));
  SmoothAPLoss plain(SmoothAPLossOptions(2).queue_size(0));
  // First call: the pool is the batch alone, not the batch twice.
  EXPECT_NEAR(queued->forward(logits, targets).item<double>(),
              plain->forward(logits, targets).item<double>(), kTol);
  EXPECT_EQ(queued->named_buffers()["queue_ptr"].item<int64_t>(), 6);
  // Rows are stored in the queue's float32 buffer (as the seed's).
  EXPECT_LE(max_abs_diff(queued->named_buffers()["queue_logits"].narrow(0, 0, 6),
                         logits.to(torch::kFloat)),
            0.0);
}

TEST(SmoothAPLoss, QueueIsFrozenInEvalMode) {
  SmoothAPLoss loss(SmoothAPLossOptions(2).queue_size(20));
  loss->eval();
  auto [logits, targets] = balanced_batch(6, 2);
  loss->forward(logits, targets);
  EXPECT_EQ(loss->named_buffers()["queue_ptr"].item<int64_t>(), 0);
  EXPECT_TRUE(loss->named_buffers()["queue_targets"].eq(-100).all().item<bool>());
}

TEST(SmoothAPLoss, QueueUpdatesInEvalWhenUpdateQueueInEval) {
  SmoothAPLoss loss(SmoothAPLossOptions(2).queue_size(20).update_queue_in_eval(true));
  loss->eval();
  auto [logits, targets] = balanced_batch(6, 2);
  loss->forward(logits, targets);
  EXPECT_EQ(loss->named_buffers()["queue_ptr"].item<int64_t>(), 6);
}

TEST(SmoothAPLoss, QueueWrapsAround) {
  SmoothAPLoss loss(SmoothAPLossOptions(2).queue_size(10));
  torch::manual_seed(10);
  auto [a, ta] = balanced_batch(8, 2);
  auto [b, tb] = balanced_batch(6, 2);
  loss->forward(a, ta);
  loss->forward(b, tb);
  const auto q = loss->named_buffers()["queue_logits"];
  EXPECT_EQ(loss->named_buffers()["queue_ptr"].item<int64_t>(), 4);
  // Rows are stored in the queue's float32 buffer (as the seed's).
  const auto a32 = a.to(torch::kFloat);
  const auto b32 = b.to(torch::kFloat);
  EXPECT_LE(max_abs_diff(q.narrow(0, 8, 2), b32.narrow(0, 0, 2)), 0.0);
  EXPECT_LE(max_abs_diff(q.narrow(0, 0, 4), b32.narrow(0, 2, 4)), 0.0);
  EXPECT_LE(max_abs_diff(q.narrow(0, 4, 4), a32.narrow(0, 4, 4)), 0.0);
}

TEST(SmoothAPLoss, BatchLargerThanQueueReplacesItWithItsLastRows) {
  SmoothAPLoss loss(SmoothAPLossOptions(2).queue_size(8));
  auto [a, ta] = balanced_batch(3, 2);
  loss->forward(a, ta);
  auto [b, tb] = balanced_batch(32, 2);
  loss->forward(b, tb);
  EXPECT_EQ(loss->named_buffers()["queue_ptr"].item<int64_t>(), 0);
  EXPECT_LE(max_abs_diff(loss->named_buffers()["queue_logits"],
                         b.narrow(0, 24, 8).to(torch::kFloat)),
            0.0);
  EXPECT_TRUE(torch::equal(loss->named_buffers()["queue_targets"], tb.narrow(0, 24, 8)));
}

TEST(SmoothAPLoss, ResetQueueEmptiesIt) {
  SmoothAPLoss loss(SmoothAPLossOptions(2).queue_size(8).ignore_index(-1));
  auto [a, ta] = balanced_batch(5, 2);
  loss->forward(a, ta);
  loss->reset_queue();
  auto buffers = loss->named_buffers();
  EXPECT_EQ(buffers["queue_ptr"].item<int64_t>(), 0);
  EXPECT_TRUE(buffers["queue_targets"].eq(-1).all().item<bool>());
  EXPECT_EQ(buffers["queue_logits"].abs().sum().item<double>(), 0.0);
}

TEST(SmoothAPLoss, QueueRoundTripsTorchSaveAndLoad) {
  torch::manual_seed(11);
  SmoothAPLoss saved(SmoothAPLossOptions(3).queue_size(16));
  for (int i = 0; i < 3; ++i) {
    auto [x, t] = balanced_batch(7, 3);
    saved->forward(x.to(torch::kFloat), t);
  }
  const test_support::UniqueTempFile file("smooth_ap_queue");
  torch::save(saved, file.path());
  SmoothAPLoss loaded(SmoothAPLossOptions(3).queue_size(16));
  torch::load(loaded, file.path());
  for (const auto& name : {"queue_logits", "queue_targets", "queue_ptr"}) {
    EXPECT_TRUE(torch::equal(saved->named_buffers()[name], loaded->named_buffers()[name]))
        << name;
  }
  // And the restored queue is used: same loss on the next batch.
  auto [x, t] = balanced_batch(5, 3);
  EXPECT_EQ(saved->forward(x.to(torch::kFloat), t).item<float>(),
            loaded->forward(x.to(torch::kFloat), t).item<float>());
}

TEST(SmoothAPLoss, CloneCopiesTheQueueIntoIndependentBuffers) {
  SmoothAPLoss loss(SmoothAPLossOptions(2).queue_size(8));
  auto [a, ta] = balanced_batch(4, 2);
  loss->forward(a.to(torch::kFloat), ta);
  auto copy = std::dynamic_pointer_cast<proxyloss::SmoothAPLossImpl>(loss->clone());
  ASSERT_TRUE(copy);
  EXPECT_TRUE(torch::equal(copy->named_buffers()["queue_logits"],
                           loss->named_buffers()["queue_logits"]));
  loss->reset_queue();
  EXPECT_EQ(copy->named_buffers()["queue_ptr"].item<int64_t>(), 4);
  copy->forward(a.to(torch::kFloat), ta); // uses its own buffers
  EXPECT_EQ(copy->named_buffers()["queue_ptr"].item<int64_t>(), 0);
  EXPECT_EQ(loss->named_buffers()["queue_ptr"].item<int64_t>(), 0);
}

TEST(SmoothAPLoss, QueueKeepsTheLogitsDtypeAndSurvivesModuleToDouble) {
  SmoothAPLoss loss(SmoothAPLossOptions(2).queue_size(8));
  loss->to(torch::kDouble); // converts every buffer, the integer ones too
  auto [a, ta] = balanced_batch(4, 2);
  loss->forward(a, ta);
  auto buffers = loss->named_buffers();
  EXPECT_EQ(buffers["queue_logits"].scalar_type(), torch::kDouble);
  EXPECT_EQ(buffers["queue_targets"].scalar_type(), torch::kLong);
  EXPECT_EQ(buffers["queue_ptr"].scalar_type(), torch::kLong);
  EXPECT_EQ(buffers["queue_ptr"].item<int64_t>(), 4);
}

TEST(SmoothAPLoss, MaxPoolSizeSubsamplesWithPerClassQuotaAndWarnsOnce) {
  torch::manual_seed(12);
  // 200 rows, class 2 has only 3 rows; cap 40 -> quota max(1, 40 / 6) = 6.
  auto logits = randn(200, 3);
  auto targets = torch::zeros({200}, torch::kLong);
  targets.narrow(0, 0, 60).fill_(1);
  targets.narrow(0, 60, 3).fill_(2);
  SmoothAPLoss capped(SmoothAPLossOptions(3).queue_size(0).max_pool_size(40));
  proxyloss::compat::ScopedWarningCollector warnings;
  torch::Tensor out, per_class, valid;
  for (int i = 0; i < 3; ++i) {
    std::tie(out, per_class, valid) = capped->forward_per_class(logits, targets);
    // The rare class keeps all its rows, so it is always valid.
    EXPECT_TRUE(valid.all().item<bool>());
  }
  EXPECT_EQ(count_containing(warnings.messages(), "max_pool_size=40"), 1);
  // It is a subsample: the loss differs from the full pool's.
  SmoothAPLoss full(SmoothAPLossOptions(3).queue_size(0));
  EXPECT_NE(out.item<double>(), full->forward(logits, targets).item<double>());
}

TEST(SmoothAPLoss, MaxPoolSizeMatchesTheSeedSelectionRule) {
  // With a fixed seed the subsample is repeatable, and its loss equals the
  // oracle on exactly the rows the rule selects (reproduced here with the
  // same RNG calls: per class randperm, then randperm of the rest).
  auto logits = randn(50, 2);
  auto targets = torch::arange(50, torch::kLong).remainder(2);
  targets.narrow(0, 0, 30).fill_(0);
  SmoothAPLoss capped(
      SmoothAPLossOptions(2).queue_size(0).max_pool_size(20).temperature(0.1));
  torch::manual_seed(13);
  const double got = capped->forward(logits, targets).item<double>();
  torch::manual_seed(13);
  const int64_t quota = 20 / (2 * 2);
  std::vector<torch::Tensor> chosen;
  for (int64_t c = 0; c < 2; ++c) {
    const auto rows = targets.eq(c).nonzero().squeeze(1);
    chosen.push_back(rows.index_select(
        0, torch::randperm(rows.size(0), torch::kLong).narrow(0, 0, quota)));
  }
  auto reserved = torch::cat(chosen);
  auto taken = torch::zeros({50}, torch::kBool);
  taken.index_fill_(0, reserved, true);
  const auto rest = taken.logical_not().nonzero().squeeze(1);
  const auto extra = rest.index_select(
      0, torch::randperm(rest.size(0), torch::kLong).narrow(0, 0, 20 - 2 * quota));
  const auto rows = torch::cat({reserved, extra});
  oracle::SmoothAPModule reference(2, 0, 0.1);
  const auto want = std::get<0>(reference.forward(logits.index_select(0, rows),
                                                  targets.index_select(0, rows), true));
  EXPECT_NEAR(got, want.item<double>(), kTol);
}

TEST(SmoothAPLoss, TemperatureGetAndSet) {
  SmoothAPLoss loss(SmoothAPLossOptions(2).temperature(0.2));
  EXPECT_EQ(loss->temperature(), 0.2);
  loss->set_temperature(0.05);
  EXPECT_EQ(loss->temperature(), 0.05);
  EXPECT_EQ(loss->options.temperature(), 0.05);
  // The new temperature is used by the next forward.
  torch::manual_seed(14);
  auto [x, t] = balanced_batch(10, 2);
  SmoothAPLoss reference(SmoothAPLossOptions(2).temperature(0.05).queue_size(0));
  SmoothAPLoss changed(SmoothAPLossOptions(2).temperature(0.5).queue_size(0));
  changed->set_temperature(0.05);
  EXPECT_EQ(changed->forward(x, t).item<double>(),
            reference->forward(x, t).item<double>());
  EXPECT_TRUE(test_support::throws_with([&] { loss->set_temperature(0.0); },
                                        {"temperature", "0"}));
  EXPECT_TRUE(test_support::throws_with([&] { loss->set_temperature(-1.0); },
                                        {"temperature", "-1"}));
  EXPECT_EQ(loss->temperature(), 0.05);
}

TEST(SmoothAPLoss, PrettyPrintShowsEveryOption) {
  SmoothAPLoss loss(SmoothAPLossOptions(4)
                        .queue_size(64)
                        .temperature(0.02)
                        .reduction(torch::kSum)
                        .max_pool_size(1000));
  std::ostringstream out;
  out << *loss;
  EXPECT_EQ(out.str(),
            "proxyloss::SmoothAPLoss(num_classes=4, queue_size=64, temperature=0.02, "
            "reduction=kSum, ignore_index=-100, update_queue_in_eval=false, "
            "max_pool_size=1000)");
}

TEST(SmoothAPLoss, NonFiniteLogitsGiveNaNWithoutEnteringTheQueue) {
  for (double bad : {std::nan(""), double(INFINITY), -double(INFINITY)}) {
    SmoothAPLoss loss(SmoothAPLossOptions(2).queue_size(16));
    proxyloss::compat::ScopedWarningCollector warnings;
    auto [x, t] = balanced_batch(8, 2);
    x[3][1] = bad;
    x.requires_grad_(true);
    const auto out = loss->forward(x, t);
    EXPECT_TRUE(std::isnan(out.item<double>())) << bad;
    out.backward(); // no exception
    EXPECT_EQ(loss->named_buffers()["queue_ptr"].item<int64_t>(), 0);
    loss->forward(x.detach(), t);
    EXPECT_EQ(count_containing(warnings.messages(), "non-finite"), 1);
    // The next finite batch is unaffected by the bad one.
    auto [y, u] = balanced_batch(8, 2);
    EXPECT_TRUE(std::isfinite(loss->forward(y, u).item<double>()));
  }
}

TEST(SmoothAPLoss, Float32AndFloat64Logits) {
  torch::manual_seed(15);
  auto [x, t] = balanced_batch(40, 3);
  SmoothAPLoss loss(SmoothAPLossOptions(3).queue_size(0).temperature(0.1));
  const auto f64 = loss->forward(x, t);
  const auto f32 = loss->forward(x.to(torch::kFloat), t);
  EXPECT_EQ(f64.scalar_type(), torch::kDouble);
  EXPECT_EQ(f32.scalar_type(), torch::kFloat);
  EXPECT_NEAR(f32.item<double>(), f64.item<double>(), 1e-5);
}

TEST(SmoothAPLoss, HalfAndBFloat16LogitsAccumulateInFloat32) {
  torch::manual_seed(16);
  auto [x, t] = balanced_batch(40, 3);
  for (auto dtype : {torch::kHalf, torch::kBFloat16}) {
    SmoothAPLoss loss(SmoothAPLossOptions(3).queue_size(64).temperature(0.1));
    const auto low = x.to(dtype).requires_grad_(true);
    const auto out = loss->forward(low, t);
    EXPECT_EQ(out.scalar_type(), dtype);
    // Equal to the float32 loss of the same (rounded) logits, up to the
    // final rounding of the result to `dtype`.
    SmoothAPLoss ref(SmoothAPLossOptions(3).queue_size(0).temperature(0.1));
    const double want = ref->forward(low.detach().to(torch::kFloat), t).item<double>();
    EXPECT_NEAR(out.item<double>(), want, 1e-2 * std::abs(want));
    out.backward();
    EXPECT_EQ(low.grad().scalar_type(), dtype);
    // The queue keeps its own dtype, float32 (as the seed's buffer): half and
    // bfloat16 rows are exact in it.
    EXPECT_EQ(loss->named_buffers()["queue_logits"].scalar_type(), torch::kFloat);
  }
}

TEST(SmoothAPLoss, FunctionalMatchesModuleWithoutQueue) {
  torch::manual_seed(17);
  auto [x, t] = balanced_batch(30, 3);
  t[0] = -100;
  SmoothAPLoss loss(
      SmoothAPLossOptions(3).queue_size(0).temperature(0.2).reduction(torch::kNone));
  const auto got = proxyloss::functional::smooth_ap_loss(
      x, t,
      proxyloss::functional::SmoothAPLossFuncOptions(3).temperature(0.2).reduction(
          torch::kNone));
  EXPECT_LE(max_abs_diff(got, loss->forward(x, t)), 0.0);
}

TEST(SmoothAPLoss, ImplementsRankingLossControl) {
  SmoothAPLoss loss(SmoothAPLossOptions(2).queue_size(8).temperature(0.3));
  proxyloss::RankingLossControl& control = *loss;
  EXPECT_EQ(control.temperature(), 0.3);
  control.set_temperature(0.1);
  EXPECT_EQ(loss->temperature(), 0.1);
  auto [x, t] = balanced_batch(4, 2);
  loss->forward(x, t);
  control.reset_queue();
  EXPECT_EQ(loss->named_buffers()["queue_ptr"].item<int64_t>(), 0);
}

// --- sample weights -----------------------------------------------------------------

TEST(SmoothAPLoss, SampleWeightsWeighThePositivesOfTheWholePoolQueueIncluded) {
  torch::manual_seed(21);
  SmoothAPLoss loss(SmoothAPLossOptions(3).queue_size(12).temperature(0.1));
  std::vector<torch::Tensor> rows, labels, weights;
  for (int step = 0; step < 4; ++step) {
    const auto x = torch::randn({5, 3}, torch::kDouble);
    const auto t = torch::arange(5).remainder(3);
    // Weighted, unweighted, weighted with a zero, unweighted.
    const auto w = step % 2 == 0 ? torch::rand({5}, torch::kDouble) * (step == 2 ? 0 : 2)
                                 : torch::Tensor();
    const auto live = x.clone().requires_grad_(true);
    auto got = loss->forward_per_class(live, t, w);
    // The oracle: the op on the same pool, the queue's rows and weights given
    // explicitly (the queue holds the previous steps' last 12 rows, in its
    // float32 buffers).
    const auto queue_w = torch::cat(
        weights.empty() ? std::vector<torch::Tensor>{torch::zeros({0}, torch::kDouble)}
                        : weights);
    const int64_t queued = queue_w.size(0);
    const auto all_rows =
        rows.empty() ? torch::zeros({0, 3}, torch::kDouble) : torch::cat(rows);
    const auto all_labels =
        labels.empty() ? torch::zeros({0}, torch::kLong) : torch::cat(labels);
    const int64_t keep = std::min<int64_t>(queued, 12);
    const auto reference = live.detach().clone().requires_grad_(true);
    const auto want = proxyloss::ops::smooth_ap_loss(
        reference, t, all_rows.narrow(0, queued - keep, keep).to(torch::kFloat),
        all_labels.narrow(0, queued - keep, keep), 3, 0.1, "mean", -100, c10::nullopt,
        w.defined() ? w : torch::ones({5}, torch::kDouble),
        queue_w.narrow(0, queued - keep, keep).to(torch::kFloat));
    EXPECT_LE(max_abs_diff(std::get<0>(got), std::get<0>(want)), 1e-12)
        << "step " << step;
    EXPECT_TRUE(torch::equal(std::get<2>(got), std::get<2>(want))) << "step " << step;
    std::get<0>(got).backward();
    std::get<0>(want).backward();
    EXPECT_LE(max_abs_diff(live.grad(), reference.grad()), 1e-12) << "step " << step;
    rows.push_back(x);
    labels.push_back(t);
    weights.push_back(w.defined() ? w : torch::ones({5}, torch::kDouble));
  }
  // The queue holds the last 12 rows' weights (the ring starts at slot 20 % 12).
  const auto last = torch::cat(weights).narrow(0, 8, 12).to(torch::kFloat);
  EXPECT_TRUE(torch::equal(loss->queue_weight.roll(-(20 % 12)), last));
}

TEST(SmoothAPLoss, UnitSampleWeightsAreBitwiseTheUnweightedLoss) {
  torch::manual_seed(22);
  SmoothAPLoss plain(SmoothAPLossOptions(2).queue_size(16));
  SmoothAPLoss weighted(SmoothAPLossOptions(2).queue_size(16));
  for (int step = 0; step < 3; ++step) {
    const auto x = torch::randn({7, 2});
    const auto t = torch::arange(7).remainder(2);
    EXPECT_TRUE(
        torch::equal(plain->forward(x, t), weighted->forward(x, t, torch::ones({7}))));
  }
}

TEST(SmoothAPLoss, BadSampleWeightsAreErrorsNamingTheLoss) {
  SmoothAPLoss loss(SmoothAPLossOptions(2).queue_size(8));
  const auto x = torch::randn({4, 2});
  const auto t = torch::tensor({0, 1, 0, 1});
  EXPECT_TRUE(test_support::throws_with(
      [&] { loss->forward(x, t, -torch::ones({4})); },
      {"SmoothAPLoss", "sample_weight must be finite and >= 0"}));
  EXPECT_TRUE(
      test_support::throws_with([&] { loss->forward(x, t, torch::ones({3})); },
                                {"SmoothAPLoss", "sample_weight must have shape [N]"}));
  EXPECT_EQ(loss->queue_ptr.item<int64_t>(), 0); // nothing was queued
}

TEST(SmoothAPLoss, FunctionalFormTakesSampleWeights) {
  torch::manual_seed(24);
  const auto x = torch::randn({9, 3}, torch::kDouble);
  const auto t = torch::arange(9).remainder(3);
  const auto w = torch::rand({9}, torch::kDouble);
  SmoothAPLoss module(SmoothAPLossOptions(3).queue_size(0));
  EXPECT_TRUE(torch::equal(proxyloss::functional::smooth_ap_loss(x, t, 3, w),
                           module->forward(x, t, w)));
}

TEST(SmoothAPLoss, AnyModuleCallsItWithTwoArguments) {
  torch::nn::AnyModule any(SmoothAPLoss(SmoothAPLossOptions(2).queue_size(0)));
  const auto x = torch::randn({6, 2});
  const auto t = torch::arange(6).remainder(2);
  SmoothAPLoss direct(SmoothAPLossOptions(2).queue_size(0));
  EXPECT_TRUE(torch::equal(any.forward(x, t), direct->forward(x, t)));
  EXPECT_TRUE(torch::equal(any.forward(x, t, torch::ones({6})), direct->forward(x, t)));
}

TEST(SmoothAPLoss, WeightedQueueRoundTripsACheckpointAndOldCheckpointsLoadUnweighted) {
  torch::manual_seed(23);
  SmoothAPLoss saved(SmoothAPLossOptions(2).queue_size(8));
  saved->forward(torch::randn({5, 2}), torch::arange(5).remainder(2), torch::rand({5}));
  std::ostringstream out;
  torch::save(saved, out);
  SmoothAPLoss loaded(SmoothAPLossOptions(2).queue_size(8));
  std::istringstream in(out.str());
  torch::load(loaded, in);
  EXPECT_TRUE(torch::equal(loaded->queue_weight, saved->queue_weight));
  const auto x = torch::randn({4, 2});
  const auto t = torch::tensor({0, 1, 1, 0});
  // Without weights of their own, both weigh the queued rows as stored.
  EXPECT_TRUE(torch::equal(loaded->forward(x, t), saved->forward(x, t)));

  // A checkpoint written before queue_weight existed: its three buffers only.
  torch::serialize::OutputArchive old_archive;
  old_archive.write("queue_logits", saved->queue_logits, /*is_buffer=*/true);
  old_archive.write("queue_targets", saved->queue_targets, /*is_buffer=*/true);
  old_archive.write("queue_ptr", saved->queue_ptr, /*is_buffer=*/true);
  std::ostringstream old_bytes;
  old_archive.save_to(old_bytes);
  std::istringstream old_in(old_bytes.str());
  torch::load(loaded, old_in);
  EXPECT_TRUE(torch::equal(loaded->queue_weight, torch::ones({8})));
  EXPECT_TRUE(torch::equal(loaded->queue_logits, saved->queue_logits));
}
