// The one place where differences between LibTorch versions live.
//
// proxyloss builds against Debian's LibTorch 1.13 and against LibTorch 2.x.
// Code elsewhere uses only APIs present in both; what differs is named here.
#pragma once

#include <torch/version.h>

#include <c10/util/Optional.h>

#define PROXYLOSS_TORCH_VERSION_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||                    \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace proxyloss {

// c10::optional is its own type in 1.13 and an alias of std::optional in
// recent 2.x; c10::nullopt works with both, so options use c10::optional.
template <typename T>
using optional = c10::optional<T>;

} // namespace proxyloss
