// RecallAtQuantileLoss and the selection quantile: against torch::quantile,
// the seed's module transcribed (tests/support/ranking_oracle.h), and each
// behaviour of the contract.
#include "support/queued_step.h"
#include "support/ranking_oracle.h"
#include "support/test_support.h"

#include <proxyloss/detail/kernel_selection.h>
#include <proxyloss/detail/quantile.h>
#include <proxyloss/proxyloss.h>

#include <filesystem>
#include <random>

using proxyloss::RecallAtQuantileLoss;
using proxyloss::RecallAtQuantileLossOptions;
using proxyloss::detail::QuantileInterpolation;
using test_support::max_abs;
using test_support::max_abs_diff;
using test_support::throws_with;

namespace {

const std::vector<std::string> kModes = {"linear", "lower", "higher", "nearest",
                                         "midpoint"};

} // namespace

// --- the threshold ------------------------------------------------------------

TEST(QuantileBySelection, EqualsTorchQuantileForEveryModeWithTiesAndDuplicates) {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 300; ++trial) {
    torch::manual_seed(trial);
    const int64_t n = std::uniform_int_distribution<int64_t>(1, 400)(rng);
    auto values = torch::randn({n}, torch::kDouble);
    if (trial % 3 == 0) {
      values = torch::round(values * 2); // heavy ties
    }
    if (trial % 5 == 0) {
      values = torch::randint(0, 3, {n}, torch::kDouble); // mostly duplicates
    }
    const std::vector<double> levels = {
        0.0,   1.0, 0.5,  0.995,
        0.005, 0.9, 0.25, std::uniform_real_distribution<double>(0, 1)(rng)};
    for (auto dtype : {torch::kFloat, torch::kDouble}) {
      const auto typed = values.to(dtype);
      for (const double q : levels) {
        for (const auto& mode : kModes) {
          const auto want = torch::quantile(typed, q, c10::nullopt, false, mode);
          const auto got = proxyloss::detail::quantile_by_selection(
              typed, q, proxyloss::detail::parse_interpolation(mode, "mode"));
          ASSERT_EQ(got.scalar_type(), dtype);
          ASSERT_EQ(got.item<double>(), want.item<double>())
              << "n=" << n << " q=" << q << " mode=" << mode << " dtype=" << dtype;
        }
      }
    }
  }
}

TEST(QuantileBySelection, NaNInputGivesNaN) {
  auto values = torch::randn({10});
  values[4] = std::nan("");
  EXPECT_TRUE(std::isnan(
      proxyloss::detail::quantile_by_selection(values, 0.5, QuantileInterpolation::Linear)
          .item<double>()));
}

TEST(QuantileBySelection, HasNoSizeLimit) {
  // torch::quantile refuses more than 16M elements in newer versions.
  const int64_t n = (int64_t(1) << 24) + 3;
  const auto values = torch::arange(n, torch::kFloat).flip(0);
  const auto got = proxyloss::detail::quantile_by_selection(
      values, 1.0, QuantileInterpolation::Higher);
  EXPECT_EQ(got.item<float>(), float(n - 1));
}

TEST(QuantileBySelection, RejectsBadArguments) {
  EXPECT_TRUE(throws_with(
      [] { proxyloss::detail::parse_interpolation("cubic", "interpolation"); },
      {"interpolation", "linear, lower, higher, nearest, midpoint", "cubic"}));
  EXPECT_TRUE(throws_with(
      [] {
        proxyloss::detail::quantile_by_selection(torch::zeros({0}), 0.5,
                                                 QuantileInterpolation::Linear);
      },
      {"non-empty"}));
}

// --- the loss against the seed's module --------------------------------------------

void run_recall_sequence(uint64_t seed, bool generic) {
  std::mt19937_64 rng(seed);
  torch::manual_seed(seed);
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  const int64_t C = pick(1, 4);
  const int64_t Q = std::vector<int64_t>{0, 9, 40}[pick(0, 2)];
  const double tau = std::vector<double>{0.01, 0.1, 0.5}[pick(0, 2)];
  const double quantile = std::vector<double>{0.005, 0.1, 0.3, 0.6}[pick(0, 3)];
  const std::string mode = kModes[pick(0, 4)];
  const auto reduction = std::vector<proxyloss::reduction_t>{torch::kMean, torch::kSum,
                                                             torch::kNone}[pick(0, 2)];
  RecallAtQuantileLoss loss(RecallAtQuantileLossOptions(C)
                                .quantile(quantile)
                                .interpolation(mode)
                                .queue_size(Q)
                                .temperature(tau)
                                .reduction(reduction));
  oracle::RecallAtQuantileModule reference(C, Q, tau, quantile, mode);
  reference.reduction = proxyloss::reduction_kind(reduction);
  std::unique_ptr<proxyloss::detail::ForceGenericKernels> force;
  if (generic) {
    force = std::make_unique<proxyloss::detail::ForceGenericKernels>();
  }
  for (int step = 0; step < 6; ++step) {
    const bool training = pick(0, 3) != 0;
    loss->train(training);
    const int64_t N = pick(0, 30);
    auto logits = torch::randn({N, C}, torch::kDouble);
    if (pick(0, 2) == 0) {
      logits = torch::round(logits * 2); // ties at the threshold
    }
    auto targets = torch::randint(0, C == 1 ? 2 : C, {N}, torch::kLong);
    if (N > 0 && pick(0, 1)) {
      targets.index_fill_(0, torch::randint(0, N, {pick(1, N)}, torch::kLong), -100);
    }
    std::ostringstream where;
    where << "seed " << seed << " step " << step << " C=" << C << " Q=" << Q << " N=" << N
          << " q=" << quantile << " mode=" << mode;
    test_support::expect_step_matches(loss, reference, logits, targets, training, 1e-12,
                                      where.str());
    if (Q > 0) {
      EXPECT_TRUE(
          torch::equal(loss->named_buffers()["queue_targets"], reference.q_targets))
          << where.str();
    }
  }
}

