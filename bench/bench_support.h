// Setup shared by the benchmark programs.
#pragma once

#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/version.h>
#include "ops/cpu/kernel_selection.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>

namespace bench_support {

// LibTorch's thread count: OMP_NUM_THREADS if set, else every hardware
// thread (Debian's LibTorch starts with one). Returns it for the report.
inline int configure_threads() {
  int n = 0;
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    n = std::atoi(env);
  }
  if (n <= 0) {
    n = static_cast<int>(std::thread::hardware_concurrency());
  }
  n = std::max(n, 1);
  at::set_num_threads(n);
  return n;
}

// configure_threads(), and the run's threads, LibTorch version and CPU
// kernel capability recorded in the benchmark output's context.
inline void configure_run() {
  const int threads = configure_threads();
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("libtorch", TORCH_VERSION);
  benchmark::AddCustomContext("cpu_capability",
                              proxyloss::detail::active_cpu_capability());
}

// The process's peak resident set size so far, in MiB.
inline double peak_rss_mib() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0; // ru_maxrss is in KiB
}

// The rest of a benchmark program's main(), once its cases are registered.
inline int run_registered_benchmarks(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

} // namespace bench_support
