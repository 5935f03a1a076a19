// proxyloss::queue_push_: writes a detached copy of the live batch into the
// circular queue buffers, in place, on any device and without a host
// synchronisation (the slots are computed on the device from queue_ptr).
//   N < Q:  rows go to slots (ptr + i) mod Q, then ptr = (ptr + N) mod Q;
//   N >= Q: the last Q rows replace the queue in order and ptr = 0.
// Rows are stored in the queue's own dtype (float32 unless the module was
// converted), as the seed's buffers store them.
#include "common/input_checks.h"
#include "ops/ranking.h"

#include <torch/library.h>

#include <algorithm>

namespace proxyloss {
namespace ops_impl {
namespace {

constexpr const char* kOp = "proxyloss::queue_push_";

void check_queue_buffers(const at::Tensor& queue_logits, const at::Tensor& queue_targets,
                         const at::Tensor& queue_ptr) {
  TORCH_CHECK_VALUE(
      queue_logits.dim() == 2 && at::isFloatingType(queue_logits.scalar_type()), kOp,
      ": queue_logits must be a floating [Q, C] tensor, got shape ", queue_logits.sizes(),
      " and dtype ", queue_logits.scalar_type());
  const int64_t Q = queue_logits.size(0);
  TORCH_CHECK_VALUE(queue_targets.dim() == 1 && queue_targets.size(0) == Q &&
                        at::isIntegralType(queue_targets.scalar_type(), false),
                    kOp, ": queue_targets must be an integer [Q] tensor with Q = ", Q,
                    ", got shape ", queue_targets.sizes(), " and dtype ",
                    queue_targets.scalar_type());
  TORCH_CHECK_VALUE(
      queue_ptr.numel() == 1 && at::isIntegralType(queue_ptr.scalar_type(), false), kOp,
      ": queue_ptr must be one integer, got shape ", queue_ptr.sizes(), " and dtype ",
      queue_ptr.scalar_type());
  common::check_same_device(kOp, queue_logits, queue_targets, "queue_targets");
  common::check_same_device(kOp, queue_logits, queue_ptr, "queue_ptr");
}

} // namespace

void queue_push_(at::Tensor& queue_logits, at::Tensor& queue_targets,
                 at::Tensor& queue_ptr, const at::Tensor& logits,
                 const at::Tensor& targets) {
  check_queue_buffers(queue_logits, queue_targets, queue_ptr);
  common::check_defined(kOp, logits, "logits");
  TORCH_CHECK_VALUE(logits.dim() == 2 && logits.size(1) == queue_logits.size(1), kOp,
                    ": logits must have shape [N, ", queue_logits.size(1),
                    "] (the columns of queue_logits), got ", logits.sizes());
  const auto labels = common::checked_class_targets(kOp, logits, targets,
                                                    /*allow_column=*/true,
                                                    /*allow_bool=*/true);
  const int64_t Q = queue_logits.size(0);
  const int64_t N = logits.size(0);
  if (Q == 0 || N == 0) {
    return;
  }
  at::NoGradGuard no_grad;
  const auto device = queue_logits.device();
  const auto rows = logits.detach().to(device, queue_logits.scalar_type());
  const auto row_labels = labels.to(device, queue_targets.scalar_type());
  if (N >= Q) {
    queue_logits.copy_(rows.narrow(0, N - Q, Q));
    queue_targets.copy_(row_labels.narrow(0, N - Q, Q));
    queue_ptr.zero_();
    return;
  }
  if (queue_ptr.is_cpu()) {
    // The pointer is on the host: two contiguous copies (reading it costs
    // nothing here). A pointer outside [0, Q) is reduced modulo Q, as below.
    const int64_t start = ((queue_ptr.item<int64_t>() % Q) + Q) % Q;
    const int64_t head = std::min(N, Q - start);
    queue_logits.narrow(0, start, head).copy_(rows.narrow(0, 0, head));
    queue_targets.narrow(0, start, head).copy_(row_labels.narrow(0, 0, head));
    if (N > head) {
      queue_logits.narrow(0, 0, N - head).copy_(rows.narrow(0, head, N - head));
      queue_targets.narrow(0, 0, N - head).copy_(row_labels.narrow(0, head, N - head));
    }
    queue_ptr.fill_((start + N) % Q);
    return;
  }
  // On a device: the slots are computed there, no synchronisation.
  const auto start = queue_ptr.reshape({1}).to(at::kLong);
  const auto slots = (start + at::arange(N, start.options())).remainder(Q);
  queue_logits.index_copy_(0, slots, rows);
  queue_targets.index_copy_(0, slots, row_labels);
  queue_ptr.copy_((start + N).remainder(Q).reshape(queue_ptr.sizes()));
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("queue_push_", &proxyloss::ops_impl::queue_push_);
}
