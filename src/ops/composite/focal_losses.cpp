// proxyloss::sigmoid_focal_loss and proxyloss::softmax_focal_loss: the focal
// losses whole (checks, compute dtype, per-element loss, reduction), built
// from ATen ops (CompositeImplicitAutograd: any device, autograd from ATen).
// The math and its numerics are documented in proxyloss/focal_loss.h. No
// host read of a value here: value checks go through _checked_values, so
// that torch.compile traces these losses whole.
#include "common/input_checks.h"
#include "common/reduction.h"
#include "ops/checked_values.h"
#include "ops/sample_weights.h"

#include <ATen/ExpandUtils.h>
#include "ops/module_losses.h"

#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <string>

namespace proxyloss {
namespace ops_impl {
namespace {

void check_gamma(const std::string& who, double gamma) {
  TORCH_CHECK_VALUE(std::isfinite(gamma) && gamma >= 0, who,
                    ": gamma must be finite and >= 0, got ", gamma);
}

// "none", "mean", "sum" or "mean_positive" (the softmax loss's reductions).
enum class FocalReductionName { None, Mean, Sum, MeanPositive };

FocalReductionName parse_focal_reduction(const std::string& who, c10::string_view name) {
  if (name == "mean_positive") {
    return FocalReductionName::MeanPositive;
  }
  TORCH_CHECK_VALUE(name == "mean" || name == "sum" || name == "none", who,
                    ": reduction must be \"mean\", \"sum\", \"none\" or "
                    "\"mean_positive\", got \"",
                    std::string(name), "\"");
  return name == "mean"  ? FocalReductionName::Mean
         : name == "sum" ? FocalReductionName::Sum
                         : FocalReductionName::None;
}

} // namespace

void check_sigmoid_focal_options(const std::string& who, double alpha, double gamma) {
  TORCH_CHECK_VALUE(!std::isnan(alpha) && alpha <= 1, who,
                    ": alpha must be in [0, 1], or < 0 to disable alpha weighting, got ",
                    alpha);
  check_gamma(who, gamma);
}

namespace {

// The options but alpha's values: gamma, label_smoothing, alpha's shape and
// dtype.
void check_softmax_focal_option_kinds(const std::string& who, const at::Tensor& alpha,
                                      double gamma, double label_smoothing) {
  check_gamma(who, gamma);
  TORCH_CHECK_VALUE(label_smoothing >= 0 && label_smoothing <= 1, who,
                    ": label_smoothing must be in [0, 1], got ", label_smoothing);
  if (alpha.defined()) {
    TORCH_CHECK_VALUE(alpha.dim() == 1, who,
                      ": alpha must be a 1-D tensor [C] of per-class weights, got shape ",
                      alpha.sizes());
    TORCH_CHECK_VALUE(at::isFloatingType(alpha.scalar_type()), who,
                      ": alpha must be floating point, got ", alpha.scalar_type());
  }
}

// alpha (detached), checked to be finite and >= 0.
at::Tensor checked_alpha(const std::string& who, const at::Tensor& alpha) {
  const auto values = alpha.detach();
  const auto bad = at::isfinite(values).logical_and(values.ge(0)).logical_not();
  return checked_values(values, bad, who + ": alpha must be finite and >= 0", "classes");
}

// SigmoidFocalLoss's sample_weight: dim 0 the logits' (exact: a gather
// across processes concatenates along it), the rest broadcastable to them.
at::Tensor sigmoid_sample_weight(const std::string& who, const at::Tensor& logits,
                                 const at::Tensor& weight, at::ScalarType dtype) {
  TORCH_CHECK_VALUE(weight.dim() >= 1 && weight.size(0) == logits.size(0) &&
                        at::is_expandable_to(weight.sizes(), logits.sizes()),
                    who, ": sample_weight must have the logits' dim 0 (", logits.size(0),
                    ") and broadcast to their shape ", logits.sizes(), ", got ",
                    weight.sizes());
  common::check_same_device(who, logits, weight, "sample_weight");
  return checked_sample_weight(who, weight, dtype);
}

// SoftmaxFocalLoss's sample_weight: one per row, [N].
at::Tensor softmax_sample_weight(const std::string& who, const at::Tensor& logits,
                                 const at::Tensor& weight, at::ScalarType dtype) {
  TORCH_CHECK_VALUE(weight.dim() == 1 && weight.size(0) == logits.size(0), who,
                    ": sample_weight must have shape [N] with N = ", logits.size(0),
                    " (the rows of logits), got ", weight.sizes());
  common::check_same_device(who, logits, weight, "sample_weight");
  return checked_sample_weight(who, weight, dtype);
}

} // namespace

void check_softmax_focal_options(const std::string& who, const at::Tensor& alpha,
                                 double gamma, double label_smoothing) {
  check_softmax_focal_option_kinds(who, alpha, gamma, label_smoothing);
  if (alpha.defined()) {
    checked_alpha(who, alpha);
  }
}

at::Tensor sigmoid_focal_loss(const at::Tensor& logits, const at::Tensor& targets,
                              double alpha, double gamma, c10::string_view reduction_name,
                              const optional<at::Tensor>& sample_weight) {
  const std::string who = "proxyloss::sigmoid_focal_loss";
  check_sigmoid_focal_options(who, alpha, gamma);
  const auto reduction = common::parse_reduction(who, std::string(reduction_name));
  common::check_defined(who, logits, "logits");
  common::check_defined(who, targets, "targets");
  common::check_floating_logits(who, logits);
  TORCH_CHECK_VALUE(targets.sizes() == logits.sizes(), who,
                    ": targets must have the shape of logits ", logits.sizes(), ", got ",
                    targets.sizes());
  TORCH_CHECK_VALUE(
      at::isFloatingType(targets.scalar_type()) || targets.scalar_type() == at::kBool,
      who,
      ": targets must be floating point (0/1 labels, or soft labels in [0, 1]) "
      "or bool, got ",
      targets.scalar_type(), " (integer class indices are SoftmaxFocalLoss's targets)");
  common::check_same_device(who, logits, targets, "targets");

  const auto dtype = common::compute_dtype(logits.scalar_type());
  const auto x = logits.to(dtype);
  const auto t_given = targets.detach().to(dtype);
  const auto outside = t_given.ge(0).logical_and(t_given.le(1)).logical_not(); // NaN too
  const auto t =
      checked_values(t_given, outside, who + ": targets must be in [0, 1]", "");

  const auto log_p = at::log_sigmoid(x);          // log p
  const auto log_not_p = at::log_sigmoid(-x);     // log(1 - p)
  auto loss = -(t * log_p + (1 - t) * log_not_p); // ce
  if (gamma != 0) {
    // log(1 - p_t) = log(p (1 - t) + (1 - p) t); for 0/1 targets one side is
    // log 0 = -inf, which logaddexp takes (value and gradient) exactly.
    const auto log_q = at::logaddexp(log_p + at::log1p(-t), log_not_p + at::log(t));
    loss = loss * at::exp(gamma * log_q);
  }
  if (alpha >= 0) {
    loss = loss * (alpha * t + (1 - alpha) * (1 - t));
  }
  if (sample_weight.has_value()) {
    // Weighted: each element scaled; mean over the weight mass of all elements.
    const auto w = sigmoid_sample_weight(who, logits, *sample_weight, dtype);
    const auto weighted = loss * w;
    const auto out = reduction == Reduction::Mean
                         ? weighted_mean(weighted.sum(), w.expand_as(loss).sum())
                         : common::reduce(weighted, reduction, {});
    return out.to(logits.scalar_type());
  }
  const auto count = at::full({}, static_cast<double>(loss.numel()), loss.options());
  return common::reduce(loss, reduction, count).to(logits.scalar_type());
}

at::Tensor softmax_focal_loss(const at::Tensor& logits, const at::Tensor& targets,
                              const optional<at::Tensor>& alpha_arg, double gamma,
                              c10::string_view reduction_name, double label_smoothing,
                              int64_t ignore_index, int64_t background_class,
                              const optional<at::Tensor>& sample_weight) {
  const std::string who = "proxyloss::softmax_focal_loss";
  const at::Tensor alpha_given = alpha_arg.has_value() ? *alpha_arg : at::Tensor();
  check_softmax_focal_option_kinds(who, alpha_given, gamma, label_smoothing);
  const auto reduction = parse_focal_reduction(who, reduction_name);
  common::check_defined(who, logits, "logits");
  common::check_defined(who, targets, "targets");
  TORCH_CHECK_VALUE(logits.dim() == 2 && logits.size(1) >= 1, who,
                    ": logits must have shape [N, C] with C >= 1, got ", logits.sizes());
  common::check_floating_logits(who, logits);
  const int64_t C = logits.size(1);
  const auto y_given = common::checked_class_targets(who, logits, targets,
                                                     /*allow_column=*/false,
                                                     /*allow_bool=*/false);
  TORCH_CHECK_VALUE(!alpha_given.defined() || alpha_given.size(0) == C, who,
                    ": alpha must have one entry per class, C = ", C,
                    " (the columns of logits), got ",
                    alpha_given.defined() ? alpha_given.size(0) : 0);
  const auto alpha =
      alpha_given.defined() ? checked_alpha(who, alpha_given) : at::Tensor();
  const auto out_of_range =
      y_given.ne(ignore_index).logical_and(y_given.lt(0).logical_or(y_given.ge(C)));
  const auto y = checked_values(y_given, out_of_range,
                                who + ": targets must be in [0, " + std::to_string(C) +
                                    ") or ignore_index=" + std::to_string(ignore_index),
                                "rows");
  const auto valid = y.ne(ignore_index);

  const auto dtype = common::compute_dtype(logits.scalar_type());
  const auto x = logits.to(dtype);
  // Ignored rows compute with class 0 and are zeroed at the end.
  const auto safe_y = at::where(valid, y, at::zeros_like(y)).unsqueeze(1); // [N, 1]
  const auto log_p = at::log_softmax(x, 1);                                // [N, C]
  const auto log_p_y = log_p.gather(1, safe_y).squeeze(1);                 // [N]
  const double eps = label_smoothing;
  auto loss = -(1 - eps) * log_p_y; // ce_i
  if (eps > 0) {
    loss = loss - (eps / static_cast<double>(C)) * log_p.sum(1);
  }
  if (gamma != 0) {
    // log(1 - p_y) = log sum_{c != y} p_c: logsumexp of log p with the target's
    // entry set to the lowest finite value (exp of it is 0). Not -inf, so that
    // C = 1 gives log(1 - p_y) = lowest, a focal factor of exactly 0 and a
    // finite gradient.
    const double lowest = dtype == at::kDouble ? std::numeric_limits<double>::lowest()
                                               : std::numeric_limits<float>::lowest();
    const auto log_q = at::logsumexp(log_p.scatter(1, safe_y, lowest), {1});
    loss = loss * at::exp(gamma * log_q);
  }
  if (alpha.defined()) {
    loss = loss * alpha.to(x.device(), dtype).index_select(0, safe_y.squeeze(1));
  }
  loss = at::where(valid, loss, at::zeros_like(loss));

  if (sample_weight.has_value()) {
    // Weighted: each row scaled; mean / mean_positive over the weight mass of
    // the rows they count.
    const auto w = softmax_sample_weight(who, logits, *sample_weight, dtype);
    const auto weighted = loss * w;
    at::Tensor out;
    switch (reduction) {
      case FocalReductionName::None:
        out = weighted;
        break;
      case FocalReductionName::Sum:
        out = weighted.sum();
        break;
      case FocalReductionName::Mean:
        out = weighted_mean(weighted.sum(), at::where(valid, w, at::zeros_like(w)).sum());
        break;
      case FocalReductionName::MeanPositive:
        out = weighted_mean(
            weighted.sum(),
            at::where(valid.logical_and(y.ne(background_class)), w, at::zeros_like(w))
                .sum());
        break;
    }
    return out.to(logits.scalar_type());
  }

  // mean: over the valid rows; mean_positive: over the valid rows that are
  // not background (both at least 1).
  at::Tensor out;
  switch (reduction) {
    case FocalReductionName::None:
      out = loss;
      break;
    case FocalReductionName::Sum:
      out = common::reduce(loss, Reduction::Sum, {});
      break;
    case FocalReductionName::Mean:
      out = common::reduce(loss, Reduction::Mean, valid.sum().clamp_min(1));
      break;
    case FocalReductionName::MeanPositive:
      out = common::reduce(loss, Reduction::Mean,
                           valid.logical_and(y.ne(background_class)).sum().clamp_min(1));
      break;
  }
  return out.to(logits.scalar_type());
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CompositeImplicitAutograd, m) {
  m.impl("sigmoid_focal_loss", &proxyloss::ops_impl::sigmoid_focal_loss);
  m.impl("softmax_focal_loss", &proxyloss::ops_impl::softmax_focal_loss);
}
