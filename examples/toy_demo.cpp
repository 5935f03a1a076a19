// One model through the whole schedule: BCE warmup, a linear blend, then
// Smooth-AP (or RecallAtQuantile) with a decaying temperature, on a synthetic
// imbalanced binary problem. Prints, per epoch, the phase, the main loss's
// weight, its temperature, the mean training loss and the validation AUCPR,
// so you can see whether the switch to the ranking loss helps or hurts.
// The C++ counterpart of proxy-losses' examples/toy_demo.py.
//
//   toy_demo                       3 warmup + 2 blend epochs, 15 in all
//   toy_demo --blend-epochs 0      hard switch
//   toy_demo --pos-rate 0.05       an easier problem
//   toy_demo --out results         also results/toy_demo.csv (+ .png with gnuplot)
#include "support/csv_writer.h"
#include "support/gnuplot.h"
#include "support/ranking_demo.h"
#include "support/threads.h"

#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <memory>

int main(int argc, char** argv) {
  demo::RankingDemoOptions options;
  CLI::App app{"BCE warmup -> blend -> SmoothAP on one model, traced epoch by epoch."};
  demo::add_ranking_flags(app, options);
  CLI11_PARSE(app, argc, argv);

  const auto started = std::chrono::steady_clock::now();
  demo::configure_threads(options.threads);
  const auto [train, validation] = demo::make_ranking_data(options);
  demo::describe_data(train, validation);

  const demo::Schedule schedule{options.warmup_epochs, options.blend_epochs,
                                (options.total_epochs - options.warmup_epochs) *
                                    demo::steps_per_epoch(options, train.x.size(0))};

  std::unique_ptr<demo::CsvWriter> csv;
  if (!options.out_dir.empty()) {
    csv = std::make_unique<demo::CsvWriter>(
        demo::output_path(options.out_dir, "toy_demo.csv"),
        std::vector<std::string>{"epoch", "phase", "main_weight", "temperature", "loss",
                                 "aucpr"});
  }

  std::printf("\n%5s  %7s  %6s  %8s  %8s  %7s\n", "epoch", "phase", "weight", "temp",
              "loss", "AUCPR");
  std::printf("----------------------------------------------\n");
  demo::train_ranking_model(
      options, schedule, demo::make_ranking_model(options, train.x.size(1)), train,
      validation, [&](const demo::EpochReport& r) {
        std::printf("%5lld  %7s  %6.2f  %8.5f  %8.4f  %7.4f\n",
                    static_cast<long long>(r.epoch), r.phase.c_str(), r.main_weight,
                    r.temperature, r.loss, r.aucpr);
        std::fflush(stdout);
        if (csv) {
          csv->row(r.epoch, r.phase, r.main_weight, r.temperature, r.loss, r.aucpr);
        }
      });

  if (csv) {
    demo::Plot plot;
    plot.png = demo::output_path(options.out_dir, "toy_demo.png");
    plot.title = "Validation AUCPR by epoch";
    plot.x_label = "epoch";
    plot.y_label = "AUCPR";
    plot.series.push_back({csv->path(), "epoch", "aucpr", "warmup+blend"});
    std::printf("numbers in %s", csv->path().c_str());
    if (demo::render_plot(plot)) {
      std::printf(", plot in %s", plot.png.c_str());
    }
    std::printf("\n");
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("done in %.1f s\n", seconds);
  return 0;
}
