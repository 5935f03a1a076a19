// CPU implementation of proxyloss::soft_recall (forward and backward): one
// pass over the rows, each row touching only its own class's column.
#include "ops/cpu/kernel_selection.h"
#include "ops/sample_weights.h"
#include "ops/soft_recall.h"

#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <vector>

namespace proxyloss {
namespace ops_impl {
namespace {

// sigmoid(z) as torch computes it, 1 / (1 + exp(-z)).
template <typename T>
T sigmoid(T z) {
  return T(1) / (T(1) + std::exp(-z));
}

// sigmoid'(z) = e / (1 + e)^2 with e = exp(-|z|): no cancellation.
template <typename T>
T sigmoid_prime(T z) {
  const T e = std::exp(-std::abs(z));
  return e / ((T(1) + e) * (T(1) + e));
}

// The positives' mass per class: their count, or with weights w (double,
// nullptr for none) their weight sum.
std::vector<double> positive_mass(const int64_t* labels, const double* w, int64_t M,
                                  int64_t C) {
  std::vector<double> mass(C, 0.0);
  for (int64_t m = 0; m < M; ++m) {
    if (labels[m] >= 0 && labels[m] < C) {
      mass[labels[m]] += w != nullptr ? w[m] : 1.0;
    }
  }
  return mass;
}

template <typename T>
void forward(const T* scores, const int64_t* labels, const T* thresholds, const double* w,
             int64_t M, int64_t C, T tau, T* recall) {
  const auto mass = positive_mass(labels, w, M, C);
  std::vector<double> sums(C, 0.0);
  for (int64_t m = 0; m < M; ++m) {
    const int64_t c = labels[m];
    if (c >= 0 && c < C) {
      const double term = sigmoid<T>((scores[m * C + c] - thresholds[c]) / tau);
      sums[c] += w != nullptr ? w[m] * term : term;
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    recall[c] = mass[c] == 0 ? std::numeric_limits<T>::quiet_NaN()
                             : static_cast<T>(sums[c] / mass[c]);
  }
}

template <typename T>
void backward(const T* grad_recall, const T* scores, const int64_t* labels,
              const T* thresholds, const double* w, int64_t M, int64_t C, T tau,
              T* grad) {
  const auto mass = positive_mass(labels, w, M, C);
  // g_c / (tau W_c) per class (W_c = |P_c| unweighted), in double.
  std::vector<double> scale(C, 0.0);
  for (int64_t c = 0; c < C; ++c) {
    if (mass[c] > 0) {
      scale[c] =
          static_cast<double>(grad_recall[c]) / (static_cast<double>(tau) * mass[c]);
    }
  }
  for (int64_t m = 0; m < M; ++m) {
    const int64_t c = labels[m];
    if (c >= 0 && c < C && scale[c] != 0.0) {
      const T z = (scores[m * C + c] - thresholds[c]) / tau;
      const double row_scale = w != nullptr ? scale[c] * w[m] : scale[c];
      grad[m * C + c] =
          static_cast<T>(row_scale * static_cast<double>(sigmoid_prime<T>(z)));
    }
  }
}

} // namespace

at::Tensor soft_recall_cpu(const at::Tensor& scores_in, const at::Tensor& labels_in,
                           const at::Tensor& thresholds_in, double temperature,
                           const optional<at::Tensor>& weights_in) {
  if (detail::generic_kernels_forced()) {
    return soft_recall_generic(scores_in, labels_in, thresholds_in, temperature,
                               weights_in);
  }
  check_soft_recall_inputs(scores_in, labels_in, thresholds_in, temperature, weights_in);
  const auto weights = weights_in_double(weights_in);
  const double* w = weights.defined() ? weights.data_ptr<double>() : nullptr;
  const auto scores = scores_in.contiguous();
  const auto labels = labels_in.contiguous();
  const auto thresholds = thresholds_in.contiguous();
  auto recall = at::empty({scores.size(1)}, scores.options());
  AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "soft_recall_cpu", [&] {
    forward<scalar_t>(scores.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(),
                      thresholds.data_ptr<scalar_t>(), w, scores.size(0), scores.size(1),
                      static_cast<scalar_t>(temperature), recall.data_ptr<scalar_t>());
  });
  return recall;
}

at::Tensor soft_recall_backward_cpu(const at::Tensor& grad_recall_in,
                                    const at::Tensor& scores_in,
                                    const at::Tensor& labels_in,
                                    const at::Tensor& thresholds_in, double temperature,
                                    const optional<at::Tensor>& weights_in) {
  if (detail::generic_kernels_forced()) {
    return soft_recall_backward_generic(grad_recall_in, scores_in, labels_in,
                                        thresholds_in, temperature, weights_in);
  }
  check_soft_recall_inputs(scores_in, labels_in, thresholds_in, temperature, weights_in);
  const auto weights = weights_in_double(weights_in);
  const double* w = weights.defined() ? weights.data_ptr<double>() : nullptr;
  const auto scores = scores_in.contiguous();
  const auto labels = labels_in.contiguous();
  const auto thresholds = thresholds_in.contiguous();
  const auto grad_recall = grad_recall_in.to(scores.scalar_type()).contiguous();
  auto grad = at::zeros_like(scores);
  AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "soft_recall_backward_cpu", [&] {
    backward<scalar_t>(grad_recall.data_ptr<scalar_t>(), scores.data_ptr<scalar_t>(),
                       labels.data_ptr<int64_t>(), thresholds.data_ptr<scalar_t>(), w,
                       scores.size(0), scores.size(1), static_cast<scalar_t>(temperature),
                       grad.data_ptr<scalar_t>());
  });
  return grad;
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CPU, m) {
  m.impl("soft_recall", &proxyloss::ops_impl::soft_recall_cpu);
  m.impl("_soft_recall_backward", &proxyloss::ops_impl::soft_recall_backward_cpu);
}
