// Fused Smooth-AP op (proxyloss::ops::smooth_ap) against the dense oracle
// (tests/support/ranking_oracle.h, the seed library's algorithm, which
// materialises the [P, M] pairwise matrix of every class): forward + backward
// on float32 scores; and one torch::sort per class of the M scores of its
// column (C sorts), the floor any sort-based algorithm pays.
//
// Cases: C = 1 with 0.5 % positives (M = 16,384 and 2^20) and 5 % (M =
// 4,096 and 65,536), C = 4 with one majority class (~85 %) at M = 4,096 /
// 16,384 / 65,536, and C = 1,000 with 12 positives per class at M = 12,288;
// each at tau = 0.01, 0.05 and 0.5, and each with separated scores
// (positives +1 higher on average, a trained model) and unseparated ones
// (positives drawn like negatives, an untrained model: every window is
// crowded). The oracle is skipped where its [P, M] matrices would not fit,
// and for the unseparated cases (its cost does not depend on the scores).
//
// Every case reports `peak_rss_MiB`, the process's peak resident set size
// (getrusage) at the end of the run. The peak is per process, so compare it
// only between cases run in separate processes: bench/run_benchmarks.sh does
// that, one `--benchmark_filter` per case.
#include <proxyloss/proxyloss.h>
#include "ops/cpu/kernel_selection.h"

#include <support/ranking_oracle.h>

#include "bench_support.h"

#include <benchmark/benchmark.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

// The oracle is not run where its pairwise matrices would exceed this.
constexpr double kOracleFootprintLimitGiB = 6.0;

struct Case {
  int64_t M;
  int64_t C;
  double positive_rate; // C = 1; C = 4 uses a majority class instead
  double tau;
  double separation; // positives' mean score above the negatives': 1 or 0

  std::string name(const std::string& impl) const {
    std::ostringstream out;
    out << impl << "/C:" << C << "/M:" << M << "/pos:" << (C == 1 ? positive_rate : 0.0)
        << "/tau:" << tau << "/sep:" << separation;
    return out.str();
  }

  // Rows per class: C = 1, the positives; C = 4, class 0 takes what classes
  // 1..3 (5 % each) leave; C = 1,000: M / C each (the rest unlabelled).
  std::vector<int64_t> class_sizes() const {
    if (C == 1) {
      return {std::max<int64_t>(1, static_cast<int64_t>(M * positive_rate))};
    }
    if (C > 4) {
      return std::vector<int64_t>(C, M / C);
    }
    std::vector<int64_t> sizes(C, M / 20);
    sizes[0] = M - (C - 1) * (M / 20);
    return sizes;
  }

  // Pairs (positive, pool row): the dense algorithm's work and memory.
  int64_t pairs() const {
    int64_t total = 0;
    for (const int64_t p : class_sizes()) {
      total += p * M;
    }
    return total;
  }
};

struct Pool {
  torch::Tensor scores; // [M, C] float32, requires grad
  torch::Tensor labels; // [M] int64
};

// Deterministic: the same pool for the fused op and the oracle.
Pool make_pool(const Case& c) {
  torch::manual_seed(0);
  auto labels = torch::full({c.M}, -1, torch::kLong);
  const auto perm = torch::randperm(c.M, torch::kLong);
  int64_t offset = 0;
  const auto sizes = c.class_sizes();
  for (int64_t k = 0; k < c.C; ++k) {
    labels.index_fill_(0, perm.narrow(0, offset, sizes[k]), k);
    offset += sizes[k];
  }
  auto scores = torch::randn({c.M, c.C}, torch::kFloat);
  const auto pos = labels.ge(0).nonzero().squeeze(1);
  const auto pos_cols = labels.index_select(0, pos);
  scores.index_put_({pos, pos_cols}, scores.index({pos, pos_cols}) + c.separation);
  return {scores.requires_grad_(true), labels};
}

enum class Impl { Fused, Oracle };

void BM_smooth_ap_fwd_bwd(benchmark::State& state, Impl impl, Case c) {
  Pool pool = make_pool(c);
  for (auto _ : state) {
    pool.scores.mutable_grad() = torch::Tensor();
    const auto ap = impl == Impl::Fused
                        ? proxyloss::ops::smooth_ap(pool.scores, pool.labels, c.tau)
                        : oracle::op_ap(pool.scores, pool.labels, c.tau);
    ap.nansum().backward();
    benchmark::DoNotOptimize(pool.scores.grad().data_ptr<float>());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * c.pairs());
  state.counters["peak_rss_MiB"] = bench_support::peak_rss_mib();
}

