// The module half shared by the queued ranking losses (SmoothAPLoss,
// RecallAtQuantileLoss): options, queue buffers, reset(), the ranking-loss
// interfaces. A loss derives from QueuedRankingModule<Loss, LossOptions> and
// provides
//   static constexpr const char* kName;                 // "SmoothAPLoss"
//   detail::PerClass compute_per_class(pool_logits, labels) const;
//   void print_extra_options(std::ostream&) const;       // after num_classes
// Internal: users see SmoothAPLossImpl / RecallAtQuantileLossImpl.
#pragma once

#include "proxyloss/detail/checked_load.h"
#include "proxyloss/detail/queued_ranking.h"
#include "proxyloss/per_class_loss.h"
#include "proxyloss/ranking_loss_control.h"

#include <torch/nn/cloneable.h>

#include <ostream>
#include <tuple>
#include <utility>

namespace proxyloss {
namespace detail {

template <typename Options>
RankingConfig ranking_config(const char* name, const Options& options) {
  RankingConfig config;
  config.loss_name = name;
  config.num_classes = options.num_classes();
  config.queue_size = options.queue_size();
  config.temperature = options.temperature();
  config.ignore_index = options.ignore_index();
  config.max_pool_size = options.max_pool_size();
  return config;
}

template <typename Derived, typename Options>
class QueuedRankingModule : public torch::nn::Cloneable<Derived>,
                            public RankingLossControl,
                            public PerClassLoss {
 public:
  explicit QueuedRankingModule(Options options_) : options(std::move(options_)) {
    reset();
  }

  // Validates the options and (re)creates the queue buffers.
  void reset() override {
    auto config = ranking_config(Derived::kName, options);
    check_ranking_config(config);
    MemoryQueue queue(*this, options.queue_size(), options.num_classes(),
                      options.ignore_index());
    ranking_ = QueuedRanking(std::move(config), std::move(queue));
  }

  void pretty_print(std::ostream& stream) const override {
    stream << "proxyloss::" << Derived::kName << "(num_classes=" << options.num_classes();
    static_cast<const Derived&>(*this).print_extra_options(stream);
    stream << ", queue_size=" << options.queue_size()
           << ", temperature=" << options.temperature()
           << ", reduction=" << reduction_name(options.reduction())
           << ", ignore_index=" << options.ignore_index() << ", update_queue_in_eval="
           << (options.update_queue_in_eval() ? "true" : "false") << ", max_pool_size=";
    if (options.max_pool_size().has_value()) {
      stream << *options.max_pool_size();
    } else {
      stream << "None";
    }
    stream << ")";
  }

  // logits [N, C] floating, targets [N] or [N, 1] integer. Scalar for mean
  // and sum, [C] for none. The batch joins the queue afterwards in training
  // mode (or with update_queue_in_eval).
  torch::Tensor forward(const torch::Tensor& logits, const torch::Tensor& targets) {
    return std::get<0>(forward_per_class(logits, targets));
  }

  // (loss, per_class [C] with NaN for degenerate classes, valid [C] bool),
  // from the same single pass as forward.
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> forward_per_class(
      const torch::Tensor& logits, const torch::Tensor& targets) override {
    // Options may have been edited since reset(): check them again.
    ranking_.update_config(ranking_config(Derived::kName, options));
    const bool update = this->is_training() || options.update_queue_in_eval();
    const auto& self = static_cast<const Derived&>(*this);
    return ranking_.forward(
        logits, targets, options.reduction(), update,
        [&self](const torch::Tensor& pool_logits, const torch::Tensor& labels) {
          return self.compute_per_class(pool_logits, labels);
        });
  }

  // module->to(dtype) converts the queue's logits only; targets and pointer
  // stay int64 (LibTorch's Module::to would convert every buffer).
  using torch::nn::Module::to;
  void to(torch::Dtype dtype, bool non_blocking = false) override {
    torch::nn::Module::to(dtype, non_blocking);
    ranking_.queue().keep_integer_dtypes();
  }
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override {
    torch::nn::Module::to(device, dtype, non_blocking);
    ranking_.queue().keep_integer_dtypes();
  }

  // torch::load: the queue of the checkpoint, checked against the options,
  // or a c10::Error and the module unchanged.
  void load(torch::serialize::InputArchive& archive) override {
    load_or_leave_unchanged(*this, archive, Derived::kName, [this, &archive] {
      ranking_.queue().check_loaded(Derived::kName, archive);
    });
  }

  void reset_queue() override {
    ranking_.queue().reset();
  }

  double temperature() const override {
    return options.temperature();
  }

  void set_temperature(double temperature) override {
    check_temperature(Derived::kName, temperature);
    options.temperature(temperature);
  }

  Options options;

 private:
  QueuedRanking ranking_;
};

} // namespace detail
} // namespace proxyloss
