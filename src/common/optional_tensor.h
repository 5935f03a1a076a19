// Optional tensors across the boundaries that have no optional: a module's
// `const Tensor& x = {}` argument and an autograd Function's saved variables
// hold "absent" as an undefined tensor; the ops take optional<Tensor>.
#pragma once

#include "proxyloss/compat.h"

#include <ATen/Tensor.h>

namespace proxyloss {
namespace common {

// An undefined tensor as nullopt, a defined one as itself.
inline optional<at::Tensor> defined_or_nullopt(const at::Tensor& tensor) {
  return tensor.defined() ? optional<at::Tensor>(tensor) : c10::nullopt;
}

// The tensor detached (a constant of the computation), nullopt as nullopt.
inline optional<at::Tensor> detached(const optional<at::Tensor>& tensor) {
  return tensor.has_value() ? optional<at::Tensor>(tensor->detach()) : c10::nullopt;
}

} // namespace common
} // namespace proxyloss
