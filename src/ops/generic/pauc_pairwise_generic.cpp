// Device-generic implementation of proxyloss::pauc_pairwise: the P x B
// pairs in chunks of positives (each chunk a [rows, B] block in float64, so
// that the peak extra memory stays bounded), then summed in a fixed order.
#include "ops/pauc_pairwise.h"

#include "ops/sample_weights.h"

#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <vector>

namespace proxyloss {
namespace ops_impl {
namespace {

constexpr int64_t kPairsPerChunk = int64_t{1} << 22;

int64_t rows_per_chunk(int64_t B) {
  return std::max<int64_t>(1, kPairsPerChunk / std::max<int64_t>(B, 1));
}

// sigmoid'(z) = e / (1 + e)^2 with e = exp(-|z|).
at::Tensor sigmoid_derivative(const at::Tensor& z) {
  const auto e = z.abs().neg().exp();
  return e / (1 + e).square();
}

// z = (p_i - b_j) / tau for the positives [start, start + rows), [rows, B].
at::Tensor pair_z(const at::Tensor& positives, const at::Tensor& negatives, int64_t start,
                  int64_t rows, double tau) {
  return (positives.narrow(0, start, rows).unsqueeze(1) - negatives.unsqueeze(0)) / tau;
}

// The positives' weights in float64 (`positives`' options), ones without.
at::Tensor weights_or_ones(const optional<at::Tensor>& weights,
                           const at::Tensor& positives) {
  return weights.has_value() ? weights->detach().to(at::kDouble)
                             : at::ones({positives.size(0)}, positives.options());
}

} // namespace

PaucPairwiseForward pauc_pairwise_forward_generic(
    const at::Tensor& positives_in, const at::Tensor& negatives_in, double tau,
    const optional<at::Tensor>& weights_in) {
  check_pauc_pairwise_inputs(positives_in, negatives_in, tau, weights_in);
  const int64_t P = positives_in.size(0);
  const int64_t B = negatives_in.size(0);
  const auto dtype = positives_in.scalar_type();
  if (pauc_pairwise_undefined(positives_in, negatives_in)) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    return {at::full({}, nan, positives_in.options()),
            at::full({P}, nan, positives_in.options())};
  }
  const auto positives = positives_in.detach().to(at::kDouble);
  const auto negatives = negatives_in.detach().to(at::kDouble);
  std::vector<at::Tensor> sums;
  for (int64_t start = 0; start < P; start += rows_per_chunk(B)) {
    const int64_t rows = std::min(rows_per_chunk(B), P - start);
    sums.push_back(
        pair_z(positives, negatives, start, rows, tau).sigmoid().sum(/*dim=*/1));
  }
  const auto S = at::cat(sums);
  const auto weights = weights_or_ones(weights_in, positives);
  const auto mass = weights.sum();
  const auto pauc = at::where(
      mass.gt(0), (weights * S).sum() / (mass * B),
      at::full({}, std::numeric_limits<double>::quiet_NaN(), positives.options()));
  return {pauc.to(dtype), (S / B).to(dtype)};
}

PaucPairwiseGrads pauc_pairwise_backward_generic(const at::Tensor& grad_pauc,
                                                 const at::Tensor& positives_in,
                                                 const at::Tensor& negatives_in,
                                                 double tau,
                                                 const optional<at::Tensor>& weights_in) {
  check_pauc_pairwise_inputs(positives_in, negatives_in, tau, weights_in);
  const int64_t P = positives_in.size(0);
  const int64_t B = negatives_in.size(0);
  const auto dtype = positives_in.scalar_type();
  if (pauc_pairwise_undefined(positives_in, negatives_in)) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    return {at::full({P}, nan, positives_in.options()),
            at::full({B}, nan, negatives_in.options())};
  }
  const auto positives = positives_in.detach().to(at::kDouble);
  const auto negatives = negatives_in.detach().to(at::kDouble);
  const auto weights = weights_or_ones(weights_in, positives);
  // g / (B W tau); NaN where W = 0 (as the forward).
  const auto scale = grad_pauc.to(at::kDouble) / (weights.sum() * B * tau);
  std::vector<at::Tensor> grad_rows;
  auto grad_b = at::zeros({B}, negatives.options());
  for (int64_t start = 0; start < P; start += rows_per_chunk(B)) {
    const int64_t rows = std::min(rows_per_chunk(B), P - start);
    const auto w = weights.narrow(0, start, rows);
    const auto d = sigmoid_derivative(pair_z(positives, negatives, start, rows, tau));
    grad_rows.push_back(w * d.sum(/*dim=*/1));
    grad_b -= (w.unsqueeze(1) * d).sum(/*dim=*/0);
  }
  return {(at::cat(grad_rows) * scale).to(dtype), (grad_b * scale).to(dtype)};
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("_pauc_pairwise_forward", &proxyloss::ops_impl::pauc_pairwise_forward_generic);
  m.impl("_pauc_pairwise_backward", &proxyloss::ops_impl::pauc_pairwise_backward_generic);
}
