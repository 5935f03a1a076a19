// CPU implementation of proxyloss::pauc_pairwise over sorted scores: the
// pairs within H temperatures one by one, the two tails from re-centred
// prefix / suffix sums of exponentials (the bound and its proof:
// ops/pauc_pairwise.h). Deterministic and independent of the thread count:
// each output row is summed by one thread in a fixed order, and the
// negatives' window terms come from a fixed number of chunks of positives,
// added in chunk order. Each window pair's exponential is evaluated once in
// the forward and once in the backward; extra memory O(P + B).
#include "ops/cpu/kernel_selection.h"
#include "ops/pauc_pairwise.h"
#include "ops/sample_weights.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace proxyloss {
namespace ops_impl {
namespace {

constexpr int64_t kRowsPerTask = 64;

double sigmoid(double z) {
  const double e = std::exp(-std::abs(z));
  const double s = 1.0 / (1.0 + e);
  return z >= 0 ? s : e * s;
}

double sigmoid_derivative(double z) {
  const double e = std::exp(-std::abs(z));
  return e / ((1.0 + e) * (1.0 + e));
}

// Scores in double, sorted ascending, with their original positions and
// (optionally) per-row weights in the same order, and the tails' re-centred
// sums:
//   below[k] = sum_{i <= k} w_i exp((x_i - x_k) / tau)
//   above[k] = sum_{i >= k} w_i exp(-(x_i - x_k) / tau)
// (w = 1 without weights; every exponent <= 0).
struct SortedScores {
  std::vector<double> value;
  std::vector<int64_t> position;
  std::vector<double> weight;
  std::vector<double> below;
  std::vector<double> above;

  int64_t size() const {
    return static_cast<int64_t>(value.size());
  }
};

template <typename T>
SortedScores sorted_scores(const T* x, int64_t n, const double* w, double tau) {
  SortedScores s;
  s.position.resize(n);
  std::iota(s.position.begin(), s.position.end(), int64_t{0});
  std::sort(s.position.begin(), s.position.end(),
            [x](int64_t a, int64_t b) { return x[a] < x[b]; });
  s.value.resize(n);
  s.weight.resize(n);
  for (int64_t k = 0; k < n; ++k) {
    s.value[k] = static_cast<double>(x[s.position[k]]);
    s.weight[k] = w != nullptr ? w[s.position[k]] : 1.0;
  }
  s.below.resize(n);
  s.above.resize(n);
  for (int64_t k = 0; k < n; ++k) {
    s.below[k] =
        s.weight[k] +
        (k > 0 ? std::exp(-(s.value[k] - s.value[k - 1]) / tau) * s.below[k - 1] : 0.0);
  }
  for (int64_t k = n - 1; k >= 0; --k) {
    s.above[k] =
        s.weight[k] +
        (k + 1 < n ? std::exp(-(s.value[k + 1] - s.value[k]) / tau) * s.above[k + 1]
                   : 0.0);
  }
  return s;
}

// For one score x against sorted scores `others` that it is compared with as
// d = sign * (x - other) (sign +1: x is a positive, others are negatives;
// -1 the reverse), the three ranges of `others` in sorted order:
// [0, lower_end) where d is in one tail, [upper_begin, n) in the other, the
// window in between. The tails are decided by the double expressions
// p - b >= H tau (high) and b - p >= H tau (low), as everywhere in this file.
struct Ranges {
  int64_t lower_end;
  int64_t upper_begin;
};

Ranges positive_ranges(double p, const SortedScores& negatives, double reach) {
  // b ascending: p - b >= reach on a prefix (high tail), b - p >= reach on a
  // suffix (low tail).
  const auto& b = negatives.value;
  const auto high_end =
      std::partition_point(b.begin(), b.end(), [&](double v) { return p - v >= reach; });
  const auto low_begin =
      std::partition_point(high_end, b.end(), [&](double v) { return v - p < reach; });
  return {high_end - b.begin(), low_begin - b.begin()};
}

Ranges negative_ranges(double b, const SortedScores& positives, double reach) {
  // p ascending: b - p >= reach on a prefix (low tail), p - b >= reach on a
  // suffix (high tail).
  const auto& p = positives.value;
  const auto low_end =
      std::partition_point(p.begin(), p.end(), [&](double v) { return b - v >= reach; });
  const auto high_begin =
      std::partition_point(low_end, p.end(), [&](double v) { return v - b < reach; });
  return {low_end - p.begin(), high_begin - p.begin()};
}

template <typename T>
void forward_kernel(const T* p, int64_t P, const SortedScores& b, double tau,
                    const double* w, T* per_positive, T* pauc) {
  const int64_t B = b.size();
  const double reach = pauc_pairwise_tail_bound(c10::CppTypeToScalarType<T>::value) * tau;
  const double inv_tau = 1.0 / tau; // the window's z by a multiply
  std::vector<double> S(P);
  at::parallel_for(0, P, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const double x = p[i];
      const auto r = positive_ranges(x, b, reach);
      double sum = static_cast<double>(r.lower_end); // the high tail: 1 each
      for (int64_t j = r.lower_end; j < r.upper_begin; ++j) {
        sum += sigmoid((x - b.value[j]) * inv_tau);
      }
      if (r.upper_begin < B) { // the low tail: sum_j exp((x - b_j) / tau)
        sum += std::exp((x - b.value[r.upper_begin]) / tau) * b.above[r.upper_begin];
      }
      S[i] = sum;
    }
  });
  double numerator = 0.0;
  double mass = 0.0;
  for (int64_t i = 0; i < P; ++i) {
    const double wi = w != nullptr ? w[i] : 1.0;
    numerator += wi * S[i];
    mass += wi;
    per_positive[i] = static_cast<T>(S[i] / static_cast<double>(B));
  }
  *pauc = mass > 0 ? static_cast<T>(numerator / (static_cast<double>(B) * mass))
                   : std::numeric_limits<T>::quiet_NaN();
}

