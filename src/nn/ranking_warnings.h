// The once-per-instance warnings of the queued ranking losses, from the
// `events` their ops return (proxyloss::ops::RankingEvent).
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace proxyloss {
namespace nn_impl {

struct RankingWarnings {
  bool binary_labels = false;
  bool subsample = false;
  bool nonfinite = false;
};

// Reads `events` (one host synchronisation) and issues each warning that has
// not been issued yet, marking it in `issued`. `targets` (and queue_targets
// when defined) supply the unexpected binary labels the message names,
// `max_pool_size` the subsampling message. Returns
// whether the live batch held non-finite logits.
bool warn_ranking_events(const std::string& loss_name, const at::Tensor& events,
                         const at::Tensor& targets, const at::Tensor& queue_targets,
                         int64_t ignore_index, int64_t max_pool_size,
                         RankingWarnings& issued);

} // namespace nn_impl
} // namespace proxyloss
