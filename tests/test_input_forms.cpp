// Every loss, module and functional, on the input forms that are not errors:
// non-contiguous logits and targets (the same loss and gradient as their
// contiguous copies), empty batches (a result, no exception, a backward
// pass), and non-finite logits (NaN, never a crash or an exception; the
// queued ranking losses test that such a batch stays out of their queue).
#include "support/test_support.h"

#include <proxyloss/proxyloss.h>

#include <functional>
#include <string>
#include <vector>

namespace {

namespace F = proxyloss::functional;

// One loss as a function of logits [N, C] and class indices [N] in [0, C):
// `targets_of` turns the class indices into the loss's own targets.
struct LossCase {
  std::string name;
  int64_t num_classes;
  std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)> loss;
  std::function<torch::Tensor(const torch::Tensor&, int64_t)> targets_of =
      [](const torch::Tensor& classes, int64_t) { return classes; };
  // What a non-finite logit gives: NaN (the ranking losses, whatever the
  // value), or torch's own result on that input (the cross-entropy family).
  bool infinity_is_nan = true;
};

torch::Tensor one_hot(const torch::Tensor& classes, int64_t num_classes) {
  return torch::one_hot(classes, num_classes).to(torch::kDouble);
}

std::vector<LossCase> loss_cases() {
  using namespace proxyloss;
  std::vector<LossCase> cases;
  cases.push_back({"SmoothAPLoss", 3, [](const auto& x, const auto& t) {
                     return SmoothAPLoss(SmoothAPLossOptions(3).queue_size(32))(x, t);
                   }});
  cases.push_back({"smooth_ap_loss", 3, [](const auto& x, const auto& t) {
                     return F::smooth_ap_loss(x, t, F::SmoothAPLossFuncOptions(3));
                   }});
  cases.push_back({"RecallAtQuantileLoss", 3, [](const auto& x, const auto& t) {
                     return RecallAtQuantileLoss(
                         RecallAtQuantileLossOptions(3).queue_size(32).quantile(0.2))(x,
                                                                                      t);
                   }});
  cases.push_back({"LossWarmupWrapper", 3, [](const auto& x, const auto& t) {
                     LossWarmupWrapper wrapper(
                         torch::nn::CrossEntropyLoss(),
                         SmoothAPLoss(SmoothAPLossOptions(3).queue_size(32)),
                         LossWarmupWrapperOptions().warmup_epochs(0));
                     wrapper->on_train_batch_start(0);
                     return wrapper(x, t);
                   }});
  cases.push_back({"FairLoss", 3,
                   [](const auto& x, const auto& t) {
                     return FairLoss(FairLossOptions().smooth_max_beta(10))(x, t);
                   },
                   [](const torch::Tensor& c, int64_t) { return c; }, false});
  cases.push_back({"fair_loss", 3,
                   [](const auto& x, const auto& t) { return F::fair_loss(x, t); },
                   [](const torch::Tensor& c, int64_t) { return c; }, false});
  cases.push_back({"SoftmaxFocalLoss", 3,
                   [](const auto& x, const auto& t) { return SoftmaxFocalLoss()(x, t); },
                   [](const torch::Tensor& c, int64_t) { return c; }, false});
  cases.push_back({"SigmoidFocalLoss", 3,
                   [](const auto& x, const auto& t) { return SigmoidFocalLoss()(x, t); },
                   one_hot, false});
  cases.push_back(
      {"sigmoid_focal_loss", 3,
       [](const auto& x, const auto& t) { return F::sigmoid_focal_loss(x, t); }, one_hot,
       false});
  return cases;
}

class InputForms : public ::testing::TestWithParam<LossCase> {};

// A copy of `t` with the same values and no contiguous layout: the
// transpose of a transposed copy for 2-D, every other element of a buffer
// twice as long for 1-D.
torch::Tensor non_contiguous(const torch::Tensor& t) {
  torch::Tensor copy;
  if (t.dim() == 2) {
    copy = t.t().contiguous().t();
  } else {
    copy = torch::empty({2 * t.size(0)}, t.options()).slice(0, 0, 2 * t.size(0), 2);
    copy.copy_(t);
  }
  EXPECT_FALSE(copy.is_contiguous());
  return copy;
}

TEST_P(InputForms, NonContiguousInputsGiveTheSameLossAndGradient) {
  const auto& c = GetParam();
  torch::manual_seed(5);
  const auto logits = torch::randn({40, c.num_classes}, torch::kDouble);
  const auto classes = torch::arange(40, torch::kLong).remainder(c.num_classes);
  const auto targets = c.targets_of(classes, c.num_classes);

  auto x = logits.clone().requires_grad_(true);
  const auto want = c.loss(x, targets);
  want.sum().backward();

  auto x_strided = non_contiguous(logits).requires_grad_(true);
  const auto got = c.loss(x_strided, non_contiguous(targets));
  got.sum().backward();
  EXPECT_TRUE(torch::allclose(got, want, 1e-12, 1e-12)) << c.name;
  EXPECT_TRUE(torch::allclose(x_strided.grad(), x.grad(), 1e-12, 1e-12)) << c.name;
}

TEST_P(InputForms, EmptyBatchIsNotAnError) {
  const auto& c = GetParam();
  auto x = torch::zeros({0, c.num_classes}, torch::kDouble).requires_grad_(true);
  const auto targets = c.targets_of(torch::zeros({0}, torch::kLong), c.num_classes);
  torch::Tensor out;
  ASSERT_NO_THROW(out = c.loss(x, targets)) << c.name;
  EXPECT_TRUE(out.defined()) << c.name;
  if (out.requires_grad()) {
    EXPECT_NO_THROW(out.sum().backward()) << c.name;
  }
}

TEST_P(InputForms, NonFiniteLogitsGiveNaNWithoutAnException) {
  const auto& c = GetParam();
  proxyloss::compat::ScopedWarningCollector quiet; // the ranking losses warn once
  for (const double bad : {std::nan(""), double(INFINITY), -double(INFINITY)}) {
    torch::manual_seed(6);
    auto logits = torch::randn({12, c.num_classes}, torch::kDouble);
    const auto classes = torch::arange(12, torch::kLong).remainder(c.num_classes);
    logits[4][1] = bad;
    auto x = logits.clone().requires_grad_(true);
    torch::Tensor out;
    ASSERT_NO_THROW(out = c.loss(x, c.targets_of(classes, c.num_classes)))
        << c.name << " " << bad;
    EXPECT_NO_THROW(out.sum().backward()) << c.name << " " << bad;
    if (std::isnan(bad) || c.infinity_is_nan) {
      EXPECT_TRUE(torch::isnan(out).any().item<bool>()) << c.name << " " << bad;
    } else { // the cross-entropy family: as torch's cross-entropy on the same row
      const auto reference = torch::nn::functional::cross_entropy(
          logits.narrow(0, 4, 1), classes.narrow(0, 4, 1));
      EXPECT_EQ(torch::isnan(out).any().item<bool>(), reference.isnan().item<bool>())
          << c.name << " " << bad;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryLoss, InputForms, ::testing::ValuesIn(loss_cases()),
                         [](const ::testing::TestParamInfo<LossCase>& info) {
                           return info.param.name;
                         });

} // namespace
