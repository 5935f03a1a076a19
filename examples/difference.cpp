// Why FairLoss: two predictions with true class 0, where cross-entropy
// prefers the wrong one. The C++ counterpart of pytorch-fairloss's
// examples/difference.py.
//
//   sample 1  logits [0.34, 0.33, 0.33]  argmax 0: correct
//   sample 2  logits [0.49, 0.51, 0.00]  argmax 1: wrong, but a higher logit
//                                        (and probability) on the true class
//
// Cross-entropy gives sample 2 the lower loss; FairLoss adds a penalty for
// the wrong argmax, so sample 1 wins. Expected output:
//   Cross-entropy:  [1.0920, 0.9681]
//   FairLoss:       [1.0920, 1.3014]
//
//   difference [--out DIR]     also DIR/difference.csv
#include "support/csv_writer.h"

#include <proxyloss/fair_loss.h>

#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

namespace {

// "[1.0920, 0.9681]": a 1-D tensor with 4 decimals, as torch prints it.
std::string format_values(const torch::Tensor& values) {
  const auto v = values.to(torch::kDouble).contiguous();
  std::string out = "[";
  char buffer[32];
  for (int64_t i = 0; i < v.numel(); ++i) {
    std::snprintf(buffer, sizeof(buffer), "%s%.4f", i ? ", " : "",
                  v.data_ptr<double>()[i]);
    out += buffer;
  }
  return out + "]";
}

} // namespace

int main(int argc, char** argv) {
  std::string out_dir;
  CLI::App app{"Cross-entropy vs FairLoss on two hand-picked predictions."};
  app.add_option("--out", out_dir, "Directory for difference.csv");
  CLI11_PARSE(app, argc, argv);

  const auto logits = torch::tensor({{0.34f, 0.33f, 0.33f}, {0.49f, 0.51f, 0.0f}});
  const auto targets = torch::tensor({0, 0}, torch::kLong);

  torch::nn::CrossEntropyLoss cross_entropy(
      torch::nn::CrossEntropyLossOptions().reduction(torch::kNone));
  proxyloss::FairLoss fair_loss(proxyloss::FairLossOptions().reduction(torch::kNone));
  const auto ce = cross_entropy(logits, targets);
  const auto fair = fair_loss(logits, targets);

  std::printf("Cross-entropy:  %s   # sample 2 wins\n", format_values(ce).c_str());
  std::printf("FairLoss:       %s   # sample 1 wins\n", format_values(fair).c_str());

  if (!out_dir.empty()) {
    demo::CsvWriter csv(demo::output_path(out_dir, "difference.csv"),
                        {"sample", "cross_entropy", "fair_loss"});
    for (int64_t i = 0; i < 2; ++i) {
      csv.row(i + 1, ce[i].item<double>(), fair[i].item<double>());
    }
  }
  return 0;
}
