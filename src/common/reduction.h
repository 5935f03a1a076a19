// The reduction switch, once for every loss, and the names the ops take.
#pragma once

#include "proxyloss/reduction.h"

#include <ATen/ATen.h>

#include <string>

namespace proxyloss {
namespace common {

// "mean", "sum" or "none" (the ops' schema argument); anything else throws
// c10::Error naming `who`.
Reduction parse_reduction(const std::string& who, const std::string& name);

// The schema name of a module option: torch::kMean -> "mean".
std::string reduction_string(const reduction_t& reduction);

// none keeps `values`; sum adds them; mean divides their sum by `count`, a
// scalar tensor: the number of terms the loss averages over (each loss
// defines it: all rows, the rows not ignored, the valid classes, ...).
at::Tensor reduce(const at::Tensor& values, Reduction reduction, const at::Tensor& count);

} // namespace common
} // namespace proxyloss
