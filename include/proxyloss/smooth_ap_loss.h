// SmoothAPLoss: 1 - Smooth-AP (Brown et al., ECCV 2020) over a ranking pool of
// the live batch plus a memory queue, one-vs-rest per class.
//
// For class c, positives P (rows whose target is c; in binary mode rows with
// a non-zero target) among the pool's M rows, scores s = logits[:, c]:
//   R_i  = 1 + sum_{j != i}         sigmoid((s_j - s_i) / tau)
//   R+_i = 1 + sum_{j != i, j in P} sigmoid((s_j - s_i) / tau)
//   AP_c = (1 / |P|) sum_{i in P} R+_i / R_i,      loss_c = 1 - AP_c.
// A class with no positive or no negative in the pool is degenerate: left out
// of mean/sum, NaN in reduction none and in forward_per_class.
// Computed by the op proxyloss::smooth_ap_loss (ops.h), whose fused
// per-class op never stores the [P, M] pairwise matrix.
#pragma once

#include "proxyloss/compat.h"
#include "proxyloss/queued_ranking_loss.h"
#include "proxyloss/reduction.h"

#include <torch/arg.h>
#include <torch/nn/pimpl.h>

namespace proxyloss {

struct SmoothAPLossOptions {
  /* implicit */ SmoothAPLossOptions(int64_t num_classes) : num_classes_(num_classes) {}

  // Number of classes C (logits are [N, C]); 1 selects binary mode, where
  // targets are 0/1.
  TORCH_ARG(int64_t, num_classes);
  // Rows kept in the circular memory queue; 0 disables it.
  TORCH_ARG(int64_t, queue_size) = 1024;
  // Sigmoid temperature tau > 0; smaller approximates the hard rank closer.
  TORCH_ARG(double, temperature) = 0.01;
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
  // Target value of rows to drop from the pool (padding).
  TORCH_ARG(int64_t, ignore_index) = -100;
  // Let the queue take in batches in eval mode too.
  TORCH_ARG(bool, update_queue_in_eval) = false;
  // Cap on the pool's rows: larger pools are subsampled (minimum quota per
  // observed class, rest uniform) with torch's RNG; warns once.
  TORCH_ARG(optional<int64_t>, max_pool_size) = c10::nullopt;
};

class SmoothAPLossImpl : public QueuedRankingLoss<SmoothAPLossImpl, SmoothAPLossOptions> {
 public:
  static constexpr const char* kName = "SmoothAPLoss";
  static constexpr bool kQueuesIid = false;
  using QueuedRankingLoss::QueuedRankingLoss;

  // The hooks of QueuedRankingLoss.
  void check_extra_options() const {}
  void print_extra_options(std::ostream& /*stream*/) const {}
  void describe_extra_options(distributed_impl::OptionList& /*options*/) const {}
  RankingLossResult call_op(const torch::Tensor& logits, const torch::Tensor& targets,
                            const RankingStepInputs& inputs) const;
};

TORCH_MODULE(SmoothAPLoss);

namespace functional {

// Options of the queue-less functional form.
struct SmoothAPLossFuncOptions {
  /* implicit */ SmoothAPLossFuncOptions(int64_t num_classes)
      : num_classes_(num_classes) {}
  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(double, temperature) = 0.01;
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
  TORCH_ARG(int64_t, ignore_index) = -100;
};

// 1 - Smooth-AP of the batch alone (no queue, no subsampling);
// sample_weight as SmoothAPLoss's forward (undefined: none).
torch::Tensor smooth_ap_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                             const SmoothAPLossFuncOptions& options,
                             const torch::Tensor& sample_weight = {});

} // namespace functional
} // namespace proxyloss
