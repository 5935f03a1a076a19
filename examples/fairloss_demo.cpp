// Cross-entropy vs FairLoss on a synthetic multi-class problem with label
// noise, side by side from the same initial weights and batch order. After
// each epoch every model is scored on the validation set by accuracy,
// macro-F1, and the penalized scoring rules of Ahmadian et al. (2025) that
// FairLoss is built after: the penalized Brier score (PBS) and penalized log
// loss (PLL), lower is better.
//
// FairLoss adds to cross-entropy (2 sigmoid(k (smoothmax_beta(z) - z_y)) - 1)
// / C: up to 1 / C for a wrong argmax. Two FairLoss arms are trained:
//   FairLoss       the library's defaults, beta = k = 1000: the penalty is
//                  nearly a step; its gradient lives in a band of ~1/k around
//                  the decision boundary, where it is ~k / C times
//                  cross-entropy's. Those rare, large gradients inflate
//                  Adam's second-moment estimates and slow learning: on this
//                  problem it trails cross-entropy.
//   FairLoss soft  beta = k = --soft (10): a smooth penalty that pushes every
//                  row near the boundary to the right side; on this problem
//                  it beats cross-entropy on all four metrics.
//
//   fairloss_demo                       5 classes, 20 % label flips, 30 epochs
//   fairloss_demo --flip-y 0.4          noisier labels
//   fairloss_demo --out results         CSV (+ PNG plots with gnuplot)
#include "support/classification_metrics.h"
#include "support/csv_writer.h"
#include "support/gnuplot.h"
#include "support/make_classification.h"
#include "support/mlp.h"
#include "support/parallel_runs.h"
#include "support/threads.h"
#include "support/training.h"

#include <proxyloss/fair_loss.h>
#include <proxyloss/metrics.h>

#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace {

struct Options {
  int64_t rows = 20000; // split 75 % training, 25 % validation
  int64_t classes = 5;
  double flip_y = 0.2;
  double class_sep = 1.0;
  int64_t epochs = 30;
  int64_t batch_size = 256;
  double lr = 1e-3;
  double smooth_max_beta = 1000.0;
  double scaling_factor = 1000.0;
  double soft = 10.0; // beta = k of the "FairLoss soft" arm; 0 leaves it out
  uint64_t seed = 42;
  int threads = 0;
  std::string out_dir;
};

struct Scores {
  double accuracy;
  double macro_f1;
  double pbs; // penalized Brier score
  double pll; // penalized log loss
};

Scores evaluate(torch::nn::Sequential& model, const demo::Dataset& data) {
  const auto logits = demo::predict(model, data.x);
  const auto probs = torch::softmax(logits, /*dim=*/1);
  return {demo::accuracy(logits, data.y), demo::macro_f1(logits, data.y),
          proxyloss::metrics::penalized_brier_score(probs, data.y),
          proxyloss::metrics::penalized_log_loss(probs, data.y)};
}

// Trains `model` with `loss` and scores it on `validation` after each epoch.
std::vector<Scores> run(const std::string& name, const demo::LossFunction& loss,
                        torch::nn::Sequential model, const Options& options,
                        const demo::Dataset& train, const demo::Dataset& validation) {
  const auto started = std::chrono::steady_clock::now();
  torch::optim::Adam optimizer(model->parameters(),
                               torch::optim::AdamOptions(options.lr));
  demo::TrainEpochOptions epoch_options;
  epoch_options.batch_size = options.batch_size;
  epoch_options.generator = demo::seeded_generator(options.seed);
  std::vector<Scores> history;
  int64_t global_step = 0;
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    const double mean_loss =
        demo::train_epoch(model, optimizer, loss, train, epoch_options, global_step);
    history.push_back(evaluate(model, validation));
    const auto& s = history.back();
    std::printf(
        "  %-13s epoch %3lld/%lld  loss %.4f  accuracy %.4f  macro-F1 %.4f  "
        "PBS %.4f  PLL %.4f  (%.1f s)\n",
        name.c_str(), static_cast<long long>(epoch + 1),
        static_cast<long long>(options.epochs), mean_loss, s.accuracy, s.macro_f1, s.pbs,
        s.pll,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
            .count());
    std::fflush(stdout);
  }
  return history;
}

