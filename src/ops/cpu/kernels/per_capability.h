// Naming of what a kernel source defines once per compiled CPU capability.
// The build compiles each kernel file once per capability with
// CPU_CAPABILITY defined (DEFAULT, AVX2); PROXYLOSS_PER_CAPABILITY(prefix)
// expands to prefix##CPU_CAPABILITY, e.g. smooth_ap_kernels_AVX2.
#pragma once

#ifndef CPU_CAPABILITY
#error "CPU_CAPABILITY must be defined (DEFAULT or AVX2) by the build"
#endif

#define PROXYLOSS_CONCAT_INNER(a, b) a##b
#define PROXYLOSS_CONCAT(a, b) PROXYLOSS_CONCAT_INNER(a, b)
#define PROXYLOSS_PER_CAPABILITY(prefix) PROXYLOSS_CONCAT(prefix, CPU_CAPABILITY)
