// CPU implementation of the Smooth-AP op: per class, sort the positives' and
// the negatives' scores and run the windowed kernels on them. Extra memory is
// O(M C) (the saved sort order) whatever P is; time O(M log M + sum of window
// sizes). Everything O(M) is plain loops over the data, not ATen ops: at
// small pools their per-call overhead would dominate.
#include "ops/cpu/kernel_selection.h"
#include "ops/cpu/kernels/cpu_capability.h"
#include "ops/cpu/radix_sort.h"
#include "ops/sample_weights.h"
#include "ops/smooth_ap.h"

#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace proxyloss {
namespace ops_impl {
namespace {

// Per class: number of positives and whether its column is all finite.
struct ClassStats {
  std::vector<int64_t> positives;
  std::vector<char> finite;

  template <typename T>
  ClassStats(const T* scores, const int64_t* labels, int64_t M, int64_t C)
      : positives(C, 0), finite(C, 1) {
    for (int64_t m = 0; m < M; ++m) {
      if (labels[m] >= 0 && labels[m] < C) {
        ++positives[labels[m]];
      }
      for (int64_t c = 0; c < C; ++c) {
        if (!std::isfinite(scores[m * C + c])) {
          finite[c] = 0;
        }
      }
    }
  }
  // The kernels run for classes with a positive and finite scores.
  bool computable(int64_t c) const {
    return positives[c] > 0 && finite[c];
  }
};

// Writes the class's sort order to order[0, M): the rows of its positives by
// ascending score, then those of its negatives (ties by row: the same order
// every time). Scores must be finite.
template <typename T>
struct ClassSorter {
  std::vector<RadixEntry<T>> entries;
  std::vector<RadixEntry<T>> scratch;