// The backward in one pass over the window pairs: positives in a fixed
// number of chunks (kBackwardChunks, whatever the thread count, so that the
// result does not depend on it), each chunk adding its pairs' terms to its
// own row of negative gradients, which are then summed in chunk order.
constexpr int64_t kBackwardChunks = 16;

template <typename T>
void backward_kernel(double grad, const SortedScores& p, const SortedScores& b,
                     double tau, T* grad_p, T* grad_b) {
  const int64_t P = p.size();
  const int64_t B = b.size();
  const double reach = pauc_pairwise_tail_bound(c10::CppTypeToScalarType<T>::value) * tau;
  double mass = 0.0;
  for (int64_t i = 0; i < P; ++i) {
    mass += p.weight[i];
  }
  const double scale = grad / (static_cast<double>(B) * mass * tau);
  const double inv_tau = 1.0 / tau; // the window's z by a multiply
  const int64_t chunks = std::min<int64_t>(kBackwardChunks, P);
  const int64_t rows_per_chunk = (P + chunks - 1) / chunks;
  // window_b[chunk * B + j]: sum over the chunk's positives i whose pair
  // with b_j is in the window of w_i sigmoid'(z_ij).
  std::vector<double> window_b(static_cast<size_t>(chunks * B), 0.0);
  at::parallel_for(0, chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      double* into_b = window_b.data() + chunk * B;
      const int64_t end = std::min(P, (chunk + 1) * rows_per_chunk);
      for (int64_t k = chunk * rows_per_chunk; k < end; ++k) {
        // d/dp_i: w_i sum_j sigmoid'(z_ij); b's unit weights make b.below /
        // b.above the tails' plain exponential sums.
        const double x = p.value[k];
        const double wk = p.weight[k];
        const auto r = positive_ranges(x, b, reach);
        double sum = 0.0;
        if (r.lower_end > 0) { // high tail: sum_j exp(-(x - b_j) / tau)
          sum +=
              std::exp(-(x - b.value[r.lower_end - 1]) / tau) * b.below[r.lower_end - 1];
        }
        for (int64_t j = r.lower_end; j < r.upper_begin; ++j) {
          const double d = sigmoid_derivative((x - b.value[j]) * inv_tau);
          sum += d;
          into_b[j] += wk * d;
        }
        if (r.upper_begin < B) { // low tail: sum_j exp((x - b_j) / tau)
          sum += std::exp((x - b.value[r.upper_begin]) / tau) * b.above[r.upper_begin];
        }
        grad_p[p.position[k]] = static_cast<T>(scale * wk * sum);
      }
    }
  });
  // d/db_j: -(the window's terms + the two tails over the sorted positives).
  at::parallel_for(0, B, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const double y = b.value[k];
      const auto r = negative_ranges(y, p, reach);
      double sum = 0.0;
      if (r.lower_end > 0) { // low tail: sum_i w_i exp((p_i - y) / tau)
        sum += std::exp((p.value[r.lower_end - 1] - y) / tau) * p.below[r.lower_end - 1];
      }
      for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        sum += window_b[chunk * B + k];
      }
      if (r.upper_begin < P) { // high tail: sum_i w_i exp(-(p_i - y) / tau)
        sum += std::exp(-(p.value[r.upper_begin] - y) / tau) * p.above[r.upper_begin];
      }
      grad_b[b.position[k]] = static_cast<T>(-scale * sum);
    }
  });
}

