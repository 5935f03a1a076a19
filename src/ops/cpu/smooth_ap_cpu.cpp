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

// One class of an anchored call, split for the kernels (each part ascending,
// with its pool rows): the anchor positives, the other positives, and the
// rest of the pool (the other positives and the negatives, merged). The
// kernels take the anchors as their positives:
//   kernel(anchors, rest):   rank_all of each anchor (every row of the pool);
//   kernel(anchors, others): its rank_all is the anchor's rank_pos (every
//                            positive).
// (Without other positives, kernel(anchors, rest)'s rank_pos is rank_pos and
// the call is the un-anchored one.) Work: P_anchor (M + P) window pairs.
template <typename T>
struct AnchorSplit {
  std::vector<T> anchor_values, other_values, rest_values;
  std::vector<int64_t> anchor_rows, other_rows, rest_rows;

  // values / order: the class in kernel layout (positives [0, P), negatives
  // [P, M), each ascending); is_anchor [M] by pool row.
  void split(const T* values, const int64_t* order, int64_t P, int64_t M,
             const bool* is_anchor) {
    anchor_values.clear(), other_values.clear(), rest_values.clear();
    anchor_rows.clear(), other_rows.clear(), rest_rows.clear();
    for (int64_t i = 0; i < P; ++i) {
      const bool anchor = is_anchor[order[i]];
      (anchor ? anchor_values : other_values).push_back(values[i]);
      (anchor ? anchor_rows : other_rows).push_back(order[i]);
    }
    // Merge the other positives and the negatives (ties: positives first).
    size_t k = 0;
    for (int64_t j = P; j < M; ++j) {
      for (; k < other_values.size() && !(values[j] < other_values[k]); ++k) {
        rest_values.push_back(other_values[k]);
        rest_rows.push_back(other_rows[k]);
      }
      rest_values.push_back(values[j]);
      rest_rows.push_back(order[j]);
    }
    for (; k < other_values.size(); ++k) {
      rest_values.push_back(other_values[k]);
      rest_rows.push_back(other_rows[k]);
    }
  }
  int64_t anchors() const {
    return static_cast<int64_t>(anchor_values.size());
  }
  int64_t others() const {
    return static_cast<int64_t>(other_values.size());
  }
  int64_t rest() const {
    return static_cast<int64_t>(rest_values.size());
  }
};

void kernel_forward(const kernels::SmoothAPKernels& k, const float* pos, int64_t P,
                    const float* neg, int64_t N, float inv_tau, float* rank_all,
                    float* rank_pos) {
  k.forward_float(pos, P, neg, N, inv_tau, rank_all, rank_pos);
}
void kernel_forward(const kernels::SmoothAPKernels& k, const double* pos, int64_t P,
                    const double* neg, int64_t N, double inv_tau, double* rank_all,
                    double* rank_pos) {
  k.forward_double(pos, P, neg, N, inv_tau, rank_all, rank_pos);
}
void kernel_backward(const kernels::SmoothAPKernels& k, const float* pos, int64_t P,
                     const float* neg, int64_t N, float inv_tau, const float* coef_all,
                     const float* coef_pos, float* grad_pos, float* grad_neg) {
  k.backward_float(pos, P, neg, N, inv_tau, coef_all, coef_pos, grad_pos, grad_neg);
}
void kernel_backward(const kernels::SmoothAPKernels& k, const double* pos, int64_t P,
                     const double* neg, int64_t N, double inv_tau, const double* coef_all,
                     const double* coef_pos, double* grad_pos, double* grad_neg) {
  k.backward_double(pos, P, neg, N, inv_tau, coef_all, coef_pos, grad_pos, grad_neg);
}

// The anchors' ranks, in split.anchor order.
template <typename T>
void anchored_ranks(const kernels::SmoothAPKernels& k, const AnchorSplit<T>& split,
                    T inv_tau, std::vector<T>& rank_all, std::vector<T>& rank_pos) {
  const int64_t A = split.anchors();
  rank_all.resize(A);
  rank_pos.resize(A);
  if (A == 0) {
    return;
  }
  kernel_forward(k, split.anchor_values.data(), A, split.rest_values.data(), split.rest(),
                 inv_tau, rank_all.data(), rank_pos.data());
  if (split.others() > 0) {
    std::vector<T> unused(A);
    kernel_forward(k, split.anchor_values.data(), A, split.other_values.data(),
                   split.others(), inv_tau, rank_pos.data(), unused.data());
  }
}

