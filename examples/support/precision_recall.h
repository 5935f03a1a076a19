// The precision-recall curve of binary scores, for plots.
#pragma once

#include <torch/types.h>

#include <vector>

namespace demo {

struct PrPoint {
  double recall;
  double precision;
};

// One point per distinct score, from the highest threshold down (tied scores
// form one point, as scikit-learn's precision_recall_curve). Empty when there
// is no positive.
std::vector<PrPoint> precision_recall_curve(const torch::Tensor& scores,
                                            const torch::Tensor& labels);

} // namespace demo