const double* weight_data(const at::Tensor& weights) {
  return weights.defined() ? weights.data_ptr<double>() : nullptr;
}

} // namespace

PaucPairwiseForward pauc_pairwise_forward_cpu(const at::Tensor& positives_in,
                                              const at::Tensor& negatives_in, double tau,
                                              const optional<at::Tensor>& weights_in) {
  if (detail::generic_kernels_forced()) {
    return pauc_pairwise_forward_generic(positives_in, negatives_in, tau, weights_in);
  }
  check_pauc_pairwise_inputs(positives_in, negatives_in, tau, weights_in);
  const auto positives = positives_in.detach().contiguous();
  const auto negatives = negatives_in.detach().contiguous();
  const auto weights = weights_in_double(weights_in);
  const int64_t P = positives.size(0);
  const int64_t B = negatives.size(0);
  auto pauc = at::empty({}, positives.options());
  auto per_positive = at::empty({P}, positives.options());
  if (pauc_pairwise_undefined(positives, negatives)) {
    pauc.fill_(std::numeric_limits<double>::quiet_NaN());
    per_positive.fill_(std::numeric_limits<double>::quiet_NaN());
    return {pauc, per_positive};
  }
  AT_DISPATCH_FLOATING_TYPES(positives.scalar_type(), "pauc_pairwise_forward_cpu", [&] {
    const auto b = sorted_scores(negatives.data_ptr<scalar_t>(), B, nullptr, tau);
    forward_kernel(positives.data_ptr<scalar_t>(), P, b, tau, weight_data(weights),
                   per_positive.data_ptr<scalar_t>(), pauc.data_ptr<scalar_t>());
  });
  return {pauc, per_positive};
}

PaucPairwiseGrads pauc_pairwise_backward_cpu(const at::Tensor& grad_pauc,
                                             const at::Tensor& positives_in,
                                             const at::Tensor& negatives_in, double tau,
                                             const optional<at::Tensor>& weights_in) {
  if (detail::generic_kernels_forced()) {
    return pauc_pairwise_backward_generic(grad_pauc, positives_in, negatives_in, tau,
                                          weights_in);
  }
  check_pauc_pairwise_inputs(positives_in, negatives_in, tau, weights_in);
  const auto positives = positives_in.detach().contiguous();
  const auto negatives = negatives_in.detach().contiguous();
  const auto weights = weights_in_double(weights_in);
  const int64_t P = positives.size(0);
  const int64_t B = negatives.size(0);
  auto grad_p = at::empty({P}, positives.options());
  auto grad_b = at::empty({B}, negatives.options());
  const double grad = grad_pauc.item<double>();
  const double mass =
      weights.defined() ? weights.sum().item<double>() : static_cast<double>(P);
  if (pauc_pairwise_undefined(positives, negatives) || !(mass > 0)) {
    grad_p.fill_(std::numeric_limits<double>::quiet_NaN());
    grad_b.fill_(std::numeric_limits<double>::quiet_NaN());
    return {grad_p, grad_b};
  }
  AT_DISPATCH_FLOATING_TYPES(positives.scalar_type(), "pauc_pairwise_backward_cpu", [&] {
    const auto p =
        sorted_scores(positives.data_ptr<scalar_t>(), P, weight_data(weights), tau);
    const auto b = sorted_scores(negatives.data_ptr<scalar_t>(), B, nullptr, tau);
    backward_kernel(grad, p, b, tau, grad_p.data_ptr<scalar_t>(),
                    grad_b.data_ptr<scalar_t>());
  });
  return {grad_p, grad_b};
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CPU, m) {
  m.impl("_pauc_pairwise_forward", &proxyloss::ops_impl::pauc_pairwise_forward_cpu);
  m.impl("_pauc_pairwise_backward", &proxyloss::ops_impl::pauc_pairwise_backward_cpu);
}
