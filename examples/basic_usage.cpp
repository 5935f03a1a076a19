// A minimal training loop with FairLoss: a linear classifier on random data.
// The C++ counterpart of pytorch-fairloss's examples/basic_usage.py.
//
//   basic_usage [--steps 3] [--seed 0] [--threads N] [--out DIR]
#include "support/csv_writer.h"
#include "support/threads.h"

#include <proxyloss/fair_loss.h>

#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>

int main(int argc, char** argv) {
  int64_t steps = 3;
  uint64_t seed = 0;
  int threads = 0;
  std::string out_dir;
  CLI::App app{"Train nn::Linear(784, 10) with FairLoss on random batches."};
  app.option_defaults()->always_capture_default();
  app.add_option("--steps", steps, "Training steps")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "Seed of the weights and the data");
  app.add_option("--threads", threads,
                 "Intra-op threads (0: OMP_NUM_THREADS, else all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--out", out_dir, "Directory for basic_usage.csv");
  CLI11_PARSE(app, argc, argv);

  demo::configure_threads(threads);
  torch::manual_seed(seed);
  torch::nn::Linear model(784, 10);
  proxyloss::FairLoss criterion; // smooth_max_beta 1000, scaling_factor 1000, mean
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3));

  std::unique_ptr<demo::CsvWriter> csv;
  if (!out_dir.empty()) {
    csv = std::make_unique<demo::CsvWriter>(demo::output_path(out_dir, "basic_usage.csv"),
                                            std::vector<std::string>{"step", "loss"});
  }
  for (int64_t step = 1; step <= steps; ++step) {
    const auto x = torch::randn({64, 784});
    const auto y = torch::randint(0, 10, {64}, torch::kLong);

    const auto loss = criterion(model(x), y);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();

    std::printf("step=%lld loss=%.4f\n", static_cast<long long>(step),
                loss.item<double>());
    if (csv) {
      csv->row(step, loss.item<double>());
    }
  }
  return 0;
}
