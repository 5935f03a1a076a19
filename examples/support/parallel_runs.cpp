#include "support/parallel_runs.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace demo {

void run_in_parallel(int count, int concurrent, const std::function<void(int)>& job) {
  if (concurrent <= 1) {
    for (int i = 0; i < count; ++i) {
      job(i);
    }
    return;
  }
  std::atomic<int> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  // Each worker takes the next job index until none is left.
  const auto worker = [&] {
    for (int i = next++; i < count; i = next++) {
      try {
        job(i);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) {
          error = std::current_exception();
        }
      }
    }
  };
  std::vector<std::thread> workers;
  for (int w = 0; w < std::min(concurrent, count); ++w) {
    workers.emplace_back(worker);
  }
  for (auto& thread : workers) {
    thread.join();
  }
  if (error) {
    std::rethrow_exception(error);
  }
}

} // namespace demo
