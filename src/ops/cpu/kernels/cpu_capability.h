// Run-time choice between the compiled CPU kernel variants.
#pragma once

#include "ops/cpu/kernels/fair_loss_kernel.h"
#include "ops/cpu/kernels/smooth_ap_kernel.h"

namespace proxyloss {
namespace kernels {

// The Smooth-AP kernels for the best capability that this build has and this
// CPU supports, unless `PROXYLOSS_CPU_CAPABILITY=default` in the environment
// or a `detail::ForceDefaultCpuCapability` guard asks for the portable build.
const SmoothAPKernels& smooth_ap_kernels();

// The FairLoss kernels, chosen the same way.
const FairLossKernels& fair_loss_kernels();

} // namespace kernels
} // namespace proxyloss
