// Input checks shared by every loss and op, so that each condition is worded
// once. `who` starts each message: the module ("FairLoss") or the op
// ("proxyloss::smooth_ap_loss") the user called.
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace proxyloss {
namespace common {

// "[v0, v1, ...]": at most `limit` values of a tensor (flattened, any device);
// integer tensors print as integers.
std::string first_values(const at::Tensor& values, int64_t limit = 8);

void check_defined(const std::string& who, const at::Tensor& tensor, const char* name);

// float32, float64, float16 or bfloat16.
void check_floating_logits(const std::string& who, const at::Tensor& logits);

// `tensor` (called `name`) is on the device of logits.
void check_same_device(const std::string& who, const at::Tensor& logits,
                       const at::Tensor& tensor, const char* name);

// Class-index targets for logits [N, C]: defined, [N] (or [N, 1] when
// `allow_column`), an integer dtype (bool too when `allow_bool`), on the
// logits' device. Returns them as [N] int64.
at::Tensor checked_class_targets(const std::string& who, const at::Tensor& logits,
                                 const at::Tensor& targets, bool allow_column,
                                 bool allow_bool);

// Throws, naming the first offending values, when a target is outside
// [0, num_classes) and not ignore_index (one pass; ATen ops, any device).
void check_target_range(const std::string& who, const at::Tensor& targets,
                        int64_t num_classes, int64_t ignore_index);

// The dtype a loss computes in: float32 and float64 their own, float16 and
// bfloat16 in float32.
at::ScalarType compute_dtype(at::ScalarType logits_dtype);

} // namespace common
} // namespace proxyloss
