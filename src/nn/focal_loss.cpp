#include "proxyloss/focal_loss.h"

#include "common/input_checks.h"
#include "common/reduction.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

namespace proxyloss {
namespace {

void check_gamma(const char* name, double gamma) {
  TORCH_CHECK(std::isfinite(gamma) && gamma >= 0, name,
              ": gamma must be finite and >= 0, got ", gamma);
}

void check_options(const char* name, const SigmoidFocalLossOptions& options) {
  const double alpha = options.alpha();
  TORCH_CHECK(!std::isnan(alpha) && alpha <= 1, name,
              ": alpha must be in [0, 1], or < 0 to disable alpha weighting, got ",
              alpha);
  check_gamma(name, options.gamma());
}

void check_options(const char* name, const SoftmaxFocalLossOptions& options) {
  check_gamma(name, options.gamma());
  const double eps = options.label_smoothing();
  TORCH_CHECK(eps >= 0 && eps <= 1, name, ": label_smoothing must be in [0, 1], got ",
              eps);
  const auto& alpha = options.alpha();
  if (alpha.defined()) {
    TORCH_CHECK(alpha.dim() == 1, name,
                ": alpha must be a 1-D tensor [C] of per-class weights, got shape ",
                alpha.sizes());
    TORCH_CHECK(at::isFloatingType(alpha.scalar_type()), name,
                ": alpha must be floating point, got ", alpha.scalar_type());
    const auto bad =
        at::isfinite(alpha.detach()).logical_and(alpha.detach().ge(0)).logical_not();
    TORCH_CHECK(!bad.any().item<bool>(), name, ": alpha must be finite and >= 0, got ",
                common::first_values(alpha.masked_select(bad)));
  }
}

// Scalar or unreduced result in the dtype of the logits.
torch::Tensor finish(const torch::Tensor& loss, const torch::Tensor& logits) {
  return loss.to(logits.scalar_type());
}

torch::Tensor sigmoid_focal_loss_impl(const char* name, const torch::Tensor& logits,
                                      const torch::Tensor& targets,
                                      const SigmoidFocalLossOptions& options) {
  check_options(name, options);
  common::check_defined(name, logits, "logits");
  common::check_defined(name, targets, "targets");
  common::check_floating_logits(name, logits);
  TORCH_CHECK(targets.sizes() == logits.sizes(), name,
              ": targets must have the shape of logits ", logits.sizes(), ", got ",
              targets.sizes());
  TORCH_CHECK(
      at::isFloatingType(targets.scalar_type()) || targets.scalar_type() == torch::kBool,
      name,
      ": targets must be floating point (0/1 labels, or soft labels in [0, 1]) "
      "or bool, got ",
      targets.scalar_type(), " (integer class indices are SoftmaxFocalLoss's targets)");
  common::check_same_device(name, logits, targets, "targets");

  const auto dtype = common::compute_dtype(logits.scalar_type());
  const auto x = logits.to(dtype);
  const auto t = targets.detach().to(dtype);
  const auto outside = t.ge(0).logical_and(t.le(1)).logical_not(); // NaN included
  TORCH_CHECK(!outside.any().item<bool>(), name, ": targets must be in [0, 1], got ",
              common::first_values(t.masked_select(outside)));

  const auto log_p = at::log_sigmoid(x);          // log p
  const auto log_not_p = at::log_sigmoid(-x);     // log(1 - p)
  auto loss = -(t * log_p + (1 - t) * log_not_p); // ce
  const double gamma = options.gamma();
  if (gamma != 0) {
    // log(1 - p_t) = log(p (1 - t) + (1 - p) t); for 0/1 targets one side is
    // log 0 = -inf, which logaddexp takes (value and gradient) exactly.
    const auto log_q = at::logaddexp(log_p + at::log1p(-t), log_not_p + at::log(t));
    loss = loss * at::exp(gamma * log_q);
  }
  const double alpha = options.alpha();
  if (alpha >= 0) {
    loss = loss * (alpha * t + (1 - alpha) * (1 - t));
  }
  const auto count = at::full({}, static_cast<double>(loss.numel()), loss.options());
  return finish(common::reduce(loss, reduction_kind(options.reduction()), count), logits);
}

torch::Tensor softmax_focal_loss_impl(const char* name, const torch::Tensor& logits,
                                      const torch::Tensor& targets,
                                      const SoftmaxFocalLossOptions& options) {
  check_options(name, options);
  common::check_defined(name, logits, "logits");
  common::check_defined(name, targets, "targets");
  TORCH_CHECK(logits.dim() == 2 && logits.size(1) >= 1, name,
              ": logits must have shape [N, C] with C >= 1, got ", logits.sizes());
  common::check_floating_logits(name, logits);
  const int64_t C = logits.size(1);
  const auto y =
      common::checked_class_targets(name, logits, targets,
                                    /*allow_column=*/false, /*allow_bool=*/false);
  const auto& alpha = options.alpha();
  TORCH_CHECK(!alpha.defined() || alpha.size(0) == C, name,
              ": alpha must have one entry per class, C = ", C,
              " (the columns of logits), got ", alpha.defined() ? alpha.size(0) : 0);

  common::check_target_range(name, y, C, options.ignore_index());
  const auto valid = y.ne(options.ignore_index());

  const auto dtype = common::compute_dtype(logits.scalar_type());
  const auto x = logits.to(dtype);
  // Ignored rows compute with class 0 and are zeroed at the end.
  const auto safe_y = at::where(valid, y, at::zeros_like(y)).unsqueeze(1); // [N, 1]
  const auto log_p = at::log_softmax(x, 1);                                // [N, C]
  const auto log_p_y = log_p.gather(1, safe_y).squeeze(1);                 // [N]
  const double eps = options.label_smoothing();
  auto loss = -(1 - eps) * log_p_y; // ce_i
  if (eps > 0) {
    loss = loss - (eps / static_cast<double>(C)) * log_p.sum(1);
  }
  const double gamma = options.gamma();
  if (gamma != 0) {
    // log(1 - p_y) = log sum_{c != y} p_c: logsumexp of log p with the target's
    // entry set to the lowest finite value (exp of it is 0). Not -inf, so that
    // C = 1 gives log(1 - p_y) = lowest, a focal factor of exactly 0 and a
    // finite gradient.
    const double lowest = dtype == torch::kDouble ? std::numeric_limits<double>::lowest()
                                                  : std::numeric_limits<float>::lowest();
    const auto log_q = at::logsumexp(log_p.scatter(1, safe_y, lowest), {1});
    loss = loss * at::exp(gamma * log_q);
  }
  if (alpha.defined()) {
    loss = loss * alpha.to(x.device(), dtype).index_select(0, safe_y.squeeze(1));
  }
  loss = at::where(valid, loss, at::zeros_like(loss));

  // mean: over the valid rows; kMeanPositive: over the valid rows that are
  // not background (both at least 1).
  switch (focal_reduction_kind(options.reduction())) {
    case FocalReduction::None:
      return finish(loss, logits);
    case FocalReduction::Sum:
      return finish(common::reduce(loss, Reduction::Sum, {}), logits);
    case FocalReduction::Mean:
      return finish(common::reduce(loss, Reduction::Mean, valid.sum().clamp_min(1)),
                    logits);
    case FocalReduction::MeanPositive:
      break;
  }
  const auto positive = valid.logical_and(y.ne(options.background_class()));
  return finish(common::reduce(loss, Reduction::Mean, positive.sum().clamp_min(1)),
                logits);
}

} // namespace

std::string focal_reduction_name(const focal_reduction_t& reduction) {
  switch (focal_reduction_kind(reduction)) {
    case FocalReduction::None:
      return "kNone";
    case FocalReduction::Sum:
      return "kSum";
    case FocalReduction::Mean:
      return "kMean";
    case FocalReduction::MeanPositive:
      break;
  }
  return "kMeanPositive";
}

// --- SigmoidFocalLoss ------------------------------------------------------------

SigmoidFocalLossImpl::SigmoidFocalLossImpl(SigmoidFocalLossOptions options_)
    : options(std::move(options_)) {
  reset();
}

void SigmoidFocalLossImpl::reset() {
  check_options("SigmoidFocalLoss", options);
}

void SigmoidFocalLossImpl::pretty_print(std::ostream& stream) const {
  stream << "proxyloss::SigmoidFocalLoss(alpha=" << options.alpha()
         << ", gamma=" << options.gamma()
         << ", reduction=" << reduction_name(options.reduction()) << ")";
}

torch::Tensor SigmoidFocalLossImpl::forward(const torch::Tensor& logits,
                                            const torch::Tensor& targets) {
  // Options may have been edited since reset(): they are checked again.
  return sigmoid_focal_loss_impl("SigmoidFocalLoss", logits, targets, options);
}

// --- SoftmaxFocalLoss ------------------------------------------------------------

SoftmaxFocalLossImpl::SoftmaxFocalLossImpl(SoftmaxFocalLossOptions options_)
    : options(std::move(options_)) {
  reset();
}

void SoftmaxFocalLossImpl::reset() {
  check_options("SoftmaxFocalLoss", options);
}

void SoftmaxFocalLossImpl::pretty_print(std::ostream& stream) const {
  stream << "proxyloss::SoftmaxFocalLoss(alpha="
         << (options.alpha().defined() ? common::first_values(options.alpha()) : "None")
         << ", gamma=" << options.gamma()
         << ", reduction=" << focal_reduction_name(options.reduction())
         << ", label_smoothing=" << options.label_smoothing()
         << ", ignore_index=" << options.ignore_index()
         << ", background_class=" << options.background_class() << ")";
}

torch::Tensor SoftmaxFocalLossImpl::forward(const torch::Tensor& logits,
                                            const torch::Tensor& targets) {
  // Options may have been edited since reset(): they are checked again.
  return softmax_focal_loss_impl("SoftmaxFocalLoss", logits, targets, options);
}

// --- functional forms ------------------------------------------------------------

namespace functional {

torch::Tensor sigmoid_focal_loss(const torch::Tensor& logits,
                                 const torch::Tensor& targets,
                                 const SigmoidFocalLossFuncOptions& options) {
  return sigmoid_focal_loss_impl("sigmoid_focal_loss", logits, targets, options);
}

torch::Tensor softmax_focal_loss(const torch::Tensor& logits,
                                 const torch::Tensor& targets,
                                 const SoftmaxFocalLossFuncOptions& options) {
  return softmax_focal_loss_impl("softmax_focal_loss", logits, targets, options);
}

} // namespace functional
} // namespace proxyloss
