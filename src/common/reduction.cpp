#include "common/reduction.h"

#include <c10/util/Exception.h>

namespace proxyloss {
namespace common {

Reduction parse_reduction(const std::string& who, const std::string& name) {
  if (name == "mean") {
    return Reduction::Mean;
  }
  if (name == "sum") {
    return Reduction::Sum;
  }
  TORCH_CHECK_VALUE(name == "none", who,
                    ": reduction must be \"mean\", \"sum\" or \"none\", got \"", name,
                    "\"");
  return Reduction::None;
}

std::string reduction_string(const reduction_t& reduction) {
  switch (reduction_kind(reduction)) {
    case Reduction::None:
      return "none";
    case Reduction::Sum:
      return "sum";
    case Reduction::Mean:
      break;
  }
  return "mean";
}

at::Tensor reduce(const at::Tensor& values, Reduction reduction,
                  const at::Tensor& count) {
  switch (reduction) {
    case Reduction::None:
      return values;
    case Reduction::Sum:
      return values.sum();
    case Reduction::Mean:
      break;
  }
  return values.sum() / count;
}

} // namespace common
} // namespace proxyloss
