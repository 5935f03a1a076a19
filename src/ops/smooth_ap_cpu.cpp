// CPU implementation of the Smooth-AP op: per class, sort the positives' and
// the negatives' scores and run the windowed kernels on them. Extra memory is
// O(M) whatever P is; time O(M log M + sum of window sizes).
#include "kernels/cpu_capability.h"
#include "ops/smooth_ap_impl.h"
#include "proxyloss/detail/kernel_selection.h"

#include <ATen/Dispatch.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace proxyloss {
namespace ops_impl {
namespace {

// One class's pool in kernel layout: the scores of its positives and of its
// negatives, each sorted ascending, with the pool row of every entry.
template <typename T>
struct ClassLayout {
  std::vector<T> pos_values;
  std::vector<int64_t> pos_rows;
  std::vector<T> neg_values;
  std::vector<int64_t> neg_rows;

  void fill(const T* scores, const int64_t* labels, int64_t M, int64_t C, int64_t c,
            int64_t P) {
    std::vector<std::pair<T, int64_t>> pos;
    std::vector<std::pair<T, int64_t>> neg;
    pos.reserve(P);
    neg.reserve(M - P);
    for (int64_t m = 0; m < M; ++m) {
      (labels[m] == c ? pos : neg).emplace_back(scores[m * C + c], m);
    }
    split(sorted(std::move(pos)), pos_values, pos_rows);
    split(sorted(std::move(neg)), neg_values, neg_rows);
  }

 private:
  // Ascending by score, ties by row: the same order every time.
  static std::vector<std::pair<T, int64_t>> sorted(std::vector<std::pair<T, int64_t>> v) {
    std::sort(v.begin(), v.end());
    return v;
  }
  static void split(const std::vector<std::pair<T, int64_t>>& v, std::vector<T>& values,
                    std::vector<int64_t>& rows) {
    values.resize(v.size());
    rows.resize(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      values[i] = v[i].first;
      rows[i] = v[i].second;
    }
  }
};

template <typename T>
void run_forward(const kernels::SmoothAPKernels& k, const ClassLayout<T>& layout,
                 T inv_tau, T* rank_all, T* rank_pos);
template <>
void run_forward<float>(const kernels::SmoothAPKernels& k, const ClassLayout<float>& l,
                        float inv_tau, float* rank_all, float* rank_pos) {
  k.forward_float(l.pos_values.data(), l.pos_values.size(), l.neg_values.data(),
                  l.neg_values.size(), inv_tau, rank_all, rank_pos);
}
template <>
void run_forward<double>(const kernels::SmoothAPKernels& k, const ClassLayout<double>& l,
                         double inv_tau, double* rank_all, double* rank_pos) {
  k.forward_double(l.pos_values.data(), l.pos_values.size(), l.neg_values.data(),
                   l.neg_values.size(), inv_tau, rank_all, rank_pos);
}

template <typename T>
void run_backward(const kernels::SmoothAPKernels& k, const ClassLayout<T>& layout,
                  T inv_tau, const T* coef_all, const T* coef_pos, T* grad_pos,
                  T* grad_neg);
template <>
void run_backward<float>(const kernels::SmoothAPKernels& k, const ClassLayout<float>& l,
                         float inv_tau, const float* coef_all, const float* coef_pos,
                         float* grad_pos, float* grad_neg) {
  k.backward_float(l.pos_values.data(), l.pos_values.size(), l.neg_values.data(),
                   l.neg_values.size(), inv_tau, coef_all, coef_pos, grad_pos, grad_neg);
}
template <>
void run_backward<double>(const kernels::SmoothAPKernels& k, const ClassLayout<double>& l,
                          double inv_tau, const double* coef_all, const double* coef_pos,
                          double* grad_pos, double* grad_neg) {
  k.backward_double(l.pos_values.data(), l.pos_values.size(), l.neg_values.data(),
                    l.neg_values.size(), inv_tau, coef_all, coef_pos, grad_pos, grad_neg);
}

// Classes the kernels must run for: at least one positive, finite scores.
std::vector<int64_t> computable_classes(const at::Tensor& counts,
                                        const at::Tensor& nonfinite) {
  std::vector<int64_t> classes;
  const auto* count = counts.data_ptr<int64_t>();
  const auto* bad = nonfinite.data_ptr<bool>();
  for (int64_t c = 0; c < counts.size(0); ++c) {
    if (count[c] > 0 && !bad[c]) {
      classes.push_back(c);
    }
  }
  return classes;
}

} // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> smooth_ap_forward_cpu(
    const at::Tensor& scores_in, const at::Tensor& labels_in, double temperature) {
  if (detail::generic_kernels_forced()) {
    return smooth_ap_forward_generic(scores_in, labels_in, temperature);
  }
  check_smooth_ap_inputs(scores_in, labels_in, temperature);
  const auto scores = scores_in.contiguous();
  const auto labels = labels_in.contiguous();
  const int64_t M = scores.size(0);
  const int64_t C = scores.size(1);
  auto rank_all = at::zeros({M}, scores.options());
  auto rank_pos = at::zeros({M}, scores.options());
  const auto counts = class_counts(labels, C);
  const auto nonfinite = nonfinite_classes(scores);
  const auto& kernels = kernels::smooth_ap_kernels();

  AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "proxyloss_smooth_ap_forward", [&] {
    const auto inv_tau = static_cast<scalar_t>(1.0 / temperature);
    ClassLayout<scalar_t> layout;
    std::vector<scalar_t> class_rank_all;
    std::vector<scalar_t> class_rank_pos;
    auto* out_all = rank_all.data_ptr<scalar_t>();
    auto* out_pos = rank_pos.data_ptr<scalar_t>();
    for (const int64_t c : computable_classes(counts, nonfinite)) {
      const int64_t P = counts.data_ptr<int64_t>()[c];
      layout.fill(scores.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), M, C, c, P);
      class_rank_all.resize(P);
      class_rank_pos.resize(P);
      run_forward<scalar_t>(kernels, layout, inv_tau, class_rank_all.data(),
                            class_rank_pos.data());
      for (int64_t k = 0; k < P; ++k) {
        out_all[layout.pos_rows[k]] = class_rank_all[k];
        out_pos[layout.pos_rows[k]] = class_rank_pos[k];
      }
    }
  });
  auto ap = ap_from_ranks(scores, labels, rank_all, rank_pos, counts, nonfinite);
  return {ap, rank_all, rank_pos};
}

