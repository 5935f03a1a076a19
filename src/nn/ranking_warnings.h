// What the queued ranking losses' modules add around their ops: the
// once-per-instance warnings from the `events` the ops return
// (proxyloss::ops::RankingEvent), and error messages that name the loss.
#pragma once

#include "proxyloss/queued_ranking_loss.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

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

// Runs `call` (an op call) and rethrows its c10::Error with the loss's name
// in front, so that a bad input names the loss the user called as well as
// the op that found it: "SmoothAPLoss: proxyloss::ranking_pool: ...".
template <typename Call>
auto naming_the_loss(const std::string& loss_name, Call&& call) -> decltype(call()) {
  try {
    return call();
  } catch (const c10::ValueError& error) { // a bad argument: keep the kind
    TORCH_CHECK_VALUE(false, loss_name, ": ", error.what_without_backtrace());
    throw; // not reached: TORCH_CHECK_VALUE(false, ...) throws
  } catch (const c10::Error& error) {
    TORCH_CHECK(false, loss_name, ": ", error.what_without_backtrace());
    throw; // not reached: TORCH_CHECK(false, ...) throws
  }
}

} // namespace nn_impl
} // namespace proxyloss
