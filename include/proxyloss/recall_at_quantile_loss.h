// RecallAtQuantileLoss: 1 - soft recall of the positives above the score
// threshold of the top `quantile` fraction of the pool (live batch + memory
// queue), one-vs-rest per class.
//
// For class c with scores s = logits[:, c] over the pool's M rows and
// positives P (target c; in binary mode a non-zero target):
//   theta_c = quantile(s, 1 - quantile)        detached: no gradient
//   loss_c  = 1 - (1 / |P|) sum_{i in P} sigmoid((s_i - theta_c) / tau)
// theta is found by selection in O(M) (proxyloss::selection_quantile) and
// equals torch::quantile with the chosen interpolation; the gradient flows
// through the positives' scores only. A class with no positive in the pool
// is degenerate: left out of mean/sum, NaN in reduction none and in
// forward_per_class.
#pragma once

#include "proxyloss/compat.h"
#include "proxyloss/queued_ranking_loss.h"
#include "proxyloss/reduction.h"

#include <torch/arg.h>
#include <torch/nn/pimpl.h>

#include <string>

namespace proxyloss {

struct RecallAtQuantileLossOptions {
  /* implicit */ RecallAtQuantileLossOptions(int64_t num_classes)
      : num_classes_(num_classes) {}

  // Number of classes C (logits are [N, C]); 1 selects binary mode.
  TORCH_ARG(int64_t, num_classes);
  // Top fraction of the pool whose recall is optimised, in (0, 1).
  TORCH_ARG(double, quantile) = 0.005;
  TORCH_ARG(int64_t, queue_size) = 1024;
  TORCH_ARG(double, temperature) = 0.01;
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
  TORCH_ARG(int64_t, ignore_index) = -100;
  TORCH_ARG(bool, update_queue_in_eval) = false;
  // How the threshold interpolates between pool scores, as torch::quantile:
  // "linear", "lower", "higher", "nearest" or "midpoint".
  TORCH_ARG(std::string, interpolation) = "higher";
  TORCH_ARG(optional<int64_t>, max_pool_size) = c10::nullopt;
};

class RecallAtQuantileLossImpl
    : public QueuedRankingLoss<RecallAtQuantileLossImpl, RecallAtQuantileLossOptions> {
 public:
  static constexpr const char* kName = "RecallAtQuantileLoss";
  static constexpr bool kQueuesIid = false;
  using QueuedRankingLoss::QueuedRankingLoss;

  // The hooks of QueuedRankingLoss: quantile in (0, 1) and a torch::quantile
  // interpolation name are checked with the other options.
  void check_extra_options() const;
  void print_extra_options(std::ostream& stream) const;
  void describe_extra_options(distributed_impl::OptionList& options) const;
  RankingLossResult call_op(const torch::Tensor& logits, const torch::Tensor& targets,
                            const RankingStepInputs& inputs) const;
};

TORCH_MODULE(RecallAtQuantileLoss);

} // namespace proxyloss
