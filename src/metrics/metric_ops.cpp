// The metrics as ops (torch.ops.proxyloss.average_precision, ...), so that
// the Python package's proxyloss.metrics computes with the same code as
// proxyloss::metrics in C++. CompositeImplicitAutograd: they read their
// inputs on the CPU in double and return no gradient.
#include "proxyloss/metrics.h"

#include <c10/util/string_view.h>
#include <torch/library.h>

#include <string>

namespace proxyloss {
namespace metrics {
namespace {

double recall_at_quantile_op(const at::Tensor& scores, const at::Tensor& labels,
                             double quantile, c10::string_view interpolation) {
  return recall_at_quantile(scores, labels, quantile, std::string(interpolation));
}

} // namespace
} // namespace metrics
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeImplicitAutograd, m) {
  namespace metrics = proxyloss::metrics;
  m.impl("average_precision", &metrics::average_precision);
  m.impl("average_precision_per_class", &metrics::average_precision_per_class);
  m.impl("roc_auc", &metrics::roc_auc);
  m.impl("recall_at_quantile", &metrics::recall_at_quantile_op);
  m.impl("penalized_brier_score", &metrics::penalized_brier_score);
  m.impl("penalized_log_loss", &metrics::penalized_log_loss);
}
