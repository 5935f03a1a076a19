#include "ops/cpu/kernel_selection.h"

#include "ops/cpu/kernels/cpu_capability.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace proxyloss {
namespace {

std::atomic<int> generic_guards{0};
std::atomic<int> default_capability_guards{0};
std::atomic<detail::SmoothAPAlgorithm> smooth_ap_algorithm{
    detail::SmoothAPAlgorithm::kAuto};

bool avx2_usable() {
#if defined(PROXYLOSS_HAVE_AVX2_KERNELS) && (defined(__x86_64__) || defined(__i386__))
  static const bool usable = [] {
    const char* requested = std::getenv("PROXYLOSS_CPU_CAPABILITY");
    if (requested != nullptr && std::strcmp(requested, "default") == 0) {
      return false;
    }
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return usable;
#else
  return false;
#endif
}

bool use_avx2() {
  return avx2_usable() && default_capability_guards.load() == 0;
}

} // namespace

namespace detail {

ForceGenericKernels::ForceGenericKernels() {
  ++generic_guards;
}
ForceGenericKernels::~ForceGenericKernels() {
  --generic_guards;
}
ForceDefaultCpuCapability::ForceDefaultCpuCapability() {
  ++default_capability_guards;
}
ForceDefaultCpuCapability::~ForceDefaultCpuCapability() {
  --default_capability_guards;
}

ForceSmoothAPAlgorithm::ForceSmoothAPAlgorithm(SmoothAPAlgorithm algorithm)
    : previous_(smooth_ap_algorithm.exchange(algorithm)) {}
ForceSmoothAPAlgorithm::~ForceSmoothAPAlgorithm() {
  smooth_ap_algorithm.store(previous_);
}

SmoothAPAlgorithm forced_smooth_ap_algorithm() {
  return smooth_ap_algorithm.load();
}

bool generic_kernels_forced() {
  return generic_guards.load() > 0;
}

std::string active_cpu_capability() {
  return use_avx2() ? "AVX2" : "DEFAULT";
}

} // namespace detail

namespace kernels {

const SmoothAPKernels& smooth_ap_kernels() {
#ifdef PROXYLOSS_HAVE_AVX2_KERNELS
  if (use_avx2()) {
    return smooth_ap_kernels_AVX2();
  }
#endif
  return smooth_ap_kernels_DEFAULT();
}

const FairLossKernels& fair_loss_kernels() {
#ifdef PROXYLOSS_HAVE_AVX2_KERNELS
  if (use_avx2()) {
    return fair_loss_kernels_AVX2();
  }
#endif
  return fair_loss_kernels_DEFAULT();
}

} // namespace kernels
} // namespace proxyloss