TEST(RecallAtQuantileLoss, MatchesSeedModuleOverRandomQueueSequences) {
  for (uint64_t seed = 0; seed < 60; ++seed) {
    run_recall_sequence(seed, /*generic=*/false);
  }
}

// --- named behaviours ---------------------------------------------------------------

TEST(RecallAtQuantileLoss, DefaultOptionsFollowTheSeed) {
  const RecallAtQuantileLossOptions options(2);
  EXPECT_EQ(options.quantile(), 0.005);
  EXPECT_EQ(options.interpolation(), "higher");
  EXPECT_EQ(options.queue_size(), 1024);
  EXPECT_EQ(options.temperature(), 0.01);
  EXPECT_EQ(options.ignore_index(), -100);
  EXPECT_FALSE(options.max_pool_size().has_value());
}

TEST(RecallAtQuantileLoss, GradientFlowsThroughPositivesOnly) {
  torch::manual_seed(1);
  auto logits = torch::randn({40, 2}, torch::kDouble).requires_grad_(true);
  const auto targets = torch::arange(40, torch::kLong).remainder(2);
  RecallAtQuantileLoss loss(
      RecallAtQuantileLossOptions(2).quantile(0.3).queue_size(0).temperature(0.5));
  loss->forward(logits, targets).backward();
  const auto grad = logits.grad();
  for (int64_t c = 0; c < 2; ++c) {
    const auto negatives = targets.ne(c).nonzero().squeeze(1);
    EXPECT_EQ(grad.select(1, c).index_select(0, negatives).abs().sum().item<double>(),
              0.0);
    const auto positives = targets.eq(c).nonzero().squeeze(1);
    EXPECT_GT(grad.select(1, c).index_select(0, positives).abs().sum().item<double>(),
              0.0);
  }
}

TEST(RecallAtQuantileLoss, ClassWithoutPositivesIsDegenerate) {
  const auto logits = torch::randn({6, 3}, torch::kDouble);
  const auto targets = torch::tensor({0, 1, 0, 1, 0, 1}, torch::kLong);
  RecallAtQuantileLoss none(
      RecallAtQuantileLossOptions(3).quantile(0.2).queue_size(0).reduction(torch::kNone));
  const auto out = none->forward(logits, targets);
  EXPECT_TRUE(std::isnan(out[2].item<double>()));
  EXPECT_FALSE(std::isnan(out[0].item<double>()));
  // All-positive classes are valid here (unlike Smooth-AP).
  RecallAtQuantileLoss binary(
      RecallAtQuantileLossOptions(1).quantile(0.2).queue_size(0).reduction(torch::kNone));
  EXPECT_FALSE(std::isnan(
      binary->forward(logits.narrow(1, 0, 1), torch::ones({6}, torch::kLong))[0]
          .item<double>()));
}

TEST(RecallAtQuantileLoss, BinaryModeWarnsOnceForNonBinaryTargets) {
  RecallAtQuantileLoss loss(RecallAtQuantileLossOptions(1).quantile(0.3).queue_size(0));
  proxyloss::compat::ScopedWarningCollector warnings;
  const auto targets = torch::tensor({0, 1, 3, 0, 0}, torch::kLong);
  loss->forward(torch::randn({5, 1}), targets);
  loss->forward(torch::randn({5, 1}), targets);
  EXPECT_EQ(
      test_support::count_containing(warnings.messages(), "expects targets in {0, 1}"),
      1);
}

TEST(RecallAtQuantileLoss, NonFiniteLogitsGiveNaNWithoutEnteringTheQueue) {
  RecallAtQuantileLoss loss(RecallAtQuantileLossOptions(2).quantile(0.3).queue_size(16));
  proxyloss::compat::ScopedWarningCollector warnings;
  auto logits = torch::randn({8, 2}, torch::kDouble);
  logits[2][0] = INFINITY;
  const auto out = loss->forward(logits.requires_grad_(true),
                                 torch::arange(8, torch::kLong).remainder(2));
  EXPECT_TRUE(std::isnan(out.item<double>()));
  out.backward();
  EXPECT_EQ(loss->named_buffers()["queue_ptr"].item<int64_t>(), 0);
  EXPECT_EQ(test_support::count_containing(warnings.messages(), "non-finite"), 1);
}

