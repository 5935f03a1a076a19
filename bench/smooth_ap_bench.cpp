// Fused Smooth-AP op (proxyloss::ops::smooth_ap) against the dense oracle
// (tests/support/ranking_oracle.h, the seed library's algorithm, which
// materialises the [P, M] pairwise matrix of every class): forward + backward
// on float32 scores.
//
// Every case reports `peak_rss_MiB`, the process's peak resident set size
// (getrusage) at the end of the run. The peak is per process, so compare it
// only between cases run in separate processes: bench/run_benchmarks.sh does
// that, one `--benchmark_filter` per case.
#include <proxyloss/detail/kernel_selection.h>
#include <proxyloss/proxyloss.h>

#include <support/ranking_oracle.h>

#include <benchmark/benchmark.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr double kTemperature = 0.01;
// Oracle cases whose [P, M] float matrices (one per class, all kept alive by
// autograd until backward) would exceed this are not registered.
constexpr double kOracleFootprintLimitGiB = 6.0;

// OMP_NUM_THREADS if set, else every hardware thread.
int configure_threads() {
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

double peak_rss_mib() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0; // ru_maxrss is in KiB
}

// Positives per class: C == 1 is binary (5% positives, label 0; the rest -1);
// C == 4 has one majority class (class 0 ~85%, classes 1..3 5% each).
std::vector<int64_t> class_sizes(int64_t M, int64_t C) {
  if (C == 1) {
    return {M / 20};
  }
  std::vector<int64_t> sizes(C, M / 20);
  sizes[0] = M - (C - 1) * (M / 20);
  return sizes;
}

// Sum over classes of P_c * M: the pairs the op evaluates (per pass).
int64_t pair_count(int64_t M, int64_t C) {
  int64_t pairs = 0;
  for (const int64_t p : class_sizes(M, C)) {
    pairs += p * M;
  }
  return pairs;
}

struct Pool {
  torch::Tensor scores; // [M, C] float32, requires grad
  torch::Tensor labels; // [M] int64
};

// Deterministic: randn scores, each positive's own-class score shifted by +1.
Pool make_pool(int64_t M, int64_t C) {
  torch::manual_seed(0);
  auto labels = torch::full({M}, -1, torch::kLong);
  const auto perm = torch::randperm(M, torch::kLong);
  int64_t offset = 0;
  const auto sizes = class_sizes(M, C);
  for (int64_t c = 0; c < C; ++c) {
    labels.index_fill_(0, perm.narrow(0, offset, sizes[c]), c);
    offset += sizes[c];
  }
  auto scores = torch::randn({M, C}, torch::kFloat);
  const auto pos = labels.ge(0).nonzero().squeeze(1);
  const auto pos_cols = labels.index_select(0, pos);
  scores.index_put_({pos, pos_cols}, scores.index({pos, pos_cols}) + 1.0);
  return {scores.requires_grad_(true), labels};
}

enum class Impl { Fused, Oracle };

void BM_smooth_ap_fwd_bwd(benchmark::State& state, Impl impl, int64_t M, int64_t C) {
  Pool pool = make_pool(M, C);
  for (auto _ : state) {
    pool.scores.mutable_grad() = torch::Tensor();
    const auto ap =
        impl == Impl::Fused
            ? proxyloss::ops::smooth_ap(pool.scores, pool.labels, kTemperature)
            : oracle::op_ap(pool.scores, pool.labels, kTemperature);
    const auto loss = ap.nansum();
    loss.backward();
    benchmark::DoNotOptimize(pool.scores.grad().data_ptr<float>());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * pair_count(M, C));
  state.counters["peak_rss_MiB"] = peak_rss_mib();
}

double max_of(const std::vector<double>& v) {
  return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end());
}

void register_case(Impl impl, int64_t M, int64_t C) {
  const std::string name = std::string(impl == Impl::Fused ? "fused" : "oracle") +
                           "/C:" + std::to_string(C) + "/M:" + std::to_string(M);
  auto* b = benchmark::RegisterBenchmark(name.c_str(), BM_smooth_ap_fwd_bwd, impl, M, C);
  b->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->ReportAggregatesOnly(true)
      ->ComputeStatistics("max", max_of);
  // Cheap cases: 5 repetitions of at least 0.3 s each; expensive ones (seconds
  // per call) 3 repetitions of a single call.
  if (pair_count(M, C) <= (int64_t{1} << 24)) {
    b->MinTime(0.3)->Repetitions(5);
  } else {
    b->Iterations(1)->Repetitions(3);
  }
}

} // namespace

int main(int argc, char** argv) {
  const int threads = configure_threads();
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("libtorch", TORCH_VERSION);
  benchmark::AddCustomContext("cpu_capability",
                              proxyloss::detail::active_cpu_capability());
  std::ostringstream tau;
  tau << kTemperature;
  benchmark::AddCustomContext("temperature", tau.str());

  std::string skipped;
  for (const int64_t C : {1, 4}) {
    for (const int64_t M : {4096, 16384, 65536}) {
      register_case(Impl::Fused, M, C);
      const double footprint_gib = static_cast<double>(pair_count(M, C)) * sizeof(float) /
                                   (1024.0 * 1024.0 * 1024.0);
      if (footprint_gib > kOracleFootprintLimitGiB) {
        char note[160];
        std::snprintf(note, sizeof(note),
                      "oracle/C:%lld/M:%lld (est. [P,M] footprint %.1f GiB > %.0f GiB)",
                      static_cast<long long>(C), static_cast<long long>(M), footprint_gib,
                      kOracleFootprintLimitGiB);
        std::fprintf(stderr, "not registered: %s\n", note);
        skipped += skipped.empty() ? note : std::string("; ") + note;
        continue;
      }
      register_case(Impl::Oracle, M, C);
    }
  }
  if (!skipped.empty()) {
    benchmark::AddCustomContext("oracle_skipped", skipped);
  }

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