// grad_rows[rows[i]] += values[i].
template <typename T>
void add_by_row(const std::vector<T>& values, const std::vector<int64_t>& rows,
                std::vector<T>& grad_rows) {
  for (size_t i = 0; i < values.size(); ++i) {
    grad_rows[rows[i]] += values[i];
  }
}

// Adds the gradient of the anchors' terms to grad_rows [M] (by pool row),
// given a = dL/drank_all and b = dL/drank_pos per anchor (split.anchor
// order). kernel(anchors, rest) carries a (its rank_pos is unused: its
// coef_pos is a too) and kernel(anchors, others) carries b; without other
// positives one call carries both (coef_pos = a + b), as un-anchored.
template <typename T>
void anchored_gradient(const kernels::SmoothAPKernels& k, const AnchorSplit<T>& split,
                       T inv_tau, const std::vector<double>& a,
                       const std::vector<double>& b, std::vector<T>& grad_rows) {
  const int64_t A = split.anchors();
  if (A == 0) {
    return;
  }
  const bool others = split.others() > 0;
  std::vector<T> coef_all(A), coef_pos(A);
  for (int64_t i = 0; i < A; ++i) {
    coef_all[i] = static_cast<T>(a[i]);
    coef_pos[i] = static_cast<T>(others ? a[i] : a[i] + b[i]);
  }
  std::vector<T> grad_anchor(A), grad_rest(split.rest());
  kernel_backward(k, split.anchor_values.data(), A, split.rest_values.data(),
                  split.rest(), inv_tau, coef_all.data(), coef_pos.data(),
                  grad_anchor.data(), grad_rest.data());
  add_by_row(grad_anchor, split.anchor_rows, grad_rows);
  add_by_row(grad_rest, split.rest_rows, grad_rows);
  if (!others) {
    return;
  }
  for (int64_t i = 0; i < A; ++i) {
    coef_all[i] = static_cast<T>(b[i]);
  }
  std::vector<T> grad_other(split.others());
  kernel_backward(k, split.anchor_values.data(), A, split.other_values.data(),
                  split.others(), inv_tau, coef_all.data(), coef_all.data(),
                  grad_anchor.data(), grad_other.data());
  add_by_row(grad_anchor, split.anchor_rows, grad_rows);
  add_by_row(grad_other, split.other_rows, grad_rows);
}

} // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> smooth_ap_forward_cpu(
    const at::Tensor& scores_in, const at::Tensor& labels_in, double temperature,
    const optional<at::Tensor>& weights_in, const optional<at::Tensor>& anchors_in) {
  if (detail::generic_kernels_forced()) {
    return smooth_ap_forward_generic(scores_in, labels_in, temperature, weights_in,
                                     anchors_in);
  }
  check_smooth_ap_inputs(scores_in, labels_in, temperature, weights_in, anchors_in);
  const auto scores = scores_in.contiguous();
  const auto labels = labels_in.contiguous();
  const auto weights = weights_in_double(weights_in);
  const auto anchors = anchors_in.has_value() ? anchors_in->contiguous() : at::Tensor();
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
    const bool* is_anchor = anchors.defined() ? anchors.data_ptr<bool>() : nullptr;
    const ClassStats stats(s, y, M, C);
    const auto inv_tau = static_cast<scalar_t>(1.0 / temperature);
    ClassSorter<scalar_t> sorter;
    AnchorSplit<scalar_t> split;
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
      // The anchors' ranks and rows: every positive, or the flagged ones.
      const int64_t* anchor_rows = class_order;
      int64_t A = P;
      if (is_anchor == nullptr) {
        class_rank_all.resize(P);
        class_rank_pos.resize(P);
        kernel_forward(kernels, values.data(), P, values.data() + P, M - P, inv_tau,
                       class_rank_all.data(), class_rank_pos.data());
      } else {
        split.split(values.data(), class_order, P, M, is_anchor);
        anchored_ranks(kernels, split, inv_tau, class_rank_all, class_rank_pos);
        anchor_rows = split.anchor_rows.data();
        A = split.anchors();
      }
      // ap = (weighted) sum of the anchors' rank_pos / rank_all over the
      // class's whole mass, in double from the rounded ranks; W == 0 gives
      // 0 / 0, NaN.
      double sum = 0;
      for (int64_t k = 0; k < A; ++k) {
        const int64_t row = anchor_rows[k];
        out_all[row] = class_rank_all[k];
        out_pos[row] = class_rank_pos[k];
        const double ratio = double(class_rank_pos[k]) / double(class_rank_all[k]);
        sum += w != nullptr ? w[row] * ratio : ratio;
      }
      double mass = double(P);
      if (w != nullptr) {
        mass = 0;
        for (int64_t k = 0; k < P; ++k) {
          mass += w[class_order[k]];
        }
      }
      out_ap[c] = static_cast<scalar_t>(sum / mass);
    }
  });
  return {ap, rank_all, rank_pos, order};
}

