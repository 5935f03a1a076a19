#include "ops/op_labels.h"

namespace proxyloss {
namespace ops_impl {

at::Tensor sentinel_labels(const at::Tensor& labels, int64_t num_classes) {
  const auto in_range = labels.ge(0).logical_and(labels.lt(num_classes));
  return at::where(in_range, labels, at::full_like(labels, num_classes));
}

namespace {

// sum of `values` per label: clamped to [-1, C] and shifted by one, the
// negatives (below 0 or at least C) fall in the two outer bins. (Summed by
// index_add into a fixed-size table, not bincount, whose output size depends
// on the labels' values for a tracer.)
at::Tensor sum_per_class(const at::Tensor& labels, const at::Tensor& values,
                         int64_t num_classes) {
  const auto bins = labels.clamp(-1, num_classes) + 1;
  return at::zeros({num_classes + 2}, values.options())
      .index_add_(0, bins, values)
      .narrow(0, 1, num_classes);
}

} // namespace

at::Tensor positives_per_class(const at::Tensor& labels, int64_t num_classes) {
  return sum_per_class(labels, at::ones_like(labels), num_classes);
}

at::Tensor positive_mass_per_class(const at::Tensor& labels, const at::Tensor& weights,
                                   int64_t num_classes) {
  return sum_per_class(labels, weights, num_classes);
}

} // namespace ops_impl
} // namespace proxyloss
