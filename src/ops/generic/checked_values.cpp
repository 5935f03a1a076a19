// proxyloss::_checked_values: a check of input values that a tracer keeps.
// A composite op cannot read its inputs' values on the host under
// torch.compile (the tensors are fake while it traces), and a compiled graph
// would drop a check that returns nothing. So the composite losses compute
// the mask of bad entries with ATen ops and pass it here, with the values,
// and use the copy this op returns in place of the values: the check runs
// (as an opaque op, on the host) every time the graph does.
//
//   values any shape, bad a bool tensor of its shape. When an entry is bad:
//   ValueError "<message>, got [v0, v1, ...]" naming the first bad values,
//   and for 1-D values " at <index_name> [i0, i1, ...]" (index_name "": no
//   positions). Otherwise returns a copy of values (a fresh tensor, as the
//   schema promises).
#include "ops/checked_values.h"

#include "common/input_checks.h"
#include "ops/dispatch.h"

#include <c10/util/Exception.h>
#include <torch/library.h>

#include <string>

namespace proxyloss {
namespace ops_impl {
namespace {

at::Tensor checked_values_kernel(const at::Tensor& values, const at::Tensor& bad,
                                 c10::string_view message, c10::string_view index_name) {
  TORCH_CHECK(
      bad.scalar_type() == at::kBool && bad.sizes() == values.sizes(),
      "proxyloss::_checked_values: bad must be a bool tensor of the values' shape ",
      values.sizes(), ", got ", bad.scalar_type(), " ", bad.sizes());
  if (bad.any().item<bool>()) {
    std::string positions;
    if (values.dim() == 1 && !index_name.empty()) {
      positions = " at " + std::string(index_name) + " " +
                  common::first_values(bad.nonzero().squeeze(1));
    }
    TORCH_CHECK_VALUE(false, std::string(message), ", got ",
                      common::first_values(values.masked_select(bad)), positions);
  }
  return values.clone();
}

} // namespace

at::Tensor checked_values(const at::Tensor& values, const at::Tensor& bad,
                          const std::string& message, const std::string& index_name) {
  static const auto op =
      typed_op<at::Tensor(const at::Tensor&, const at::Tensor&, c10::string_view,
                          c10::string_view)>("proxyloss::_checked_values");
  return op.call(values, bad, message, index_name);
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeExplicitAutograd, m) {
  m.impl("_checked_values", &proxyloss::ops_impl::checked_values_kernel);
}
