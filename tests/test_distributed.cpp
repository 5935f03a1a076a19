// Losses handed a c10d process group (include/proxyloss/distributed.h), on 2
// and 3 processes over Gloo and a c10d::FileStore in a fresh temporary
// folder (no fixed names, no ports: ctest -j is safe).
//
// Each test re-executes this binary once per rank (--gtest_filter=the test,
// the rank in the environment); the ranks check what they can alone with
// gtest assertions (a failure is a non-zero exit) and write what must agree
// across ranks (losses, queue buffers, error messages) into the folder,
// which the parent compares.
//
// Every rank trains a small model (torch::nn::Linear) with a loss that
// gathers; beside it, a single-process reference: the same loss without a
// group, fed the concatenation of every rank's logits (each rank's rows
// computed by a copy of the model at the same parameters), targets, weights
// and iid flags. Over train and eval steps with queues, uneven batches (an
// empty one, a rank without positives), ignore_index rows, sample_weight and
// iid_mask in some steps: the loss equals the reference's bit for bit; the
// parameter gradients, all_reduced and divided by the world size (what
// DistributedDataParallel does), equal the reference's (1e-12 in float64);
// the queue buffers are bitwise equal to the reference's and across ranks.
#include "proxyloss/compat_c10d.h"
#include "proxyloss/proxyloss.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/FileStore.hpp>

#include <gtest/gtest.h>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

constexpr int64_t C = 3;
constexpr int64_t D = 4;
constexpr int64_t kIgnore = -100;

// --- running the ranks ------------------------------------------------------------

struct Rank {
  int rank;
  int world;
  std::string folder;
  proxyloss::ProcessGroupPtr group;
};

std::string file_in(const std::string& folder, const std::string& name) {
  return folder + "/" + name;
}

// The rank this process is, when the parent started it.
bool is_rank(Rank& me, std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  const char* rank = std::getenv("PROXYLOSS_TEST_RANK");
  if (rank == nullptr) {
    return false;
  }
  me.rank = std::atoi(rank);
  me.world = std::atoi(std::getenv("PROXYLOSS_TEST_WORLD"));
  me.folder = std::getenv("PROXYLOSS_TEST_FOLDER");
  torch::set_num_threads(1);
  auto store =
      c10::make_intrusive<c10d::FileStore>(file_in(me.folder, "store"), me.world);
  me.group = proxyloss::compat::make_gloo_process_group(store, me.rank, me.world, timeout,
                                                        "127.0.0.1");
  return true;
}

