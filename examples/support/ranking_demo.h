// What toy_demo and compare_demo share: the seed's flags, the synthetic
// imbalanced binary problem, the model, and the loss schedule
// (BCE warmup -> blend -> SmoothAP or RecallAtQuantile).
#pragma once

#include "support/make_classification.h"

#include <proxyloss/loss_warmup_wrapper.h>

#include <torch/nn/modules/container/sequential.h>

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace demo {

struct RankingDemoOptions {
  // Data: make_classification with 20 features (10 informative, 2
  // redundant), 3 clusters per class, 5 % label flips, class_sep 0.8.
  int64_t rows = 60000;    // split 75 % training, 25 % validation
  double pos_rate = 0.005; // share of class 1 before the label flips
  // Schedule, in epochs.
  int64_t warmup_epochs = 3;
  int64_t blend_epochs = 2;
  int64_t total_epochs = 15;
  // Optimisation.
  int64_t batch_size = 512;
  double lr = 1e-3;
  // Main loss.
  std::string loss = "ap"; // "ap": SmoothAPLoss, "recall": RecallAtQuantileLoss
  int64_t queue_size = 2048;
  double temp_start = 0.35;
  double temp_end = 0.01;
  double quantile = 0.0;   // RecallAtQuantileLoss's; 0: pos_rate
  int64_t decay_steps = 0; // temperature decay; 0: the main phase's steps
  uint64_t seed = 42;
  // Runtime and output.
  int threads = 0;     // 0: OMP_NUM_THREADS, else the hardware concurrency
  std::string out_dir; // empty: no CSV or plots
};

// Registers the seed's flags (--pos-rate, --warmup-epochs, --blend-epochs,
// --total-epochs, --batch-size, --queue-size, --temp-start, --temp-end, --lr,
// --seed, --loss, --quantile, --decay-steps) plus --rows, --threads and --out,
// with their defaults taken from `options`, and range checks.
void add_ranking_flags(CLI::App& app, RankingDemoOptions& options);

// The training and validation sets, generated from options.seed.
std::pair<Dataset, Dataset> make_ranking_data(const RankingDemoOptions& options);

// Prints one line describing the data: rows, features, positives.
void describe_data(const Dataset& train, const Dataset& validation);

// The demos' 20-64-1 MLP, initialised from torch's generator seeded with
// options.seed (so every strategy starts from the same weights).
torch::nn::Sequential make_ranking_model(const RankingDemoOptions& options,
                                         int64_t features);

// Batches per epoch on `train_rows` rows.
int64_t steps_per_epoch(const RankingDemoOptions& options, int64_t train_rows);

// A run's loss schedule: BCE for warmup_epochs, a linear blend over
// blend_epochs, then the main loss alone; the main loss's temperature decays
// from temp_start to temp_end over decay_steps steps from the switch
// (options.decay_steps instead, when set).
struct Schedule {
  int64_t warmup_epochs = 0;
  int64_t blend_epochs = 0;
  int64_t decay_steps = 1;
};

// What a run reports after each epoch.
struct EpochReport {
  int64_t epoch = 0;
  std::string phase;        // "warmup", "blend", or main_loss_label()
  double main_weight = 0.0; // of the main loss in the blend
  double temperature = 0.0; // the main loss's now (temp_start until it starts)
  double loss = 0.0;        // mean training loss over the epoch
  double aucpr = 0.0;       // validation average precision
  torch::Tensor scores;     // validation logits [N]
};

// Trains `model` for options.total_epochs under `schedule` (Adam at
// options.lr, batches of options.batch_size in an order drawn from
// options.seed) and calls on_epoch after each epoch. Uses no global state
// (torch's global generator included), so runs can go on side by side.
void train_ranking_model(const RankingDemoOptions& options, const Schedule& schedule,
                         torch::nn::Sequential model, const Dataset& train,
                         const Dataset& validation,
                         const std::function<void(const EpochReport&)>& on_epoch);

// "AP" or "RECALL", the main loss's label in tables.
std::string main_loss_label(const RankingDemoOptions& options);

} // namespace demo
