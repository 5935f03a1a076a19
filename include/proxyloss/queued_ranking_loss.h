// The module half shared by the queued ranking losses (SmoothAPLoss,
// RecallAtQuantileLoss, PAUCAtBudgetLoss): options, the memory queue's
// buffers, reset(), checkpoints, once-per-instance warnings, and the
// ranking-loss interfaces. Its forward calls the loss's op
// (include/proxyloss/ops.h), then pushes the batch into the queue with
// proxyloss::queue_push_; nothing is computed here.
//
// A loss derives from QueuedRankingLoss<Loss, LossOptions> and provides
//   static constexpr const char* kName;                 // "SmoothAPLoss"
//   static constexpr bool kQueuesIid;                    // keeps queue_iid
//   void check_extra_options() const;                   // its own options
//   void print_extra_options(std::ostream&) const;       // after num_classes
//   // its own options, which the ranks of a process group must agree on
//   void describe_extra_options(distributed_impl::OptionList&) const;
//   RankingLossResult call_op(logits, targets, const RankingStepInputs&);
// The member definitions are compiled into the library for the three losses.
//
// Handed a process group (set_process_group, include/proxyloss/distributed.h)
// of more than one rank, forward computes the loss of every rank's batch
// concatenated in rank order (sample_weight and iid_mask with their rows) and
// queues that global batch on every rank.
#pragma once

#include "proxyloss/compat.h"
#include "proxyloss/distributed.h"
#include "proxyloss/per_class_loss.h"
#include "proxyloss/ranking_loss_control.h"
#include "proxyloss/sample_weighted_loss.h"

#include <torch/nn/cloneable.h>
#include <torch/nn/modules/common.h>
#include <torch/nn/modules/container/any_value.h>
#include <torch/serialize/input-archive.h>

#include <ostream>
#include <tuple>

namespace proxyloss {

namespace distributed_impl {
class OptionList;
} // namespace distributed_impl

// (loss, per_class [C], valid [C] bool, events [4] bool), as the ranking ops
// return it.
using RankingLossResult =
    std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor>;

// What a ranking loss's op gets besides the live batch: the queue's buffers
// (nullopt without a queue; queue_weight only while the loss is weighted,
// queue_iid only for a loss that keeps it) and the batch's own per-row
// inputs (nullopt when not given).
struct RankingStepInputs {
  optional<torch::Tensor> queue_logits;
  optional<torch::Tensor> queue_targets;
  optional<torch::Tensor> queue_weight;
  optional<torch::Tensor> queue_iid;
  optional<torch::Tensor> sample_weight;
  optional<torch::Tensor> iid_mask;
  // This rank's own targets when the batch was gathered across a process
  // group (the op gets the global batch); nullopt otherwise.
  optional<torch::Tensor> local_targets;
};

// Which once-per-instance warnings a ranking loss has issued.
struct RankingWarningsIssued {
  bool binary_labels = false;
  bool subsample = false;
  bool nonfinite = false;
  bool degenerate = false;
};

template <typename Derived, typename Options>
class QueuedRankingLoss : public torch::nn::Cloneable<Derived>,
                          public RankingLossControl,
                          public PerClassLoss,
                          public SampleWeightedLoss,
                          public DistributedLoss {
 public:
  explicit QueuedRankingLoss(Options options);

  // Validates the options and (re)creates the queue buffers.
  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  // logits [N, C] floating, targets [N] or [N, 1] integer. Scalar for mean
  // and sum, [C] for none. The batch joins the queue afterwards in training
  // mode (or with update_queue_in_eval), unless it holds non-finite logits.
  // sample_weight: undefined (unweighted), or [N] floating, finite, >= 0
  // (detached): each positive's term of the loss is weighted (the ranks and
  // thresholds stay unweighted), a class whose positives weigh 0 in the
  // pool is degenerate, and the weights join the queue with their rows
  // (queue_weight). Once the queue holds weighted rows, a call without
  // weights weighs its own rows 1 and the queued rows as stored.
  torch::Tensor forward(const torch::Tensor& logits, const torch::Tensor& targets,
                        const torch::Tensor& sample_weight = {});

  // (loss, per_class [C] with NaN for degenerate classes, valid [C] bool),
  // from the same single pass as forward.
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> forward_per_class(
      const torch::Tensor& logits, const torch::Tensor& targets,
      const torch::Tensor& sample_weight = {}) override;

  // module->to(dtype) converts queue_logits and queue_weight only;
  // queue_targets and queue_ptr stay int64 and queue_iid bool (LibTorch's
  // Module::to would convert every buffer).
  using torch::nn::Module::to;
  void to(torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override;

  // torch::load: the queue of the checkpoint, checked against the options,
  // or a c10::Error and the module unchanged.
  void load(torch::serialize::InputArchive& archive) override;

  void reset_queue() override;
  double temperature() const override;
  void set_temperature(double temperature) override;

  Options options;

  // The memory queue, registered as buffers of the same names (undefined
  // when queue_size is 0): queue_logits [queue_size, C] (float32 unless the
  // module is converted, as the seed's buffer), queue_targets [queue_size]
  // int64 (empty slots hold ignore_index), queue_ptr [1] int64,
  // queue_weight [queue_size] (the rows' sample weights, 1 for rows queued
  // without; converted with queue_logits). A checkpoint written before
  // queue_weight existed loads with every weight 1.
  torch::Tensor queue_logits;
  torch::Tensor queue_targets;
  torch::Tensor queue_ptr;
  torch::Tensor queue_weight;
  // Only for a loss with kQueuesIid (PAUCAtBudgetLoss): queue_iid
  // [queue_size] bool, each row's iid flag (true for rows queued without an
  // iid_mask; a checkpoint without it loads with every flag true).
  torch::Tensor queue_iid;

  // AnyModule (LossWarmupWrapper) may call forward with two arguments.
  FORWARD_HAS_DEFAULT_ARGS({2, torch::nn::AnyValue(torch::Tensor())})

 protected:
  // forward_per_class with the batch's iid_mask (undefined: none): the
  // op's call, the warnings, the queue update.
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> step(
      const torch::Tensor& logits, const torch::Tensor& targets,
      const torch::Tensor& sample_weight, const torch::Tensor& iid_mask);

  RankingWarningsIssued warned_;

 private:
  void check_options() const;
  // The global batch over process_group() (gathers() is true): logits,
  // targets, sample_weight, iid_mask and the subsampling seed the ranks
  // agreed on (with max_pool_size).
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor,
             optional<int64_t>>
  gather(const torch::Tensor& logits, const torch::Tensor& targets,
         const torch::Tensor& sample_weight, const torch::Tensor& iid_mask,
         bool updates_queue) const;

  // What the queue buffers were built for (reset() rebuilds them).
  int64_t built_num_classes_ = 0;
  int64_t built_queue_size_ = 0;
  int64_t built_ignore_index_ = 0;
  // Whether queue_weight may hold a weight other than 1 (a weighted batch
  // was queued, or a checkpoint loaded one): the loss is computed weighted
  // then, and every batch writes its weights. Invariant: while false, every
  // stored weight is 1. Kept on the host, so that unweighted training never
  // reads or writes the buffer; the numbers do not depend on it.
  bool queue_weighted_ = false;
};

} // namespace proxyloss
