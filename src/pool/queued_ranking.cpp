#include "proxyloss/detail/queued_ranking.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <utility>
#include <vector>

namespace proxyloss {
namespace detail {
namespace {

// A scalar zero that still has a graph to `logits` (gradient 0), and stays 0
// even when the logits hold NaN.
torch::Tensor zero_with_graph(const torch::Tensor& logits) {
  return logits.narrow(0, 0, 0).sum();
}

std::string first_values(const torch::Tensor& values, int64_t limit) {
  const auto shown = values.narrow(0, 0, std::min<int64_t>(limit, values.size(0))).cpu();
  std::ostringstream out;
  out << "[";
  for (int64_t i = 0; i < shown.size(0); ++i) {
    out << (i ? ", " : "") << shown[i].item<int64_t>();
  }
  out << (values.size(0) > limit ? ", ...]" : "]");
  return out.str();
}

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

} // namespace

void check_temperature(const std::string& loss_name, double temperature) {
  TORCH_CHECK(std::isfinite(temperature) && temperature > 0, loss_name,
              ": temperature must be finite and > 0, got ", temperature);
}

void check_ranking_config(const RankingConfig& config) {
  const auto& name = config.loss_name;
  TORCH_CHECK(config.num_classes > 0, name, ": num_classes must be > 0, got ",
              config.num_classes);
  TORCH_CHECK(config.queue_size >= 0, name,
              ": queue_size must be >= 0 (0 disables the queue), got ",
              config.queue_size);
  check_temperature(name, config.temperature);
  if (config.max_pool_size.has_value()) {
    TORCH_CHECK(*config.max_pool_size > 0, name,
                ": max_pool_size must be > 0 when set, got ", *config.max_pool_size);
  }
  const bool binary = config.num_classes == 1;
  const int64_t label_end = binary ? 2 : config.num_classes;
  TORCH_CHECK(config.ignore_index < 0 || config.ignore_index >= label_end, name,
              ": ignore_index must not be a valid target (",
              binary ? "0 or 1 in binary mode" : "a class in [0, num_classes)",
              "), got ignore_index=", config.ignore_index,
              " with num_classes=", config.num_classes);
}

MemoryQueue::MemoryQueue(torch::nn::Module& owner, int64_t queue_size,
                         int64_t num_classes, int64_t ignore_index)
    : capacity_(queue_size), num_classes_(num_classes), ignore_index_(ignore_index) {
  const bool registered = owner.named_buffers(/*recurse=*/false).contains("queue_logits");
  if (queue_size == 0 && !registered) {
    return;
  }
  logits =
      register_or_replace(owner, "queue_logits", torch::zeros({queue_size, num_classes}));
  targets = register_or_replace(owner, "queue_targets",
                                torch::full({queue_size}, ignore_index, torch::kLong));
  ptr = register_or_replace(owner, "queue_ptr", torch::zeros({1}, torch::kLong));
}

void MemoryQueue::check_loaded(const std::string& loss_name,
                               torch::serialize::InputArchive& archive) const {
  if (!logits.defined()) { // queue_size 0 from the start: no buffers
    torch::Tensor saved;
    TORCH_CHECK(!archive.try_read("queue_logits", saved, /*is_buffer=*/true), loss_name,
                ": the checkpoint holds a queue of ", saved.sizes(),
                " logits but this module has queue_size 0; construct it with the "
                "checkpoint's queue_size and num_classes");
    return;
  }
  TORCH_CHECK(
      logits.dim() == 2 && logits.size(0) == capacity_ && logits.size(1) == num_classes_,
      loss_name, ": checkpoint queue_logits has shape ", logits.sizes(), ", expected [",
      capacity_, ", ", num_classes_,
      "] (queue_size, num_classes); construct the module with the "
      "checkpoint's queue_size and num_classes");
  TORCH_CHECK(at::isFloatingType(logits.scalar_type()), loss_name,
              ": checkpoint queue_logits must be floating, got ", logits.scalar_type());
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == capacity_, loss_name,
              ": checkpoint queue_targets has shape ", targets.sizes(), ", expected [",
              capacity_, "] (queue_size)");
  TORCH_CHECK(at::isIntegralType(targets.scalar_type(), /*includeBool=*/false), loss_name,
              ": checkpoint queue_targets must be integer, got ", targets.scalar_type());
  TORCH_CHECK(ptr.numel() == 1 && at::isIntegralType(ptr.scalar_type(), false), loss_name,
              ": checkpoint queue_ptr must be one integer, got shape ", ptr.sizes(),
              " and dtype ", ptr.scalar_type());
  // Every row that can enter a pool is finite (forward relies on it).
  TORCH_CHECK(torch::isfinite(logits)
                  .all(/*dim=*/1)
                  .logical_or(targets.eq(ignore_index_))
                  .all()
                  .item<bool>(),
              loss_name, ": checkpoint queue_logits holds non-finite values");
  if (capacity_ > 0) {
    const int64_t position = ptr.item<int64_t>();
    TORCH_CHECK(position >= 0 && position < capacity_, loss_name,
                ": checkpoint queue_ptr must be in [0, ", capacity_, "), got ", position);
  }
}

void MemoryQueue::reset() {
  if (capacity_ == 0) {
    return;
  }
  torch::NoGradGuard no_grad;
  logits.zero_();
  targets.fill_(ignore_index_);
  ptr.zero_();
}

void MemoryQueue::follow(const torch::Tensor& live_logits) {
  if (capacity_ == 0) {
    return;
  }
  torch::NoGradGuard no_grad;
  if (logits.scalar_type() != live_logits.scalar_type() ||
      logits.device() != live_logits.device()) {
    logits.set_data(logits.to(live_logits.options()));
  }
  if (targets.device() != live_logits.device()) {
    targets.set_data(targets.to(live_logits.device()));
  }
  keep_integer_dtypes();
}

void MemoryQueue::keep_integer_dtypes() {
  torch::NoGradGuard no_grad;
  for (auto* buffer : {&targets, &ptr}) {
    if (buffer->defined() && buffer->scalar_type() != torch::kLong) {
      buffer->set_data(buffer->to(torch::kLong));
    }
  }
}

void MemoryQueue::enqueue(const torch::Tensor& live_logits,
                          const torch::Tensor& live_targets) {
  const int64_t n = live_logits.size(0);
  if (capacity_ == 0 || n == 0) {
    return;
  }
  torch::NoGradGuard no_grad;
  const auto rows = live_logits.detach().to(logits.options());
  const auto labels = live_targets.to(targets.device(), torch::kLong);
  if (n >= capacity_) {
    logits.copy_(rows.narrow(0, n - capacity_, capacity_));
    targets.copy_(labels.narrow(0, n - capacity_, capacity_));
    ptr.zero_();
    return;
  }
  const int64_t start = ptr.item<int64_t>();
  TORCH_CHECK(start >= 0 && start < capacity_, "queue_ptr must be in [0, ", capacity_,
              "), got ", start);
  const int64_t head = std::min(n, capacity_ - start);
  logits.narrow(0, start, head).copy_(rows.narrow(0, 0, head));
  targets.narrow(0, start, head).copy_(labels.narrow(0, 0, head));
  if (n > head) {
    logits.narrow(0, 0, n - head).copy_(rows.narrow(0, head, n - head));
    targets.narrow(0, 0, n - head).copy_(labels.narrow(0, head, n - head));
  }
  ptr.fill_((start + n) % capacity_);
}

torch::Tensor positives_per_class(const torch::Tensor& labels, int64_t num_classes) {
  const auto in_range = labels.ge(0).logical_and(labels.lt(num_classes));
  const auto sentinel =
      torch::where(in_range, labels, torch::full_like(labels, num_classes));
  return torch::bincount(sentinel, /*weights=*/{}, num_classes + 1)
      .narrow(0, 0, num_classes);
}

QueuedRanking::QueuedRanking(RankingConfig config, MemoryQueue queue)
    : config_(std::move(config)), queue_(std::move(queue)) {}

void QueuedRanking::update_config(const RankingConfig& config) {
  check_ranking_config(config);
  TORCH_CHECK(config.num_classes == config_.num_classes &&
                  config.queue_size == config_.queue_size &&
                  config.ignore_index == config_.ignore_index,
              config_.loss_name,
              ": num_classes, queue_size and ignore_index were edited after construction "
              "(now ",
              config.num_classes, ", ", config.queue_size, ", ", config.ignore_index,
              "; the queue was built for ", config_.num_classes, ", ", config_.queue_size,
              ", ", config_.ignore_index, "): call reset() to rebuild the queue");
  config_ = config;
}

torch::Tensor QueuedRanking::checked_targets(const torch::Tensor& logits,
                                             const torch::Tensor& targets) {
  const auto& name = config_.loss_name;
  const int64_t C = config_.num_classes;
  TORCH_CHECK(logits.defined(), name, ": logits is an undefined tensor");
  TORCH_CHECK(targets.defined(), name, ": targets is an undefined tensor");
  TORCH_CHECK(logits.dim() == 2 && logits.size(1) == C, name,
              ": logits must have shape [N, ", C, "] (num_classes=", C, "), got ",
              logits.sizes());
  TORCH_CHECK(at::isFloatingType(logits.scalar_type()), name,
              ": logits must be floating point (float32, float64, float16 or "
              "bfloat16), got ",
              logits.scalar_type());
  auto t = targets;
  if (t.dim() == 2 && t.size(1) == 1) {
    t = t.squeeze(1);
  }
  TORCH_CHECK(t.dim() == 1 && t.size(0) == logits.size(0), name,
              ": targets must have shape [N] or [N, 1] with N = ", logits.size(0),
              " (the rows of logits), got ", targets.sizes());
  TORCH_CHECK(at::isIntegralType(t.scalar_type(), /*includeBool=*/true), name,
              ": targets must be an integer tensor, got ", t.scalar_type());
  TORCH_CHECK(t.device() == logits.device(), name,
              ": targets must be on the device of logits (", logits.device(), "), got ",
              t.device());
  t = t.to(torch::kLong);
  if (C > 1) {
    const auto bad = t.ne(config_.ignore_index)
                         .logical_and(t.lt(0).logical_or(t.ge(C)))
                         .nonzero()
                         .squeeze(1);
    TORCH_CHECK(bad.size(0) == 0, name, ": targets must be in [0, ", C,
                ") or ignore_index=", config_.ignore_index, ", got ",
                first_values(t.index_select(0, bad), 8));
  }
  return t;
}

std::tuple<torch::Tensor, torch::Tensor> QueuedRanking::subsample(
    const torch::Tensor& logits, const torch::Tensor& targets) {
  const int64_t cap = *config_.max_pool_size;
  const int64_t M = logits.size(0);
  if (!warned_subsample_) {
    TORCH_WARN(config_.loss_name, ": pool size ", M, " exceeds max_pool_size=", cap,
               "; applying minimum-quota subsampling, so the loss is now a stochastic "
               "approximation. (This warning is shown once per instance.)");
    warned_subsample_ = true;
  }
  const auto index_options =
      torch::TensorOptions().dtype(torch::kLong).device(targets.device());
  const auto classes = std::get<0>(at::_unique(targets, /*sorted=*/true));
  const int64_t quota = std::max<int64_t>(1, cap / (2 * classes.size(0)));
  std::vector<torch::Tensor> reserved;
  for (int64_t k = 0; k < classes.size(0); ++k) {
    const auto rows = targets.eq(classes[k]).nonzero().squeeze(1);
    const int64_t keep = std::min<int64_t>(rows.size(0), quota);
    reserved.push_back(rows.index_select(
        0, torch::randperm(rows.size(0), index_options).narrow(0, 0, keep)));
  }
  auto chosen = torch::cat(reserved);
  if (chosen.size(0) >= cap) {
    chosen = chosen.index_select(
        0, torch::randperm(chosen.size(0), index_options).narrow(0, 0, cap));
  } else {
    auto taken = torch::zeros({M}, index_options.dtype(torch::kBool));
    taken.index_fill_(0, chosen, true);
    const auto rest = taken.logical_not().nonzero().squeeze(1);
    const auto extra = rest.index_select(
        0,
        torch::randperm(rest.size(0), index_options).narrow(0, 0, cap - chosen.size(0)));
    chosen = torch::cat({chosen, extra});
  }
  return {logits.index_select(0, chosen), targets.index_select(0, chosen)};
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> QueuedRanking::forward(
    const torch::Tensor& logits, const torch::Tensor& targets,
    const reduction_t& reduction, bool update_queue, const PerClassFn& per_class) {
  const auto& name = config_.loss_name;
  const int64_t C = config_.num_classes;
  const auto live_targets = checked_targets(logits, targets);
  queue_.follow(logits);

  // Pool: the live batch followed by the (detached) queue, without the
  // ignore_index rows.
  auto pool_logits = logits;
  auto pool_targets = live_targets;
  if (queue_.capacity() > 0) {
    pool_logits = torch::cat({logits, queue_.logits.detach()});
    pool_targets = torch::cat({live_targets, queue_.targets});
  }
  const auto kept = pool_targets.ne(config_.ignore_index);
  if (!kept.all().item<bool>()) {
    const auto rows = kept.nonzero().squeeze(1);
    pool_logits = pool_logits.index_select(0, rows);
    pool_targets = pool_targets.index_select(0, rows);
  }
  // The queue's rows that can enter a pool are finite (enqueue and load see
  // to it), so the live rows that enter it are the ones to check: O(N C),
  // not O(M C).
  const bool finite = torch::isfinite(logits.detach())
                          .all(/*dim=*/1)
                          .logical_or(live_targets.eq(config_.ignore_index))
                          .all()
                          .item<bool>();
  if (!finite && !warned_nonfinite_) {
    TORCH_WARN(name,
               ": non-finite logits (NaN or inf) in the ranking pool; the loss "
               "of the affected classes is NaN and the batch is not added to the "
               "queue. (This warning is shown once per instance.)");
    warned_nonfinite_ = true;
  }
  if (config_.max_pool_size.has_value() && pool_logits.size(0) > *config_.max_pool_size) {
    std::tie(pool_logits, pool_targets) = subsample(pool_logits, pool_targets);
  }

  const auto valid_options =
      torch::TensorOptions().dtype(torch::kBool).device(logits.device());
  const auto nan_per_class =
      torch::full({C}, std::numeric_limits<double>::quiet_NaN(), logits.options());
  if (pool_logits.size(0) == 0) {
    auto zero = zero_with_graph(logits);
    auto out = reduction_kind(reduction) == Reduction::None ? zero.expand({C}) : zero;
    return {out, nan_per_class, torch::zeros({C}, valid_options)};
  }

  auto labels = pool_targets;
  if (C == 1) {
    const auto unexpected = pool_targets.ne(0).logical_and(pool_targets.ne(1));
    if (!warned_binary_labels_ && unexpected.any().item<bool>()) {
      TORCH_WARN(
          name,
          ": binary mode (num_classes=1) expects targets in {0, 1}, but "
          "found values ",
          first_values(pool_targets.index_select(0, unexpected.nonzero().squeeze(1)), 8),
          "; non-zero values are treated as positive. (This warning is shown "
          "once per instance.)");
      warned_binary_labels_ = true;
    }
    labels = torch::where(pool_targets.ne(0), torch::zeros_like(pool_targets),
                          torch::full_like(pool_targets, -1));
  }

  const PerClass result = per_class(pool_logits, labels);
  if (update_queue && finite) {
    queue_.enqueue(logits, live_targets);
  }

  const auto valid = result.valid.to(valid_options);
  const auto per_class_loss = torch::where(valid, result.loss, nan_per_class);
  torch::Tensor out;
  switch (reduction_kind(reduction)) {
    case Reduction::None:
      out = per_class_loss;
      break;
    case Reduction::Sum:
    case Reduction::Mean: {
      const auto rows = valid.nonzero().squeeze(1);
      if (rows.size(0) == 0) {
        out = zero_with_graph(logits);
      } else {
        const auto kept_losses = result.loss.index_select(0, rows);
        out = reduction_kind(reduction) == Reduction::Sum ? kept_losses.sum()
                                                          : kept_losses.mean();
      }
      break;
    }
  }
  return {out, per_class_loss, valid};
}

} // namespace detail
} // namespace proxyloss
