// PAUCAtBudgetLoss's own options, checked by its module (at construction,
// naming the module) and its op (at each call, naming the op).
#pragma once

#include <cstdint>
#include <string>

namespace proxyloss {
namespace common {

struct PaucChoices {
  bool pairwise;         // surrogate: "pairwise" (else "trapezoid")
  bool band_scale;       // tau_scale: "band" (else "iqr")
  bool live_numerator;   // pos_numerator: "live" (else "pool")
  bool population_basis; // budget_basis: "population" (else "fpr")
};

// 0 <= alpha < beta <= 1, n_knots >= 2, and each string one of its choices
// (surrogate "trapezoid" / "pairwise", tau_scale "iqr" / "band",
// pos_numerator "pool" / "live", budget_basis "fpr" / "population"); throws a
// ValueError naming `who` and the option otherwise.
PaucChoices check_pauc_options(const std::string& who, double alpha, double beta,
                               int64_t n_knots, const std::string& surrogate,
                               const std::string& tau_scale,
                               const std::string& pos_numerator,
                               const std::string& budget_basis);

} // namespace common
} // namespace proxyloss
