// Random FairLoss batches for the randomized tests: shapes (C from 2 to
// 1000, on both sides of the fused kernel's short/long row threshold), logit scales up to
// 1e3, ties, class weights, label smoothing, ignored rows (ignore_index outside and
// inside [0, C)), beta and k values.
#pragma once

#include "support/fair_loss_oracle.h"

#include <torch/torch.h>

#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace test_support {

struct RandomFairBatch {
  torch::Tensor logits;  // [N, C]
  torch::Tensor targets; // [N] int64
  oracle::FairLossParams params;
  double scale; // of the logits

  std::string describe() const {
    std::ostringstream out;
    out << "N=" << logits.size(0) << " C=" << logits.size(1)
        << " dtype=" << logits.scalar_type() << " scale=" << scale
        << " beta=" << params.beta << " k=" << params.k
        << " weighted=" << params.weight.defined()
        << " label_smoothing=" << params.label_smoothing
        << " ignore_index=" << params.ignore_index;
    return out.str();
  }
};

inline RandomFairBatch random_fair_batch(uint64_t seed, torch::Dtype dtype,
                                         int64_t max_rows = 48) {
  std::mt19937_64 rng(seed);
  torch::manual_seed(seed);
  auto pick = [&](std::vector<double> values) {
    return values[std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng)];
  };
  const int64_t N = std::uniform_int_distribution<int64_t>(1, max_rows)(rng);
  const auto C = static_cast<int64_t>(
      pick({2, 3, 5, 8, 9, 10, 11, 12, 16, 17, 23, 24, 31, 64, 100, 333, 1000}));
  const double scale = pick({0.01, 0.1, 1.0, 1.0, 3.0, 10.0, 100.0, 1e3});
  auto logits = torch::randn({N, C}, torch::kDouble) * scale;
  if (std::bernoulli_distribution(0.2)(rng)) {
    logits = torch::round(logits); // ties, among them for the maximum
  }
  oracle::FairLossParams params;
  params.beta = pick({0.1, 1.0, 10.0, 100.0, 1000.0, 1e4});
  params.k = pick({0.0, 0.5, 10.0, 1000.0});
  if (std::bernoulli_distribution(0.5)(rng)) {
    params.weight = (torch::rand({C}, torch::kDouble) * 2 + 0.1).to(dtype);
  }
  params.label_smoothing = pick({0.0, 0.0, 0.1, 0.5, 1.0});
  params.ignore_index = static_cast<int64_t>(pick({-100.0, -1.0, double(C) + 2, 0.0}));
  auto targets = torch::randint(0, C, {N}, torch::kLong);
  const double ignored = pick({0.0, 0.1, 0.5});
  targets = torch::where(torch::rand({N}, torch::kDouble).lt(ignored),
                         torch::full_like(targets, params.ignore_index), targets);
  return {logits.to(dtype), targets, params, scale};
}

} // namespace test_support
