// Error messages that name the module the user called as well as the op
// that found the problem: "SmoothAPLoss: proxyloss::ranking_pool: ...".
#pragma once

#include <c10/util/Exception.h>

#include <string>

namespace proxyloss {
namespace nn_impl {

// Runs `call` (an op call) and rethrows its c10::Error with the loss's name
// in front, so that a bad input names the loss the user called as well as
// the op that found it: "SmoothAPLoss: proxyloss::ranking_pool: ...".
template <typename Call>
auto naming_the_loss(const std::string& loss_name, Call&& call) -> decltype(call()) {
  try {
    return call();
  } catch (const c10::ValueError& error) { // a bad argument: keep the kind
    TORCH_CHECK_VALUE(false, loss_name, ": ", error.what_without_backtrace());
    throw; // not reached: TORCH_CHECK_VALUE(false, ...) throws
  } catch (const c10::Error& error) {
    TORCH_CHECK(false, loss_name, ": ", error.what_without_backtrace());
    throw; // not reached: TORCH_CHECK(false, ...) throws
  }
}

} // namespace nn_impl
} // namespace proxyloss
