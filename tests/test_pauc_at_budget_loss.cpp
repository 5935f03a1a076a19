// The C++ PAUCAtBudgetLoss module: its queue (iid flags and weights stored
// with the rows) against the op on the explicit pool, diagnostics, the
// once-per-instance degenerate warning, AnyModule call forms, dtype
// conversion, checkpoints (with and without queue_iid), option errors.
#include "support/test_support.h"

#include <proxyloss/proxyloss.h>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>
#include <string>

namespace {

using proxyloss::PAUCAtBudgetLoss;
using proxyloss::PAUCAtBudgetLossOptions;
using test_support::count_containing;
using test_support::max_abs_diff;
using test_support::throws_with;

PAUCAtBudgetLossOptions wide_band(int64_t num_classes, int64_t queue_size) {
  return PAUCAtBudgetLossOptions(num_classes)
      .alpha(0.01)
      .beta(0.4)
      .queue_size(queue_size)
      .reduction(torch::kNone);
}

c10::optional<torch::Tensor> optional_of(const torch::Tensor& tensor) {
  return tensor.defined() ? c10::optional<torch::Tensor>(tensor) : c10::nullopt;
}

// The op's per-class loss on an explicit pool (no queue in the module).
torch::Tensor op_loss(const PAUCAtBudgetLossOptions& o, const torch::Tensor& logits,
                      const torch::Tensor& targets, const torch::Tensor& q_logits,
                      const torch::Tensor& q_targets, const torch::Tensor& iid_mask,
                      const torch::Tensor& q_iid) {
  return std::get<0>(proxyloss::ops::pauc_at_budget_loss(
      logits, targets, q_logits, q_targets, o.num_classes(), o.alpha(), o.beta(),
      o.surrogate(), o.n_knots(), o.tau_scale(), o.pos_numerator(), o.budget_basis(),
      o.temperature(), "none", o.ignore_index(), o.quantile_interpolation(),
      o.max_pool_size(), c10::nullopt, c10::nullopt, optional_of(iid_mask),
      optional_of(q_iid)));
}

TEST(PAUCAtBudgetLoss, QueueStoresIidFlagsAndEqualsTheOpOnThePool) {
  torch::manual_seed(21);
  for (const std::string surrogate : {"trapezoid", "pairwise"}) {
    auto options = wide_band(2, 48).surrogate(surrogate).pos_numerator("live");
    PAUCAtBudgetLoss loss(options);
    const auto x1 = torch::randn({32, 2});
    const auto t1 = torch::randint(0, 2, {32});
    const auto iid1 = torch::rand({32}).gt(0.3);
    loss->forward(x1, t1, {}, iid1);
    // The first 32 slots hold the batch, its iid flags; the rest are empty.
    EXPECT_TRUE(torch::equal(loss->queue_iid.narrow(0, 0, 32), iid1));
    EXPECT_TRUE(loss->queue_iid.narrow(0, 32, 16).all().item<bool>());
    EXPECT_EQ(loss->queue_ptr.item<int64_t>(), 32);

    const auto x2 = torch::randn({24, 2}).requires_grad_(true);
    const auto t2 = torch::randint(0, 2, {24});
    const auto q_logits = loss->queue_logits.clone();
    const auto q_targets = loss->queue_targets.clone();
    const auto q_iid = loss->queue_iid.clone();
    const auto got = loss->forward(x2, t2); // no iid_mask: every row iid
    const auto want = op_loss(options, x2, t2, q_logits, q_targets, {}, q_iid);
    EXPECT_LE(max_abs_diff(got, want), 0.0) << surrogate;
    // Wrapped around: slots 32..47 and 0..7 hold the second batch, all iid.
    EXPECT_TRUE(loss->queue_iid.narrow(0, 32, 16).all().item<bool>());
    EXPECT_TRUE(loss->queue_iid.narrow(0, 0, 8).all().item<bool>());
    EXPECT_TRUE(torch::equal(loss->queue_iid.narrow(0, 8, 24), iid1.narrow(0, 8, 24)));
  }
}

TEST(PAUCAtBudgetLoss, DiagnosticsOfTheLastForward) {
  torch::manual_seed(22);
  PAUCAtBudgetLoss loss(wide_band(3, 0));
  auto targets = torch::randint(0, 3, {90});
  targets[0] = -100;
  loss->forward(torch::randn({90, 3}), targets);
  const auto& d = loss->last_diagnostics();
  for (const auto* t : {&d.t_alpha, &d.t_beta, &d.tau_eff, &d.pauc_var}) {
    EXPECT_EQ(t->sizes(), torch::IntArrayRef({3}));
    EXPECT_FALSE(t->requires_grad());
  }
  EXPECT_TRUE(d.t_alpha.ge(d.t_beta).all().item<bool>());
  const auto kept = targets.masked_select(targets.ne(-100));
  EXPECT_TRUE(torch::equal(d.grad_pos_count, torch::bincount(kept, {}, 3)));
  EXPECT_EQ(d.band_neg_count.scalar_type(), torch::kLong);
}

TEST(PAUCAtBudgetLoss, DegenerateDispersionWarnsOnce) {
  PAUCAtBudgetLoss loss(PAUCAtBudgetLossOptions(1).queue_size(0));
  auto logits = torch::zeros({40, 1});
  auto targets = torch::zeros({40}, torch::kLong);
  targets.narrow(0, 0, 5).fill_(1);
  logits.narrow(0, 0, 5).fill_(2.0);
  proxyloss::compat::ScopedWarningCollector warnings;
  for (int i = 0; i < 3; ++i) {
    const auto out = loss->forward_per_class(logits, targets);
    EXPECT_FALSE(std::get<2>(out)[0].item<bool>());
    EXPECT_EQ(std::get<0>(out).item<float>(), 0.0f);
  }
  EXPECT_EQ(count_containing(warnings.messages(), "near-zero score dispersion"), 1);
}

TEST(PAUCAtBudgetLoss, AnyModuleTakesTwoThreeOrFourArguments) {
  torch::manual_seed(23);
  torch::nn::AnyModule any(PAUCAtBudgetLoss(wide_band(1, 16).reduction(torch::kMean)));
  const auto x = torch::randn({30, 1});
  const auto t = torch::randint(0, 2, {30});
  EXPECT_EQ(any.forward(x, t).dim(), 0);
  EXPECT_EQ(any.forward(x, t, torch::ones({30})).dim(), 0);
  EXPECT_EQ(any.forward(x, t, torch::Tensor(), torch::ones({30})).dim(), 0);
}

TEST(PAUCAtBudgetLoss, ToDoubleKeepsTheFlagsBool) {
  PAUCAtBudgetLoss loss(wide_band(2, 8));
  loss->to(torch::kDouble);
  EXPECT_EQ(loss->queue_logits.scalar_type(), torch::kDouble);
  EXPECT_EQ(loss->queue_iid.scalar_type(), torch::kBool);
  EXPECT_EQ(loss->queue_targets.scalar_type(), torch::kLong);
}

TEST(PAUCAtBudgetLoss, CheckpointRoundTripsAndOldOnesLoadWithIidFlagsTrue) {
  torch::manual_seed(24);
  PAUCAtBudgetLoss saved(wide_band(2, 16));
  saved->forward(torch::randn({12, 2}), torch::randint(0, 2, {12}), torch::rand({12}),
                 torch::rand({12}).gt(0.5));
  std::ostringstream out;
  torch::save(saved, out);
  PAUCAtBudgetLoss restored(wide_band(2, 16));
  std::istringstream in(out.str());
  torch::load(restored, in);
  for (const auto& name :
       {"queue_logits", "queue_targets", "queue_ptr", "queue_weight", "queue_iid"}) {
    EXPECT_TRUE(torch::equal(*saved->named_buffers().find(name),
                             *restored->named_buffers().find(name)))
        << name;
  }
  // A SmoothAPLoss checkpoint has no queue_iid: it loads with every flag true.
  proxyloss::SmoothAPLoss other(proxyloss::SmoothAPLossOptions(2).queue_size(16));
  other->forward(torch::randn({12, 2}), torch::randint(0, 2, {12}));
  std::ostringstream old_out;
  torch::save(other, old_out);
  std::istringstream old_in(old_out.str());
  torch::load(restored, old_in);
  EXPECT_TRUE(restored->queue_iid.all().item<bool>());
  EXPECT_TRUE(torch::equal(restored->queue_logits, other->queue_logits));
}

TEST(PAUCAtBudgetLoss, BadOptionsAreValueErrors) {
  EXPECT_TRUE(throws_with([] { PAUCAtBudgetLoss(PAUCAtBudgetLossOptions(1).beta(0.0)); },
                          {"PAUCAtBudgetLoss", "0 <= alpha < beta <= 1"}));
  EXPECT_TRUE(throws_with(
      [] { PAUCAtBudgetLoss(PAUCAtBudgetLossOptions(1).budget_basis("all")); },
      {"budget_basis must be"}));
  EXPECT_TRUE(throws_with(
      [] {
        PAUCAtBudgetLoss(PAUCAtBudgetLossOptions(1).quantile_interpolation("cubic"));
      },
      {"quantile_interpolation"}));
  EXPECT_TRUE(throws_with(
      [] { PAUCAtBudgetLoss(PAUCAtBudgetLossOptions(1).pos_numerator("queue")); },
      {"pos_numerator must be"}));
}

} // namespace
