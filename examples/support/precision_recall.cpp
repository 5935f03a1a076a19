#include "support/precision_recall.h"

#include <torch/torch.h>

namespace demo {

std::vector<PrPoint> precision_recall_curve(const torch::Tensor& scores,
                                            const torch::Tensor& labels) {
  const auto s = scores.detach().reshape({-1}).to(torch::kCPU, torch::kDouble);
  const auto order = std::get<1>(s.sort(/*dim=*/0, /*descending=*/true));
  const auto sorted = s.index_select(0, order).contiguous();
  const auto hits =
      labels.reshape({-1}).to(torch::kCPU).index_select(0, order).ne(0).contiguous();
  const auto* score = sorted.data_ptr<double>();
  const auto* hit = hits.data_ptr<bool>();
  const int64_t n = sorted.numel();
  const int64_t positives = hits.sum().item<int64_t>();

  std::vector<PrPoint> curve;
  if (positives == 0) {
    return curve;
  }
  int64_t true_positives = 0;
  for (int64_t i = 0; i < n; ++i) {
    true_positives += hit[i] ? 1 : 0;
    // A point at the last row of each run of tied scores.
    if (i + 1 == n || score[i + 1] != score[i]) {
      curve.push_back(
          {static_cast<double>(true_positives) / static_cast<double>(positives),
           static_cast<double>(true_positives) / static_cast<double>(i + 1)});
    }
  }
  return curve;
}

} // namespace demo
