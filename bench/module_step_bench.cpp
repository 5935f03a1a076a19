// One training step of the queued ranking modules, as a user runs it:
// forward_per_class (the loss op through the dispatcher), backward, and the
// queue update. Measures what the module layer and the ranking pipeline add
// around the fused per-class ops, at the batch and queue sizes of the demos
// (N = 512 live rows; queue 0 or 4096), C = 1 (5 % positives) and C = 4.
// It is the baseline of the Python modules' overhead (same ops, other front
// end).
#include <proxyloss/proxyloss.h>

#include "bench_support.h"

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace {

constexpr int64_t kBatch = 512;
constexpr int kBatches = 16;

// Batches of logits [N, C] (positives a little higher) and targets.
struct Batches {
  std::vector<torch::Tensor> logits;
  std::vector<torch::Tensor> targets;

  explicit Batches(int64_t C) {
    torch::manual_seed(1);
    for (int i = 0; i < kBatches; ++i) {
      auto t = C == 1 ? torch::rand({kBatch}).lt(0.05).to(torch::kLong)
                      : torch::randint(0, C, {kBatch}, torch::kLong);
      logits.push_back(torch::randn({kBatch, C}) +
                       0.5 * t.unsqueeze(1).to(torch::kFloat));
      targets.push_back(t);
    }
  }
};

template <typename Loss>
void run_steps(benchmark::State& state, Loss& loss, int64_t C) {
  const Batches batches(C);
  int step = 0;
  for (auto _ : state) {
    const auto x = batches.logits[step % kBatches].clone().requires_grad_(true);
    auto out = std::get<0>(loss->forward_per_class(x, batches.targets[step % kBatches]));
    out.backward();
    benchmark::DoNotOptimize(x.grad().data_ptr());
    ++step;
  }
  state.counters["peak_rss_MiB"] = bench_support::peak_rss_mib();
}

void BM_smooth_ap_step(benchmark::State& state, int64_t C, int64_t Q) {
  proxyloss::SmoothAPLoss loss(proxyloss::SmoothAPLossOptions(C).queue_size(Q));
  run_steps(state, loss, C);
}

void BM_recall_at_quantile_step(benchmark::State& state, int64_t C, int64_t Q) {
  proxyloss::RecallAtQuantileLoss loss(
      proxyloss::RecallAtQuantileLossOptions(C).queue_size(Q));
  run_steps(state, loss, C);
}

} // namespace

int main(int argc, char** argv) {
  bench_support::configure_run();
  for (const int64_t C : {1, 4}) {
    for (const int64_t Q : {0, 4096}) {
      const std::string shape = "/C:" + std::to_string(C) +
                                "/N:" + std::to_string(kBatch) +
                                "/Q:" + std::to_string(Q);
      benchmark::RegisterBenchmark(("SmoothAPLoss" + shape).c_str(), BM_smooth_ap_step, C,
                                   Q)
          ->Unit(benchmark::kMicrosecond)
          ->Repetitions(5)
          ->ReportAggregatesOnly(true);
      benchmark::RegisterBenchmark(("RecallAtQuantileLoss" + shape).c_str(),
                                   BM_recall_at_quantile_step, C, Q)
          ->Unit(benchmark::kMicrosecond)
          ->Repetitions(5)
          ->ReportAggregatesOnly(true);
    }
  }
  return bench_support::run_registered_benchmarks(argc, argv);
}
