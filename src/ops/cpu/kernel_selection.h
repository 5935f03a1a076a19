// Switches that select which implementation of the ops runs. For tests and
// benchmarks: they let the device-generic ATen path and the portable CPU
// kernels be checked on any machine. Not needed in normal use.
#pragma once

#include <string>

namespace proxyloss {
namespace detail {

// While at least one guard is alive, every proxyloss op runs its
// device-generic implementation (chunked ATen ops) on CPU tensors too,
// instead of the fused CPU kernel. Process-wide.
class ForceGenericKernels {
 public:
  ForceGenericKernels();
  ~ForceGenericKernels();
  ForceGenericKernels(const ForceGenericKernels&) = delete;
  ForceGenericKernels& operator=(const ForceGenericKernels&) = delete;
};

// While at least one guard is alive, the fused CPU kernels use their portable
// (DEFAULT) build even where an AVX2 build is available. Process-wide.
class ForceDefaultCpuCapability {
 public:
  ForceDefaultCpuCapability();
  ~ForceDefaultCpuCapability();
  ForceDefaultCpuCapability(const ForceDefaultCpuCapability&) = delete;
  ForceDefaultCpuCapability& operator=(const ForceDefaultCpuCapability&) = delete;
};

bool generic_kernels_forced();

// The two algorithms of the fused Smooth-AP kernels (smooth_ap_kernel.h):
// pair windows with two-term tails, or block expansions for crowded windows.
// kAuto picks by estimated cost per class.
enum class SmoothAPAlgorithm { kAuto, kWindows, kExpansions };

// While alive, the fused Smooth-AP kernels use `algorithm` for every class
// (the innermost guard wins). Process-wide.
class ForceSmoothAPAlgorithm {
 public:
  explicit ForceSmoothAPAlgorithm(SmoothAPAlgorithm algorithm);
  ~ForceSmoothAPAlgorithm();
  ForceSmoothAPAlgorithm(const ForceSmoothAPAlgorithm&) = delete;
  ForceSmoothAPAlgorithm& operator=(const ForceSmoothAPAlgorithm&) = delete;

 private:
  SmoothAPAlgorithm previous_;
};

SmoothAPAlgorithm forced_smooth_ap_algorithm();

// "AVX2" or "DEFAULT": the CPU kernel build the next op call will use.
std::string active_cpu_capability();

} // namespace detail
} // namespace proxyloss
