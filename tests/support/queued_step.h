// One step of a queued ranking loss against its oracle module
// (tests/support/ranking_oracle.h): the same batch through both, then loss,
// per-class values, validity and gradients compared.
#pragma once

#include "support/ranking_oracle.h"
#include "support/test_support.h"

#include <string>
#include <tuple>

namespace test_support {

// `loss` is a module holder with forward_per_class (SmoothAPLoss,
// RecallAtQuantileLoss); logits are float64. Values must agree within `tol`,
// gradients within `tol` relative to the largest oracle gradient (random
// per-class weights, NaN classes left out).
template <typename Loss>
void expect_step_matches(Loss& loss, oracle::QueuedRankingModule& reference,
                         const torch::Tensor& logits, const torch::Tensor& targets,
                         bool training, double tol, const std::string& where) {
  const auto x = logits.clone().requires_grad_(true);
  const auto y = logits.clone().requires_grad_(true);
  torch::Tensor got, got_per_class, got_valid;
  std::tie(got, got_per_class, got_valid) = loss->forward_per_class(x, targets);
  torch::Tensor want, want_per_class, want_valid;
  std::tie(want, want_per_class, want_valid) = reference.forward(y, targets, training);
  ASSERT_EQ(got.sizes(), want.sizes()) << where;
  EXPECT_LE(max_abs_diff(got, want), tol) << where;
  EXPECT_LE(max_abs_diff(got_per_class, want_per_class), tol) << where;
  EXPECT_TRUE(torch::equal(got_valid, want_valid)) << where;
  const auto weights = torch::randn(got.sizes(), torch::kDouble);
  const auto weighted = [&](const torch::Tensor& v) {
    return torch::where(torch::isnan(v), torch::zeros_like(v), v * weights).sum();
  };
  weighted(got).backward();
  const auto oracle_loss = weighted(want);
  if (oracle_loss.requires_grad()) {
    oracle_loss.backward();
  }
  const auto want_grad = y.grad().defined() ? y.grad() : torch::zeros_like(y);
  EXPECT_LE(max_abs_diff(x.grad(), want_grad), tol * std::max(1.0, max_abs(want_grad)))
      << where;
}

} // namespace test_support
