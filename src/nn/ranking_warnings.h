// What the queued ranking losses' modules add around their ops: the
// once-per-instance warnings from the `events` the ops return
// (proxyloss::ops::RankingEvent).
#pragma once

#include "nn/naming_the_loss.h"
#include "proxyloss/queued_ranking_loss.h"

#include <ATen/ATen.h>

#include <string>

namespace proxyloss {
namespace nn_impl {

// Reads `events` (one host synchronisation) and issues each warning that has
// not been issued yet, marking it in `issued`. `targets` (and queue_targets
// when defined) supply the unexpected binary labels the message names,
// `max_pool_size` the subsampling message. Returns
// whether the live batch held non-finite logits.
bool warn_ranking_events(const std::string& loss_name, const at::Tensor& events,
                         const at::Tensor& targets, const at::Tensor& queue_targets,
                         int64_t ignore_index, int64_t max_pool_size,
                         RankingWarningsIssued& issued);

} // namespace nn_impl
} // namespace proxyloss
