// Checks of input values that survive tracing: see generic/checked_values.cpp
// (the op proxyloss::_checked_values).
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace proxyloss {
namespace ops_impl {

// Through the dispatcher: a copy of `values` [any shape] to use in their
// place, or a ValueError "<message>, got <the first values where bad>" (and
// " at <index_name> <their indices>" for 1-D values, unless index_name is
// empty).
at::Tensor checked_values(const at::Tensor& values, const at::Tensor& bad,
                          const std::string& message, const std::string& index_name);

} // namespace ops_impl
} // namespace proxyloss
