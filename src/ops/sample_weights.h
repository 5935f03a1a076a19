// Per-sample weights (the successor's `sample_weight`), shared by the losses
// that take them. A weight scales a sample's loss term; it never carries a
// gradient. Weighted means divide by the weight mass of the terms the
// unweighted mean counts, floored to 1 where that mass is exactly 0 (as the
// unweighted count is floored to 1): an all-zero-weight batch gives 0, not
// NaN, and a legitimate mass below 1 is kept.
#pragma once

#include "proxyloss/compat.h"

#include <ATen/ATen.h>

#include <string>

namespace proxyloss {
namespace ops_impl {

// `weight` detached, checked finite and >= 0 on every entry (a ValueError
// "<who>: sample_weight must be finite and >= 0, got ..." naming the first
// bad values; through _checked_values, so that the check runs in a compiled
// graph too), in `dtype`. Its shape is the caller's to check.
at::Tensor checked_sample_weight(const std::string& who, const at::Tensor& weight,
                                 at::ScalarType dtype);

// A ranking op's per-row weights of a pool: throws a ValueError naming `who`
// unless `weights` is [M] (M = scores.size(0)), floating, on the scores'
// device, finite and >= 0 (one host read).
void check_pool_weights(const std::string& who, const at::Tensor& scores,
                        const at::Tensor& weights);

// The weights as float64 [M] (contiguous), or undefined when not given.
at::Tensor weights_in_double(const optional<at::Tensor>& weights);

// sum / mass where mass > 0, sum / 1 where mass == 0 (0-dim tensors).
at::Tensor weighted_mean(const at::Tensor& weighted_sum, const at::Tensor& mass);

} // namespace ops_impl
} // namespace proxyloss
