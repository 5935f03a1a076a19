// Calling a proxyloss op through the dispatcher (so that autograd and the
// per-device implementations apply), as the C++ wrappers in ops.cpp and the
// autograd Functions do.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

namespace proxyloss {
namespace ops_impl {

// The handle of op `name` ("proxyloss::smooth_ap") with C++ signature
// `Signature`; look it up once (a function-local static) and call() it.
template <typename Signature>
c10::TypedOperatorHandle<Signature> typed_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

} // namespace ops_impl
} // namespace proxyloss