  void sort(const T* scores, const int64_t* labels, int64_t M, int64_t C, int64_t c,
            int64_t P, int64_t* order) {
    entries.resize(M);
    int64_t next_pos = 0;
    int64_t next_neg = P;
    // In row order: the stable sort then breaks ties by row.
    for (int64_t m = 0; m < M; ++m) {
      entries[labels[m] == c ? next_pos++ : next_neg++] = {
          RadixEntry<T>::key_of(scores[m * C + c]), m};
    }
    radix_sort(entries.data(), P, scratch);
    radix_sort(entries.data() + P, M - P, scratch);
    for (int64_t i = 0; i < M; ++i) {
      order[i] = entries[i].row;
    }
  }
};

// One class in kernel layout: its scores in sort order, positives [0, P) and
// negatives [P, M).
template <typename T>
void gather_class(const T* scores, int64_t C, int64_t c, const int64_t* order, int64_t M,
                  std::vector<T>& values) {
  values.resize(M);
  for (int64_t i = 0; i < M; ++i) {
    values[i] = scores[order[i] * C + c];
  }
}

void run_forward(const kernels::SmoothAPKernels& k, const float* v, int64_t P, int64_t M,
                 float inv_tau, float* rank_all, float* rank_pos) {
  k.forward_float(v, P, v + P, M - P, inv_tau, rank_all, rank_pos);
}
void run_forward(const kernels::SmoothAPKernels& k, const double* v, int64_t P, int64_t M,
                 double inv_tau, double* rank_all, double* rank_pos) {
  k.forward_double(v, P, v + P, M - P, inv_tau, rank_all, rank_pos);
}
void run_backward(const kernels::SmoothAPKernels& k, const float* v, int64_t P, int64_t M,
                  float inv_tau, const float* coef_all, const float* coef_pos,
                  float* grad) {
  k.backward_float(v, P, v + P, M - P, inv_tau, coef_all, coef_pos, grad, grad + P);
}
void run_backward(const kernels::SmoothAPKernels& k, const double* v, int64_t P,
                  int64_t M, double inv_tau, const double* coef_all,
                  const double* coef_pos, double* grad) {
  k.backward_double(v, P, v + P, M - P, inv_tau, coef_all, coef_pos, grad, grad + P);
}

} // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> smooth_ap_forward_cpu(
    const at::Tensor& scores_in, const at::Tensor& labels_in, double temperature,
    const optional<at::Tensor>& weights_in) {
  if (detail::generic_kernels_forced()) {
    return smooth_ap_forward_generic(scores_in, labels_in, temperature, weights_in);
  }
  check_smooth_ap_inputs(scores_in, labels_in, temperature, weights_in);
  const auto scores = scores_in.contiguous();
  const auto labels = labels_in.contiguous();
  const auto weights = weights_in_double(weights_in);
  const int64_t M = scores.size(0);
  const int64_t C = scores.size(1);
  auto rank_all = at::zeros({M}, scores.options());
  auto rank_pos = at::zeros({M}, scores.options());
  auto order = at::empty({C, M}, labels.options());
  auto ap = at::empty({C}, scores.options());
  const auto& kernels = kernels::smooth_ap_kernels();

  AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "proxyloss_smooth_ap_forward", [&] {
    const auto* s = scores.data_ptr<scalar_t>();
    const auto* y = labels.data_ptr<int64_t>();
    const double* w = weights.defined() ? weights.data_ptr<double>() : nullptr;
    const ClassStats stats(s, y, M, C);
    const auto inv_tau = static_cast<scalar_t>(1.0 / temperature);
    ClassSorter<scalar_t> sorter;
    std::vector<scalar_t> values;
    std::vector<scalar_t> class_rank_all;
    std::vector<scalar_t> class_rank_pos;
    auto* out_all = rank_all.data_ptr<scalar_t>();
    auto* out_pos = rank_pos.data_ptr<scalar_t>();
    auto* out_ap = ap.data_ptr<scalar_t>();
    for (int64_t c = 0; c < C; ++c) {
      if (!stats.computable(c)) {
        out_ap[c] = std::numeric_limits<scalar_t>::quiet_NaN();
        continue;
      }
      const int64_t P = stats.positives[c];
      int64_t* class_order = order.data_ptr<int64_t>() + c * M;
      sorter.sort(s, y, M, C, c, P, class_order);
      gather_class(s, C, c, class_order, M, values);
      class_rank_all.resize(P);
      class_rank_pos.resize(P);
      run_forward(kernels, values.data(), P, M, inv_tau, class_rank_all.data(),
                  class_rank_pos.data());
      // ap = (weighted) mean of rank_pos / rank_all, in double from the
      // rounded ranks; W == 0 gives 0 / 0, NaN.
      double sum = 0;
      double mass = 0;
      for (int64_t k = 0; k < P; ++k) {
        const int64_t row = class_order[k];
        out_all[row] = class_rank_all[k];
        out_pos[row] = class_rank_pos[k];
        const double ratio = double(class_rank_pos[k]) / double(class_rank_all[k]);
        if (w != nullptr) {
          sum += w[row] * ratio;
          mass += w[row];
        } else {
          sum += ratio;
        }
      }
      out_ap[c] = static_cast<scalar_t>(sum / (w != nullptr ? mass : double(P)));
    }
  });
  return {ap, rank_all, rank_pos, order};
}

