// c10d (torch.distributed's C++ core) across LibTorch versions: a Gloo
// process group to hand to a loss (include/proxyloss/distributed.h).
//
// Apart from compat.h because it needs what compat.h's includers (every
// public header) must not: the Gloo headers (Debian: libgloo-dev) and
// -DUSE_C10D_GLOO, without which c10d's ProcessGroupGloo.hpp declares
// nothing. Only a program that builds a Gloo group includes it.
#pragma once

#ifndef USE_C10D_GLOO
#error "proxyloss/compat_c10d.h needs -DUSE_C10D_GLOO and the Gloo headers (libgloo-dev)"
#endif

#include "proxyloss/compat.h"
#include "proxyloss/distributed.h"

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <string>

namespace proxyloss {
namespace compat {

// A Gloo process group of `size` ranks over `store` (e.g. a c10d::FileStore
// or TCPStore shared by the ranks), this process being `rank`; collectives
// that wait longer than `timeout` throw. `hostname`: the address Gloo binds
// to ("127.0.0.1" for ranks on one machine); empty: Gloo's default device
// (this machine's hostname). In LibTorch 1.13 c10d::ProcessGroupGloo is a
// ProcessGroup; in 2.x it is a c10d::Backend, which a ProcessGroup wraps.
inline ProcessGroupPtr make_gloo_process_group(
    const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
    std::chrono::milliseconds timeout, const std::string& hostname = "") {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  options->devices.push_back(
      hostname.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                       : c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
  auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
#if PROXYLOSS_TORCH_VERSION_AT_LEAST(2, 0)
#if PROXYLOSS_TORCH_VERSION_AT_LEAST(2, 6)
  auto group = c10::make_intrusive<c10d::ProcessGroup>(store, rank, size);
#else // 2.0 to 2.5: the group takes its options
  auto group = c10::make_intrusive<c10d::ProcessGroup>(
      store, rank, size,
      c10::make_intrusive<c10d::ProcessGroup::Options>(std::string("gloo"), timeout));
#endif
  group->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
  group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
  return group;
#else
  return gloo;
#endif
}

} // namespace compat
} // namespace proxyloss
