// LossWarmupWrapper: trains with a standard loss during a warmup, blends
// linearly into the main (ranking) loss, then decays the main loss's
// temperature geometrically from the phase switch.
//
// Phases, in epochs (warmup_epochs W, blend_epochs B) or in steps
// (warmup_steps, blend_steps; the two modes are exclusive):
//   t < W:          warmup loss only                       main_weight = 0
//   W <= t < W + B: (1 - w) warmup + w main,  w = final_main_weight (t - W + 1) / (B + 1)
//   t >= W + B:     (1 - w) warmup + w main,  w = final_main_weight (main only at 1)
// Temperature, from the first main-phase batch (the switch step s):
//   tau(g) = temp_start (temp_end / temp_start)^min(1, (g - s) / temp_decay_steps)
// At the switch the main loss's queue is reset, so warmup-era logits never
// reach the ranking. Temperature and queue are driven through
// proxyloss::RankingLossControl; a main loss without it gets one warning and
// no schedule.
//
// Per-sample weights: forward(logits, targets, sample_weight) passes a
// defined sample_weight to the main loss always (as its forward's third
// argument: a main loss whose forward takes two arguments then fails with
// AnyModule's argument-count error), and to the warmup loss only when the
// warmup loss implements proxyloss::SampleWeightedLoss (FairLoss, the
// focal and the ranking losses do; torch::nn::CrossEntropyLoss does not and gets
// (logits, targets)). That declaration is how "accepts" is decided: an
// AnyModule does not expose its forward's arity, and C++ has no parameter
// names to look for (the Python wrapper inspects the signature for a
// `sample_weight` parameter instead). An undefined sample_weight calls both
// losses with two arguments, exactly as without it.
//
// Across processes the wrapper gathers nothing itself: set_process_group
// hands the group to the main loss (which must implement
// proxyloss::DistributedLoss), and the warmup loss gathers only if it was
// given a group of its own (e.g. a SoftmaxFocalLoss); a torch loss as the
// warmup loss (torch::nn::CrossEntropyLoss) computes each rank's own batch.
// Every rank must drive the schedule alike (the same hook calls), or the
// ranks' temperatures differ and the main loss throws.
#pragma once

#include "proxyloss/compat.h"
#include "proxyloss/distributed.h"
#include "proxyloss/per_class_loss.h"
#include "proxyloss/ranking_loss_control.h"
#include "proxyloss/sample_weighted_loss.h"

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/common.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <tuple>

namespace proxyloss {

struct LossWarmupWrapperOptions {
  // Epoch mode: epochs of warmup loss only, then epochs of linear blend.
  TORCH_ARG(int64_t, warmup_epochs) = 0;
  TORCH_ARG(int64_t, blend_epochs) = 0;
  // Step mode (instead of epochs): the same, counted in global steps.
  TORCH_ARG(optional<int64_t>, warmup_steps) = c10::nullopt;
  TORCH_ARG(optional<int64_t>, blend_steps) = c10::nullopt;
  // Geometric temperature decay from the phase switch.
  TORCH_ARG(double, temp_start) = 0.05;
  TORCH_ARG(double, temp_end) = 0.005;
  TORCH_ARG(int64_t, temp_decay_steps) = 10000;
  // Weight of the main loss after the blend, in (0, 1].
  TORCH_ARG(double, final_main_weight) = 1.0;
  // Reset the main loss's queue at the start of every main-phase epoch.
  TORCH_ARG(bool, reset_queue_each_epoch) = false;
};

class LossWarmupWrapperImpl : public torch::nn::Cloneable<LossWarmupWrapperImpl>,
                              public SampleWeightedLoss,
                              public DistributedLoss {
 public:
  // `warmup_loss` and `main_loss` are called as forward(logits, targets), or
  // with a third argument, sample_weight (see the header comment).
  LossWarmupWrapperImpl(torch::nn::AnyModule warmup_loss, torch::nn::AnyModule main_loss,
                        LossWarmupWrapperOptions options = {});
  // Convenience: module holders directly (e.g. torch::nn::CrossEntropyLoss,
  // proxyloss::SmoothAPLoss).
  template <typename WarmupLoss, typename MainLoss>
  LossWarmupWrapperImpl(WarmupLoss warmup_loss, MainLoss main_loss,
                        LossWarmupWrapperOptions options = {})
      : LossWarmupWrapperImpl(torch::nn::AnyModule(std::move(warmup_loss)),
                              torch::nn::AnyModule(std::move(main_loss)),
                              std::move(options)) {}

  // Validates the options, registers the two losses and the schedule state.
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  // Deep copy, losses and schedule state included.
  std::shared_ptr<torch::nn::Module> clone(
      const optional<torch::Device>& device = c10::nullopt) const override;
  // Checkpoints carry the schedule (epoch, step, switch step, temperature)
  // beside both losses' state.
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

  // Lightning-style hooks: call at the start of every training epoch and of
  // every training batch (global_step counts batches from 0).
  void on_train_epoch_start(int64_t epoch);
  void on_train_batch_start(int64_t global_step);

  bool in_warmup() const;
  bool in_blend() const;
  double main_weight() const;
  // The seed's name for main_weight().
  double ap_weight() const {
    return main_weight();
  }
  // The main loss's temperature, or nullopt when it has no RankingLossControl.
  optional<double> current_temperature() const;

  // Hands `group` to the main loss (a c10::Error unless it implements
  // proxyloss::DistributedLoss); the warmup loss keeps its own.
  void set_process_group(const ProcessGroupPtr& group) override;

  // sample_weight: undefined (no weights), or the per-sample weights the
  // losses take, passed as described in the header comment; the blend is of
  // the two (weighted) losses.
  torch::Tensor forward(const torch::Tensor& logits, const torch::Tensor& targets,
                        const torch::Tensor& sample_weight = {});
  // The main loss's forward_per_class (sample_weight passed on); only while
  // main_weight() == 1 and when the main loss implements
  // proxyloss::PerClassLoss.
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> forward_per_class(
      const torch::Tensor& logits, const torch::Tensor& targets,
      const torch::Tensor& sample_weight = {});

  torch::nn::AnyModule& warmup_loss() {
    return warmup_loss_;
  }
  torch::nn::AnyModule& main_loss() {
    return main_loss_;
  }

  LossWarmupWrapperOptions options;

 protected:
  FORWARD_HAS_DEFAULT_ARGS({2, torch::nn::AnyValue(torch::Tensor())})

 private:
  // The switch to the main phase: not yet reached, reached but waiting for
  // its first batch (epoch mode latches the step there), or latched.
  static constexpr int64_t kSwitchNotReached = -2;
  static constexpr int64_t kSwitchPending = -1;

  bool step_mode() const;
  int64_t warmup_length() const;
  int64_t blend_length() const;
  int64_t clock() const; // epoch or global step, as the mode counts
  void apply_temperature(double temperature);
  void reset_main_queue();

  torch::nn::AnyModule warmup_loss_;
  torch::nn::AnyModule main_loss_;
  RankingLossControl* control_ = nullptr;   // the main loss's, when it has one
  PerClassLoss* per_class_ = nullptr;       // idem
  bool warmup_takes_sample_weight_ = false; // a SampleWeightedLoss

  int64_t epoch_ = 0;
  int64_t global_step_ = 0;
  int64_t switch_step_ = kSwitchNotReached;
  bool batch_hook_seen_ = false;
  bool warned_no_batch_hook_ = false;
};

TORCH_MODULE(LossWarmupWrapper);

} // namespace proxyloss