TEST(RecallAtQuantileLoss, EmptyPoolGivesZeroLossWithAGraph) {
  RecallAtQuantileLoss loss(RecallAtQuantileLossOptions(2).queue_size(4));
  auto logits = torch::randn({3, 2}).requires_grad_(true);
  const auto out = loss->forward(logits, torch::full({3}, -100, torch::kLong));
  EXPECT_EQ(out.item<float>(), 0.0f);
  out.backward();
  EXPECT_EQ(logits.grad().abs().sum().item<float>(), 0.0f);
}

TEST(RecallAtQuantileLoss, QueueRoundTripsTorchSaveAndLoad) {
  RecallAtQuantileLoss saved(RecallAtQuantileLossOptions(2).queue_size(10));
  saved->forward(torch::randn({7, 2}), torch::arange(7, torch::kLong).remainder(2));
  const auto path =
      (std::filesystem::temp_directory_path() / "proxyloss_recall_queue.pt").string();
  torch::save(saved, path);
  RecallAtQuantileLoss loaded(RecallAtQuantileLossOptions(2).queue_size(10));
  torch::load(loaded, path);
  std::remove(path.c_str());
  for (const auto& name : {"queue_logits", "queue_targets", "queue_ptr"}) {
    EXPECT_TRUE(torch::equal(saved->named_buffers()[name], loaded->named_buffers()[name]))
        << name;
  }
}

TEST(RecallAtQuantileLoss, MaxPoolSizeSubsamplesAndWarnsOnce) {
  RecallAtQuantileLoss loss(
      RecallAtQuantileLossOptions(2).queue_size(0).quantile(0.2).max_pool_size(10));
  proxyloss::compat::ScopedWarningCollector warnings;
  for (int i = 0; i < 2; ++i) {
    loss->forward(torch::randn({50, 2}), torch::arange(50, torch::kLong).remainder(2));
  }
  EXPECT_EQ(test_support::count_containing(warnings.messages(), "max_pool_size=10"), 1);
}

TEST(RecallAtQuantileLoss, TemperatureGetSetAndControlInterface) {
  RecallAtQuantileLoss loss(RecallAtQuantileLossOptions(2).temperature(0.2));
  proxyloss::RankingLossControl& control = *loss;
  EXPECT_EQ(control.temperature(), 0.2);
  control.set_temperature(0.03);
  EXPECT_EQ(loss->options.temperature(), 0.03);
  EXPECT_TRUE(throws_with([&] { control.set_temperature(-2); }, {"temperature", "-2"}));
}

TEST(RecallAtQuantileLoss, PrettyPrintShowsEveryOption) {
  RecallAtQuantileLoss loss(
      RecallAtQuantileLossOptions(4).quantile(0.01).interpolation("linear"));
  std::ostringstream out;
  out << *loss;
  EXPECT_EQ(out.str(),
            "proxyloss::RecallAtQuantileLoss(num_classes=4, quantile=0.01, "
            "interpolation=linear, queue_size=1024, temperature=0.01, reduction=kMean, "
            "ignore_index=-100, update_queue_in_eval=false, max_pool_size=None)");
}

TEST(RecallAtQuantileLossErrors, BadOptionsNameTheOption) {
  EXPECT_TRUE(throws_with(
      [] { RecallAtQuantileLoss(RecallAtQuantileLossOptions(2).quantile(0)); },
      {"quantile", "(0, 1)", "got 0"}));
  EXPECT_TRUE(throws_with(
      [] { RecallAtQuantileLoss(RecallAtQuantileLossOptions(2).quantile(1.5)); },
      {"quantile", "got 1.5"}));
  EXPECT_TRUE(throws_with(
      [] { RecallAtQuantileLoss(RecallAtQuantileLossOptions(2).interpolation("mean")); },
      {"interpolation", "\"mean\""}));
  EXPECT_TRUE(throws_with([] { RecallAtQuantileLoss(RecallAtQuantileLossOptions(0)); },
                          {"num_classes", "got 0"}));
  EXPECT_TRUE(throws_with(
      [] { RecallAtQuantileLoss(RecallAtQuantileLossOptions(2).temperature(0)); },
      {"temperature", "got 0"}));
  EXPECT_TRUE(throws_with(
      [] { RecallAtQuantileLoss(RecallAtQuantileLossOptions(2).queue_size(-4)); },
      {"queue_size", "got -4"}));
}

TEST(RecallAtQuantileLossErrors, BadInputsNameTheArgument) {
  RecallAtQuantileLoss loss(RecallAtQuantileLossOptions(3));
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::randn({4, 2}), torch::zeros({4}, torch::kLong));
      },
      {"logits", "[N, 3]", "[4, 2]"}));
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::randn({4, 3}), torch::tensor({0, 1, 5, 2}, torch::kLong));
      },
      {"targets", "[0, 3)", "[5]"}));
  EXPECT_TRUE(throws_with(
      [&] {
        loss->forward(torch::randn({4, 3}), torch::zeros({4}));
      },
      {"targets", "integer"}));
}