at::Tensor smooth_ap_backward_cpu(const at::Tensor& grad_ap, const at::Tensor& scores_in,
                                  const at::Tensor& labels_in, const at::Tensor& rank_all,
                                  const at::Tensor& rank_pos, const at::Tensor& order_in,
                                  double temperature,
                                  const optional<at::Tensor>& weights_in,
                                  const optional<at::Tensor>& anchors_in) {
  if (detail::generic_kernels_forced()) {
    return smooth_ap_backward_generic(grad_ap, scores_in, labels_in, rank_all, rank_pos,
                                      order_in, temperature, weights_in, anchors_in);
  }
  check_smooth_ap_inputs(scores_in, labels_in, temperature, weights_in, anchors_in);
  const auto scores = scores_in.contiguous();
  const auto labels = labels_in.contiguous();
  const auto weights = weights_in_double(weights_in);
  const auto anchors = anchors_in.has_value() ? anchors_in->contiguous() : at::Tensor();
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
    const bool* is_anchor = anchors.defined() ? anchors.data_ptr<bool>() : nullptr;
    auto* out = grad_scores.data_ptr<scalar_t>();
    const ClassStats stats(s, y, M, C);
    const auto inv_tau = static_cast<scalar_t>(1.0 / temperature);
    ClassSorter<scalar_t> sorter;
    AnchorSplit<scalar_t> split;
    std::vector<double> coef_rank_all;
    std::vector<double> coef_rank_pos;
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
      // The anchors: every positive (kernel layout), or the flagged ones.
      const int64_t* anchor_rows = class_order;
      int64_t A = P;
      if (is_anchor != nullptr) {
        split.split(values.data(), class_order, P, M, is_anchor);
        anchor_rows = split.anchor_rows.data();
        A = split.anchors();
      }
      // With g = grad_ap[c] and f_k = (g / W) w_k (unweighted: g / P), in
      // double:
      //   a_k = dL/drank_all = -f rank_pos / rank_all^2,  b_k = dL/drank_pos = f /
      //   rank_all.
      const double g_over_mass = g[c] / mass;
      coef_rank_all.resize(A);
      coef_rank_pos.resize(A);
      for (int64_t k = 0; k < A; ++k) {
        const int64_t row = anchor_rows[k];
        const double f = w != nullptr ? g_over_mass * w[row] : g_over_mass;
        const double ra = all[row];
        coef_rank_all[k] = -f * double(pos[row]) / (ra * ra);
        coef_rank_pos[k] = f / ra;
      }
      if (is_anchor != nullptr) {
        class_grad.assign(M, scalar_t(0));
        anchored_gradient(kernels, split, inv_tau, coef_rank_all, coef_rank_pos,
                          class_grad);
        for (int64_t m = 0; m < M; ++m) {
          out[m * C + c] = class_grad[m];
        }
        continue;
      }
      // The kernel's coefficients (smooth_ap_kernel.h): a and a + b, each
      // rounded once to the scores' type.
      coef_all.resize(P);
      coef_pos.resize(P);
      for (int64_t k = 0; k < P; ++k) {
        coef_all[k] = static_cast<scalar_t>(coef_rank_all[k]);
        coef_pos[k] = static_cast<scalar_t>(coef_rank_all[k] + coef_rank_pos[k]);
      }
      class_grad.resize(M);
      kernel_backward(kernels, values.data(), P, values.data() + P, M - P, inv_tau,
                      coef_all.data(), coef_pos.data(), class_grad.data(),
                      class_grad.data() + P);
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
