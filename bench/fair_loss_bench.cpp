// FairLoss (proxyloss::FairLoss, fused op) against torch's own cross-entropy
// (torch::nn::functional::cross_entropy): forward + backward of the mean loss
// on float32 logits [N, C]. The goal is FairLoss at most 1.3x the cost of
// cross-entropy, which it contains.
//
// Threads: OMP_NUM_THREADS if set, else every hardware thread (printed in
// the context). Compare the `median` rows of the two implementations.
#include <proxyloss/fair_loss.h>
#include "ops/cpu/kernel_selection.h"

#include "bench_support.h"

#include <benchmark/benchmark.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>

namespace {

enum class Impl { FairLoss, CrossEntropy };

// Deterministic: randn logits (scale 3), uniform targets.
struct Batch {
  torch::Tensor logits; // [N, C] float32, requires grad
  torch::Tensor targets;
};

Batch make_batch(int64_t N, int64_t C) {
  torch::manual_seed(0);
  return {(torch::randn({N, C}) * 3).requires_grad_(true),
          torch::randint(0, C, {N}, torch::kLong)};
}

void BM_fwd_bwd(benchmark::State& state, Impl impl, int64_t N, int64_t C) {
  Batch batch = make_batch(N, C);
  proxyloss::FairLoss fair; // defaults: beta = k = 1000, mean
  for (auto _ : state) {
    batch.logits.mutable_grad() = torch::Tensor();
    const auto loss = impl == Impl::FairLoss ? fair(batch.logits, batch.targets)
                                             : torch::nn::functional::cross_entropy(
                                                   batch.logits, batch.targets);
    loss.backward();
    benchmark::DoNotOptimize(batch.logits.grad().data_ptr<float>());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * N);
}

void register_case(Impl impl, int64_t N, int64_t C) {
  const std::string name =
      std::string(impl == Impl::FairLoss ? "fair_loss" : "cross_entropy") +
      "/N:" + std::to_string(N) + "/C:" + std::to_string(C);
  benchmark::RegisterBenchmark(name.c_str(), BM_fwd_bwd, impl, N, C)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinTime(0.5)
      ->Repetitions(5)
      ->ReportAggregatesOnly(true);
}

} // namespace

int main(int argc, char** argv) {
  bench_support::configure_run();
  for (const int64_t C : {1000, 10}) {
    register_case(Impl::FairLoss, 65536, C);
    register_case(Impl::CrossEntropy, 65536, C);
  }
  return bench_support::run_registered_benchmarks(argc, argv);
}
