// The members of proxyloss::QueuedRankingLoss (queued_ranking_loss.h),
// compiled once for the three ranking losses.
#include "proxyloss/queued_ranking_loss.h"

#include "common/optional_tensor.h"
#include "common/ranking_options.h"
#include "distributed/gather_batch.h"
#include "nn/ranking_warnings.h"
#include "proxyloss/ops.h"
#include "proxyloss/pauc_at_budget_loss.h"
#include "proxyloss/recall_at_quantile_loss.h"
#include "proxyloss/reduction.h"
#include "proxyloss/smooth_ap_loss.h"
#include "serialize/checked_load.h"

#include <torch/types.h>

namespace proxyloss {
namespace {

// Registers `value` as buffer `name` of `owner`, or, when the module already
// has it (a second reset()), makes the existing buffer hold `value`.
torch::Tensor register_or_replace(torch::nn::Module& owner, const std::string& name,
                                  const torch::Tensor& value) {
  auto buffers = owner.named_buffers(/*recurse=*/false);
  if (auto* existing = buffers.find(name)) {
    existing->set_data(value);
    return *existing;
  }
  return owner.register_buffer(name, value);
}

// Module::to(dtype) converts every buffer; the queue's targets and pointer
// stay int64 and its iid flags bool.
void keep_dtype(torch::Tensor& buffer, torch::Dtype dtype) {
  torch::NoGradGuard no_grad;
  if (buffer.defined() && buffer.scalar_type() != dtype) {
    buffer.set_data(buffer.to(dtype));
  }
}

// After a checkpoint was read into the buffers: throws c10::Error unless they
// are a queue of queue_size rows and num_classes columns, with floating
// logits, integer targets, finite logits in every row whose target is not
// ignore_index, a pointer in [0, queue_size) (when queue_size > 0),
// floating weights [queue_size], finite and >= 0, and (when the loss keeps
// them) iid flags [queue_size] bool.
void check_loaded_queue(const torch::Tensor& logits, const torch::Tensor& targets,
                        const torch::Tensor& ptr, const torch::Tensor& weight,
                        const torch::Tensor& iid, int64_t queue_size, int64_t num_classes,
                        int64_t ignore_index) {
  TORCH_CHECK(
      logits.dim() == 2 && logits.size(0) == queue_size && logits.size(1) == num_classes,
      "checkpoint queue_logits has shape ", logits.sizes(), ", expected [", queue_size,
      ", ", num_classes,
      "] (queue_size, num_classes); construct the module with the "
      "checkpoint's queue_size and num_classes");
  TORCH_CHECK(at::isFloatingType(logits.scalar_type()),
              "checkpoint queue_logits must be floating, got ", logits.scalar_type());
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == queue_size,
              "checkpoint queue_targets has shape ", targets.sizes(), ", expected [",
              queue_size, "] (queue_size)");
  TORCH_CHECK(at::isIntegralType(targets.scalar_type(), /*includeBool=*/false),
              "checkpoint queue_targets must be integer, got ", targets.scalar_type());
  TORCH_CHECK(ptr.numel() == 1 && at::isIntegralType(ptr.scalar_type(), false),
              "checkpoint queue_ptr must be one integer, got shape ", ptr.sizes(),
              " and dtype ", ptr.scalar_type());
  // Every row that can enter a pool is finite (the ops rely on it).
  TORCH_CHECK(torch::isfinite(logits)
                  .all(/*dim=*/1)
                  .logical_or(targets.eq(ignore_index))
                  .all()
                  .item<bool>(),
              "checkpoint queue_logits holds non-finite values");
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == queue_size &&
                  at::isFloatingType(weight.scalar_type()),
              "checkpoint queue_weight must be a floating [", queue_size,
              "] tensor, got shape ", weight.sizes(), " and dtype ",
              weight.scalar_type());
  TORCH_CHECK(torch::isfinite(weight).logical_and(weight.ge(0)).all().item<bool>(),
              "checkpoint queue_weight must be finite and >= 0");
  if (iid.defined()) {
    TORCH_CHECK(
        iid.dim() == 1 && iid.size(0) == queue_size &&
            (iid.scalar_type() == torch::kBool || iid.scalar_type() == torch::kByte),
        "checkpoint queue_iid must be a bool [", queue_size, "] tensor, got shape ",
        iid.sizes(), " and dtype ", iid.scalar_type());
  }
  if (queue_size > 0) {
    const int64_t position = ptr.item<int64_t>();
    TORCH_CHECK(position >= 0 && position < queue_size,
                "checkpoint queue_ptr must be in [0, ", queue_size, "), got ", position);
  }
}

} // namespace

