#include "metrics/metric_inputs.h"

#include "common/input_checks.h"

#include <c10/util/Exception.h>

namespace proxyloss {
namespace metrics {
namespace detail {

BinaryInputs binary_inputs(const std::string& metric, const torch::Tensor& scores_in,
                           const torch::Tensor& labels_in) {
  TORCH_CHECK_VALUE(scores_in.defined() && labels_in.defined(), metric,
                    ": scores and labels must be defined tensors");
  auto scores = scores_in;
  if (scores.dim() == 2 && scores.size(1) == 1) {
    scores = scores.squeeze(1);
  }
  TORCH_CHECK_VALUE(scores.dim() == 1, metric,
                    ": scores must have shape [N] or [N, 1], got ", scores_in.sizes());
  TORCH_CHECK_VALUE(at::isFloatingType(scores.scalar_type()), metric,
                    ": scores must be floating point, got ", scores.scalar_type());
  auto labels = labels_in;
  if (labels.dim() == 2 && labels.size(1) == 1) {
    labels = labels.squeeze(1);
  }
  TORCH_CHECK_VALUE(labels.dim() == 1 && labels.size(0) == scores.size(0), metric,
                    ": labels must have shape [N] with N = ", scores.size(0), ", got ",
                    labels_in.sizes());
  // Integer or bool: non-zero = positive. Floating: exactly 0 or 1 (as
  // scikit-learn reads a float label vector; 0.5 is not a binary label).
  const bool floating = at::isFloatingType(labels.scalar_type());
  TORCH_CHECK_VALUE(
      floating || at::isIntegralType(labels.scalar_type(), /*includeBool=*/true), metric,
      ": labels must be integer or bool (non-zero = positive) or floating 0/1, "
      "got ",
      labels.scalar_type());
  if (floating) {
    const auto bad = labels.ne(0).logical_and(labels.ne(1));
    TORCH_CHECK_VALUE(!bad.any().item<bool>(), metric,
                      ": floating labels must be 0 or 1, got ",
                      common::first_values(labels.masked_select(bad)));
  }
  const auto s = scores.detach().to(torch::kCPU, torch::kDouble).contiguous();
  TORCH_CHECK_VALUE(torch::isfinite(s).all().item<bool>(), metric,
                    ": scores must be finite (found NaN or inf)");
  const auto l = labels.to(torch::kCPU).ne(0).to(torch::kChar).contiguous();
  BinaryInputs out;
  out.scores.assign(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
  out.positive.assign(l.data_ptr<int8_t>(), l.data_ptr<int8_t>() + l.numel());
  for (const char p : out.positive) {
    out.positives += p;
  }
  return out;
}

std::pair<torch::Tensor, torch::Tensor> multiclass_inputs(const std::string& metric,
                                                          const torch::Tensor& probs,
                                                          const torch::Tensor& targets) {
  TORCH_CHECK_VALUE(probs.defined() && targets.defined(), metric,
                    ": probs and targets must be defined tensors");
  TORCH_CHECK_VALUE(probs.dim() == 2 && probs.size(1) > 0, metric,
                    ": probs must have shape [N, C], got ", probs.sizes());
  TORCH_CHECK_VALUE(at::isFloatingType(probs.scalar_type()), metric,
                    ": probs must be floating point, got ", probs.scalar_type());
  TORCH_CHECK_VALUE(targets.dim() == 1 && targets.size(0) == probs.size(0), metric,
                    ": targets must have shape [N] with N = ", probs.size(0), ", got ",
                    targets.sizes());
  TORCH_CHECK_VALUE(at::isIntegralType(targets.scalar_type(), /*includeBool=*/false),
                    metric, ": targets must be an integer tensor, got ",
                    targets.scalar_type());
  TORCH_CHECK_VALUE(probs.size(0) > 0, metric, ": needs at least one sample");
  const auto q = probs.detach().to(torch::kCPU, torch::kDouble).contiguous();
  const auto y = targets.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t C = q.size(1);
  TORCH_CHECK_VALUE(y.ge(0).logical_and(y.lt(C)).all().item<bool>(), metric,
                    ": targets must be in [0, ", C, ")");
  TORCH_CHECK_VALUE(torch::isfinite(q).all().item<bool>() && q.ge(0).all().item<bool>(),
                    metric, ": probs must be finite and >= 0");
  return {q, y};
}

} // namespace detail
} // namespace metrics
} // namespace proxyloss
