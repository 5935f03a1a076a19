// RecallAtQuantileLoss and the selection quantile: against torch::quantile,
// the seed's module transcribed (tests/support/ranking_oracle.h), and each
// behaviour of the contract.
#include "support/queued_step.h"
#include "support/ranking_oracle.h"
#include "support/test_support.h"

#include <proxyloss/proxyloss.h>
#include "ops/cpu/kernel_selection.h"
#include "ops/selection_quantile.h"

#include <cmath>
#include <memory>
#include <random>
#include <vector>

using proxyloss::RecallAtQuantileLoss;
using proxyloss::RecallAtQuantileLossOptions;
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
          const auto got = proxyloss::ops::selection_quantile(typed, q, mode);
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
      proxyloss::ops::selection_quantile(values, 0.5, "linear").item<double>()));
}

TEST(QuantileBySelection, HasNoSizeLimit) {
  // torch::quantile refuses more than 16M elements in newer versions.
  const int64_t n = (int64_t(1) << 24) + 3;
  const auto values = torch::arange(n, torch::kFloat).flip(0);
  const auto got = proxyloss::ops::selection_quantile(values, 1.0, "higher");
  EXPECT_EQ(got.item<float>(), float(n - 1));
}

TEST(QuantileBySelection, RejectsBadArguments) {
  EXPECT_TRUE(throws_with(
      [] { proxyloss::ops_impl::parse_interpolation("cubic", "interpolation"); },
      {"interpolation", "linear, lower, higher, nearest, midpoint", "cubic"}));
  EXPECT_TRUE(throws_with(
      [] {
        proxyloss::ops::selection_quantile(torch::zeros({2, 2, 2}), 0.5, "linear");
      },
      {"[M] or [M, C]", "[2, 2, 2]"}));
}

// No value to select: NaN per column (torch::quantile raises), on both
// implementations.
TEST(QuantileBySelection, EmptyValuesGiveNaN) {
  for (const bool generic : {false, true}) {
    std::unique_ptr<proxyloss::detail::ForceGenericKernels> force;
    if (generic) {
      force = std::make_unique<proxyloss::detail::ForceGenericKernels>();
    }
    const auto column =
        proxyloss::ops::selection_quantile(torch::zeros({0}), 0.5, "linear");
    EXPECT_EQ(column.dim(), 0);
    EXPECT_TRUE(std::isnan(column.item<float>()));
    const auto columns = proxyloss::ops::selection_quantile(
        torch::zeros({0, 3}, torch::kDouble), 1.0, "higher");
    EXPECT_EQ(columns.sizes(), (std::vector<int64_t>{3}));
    EXPECT_TRUE(columns.isnan().all().item<bool>());
  }
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

// Float64 logits with a queue (issue 10). The seed keeps its queue in a
// float32 buffer (rows are rounded into it), so the threshold is a quantile of
// that pool. Then, per valid class c with positives P_c,
//   loss_c = 1 - (1/|P_c|) sum_i sigmoid(z_i),   z_i = (s_i - theta_c) / tau,
//   d loss / d s_i = -sigmoid'(z_i) / (tau |P_c| C_valid)      (mean reduction),
// checked entry by entry to 1e-12 relative against long double, on both
// implementations. Logits near the threshold (scale 0.05, tau 0.005) give z
// up to about 30, where sigmoid(z)(1 - sigmoid(z)) would have lost 1e-6.
TEST(RecallAtQuantileLoss, Float64ValuesAndGradientsAreExactWithAQueue) {
  for (const bool generic : {false, true}) {
    std::unique_ptr<proxyloss::detail::ForceGenericKernels> force;
    if (generic) {
      force = std::make_unique<proxyloss::detail::ForceGenericKernels>();
    }
    torch::manual_seed(5);
    const int64_t C = 3;
    const double tau = 0.005;
    const double quantile = 0.05;
    RecallAtQuantileLoss loss(RecallAtQuantileLossOptions(C)
                                  .quantile(quantile)
                                  .queue_size(200)
                                  .temperature(tau)
                                  .interpolation("higher"));
    auto queued_rows = torch::zeros({0, C}, torch::kDouble);
    auto queued_targets = torch::zeros({0}, torch::kLong);
    for (int step = 0; step < 3; ++step) {
      const auto x = torch::randn({64, C}, torch::kDouble) * 0.05;
      const auto t = torch::randint(0, C, {64}, torch::kLong);
      const auto logits = x.clone().requires_grad_(true);
      const auto out = loss->forward(logits, t);
      out.backward();

      const auto pool = torch::cat({x, queued_rows.to(torch::kFloat).to(torch::kDouble)});
      const auto pool_targets = torch::cat({t, queued_targets});
      long double expected_sum = 0;
      int64_t valid = 0;
      std::vector<long double> thresholds(C);
      std::vector<int64_t> positives(C);
      for (int64_t c = 0; c < C; ++c) {
        positives[c] = pool_targets.eq(c).sum().item<int64_t>();
        // "higher" selects a pool value: torch::quantile returns it exactly.
        thresholds[c] = torch::quantile(pool.select(1, c), 1.0 - quantile, c10::nullopt,
                                        false, "higher")
                            .item<double>();
      }
      for (int64_t c = 0; c < C; ++c) {
        if (positives[c] == 0) {
          continue;
        }
        ++valid;
        long double recall = 0;
        for (int64_t m = 0; m < pool.size(0); ++m) {
          if (pool_targets[m].item<int64_t>() == c) {
            const long double z =
                (static_cast<long double>(pool[m][c].item<double>()) - thresholds[c]) /
                tau;
            recall += 1.0L / (1.0L + std::exp(-z));
          }
        }
        expected_sum += 1.0L - recall / positives[c];
      }
      const long double expected = expected_sum / valid;
      EXPECT_NEAR(out.item<double>(), static_cast<double>(expected),
                  1e-14 * std::fabs(static_cast<double>(expected)))
          << "step " << step << " generic " << generic;
      const auto grad = logits.grad();
      for (int64_t i = 0; i < x.size(0); ++i) {
        const int64_t c = t[i].item<int64_t>();
        const long double z =
            (static_cast<long double>(x[i][c].item<double>()) - thresholds[c]) / tau;
        const long double e = std::exp(-std::fabs(z));
        const long double want = -e / ((1 + e) * (1 + e)) / (tau * positives[c] * valid);
        if (std::fabs(want) < 1e-290L) {
          continue;
        }
        const double got = grad[i][c].item<double>();
        EXPECT_NEAR(got, static_cast<double>(want),
                    1e-12 * std::fabs(static_cast<double>(want)))
            << "step " << step << " generic " << generic << " row " << i << " z "
            << static_cast<double>(z);
      }
      queued_rows = torch::cat({queued_rows, x});
      queued_targets = torch::cat({queued_targets, t});
    }
  }
}

TEST(RecallAtQuantileLoss, QueueRoundTripsTorchSaveAndLoad) {
  RecallAtQuantileLoss saved(RecallAtQuantileLossOptions(2).queue_size(10));
  saved->forward(torch::randn({7, 2}), torch::arange(7, torch::kLong).remainder(2));
  const test_support::UniqueTempFile file("recall_queue");
  torch::save(saved, file.path());
  RecallAtQuantileLoss loaded(RecallAtQuantileLossOptions(2).queue_size(10));
  torch::load(loaded, file.path());
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
