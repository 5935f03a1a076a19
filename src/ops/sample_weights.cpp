#include "ops/sample_weights.h"

#include "ops/checked_values.h"

namespace proxyloss {
namespace ops_impl {

at::Tensor checked_sample_weight(const std::string& who, const at::Tensor& weight,
                                 at::ScalarType dtype) {
  const auto values = weight.detach();
  TORCH_CHECK_VALUE(at::isFloatingType(values.scalar_type()), who,
                    ": sample_weight must be floating point, got ", values.scalar_type());
  const auto bad = at::isfinite(values).logical_and(values.ge(0)).logical_not();
  // Checked in its own dtype, before the cast: a float64 -1e-300 that float32
  // would flush to -0 is still refused.
  return checked_values(values, bad, who + ": sample_weight must be finite and >= 0",
                        "rows")
      .to(dtype);
}

void check_pool_weights(const std::string& who, const at::Tensor& scores,
                        const at::Tensor& weights) {
  TORCH_CHECK_VALUE(weights.dim() == 1 && weights.size(0) == scores.size(0), who,
                    ": weights must be 1-D [M] with M = ", scores.size(0),
                    " (the rows of scores), got shape ", weights.sizes());
  TORCH_CHECK_VALUE(at::isFloatingType(weights.scalar_type()), who,
                    ": weights must be floating point, got ", weights.scalar_type());
  TORCH_CHECK_VALUE(weights.device() == scores.device(), who,
                    ": weights must be on the device of scores (", scores.device(),
                    "), got ", weights.device());
  TORCH_CHECK_VALUE(at::isfinite(weights).logical_and(weights.ge(0)).all().item<bool>(),
                    who, ": weights must be finite and >= 0");
}

at::Tensor weights_in_double(const optional<at::Tensor>& weights) {
  return weights.has_value() ? weights->to(at::kDouble).contiguous() : at::Tensor();
}

at::Tensor weighted_mean(const at::Tensor& weighted_sum, const at::Tensor& mass) {
  return weighted_sum / at::where(mass.gt(0), mass, at::ones_like(mass));
}

} // namespace ops_impl
} // namespace proxyloss
