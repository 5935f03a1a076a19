#include "support/ranking_demo.h"

#include "support/bce_loss.h"
#include "support/mlp.h"
#include "support/training.h"

#include <proxyloss/metrics.h>
#include <proxyloss/recall_at_quantile_loss.h>
#include <proxyloss/smooth_ap_loss.h>

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>

namespace demo {

namespace {

// The schedule's LossWarmupWrapper: BinaryCrossEntropyLoss, then the main
// loss (options.loss) in binary mode with options.queue_size.
proxyloss::LossWarmupWrapper make_loss_schedule(const RankingDemoOptions& o,
                                                const Schedule& schedule) {
  torch::nn::AnyModule main_loss;
  if (o.loss == "recall") {
    main_loss = torch::nn::AnyModule(proxyloss::RecallAtQuantileLoss(
        proxyloss::RecallAtQuantileLossOptions(1)
            .quantile(o.quantile > 0.0 ? o.quantile : o.pos_rate)
            .queue_size(o.queue_size)
            .temperature(o.temp_start)));
  } else {
    main_loss =
        torch::nn::AnyModule(proxyloss::SmoothAPLoss(proxyloss::SmoothAPLossOptions(1)
                                                         .queue_size(o.queue_size)
                                                         .temperature(o.temp_start)));
  }
  const int64_t decay_steps = o.decay_steps > 0 ? o.decay_steps : schedule.decay_steps;
  return proxyloss::LossWarmupWrapper(
      torch::nn::AnyModule(BinaryCrossEntropyLoss()), std::move(main_loss),
      proxyloss::LossWarmupWrapperOptions()
          .warmup_epochs(schedule.warmup_epochs)
          .blend_epochs(schedule.blend_epochs)
          .temp_start(o.temp_start)
          .temp_end(o.temp_end)
          .temp_decay_steps(std::max<int64_t>(1, decay_steps)));
}

} // namespace

void add_ranking_flags(CLI::App& app, RankingDemoOptions& o) {
  app.option_defaults()->always_capture_default();
  app.add_option("--pos-rate", o.pos_rate, "Share of positives before the label flips")
      ->check(CLI::Range(1e-6, 0.5));
  app.add_option("--warmup-epochs", o.warmup_epochs, "Epochs of BCE warmup")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--blend-epochs", o.blend_epochs,
                 "Epochs of linear blend from BCE to the main loss (0: hard switch)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--total-epochs", o.total_epochs, "Training epochs")
      ->check(CLI::PositiveNumber);
  app.add_option("--batch-size", o.batch_size, "Rows per batch")
      ->check(CLI::PositiveNumber);
  app.add_option("--queue-size", o.queue_size,
                 "Rows of the main loss's memory queue (0: none)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--temp-start", o.temp_start, "Main loss temperature at the switch")
      ->check(CLI::PositiveNumber);
  app.add_option("--temp-end", o.temp_end, "Main loss temperature after the decay")
      ->check(CLI::PositiveNumber);
  app.add_option("--lr", o.lr, "Adam learning rate")->check(CLI::PositiveNumber);
  app.add_option("--seed", o.seed, "Seed of the data, the weights and the batches");
  app.add_option("--loss", o.loss,
                 "Main loss: SmoothAPLoss (ap) or RecallAtQuantileLoss (recall)")
      ->check(CLI::IsMember({"ap", "recall"}));
  app.add_option("--quantile", o.quantile,
                 "RecallAtQuantileLoss's quantile (0: --pos-rate)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--decay-steps", o.decay_steps,
                 "Temperature decay steps (0: the main phase's steps)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--rows", o.rows, "Rows generated (75 % training, 25 % validation)")
      ->check(CLI::Range(int64_t{100}, int64_t{100000000}));
  app.add_option("--threads", o.threads,
                 "Threads (0: OMP_NUM_THREADS, else all cores); with more than one, "
                 "independent runs train side by side")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--out", o.out_dir,
                 "Directory for CSV files (and PNG plots with gnuplot)");
}

std::pair<Dataset, Dataset> make_ranking_data(const RankingDemoOptions& o) {
  MakeClassificationOptions data;
  data.n_samples = o.rows;
  data.n_features = 20;
  data.n_informative = 10;
  data.n_redundant = 2;
  data.n_clusters_per_class = 3;
  data.weights = {1.0 - o.pos_rate, o.pos_rate};
  data.flip_y = 0.05;
  data.class_sep = 0.8;
  data.seed = o.seed;
  return split_rows(make_classification(data), 0.75);
}

void describe_data(const Dataset& train, const Dataset& validation) {
  const auto positives = [](const Dataset& d) { return d.y.sum().item<int64_t>(); };
  std::printf(
      "data: %lld features; training %lld rows (%lld positive), validation "
      "%lld rows (%lld positive)\n",
      static_cast<long long>(train.x.size(1)), static_cast<long long>(train.x.size(0)),
      static_cast<long long>(positives(train)),
      static_cast<long long>(validation.x.size(0)),
      static_cast<long long>(positives(validation)));
}

torch::nn::Sequential make_ranking_model(const RankingDemoOptions& o, int64_t features) {
  torch::manual_seed(o.seed);
  return make_mlp({features, 64, 1});
}

int64_t steps_per_epoch(const RankingDemoOptions& o, int64_t train_rows) {
  return (train_rows + o.batch_size - 1) / o.batch_size;
}

void train_ranking_model(const RankingDemoOptions& o, const Schedule& schedule,
                         torch::nn::Sequential model, const Dataset& train,
                         const Dataset& validation,
                         const std::function<void(const EpochReport&)>& on_epoch) {
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(o.lr));
  auto loss_fn = make_loss_schedule(o, schedule);
  TrainEpochOptions epoch_options;
  epoch_options.batch_size = o.batch_size;
  epoch_options.generator = seeded_generator(o.seed);
  epoch_options.on_batch_start = [&](int64_t step) {
    loss_fn->on_train_batch_start(step);
  };
  const auto loss = [&](const torch::Tensor& logits, const torch::Tensor& targets) {
    return loss_fn->forward(logits, targets);
  };

  int64_t global_step = 0;
  for (int64_t epoch = 0; epoch < o.total_epochs; ++epoch) {
    loss_fn->on_train_epoch_start(epoch);
    EpochReport report;
    report.epoch = epoch;
    report.loss = train_epoch(model, optimizer, loss, train, epoch_options, global_step);
    report.phase = loss_fn->in_warmup()  ? "warmup"
                   : loss_fn->in_blend() ? "blend"
                                         : main_loss_label(o);
    report.main_weight = loss_fn->main_weight();
    report.temperature = loss_fn->current_temperature().value_or(0.0);
    // Logits rank exactly as sigmoid probabilities would, without float32 ties.
    report.scores = predict(model, validation.x).squeeze(1);
    report.aucpr = proxyloss::metrics::average_precision(report.scores, validation.y);
    on_epoch(report);
  }
}

std::string main_loss_label(const RankingDemoOptions& o) {
  return o.loss == "recall" ? "RECALL" : "AP";
}

} // namespace demo
