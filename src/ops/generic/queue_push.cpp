// proxyloss::queue_push_: writes a detached copy of the live batch into the
// circular queue buffers, in place, on any device and without a host
// synchronisation (the slots are computed on the device from queue_ptr).
//   N < Q:  rows go to slots (ptr + i) mod Q, then ptr = (ptr + N) mod Q;
//   N >= Q: the last Q rows replace the queue in order and ptr = 0.
// Rows are stored in the queue's own dtype (float32 unless the module was
// converted), as the seed's buffers store them. The optional per-row
// buffers (the successor's): queue_weight [Q] floating gets sample_weight
// [N] (finite, >= 0; 1 where not given), queue_iid [Q] bool or uint8 gets
// iid_mask [N] as 0/1 (1 where not given); each moves with its rows.
#include "common/input_checks.h"
#include "ops/ranking.h"

#include <torch/library.h>

#include <algorithm>
#include <vector>

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

// One queue buffer and the batch's rows for it (in its dtype, on its device).
struct RowsFor {
  at::Tensor buffer; // [Q, ...]
  at::Tensor rows;   // [N, ...]
};

// The optional per-row buffer `queue_values` [Q] and the batch's values for
// it: `values` [N] when given, else `fill`. nullopt when the buffer is
// absent (then `values` must be absent too).
optional<RowsFor> optional_rows(const optional<at::Tensor>& queue_values,
                                const optional<at::Tensor>& values, int64_t N,
                                const at::Tensor& queue_logits, const char* buffer_name,
                                const char* values_name, double fill) {
  if (!queue_values.has_value()) {
    TORCH_CHECK_VALUE(!values.has_value(), kOp, ": ", values_name, " needs ", buffer_name,
                      " (the queue buffer that stores it)");
    return c10::nullopt;
  }
  const auto& buffer = *queue_values;
  TORCH_CHECK_VALUE(
      buffer.dim() == 1 && buffer.size(0) == queue_logits.size(0), kOp, ": ", buffer_name,
      " must have shape [Q] with Q = ", queue_logits.size(0), ", got ", buffer.sizes());
  common::check_same_device(kOp, queue_logits, buffer, buffer_name);
  if (!values.has_value()) {
    return RowsFor{buffer, at::full({N}, fill, buffer.options())};
  }
  TORCH_CHECK_VALUE(values->dim() == 1 && values->size(0) == N, kOp, ": ", values_name,
                    " must have shape [N] with N = ", N, " (the rows of logits), got ",
                    values->sizes());
  return RowsFor{buffer, values->detach().to(buffer.device(), buffer.scalar_type())};
}

} // namespace

void queue_push_(at::Tensor& queue_logits, at::Tensor& queue_targets,
                 at::Tensor& queue_ptr, const at::Tensor& logits,
                 const at::Tensor& targets, const optional<at::Tensor>& queue_weight,
                 const optional<at::Tensor>& sample_weight,
                 const optional<at::Tensor>& queue_iid,
                 const optional<at::Tensor>& iid_mask) {
  check_queue_buffers(queue_logits, queue_targets, queue_ptr);
  common::check_defined(kOp, logits, "logits");
  TORCH_CHECK_VALUE(logits.dim() == 2 && logits.size(1) == queue_logits.size(1), kOp,
                    ": logits must have shape [N, ", queue_logits.size(1),
                    "] (the columns of queue_logits), got ", logits.sizes());
  const auto labels = common::checked_class_targets(kOp, logits, targets,
                                                    /*allow_column=*/true,
                                                    /*allow_bool=*/true);
  if (queue_weight.has_value()) {
    TORCH_CHECK_VALUE(at::isFloatingType(queue_weight->scalar_type()), kOp,
                      ": queue_weight must be floating point, got ",
                      queue_weight->scalar_type());
  }
  if (queue_iid.has_value()) {
    TORCH_CHECK_VALUE(
        queue_iid->scalar_type() == at::kBool || queue_iid->scalar_type() == at::kByte,
        kOp, ": queue_iid must be bool or uint8, got ", queue_iid->scalar_type());
  }
  const int64_t Q = queue_logits.size(0);
  const int64_t N = logits.size(0);
  at::NoGradGuard no_grad;
  const auto device = queue_logits.device();
  std::vector<RowsFor> buffers = {
      {queue_logits, logits.detach().to(device, queue_logits.scalar_type())},
      {queue_targets, labels.to(device, queue_targets.scalar_type())}};
  if (sample_weight.has_value()) {
    const auto& w = *sample_weight;
    TORCH_CHECK_VALUE(at::isFloatingType(w.scalar_type()) &&
                          at::isfinite(w).logical_and(w.ge(0)).all().item<bool>(),
                      kOp, ": sample_weight must be floating, finite and >= 0");
  }
  // Any dtype: nonzero is iid (as the successor's .bool()).
  const auto iid_flags =
      iid_mask.has_value() ? optional<at::Tensor>(iid_mask->ne(0)) : c10::nullopt;
  for (const auto& extra : {optional_rows(queue_weight, sample_weight, N, queue_logits,
                                          "queue_weight", "sample_weight", 1.0),
                            optional_rows(queue_iid, iid_flags, N, queue_logits,
                                          "queue_iid", "iid_mask", 1.0)}) {
    if (extra.has_value()) {
      buffers.push_back(*extra);
    }
  }
  if (Q == 0 || N == 0) {
    return;
  }
  if (N >= Q) {
    for (auto& b : buffers) {
      b.buffer.copy_(b.rows.narrow(0, N - Q, Q));
    }
    queue_ptr.zero_();
    return;
  }
  if (queue_ptr.is_cpu()) {
    // The pointer is on the host: two contiguous copies (reading it costs
    // nothing here). A pointer outside [0, Q) is reduced modulo Q, as below.
    const int64_t start = ((queue_ptr.item<int64_t>() % Q) + Q) % Q;
    const int64_t head = std::min(N, Q - start);
    for (auto& b : buffers) {
      b.buffer.narrow(0, start, head).copy_(b.rows.narrow(0, 0, head));
      if (N > head) {
        b.buffer.narrow(0, 0, N - head).copy_(b.rows.narrow(0, head, N - head));
      }
    }
    queue_ptr.fill_((start + N) % Q);
    return;
  }
  // On a device: the slots are computed there, no synchronisation.
  const auto start = queue_ptr.reshape({1}).to(at::kLong);
  const auto slots = (start + at::arange(N, start.options())).remainder(Q);
  for (auto& b : buffers) {
    b.buffer.index_copy_(0, slots, b.rows);
  }
  queue_ptr.copy_((start + N).remainder(Q).reshape(queue_ptr.sizes()));
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("queue_push_", &proxyloss::ops_impl::queue_push_);
}
