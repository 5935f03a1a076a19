#include "proxyloss/recall_at_quantile_loss.h"

#include "proxyloss/detail/quantile.h"

#include <torch/types.h>

#include <cmath>
#include <limits>
#include <vector>

namespace proxyloss {
namespace {

void check_quantile_options(const RecallAtQuantileLossOptions& options) {
  const double q = options.quantile();
  TORCH_CHECK(std::isfinite(q) && q > 0 && q < 1,
              "RecallAtQuantileLoss: quantile must be in (0, 1), got ", q);
  detail::parse_interpolation(options.interpolation(),
                              "RecallAtQuantileLoss: interpolation");
}

} // namespace

RecallAtQuantileLossImpl::RecallAtQuantileLossImpl(RecallAtQuantileLossOptions options_)
    : QueuedRankingModule(std::move(options_)) {
  check_quantile_options(options);
}

void RecallAtQuantileLossImpl::reset() {
  check_quantile_options(options);
  QueuedRankingModule::reset();
}

detail::PerClass RecallAtQuantileLossImpl::compute_per_class(
    const torch::Tensor& pool_logits, const torch::Tensor& labels) const {
  check_quantile_options(options); // they may have been edited since reset()
  const auto interpolation = detail::parse_interpolation(options.interpolation(), "");
  const double level = 1.0 - options.quantile();
  const double tau = options.temperature();
  // Half and bfloat16 scores are thresholded and squashed in float32.
  const auto type = pool_logits.scalar_type();
  const auto scores = type == torch::kFloat || type == torch::kDouble
                          ? pool_logits
                          : pool_logits.to(torch::kFloat);
  const int64_t C = scores.size(1);
  std::vector<torch::Tensor> losses;
  auto valid = torch::zeros({C}, torch::kBool);
  for (int64_t c = 0; c < C; ++c) {
    const auto column = scores.select(1, c);
    const auto positives = labels.eq(c).nonzero().squeeze(1);
    if (positives.size(0) == 0) {
      losses.push_back(torch::zeros({}, scores.options()));
      continue;
    }
    valid[c] = true;
    const auto detached = column.detach();
    // Non-finite scores make the class NaN (never a wrong finite value).
    const auto theta =
        torch::isfinite(detached).all().item<bool>()
            ? detail::quantile_by_selection(detached, level, interpolation)
            : torch::full({}, std::numeric_limits<double>::quiet_NaN(), scores.options());
    const auto above = torch::sigmoid((column.index_select(0, positives) - theta) / tau);
    losses.push_back(1 - above.mean());
  }
  return {torch::stack(losses).to(type), valid};
}

void RecallAtQuantileLossImpl::print_extra_options(std::ostream& stream) const {
  stream << ", quantile=" << options.quantile()
         << ", interpolation=" << options.interpolation();
}

} // namespace proxyloss
