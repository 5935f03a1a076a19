// Independent jobs on a few threads: the comparison demos train their
// strategies side by side, one per core.
#pragma once

#include <functional>

namespace demo {

// Calls job(0), ..., job(count - 1), at most `concurrent` at a time, each on
// its own thread (in the caller's thread when concurrent <= 1), and returns
// when all are done. The first exception thrown by a job is rethrown here.
void run_in_parallel(int count, int concurrent, const std::function<void(int)>& job);

} // namespace demo
