#include "proxyloss/loss_warmup_wrapper.h"

#include "serialize/checked_load.h"

#include <torch/serialize/archive.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <ostream>

namespace proxyloss {
namespace {

// Checkpointed schedule: [epoch, global_step, switch_step, batch_hook_seen,
// temperature (NaN when the main loss has none)], as float64 (exact for any
// count below 2^53).
constexpr int64_t kStateSize = 5;
constexpr const char* kStateKey = "schedule";

void check_options(const LossWarmupWrapperOptions& o) {
  const char* name = "LossWarmupWrapper";
  TORCH_CHECK(!(o.warmup_steps().has_value() && o.warmup_epochs() != 0), name,
              ": warmup_epochs (", o.warmup_epochs(), ") and warmup_steps (",
              o.warmup_steps().value_or(0),
              ") are both set; use epoch mode or step mode, not both");
  TORCH_CHECK(!(o.blend_steps().has_value() && o.blend_epochs() != 0), name,
              ": blend_epochs (", o.blend_epochs(), ") and blend_steps (",
              o.blend_steps().value_or(0), ") are both set; use one of them");
  TORCH_CHECK(!(o.blend_steps().has_value() && !o.warmup_steps().has_value()), name,
              ": blend_steps needs warmup_steps (step mode); in epoch mode use "
              "blend_epochs");
  TORCH_CHECK(o.warmup_epochs() >= 0, name, ": warmup_epochs must be >= 0, got ",
              o.warmup_epochs());
  TORCH_CHECK(o.blend_epochs() >= 0, name, ": blend_epochs must be >= 0, got ",
              o.blend_epochs());
  TORCH_CHECK(o.warmup_steps().value_or(0) >= 0, name,
              ": warmup_steps must be >= 0, got ", o.warmup_steps().value_or(0));
  TORCH_CHECK(o.blend_steps().value_or(0) >= 0, name, ": blend_steps must be >= 0, got ",
              o.blend_steps().value_or(0));
  TORCH_CHECK(std::isfinite(o.temp_start()) && o.temp_start() > 0, name,
              ": temp_start must be finite and > 0, got ", o.temp_start());
  TORCH_CHECK(std::isfinite(o.temp_end()) && o.temp_end() > 0, name,
              ": temp_end must be finite and > 0, got ", o.temp_end());
  TORCH_CHECK(o.temp_decay_steps() > 0, name, ": temp_decay_steps must be > 0, got ",
              o.temp_decay_steps());
  TORCH_CHECK(o.final_main_weight() > 0 && o.final_main_weight() <= 1, name,
              ": final_main_weight must be in (0, 1], got ", o.final_main_weight());
}

// A checkpoint's schedule state, as save() writes it: whole counters (the
// switch step is a step, or one of the markers below zero), a 0/1 flag, and
// a temperature that is NaN or finite and positive.
void check_schedule_state(const torch::Tensor& state) {
  const char* name = "LossWarmupWrapper";
  TORCH_CHECK(state.dim() == 1 && state.size(0) == kStateSize, name,
              ": checkpoint schedule state must have ", kStateSize,
              " entries, got shape ", state.sizes());
  const auto* s = state.data_ptr<double>();
  const char* fields[] = {"epoch", "global_step", "switch_step"};
  for (int i = 0; i < 3; ++i) {
    TORCH_CHECK(
        std::isfinite(s[i]) && s[i] == std::floor(s[i]) && std::abs(s[i]) < 0x1p53, name,
        ": checkpoint schedule ", fields[i], " must be a whole number, got ", s[i]);
  }
  TORCH_CHECK(s[2] >= -2, name, ": checkpoint schedule switch_step must be >= -2, got ",
              s[2]);
  TORCH_CHECK(s[3] == 0 || s[3] == 1, name,
              ": checkpoint schedule batch_hook_seen must be 0 or 1, got ", s[3]);
  TORCH_CHECK(std::isnan(s[4]) || (std::isfinite(s[4]) && s[4] > 0), name,
              ": checkpoint schedule temperature must be NaN (none) or finite and > 0, "
              "got ",
              s[4]);
}

} // namespace

LossWarmupWrapperImpl::LossWarmupWrapperImpl(torch::nn::AnyModule warmup_loss,
                                             torch::nn::AnyModule main_loss,
                                             LossWarmupWrapperOptions options_)
    : options(std::move(options_)),
      warmup_loss_(std::move(warmup_loss)),
      main_loss_(std::move(main_loss)) {
  TORCH_CHECK(!warmup_loss_.is_empty(), "LossWarmupWrapper: warmup_loss is empty");
  TORCH_CHECK(!main_loss_.is_empty(), "LossWarmupWrapper: main_loss is empty");
  reset();
  if (control_ == nullptr) {
    TORCH_WARN("LossWarmupWrapper: the main loss (", main_loss_.ptr()->name(),
               ") does not implement proxyloss::RankingLossControl; temperature "
               "scheduling and queue resets (also reset_queue_each_epoch) are skipped.");
  }
  // Without warmup the main phase starts at step 0, at temp_start.
  if (warmup_length() == 0) {
    switch_step_ = 0;
    apply_temperature(options.temp_start());
  }
}

void LossWarmupWrapperImpl::reset() {
  check_options(options);
  // A second reset() (called by hand) finds them registered already.
  if (named_children().is_empty()) {
    register_module("warmup_loss", warmup_loss_.ptr());
    register_module("main_loss", main_loss_.ptr());
    register_buffer(kStateKey, torch::zeros({kStateSize}, torch::kDouble));
  }
  control_ = dynamic_cast<RankingLossControl*>(main_loss_.ptr().get());
  per_class_ = dynamic_cast<PerClassLoss*>(main_loss_.ptr().get());
  warmup_takes_sample_weight_ =
      dynamic_cast<SampleWeightedLoss*>(warmup_loss_.ptr().get()) != nullptr;
}

void LossWarmupWrapperImpl::pretty_print(std::ostream& stream) const {
  stream << "proxyloss::LossWarmupWrapper(";
  if (step_mode()) {
    stream << "warmup_steps=" << *options.warmup_steps()
           << ", blend_steps=" << options.blend_steps().value_or(0);
  } else {
    stream << "warmup_epochs=" << options.warmup_epochs()
           << ", blend_epochs=" << options.blend_epochs();
  }
  stream << ", temp_start=" << options.temp_start() << ", temp_end=" << options.temp_end()
         << ", temp_decay_steps=" << options.temp_decay_steps()
         << ", final_main_weight=" << options.final_main_weight()
         << ", reset_queue_each_epoch="
         << (options.reset_queue_each_epoch() ? "true" : "false") << ")";
}

std::shared_ptr<torch::nn::Module> LossWarmupWrapperImpl::clone(
    const optional<torch::Device>& device) const {
  auto copy = std::make_shared<LossWarmupWrapperImpl>(warmup_loss_.clone(device),
                                                      main_loss_.clone(device), options);
  copy->epoch_ = epoch_;
  copy->global_step_ = global_step_;
  copy->switch_step_ = switch_step_;
  copy->batch_hook_seen_ = batch_hook_seen_;
  copy->warned_no_batch_hook_ = warned_no_batch_hook_;
  if (const auto temperature = current_temperature()) {
    copy->apply_temperature(*temperature);
  }
  return copy;
}

void LossWarmupWrapperImpl::save(torch::serialize::OutputArchive& archive) const {
  const double temperature =
      current_temperature().value_or(std::numeric_limits<double>::quiet_NaN());
  named_buffers(/*recurse=*/false)[kStateKey].copy_(
      torch::tensor({double(epoch_), double(global_step_), double(switch_step_),
                     batch_hook_seen_ ? 1.0 : 0.0, temperature},
                    torch::kDouble));
  torch::nn::Module::save(archive);
}

void LossWarmupWrapperImpl::load(torch::serialize::InputArchive& archive) {
  torch::Tensor state;
  detail::load_or_leave_unchanged(*this, archive, "LossWarmupWrapper", [&] {
    state = named_buffers(/*recurse=*/false)[kStateKey].to(torch::kCPU, torch::kDouble);
    check_schedule_state(state);
  });
  const auto* s = state.data_ptr<double>();
  epoch_ = static_cast<int64_t>(s[0]);
  global_step_ = static_cast<int64_t>(s[1]);
  switch_step_ = static_cast<int64_t>(s[2]);
  batch_hook_seen_ = s[3] != 0;
  if (!std::isnan(s[4])) {
    apply_temperature(s[4]);
  }
}

bool LossWarmupWrapperImpl::step_mode() const {
  return options.warmup_steps().has_value();
}

int64_t LossWarmupWrapperImpl::warmup_length() const {
  return step_mode() ? *options.warmup_steps() : options.warmup_epochs();
}

int64_t LossWarmupWrapperImpl::blend_length() const {
  return step_mode() ? options.blend_steps().value_or(0) : options.blend_epochs();
}

int64_t LossWarmupWrapperImpl::clock() const {
  return step_mode() ? global_step_ : epoch_;
}

bool LossWarmupWrapperImpl::in_warmup() const {
  return clock() < warmup_length();
}

bool LossWarmupWrapperImpl::in_blend() const {
  return !in_warmup() && blend_length() > 0 && clock() < warmup_length() + blend_length();
}

double LossWarmupWrapperImpl::main_weight() const {
  if (in_warmup()) {
    return 0.0;
  }
  if (!in_blend()) {
    return options.final_main_weight();
  }
  const double index = static_cast<double>(clock() - warmup_length());
  return (index + 1) / static_cast<double>(blend_length() + 1) *
         options.final_main_weight();
}

optional<double> LossWarmupWrapperImpl::current_temperature() const {
  if (control_ == nullptr) {
    return c10::nullopt;
  }
  return control_->temperature();
}

void LossWarmupWrapperImpl::apply_temperature(double temperature) {
  if (control_ != nullptr) {
    control_->set_temperature(temperature);
  }
}

void LossWarmupWrapperImpl::reset_main_queue() {
  if (control_ != nullptr) {
    control_->reset_queue();
  }
}

void LossWarmupWrapperImpl::set_process_group(const ProcessGroupPtr& group) {
  auto* main = dynamic_cast<DistributedLoss*>(main_loss_.ptr().get());
  TORCH_CHECK(
      main != nullptr || !group, "LossWarmupWrapper: the main loss (",
      main_loss_.ptr()->name(),
      ") does not implement proxyloss::DistributedLoss, so it cannot gather over a "
      "process group");
  if (main != nullptr) {
    main->set_process_group(group);
  }
  DistributedLoss::set_process_group(group);
}

void LossWarmupWrapperImpl::on_train_epoch_start(int64_t epoch) {
  epoch_ = epoch;
  if (!step_mode() && !in_warmup() && switch_step_ == kSwitchNotReached) {
    switch_step_ = kSwitchPending; // latched by the next batch hook
  }
  if (!in_warmup() && options.reset_queue_each_epoch()) {
    reset_main_queue();
  }
}

void LossWarmupWrapperImpl::on_train_batch_start(int64_t global_step) {
  batch_hook_seen_ = true;
  if (step_mode()) {
    global_step_ = global_step;
    if (!in_warmup() && switch_step_ == kSwitchNotReached) {
      switch_step_ = kSwitchPending;
    }
  }
  if (in_warmup() || switch_step_ == kSwitchNotReached) {
    return;
  }
  if (switch_step_ == kSwitchPending) {
    // First batch of the main phase: start the clock, drop warmup-era rows.
    switch_step_ = global_step;
    apply_temperature(options.temp_start());
    reset_main_queue();
    return;
  }
  const double elapsed = static_cast<double>(global_step - switch_step_);
  const double fraction =
      std::min(1.0, elapsed / static_cast<double>(options.temp_decay_steps()));
  apply_temperature(
      options.temp_start() *
      std::exp(fraction * std::log(options.temp_end() / options.temp_start())));
}

torch::Tensor LossWarmupWrapperImpl::forward(const torch::Tensor& logits,
                                             const torch::Tensor& targets,
                                             const torch::Tensor& sample_weight) {
  // Two arguments without weights (any loss), three where they go.
  const auto warmup_forward = [&] {
    return sample_weight.defined() && warmup_takes_sample_weight_
               ? warmup_loss_.forward(logits, targets, sample_weight)
               : warmup_loss_.forward(logits, targets);
  };
  const auto main_forward = [&] {
    return sample_weight.defined() ? main_loss_.forward(logits, targets, sample_weight)
                                   : main_loss_.forward(logits, targets);
  };
  if (in_warmup()) {
    return warmup_forward();
  }
  if (!batch_hook_seen_ && !warned_no_batch_hook_ && control_ != nullptr) {
    TORCH_WARN(
        "LossWarmupWrapper: on_train_batch_start() was never called in the main "
        "phase, so the temperature does not decay towards temp_end. Call "
        "on_train_batch_start(global_step) every training step (in epoch mode "
        "too). (This warning is shown once per instance.)");
    warned_no_batch_hook_ = true;
  }
  const double weight = main_weight();
  if (weight >= 1.0) {
    return main_forward();
  }
  const auto warmup = warmup_forward();
  const auto main = main_forward();
  return warmup * (1.0 - weight) + main * weight;
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor>
LossWarmupWrapperImpl::forward_per_class(const torch::Tensor& logits,
                                         const torch::Tensor& targets,
                                         const torch::Tensor& sample_weight) {
  TORCH_CHECK(main_weight() >= 1.0,
              "LossWarmupWrapper: forward_per_class needs the main loss at full weight "
              "(main_weight() == 1), but main_weight() is ",
              main_weight(),
              (in_warmup()  ? " (warmup)"
               : in_blend() ? " (blend)"
                            : ""),
              "; use forward() until then");
  TORCH_CHECK(per_class_ != nullptr, "LossWarmupWrapper: the main loss (",
              main_loss_.ptr()->name(),
              ") does not implement proxyloss::PerClassLoss, so it has no "
              "forward_per_class");
  return per_class_->forward_per_class(logits, targets, sample_weight);
}

} // namespace proxyloss
