#include "support/threads.h"

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace demo {

ThreadPlan configure_threads(int requested, int max_concurrent) {
  ThreadPlan plan;
  plan.total = requested;
  const char* source = "--threads";
  if (plan.total <= 0) {
    const char* env = std::getenv("OMP_NUM_THREADS");
    plan.total = env ? std::atoi(env) : 0;
    source = "OMP_NUM_THREADS";
  }
  if (plan.total <= 0) {
    plan.total = static_cast<int>(std::thread::hardware_concurrency());
    source = "hardware concurrency";
  }
  plan.total = std::max(plan.total, 1);
  plan.concurrent = plan.total > 1 ? std::max(max_concurrent, 1) : 1;
  plan.intra_op = std::max(1, plan.total / plan.concurrent);
  // Threads that LibTorch starts later (the concurrent runs' own) take this
  // value too.
  at::set_num_threads(plan.intra_op);
  std::printf("threads: %d (%s)", plan.total, source);
  if (max_concurrent > 1) {
    std::printf(": %d run%s at a time, %d intra-op thread%s each", plan.concurrent,
                plan.concurrent > 1 ? "s" : "", plan.intra_op,
                plan.intra_op > 1 ? "s" : "");
  }
  std::printf("; LibTorch %s\n", TORCH_VERSION);
  return plan;
}

} // namespace demo
