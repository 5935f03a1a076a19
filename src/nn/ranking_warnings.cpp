#include "nn/ranking_warnings.h"

#include "common/input_checks.h"
#include "proxyloss/ops.h"

#include <c10/util/Exception.h>

namespace proxyloss {
namespace nn_impl {
namespace {

// The targets other than 0, 1 and ignore_index among the live batch and the
// queue (only for the message; the op already decided).
at::Tensor unexpected_binary_labels(const at::Tensor& targets,
                                    const at::Tensor& queue_targets,
                                    int64_t ignore_index) {
  auto all = targets.reshape({-1}).to(at::kLong);
  if (queue_targets.defined()) {
    all = at::cat({all, queue_targets.to(all.device(), at::kLong)});
  }
  return all.masked_select(
      all.ne(0).logical_and(all.ne(1)).logical_and(all.ne(ignore_index)));
}

} // namespace

bool warn_ranking_events(const std::string& loss_name, const at::Tensor& events,
                         const at::Tensor& targets, const at::Tensor& queue_targets,
                         int64_t ignore_index, int64_t max_pool_size,
                         RankingWarningsIssued& issued) {
  const auto flags = events.to(at::kCPU);
  const bool* happened = flags.data_ptr<bool>();
  if (happened[ops::kNonFiniteLogits] && !issued.nonfinite) {
    TORCH_WARN(loss_name,
               ": non-finite logits (NaN or inf) in the ranking pool; the loss "
               "of the affected classes is NaN and the batch is not added to the "
               "queue. (This warning is shown once per instance.)");
    issued.nonfinite = true;
  }
  if (happened[ops::kSubsampled] && !issued.subsample) {
    TORCH_WARN(loss_name, ": the pool exceeds max_pool_size=", max_pool_size,
               "; applying minimum-quota subsampling, so the loss is now a stochastic "
               "approximation. (This warning is shown once per instance.)");
    issued.subsample = true;
  }
  if (happened[ops::kUnexpectedBinaryLabels] && !issued.binary_labels) {
    TORCH_WARN(loss_name,
               ": binary mode (num_classes=1) expects targets in {0, 1}, but "
               "found values ",
               common::first_values(
                   unexpected_binary_labels(targets, queue_targets, ignore_index)),
               "; non-zero values are treated as positive. (This warning is shown "
               "once per instance.)");
    issued.binary_labels = true;
  }
  return happened[ops::kNonFiniteLogits];
}

} // namespace nn_impl
} // namespace proxyloss
