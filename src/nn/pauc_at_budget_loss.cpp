// PAUCAtBudgetLoss: calls of the proxyloss::pauc_at_budget_loss op
// (include/proxyloss/ops.h), the degenerate-dispersion warning and the
// diagnostics of the last forward.
#include "proxyloss/pauc_at_budget_loss.h"

#include "common/pauc_options.h"
#include "common/reduction.h"
#include "distributed/gather_batch.h"
#include "ops/selection_quantile.h"
#include "proxyloss/ops.h"

#include <c10/util/Exception.h>

#include <sstream>

namespace proxyloss {
namespace {

// This batch's non-ignored positives per class (before any pooling).
torch::Tensor positives_in_batch(const torch::Tensor& targets, int64_t num_classes,
                                 int64_t ignore_index) {
  const auto flat = targets.reshape({-1}).to(torch::kLong);
  const auto kept = flat.masked_select(flat.ne(ignore_index));
  if (num_classes == 1) {
    return kept.ne(0).sum().reshape({1});
  }
  return torch::bincount(kept, /*weights=*/{}, num_classes);
}

} // namespace

void PAUCAtBudgetLossImpl::check_extra_options() const {
  common::check_pauc_options(kName, options.alpha(), options.beta(), options.n_knots(),
                             options.surrogate(), options.tau_scale(),
                             options.pos_numerator(), options.budget_basis());
  ops_impl::parse_interpolation(options.quantile_interpolation(),
                                std::string(kName) + ": quantile_interpolation");
}

void PAUCAtBudgetLossImpl::print_extra_options(std::ostream& stream) const {
  stream << ", alpha=" << options.alpha() << ", beta=" << options.beta()
         << ", surrogate=" << options.surrogate() << ", n_knots=" << options.n_knots()
         << ", tau_scale=" << options.tau_scale()
         << ", pos_numerator=" << options.pos_numerator()
         << ", budget_basis=" << options.budget_basis()
         << ", quantile_interpolation=" << options.quantile_interpolation();
}

void PAUCAtBudgetLossImpl::describe_extra_options(
    distributed_impl::OptionList& agreed) const {
  agreed.add("alpha", options.alpha())
      .add("beta", options.beta())
      .add("surrogate", options.surrogate())
      .add("n_knots", options.n_knots())
      .add("tau_scale", options.tau_scale())
      .add("pos_numerator", options.pos_numerator())
      .add("budget_basis", options.budget_basis())
      .add("quantile_interpolation", options.quantile_interpolation());
}

RankingLossResult PAUCAtBudgetLossImpl::call_op(const torch::Tensor& logits,
                                                const torch::Tensor& targets,
                                                const RankingStepInputs& inputs) {
  const auto result = ops::pauc_at_budget_loss(
      logits, targets, inputs.queue_logits, inputs.queue_targets, options.num_classes(),
      options.alpha(), options.beta(), options.surrogate(), options.n_knots(),
      options.tau_scale(), options.pos_numerator(), options.budget_basis(),
      options.temperature(), common::reduction_string(options.reduction()),
      options.ignore_index(), options.quantile_interpolation(), options.max_pool_size(),
      inputs.sample_weight, inputs.queue_weight, inputs.iid_mask, inputs.queue_iid);
  last_diagnostics_ = {std::get<4>(result),
                       std::get<5>(result),
                       std::get<6>(result),
                       std::get<7>(result),
                       std::get<8>(result),
                       positives_in_batch(inputs.local_targets.value_or(targets),
                                          options.num_classes(), options.ignore_index())};
  const auto degenerate = std::get<10>(result).to(torch::kCPU);
  if (!warned_.degenerate && degenerate.any().item<bool>()) {
    warned_.degenerate = true;
    const int64_t c = degenerate.nonzero()[0][0].item<int64_t>();
    const bool population = options.budget_basis() == "population";
    const char* who =
        population ? "the iid rows (positives and negatives)" : "the iid negatives";
    std::ostringstream why;
    if (options.alpha() == 0) {
      why << "with alpha = 0, t_alpha is the largest of them";
    } else {
      why << "resolving the tail quantile at alpha = " << options.alpha()
          << " needs at least ~" << 1.0 / options.alpha() << " of them";
    }
    TORCH_WARN(kName, ": class ", c, " has a near-zero score dispersion (",
               options.tau_scale() == "iqr" ? "IQR" : "band width", " = ",
               std::get<9>(result)[c].item<double>(), " <= 1e-12) over ", who,
               ", which place the band [", options.alpha(), ", ", options.beta(),
               "]: those scores are (nearly) equal or too few (", why.str(),
               "). The class is skipped (invalid); a larger queue_size or reference "
               "scores with a real spread fix it. (This warning is shown once per "
               "instance.)");
  }
  return {std::get<0>(result), std::get<1>(result), std::get<2>(result),
          std::get<3>(result)};
}

torch::Tensor PAUCAtBudgetLossImpl::forward(const torch::Tensor& logits,
                                            const torch::Tensor& targets,
                                            const torch::Tensor& sample_weight,
                                            const torch::Tensor& iid_mask) {
  return std::get<0>(step(logits, targets, sample_weight, iid_mask));
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor>
PAUCAtBudgetLossImpl::forward_with_iid(const torch::Tensor& logits,
                                       const torch::Tensor& targets,
                                       const torch::Tensor& sample_weight,
                                       const torch::Tensor& iid_mask) {
  return step(logits, targets, sample_weight, iid_mask);
}

} // namespace proxyloss
