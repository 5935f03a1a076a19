// Device-generic implementation of the FairLoss ops from ATen ops: serves
// every device without a fused kernel (CUDA included). It follows the fused
// kernels' formulas and precision choices (kernels/fair_loss_kernel.h):
// [N, C] work in the dtype of the logits, per-row scalars ([N] work) in
// float64. It holds a few [N, C] temporaries, as torch's own cross-entropy.
#include "ops/fair_loss.h"

#include <torch/library.h>

namespace proxyloss {
namespace ops_impl {
namespace {

// Per-row quantities that forward and backward both derive from the inputs;
// [N] tensors in float64 unless said otherwise.
struct Rows {
  at::Tensor valid;       // bool: target != ignore_index
  at::Tensor safe_target; // [N, 1] int64: the target, 0 on ignored rows
  at::Tensor x_y;         // z_y - max, exact
  at::Tensor w_y;         // weight of the target (1 without weights)
  double weight_sum;      // W = sum_c w_c (C without weights)
};

Rows rows_of(const at::Tensor& logits, const at::Tensor& targets,
             const at::Tensor& weight, const at::Tensor& row_max, int64_t ignore_index) {
  const auto valid = targets.ne(ignore_index);
  const auto safe = at::where(valid, targets, at::zeros_like(targets)).unsqueeze(1);
  const auto z_y = logits.gather(1, safe).squeeze(1).to(at::kDouble);
  const auto x_y = z_y - row_max.to(at::kDouble);
  if (weight.defined()) {
    return {valid, safe, x_y, weight.index_select(0, safe.squeeze(1)).to(at::kDouble),
            weight.sum().item<double>()};
  }
  return {valid, safe, x_y, at::ones_like(x_y), static_cast<double>(logits.size(1))};
}

at::Tensor defined_or_empty(const optional<at::Tensor>& weight) {
  return weight.has_value() ? *weight : at::Tensor();
}

// log(sum_c exp(s x_c)) for x = z - max <= 0, rows [N]: the maxima (x = 0)
// add exactly 1 each and are counted apart, so that log(ties + rest) =
// log(ties) + log1p(rest / ties) keeps full relative precision when the rest
// is tiny.
at::Tensor log_sum_exp(const at::Tensor& x, double s) {
  const auto is_max = x.eq(0);
  const auto ties = is_max.sum(1).to(at::kDouble);
  const auto rest =
      at::where(is_max, at::zeros({}, x.options()), (x * s).exp()).sum(1).to(at::kDouble);
  return ties.log() + (rest / ties).log1p();
}

// The penalty (2 sigmoid(k d) - 1) / C and its slope 2 k sigmoid'(k d) / C,
// with d = beta_lse / beta - x_y >= 0 and e = exp(-k d).
struct Penalty {
  at::Tensor value;
  at::Tensor slope;
};

Penalty penalty(const at::Tensor& beta_lse, const Rows& rows, double beta, double k,
                int64_t C) {
  const auto d = beta_lse.to(at::kDouble) / beta - rows.x_y;
  const auto e = at::exp(-k * d);
  const auto r = 1.0 / (1.0 + e);
  return {(1.0 - e) * r / static_cast<double>(C),
          2.0 * k * e * r * r / static_cast<double>(C)};
}

} // namespace

FairLossForward fair_loss_forward_generic(const at::Tensor& logits,
                                          const at::Tensor& targets,
                                          const optional<at::Tensor>& weight_opt,
                                          double smooth_max_beta, double scaling_factor,
                                          int64_t ignore_index, double label_smoothing) {
  const FairLossConfig config{smooth_max_beta, scaling_factor, ignore_index,
                              label_smoothing};
  check_fair_loss_inputs(logits, targets, weight_opt, config);
  fail_on_bad_targets(targets, logits.size(1), ignore_index);
  const auto weight = defined_or_empty(weight_opt);
  const int64_t C = logits.size(1);
  const double eps = label_smoothing;
  const auto row_max = std::get<0>(logits.max(1));
  const Rows rows = rows_of(logits, targets, weight, row_max, ignore_index);

  const auto x = logits - row_max.unsqueeze(1); // <= 0
  const auto lse = log_sum_exp(x, 1.0);
  const auto beta_lse = log_sum_exp(x, smooth_max_beta);
  auto ce = (1.0 - eps) * rows.w_y * (lse - rows.x_y);
  if (eps > 0) {
    const auto weighted_x = (weight.defined() ? (x * weight).sum(1) : x.sum(1));
    ce = ce + (eps / C) * (rows.weight_sum * lse - weighted_x.to(at::kDouble));
  }
  const auto loss =
      ce + penalty(beta_lse, rows, smooth_max_beta, scaling_factor, C).value;

  // Ignored rows: 0 everywhere.
  const auto dtype = logits.scalar_type();
  const auto zero = at::zeros({}, logits.options());
  auto masked = [&](const at::Tensor& t) {
    return at::where(rows.valid, t.to(dtype), zero);
  };
  return {masked(loss), masked(row_max), masked(lse), masked(beta_lse)};
}

// grad[i, c] = g (A p_c + a q_c - eps w_c / C) off the target, and on it
//   g (A expm1(x_y - lse) + a expm1(beta x_y - beta_lse) + eps (W - w_y) / C)
// so that p_y, q_y close to 1 cancel without loss; 0 on ignored rows (see
// kernels/fair_loss_kernel.h).
at::Tensor fair_loss_backward_generic(const at::Tensor& grad_loss,
                                      const at::Tensor& logits, const at::Tensor& targets,
                                      const optional<at::Tensor>& weight_opt,
                                      const at::Tensor& row_max, const at::Tensor& lse,
                                      const at::Tensor& beta_lse, double smooth_max_beta,
                                      double scaling_factor, int64_t ignore_index,
                                      double label_smoothing) {
  const FairLossConfig config{smooth_max_beta, scaling_factor, ignore_index,
                              label_smoothing};
  check_fair_loss_inputs(logits, targets, weight_opt, config);
  fail_on_bad_targets(targets, logits.size(1), ignore_index);
  check_fair_loss_saved(grad_loss, logits, row_max, lse, beta_lse);
  const auto weight = defined_or_empty(weight_opt);
  const int64_t C = logits.size(1);
  const double beta = smooth_max_beta;
  const double eps = label_smoothing;
  const auto dtype = logits.scalar_type();
  const Rows rows = rows_of(logits, targets, weight, row_max, ignore_index);
  const auto g = grad_loss.to(at::kDouble);
  const auto slope = penalty(beta_lse, rows, beta, scaling_factor, C).slope;
  const auto big_a = (1.0 - eps) * rows.w_y + (eps / C) * rows.weight_sum;

  const auto x = logits - row_max.unsqueeze(1);
  const auto prob = (x - lse.unsqueeze(1)).exp();
  const auto beta_prob = (x * beta - beta_lse.unsqueeze(1)).exp();
  auto grad = (g * big_a).to(dtype).unsqueeze(1) * prob +
              (g * slope).to(dtype).unsqueeze(1) * beta_prob;
  if (eps > 0) {
    const auto smooth =
        weight.defined() ? weight.unsqueeze(0) : at::ones({1, C}, logits.options());
    grad = grad - (g * (eps / C)).to(dtype).unsqueeze(1) * smooth;
  }
  const auto on_target =
      g * (big_a * at::expm1(rows.x_y - lse.to(at::kDouble)) +
           slope * at::expm1(beta * rows.x_y - beta_lse.to(at::kDouble)) +
           (eps / C) * (rows.weight_sum - rows.w_y));
  grad.scatter_(1, rows.safe_target, on_target.to(dtype).unsqueeze(1));
  return at::where(rows.valid.unsqueeze(1), grad, at::zeros({}, grad.options()));
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("_fair_loss_forward", &proxyloss::ops_impl::fair_loss_forward_generic);
  m.impl("_fair_loss_backward", &proxyloss::ops_impl::fair_loss_backward_generic);
}
