// Checkpoints that cannot be restored: truncated or corrupt files, a queue
// whose shape does not fit the module's options, a bad schedule state, class
// weights of another size. Each is a c10::Error naming the cause, and the
// module keeps exactly the state it had before the failed torch::load.
// (Round trips of good checkpoints are tested beside each module.)
#include "support/test_support.h"

#include <proxyloss/proxyloss.h>

#include <sstream>
#include <string>

using proxyloss::LossWarmupWrapper;
using proxyloss::LossWarmupWrapperOptions;
using proxyloss::PAUCAtBudgetLoss;
using proxyloss::PAUCAtBudgetLossOptions;
using proxyloss::RecallAtQuantileLoss;
using proxyloss::RecallAtQuantileLossOptions;
using proxyloss::SmoothAPLoss;
using proxyloss::SmoothAPLossOptions;
using test_support::throws_with;

namespace {

std::pair<torch::Tensor, torch::Tensor> batch(int64_t n, int64_t c, uint64_t seed) {
  torch::manual_seed(seed);
  return {torch::randn({n, c}), torch::arange(n, torch::kLong).remainder(c)};
}

// A module with some state of its own: a few batches in its queue.
template <typename Module>
Module filled(Module module, int64_t num_classes, uint64_t seed) {
  for (int i = 0; i < 3; ++i) {
    auto [x, t] = batch(5, num_classes, seed + i);
    module->forward(x, t);
  }
  return module;
}

template <typename Module>
std::string serialized(const Module& module) {
  std::ostringstream out;
  torch::save(module, out);
  return out.str();
}

template <typename Module>
void load_from(Module& module, const std::string& bytes) {
  std::istringstream in(bytes);
  torch::load(module, in);
}

// Copies of every buffer, to compare before and after a failed load.
std::vector<std::pair<std::string, torch::Tensor>> state_of(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> state;
  for (const auto& item : m.named_buffers(/*recurse=*/true)) {
    state.emplace_back(item.key(), item.value().clone());
  }
  return state;
}

::testing::AssertionResult unchanged(
    const torch::nn::Module& module,
    const std::vector<std::pair<std::string, torch::Tensor>>& before) {
  const auto after = state_of(module);
  if (after.size() != before.size()) {
    return ::testing::AssertionFailure() << "buffer count changed";
  }
  for (size_t i = 0; i < before.size(); ++i) {
    const auto& [name, value] = before[i];
    if (after[i].first != name || after[i].second.sizes() != value.sizes() ||
        after[i].second.scalar_type() != value.scalar_type() ||
        !torch::equal(after[i].second, value)) {
      return ::testing::AssertionFailure() << "buffer " << name << " changed";
    }
  }
  return ::testing::AssertionSuccess();
}

// The queued ranking losses behave the same way.
template <typename Module, typename Options>
struct QueuedLoss {
  static Module make(int64_t num_classes, int64_t queue_size) {
    return Module(Options(num_classes).queue_size(queue_size));
  }
};

template <typename T>
class QueuedLossCheckpoint : public ::testing::Test {};
using QueuedLosses =
    ::testing::Types<QueuedLoss<SmoothAPLoss, SmoothAPLossOptions>,
                     QueuedLoss<RecallAtQuantileLoss, RecallAtQuantileLossOptions>,
                     QueuedLoss<PAUCAtBudgetLoss, PAUCAtBudgetLossOptions>>;
TYPED_TEST_SUITE(QueuedLossCheckpoint, QueuedLosses);

TYPED_TEST(QueuedLossCheckpoint, TruncatedFileIsAnErrorAndLeavesTheModuleUnchanged) {
  const auto bytes = serialized(filled(TypeParam::make(3, 16), 3, 1));
  auto module = filled(TypeParam::make(3, 16), 3, 50);
  const auto before = state_of(*module);
  for (const size_t keep : {size_t(0), size_t(10), bytes.size() / 2, bytes.size() - 1}) {
    EXPECT_THROW(load_from(module, bytes.substr(0, keep)), c10::Error) << keep;
    EXPECT_TRUE(unchanged(*module, before)) << keep;
  }
}

TYPED_TEST(QueuedLossCheckpoint, GarbageBytesAreAnErrorAndLeaveTheModuleUnchanged) {
  auto module = filled(TypeParam::make(3, 16), 3, 50);
  const auto before = state_of(*module);
  EXPECT_THROW(load_from(module, std::string(4096, '\x5a')), c10::Error);
  // A valid archive of something else: a tensor, not a module.
  std::ostringstream other;
  torch::save(torch::ones({3}), other);
  EXPECT_THROW(load_from(module, other.str()), c10::Error);
  EXPECT_TRUE(unchanged(*module, before));
}

TYPED_TEST(QueuedLossCheckpoint,
           QueueOfAnotherShapeIsAnErrorAndLeavesTheModuleUnchanged) {
  struct Case {
    int64_t num_classes, queue_size;
    std::string cause;
  };
  const std::vector<Case> cases = {
      {3, 8, "queue_logits has shape [8, 3], expected [16, 3] (queue_size, num_classes)"},
      {2, 16,
       "queue_logits has shape [16, 2], expected [16, 3] (queue_size, num_classes)"},
      {3, 0, "queue_logits"}, // the checkpoint has no queue at all
  };
  for (const auto& c : cases) {
    const auto bytes = serialized(
        filled(TypeParam::make(c.num_classes, c.queue_size), c.num_classes, 1));
    auto module = filled(TypeParam::make(3, 16), 3, 50);
    const auto before = state_of(*module);
    EXPECT_TRUE(
        throws_with([&] { load_from(module, bytes); },
                    {"cannot load the checkpoint (the module is unchanged)", c.cause}))
        << c.num_classes << " " << c.queue_size;
    EXPECT_TRUE(unchanged(*module, before));
    // And the module still works with its own queue.
    auto [x, t] = batch(5, 3, 7);
    EXPECT_NO_THROW(module->forward(x, t));
  }
}

TYPED_TEST(QueuedLossCheckpoint, QueueIntoAModuleWithoutOneIsAnError) {
  const auto bytes = serialized(filled(TypeParam::make(3, 16), 3, 1));
  auto module = TypeParam::make(3, 0);
  EXPECT_TRUE(throws_with([&] { load_from(module, bytes); },
                          {"holds a queue of [16, 3]", "queue_size 0"}));
  EXPECT_TRUE(module->named_buffers().is_empty());
}

TYPED_TEST(QueuedLossCheckpoint, PointerOutsideTheQueueIsAnError) {
  auto source = filled(TypeParam::make(3, 16), 3, 1);
  source->named_buffers()["queue_ptr"].fill_(16);
  const auto bytes = serialized(source);
  auto module = filled(TypeParam::make(3, 16), 3, 50);
  const auto before = state_of(*module);
  EXPECT_TRUE(throws_with([&] { load_from(module, bytes); },
                          {"queue_ptr must be in [0, 16), got 16"}));
  EXPECT_TRUE(unchanged(*module, before));
}

TYPED_TEST(QueuedLossCheckpoint, NonFiniteQueueIsAnError) {
  auto source = filled(TypeParam::make(3, 16), 3, 1);
  source->named_buffers()["queue_logits"][2][1] = std::nan("");
  auto module = filled(TypeParam::make(3, 16), 3, 50);
  const auto before = state_of(*module);
  EXPECT_TRUE(throws_with([&] { load_from(module, serialized(source)); },
                          {"queue_logits holds non-finite values"}));
  EXPECT_TRUE(unchanged(*module, before));
}

TYPED_TEST(QueuedLossCheckpoint, IgnoredNonFiniteRowIsHarmlessAndLoads) {
  auto source = TypeParam::make(3, 16);
  auto [x, t] = batch(6, 3, 4);
  x[2][0] = std::nan("");
  t[2] = -100; // ignore_index: not in the pool
  EXPECT_TRUE(torch::isfinite(source->forward(x, t)).all().template item<bool>());
  EXPECT_EQ(source->named_buffers()["queue_ptr"].template item<int64_t>(), 6);
  auto module = TypeParam::make(3, 16);
  load_from(module, serialized(source));
  EXPECT_TRUE(torch::equal(module->named_buffers()["queue_targets"],
                           source->named_buffers()["queue_targets"]));
}

TYPED_TEST(QueuedLossCheckpoint, QueueOfAnotherFloatingDtypeLoads) {
  auto source = filled(TypeParam::make(3, 16), 3, 1);
  source->to(torch::kDouble); // the logits only: targets and pointer stay int64
  EXPECT_EQ(source->named_buffers()["queue_logits"].scalar_type(), torch::kDouble);
  EXPECT_EQ(source->named_buffers()["queue_targets"].scalar_type(), torch::kLong);
  EXPECT_EQ(source->named_buffers()["queue_ptr"].scalar_type(), torch::kLong);
  auto module = TypeParam::make(3, 16);
  load_from(module, serialized(source));
  EXPECT_TRUE(torch::equal(module->named_buffers()["queue_logits"],
                           source->named_buffers()["queue_logits"]));
}

LossWarmupWrapper make_wrapper(int64_t queue_size) {
  return LossWarmupWrapper(torch::nn::CrossEntropyLoss(),
                           SmoothAPLoss(SmoothAPLossOptions(2).queue_size(queue_size)),
                           LossWarmupWrapperOptions().warmup_epochs(1).blend_epochs(1));
}

void train(LossWarmupWrapper& wrapper, int64_t steps) {
  for (int64_t step = 0; step < steps; ++step) {
    if (step % 3 == 0) {
      wrapper->on_train_epoch_start(step / 3);
    }
    wrapper->on_train_batch_start(step);
    auto [x, t] = batch(6, 2, 200 + step);
    wrapper->forward(x, t);
  }
}

TEST(LossWarmupWrapperCheckpoint, BadMainLossQueueLeavesTheWholeWrapperUnchanged) {
  auto source = make_wrapper(8);
  train(source, 8);
  const auto bytes = serialized(source);
  auto wrapper = make_wrapper(16);
  train(wrapper, 4); // mid-blend, epoch 1
  const auto before = state_of(*wrapper);
  const double weight = wrapper->main_weight();
  const auto temperature = wrapper->current_temperature();
  EXPECT_TRUE(throws_with([&] { load_from(wrapper, bytes); },
                          {"LossWarmupWrapper: cannot load", "SmoothAPLoss",
                           "queue_logits has shape [8, 2]"}));
  EXPECT_TRUE(unchanged(*wrapper, before));
  EXPECT_EQ(wrapper->main_weight(), weight);
  EXPECT_EQ(wrapper->current_temperature(), temperature);
}

// A module with the wrapper's layout (two losses and a `schedule` buffer)
// whose schedule is whatever the test writes.
struct FakeWrapperImpl : torch::nn::Module {
  explicit FakeWrapperImpl(torch::Tensor schedule) {
    register_module("warmup_loss", torch::nn::CrossEntropyLoss());
    register_module("main_loss", SmoothAPLoss(SmoothAPLossOptions(2).queue_size(16)));
    register_buffer("schedule", std::move(schedule));
  }
};
TORCH_MODULE(FakeWrapper);

TEST(LossWarmupWrapperCheckpoint, BadScheduleStateIsAnErrorAndLeavesTheWrapperUnchanged) {
  const double nan = std::nan("");
  struct Case {
    torch::Tensor schedule;
    std::string message;
  };
  const auto state = [](std::vector<double> v) {
    return torch::tensor(v, torch::kDouble);
  };
  const std::vector<Case> cases = {
      {state({1, 2, 3}), "schedule state must have 5 entries, got shape [3]"},
      {state({1.5, 0, -2, 0, nan}), "epoch must be a whole number, got 1.5"},
      {state({0, nan, -2, 0, nan}), "global_step must be a whole number"},
      {state({0, 0, -3, 0, nan}), "switch_step must be >= -2, got -3"},
      {state({0, 0, -2, 2, nan}), "batch_hook_seen must be 0 or 1, got 2"},
      {state({0, 0, -2, 0, -1}), "temperature must be NaN (none) or finite and > 0"},
  };
  for (const auto& c : cases) {
    const auto bytes = serialized(FakeWrapper(c.schedule));
    auto wrapper = make_wrapper(16);
    train(wrapper, 4);
    const auto before = state_of(*wrapper);
    const double weight = wrapper->main_weight();
    EXPECT_TRUE(throws_with([&] { load_from(wrapper, bytes); }, {c.message}))
        << c.message;
    EXPECT_TRUE(unchanged(*wrapper, before)) << c.message;
    EXPECT_EQ(wrapper->main_weight(), weight);
  }
}

TEST(FairLossCheckpoint, WeightRoundTripsAndAnotherSizeIsAnError) {
  using proxyloss::FairLoss;
  using proxyloss::FairLossOptions;
  FairLoss source(FairLossOptions().weight(torch::tensor({1.0, 2.0, 3.0})));
  FairLoss same(FairLossOptions().weight(torch::ones({3})));
  load_from(same, serialized(source));
  EXPECT_TRUE(torch::equal(same->weight, source->weight));

  FairLoss other(FairLossOptions().weight(torch::ones({4})));
  const auto before = state_of(*other);
  EXPECT_TRUE(throws_with([&] { load_from(other, serialized(source)); },
                          {"FairLoss: cannot load", "weight has shape [3]",
                           "expected floating with shape [4]"}));
  EXPECT_TRUE(unchanged(*other, before));
}

} // namespace
