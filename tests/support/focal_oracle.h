// Plain-formula oracles for the focal losses: scalar loops in double over the
// textbook formulas, probabilities formed directly (no log-space tricks), so
// they are independent of the library's ATen formulation. Accurate for
// moderate logits (|x| up to ~20), which is what the random tests draw.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace oracle {

// Unreduced sigmoid focal loss, double, the shape of logits:
//   p = 1 / (1 + e^-x), ce = -(t log p + (1 - t) log(1 - p)),
//   p_t = p t + (1 - p)(1 - t), loss = alpha_t (1 - p_t)^gamma ce.
inline torch::Tensor sigmoid_focal(const torch::Tensor& logits,
                                   const torch::Tensor& targets, double alpha,
                                   double gamma) {
  const auto x = logits.detach().to(torch::kDouble).contiguous().reshape({-1});
  const auto t = targets.detach().to(torch::kDouble).contiguous().reshape({-1});
  auto out = torch::empty_like(x);
  const double* xs = x.data_ptr<double>();
  const double* ts = t.data_ptr<double>();
  double* os = out.data_ptr<double>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double p = 1.0 / (1.0 + std::exp(-xs[i]));
    const double ce = -(ts[i] * std::log(p) + (1 - ts[i]) * std::log(1 - p));
    const double p_t = p * ts[i] + (1 - p) * (1 - ts[i]);
    double loss = std::pow(1 - p_t, gamma) * ce;
    if (alpha >= 0) {
      loss *= alpha * ts[i] + (1 - alpha) * (1 - ts[i]);
    }
    os[i] = loss;
  }
  return out.reshape(logits.sizes());
}

// Unreduced softmax focal loss, double, [N] (0 at ignored rows):
//   p = softmax(x_i), ce = -(1 - eps) log p_y - (eps / C) sum_c log p_c,
//   loss = alpha[y] (1 - p_y)^gamma ce.
inline torch::Tensor softmax_focal(const torch::Tensor& logits,
                                   const torch::Tensor& targets,
                                   const std::vector<double>& alpha, double gamma,
                                   double eps, int64_t ignore_index) {
  const auto x = logits.detach().to(torch::kDouble).contiguous();
  const auto y = targets.detach().to(torch::kLong).contiguous();
  const int64_t N = x.size(0);
  const int64_t C = x.size(1);
  auto out = torch::zeros({N}, torch::kDouble);
  const int64_t* ys = y.data_ptr<int64_t>();
  double* os = out.data_ptr<double>();
  for (int64_t i = 0; i < N; ++i) {
    const int64_t target = ys[i];
    if (target == ignore_index) {
      continue;
    }
    const double* row = x.data_ptr<double>() + i * C;
    double z = 0;
    for (int64_t c = 0; c < C; ++c) {
      z += std::exp(row[c]);
    }
    double sum_log_p = 0;
    for (int64_t c = 0; c < C; ++c) {
      sum_log_p += std::log(std::exp(row[c]) / z);
    }
    const double p_y = std::exp(row[target]) / z;
    const double ce = -(1 - eps) * std::log(p_y) - eps / C * sum_log_p;
    const double weight = alpha.empty() ? 1.0 : alpha[target];
    os[i] = weight * std::pow(1 - p_y, gamma) * ce;
  }
  return out;
}

} // namespace oracle