template <typename Derived, typename Options>
QueuedRankingLoss<Derived, Options>::QueuedRankingLoss(Options options_)
    : options(std::move(options_)) {
  reset();
}

template <typename Derived, typename Options>
void QueuedRankingLoss<Derived, Options>::check_options() const {
  const std::string name = Derived::kName;
  common::check_ranking_options(name, options.num_classes(), options.temperature(),
                                options.ignore_index(), options.max_pool_size());
  TORCH_CHECK(options.queue_size() >= 0, name,
              ": queue_size must be >= 0 (0 disables the queue), got ",
              options.queue_size());
  static_cast<const Derived&>(*this).check_extra_options();
}

template <typename Derived, typename Options>
void QueuedRankingLoss<Derived, Options>::reset() {
  check_options();
  built_num_classes_ = options.num_classes();
  built_queue_size_ = options.queue_size();
  built_ignore_index_ = options.ignore_index();
  warned_ = RankingWarningsIssued();
  queue_weighted_ = false;
  const bool registered = this->named_buffers(/*recurse=*/false).contains("queue_logits");
  if (built_queue_size_ == 0 && !registered) {
    return;
  }
  queue_logits = register_or_replace(
      *this, "queue_logits", torch::zeros({built_queue_size_, built_num_classes_}));
  queue_targets = register_or_replace(
      *this, "queue_targets",
      torch::full({built_queue_size_}, built_ignore_index_, torch::kLong));
  queue_ptr = register_or_replace(*this, "queue_ptr", torch::zeros({1}, torch::kLong));
  queue_weight =
      register_or_replace(*this, "queue_weight", torch::ones({built_queue_size_}));
  if (Derived::kQueuesIid) {
    queue_iid = register_or_replace(*this, "queue_iid",
                                    torch::ones({built_queue_size_}, torch::kBool));
  }
}