at::Tensor smooth_ap_backward_cpu(const at::Tensor& grad_ap, const at::Tensor& scores_in,
                                  const at::Tensor& labels_in, const at::Tensor& rank_all,
                                  const at::Tensor& rank_pos, double temperature) {
  if (detail::generic_kernels_forced()) {
    return smooth_ap_backward_generic(grad_ap, scores_in, labels_in, rank_all, rank_pos,
                                      temperature);
  }
  check_smooth_ap_inputs(scores_in, labels_in, temperature);
  const auto scores = scores_in.contiguous();
  const auto labels = labels_in.contiguous();
  const int64_t M = scores.size(0);
  const int64_t C = scores.size(1);
  const auto counts = class_counts(labels, C);
  const auto nonfinite = nonfinite_classes(scores);
  const auto grad_cpu = grad_ap.to(at::kCPU, at::kDouble).contiguous();
  at::Tensor coef_all;
  at::Tensor coef_pos;
  std::tie(coef_all, coef_pos) =
      rank_coefficients(grad_ap, labels, rank_all, rank_pos, counts);
  coef_all = coef_all.contiguous();
  coef_pos = coef_pos.contiguous();
  auto grad_scores = at::zeros_like(scores);
  const auto& kernels = kernels::smooth_ap_kernels();

  AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "proxyloss_smooth_ap_backward", [&] {
    const auto inv_tau = static_cast<scalar_t>(1.0 / temperature);
    ClassLayout<scalar_t> layout;
    std::vector<scalar_t> class_coef_all;
    std::vector<scalar_t> class_coef_pos;
    std::vector<scalar_t> grad_pos;
    std::vector<scalar_t> grad_neg;
    const auto* all = coef_all.data_ptr<scalar_t>();
    const auto* pos = coef_pos.data_ptr<scalar_t>();
    auto* out = grad_scores.data_ptr<scalar_t>();
    for (const int64_t c : computable_classes(counts, nonfinite)) {
      if (grad_cpu.data_ptr<double>()[c] == 0.0) {
        continue; // e.g. a degenerate class masked out by the reduction
      }
      const int64_t P = counts.data_ptr<int64_t>()[c];
      layout.fill(scores.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), M, C, c, P);
      class_coef_all.resize(P);
      class_coef_pos.resize(P);
      for (int64_t k = 0; k < P; ++k) {
        class_coef_all[k] = all[layout.pos_rows[k]];
        class_coef_pos[k] = pos[layout.pos_rows[k]];
      }
      grad_pos.resize(P);
      grad_neg.resize(M - P);
      run_backward<scalar_t>(kernels, layout, inv_tau, class_coef_all.data(),
                             class_coef_pos.data(), grad_pos.data(), grad_neg.data());
      for (int64_t k = 0; k < P; ++k) {
        out[layout.pos_rows[k] * C + c] = grad_pos[k];
      }
      for (int64_t j = 0; j < M - P; ++j) {
        out[layout.neg_rows[j] * C + c] = grad_neg[j];
      }
    }
  });
  poison_nonfinite_columns(grad_scores, grad_ap, nonfinite);
  return grad_scores;
}

} // namespace ops_impl
} // namespace proxyloss
