// Machinery shared by the queued ranking losses (SmoothAPLoss, and the other
// ranking losses that rank a pool of live rows plus a memory queue): option
// checks, the memory queue, pool assembly, reduction. Internal: the public
// names are the modules in proxyloss/.
#pragma once

#include "proxyloss/compat.h"
#include "proxyloss/reduction.h"

#include <torch/nn/module.h>
#include <torch/serialize/input-archive.h>

#include <functional>
#include <string>
#include <tuple>

namespace proxyloss {
namespace detail {

// The options every queued ranking loss has, as one value.
struct RankingConfig {
  std::string loss_name; // used in messages, e.g. "SmoothAPLoss"
  int64_t num_classes = 1;
  int64_t queue_size = 0;
  double temperature = 0.01;
  int64_t ignore_index = -100;
  optional<int64_t> max_pool_size;
};

// Throws c10::Error naming the first bad option and its value.
void check_ranking_config(const RankingConfig& config);
void check_temperature(const std::string& loss_name, double temperature);

// The circular memory queue: handles to three buffers registered on the
// owning module (so checkpoints and clone() carry them):
//   queue_logits [Q, C] (the logits' dtype), queue_targets [Q] int64 (empty
//   slots hold ignore_index), queue_ptr [1] int64 (next slot to write).
class MemoryQueue {
 public:
  MemoryQueue() = default;
  // Registers the buffers on `owner` (nothing when queue_size == 0).
  MemoryQueue(torch::nn::Module& owner, int64_t queue_size, int64_t num_classes,
              int64_t ignore_index);

  int64_t capacity() const {
    return capacity_;
  }
  void reset();
  // Makes the buffers follow the live logits' dtype and device.
  void follow(const torch::Tensor& logits);
  // Gives queue_targets and queue_ptr back their int64 dtype after a
  // module-wide to(dtype), which LibTorch applies to every buffer (the
  // values are whole numbers far below 2^53, so the round trip is exact).
  void keep_integer_dtypes();
  // Writes a detached copy of the batch at the pointer, wrapping around; a
  // batch of at least `capacity()` rows replaces the queue with its last rows
  // and resets the pointer.
  void enqueue(const torch::Tensor& logits, const torch::Tensor& targets);
  // After a checkpoint was read into the buffers: throws c10::Error unless
  // they are a queue of this one's shape (queue_size, num_classes), with
  // floating logits, integer targets, finite logits in every row whose target
  // is not ignore_index, and a pointer in [0, queue_size). A
  // module without a queue rejects a checkpoint that has one.
  void check_loaded(const std::string& loss_name,
                    torch::serialize::InputArchive& archive) const;

  torch::Tensor logits;
  torch::Tensor targets;
  torch::Tensor ptr;

 private:
  int64_t capacity_ = 0;
  int64_t num_classes_ = 1;
  int64_t ignore_index_ = -100;
};

// What a loss computes on the pool: per-class loss [C] (any value where
// invalid) and valid [C] bool, from pool logits [M, C] and op labels [M]
// (row m is a positive of class labels[m] when in [0, C), else a negative).
struct PerClass {
  torch::Tensor loss;
  torch::Tensor valid;
};
using PerClassFn = std::function<PerClass(const torch::Tensor& pool_logits,
                                          const torch::Tensor& labels)>;

// Positives per class of op labels: [C] int64.
torch::Tensor positives_per_class(const torch::Tensor& labels, int64_t num_classes);

// The forward flow of a queued ranking loss. Owned by the module; rebuilt by
// its reset().
class QueuedRanking {
 public:
  QueuedRanking() = default;
  QueuedRanking(RankingConfig config, MemoryQueue queue);

  // (loss, per_class, valid) as the contract's forward_per_class.
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> forward(
      const torch::Tensor& logits, const torch::Tensor& targets,
      const reduction_t& reduction, bool update_queue, const PerClassFn& per_class);

  MemoryQueue& queue() {
    return queue_;
  }
  const RankingConfig& config() const {
    return config_;
  }
  // Takes options edited since construction. The ones that shape the state
  // (num_classes, queue_size, ignore_index) must be unchanged: editing those
  // needs the module's reset(), which rebuilds the queue.
  void update_config(const RankingConfig& config);

 private:
  torch::Tensor checked_targets(const torch::Tensor& logits,
                                const torch::Tensor& targets);
  std::tuple<torch::Tensor, torch::Tensor> subsample(const torch::Tensor& logits,
                                                     const torch::Tensor& targets);

  RankingConfig config_;
  MemoryQueue queue_;
  bool warned_binary_labels_ = false;
  bool warned_subsample_ = false;
  bool warned_nonfinite_ = false;
};

} // namespace detail
} // namespace proxyloss