template <typename Derived, typename Options>
void QueuedRankingLoss<Derived, Options>::pretty_print(std::ostream& stream) const {
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

template <typename Derived, typename Options>
torch::Tensor QueuedRankingLoss<Derived, Options>::forward(
    const torch::Tensor& logits, const torch::Tensor& targets,
    const torch::Tensor& sample_weight) {
  return std::get<0>(forward_per_class(logits, targets, sample_weight));
}

template <typename Derived, typename Options>
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor>
QueuedRankingLoss<Derived, Options>::forward_per_class(
    const torch::Tensor& logits, const torch::Tensor& targets,
    const torch::Tensor& sample_weight) {
  return step(logits, targets, sample_weight, torch::Tensor());
}

template <typename Derived, typename Options>
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor>
QueuedRankingLoss<Derived, Options>::step(const torch::Tensor& local_logits,
                                          const torch::Tensor& local_targets,
                                          const torch::Tensor& local_sample_weight,
                                          const torch::Tensor& local_iid_mask) {
  // Options may have been edited since reset(): check them again; the ones
  // that shape the queue need reset().
  check_options();
  TORCH_CHECK(options.num_classes() == built_num_classes_ &&
                  options.queue_size() == built_queue_size_ &&
                  options.ignore_index() == built_ignore_index_,
              Derived::kName,
              ": num_classes, queue_size and ignore_index were edited after construction "
              "(now ",
              options.num_classes(), ", ", options.queue_size(), ", ",
              options.ignore_index(), "; the queue was built for ", built_num_classes_,
              ", ", built_queue_size_, ", ", built_ignore_index_,
              "): call reset() to rebuild the queue");
  const bool has_queue = built_queue_size_ > 0;
  const bool update = this->is_training() || options.update_queue_in_eval();
  // The batch: this rank's, or, with a process group, every rank's.
  torch::Tensor logits = local_logits;
  torch::Tensor targets = local_targets;
  torch::Tensor sample_weight = local_sample_weight;
  torch::Tensor iid_mask = local_iid_mask;
  optional<int64_t> seed;
  if (this->gathers()) {
    std::tie(logits, targets, sample_weight, iid_mask, seed) =
        gather(local_logits, local_targets, local_sample_weight, local_iid_mask, update);
  }
  RankingStepInputs inputs;
  if (has_queue) {
    inputs.queue_logits = queue_logits;
    inputs.queue_targets = queue_targets;
    if (Derived::kQueuesIid) {
      inputs.queue_iid = queue_iid;
    }
  }
  inputs.sample_weight = common::defined_or_nullopt(sample_weight);
  inputs.iid_mask = common::defined_or_nullopt(iid_mask);
  if (this->gathers()) {
    inputs.local_targets = local_targets;
  }
  // Weighted when this batch or a queued row carries weights.
  if (has_queue && (queue_weighted_ || inputs.sample_weight.has_value())) {
    inputs.queue_weight = queue_weight;
  }
  torch::Tensor loss;
  torch::Tensor per_class;
  torch::Tensor valid;
  torch::Tensor events;
  {
    // With max_pool_size the ranks subsample with the seed they agreed on.
    const distributed_impl::SeededDefaultGenerator seeded(seed, logits);
    std::tie(loss, per_class, valid, events) = nn_impl::naming_the_loss(
        Derived::kName,
        [&] { return static_cast<Derived&>(*this).call_op(logits, targets, inputs); });
  }

  // The queue follows the logits' device (the op has accepted them).
  if (has_queue && queue_logits.device() != logits.device()) {
    torch::NoGradGuard no_grad;
    for (auto* buffer :
         {&queue_logits, &queue_targets, &queue_ptr, &queue_weight, &queue_iid}) {
      if (buffer->defined()) {
        buffer->set_data(buffer->to(logits.device()));
      }
    }
  }
  // What the op saw, read on the host once, for the warnings and the
  // queue update.
  const auto happened = events.to(torch::kCPU);
  const bool nonfinite = nn_impl::warn_ranking_events(
      Derived::kName, happened, targets, has_queue ? queue_targets : torch::Tensor(),
      options.ignore_index(), options.max_pool_size().value_or(0), warned_);

  const bool empty_pool = happened.data_ptr<bool>()[ops::kEmptyPool];
  if (has_queue && update && !nonfinite && !empty_pool) {
    // While queue_weighted_ is false every stored weight is 1: an unweighted
    // batch need not write its ones.
    ops::queue_push_(queue_logits, queue_targets, queue_ptr, logits, targets,
                     inputs.queue_weight, inputs.sample_weight, inputs.queue_iid,
                     inputs.iid_mask);
    queue_weighted_ = inputs.queue_weight.has_value();
  }
  return {loss, per_class, valid};
}

template <typename Derived, typename Options>
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor, optional<int64_t>>
QueuedRankingLoss<Derived, Options>::gather(const torch::Tensor& logits,
                                            const torch::Tensor& targets,
                                            const torch::Tensor& sample_weight,
                                            const torch::Tensor& iid_mask,
                                            bool updates_queue) const {
  // Targets [N, 1] travel as [N] and iid_mask as bool (nonzero = iid), so
  // that ranks may differ in those forms.
  auto flat_targets = targets;
  if (targets.defined() && targets.dim() == 2 && targets.size(1) == 1) {
    flat_targets = targets.reshape({-1});
  }
  auto iid = iid_mask;
  if (iid.defined() && iid.scalar_type() != torch::kBool) {
    iid = iid.ne(0);
  }
  distributed_impl::OptionList agreed;
  agreed.add("num_classes", options.num_classes())
      .add("queue_size", options.queue_size())
      .add("temperature", options.temperature())
      .add("reduction", reduction_name(options.reduction()))
      .add("ignore_index", options.ignore_index())
      .add("update_queue_in_eval", options.update_queue_in_eval())
      .add("max_pool_size", options.max_pool_size());
  static_cast<const Derived&>(*this).describe_extra_options(agreed);
  optional<distributed_impl::QueueState> queue;
  if (built_queue_size_ > 0) {
    agreed.add("queue dtype", std::string(c10::toString(queue_logits.scalar_type())))
        .add("queue updated (training or update_queue_in_eval)", updates_queue);
    queue = distributed_impl::QueueState{queue_ptr, {queue_logits, queue_targets}};
    if (queue_iid.defined()) {
      queue->buffers.push_back(queue_iid);
    }
    queue->buffers.push_back(queue_weight);
  }
  auto batch = distributed_impl::gather_batch(
      this->process_group(), Derived::kName, agreed,
      {{"logits", logits},
       {"targets", flat_targets},
       {"sample_weight", sample_weight},
       {"iid_mask", iid}},
      queue, /*shared_seed=*/options.max_pool_size().has_value());
  return {batch.tensors[0], batch.tensors[1], batch.tensors[2], batch.tensors[3],
          batch.seed};
}

template <typename Derived, typename Options>
void QueuedRankingLoss<Derived, Options>::to(torch::Dtype dtype, bool non_blocking) {
  torch::nn::Module::to(dtype, non_blocking);
  keep_dtype(queue_targets, torch::kLong);
  keep_dtype(queue_ptr, torch::kLong);
  keep_dtype(queue_iid, torch::kBool);
}

template <typename Derived, typename Options>
void QueuedRankingLoss<Derived, Options>::to(torch::Device device, torch::Dtype dtype,
                                             bool non_blocking) {
  torch::nn::Module::to(device, dtype, non_blocking);
  keep_dtype(queue_targets, torch::kLong);
  keep_dtype(queue_ptr, torch::kLong);
  keep_dtype(queue_iid, torch::kBool);
}

template <typename Derived, typename Options>
void QueuedRankingLoss<Derived, Options>::load(torch::serialize::InputArchive& archive) {
  detail::load_or_leave_unchanged(
      *this, archive, Derived::kName,
      [this, &archive] {
        if (!queue_logits.defined()) { // queue_size 0 from the start: no buffers
          torch::Tensor saved;
          TORCH_CHECK(!archive.try_read("queue_logits", saved, /*is_buffer=*/true),
                      "the checkpoint holds a queue of ", saved.sizes(),
                      " logits but this module has queue_size 0; construct it with the "
                      "checkpoint's queue_size and num_classes");
          return;
        }
        check_loaded_queue(queue_logits, queue_targets, queue_ptr, queue_weight,
                           queue_iid, built_queue_size_, built_num_classes_,
                           built_ignore_index_);
      },
      /*optional_buffers=*/{{"queue_weight", 1.0}, {"queue_iid", 1.0}});
  queue_weighted_ = queue_weight.defined() && queue_weight.ne(1).any().item<bool>();
}

template <typename Derived, typename Options>
void QueuedRankingLoss<Derived, Options>::reset_queue() {
  if (built_queue_size_ == 0) {
    return;
  }
  torch::NoGradGuard no_grad;
  queue_logits.zero_();
  queue_targets.fill_(built_ignore_index_);
  queue_ptr.zero_();
  queue_weight.fill_(1);
  if (queue_iid.defined()) {
    queue_iid.fill_(true);
  }
  queue_weighted_ = false;
}

template <typename Derived, typename Options>
double QueuedRankingLoss<Derived, Options>::temperature() const {
  return options.temperature();
}

template <typename Derived, typename Options>
void QueuedRankingLoss<Derived, Options>::set_temperature(double temperature) {
  common::check_temperature(Derived::kName, temperature);
  options.temperature(temperature);
}

template class QueuedRankingLoss<SmoothAPLossImpl, SmoothAPLossOptions>;
template class QueuedRankingLoss<RecallAtQuantileLossImpl, RecallAtQuantileLossOptions>;
template class QueuedRankingLoss<PAUCAtBudgetLossImpl, PAUCAtBudgetLossOptions>;

} // namespace proxyloss
