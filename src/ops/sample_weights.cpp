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

at::Tensor weighted_mean(const at::Tensor& weighted_sum, const at::Tensor& mass) {
  return weighted_sum / at::where(mass.gt(0), mass, at::ones_like(mass));
}

} // namespace ops_impl
} // namespace proxyloss
