// The global batch of a loss handed a process group (include/proxyloss/
// distributed.h): one header all_gather that checks that the ranks agree,
// then every rank's rows concatenated in rank order, the logits with the
// gradient rule of gathered_rows_backward. The one implementation behind every
// module that gathers (the queued ranking losses, the focal losses), after
// python/proxyloss/_distributed.py, whose behaviour it reproduces.
#pragma once

#include "proxyloss/compat.h"
#include "proxyloss/distributed.h"

#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace proxyloss {
namespace distributed_impl {

// What every rank must agree on: (name, value as printed) pairs, in order.
class OptionList {
 public:
  OptionList& add(const std::string& name, const std::string& value);
  OptionList& add(const std::string& name, const char* value);
  OptionList& add(const std::string& name, double value); // shortest round trip
  OptionList& add(const std::string& name, int64_t value);
  OptionList& add(const std::string& name, bool value);
  OptionList& add(const std::string& name, const optional<int64_t>& value); // None
  // A tensor option's values (e.g. the focal alpha), "None" when undefined.
  OptionList& add_values(const std::string& name, const at::Tensor& value);

  const std::vector<std::pair<std::string, std::string>>& entries() const {
    return entries_;
  }

 private:
  std::vector<std::pair<std::string, std::string>> entries_;
};

// One tensor of the batch: its label in messages ("logits") and the tensor,
// undefined when the caller did not pass it. The first is the logits, whose
// rows the others must have.
struct BatchTensor {
  std::string label;
  at::Tensor tensor;
};

// The queue, whose pointer and contents every rank must agree on.
struct QueueState {
  at::Tensor ptr;
  std::vector<at::Tensor> buffers; // [Q, ...] each
};

struct GatheredBatch {
  // The tensors in the order given, each every rank's rows in rank order
  // (undefined stays undefined); the logits keep their gradient.
  std::vector<at::Tensor> tensors;
  // Rank 0's seed when asked for one.
  optional<int64_t> seed;
};

// Gathers `tensors` over `group` (of more than one rank), after checking,
// with one header all_gather, that the ranks agree on `options`, on which
// tensors they pass (dtypes and trailing shapes), on the queue (pointer and
// an exact checksum of its buffers) and that every rank's call is well
// formed; otherwise every rank throws the same c10::Error, naming `loss`.
// bool tensors travel as uint8 and come back bool. With `shared_seed` every
// rank draws a seed from the default generator of the logits' device and
// rank 0's is returned. Errors of the group propagate.
GatheredBatch gather_batch(const ProcessGroupPtr& group, const std::string& loss,
                           const OptionList& options,
                           const std::vector<BatchTensor>& tensors,
                           const optional<QueueState>& queue, bool shared_seed);

// Where this rank's rows lie in the gathered logits.
struct GatheredRows {
  int64_t start = 0;
  int64_t rows = 0;
  int64_t world_size = 1;
};

// The gradient of this rank's logits from the gradient of the gathered ones:
// this rank's slice times the world size, so that the average over the
// ranks (DistributedDataParallel's) of the parameter gradients is the
// single-process gradient on the concatenated batch.
at::Tensor gathered_rows_backward(const GatheredRows& where, const at::Tensor& grad);

// Seeds the default generator of the device of `logits` with `seed` while it
// is alive (when `seed` is given; otherwise it does nothing, and `logits` may
// be undefined), and restores its state after.
class SeededDefaultGenerator {
 public:
  SeededDefaultGenerator(const optional<int64_t>& seed, const at::Tensor& logits);
  ~SeededDefaultGenerator();
  SeededDefaultGenerator(const SeededDefaultGenerator&) = delete;
  SeededDefaultGenerator& operator=(const SeededDefaultGenerator&) = delete;

 private:
  bool active_ = false;
  c10::Device device_ = c10::kCPU;
  at::Tensor state_;
};

} // namespace distributed_impl
} // namespace proxyloss