// One arm of the comparison: a name, a CSV column prefix and a loss.
struct Arm {
  std::string name;
  std::string prefix;
  demo::LossFunction loss;
};

void write_outputs(const Options& options, const std::vector<Arm>& arms,
                   const std::vector<std::vector<Scores>>& history) {
  std::vector<std::string> columns{"epoch"};
  for (const auto& arm : arms) {
    for (const char* metric : {"accuracy", "macro_f1", "pbs", "pll"}) {
      columns.push_back(arm.prefix + "_" + metric);
    }
  }
  demo::CsvWriter csv(demo::output_path(options.out_dir, "fairloss_demo.csv"), columns);
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    const auto e = static_cast<size_t>(epoch);
    std::vector<double> values{static_cast<double>(epoch)};
    for (const auto& h : history) {
      values.insert(values.end(), {h[e].accuracy, h[e].macro_f1, h[e].pbs, h[e].pll});
    }
    csv.numbers_row(values);
  }

  demo::Plot accuracy;
  accuracy.png = demo::output_path(options.out_dir, "fairloss_demo_accuracy.png");
  accuracy.title = "Validation accuracy and macro-F1 by epoch (higher is better)";
  accuracy.x_label = "epoch";
  accuracy.y_label = "accuracy, macro-F1";
  demo::Plot scoring = accuracy;
  scoring.png = demo::output_path(options.out_dir, "fairloss_demo_scoring.png");
  scoring.title = "Validation PBS and PLL by epoch (lower is better)";
  scoring.y_label = "PBS, PLL";
  for (const auto& arm : arms) {
    const auto& p = arm.prefix;
    accuracy.series.push_back(
        {csv.path(), "epoch", p + "_accuracy", arm.name + " accuracy"});
    accuracy.series.push_back(
        {csv.path(), "epoch", p + "_macro_f1", arm.name + " macro-F1"});
    scoring.series.push_back({csv.path(), "epoch", p + "_pbs", arm.name + " PBS"});
    scoring.series.push_back({csv.path(), "epoch", p + "_pll", arm.name + " PLL"});
  }
  std::printf("\nCSV in %s", csv.path().c_str());
  if (demo::render_plot(accuracy) && demo::render_plot(scoring)) {
    std::printf(", plots %s and %s", accuracy.png.c_str(), scoring.png.c_str());
  }
  std::printf("\n");
}

} // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{
      "Cross-entropy vs FairLoss with label noise: accuracy, macro-F1, PBS, PLL."};
  app.option_defaults()->always_capture_default();
  app.add_option("--rows", options.rows, "Rows generated (75 % training)")
      ->check(CLI::Range(int64_t{100}, int64_t{100000000}));
  app.add_option("--classes", options.classes, "Classes")->check(CLI::Range(2, 64));
  app.add_option("--flip-y", options.flip_y,
                 "Fraction of labels replaced by a random class (label noise)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--class-sep", options.class_sep, "Separation of the class clusters")
      ->check(CLI::PositiveNumber);
  app.add_option("--epochs", options.epochs, "Training epochs")
      ->check(CLI::PositiveNumber);
  app.add_option("--batch-size", options.batch_size, "Rows per batch")
      ->check(CLI::PositiveNumber);
  app.add_option("--lr", options.lr, "Adam learning rate")->check(CLI::PositiveNumber);
  app.add_option("--smooth-max-beta", options.smooth_max_beta,
                 "FairLoss's smooth_max_beta")
      ->check(CLI::PositiveNumber);
  app.add_option("--scaling-factor", options.scaling_factor, "FairLoss's scaling_factor")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--soft", options.soft,
                 "beta = k of the 'FairLoss soft' arm (0: leave the arm out)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--seed", options.seed, "Seed of the data, the weights and the batches");
  app.add_option("--threads", options.threads,
                 "Threads (0: OMP_NUM_THREADS, else all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--out", options.out_dir,
                 "Directory for CSV (and PNG plots with gnuplot)");
  CLI11_PARSE(app, argc, argv);

  const auto started = std::chrono::steady_clock::now();

  // 20 features (8 informative, 2 redundant), 2 clusters per class, balanced
  // classes; flip_y of the labels (all splits) replaced at random.
  demo::MakeClassificationOptions data;
  data.n_samples = options.rows;
  data.n_features = 20;
  data.n_informative = 8;
  data.n_redundant = 2;
  data.n_classes = options.classes;
  data.n_clusters_per_class = 2;
  data.flip_y = options.flip_y;
  data.class_sep = options.class_sep;
  data.seed = options.seed;
  const auto [train, validation] =
      demo::split_rows(demo::make_classification(data), 0.75);
  std::printf(
      "data: %lld classes, 20 features, %.0f %% labels flipped; training %lld "
      "rows, validation %lld rows\n\n",
      static_cast<long long>(options.classes), 100.0 * options.flip_y,
      static_cast<long long>(train.x.size(0)),
      static_cast<long long>(validation.x.size(0)));

  torch::nn::CrossEntropyLoss cross_entropy;
  proxyloss::FairLoss fair_loss(proxyloss::FairLossOptions()
                                    .smooth_max_beta(options.smooth_max_beta)
                                    .scaling_factor(options.scaling_factor));
  proxyloss::FairLoss soft_fair_loss(proxyloss::FairLossOptions()
                                         .smooth_max_beta(options.soft)
                                         .scaling_factor(options.soft));
  std::vector<Arm> arms{{"cross-entropy", "ce",
                         [&](const torch::Tensor& logits, const torch::Tensor& targets) {
                           return cross_entropy(logits, targets);
                         }},
                        {"FairLoss", "fair",
                         [&](const torch::Tensor& logits, const torch::Tensor& targets) {
                           return fair_loss(logits, targets);
                         }}};
  if (options.soft > 0.0) {
    arms.push_back({"FairLoss soft", "fair_soft",
                    [&](const torch::Tensor& logits, const torch::Tensor& targets) {
                      return soft_fair_loss(logits, targets);
                    }});
  }
  const auto threads =
      demo::configure_threads(options.threads, static_cast<int>(arms.size()));
  std::printf("FairLoss: smooth_max_beta %g, scaling_factor %g", options.smooth_max_beta,
              options.scaling_factor);
  if (options.soft > 0.0) {
    std::printf("; FairLoss soft: both %g", options.soft);
  }
  std::printf("\n\n");

  // The same initial weights for all, drawn here one after the other.
  std::vector<torch::nn::Sequential> models;
  for (size_t i = 0; i < arms.size(); ++i) {
    torch::manual_seed(options.seed);
    models.push_back(demo::make_mlp({train.x.size(1), 64, options.classes}));
  }
  std::vector<std::vector<Scores>> history(arms.size());
  demo::run_in_parallel(static_cast<int>(arms.size()), threads.concurrent, [&](int i) {
    const auto k = static_cast<size_t>(i);
    history[k] = run(arms[k].name, arms[k].loss, models[k], options, train, validation);
  });
  if (!options.out_dir.empty()) {
    write_outputs(options, arms, history);
  }

  // Per epoch: accuracy, macro-F1, PBS, PLL of each arm.
  std::printf("\n%5s", "");
  for (const auto& arm : arms) {
    std::printf("  | %-27s", arm.name.c_str());
  }
  std::printf("\n%5s", "epoch");
  for (size_t a = 0; a < arms.size(); ++a) {
    std::printf("  | %6s %6s %6s %6s", "acc", "F1", "PBS", "PLL");
  }
  std::printf("\n");
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    std::printf("%5lld", static_cast<long long>(epoch));
    for (const auto& h : history) {
      const auto& s = h[static_cast<size_t>(epoch)];
      std::printf("  | %6.4f %6.4f %6.4f %6.4f", s.accuracy, s.macro_f1, s.pbs, s.pll);
    }
    std::printf("\n");
  }
  std::printf(
      "\ndone in %.1f s\n\n",
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  for (size_t a = 0; a < arms.size(); ++a) {
    const auto& s = history[a].back();
    std::printf("%-6s %-14s accuracy %.4f  macro-F1 %.4f  PBS %.4f  PLL %.4f\n",
                a == 0 ? "Final" : "", (arms[a].name + ":").c_str(), s.accuracy,
                s.macro_f1, s.pbs, s.pll);
  }
  return 0;
}