// C sorts of M scores: one per class (rows of a contiguous [C, M] tensor).
void BM_sort(benchmark::State& state, int64_t M, int64_t C) {
  torch::manual_seed(0);
  const auto scores = torch::randn({C, M}, torch::kFloat);
  for (auto _ : state) {
    auto sorted = std::get<0>(scores.sort(/*dim=*/1));
    benchmark::DoNotOptimize(sorted.data_ptr<float>());
  }
  state.counters["peak_rss_MiB"] = bench_support::peak_rss_mib();
}

double max_of(const std::vector<double>& v) {
  return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end());
}

// Median of repetitions; slow cases get one iteration per repetition.
void configure(benchmark::internal::Benchmark* b, bool slow) {
  b->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->ReportAggregatesOnly(true)
      ->ComputeStatistics("max", max_of); // the peak RSS column uses the max
  if (slow) {
    b->Iterations(1)->Repetitions(3);
  } else {
    b->MinTime(0.3)->Repetitions(5);
  }
}

} // namespace

int main(int argc, char** argv) {
  bench_support::configure_run();
  // SMOOTH_AP_ALGORITHM=windows or =expansions forces one algorithm of the
  // fused kernels for every class (before / after comparisons in one binary);
  // by default they choose by cost.
  std::optional<proxyloss::detail::ForceSmoothAPAlgorithm> forced;
  const char* algorithm = std::getenv("SMOOTH_AP_ALGORITHM");
  const std::string requested = algorithm != nullptr ? algorithm : "auto";
  if (requested == "windows") {
    forced.emplace(proxyloss::detail::SmoothAPAlgorithm::kWindows);
  } else if (requested == "expansions") {
    forced.emplace(proxyloss::detail::SmoothAPAlgorithm::kExpansions);
  }
  benchmark::AddCustomContext("smooth_ap_algorithm", requested);

  std::vector<Case> cases;
  for (const double separation : {1.0, 0.0}) {
    for (const double tau : {0.01, 0.05, 0.5}) {
      cases.push_back({16384, 1, 0.005, tau, separation});
      cases.push_back({int64_t{1} << 20, 1, 0.005, tau, separation});
      cases.push_back({4096, 1, 0.05, tau, separation});
      cases.push_back({65536, 1, 0.05, tau, separation});
      for (const int64_t M : {4096, 16384, 65536}) {
        cases.push_back({M, 4, 0.0, tau, separation});
      }
      cases.push_back({12288, 1000, 0.0, tau, separation});
    }
  }
  std::string skipped;
  std::vector<std::pair<int64_t, int64_t>> sizes; // (M, C) of the sort floors
  for (const Case& c : cases) {
    const bool slow = c.pairs() > (int64_t{1} << 24);
    configure(benchmark::RegisterBenchmark(c.name("fused").c_str(), BM_smooth_ap_fwd_bwd,
                                           Impl::Fused, c),
              slow);
    const double gib = static_cast<double>(c.pairs()) * sizeof(float) / (1 << 30);
    if (c.separation == 0.0) {
      // The oracle's cost does not depend on the scores: timed once, separated.
    } else if (gib > kOracleFootprintLimitGiB) {
      skipped += (skipped.empty() ? "" : "; ") + c.name("oracle");
    } else {
      configure(benchmark::RegisterBenchmark(c.name("oracle").c_str(),
                                             BM_smooth_ap_fwd_bwd, Impl::Oracle, c),
                slow);
    }
    if (std::find(sizes.begin(), sizes.end(), std::make_pair(c.M, c.C)) == sizes.end()) {
      sizes.push_back({c.M, c.C});
      configure(
          benchmark::RegisterBenchmark(
              ("sort/C:" + std::to_string(c.C) + "/M:" + std::to_string(c.M)).c_str(),
              BM_sort, c.M, c.C),
          /*slow=*/false);
    }
  }
  if (!skipped.empty()) {
    std::fprintf(stderr, "oracle not run (pairwise matrices over %.0f GiB): %s\n",
                 kOracleFootprintLimitGiB, skipped.c_str());
    benchmark::AddCustomContext("oracle_skipped", skipped);
  }

  return bench_support::run_registered_benchmarks(argc, argv);
}
