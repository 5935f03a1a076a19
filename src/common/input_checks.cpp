#include "common/input_checks.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <sstream>

namespace proxyloss {
namespace common {

std::string first_values(const at::Tensor& values, int64_t limit) {
  const auto flat = values.detach().reshape({-1});
  const bool integral = at::isIntegralType(flat.scalar_type(), /*includeBool=*/true);
  const auto shown = flat.narrow(0, 0, std::min<int64_t>(limit, flat.numel()))
                         .to(at::kCPU, integral ? at::kLong : at::kDouble);
  std::ostringstream out;
  out << "[";
  for (int64_t i = 0; i < shown.numel(); ++i) {
    out << (i ? ", " : "");
    if (integral) {
      out << shown.data_ptr<int64_t>()[i];
    } else {
      out << shown.data_ptr<double>()[i];
    }
  }
  out << (flat.numel() > limit ? ", ...]" : "]");
  return out.str();
}

void check_defined(const std::string& who, const at::Tensor& tensor, const char* name) {
  TORCH_CHECK_VALUE(tensor.defined(), who, ": ", name, " is an undefined tensor");
}

void check_floating_logits(const std::string& who, const at::Tensor& logits) {
  TORCH_CHECK_VALUE(at::isFloatingType(logits.scalar_type()), who,
                    ": logits must be floating point (float32, float64, float16 or "
                    "bfloat16), got ",
                    logits.scalar_type());
}

void check_same_device(const std::string& who, const at::Tensor& logits,
                       const at::Tensor& tensor, const char* name) {
  TORCH_CHECK_VALUE(tensor.device() == logits.device(), who, ": ", name,
                    " must be on the device of logits (", logits.device(), "), got ",
                    tensor.device());
}

at::Tensor checked_class_targets(const std::string& who, const at::Tensor& logits,
                                 const at::Tensor& targets, bool allow_column,
                                 bool allow_bool) {
  check_defined(who, targets, "targets");
  const int64_t N = logits.size(0);
  auto t = targets;
  if (allow_column && t.dim() == 2 && t.size(1) == 1) {
    t = t.squeeze(1);
  }
  TORCH_CHECK_VALUE(t.dim() == 1 && t.size(0) == N, who, ": targets must have shape ",
                    allow_column ? "[N] or [N, 1]" : "[N]", " with N = ", N,
                    " (the rows of logits), got ", targets.sizes());
  TORCH_CHECK_VALUE(at::isIntegralType(t.scalar_type(), allow_bool), who,
                    ": targets must be an integer tensor of class indices, got ",
                    t.scalar_type());
  check_same_device(who, logits, t, "targets");
  return t.to(at::kLong);
}

void check_target_range(const std::string& who, const at::Tensor& targets,
                        int64_t num_classes, int64_t ignore_index) {
  if (targets.is_cpu() && targets.scalar_type() == at::kLong && targets.is_contiguous()) {
    // The common case, in one plain loop: no target is out of range.
    const int64_t* t = targets.data_ptr<int64_t>();
    bool any_bad = false;
    for (int64_t i = 0; i < targets.numel(); ++i) {
      any_bad = any_bad || ((t[i] < 0 || t[i] >= num_classes) && t[i] != ignore_index);
    }
    if (!any_bad) {
      return;
    }
  }
  const auto bad = targets.ne(ignore_index)
                       .logical_and(targets.lt(0).logical_or(targets.ge(num_classes)));
  if (!bad.any().item<bool>()) {
    return;
  }
  const auto rows = bad.nonzero().squeeze(1);
  TORCH_CHECK_VALUE(false, who, ": targets must be in [0, ", num_classes,
                    ") or ignore_index=", ignore_index, ", got ",
                    first_values(targets.index_select(0, rows)), " at rows ",
                    first_values(rows));
}

at::ScalarType compute_dtype(at::ScalarType logits_dtype) {
  return logits_dtype == at::kDouble ? at::kDouble : at::kFloat;
}

} // namespace common
} // namespace proxyloss
