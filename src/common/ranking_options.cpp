#include "common/ranking_options.h"

#include <c10/util/Exception.h>

#include <cmath>

namespace proxyloss {
namespace common {

void check_temperature(const std::string& who, double temperature) {
  TORCH_CHECK_VALUE(std::isfinite(temperature) && temperature > 0, who,
                    ": temperature must be finite and > 0, got ", temperature);
}

void check_ranking_options(const std::string& who, int64_t num_classes,
                           double temperature, int64_t ignore_index,
                           const optional<int64_t>& max_pool_size) {
  TORCH_CHECK_VALUE(num_classes > 0, who, ": num_classes must be > 0, got ", num_classes);
  check_temperature(who, temperature);
  if (max_pool_size.has_value()) {
    TORCH_CHECK_VALUE(*max_pool_size > 0, who,
                      ": max_pool_size must be > 0 when set, got ", *max_pool_size);
  }
  const bool binary = num_classes == 1;
  const int64_t label_end = binary ? 2 : num_classes;
  TORCH_CHECK_VALUE(ignore_index < 0 || ignore_index >= label_end, who,
                    ": ignore_index must not be a valid target (",
                    binary ? "0 or 1 in binary mode" : "a class in [0, num_classes)",
                    "), got ignore_index=", ignore_index,
                    " with num_classes=", num_classes);
}

void check_quantile(const std::string& who, double quantile) {
  TORCH_CHECK_VALUE(std::isfinite(quantile) && quantile > 0 && quantile < 1, who,
                    ": quantile must be in (0, 1), got ", quantile);
}

} // namespace common
} // namespace proxyloss
