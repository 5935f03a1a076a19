// Random ranking pools for the randomized tests: shapes, class counts,
// temperatures, positive rates, ties, wide and huge scores, out-of-range
// labels.
#pragma once

#include <torch/torch.h>

#include <random>
#include <vector>

namespace test_support {

struct RandomPool {
  torch::Tensor scores; // [M, C]
  torch::Tensor labels; // [M] int64, op convention (out of range = negative)
  double tau;
  std::string describe() const {
    std::ostringstream out;
    out << "M=" << scores.size(0) << " C=" << scores.size(1) << " tau=" << tau
        << " dtype=" << scores.scalar_type();
    return out.str();
  }
};

inline RandomPool random_pool(uint64_t seed, torch::Dtype dtype, int64_t max_rows = 300) {
  std::mt19937_64 rng(seed);
  torch::manual_seed(seed);
  auto pick = [&](std::vector<double> values) {
    return values[std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng)];
  };
  const int64_t M = std::uniform_int_distribution<int64_t>(1, max_rows)(rng);
  const int64_t C = std::uniform_int_distribution<int64_t>(1, 8)(rng);
  const double tau = pick({0.005, 0.01, 0.05, 0.2, 0.5, 2.0});
  const double scale = pick({0.01, 1.0, 1.0, 3.0, 10.0, 100.0, 1e4});
  auto scores = torch::randn({M, C}, torch::kDouble) * scale;
  if (std::bernoulli_distribution(0.3)(rng)) {
    scores = torch::round(scores * 2) / 2; // many ties
  }
  if (std::bernoulli_distribution(0.1)(rng)) {
    scores = scores + 1e3; // large offset: differences of close numbers
  }
  torch::Tensor labels;
  if (C == 1) {
    const double pos_rate = pick({0.005, 0.05, 0.3, 0.7, 1.0});
    labels =
        torch::where(torch::rand({M}, torch::kDouble).lt(pos_rate),
                     torch::zeros({M}, torch::kLong), torch::full({M}, -1, torch::kLong));
  } else {
    // A majority class 0 and the rest spread; some rows negative for all.
    const double majority = pick({0.0, 0.5, 0.9});
    auto weights = torch::ones({C + 1}, torch::kDouble);
    weights[0] = majority * C / (1 - majority + 1e-9) + 1e-3;
    weights[C] = pick({0.0, 0.5});
    labels = torch::multinomial(weights / weights.sum(), M, /*replacement=*/true);
    labels = torch::where(
        labels.eq(C), torch::full_like(labels, pick({-1.0, double(C), -100.0})), labels);
  }
  return {scores.to(dtype), labels, tau};
}

} // namespace test_support
