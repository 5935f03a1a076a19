// Thread setup for the demos.
#pragma once

namespace demo {

struct ThreadPlan {
  int total = 1;      // the budget: --threads, else OMP_NUM_THREADS, else cores
  int concurrent = 1; // independent runs trained at the same time
  int intra_op = 1;   // LibTorch intra-op threads of each run
};

// Takes `requested` threads when > 0, else OMP_NUM_THREADS when set, else
// the hardware concurrency. With one thread, runs one at a time; with more,
// all `max_concurrent` independent runs at once (the OS shares the cores
// among them; run-level parallelism beats intra-op parallelism on a small
// model), each with max(1, total / max_concurrent) intra-op threads. Sets
// LibTorch's intra-op threads (at::set_num_threads) and prints the plan with
// the LibTorch version.
ThreadPlan configure_threads(int requested, int max_concurrent = 1);

} // namespace demo
