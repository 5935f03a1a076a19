// Trains a small MLP on a synthetic, imbalanced binary problem (~2% positives)
// with proxyloss::SmoothAPLoss, and reports the validation average precision
// (AP) after every epoch.
//
//   ./build/examples/train_smooth_ap      (threads: OMP_NUM_THREADS, else all)
#include <proxyloss/proxyloss.h>

#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <thread>

namespace {

constexpr int64_t kRows = 20000;
constexpr int64_t kFeatures = 20;
constexpr int64_t kInformative = 4; // features where positives are shifted
constexpr double kPositiveRate = 0.02;
constexpr int64_t kBatchSize = 512;
constexpr int64_t kEpochs = 10;

// OMP_NUM_THREADS if set, else every hardware thread.
int configure_threads() {
  const char* env = std::getenv("OMP_NUM_THREADS");
  int n = env ? std::atoi(env) : 0;
  if (n <= 0) {
    n = static_cast<int>(std::thread::hardware_concurrency());
  }
  n = std::max(n, 1);
  at::set_num_threads(n);
  return n;
}

struct Dataset {
  torch::Tensor x; // [N, kFeatures] float32
  torch::Tensor y; // [N] int64, 1 for a positive
};

// Negatives ~ N(0, I); positives ~ N(mu, I) with mu = 1.5 on the first
// kInformative features and 0 elsewhere.
Dataset make_dataset(int64_t rows) {
  const auto y = torch::bernoulli(torch::full({rows}, kPositiveRate)).to(torch::kLong);
  auto shift = torch::zeros({kFeatures});
  shift.narrow(0, 0, kInformative).fill_(1.5);
  const auto x =
      torch::randn({rows, kFeatures}) + y.unsqueeze(1).to(torch::kFloat) * shift;
  return {x, y};
}

// Exact AP: sort by score, descending; AP is the mean, over the positives, of
// the precision among the rows ranked at or above each positive.
double average_precision(const torch::Tensor& scores, const torch::Tensor& labels) {
  const auto order = std::get<1>(scores.sort(/*dim=*/0, /*descending=*/true));
  const auto hits = labels.index_select(0, order).to(torch::kDouble);
  const double positives = hits.sum().item<double>();
  if (positives == 0) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  const auto rank = torch::arange(1, hits.size(0) + 1, torch::kDouble);
  const auto precision_at_rank = hits.cumsum(0) / rank;
  return (precision_at_rank * hits).sum().item<double>() / positives;
}

} // namespace

int main() {
  const int threads = configure_threads();
  std::printf("threads: %d, LibTorch %s\n", threads, TORCH_VERSION);
  torch::manual_seed(0);

  // 75% training, 25% validation.
  const Dataset data = make_dataset(kRows);
  const int64_t n_train = kRows * 3 / 4;
  const auto x_train = data.x.narrow(0, 0, n_train);
  const auto y_train = data.y.narrow(0, 0, n_train);
  const auto x_val = data.x.narrow(0, n_train, kRows - n_train);
  const auto y_val = data.y.narrow(0, n_train, kRows - n_train);
  std::printf("train: %lld rows (%lld positive), validation: %lld rows (%lld positive)\n",
              static_cast<long long>(n_train),
              static_cast<long long>(y_train.sum().item<int64_t>()),
              static_cast<long long>(x_val.size(0)),
              static_cast<long long>(y_val.sum().item<int64_t>()));

  torch::nn::Sequential model(torch::nn::Linear(kFeatures, 32), torch::nn::ReLU(),
                              torch::nn::Linear(32, 1));
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3));
  // Binary mode (one logit per row, targets 0/1). The queue keeps the logits
  // of the last 2048 rows, so each batch is ranked against ~2.5k rows and
  // ~50 positives instead of its own ~10.
  proxyloss::SmoothAPLoss criterion(
      proxyloss::SmoothAPLossOptions(1).queue_size(2048).temperature(0.05));

  const auto validation_ap = [&] {
    torch::NoGradGuard no_grad;
    model->eval();
    const auto scores = model->forward(x_val).squeeze(1);
    return average_precision(scores, y_val);
  };
  std::printf("epoch  0  validation AP %.4f (untrained)\n", validation_ap());

  for (int64_t epoch = 1; epoch <= kEpochs; ++epoch) {
    model->train();
    criterion->train();
    const auto perm = torch::randperm(n_train, torch::kLong);
    double loss_sum = 0.0;
    int64_t batches = 0;
    for (int64_t start = 0; start < n_train; start += kBatchSize) {
      const auto idx = perm.narrow(0, start, std::min(kBatchSize, n_train - start));
      const auto logits = model->forward(x_train.index_select(0, idx)); // [B, 1]
      const auto loss = criterion->forward(logits, y_train.index_select(0, idx));
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      loss_sum += loss.item<double>();
      ++batches;
    }
    std::printf("epoch %2lld  train loss %.4f  validation AP %.4f\n",
                static_cast<long long>(epoch), loss_sum / static_cast<double>(batches),
                validation_ap());
  }
  return 0;
}
