// The penalized scoring rules of Ahmadian et al. (2025): a strictly proper
// score plus a penalty when the argmax is wrong, so that a correct prediction
// always scores better than a wrong one ("superior" rules).
#include "metrics/metric_inputs.h"
#include "proxyloss/metrics.h"

#include <cmath>

namespace proxyloss {
namespace metrics {
namespace {

// True when the target's probability is not below any other (a tie on the
// maximum counts as correct).
bool argmax_correct(const double* q, int64_t C, int64_t y) {
  for (int64_t j = 0; j < C; ++j) {
    if (q[j] > q[y]) {
      return false;
    }
  }
  return true;
}

} // namespace

double penalized_brier_score(const torch::Tensor& probs, const torch::Tensor& targets) {
  const auto [q, y] = detail::multiclass_inputs("penalized_brier_score", probs, targets);
  const int64_t N = q.size(0);
  const int64_t C = q.size(1);
  const double penalty = double(C - 1) / double(C);
  double total = 0;
  for (int64_t i = 0; i < N; ++i) {
    const double* row = q.data_ptr<double>() + i * C;
    const int64_t target = y.data_ptr<int64_t>()[i];
    double brier = 0;
    for (int64_t j = 0; j < C; ++j) {
      const double d = row[j] - (j == target ? 1.0 : 0.0);
      brier += d * d;
    }
    total += brier + (argmax_correct(row, C, target) ? 0.0 : penalty);
  }
  return total / double(N);
}

double penalized_log_loss(const torch::Tensor& probs, const torch::Tensor& targets) {
  const auto [q, y] = detail::multiclass_inputs("penalized_log_loss", probs, targets);
  const int64_t N = q.size(0);
  const int64_t C = q.size(1);
  const double penalty = std::log(double(C));
  double total = 0;
  for (int64_t i = 0; i < N; ++i) {
    const double* row = q.data_ptr<double>() + i * C;
    const int64_t target = y.data_ptr<int64_t>()[i];
    total += -std::log(row[target]) + (argmax_correct(row, C, target) ? 0.0 : penalty);
  }
  return total / double(N);
}

} // namespace metrics
} // namespace proxyloss
