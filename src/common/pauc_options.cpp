#include "common/pauc_options.h"

#include <c10/util/Exception.h>

namespace proxyloss {
namespace common {
namespace {

// Whether `value` is `second` (true) or `first` (false); a ValueError otherwise.
bool one_of(const std::string& who, const char* option, const std::string& value,
            const char* first, const char* second) {
  TORCH_CHECK_VALUE(value == first || value == second, who, ": ", option, " must be \"",
                    first, "\" or \"", second, "\", got \"", value, "\"");
  return value == second;
}

} // namespace

PaucChoices check_pauc_options(const std::string& who, double alpha, double beta,
                               int64_t n_knots, const std::string& surrogate,
                               const std::string& tau_scale,
                               const std::string& pos_numerator,
                               const std::string& budget_basis) {
  TORCH_CHECK_VALUE(0.0 <= alpha && alpha < beta && beta <= 1.0, who,
                    ": alpha and beta must satisfy 0 <= alpha < beta <= 1 (the false "
                    "positive rate band), got alpha=",
                    alpha, ", beta=", beta);
  TORCH_CHECK_VALUE(n_knots >= 2, who, ": n_knots must be >= 2, got ", n_knots);
  return {one_of(who, "surrogate", surrogate, "trapezoid", "pairwise"),
          one_of(who, "tau_scale", tau_scale, "iqr", "band"),
          one_of(who, "pos_numerator", pos_numerator, "pool", "live"),
          one_of(who, "budget_basis", budget_basis, "fpr", "population")};
}

} // namespace common
} // namespace proxyloss