at::Tensor smooth_ap_backward_cpu(const at::Tensor& grad_ap, const at::Tensor& scores_in,
                                  const at::Tensor& labels_in, const at::Tensor& rank_all,
                                  const at::Tensor& rank_pos, const at::Tensor& order_in,
                                  double temperature,
                                  const optional<at::Tensor>& weights_in) {
  if (detail::generic_kernels_forced()) {
    return smooth_ap_backward_generic(grad_ap, scores_in, labels_in, rank_all, rank_pos,
                                      order_in, temperature, weights_in);
  }
  check_smooth_ap_inputs(scores_in, labels_in, temperature, weights_in);
  const auto scores = scores_in.contiguous();
  const auto labels = labels_in.contiguous();
  const auto weights = weights_in_double(weights_in);
  const int64_t M = scores.size(0);
  const int64_t C = scores.size(1);
  const auto grad = grad_ap.to(at::kCPU, at::kDouble).contiguous();
  // The forward's order, unless it came from another implementation.
  const bool have_order = order_in.defined() && order_in.device().is_cpu() &&
                          order_in.scalar_type() == at::kLong && order_in.dim() == 2 &&
                          order_in.size(0) == C && order_in.size(1) == M;
  const auto order = have_order ? order_in.contiguous() : at::Tensor();
  const auto ranks_all = rank_all.contiguous();
  const auto ranks_pos = rank_pos.contiguous();
  auto grad_scores = at::zeros({M, C}, scores.options());
  const auto& kernels = kernels::smooth_ap_kernels();

  AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "proxyloss_smooth_ap_backward", [&] {
    const auto* s = scores.data_ptr<scalar_t>();
    const auto* y = labels.data_ptr<int64_t>();
    const auto* g = grad.data_ptr<double>();
    const auto* all = ranks_all.data_ptr<scalar_t>();
    const auto* pos = ranks_pos.data_ptr<scalar_t>();
    const double* w = weights.defined() ? weights.data_ptr<double>() : nullptr;
    auto* out = grad_scores.data_ptr<scalar_t>();
    const ClassStats stats(s, y, M, C);
    const auto inv_tau = static_cast<scalar_t>(1.0 / temperature);
    ClassSorter<scalar_t> sorter;
    std::vector<int64_t> sorted_rows;
    std::vector<scalar_t> values;
    std::vector<scalar_t> coef_all;
    std::vector<scalar_t> coef_pos;
    std::vector<scalar_t> class_grad;
    for (int64_t c = 0; c < C; ++c) {
      if (!stats.finite[c] && g[c] != 0.0) {
        // A non-finite class's gradient is NaN (unless nothing flows to it).
        for (int64_t m = 0; m < M; ++m) {
          out[m * C + c] = std::numeric_limits<scalar_t>::quiet_NaN();
        }
        continue;
      }
      if (!stats.computable(c) || g[c] == 0.0) {
        continue; // e.g. a degenerate class masked out by the reduction
      }
      const int64_t P = stats.positives[c];
      const int64_t* class_order = nullptr;
      if (have_order) {
        class_order = order.data_ptr<int64_t>() + c * M;
      } else {
        sorted_rows.resize(M);
        sorter.sort(s, y, M, C, c, P, sorted_rows.data());
        class_order = sorted_rows.data();
      }
      // With g = grad_ap[c] and f_k = (g / W) w_k (unweighted: g / P):
      //   coef_all = dL/drank_all = -f rank_pos / rank_all^2
      //   coef_pos = dL/drank_all + dL/drank_pos = coef_all + f / rank_all
      // in double, rounded once to the scores' type.
      double mass = double(P);
      if (w != nullptr) {
        mass = 0;
        for (int64_t k = 0; k < P; ++k) {
          mass += w[class_order[k]];
        }
        if (mass == 0) {
          continue; // the positives weigh nothing: ap is NaN, no gradient
        }
      }
      gather_class(s, C, c, class_order, M, values);
      const double g_over_mass = g[c] / mass;
      coef_all.resize(P);
      coef_pos.resize(P);
      for (int64_t k = 0; k < P; ++k) {
        const int64_t row = class_order[k];
        const double f = w != nullptr ? g_over_mass * w[row] : g_over_mass;
        const double ra = all[row];
        const double ca = -f * double(pos[row]) / (ra * ra);
        coef_all[k] = static_cast<scalar_t>(ca);
        coef_pos[k] = static_cast<scalar_t>(ca + f / ra);
      }
      class_grad.resize(M);
      run_backward(kernels, values.data(), P, M, inv_tau, coef_all.data(),
                   coef_pos.data(), class_grad.data());
      for (int64_t i = 0; i < M; ++i) {
        out[class_order[i] * C + c] = class_grad[i];
      }
    }
  });
  return grad_scores;
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CPU, m) {
  m.impl("_smooth_ap_forward", &proxyloss::ops_impl::smooth_ap_forward_cpu);
  m.impl("_smooth_ap_backward", &proxyloss::ops_impl::smooth_ap_backward_cpu);
}
