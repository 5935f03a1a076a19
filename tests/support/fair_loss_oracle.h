// Oracle of FairLoss, written from the formula of pytorch-fairloss 0.1.1 in
// plain torch ops (torch's own cross_entropy and logsumexp), for any dtype:
//   loss_i = CE_i + (2 sigmoid(k (logsumexp(beta z_i) / beta - z_i[y_i])) - 1) / C
// with CE_i = torch's cross_entropy(reduction none, weight, ignore_index,
// label_smoothing). Rows whose target is ignore_index are 0 (the reference
// package crashes on them); mean is the plain mean over the other rows.
// Gradients come from torch's autograd.
#pragma once

#include <proxyloss/reduction.h>

#include <torch/torch.h>

namespace oracle {

struct FairLossParams {
  double beta = 1000.0;
  double k = 1000.0;
  torch::Tensor weight; // [C] or undefined
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
};

// Per-row losses [N], in the dtype of logits.
inline torch::Tensor fair_loss_rows(const torch::Tensor& logits,
                                    const torch::Tensor& targets,
                                    const FairLossParams& p) {
  namespace F = torch::nn::functional;
  const int64_t C = logits.size(1);
  auto ce_options = F::CrossEntropyFuncOptions()
                        .reduction(torch::kNone)
                        .ignore_index(p.ignore_index)
                        .label_smoothing(p.label_smoothing);
  if (p.weight.defined()) {
    ce_options.weight(p.weight.to(logits.scalar_type()));
  }
  const auto ce = F::cross_entropy(logits, targets, ce_options);
  const auto valid = targets.ne(p.ignore_index);
  const auto safe = torch::where(valid, targets, torch::zeros_like(targets));
  // smooth_max - target_logit = logsumexp(beta z) / beta - z_y, evaluated on
  // the logits shifted by their row maximum (a constant, so detached): the
  // same function, without the rounding of logsumexp(beta z) at beta |z| up
  // to 1e7 (an absolute error of eps |z|), which k up to 1e4 would amplify
  // in the penalty's gradient past the tests' 1e-10 (found by rapidcheck:
  // beta 1e3, k 3e3, logits up to 622 gave this oracle a gradient error of
  // 7e-10 while the op's was 1e-15 against a 60-digit evaluation).
  const auto shifted = logits - std::get<0>(logits.detach().max(1, /*keepdim=*/true));
  const auto smooth_max = torch::logsumexp(p.beta * shifted, 1) / p.beta;
  const auto target_logit = shifted.gather(1, safe.unsqueeze(1)).squeeze(1);
  const auto penalty = (2 * torch::sigmoid(p.k * (smooth_max - target_logit)) - 1) / C;
  return torch::where(valid, ce + penalty, torch::zeros_like(ce));
}

inline torch::Tensor fair_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                               const FairLossParams& p, proxyloss::Reduction reduction) {
  const auto rows = fair_loss_rows(logits, targets, p);
  switch (reduction) {
    case proxyloss::Reduction::None:
      return rows;
    case proxyloss::Reduction::Sum:
      return rows.sum();
    default:
      return rows.sum() / targets.ne(p.ignore_index).sum();
  }
}

// With per-sample weights w [N] (proxyloss's definition; the reference has
// none): none w_i loss_i, sum their sum, mean their sum over the weight mass
// of the rows not ignored, or over 1 where that mass is exactly 0.
inline torch::Tensor weighted_fair_loss(const torch::Tensor& logits,
                                        const torch::Tensor& targets,
                                        const torch::Tensor& sample_weight,
                                        const FairLossParams& p,
                                        proxyloss::Reduction reduction) {
  const auto w = sample_weight.detach().to(logits.scalar_type());
  const auto weighted = fair_loss_rows(logits, targets, p) * w;
  switch (reduction) {
    case proxyloss::Reduction::None:
      return weighted;
    case proxyloss::Reduction::Sum:
      return weighted.sum();
    default: {
      const auto mass = (w * targets.ne(p.ignore_index).to(w.scalar_type())).sum();
      return weighted.sum() / torch::where(mass.gt(0), mass, torch::ones_like(mass));
    }
  }
}

} // namespace oracle
