// Distributed training: a loss that is handed a c10d process group computes,
// on every rank, the loss of the concatenation of every rank's batch.
//
//   auto group = ...;  // c10::intrusive_ptr<c10d::ProcessGroup>, e.g. Gloo
//                      // (proxyloss/compat_c10d.h: make_gloo_process_group)
//   proxyloss::SmoothAPLoss loss(proxyloss::SmoothAPLossOptions(10));
//   loss->set_process_group(group);
//
// SmoothAPLoss, RecallAtQuantileLoss, PAUCAtBudgetLoss, SigmoidFocalLoss and
// SoftmaxFocalLoss implement DistributedLoss; LossWarmupWrapper's
// set_process_group hands the group to its main loss. Without a group (the
// default), or with a group of one rank, a loss computes its own batch.
//
// With a group of R > 1 ranks, each forward, on every rank:
// 1. one header all_gather (int64): the row count, whether the call is well
//    formed (every tensor has the rows of the logits), a digest of the
//    options and of which optional tensors are passed (with their dtypes and
//    trailing shapes), the queue's write pointer and an exact integer
//    checksum of its contents, and (with max_pool_size) a subsampling seed.
//    When the ranks disagree, every rank throws the same c10::Error, naming
//    the ranks and what differs, so that no rank waits in a later collective
//    and no rank ranks a different pool;
// 2. the rows (logits, targets, sample_weight, iid_mask) padded to the
//    largest batch, all_gathered and concatenated in rank order. The
//    gradient reaching this rank's logits is its slice of the global
//    gradient times R: averaged over the ranks, as DistributedDataParallel
//    (or an all_reduce of the gradients divided by R) does, every parameter
//    gradient equals the single-process gradient on the concatenated batch.
//    (Summed instead of averaged gradients would be R times too large.)
// The loss is then computed on the global batch (the same value on every
// rank) and the global batch is queued on every rank in rank order, so the
// queue buffers stay bitwise identical across ranks. With max_pool_size
// every rank subsamples with rank 0's seed (each rank draws one seed per call
// from the default generator of the logits' device). Every rank must call
// the loss; a rank that does not leaves the others in the header's
// all_gather until the group's timeout, whose error propagates as the
// group throws it, as do all errors of the group.
//
// This header names c10d::ProcessGroup without including the c10d headers:
// only code that builds a group needs them. The library is built with this
// support when LibTorch ships the c10d headers (PROXYLOSS_DISTRIBUTED);
// proxyloss::distributed_supported() tells. Without it, handing a group of
// more than one rank to a loss throws.
#pragma once

#include <c10/util/intrusive_ptr.h>

namespace c10d {
class ProcessGroup;
} // namespace c10d

namespace proxyloss {

using ProcessGroupPtr = c10::intrusive_ptr<c10d::ProcessGroup>;

// Whether this build of the library gathers across processes.
bool distributed_supported();

// A loss that may gather its batch across the ranks of a process group.
class DistributedLoss {
 public:
  DistributedLoss();
  DistributedLoss(const DistributedLoss& other);
  DistributedLoss& operator=(const DistributedLoss& other);
  virtual ~DistributedLoss();

  // The group to gather over (null: none, the default). A copy of the
  // module (clone()) shares it. Every rank must set a group of the same
  // ranks on its copy of the loss.
  virtual void set_process_group(const ProcessGroupPtr& group);
  const ProcessGroupPtr& process_group() const;
  // Whether forward gathers: a group of more than one rank is set.
  bool gathers() const;

 private:
  ProcessGroupPtr group_;
};

} // namespace proxyloss
