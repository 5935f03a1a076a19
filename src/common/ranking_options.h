// The option checks of the queued ranking losses, shared by their modules
// (at construction, naming the module) and their ops (at each call, naming
// the op).
#pragma once

#include "proxyloss/compat.h"

#include <cstdint>
#include <string>

namespace proxyloss {
namespace common {

// num_classes > 0, temperature finite > 0, max_pool_size > 0 when set, and
// ignore_index not a valid target (0/1 in binary mode, [0, C) otherwise).
void check_ranking_options(const std::string& who, int64_t num_classes,
                           double temperature, int64_t ignore_index,
                           const optional<int64_t>& max_pool_size);

void check_temperature(const std::string& who, double temperature);

// RecallAtQuantile's top fraction, in (0, 1).
void check_quantile(const std::string& who, double quantile);

} // namespace common
} // namespace proxyloss
