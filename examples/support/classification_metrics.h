// Accuracy and macro-F1 of multi-class predictions (proxyloss::metrics has
// the ranking and scoring-rule metrics; these two complete fairloss_demo's
// report).
#pragma once

#include <torch/types.h>

namespace demo {

// Fraction of rows whose argmax over logits [N, C] equals targets [N].
double accuracy(const torch::Tensor& logits, const torch::Tensor& targets);

// Mean over the C classes of F1 = 2 TP / (2 TP + FP + FN), predictions by
// argmax; a class never predicted and never present scores 0 (scikit-learn's
// f1_score(average="macro", zero_division=0)).
double macro_f1(const torch::Tensor& logits, const torch::Tensor& targets);

} // namespace demo