// Starts `world` ranks of the current test in a fresh folder, waits for them
// (at most five minutes) and returns the folder; a rank that fails or does
// not end fails the test.
std::string run_ranks(int world) {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  const std::string filter =
      std::string("--gtest_filter=") + info->test_suite_name() + "." + info->name();
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp ? tmp : "/tmp") + "/proxyloss-distributed-XXXXXX";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  EXPECT_NE(mkdtemp(name.data()), nullptr);
  const std::string folder(name.data());
  std::vector<pid_t> children;
  for (int rank = 0; rank < world; ++rank) {
    std::vector<std::string> variables;
    for (char** entry = environ; *entry != nullptr; ++entry) {
      variables.emplace_back(*entry);
    }
    variables.push_back("PROXYLOSS_TEST_RANK=" + std::to_string(rank));
    variables.push_back("PROXYLOSS_TEST_WORLD=" + std::to_string(world));
    variables.push_back("PROXYLOSS_TEST_FOLDER=" + folder);
    std::vector<char*> envp;
    for (auto& variable : variables) {
      envp.push_back(variable.data());
    }
    envp.push_back(nullptr);
    std::string program = "/proc/self/exe";
    std::string filter_arg = filter;
    std::vector<char*> argv = {program.data(), filter_arg.data(), nullptr};
    pid_t child = 0;
    EXPECT_EQ(
        posix_spawn(&child, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data()),
        0);
    children.push_back(child);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  for (size_t rank = 0; rank < children.size(); ++rank) {
    int status = 0;
    while (waitpid(children[rank], &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        for (const pid_t child : children) {
          kill(child, SIGKILL);
        }
        ADD_FAILURE() << "rank " << rank << " did not end within five minutes";
        waitpid(children[rank], &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "rank " << rank << " of " << world << " failed (status " << status << ")";
  }
  return folder;
}

void save_tensors(const Rank& me, std::vector<torch::Tensor> tensors) {
  torch::save(tensors, file_in(me.folder, "rank" + std::to_string(me.rank) + ".pt"));
}

std::vector<torch::Tensor> load_tensors(const std::string& folder, int rank) {
  std::vector<torch::Tensor> tensors;
  torch::load(tensors, file_in(folder, "rank" + std::to_string(rank) + ".pt"));
  return tensors;
}

bool bitwise_equal(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) {
    return false;
  }
  if (!a.is_floating_point()) {
    return torch::equal(a, b);
  }
  return torch::equal(a.isnan(), b.isnan()) &&
         torch::equal(a.nan_to_num(0), b.nan_to_num(0));
}

// What the parent checks: every rank wrote the same tensors.
void expect_the_same_on_every_rank(const std::string& folder, int world) {
  const auto first = load_tensors(folder, 0);
  EXPECT_FALSE(first.empty());
  for (int rank = 1; rank < world; ++rank) {
    const auto tensors = load_tensors(folder, rank);
    ASSERT_EQ(tensors.size(), first.size()) << "rank " << rank;
    for (size_t i = 0; i < first.size(); ++i) {
      EXPECT_TRUE(bitwise_equal(tensors[i], first[i]))
          << "tensor " << i << " of rank " << rank << " differs from rank 0's";
    }
  }
}

// --- the training cases ------------------------------------------------------------

enum class Kind { Ranking, Sigmoid, Softmax, Wrapper };

struct Loss {
  torch::nn::AnyModule module;
  proxyloss::LossWarmupWrapper wrapper{nullptr};
};

struct Case {
  std::string name;
  Kind kind;
  torch::Dtype dtype;
  std::function<Loss(const proxyloss::ProcessGroupPtr&)> make; // null group: reference
};

template <typename Holder>
Loss with_group(Holder holder, const proxyloss::ProcessGroupPtr& group) {
  holder->set_process_group(group);
  return {torch::nn::AnyModule(holder), nullptr};
}

std::vector<Case> cases() {
  using namespace proxyloss;
  const auto f64 = torch::kDouble;
  return {
      {"SmoothAPLoss", Kind::Ranking, f64,
       [](const ProcessGroupPtr& g) {
         return with_group(
             SmoothAPLoss(SmoothAPLossOptions(C).queue_size(12).temperature(0.1)), g);
       }},
      {"SmoothAPLoss-float32", Kind::Ranking, torch::kFloat,
       [](const ProcessGroupPtr& g) {
         return with_group(
             SmoothAPLoss(SmoothAPLossOptions(C).queue_size(7).temperature(0.2)), g);
       }},
      {"RecallAtQuantileLoss", Kind::Ranking, f64,
       [](const ProcessGroupPtr& g) {
         return with_group(RecallAtQuantileLoss(RecallAtQuantileLossOptions(C)
                                                    .quantile(0.3)
                                                    .queue_size(10)
                                                    .temperature(0.1)
                                                    .reduction(torch::kSum)
                                                    .update_queue_in_eval(true)),
                           g);
       }},
      {"PAUCAtBudgetLoss-trapezoid", Kind::Ranking, f64,
       [](const ProcessGroupPtr& g) {
         return with_group(PAUCAtBudgetLoss(PAUCAtBudgetLossOptions(C)
                                                .alpha(0.0)
                                                .beta(0.5)
                                                .n_knots(3)
                                                .queue_size(12)
                                                .temperature(0.2)),
                           g);
       }},
      {"PAUCAtBudgetLoss-pairwise", Kind::Ranking, f64,
       [](const ProcessGroupPtr& g) {
         return with_group(PAUCAtBudgetLoss(PAUCAtBudgetLossOptions(C)
                                                .alpha(0.1)
                                                .beta(0.7)
                                                .surrogate("pairwise")
                                                .pos_numerator("live")
                                                .budget_basis("population")
                                                .queue_size(12)
                                                .temperature(0.2)),
                           g);
       }},
      {"SigmoidFocalLoss", Kind::Sigmoid, f64,
       [](const ProcessGroupPtr& g) {
         return with_group(
             SigmoidFocalLoss(SigmoidFocalLossOptions().alpha(0.25).gamma(2.0)), g);
       }},
      {"SoftmaxFocalLoss-mean", Kind::Softmax, f64,
       [](const ProcessGroupPtr& g) {
         return with_group(
             SoftmaxFocalLoss(SoftmaxFocalLossOptions()
                                  .alpha(torch::tensor({0.5, 1.0, 2.0}, torch::kDouble))
                                  .gamma(1.5)
                                  .label_smoothing(0.1)),
             g);
       }},
      {"SoftmaxFocalLoss-mean_positive", Kind::Softmax, f64,
       [](const ProcessGroupPtr& g) {
         return with_group(SoftmaxFocalLoss(SoftmaxFocalLossOptions()
                                                .gamma(2.0)
                                                .reduction(kMeanPositive)
                                                .background_class(0)),
                           g);
       }},
      {"SoftmaxFocalLoss-none", Kind::Softmax, f64,
       [](const ProcessGroupPtr& g) {
         return with_group(
             SoftmaxFocalLoss(
                 SoftmaxFocalLossOptions().gamma(2.0).reduction(torch::kNone)),
             g);
       }},
      {"LossWarmupWrapper", Kind::Wrapper, f64,
       [](const ProcessGroupPtr& g) {
         // The warmup loss gathers with its own group, the main loss with
         // the wrapper's.
         SoftmaxFocalLoss warmup(SoftmaxFocalLossOptions().alpha(
             torch::tensor({0.5, 1.0, 2.0}, torch::kDouble)));
         warmup->set_process_group(g);
         LossWarmupWrapper wrapper(warmup,
                                   SmoothAPLoss(SmoothAPLossOptions(C).queue_size(12)),
                                   LossWarmupWrapperOptions()
                                       .warmup_steps(2)
                                       .blend_steps(2)
                                       .temp_start(0.5)
                                       .temp_end(0.05)
                                       .temp_decay_steps(4));
         wrapper->set_process_group(g);
         return Loss{torch::nn::AnyModule(wrapper), wrapper};
       }},
  };
}

// Each step: the batch sizes of 3 ranks (2 ranks use the first two), train
// or eval, with sample_weight, with iid_mask. Step 1: rank 1 has an empty
// batch; step 4: the last rank has no positive.
struct Step {
  std::vector<int64_t> sizes;
  bool train;
  bool weighted;
  bool with_iid;
};
const std::vector<Step> kSteps = {
    {{5, 3, 2}, true, false, false}, {{4, 0, 3}, true, true, false},
    {{2, 6, 1}, true, false, true},  {{3, 4, 2}, false, false, false},
    {{6, 2, 0}, true, true, true},   {{3, 3, 3}, true, false, false},
};
constexpr size_t kNoPositiveStep = 4;

struct Batch {
  torch::Tensor x, targets, weight, iid;
};

// Every rank's batch of this step (each rank draws all of them alike).
std::vector<Batch> step_data(size_t case_index, size_t step, int world, Kind kind,
                             torch::Dtype dtype) {
  const auto& s = kSteps[step];
  auto generator = at::detail::createCPUGenerator(1000 * case_index + step);
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
  std::vector<Batch> batches;
  for (int rank = 0; rank < world; ++rank) {
    const int64_t n = s.sizes[rank];
    const bool no_positive = step == kNoPositiveStep && rank == world - 1;
    Batch b;
    b.x = at::randn({n, D}, generator, f64).to(dtype);
    const auto ids = at::randint(0, C, {n}, generator, torch::kLong);
    if (kind == Kind::Sigmoid) {
      b.targets = no_positive ? torch::zeros({n, C}, f64)
                              : torch::one_hot(ids, C).to(torch::kDouble);
    } else {
      auto labels = no_positive
                        ? torch::full({n}, kind == Kind::Ranking ? 2 : 0, torch::kLong)
                        : ids;
      const auto ignored = at::rand({n}, generator, f64).lt(0.2);
      b.targets = labels.masked_fill(ignored, kIgnore);
    }
    auto weight = (at::rand({n}, generator, f64) * 1.5 + 0.5).to(dtype);
    if (kind == Kind::Sigmoid) {
      weight = weight.reshape({n, 1}); // dim 0 the rows', broadcast over the classes
    }
    const auto iid = at::rand({n}, generator, f64).lt(0.7);
    b.weight = s.weighted ? weight : torch::Tensor();
    b.iid = s.with_iid && kind == Kind::Ranking ? iid : torch::Tensor();
    batches.push_back(b);
  }
  return batches;
}

// The loss of one batch; iid_mask goes to PAUCAtBudgetLoss only (the only
// C++ loss that takes it).
torch::Tensor call(Loss& loss, const torch::Tensor& logits, const Batch& b) {
  if (b.iid.defined() && dynamic_cast<proxyloss::PAUCAtBudgetLossImpl*>(
                             loss.module.ptr().get()) != nullptr) {
    return loss.module.forward(logits, b.targets, b.weight, b.iid);
  }
  if (b.weight.defined()) {
    return loss.module.forward(logits, b.targets, b.weight);
  }
  return loss.module.forward(logits, b.targets);
}

torch::Tensor cat_field(const std::vector<Batch>& batches, torch::Tensor Batch::*field) {
  if (!(batches[0].*field).defined()) {
    return {};
  }
  std::vector<torch::Tensor> pieces;
  for (const auto& b : batches) {
    pieces.push_back(b.*field);
  }
  return torch::cat(pieces);
}

void all_reduce_mean(const Rank& me, torch::Tensor& gradient) {
  std::vector<torch::Tensor> tensors{gradient};
  me.group->allreduce(tensors)->wait();
  gradient.div_(me.world);
}

// One case over every step; appends what must agree across ranks.
void train_case(const Rank& me, size_t case_index, const Case& c,
                std::vector<torch::Tensor>& shared) {
  SCOPED_TRACE(c.name + ", rank " + std::to_string(me.rank) + " of " +
               std::to_string(me.world));
  torch::manual_seed(0); // the same model on every rank
  torch::nn::Linear model(D, C);
  model->to(c.dtype);
  torch::nn::Linear reference_model(D, C);
  reference_model->to(c.dtype);
  Loss loss = c.make(me.group);
  Loss reference = c.make(proxyloss::ProcessGroupPtr());
  for (size_t step = 0; step < kSteps.size(); ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const auto batches = step_data(case_index, step, me.world, c.kind, c.dtype);
    const auto& mine = batches[me.rank];
    const bool training = kSteps[step].train;
    for (torch::nn::Module* module : std::vector<torch::nn::Module*>{
             model.ptr().get(), reference_model.ptr().get(), loss.module.ptr().get(),
             reference.module.ptr().get()}) {
      module->train(training);
    }
    if (c.kind == Kind::Wrapper && training) {
      loss.wrapper->on_train_batch_start(static_cast<int64_t>(step));
      reference.wrapper->on_train_batch_start(static_cast<int64_t>(step));
    }
    {
      torch::NoGradGuard no_grad; // the reference at the model's parameters
      for (size_t i = 0; i < model->parameters().size(); ++i) {
        reference_model->parameters()[i].copy_(model->parameters()[i]);
      }
    }
    torch::AutoGradMode grad_mode(training);
    for (auto& p : model->parameters()) {
      p.mutable_grad() = torch::Tensor();
    }
    for (auto& p : reference_model->parameters()) {
      p.mutable_grad() = torch::Tensor();
    }
    const auto got = call(loss, model(mine.x), mine);
    std::vector<torch::Tensor> rows;
    for (const auto& b : batches) {
      rows.push_back(reference_model(b.x));
    }
    Batch joined{torch::Tensor(), cat_field(batches, &Batch::targets),
                 cat_field(batches, &Batch::weight), cat_field(batches, &Batch::iid)};
    const auto want = call(reference, torch::cat(rows), joined);
    EXPECT_TRUE(bitwise_equal(got.detach(), want.detach()))
        << "loss " << got << " != " << want;
    shared.push_back(got.detach());
    if (auto* pauc =
            dynamic_cast<proxyloss::PAUCAtBudgetLossImpl*>(loss.module.ptr().get())) {
      const auto& d = pauc->last_diagnostics();
      const auto& w =
          dynamic_cast<proxyloss::PAUCAtBudgetLossImpl&>(*reference.module.ptr())
              .last_diagnostics();
      EXPECT_TRUE(bitwise_equal(d.t_alpha, w.t_alpha));
      EXPECT_TRUE(bitwise_equal(d.tau_eff, w.tau_eff));
      EXPECT_TRUE(bitwise_equal(d.band_neg_count, w.band_neg_count));
      EXPECT_TRUE(bitwise_equal(d.pauc_var, w.pauc_var));
      const auto kept = mine.targets.masked_select(mine.targets.ne(kIgnore));
      EXPECT_TRUE(torch::equal(d.grad_pos_count, torch::bincount(kept, {}, C)))
          << "grad_pos_count: this rank's own positives";
    }
    if (training) {
      (got.dim() ? got.sum() : got).backward();
      (want.dim() ? want.sum() : want).backward();
      const auto params = model->parameters();
      const auto wanted = reference_model->parameters();
      for (size_t i = 0; i < params.size(); ++i) {
        auto gradient = params[i].grad().clone();
        all_reduce_mean(me, gradient); // what DistributedDataParallel does
        const auto& expected = wanted[i].grad();
        const double tolerance = c.dtype == torch::kDouble ? 1e-12 : 1e-5;
        EXPECT_LE((gradient - expected).abs().max().item<double>(),
                  tolerance * (1 + expected.abs().max().item<double>()))
            << "gradient " << i << ": " << gradient << " != " << expected;
        // The weight's gradient is not zero (the check is not vacuous). The
        // bias's may be: a ranking loss is invariant to shifting a class's
        // scores, so on a pool of live rows only (an empty queue) the bias
        // gradient is zero in exact arithmetic, rounding noise or exactly 0.
        if (i == 0) {
          EXPECT_GT(gradient.abs().sum().item<double>(), 0)
              << "the weight's gradient is zero";
        }
        torch::NoGradGuard no_grad;
        params[i].sub_(gradient * 0.5); // SGD, the same on every rank
      }
    }
    // The queues: the reference's, bit for bit.
    const auto buffers = loss.module.ptr()->named_buffers();
    const auto reference_buffers = reference.module.ptr()->named_buffers();
    EXPECT_EQ(buffers.size(), reference_buffers.size());
    for (const auto& buffer : buffers) {
      EXPECT_TRUE(bitwise_equal(buffer.value(), reference_buffers[buffer.key()]))
          << "buffer " << buffer.key();
      shared.push_back(buffer.value().clone());
    }
  }
  if (c.kind == Kind::Ranking || c.kind == Kind::Wrapper) { // the queue saw rows
    EXPECT_FALSE(loss.module.ptr()->named_buffers().is_empty());
  }
}

void train_every_case(const Rank& me) {
  std::vector<torch::Tensor> shared;
  const auto all = cases();
  for (size_t i = 0; i < all.size(); ++i) {
    train_case(me, i, all[i], shared);
  }
  // max_pool_size: the ranks' generators differ, their subsamples do not.
  torch::manual_seed(1234 + me.rank);
  proxyloss::SmoothAPLoss subsampling(
      proxyloss::SmoothAPLossOptions(C).queue_size(0).max_pool_size(6));
  subsampling->set_process_group(me.group);
  for (int call_index = 0; call_index < 3; ++call_index) {
    const auto logits = torch::randn({4 + me.rank, C});
    shared.push_back(subsampling(logits, torch::arange(4 + me.rank) % C));
  }
  save_tensors(me, shared);
}

// The parent starts `world` ranks and compares what they wrote; a rank trains.
void train_on_ranks(int world) {
  Rank me;
  if (is_rank(me)) {
    train_every_case(me);
    return;
  }
  expect_the_same_on_every_rank(run_ranks(world), world);
}

TEST(Distributed, EveryLossOnTwoRanksIsTheSingleProcessLossOfTheConcatenation) {
  train_on_ranks(2);
}

TEST(Distributed, EveryLossOnThreeRanksIsTheSingleProcessLossOfTheConcatenation) {
  train_on_ranks(3);
}

// --- faults: every rank throws the same error ---------------------------------------

torch::Tensor own_logits(int rank, int64_t n = 4, int64_t classes = C) {
  auto generator = at::detail::createCPUGenerator(rank);
  return at::randn({n, classes}, generator, torch::TensorOptions().dtype(torch::kFloat));
}

torch::Tensor own_labels(int64_t n = 4) {
  return torch::arange(n) % C;
}

struct Fault {
  std::string name;
  std::vector<std::string> expected; // parts of every rank's message
  std::function<void(const Rank&)> run;
};

template <typename Holder>
Holder grouped(Holder holder, const Rank& me) {
  holder->set_process_group(me.group);
  return holder;
}

std::vector<Fault> faults() {
  using namespace proxyloss;
  return {
      {"temperature",
       {"temperature differs: rank 0 has 0.1, rank 1 has 0.2"},
       [](const Rank& me) {
         grouped(SmoothAPLoss(SmoothAPLossOptions(C).queue_size(8).temperature(
                     me.rank == 0 ? 0.1 : 0.2)),
                 me)(own_logits(me.rank), own_labels());
       }},
      {"queue_size",
       {"queue_size differs: rank 0 has 8, rank 1 has 9"},
       [](const Rank& me) {
         grouped(SmoothAPLoss(SmoothAPLossOptions(C).queue_size(8 + me.rank)), me)(
             own_logits(me.rank), own_labels());
       }},
      {"num_classes",
       {"num_classes differs: rank 0 has 3, rank 1 has 4"},
       [](const Rank& me) {
         grouped(
             RecallAtQuantileLoss(RecallAtQuantileLossOptions(C + me.rank).quantile(0.3)),
             me)(own_logits(me.rank, 4, C + me.rank), own_labels());
       }},
      {"reduction",
       {"reduction differs: rank 0 has kMean, rank 1 has kSum"},
       [](const Rank& me) {
         auto options = PAUCAtBudgetLossOptions(C).beta(0.5);
         if (me.rank > 0) {
           options.reduction(torch::kSum);
         }
         grouped(PAUCAtBudgetLoss(options), me)
             ->forward(own_logits(me.rank), own_labels());
       }},
      {"focal alpha",
       {"alpha differs: rank 0 has (1, 1, 1), rank 1 has (1, 1, 2)"},
       [](const Rank& me) {
         grouped(SoftmaxFocalLoss(SoftmaxFocalLossOptions().alpha(
                     torch::tensor({1.0, 1.0, 1.0 + std::min(me.rank, 1)}))),
                 me)(own_logits(me.rank), own_labels());
       }},
      {"sample_weight on one rank",
       {"sample_weight differs: rank 0 passes float32 [N], rank 1 passes None"},
       [](const Rank& me) {
         grouped(SmoothAPLoss(SmoothAPLossOptions(C).queue_size(8)), me)(
             own_logits(me.rank), own_labels(),
             me.rank == 0 ? torch::ones({4}) : torch::Tensor());
       }},
      {"focal sample_weight on one rank",
       {"sample_weight differs: rank 0 passes None, rank 1 passes float32 [N, 1]"},
       [](const Rank& me) {
         grouped(SigmoidFocalLoss(), me)(
             own_logits(me.rank), torch::one_hot(own_labels(), C).to(torch::kFloat),
             me.rank == 1 ? torch::ones({4, 1}) : torch::Tensor());
       }},
      {"iid_mask on one rank",
       {"iid_mask differs: rank 0 passes bool [N], rank 1 passes None"},
       [](const Rank& me) {
         grouped(PAUCAtBudgetLoss(PAUCAtBudgetLossOptions(C).beta(0.5)), me)
             ->forward(own_logits(me.rank), own_labels(), {},
                       me.rank == 0 ? torch::ones({4}, torch::kBool) : torch::Tensor());
       }},
      {"malformed rows",
       {"rank 1: iid_mask has 2 rows but logits has 4 rows"},
       [](const Rank& me) {
         grouped(PAUCAtBudgetLoss(PAUCAtBudgetLossOptions(C).beta(0.5)), me)
             ->forward(own_logits(me.rank), own_labels(), {},
                       torch::ones({me.rank == 0 ? 4 : 2}, torch::kBool));
       }},
      {"queue pointer",
       {"write pointers differ across ranks (rank 0: ", "rank 1: 0", "reset_queue()"},
       [](const Rank& me) {
         auto loss = grouped(SmoothAPLoss(SmoothAPLossOptions(C).queue_size(16)), me);
         loss(own_logits(me.rank), own_labels());
         if (me.rank == 1) {
           loss->reset_queue();
         }
         loss(own_logits(me.rank), own_labels());
       }},
      {"queue contents",
       {"the queues' contents differ across ranks"},
       [](const Rank& me) {
         SmoothAPLoss loss(SmoothAPLossOptions(C).queue_size(16));
         loss(own_logits(me.rank), own_labels()); // each rank queues its own rows
         loss->set_process_group(me.group);
         loss(own_logits(me.rank), own_labels());
       }},
      {"train and eval",
       {"queue updated (training or update_queue_in_eval) differs: rank 0 has true, rank "
        "1 "
        "has false"},
       [](const Rank& me) {
         auto loss = grouped(SmoothAPLoss(SmoothAPLossOptions(C).queue_size(8)), me);
         loss->train(me.rank == 0);
         loss(own_logits(me.rank), own_labels());
       }},
  };
}

TEST(Distributed, RanksThatDisagreeThrowTheSameErrorOnEveryRank) {
  Rank me;
  if (is_rank(me)) {
    std::ofstream out(file_in(me.folder, "messages" + std::to_string(me.rank)));
    for (const auto& fault : faults()) {
      try {
        fault.run(me);
        out << "(no error)";
      } catch (const c10::Error& error) {
        out << error.what_without_backtrace();
      }
      out << '\0';
    }
    // The group is still usable, and the ranks in step: targets [N, 1] on
    // one rank and [N] on another, iid_mask bool and uint8, gather alike.
    std::vector<torch::Tensor> logits, labels, iids;
    for (int r = 0; r < me.world; ++r) {
      logits.push_back(own_logits(r, 4 + r));
      labels.push_back(own_labels(4 + r));
      iids.push_back(torch::arange(4 + r).remainder(3).ne(r));
    }
    auto pauc = grouped(
        proxyloss::PAUCAtBudgetLoss(proxyloss::PAUCAtBudgetLossOptions(C).beta(0.5)), me);
    const auto got = pauc->forward(
        logits[me.rank], me.rank == 0 ? labels[0].reshape({-1, 1}) : labels[me.rank], {},
        me.rank == 1 ? iids[1].to(torch::kByte) : iids[me.rank]);
    proxyloss::PAUCAtBudgetLoss reference(
        proxyloss::PAUCAtBudgetLossOptions(C).beta(0.5));
    const auto want =
        reference->forward(torch::cat(logits), torch::cat(labels), {}, torch::cat(iids));
    EXPECT_TRUE(bitwise_equal(got, want)) << got << " != " << want;
    EXPECT_TRUE(bitwise_equal(pauc->queue_iid, reference->queue_iid));
    EXPECT_TRUE(bitwise_equal(pauc->queue_logits, reference->queue_logits));
    save_tensors(me, {got, pauc->queue_logits, pauc->queue_targets, pauc->queue_iid});
    return;
  }
  const int world = 2;
  const auto folder = run_ranks(world);
  expect_the_same_on_every_rank(folder, world);
  std::vector<std::vector<std::string>> messages(world);
  for (int rank = 0; rank < world; ++rank) {
    std::ifstream in(file_in(folder, "messages" + std::to_string(rank)));
    std::string message;
    while (std::getline(in, message, '\0')) {
      messages[rank].push_back(message);
    }
  }
  const auto all = faults();
  for (int rank = 0; rank < world; ++rank) {
    ASSERT_EQ(messages[rank].size(), all.size()) << "rank " << rank;
    for (size_t i = 0; i < all.size(); ++i) {
      for (const auto& part : all[i].expected) {
        EXPECT_NE(messages[rank][i].find(part), std::string::npos)
            << all[i].name << ", rank " << rank << ": " << messages[rank][i];
      }
      EXPECT_EQ(messages[rank][i], messages[0][i]) << all[i].name;
      EXPECT_NE(messages[rank][i].find("process_group"), std::string::npos)
          << messages[rank][i];
    }
  }
}

// --- a rank that never calls the loss: the group's timeout ---------------------------

TEST(Distributed, ARankThatDoesNotCallTheLossSurfacesTheGroupsTimeout) {
  Rank me;
  if (is_rank(me, std::chrono::seconds(3))) {
    me.group->barrier()->wait();
    const auto done = file_in(me.folder, "done");
    if (me.rank == 0) {
      const auto start = std::chrono::steady_clock::now();
      std::string outcome = "no error";
      try {
        grouped(proxyloss::SmoothAPLoss(C), me)(own_logits(0), own_labels());
      } catch (const std::exception& error) {
        outcome = error.what();
      }
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::string lower = outcome;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      EXPECT_NE(lower.find("timed out"), std::string::npos) << outcome;
      EXPECT_GE(seconds, 2.5);
      EXPECT_LT(seconds, 30);
      std::ofstream(done) << "done";
    } else { // never calls the loss; stays alive until rank 0 has its error
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (!std::ifstream(done) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    std::quick_exit(testing::Test::HasFailure() ? 1 : 0); // the group would wait at exit
  }
  run_ranks(2);
}

// --- without other ranks ------------------------------------------------------------

TEST(Distributed, AOneRankGroupOrNoGroupComputesThisBatch) {
  EXPECT_TRUE(proxyloss::distributed_supported());
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp ? tmp : "/tmp") + "/proxyloss-one-rank-XXXXXX";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  ASSERT_NE(mkdtemp(name.data()), nullptr);
  auto store = c10::make_intrusive<c10d::FileStore>(file_in(name.data(), "store"), 1);
  auto group = proxyloss::compat::make_gloo_process_group(
      store, 0, 1, std::chrono::seconds(10), "127.0.0.1");
  proxyloss::PAUCAtBudgetLoss alone(proxyloss::PAUCAtBudgetLossOptions(C).beta(0.5));
  proxyloss::PAUCAtBudgetLoss one_rank(proxyloss::PAUCAtBudgetLossOptions(C).beta(0.5));
  one_rank->set_process_group(group);
  EXPECT_EQ(one_rank->process_group().get(), group.get());
  const auto logits = own_logits(0, 6);
  EXPECT_TRUE(
      bitwise_equal(one_rank(logits, own_labels(6)), alone(logits, own_labels(6))));
  // The wrapper hands its group to the main loss.
  proxyloss::SmoothAPLoss main(C);
  proxyloss::LossWarmupWrapper wrapper(torch::nn::CrossEntropyLoss(), main);
  wrapper->set_process_group(group);
  EXPECT_EQ(main->process_group().get(), group.get());
  // A main loss that cannot gather refuses a group.
  proxyloss::LossWarmupWrapper plain{torch::nn::CrossEntropyLoss(),
                                     torch::nn::CrossEntropyLoss()};
  EXPECT_THROW(plain->set_process_group(group), c10::Error);
  // A clone shares the group.
  auto copy =
      std::dynamic_pointer_cast<proxyloss::PAUCAtBudgetLossImpl>(one_rank->clone());
  EXPECT_EQ(copy->process_group().get(), group.get());
}

} // namespace
