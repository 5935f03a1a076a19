// Three training strategies on the same data, model initialisation and batch
// order, compared by validation AUCPR epoch by epoch:
//   warmup-only    BCE for all epochs (never switches)
//   AP-only        SmoothAPLoss from the first step, no warmup
//   warmup+blend   BCE warmup -> linear blend -> SmoothAPLoss
// The C++ counterpart of proxy-losses' examples/compare_demo.py, on the
// problem of issue 4 (60,000 rows, 0.5 % positives, 5 % label flips).
//
//   compare_demo                          the defaults
//   compare_demo --loss recall            RecallAtQuantileLoss as main loss
//   compare_demo --warmup-epochs 5 --blend-epochs 3
//   compare_demo --out results            CSV (+ PNG plots with gnuplot)
#include "support/csv_writer.h"
#include "support/gnuplot.h"
#include "support/parallel_runs.h"
#include "support/precision_recall.h"
#include "support/ranking_demo.h"
#include "support/threads.h"

#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace {

struct Strategy {
  std::string name;
  demo::Schedule schedule;
};

struct StrategyResult {
  std::vector<double> aucpr;      // validation AUCPR after each epoch
  std::vector<std::string> phase; // the schedule's phase in each epoch
  torch::Tensor final_scores;     // validation logits of the final model
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Trains `model` under the strategy's schedule, printing a progress line per
// epoch.
StrategyResult run_strategy(const Strategy& strategy, torch::nn::Sequential model,
                            const demo::RankingDemoOptions& options,
                            const demo::Dataset& train, const demo::Dataset& validation) {
  const auto started = std::chrono::steady_clock::now();
  StrategyResult result;
  demo::train_ranking_model(
      options, strategy.schedule, model, train, validation,
      [&](const demo::EpochReport& r) {
        result.aucpr.push_back(r.aucpr);
        result.phase.push_back(r.phase);
        result.final_scores = r.scores;
        std::printf("  %-12s epoch %3lld/%lld  loss %.4f  AUCPR %.4f  (%.1f s)\n",
                    strategy.name.c_str(), static_cast<long long>(r.epoch + 1),
                    static_cast<long long>(options.total_epochs), r.loss, r.aucpr,
                    seconds_since(started));
        std::fflush(stdout);
      });
  return result;
}

// aucpr_by_epoch.csv, pr_curve_<strategy>.csv, and their plots with gnuplot.
void write_outputs(const demo::RankingDemoOptions& options,
                   const std::vector<Strategy>& strategies,
                   const std::vector<StrategyResult>& results,
                   const demo::Dataset& validation) {
  std::vector<std::string> columns{"epoch", "phase"};
  for (const auto& s : strategies) {
    columns.push_back(s.name);
  }
  demo::CsvWriter table(demo::output_path(options.out_dir, "aucpr_by_epoch.csv"),
                        columns);
  for (int64_t epoch = 0; epoch < options.total_epochs; ++epoch) {
    const auto e = static_cast<size_t>(epoch);
    table.row(epoch, results[2].phase[e], results[0].aucpr[e], results[1].aucpr[e],
              results[2].aucpr[e]);
  }

  demo::Plot by_epoch{demo::output_path(options.out_dir, "aucpr_by_epoch.png"),
                      "Validation AUCPR by epoch",
                      "epoch",
                      "AUCPR",
                      {}};
  demo::Plot curves{demo::output_path(options.out_dir, "pr_curves.png"),
                    "Precision-recall on validation, final models",
                    "recall",
                    "precision",
                    {}};
  curves.points = false;
  for (size_t i = 0; i < strategies.size(); ++i) {
    by_epoch.series.push_back(
        {table.path(), "epoch", strategies[i].name, strategies[i].name});
    std::string slug = strategies[i].name;
    std::replace(slug.begin(), slug.end(), '+', '_');
    demo::CsvWriter curve(demo::output_path(options.out_dir, "pr_curve_" + slug + ".csv"),
                          {"recall", "precision"});
    for (const auto& point :
         demo::precision_recall_curve(results[i].final_scores, validation.y)) {
      curve.row(point.recall, point.precision);
    }
    curves.series.push_back({curve.path(), "recall", "precision", strategies[i].name});
  }
  std::printf("\nCSV in %s/", options.out_dir.c_str());
  if (demo::render_plot(by_epoch) && demo::render_plot(curves)) {
    std::printf(", plots aucpr_by_epoch.png and pr_curves.png");
  }
  std::printf("\n");
}

} // namespace

