// The op label convention, shared by the ops: row m is a positive of class
// labels[m] when 0 <= labels[m] < C, and a negative of every class otherwise.
#pragma once

#include <ATen/ATen.h>

namespace proxyloss {
namespace ops_impl {

// The labels with every out-of-range value replaced by C (a sentinel
// class), so that they can index [C + 1] tables. Same device.
at::Tensor sentinel_labels(const at::Tensor& labels, int64_t num_classes);

// Positives per class: [C] int64 on the labels' device (no host sync).
at::Tensor positives_per_class(const at::Tensor& labels, int64_t num_classes);

// The positives' weight mass per class, sum_{m: labels[m] = c} weights[m]:
// [C] in the weights' dtype and on their device (no host sync).
at::Tensor positive_mass_per_class(const at::Tensor& labels, const at::Tensor& weights,
                                   int64_t num_classes);

} // namespace ops_impl
} // namespace proxyloss
