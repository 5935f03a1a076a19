// Device-generic implementation of the Smooth-AP op from ATen ops: serves
// every device without a fused kernel (CUDA included). Positives are processed
// in chunks so that at most kChunkElements pairwise terms exist at once; the
// whole [P, M] matrix is never materialised.
#include "ops/op_labels.h"
#include "ops/sample_weights.h"
#include "ops/smooth_ap.h"

#include <torch/library.h>
#include <algorithm>
#include <vector>

namespace proxyloss {
namespace ops_impl {
namespace {

constexpr int64_t kChunkElements = int64_t(1) << 22;

int64_t chunk_rows(int64_t M) {
  return std::max<int64_t>(1, kChunkElements / std::max<int64_t>(M, 1));
}

// What one class contributes, in the layout of the pool.
struct ClassView {
  at::Tensor column;   // [M] scores of the class
  at::Tensor pos_rows; // [P] rows of its positives
  at::Tensor pos_mask; // [M] 1 for positives, 0 elsewhere (scores' dtype)
};

// The rows of every class's positives, class after class: one stable sort
// of the labels (out-of-range labels, the negatives, sort last), so that no
// class needs a host synchronisation of its own (as nonzero() would).
struct PositiveRows {
  at::Tensor rows;             // [M] row indices grouped by class
  std::vector<int64_t> offset; // class c's positives: rows[offset[c], offset[c] + P_c)
};

PositiveRows positive_rows(const at::Tensor& labels, const at::Tensor& counts) {
  const int64_t C = counts.size(0);
  PositiveRows out{
      std::get<1>(at::sort(sentinel_labels(labels, C), /*stable=*/true, /*dim=*/0,
                           /*descending=*/false)),
      std::vector<int64_t>(C, 0)};
  const int64_t* count = counts.data_ptr<int64_t>(); // on the CPU already
  for (int64_t c = 1; c < C; ++c) {
    out.offset[c] = out.offset[c - 1] + count[c - 1];
  }
  return out;
}

// With anchors, pos_rows keeps only the anchor positives (whose terms are
// the only ones evaluated); pos_mask still flags every positive.
ClassView view_class(const at::Tensor& scores, const at::Tensor& labels,
                     const PositiveRows& positives, int64_t c, int64_t P,
                     const optional<at::Tensor>& anchors) {
  auto rows = positives.rows.narrow(0, positives.offset[c], P);
  if (anchors.has_value()) {
    rows = rows.masked_select(anchors->index_select(0, rows));
  }
  return {scores.select(1, c), rows, labels.eq(c).to(scores.dtype())};
}

} // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> smooth_ap_forward_generic(
    const at::Tensor& scores, const at::Tensor& labels, double temperature,
    const optional<at::Tensor>& weights_in, const optional<at::Tensor>& anchors) {
  check_smooth_ap_inputs(scores, labels, temperature, weights_in, anchors);
  const auto weights = weights_in_double(weights_in);
  const int64_t M = scores.size(0);
  const int64_t C = scores.size(1);
  auto rank_all = at::zeros({M}, scores.options());
  auto rank_pos = at::zeros({M}, scores.options());
  const auto counts = class_counts(labels, C);
  const auto nonfinite = nonfinite_classes(scores);
  const double inv_tau = 1.0 / temperature;
  const int64_t rows_per_chunk = chunk_rows(M);
  const auto positives = positive_rows(labels, counts);

  for (int64_t c = 0; c < C; ++c) {
    const int64_t P = counts.data_ptr<int64_t>()[c];
    if (P == 0 || nonfinite.data_ptr<bool>()[c]) {
      continue;
    }
    const auto cls = view_class(scores, labels, positives, c, P, anchors);
    const int64_t P_anchor = cls.pos_rows.size(0);
    for (int64_t start = 0; start < P_anchor; start += rows_per_chunk) {
      const auto rows =
          cls.pos_rows.narrow(0, start, std::min(rows_per_chunk, P_anchor - start));
      const auto anchor_scores = cls.column.index_select(0, rows).unsqueeze(1);
      // sigmoid((s_j - s_k) / tau), [chunk, M]; the j == k term is 0.5.
      const auto sig = ((cls.column.unsqueeze(0) - anchor_scores) * inv_tau).sigmoid();
      const auto sum_pos = sig.mv(cls.pos_mask);
      const auto sum_all = sig.sum(1);
      rank_pos.index_copy_(0, rows, sum_pos + 0.5);
      rank_all.index_copy_(0, rows, sum_all + 0.5);
    }
  }
  const auto mass = weights.defined() ? class_masses(labels, weights, C) : counts;
  auto ap = ap_from_ranks(scores, labels, rank_all, rank_pos, weights, mass, nonfinite);
  // Nothing else to save: backward recomputes its masks from the labels.
  return {ap, rank_all, rank_pos, at::empty({0}, labels.options())};
}

at::Tensor smooth_ap_backward_generic(const at::Tensor& grad_ap, const at::Tensor& scores,
                                      const at::Tensor& labels,
                                      const at::Tensor& rank_all,
                                      const at::Tensor& rank_pos,
                                      const at::Tensor& /*order*/, double temperature,
                                      const optional<at::Tensor>& weights_in,
                                      const optional<at::Tensor>& anchors) {
  check_smooth_ap_inputs(scores, labels, temperature, weights_in, anchors);
  const auto weights = weights_in_double(weights_in);
  const int64_t M = scores.size(0);
  const int64_t C = scores.size(1);
  const auto counts = class_counts(labels, C);
  const auto nonfinite = nonfinite_classes(scores);
  const auto grad_cpu = grad_ap.to(at::kCPU, at::kDouble);
  at::Tensor coef_all;
  at::Tensor coef_pos;
  const auto mass = weights.defined() ? class_masses(labels, weights, C) : counts;
  std::tie(coef_all, coef_pos) =
      rank_coefficients(grad_ap, labels, rank_all, rank_pos, weights, mass);
  auto grad_scores = at::zeros_like(scores);
  const double inv_tau = 1.0 / temperature;
  const int64_t rows_per_chunk = chunk_rows(M);
  const auto positives = positive_rows(labels, counts);

  for (int64_t c = 0; c < C; ++c) {
    const int64_t P = counts.data_ptr<int64_t>()[c];
    if (P == 0 || nonfinite.data_ptr<bool>()[c] ||
        grad_cpu.data_ptr<double>()[c] == 0.0 ||
        (weights.defined() && mass.data_ptr<double>()[c] == 0.0)) {
      continue;
    }
    // Rows that are not anchors have zero coefficients: skipped.
    const auto cls = view_class(scores, labels, positives, c, P, anchors);
    const int64_t P_anchor = cls.pos_rows.size(0);
    auto grad_column = at::zeros_like(cls.column);
    for (int64_t start = 0; start < P_anchor; start += rows_per_chunk) {
      const auto rows =
          cls.pos_rows.narrow(0, start, std::min(rows_per_chunk, P_anchor - start));
      const auto anchor_scores = cls.column.index_select(0, rows).unsqueeze(1);
      const auto a = coef_all.index_select(0, rows).unsqueeze(1);
      const auto b = coef_pos.index_select(0, rows).unsqueeze(1) - a;
      // sigmoid'(d) = e / (1 + e)^2 with e = exp(-|d|): full relative precision
      // for any d (sig * (1 - sig) cancels once sig is near 1).
      const auto e =
          ((cls.column.unsqueeze(0) - anchor_scores) * inv_tau).abs().neg().exp();
      const auto sigmoid_prime = e / (1 + e).square();
      // w_kj = sigmoid'(d_kj) / tau * (a_k + [j positive] b_k): +w to j, -w to k.
      const auto w = sigmoid_prime * inv_tau * (a + b * cls.pos_mask.unsqueeze(0));
      grad_column += w.sum(0);
      grad_column.index_add_(0, rows, -w.sum(1));
    }
    grad_scores.select(1, c).copy_(grad_column);
  }
  poison_nonfinite_columns(grad_scores, grad_ap, nonfinite);
  return grad_scores;
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("_smooth_ap_forward", &proxyloss::ops_impl::smooth_ap_forward_generic);
  m.impl("_smooth_ap_backward", &proxyloss::ops_impl::smooth_ap_backward_generic);
}