int main(int argc, char** argv) {
  demo::RankingDemoOptions options;
  CLI::App app{"warmup-only vs AP-only vs warmup+blend, by validation AUCPR."};
  demo::add_ranking_flags(app, options);
  CLI11_PARSE(app, argc, argv);

  const auto started = std::chrono::steady_clock::now();
  // The three strategies are independent: train them side by side.
  const auto threads = demo::configure_threads(options.threads, /*max_concurrent=*/3);
  const auto [train, validation] = demo::make_ranking_data(options);
  demo::describe_data(train, validation);
  std::printf("warmup_epochs=%lld  blend_epochs=%lld  total_epochs=%lld  pos_rate=%g\n\n",
              static_cast<long long>(options.warmup_epochs),
              static_cast<long long>(options.blend_epochs),
              static_cast<long long>(options.total_epochs), options.pos_rate);

  // The temperature decays over each strategy's main phase.
  const std::string label = demo::main_loss_label(options);
  const int64_t steps = demo::steps_per_epoch(options, train.x.size(0));
  const std::vector<Strategy> strategies{
      {"warmup-only", {options.total_epochs, 0, options.total_epochs * steps}},
      {label + "-only", {0, 0, options.total_epochs * steps}},
      {"warmup+blend",
       {options.warmup_epochs, options.blend_epochs,
        (options.total_epochs - options.warmup_epochs) * steps}}};
  // Same initial weights for all: built here, one after the other, from
  // torch's global generator (which the runs then leave alone).
  std::vector<torch::nn::Sequential> models;
  for (size_t i = 0; i < strategies.size(); ++i) {
    models.push_back(demo::make_ranking_model(options, train.x.size(1)));
  }
  std::vector<StrategyResult> results(strategies.size());
  demo::run_in_parallel(
      static_cast<int>(strategies.size()), threads.concurrent, [&](int i) {
        const auto k = static_cast<size_t>(i);
        std::printf("Running %s...\n", strategies[k].name.c_str());
        results[k] = run_strategy(strategies[k], models[k], options, train, validation);
      });
  if (!options.out_dir.empty()) {
    write_outputs(options, strategies, results, validation);
  }

  std::printf("\n%5s  %6s  %12s  %12s  %12s\n", "epoch", "phase",
              strategies[0].name.c_str(), strategies[1].name.c_str(),
              strategies[2].name.c_str());
  std::printf("%s\n", std::string(5 + 2 + 6 + 3 * (2 + 12), '-').c_str());
  for (int64_t epoch = 0; epoch < options.total_epochs; ++epoch) {
    const auto e = static_cast<size_t>(epoch);
    std::printf("%5lld  %6s  %12.4f  %12.4f  %12.4f\n", static_cast<long long>(epoch),
                results[2].phase[e].c_str(), results[0].aucpr[e], results[1].aucpr[e],
                results[2].aucpr[e]);
  }
  std::printf("\ntotal %.1f s\n\n", seconds_since(started));
  const auto best = [](const StrategyResult& r) {
    return *std::max_element(r.aucpr.begin(), r.aucpr.end());
  };
  std::printf("Best AUCPR  %s: %.4f  %s: %.4f  %s: %.4f\n", strategies[0].name.c_str(),
              best(results[0]), strategies[1].name.c_str(), best(results[1]),
              strategies[2].name.c_str(), best(results[2]));
  return 0;
}
