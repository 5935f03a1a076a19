// The `reduction` option of proxyloss losses: torch's own values.
#pragma once

#include <torch/enum.h>
#include <torch/nn/options/loss.h>

#include <string>

namespace proxyloss {

// c10::variant<kNone, kMean, kSum> in 1.13, std::variant in recent 2.x:
// borrowed from torch's own loss options so it is always the right one.
using reduction_t = torch::nn::L1LossOptions::reduction_t;

enum class Reduction { None, Mean, Sum };

inline Reduction reduction_kind(const reduction_t& reduction) {
  switch (torch::enumtype::reduction_get_enum(reduction)) {
    case at::Reduction::None:
      return Reduction::None;
    case at::Reduction::Sum:
      return Reduction::Sum;
    default:
      return Reduction::Mean;
  }
}

// "kMean", "kSum" or "kNone", as torch prints them.
inline std::string reduction_name(const reduction_t& reduction) {
  return torch::enumtype::get_enum_name(reduction);
}

} // namespace proxyloss
