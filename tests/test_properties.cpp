// Property-based tests (rapidcheck) of the fused ops: random shapes, dtypes,
// temperatures, positive rates, ties, padding and extreme values, every
// implementation (fused, fused portable, device-generic), against the dense
// oracles of tests/support and against invariances of the formulas.
//
// CTest runs each property on PROXYLOSS_PROPERTY_CASES random cases (CMake
// cache variable, default 60). By hand:
//   RC_PARAMS="max_success=1000" build/tests/test_properties
// A failure prints the shrunk counterexample (every generated value) and an
// RC_PARAMS="reproduce=..." string that replays it.
#include "support/fair_loss_oracle.h"
#include "support/kernel_paths.h"
#include "support/ranking_oracle.h"
#include "support/test_support.h"

#include <proxyloss/fair_loss_op.h>
#include <proxyloss/ops.h>
#include "ops/cpu/kernel_selection.h"

#include <ATen/CPUGeneratorImpl.h>
#include <rapidcheck/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <ostream>
#include <utility>
#include <vector>

using test_support::KernelPath;
using test_support::max_abs;

namespace test_support {
// How rapidcheck prints a KernelPath in a counterexample (found by ADL).
inline void showValue(KernelPath path, std::ostream& out) {
  out << (path == KernelPath::Fused           ? "Fused"
          : path == KernelPath::FusedPortable ? "FusedPortable"
                                              : "Generic");
}
} // namespace test_support

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// --- generators ---------------------------------------------------------------

// The bulk data of a case (scores, logits, labels) comes from torch's
// generator under a seed that rapidcheck draws: shapes and parameters shrink
// one by one, and RC_PARAMS="reproduce=..." replays the data exactly.
class Data {
 public:
  explicit Data(uint64_t seed) : generator_(at::detail::createCPUGenerator(seed)) {}
  torch::Tensor normal(at::IntArrayRef size) {
    return torch::randn(size, generator_, torch::kDouble);
  }
  torch::Tensor uniform(at::IntArrayRef size) {
    return torch::rand(size, generator_, torch::kDouble);
  }
  torch::Tensor integers(int64_t low, int64_t high, at::IntArrayRef size) {
    return torch::randint(low, high, size, generator_, torch::kLong);
  }
  torch::Tensor permutation(int64_t n) {
    return torch::randperm(n, generator_, torch::kLong);
  }

 private:
  at::Generator generator_;
};

Data gen_data() {
  return Data(*rc::gen::arbitrary<uint64_t>());
}

KernelPath gen_kernel_path() {
  return *rc::gen::element(KernelPath::Fused, KernelPath::FusedPortable,
                           KernelPath::Generic);
}

torch::Dtype gen_dtype() {
  return *rc::gen::element(torch::kFloat, torch::kDouble);
}

// 10^e for e in [low, high] in quarter decades.
double gen_decades(double low, double high) {
  return std::pow(10.0, *rc::gen::inRange(int(4 * low), int(4 * high) + 1) / 4.0);
}

// A size, small half of the time (edge cases: one row, one class...).
int64_t gen_size(int64_t max) {
  return *rc::gen::oneOf(rc::gen::inRange<int64_t>(1, 9),
                         rc::gen::inRange<int64_t>(1, max + 1));
}

// Normal values of a random scale over eight decades, optionally rounded to
// a grid of half that scale (ties), with `large_offsets` optionally moved by
// a large offset (then the op sees differences of close numbers), in double.
torch::Tensor gen_values(Data& data, at::IntArrayRef size, bool large_offsets) {
  const double scale = gen_decades(-4, 4);
  auto values = data.normal(size) * scale;
  if (*rc::gen::arbitrary<bool>()) {
    values = torch::round(values * (2 / scale)) * (scale / 2);
  }
  return large_offsets ? values + *rc::gen::element(0.0, 0.0, 1e3, -1e4) : values;
}

// Sets one to three random entries of `values` [rows, cols] to NaN, +inf or -inf.
void gen_non_finite(torch::Tensor& values) {
  const int count = *rc::gen::inRange(1, 4);
  for (int i = 0; i < count; ++i) {
    const int64_t row = *rc::gen::inRange<int64_t>(0, values.size(0));
    const int64_t col = *rc::gen::inRange<int64_t>(0, values.size(1));
    values[row][col] = *rc::gen::element(kNaN, kInf, -kInf);
  }
}

// A common shift of each column (dim 1) or of each row (dim 0) of `values`,
// exactly representable in float32 and float64: the values are rounded to a
// grid of 2^-12 of their largest magnitude (at most 2^13 steps each way) and
// shifted by up to 2^23 steps, so every value and every sum has at most 24
// significant bits. Returns the rounded values and the shifted ones, in double.
std::pair<torch::Tensor, torch::Tensor> gen_exact_shift(const torch::Tensor& values,
                                                        int64_t dim) {
  const double largest = max_abs(values);
  const double grid = largest > 0 ? std::ldexp(1.0, std::ilogb(largest) - 12) : 1.0;
  const auto rounded = torch::round(values / grid) * grid;
  auto steps = std::vector<double>();
  for (int64_t i = 0; i < values.size(dim); ++i) {
    steps.push_back(double(*rc::gen::inRange(-(1 << 23), (1 << 23) + 1)));
  }
  auto shift = torch::tensor(steps, torch::kDouble) * grid;
  shift = dim == 1 ? shift.unsqueeze(0) : shift.unsqueeze(1);
  return {rounded, rounded + shift};
}

// --- comparisons ----------------------------------------------------------------

// NaN, +inf and -inf at the same places.
bool same_non_finite(const torch::Tensor& a_in, const torch::Tensor& b_in) {
  const auto a = a_in.to(torch::kDouble);
  const auto b = b_in.to(torch::kDouble);
  return a.sizes() == b.sizes() && torch::equal(torch::isnan(a), torch::isnan(b)) &&
         torch::equal(torch::isposinf(a), torch::isposinf(b)) &&
         torch::equal(torch::isneginf(a), torch::isneginf(b));
}

// The largest |a - b| where both are finite (0 if nowhere).
double max_diff(const torch::Tensor& a_in, const torch::Tensor& b_in) {
  const auto a = a_in.detach().to(torch::kDouble);
  const auto b = b_in.detach().to(torch::kDouble);
  const auto keep = torch::isfinite(a).logical_and(torch::isfinite(b));
  if (!keep.any().item<bool>()) {
    return 0.0;
  }
  return (a.masked_select(keep) - b.masked_select(keep)).abs().max().item<double>();
}

// An op's output and the gradient of a scalar of it.
struct Evaluation {
  torch::Tensor value;
  torch::Tensor grad;
};

// `got` within value_tol and grad_tol of `want`, non-finite at the same places.
void check_close(const Evaluation& got, const Evaluation& want, double value_tol,
                 double grad_tol) {
  RC_ASSERT(same_non_finite(got.value, want.value));
  RC_ASSERT(max_diff(got.value, want.value) <= value_tol);
  RC_ASSERT(same_non_finite(got.grad, want.grad));
  RC_ASSERT(max_diff(got.grad, want.grad) <= grad_tol);
}

// Runs the ops through one implementation while alive.
class UseKernelPath {
 public:
  explicit UseKernelPath(KernelPath path) {
    if (path == KernelPath::Generic) {
      generic_.emplace();
    }
    if (path == KernelPath::FusedPortable) {
      portable_.emplace();
    }
  }

 private:
  std::optional<proxyloss::detail::ForceGenericKernels> generic_;
  std::optional<proxyloss::detail::ForceDefaultCpuCapability> portable_;
};

// --- Smooth-AP ---------------------------------------------------------------------

// The tolerances of tests/test_smooth_ap_op.cpp (derived there): on AP,
// and relative to the largest gradient entry (at least 1) on gradients.
constexpr double kSmoothAPFloatTol = 1e-5;
constexpr double kSmoothAPDoubleTol = 1e-10;

struct Pool {
  torch::Tensor scores; // [M, C], double until cast to the case's dtype
  torch::Tensor labels; // [M] int64, the op's convention
  double tau;
  torch::Tensor weights; // [C] double: a scalar of ap with a different gradient per class
};

// Positives at a rate from none to all, a share of them in class 0 (from an
// even spread to all: then class 0 may be all-positive and the others empty),
// the other rows padding: labels outside [0, C), negatives of every class.
Pool gen_pool(Data& data) {
  const int64_t M = gen_size(300);
  const int64_t C = *rc::gen::inRange<int64_t>(1, 9);
  // From 0.0056 to 10. Below, e.g. tau = 1e-3 with scores 2e-4 apart near
  // an offset of 1e4, the device-generic implementation's float32 gradient
  // is off by up to 1.5e-5 of its largest entry: each row's gradient is the
  // difference of larger float terms, each rounded to float.
  // The fused kernels meet the tolerance there.
  const double tau = gen_decades(-2.25, 1);
  const double pos_rate = *rc::gen::element(0.0, 0.02, 0.2, 0.5, 0.8, 1.0);
  const double majority = *rc::gen::element(0.0, 0.5, 1.0);
  const auto padding = torch::tensor({int64_t(-1), int64_t(-100), C, C + 5,
                                      std::numeric_limits<int64_t>::min(),
                                      std::numeric_limits<int64_t>::max()});
  const auto cls =
      torch::where(data.uniform({M}).lt(majority), torch::zeros({M}, torch::kLong),
                   data.integers(0, C, {M}));
  const auto pad = padding.index_select(0, data.integers(0, padding.size(0), {M}));
  const auto labels = torch::where(data.uniform({M}).lt(pos_rate), cls, pad);
  return {gen_values(data, {M, C}, true), labels, tau, data.normal({C})};
}

torch::Tensor weighted_sum(const torch::Tensor& ap, const torch::Tensor& weights) {
  return torch::where(torch::isnan(ap), torch::zeros_like(ap), ap * weights).sum();
}

Evaluation smooth_ap_op(const torch::Tensor& scores_in, const Pool& pool) {
  auto scores = scores_in.clone().requires_grad_(true);
  const auto ap = proxyloss::ops::smooth_ap(scores, pool.labels, pool.tau);
  weighted_sum(ap, pool.weights.to(ap.scalar_type())).backward();
  return {ap.detach(), scores.grad()};
}

// The dense oracle in double on the same (possibly float-rounded) scores.
Evaluation smooth_ap_oracle(const torch::Tensor& scores_in, const Pool& pool) {
  auto scores = scores_in.to(torch::kDouble).clone().requires_grad_(true);
  const auto ap = oracle::op_ap(scores, pool.labels, pool.tau);
  const auto loss = weighted_sum(ap, pool.weights);
  if (!loss.requires_grad()) { // no class has a positive: nothing to differentiate
    return {ap.detach(), torch::zeros_like(scores)};
  }
  loss.backward();
  return {ap.detach(), scores.grad()};
}

double smooth_ap_tol(torch::Dtype dtype) {
  return dtype == torch::kFloat ? kSmoothAPFloatTol : kSmoothAPDoubleTol;
}

void check_smooth_ap_close(const Evaluation& got, const Evaluation& want,
                           torch::Dtype dtype) {
  const double tol = smooth_ap_tol(dtype);
  check_close(got, want, tol, tol * std::max(1.0, max_abs(want.grad)));
}

// Classes (columns) with at least one positive.
torch::Tensor has_positive(const Pool& pool) {
  const int64_t C = pool.scores.size(1);
  return torch::arange(C).unsqueeze(0).eq(pool.labels.unsqueeze(1)).any(0);
}

} // namespace

RC_GTEST_PROP(SmoothAPProperties, ValueAndGradientMatchTheDenseOracle, ()) {
  const UseKernelPath path(gen_kernel_path());
  const auto dtype = gen_dtype();
  auto data = gen_data();
  const auto pool = gen_pool(data);
  const auto scores = pool.scores.to(dtype);
  check_smooth_ap_close(smooth_ap_op(scores, pool), smooth_ap_oracle(scores, pool),
                        dtype);
}

// The fused kernels' two algorithms, each forced on every pool: pair windows
// with two-term tails, and block expansions (the crowded-window algorithm,
// src/ops/cpu/kernels/sigmoid_sums.h: near blocks by Taylor expansions or
// pair by pair, far blocks by the alternating exponential series).
RC_GTEST_PROP(SmoothAPProperties, BothFusedAlgorithmsMatchTheDenseOracle, ()) {
  const auto algorithm =
      *rc::gen::element(proxyloss::detail::SmoothAPAlgorithm::kWindows,
                        proxyloss::detail::SmoothAPAlgorithm::kExpansions);
  const proxyloss::detail::ForceSmoothAPAlgorithm forced(algorithm);
  const UseKernelPath path(
      *rc::gen::element(KernelPath::Fused, KernelPath::FusedPortable));
  const auto dtype = gen_dtype();
  auto data = gen_data();
  const auto pool = gen_pool(data);
  const auto scores = pool.scores.to(dtype);
  check_smooth_ap_close(smooth_ap_op(scores, pool), smooth_ap_oracle(scores, pool),
                        dtype);
}

// R+_i <= R_i, so AP is in (0, 1] up to rounding (the device-generic
// implementation sums R+_i and R_i apart and gives 1 + 1 ulp when every row
// is a positive); NaN exactly for the classes without a positive.
RC_GTEST_PROP(SmoothAPProperties, APIsInTheUnitIntervalAndNaNOnlyWithoutPositives, ()) {
  const UseKernelPath path(gen_kernel_path());
  const auto dtype = gen_dtype();
  auto data = gen_data();
  const auto pool = gen_pool(data);
  const auto ap = proxyloss::ops::smooth_ap(pool.scores.to(dtype), pool.labels, pool.tau)
                      .to(torch::kDouble);
  RC_ASSERT(torch::equal(torch::isnan(ap), has_positive(pool).logical_not()));
  const auto finite = ap.masked_select(torch::isfinite(ap));
  RC_LOG() << "largest AP - 1: "
           << (finite.numel() ? finite.max().item<double>() - 1 : 0.0) << "\n";
  RC_ASSERT(finite.ge(0).all().item<bool>());
  RC_ASSERT(finite.le(1 + smooth_ap_tol(dtype)).all().item<bool>());
}

// A non-finite score makes its class NaN (never a crash); the other classes
// keep their oracle value and gradient.
RC_GTEST_PROP(SmoothAPProperties, NonFiniteScoresMakeOnlyTheirClassNaN, ()) {
  const UseKernelPath path(gen_kernel_path());
  const auto dtype = gen_dtype();
  auto data = gen_data();
  auto pool = gen_pool(data);
  gen_non_finite(pool.scores);
  const auto scores = pool.scores.to(dtype);
  const auto bad_columns = torch::isfinite(scores).logical_not().any(0);
  const auto got = smooth_ap_op(scores, pool);
  const auto expected_nan = bad_columns.logical_or(has_positive(pool).logical_not());
  RC_ASSERT(torch::equal(torch::isnan(got.value), expected_nan));

  // Classes are independent: the oracle of the clean ones on finite stand-ins.
  const auto want = smooth_ap_oracle(torch::nan_to_num(scores, 0.0, 0.0, 0.0), pool);
  const auto clean = bad_columns.logical_not().nonzero().squeeze(1);
  check_smooth_ap_close(
      {got.value.index_select(0, clean), got.grad.index_select(1, clean)},
      {want.value.index_select(0, clean), want.grad.index_select(1, clean)}, dtype);
}

// Only differences of scores within a column matter.
RC_GTEST_PROP(SmoothAPProperties, InvariantToAnExactShiftOfEachColumn, ()) {
  const UseKernelPath path(gen_kernel_path());
  const auto dtype = gen_dtype();
  auto data = gen_data();
  const auto pool = gen_pool(data);
  const auto [rounded, shifted] = gen_exact_shift(pool.scores, 1);
  RC_ASSERT(torch::equal(shifted.to(dtype).to(torch::kDouble), shifted)); // exact
  check_smooth_ap_close(smooth_ap_op(shifted.to(dtype), pool),
                        smooth_ap_op(rounded.to(dtype), pool), dtype);
}

// The rows of a pool are a set: permuting them permutes the gradient only.
RC_GTEST_PROP(SmoothAPProperties, InvariantToAPermutationOfTheRows, ()) {
  const UseKernelPath path(gen_kernel_path());
  const auto dtype = gen_dtype();
  auto data = gen_data();
  const auto pool = gen_pool(data);
  const auto order = data.permutation(pool.scores.size(0));
  Pool permuted = pool;
  permuted.labels = pool.labels.index_select(0, order);
  const auto scores = pool.scores.to(dtype);
  const auto base = smooth_ap_op(scores, pool);
  const auto got = smooth_ap_op(scores.index_select(0, order), permuted);
  check_smooth_ap_close(got, {base.value, base.grad.index_select(0, order)}, dtype);
}

// --- FairLoss -------------------------------------------------------------------

namespace {

// The tolerances of tests/test_fair_loss_op.cpp (derived there), relative to
// the largest loss row or gradient entry (at least 1).
constexpr double kFairLossFloatTol = 1e-5;
constexpr double kFairLossDoubleTol = 1e-10;

struct Batch {
  torch::Tensor logits;  // [N, C], double until cast to the case's dtype
  torch::Tensor targets; // [N] int64
  oracle::FairLossParams params;
  torch::Tensor upstream; // [N] double: the gradient of the loss rows
};

// Class counts on both sides of the fused kernel's short/long row threshold,
// beta and k over several decades (k = 0: no penalty), optional class
// weights, label smoothing, ignore_index outside or inside [0, C) on a share
// of the rows from none to all. Large offsets only with `large_offsets`: the
// oracle computes torch::logsumexp(beta z), which rounds beta z before it
// subtracts the maximum, an error of 1e-16 beta |z| that exceeds the float64
// tolerance at |z| = 1e4 (the op subtracts the maximum first); the
// properties that compare the op with itself take them.
Batch gen_batch(Data& data, bool large_offsets) {
  const int64_t N = gen_size(200);
  const int64_t C = *rc::gen::oneOf(
      rc::gen::inRange<int64_t>(1, 17),
      rc::gen::elementOf(std::vector<int64_t>{24, 31, 64, 100, 333, 1000}));
  oracle::FairLossParams params;
  params.beta = gen_decades(-1, 4);
  params.k = *rc::gen::arbitrary<bool>() ? 0.0 : gen_decades(-1, 4);
  if (*rc::gen::arbitrary<bool>()) {
    params.weight = data.uniform({C}) * 2 + 0.1;
  }
  params.label_smoothing = *rc::gen::oneOf(
      rc::gen::element(0.0, 1.0), rc::gen::map(rc::gen::inRange(0, 101), [](int percent) {
        return percent / 100.0;
      }));
  params.ignore_index =
      *rc::gen::oneOf(rc::gen::element(int64_t(-100), int64_t(-1), C + 2),
                      rc::gen::inRange<int64_t>(0, C));
  const double ignored = *rc::gen::element(0.0, 0.1, 0.5, 1.0);
  const auto targets = torch::where(data.uniform({N}).lt(ignored),
                                    torch::full({N}, params.ignore_index, torch::kLong),
                                    data.integers(0, C, {N}));
  return {gen_values(data, {N, C}, large_offsets), targets, params,
          data.uniform({N}) + 0.5};
}

Evaluation fair_loss_op(const torch::Tensor& logits_in, const Batch& b) {
  auto logits = logits_in.clone().requires_grad_(true);
  const auto& p = b.params;
  const auto weight =
      p.weight.defined()
          ? proxyloss::optional<torch::Tensor>(p.weight.to(logits.scalar_type()))
          : c10::nullopt;
  const auto rows = proxyloss::ops::fair_loss(logits, b.targets, weight, p.beta, p.k,
                                              p.ignore_index, p.label_smoothing);
  (rows * b.upstream.to(rows.scalar_type())).sum().backward();
  return {rows.detach(), logits.grad()};
}

// The oracle in double on the same (possibly float-rounded) logits and weights.
Evaluation fair_loss_oracle(const torch::Tensor& logits_in, const Batch& b) {
  auto logits = logits_in.to(torch::kDouble).clone().requires_grad_(true);
  auto params = b.params;
  if (params.weight.defined()) {
    params.weight = params.weight.to(logits_in.scalar_type()).to(torch::kDouble);
  }
  const auto rows = oracle::fair_loss_rows(logits, b.targets, params);
  (rows * b.upstream).sum().backward();
  return {rows.detach(), logits.grad()};
}

void check_fair_loss_close(const Evaluation& got, const Evaluation& want,
                           torch::Dtype dtype) {
  const double tol = dtype == torch::kFloat ? kFairLossFloatTol : kFairLossDoubleTol;
  check_close(got, want, tol * std::max(1.0, max_abs(want.value)),
              tol * std::max(1.0, max_abs(want.grad)));
}

} // namespace

RC_GTEST_PROP(FairLossProperties, ValueAndGradientMatchTheOracle, ()) {
  const UseKernelPath path(gen_kernel_path());
  const auto dtype = gen_dtype();
  auto data = gen_data();
  const auto batch = gen_batch(data, false);
  const auto logits = batch.logits.to(dtype);
  check_fair_loss_close(fair_loss_op(logits, batch), fair_loss_oracle(logits, batch),
                        dtype);
}

// Cross-entropy and penalty are both >= 0 (smoothmax >= max >= the target
// logit); ignored rows are exactly 0 with no gradient.
RC_GTEST_PROP(FairLossProperties, RowsAreNonNegativeAndIgnoredRowsZero, ()) {
  const UseKernelPath path(gen_kernel_path());
  const auto dtype = gen_dtype();
  auto data = gen_data();
  const auto batch = gen_batch(data, true);
  const auto got = fair_loss_op(batch.logits.to(dtype), batch);
  RC_ASSERT(torch::isfinite(got.value).all().item<bool>());
  RC_ASSERT(got.value.ge(0).all().item<bool>());
  const auto ignored = batch.targets.eq(batch.params.ignore_index);
  RC_ASSERT(got.value.masked_select(ignored).eq(0).all().item<bool>());
  RC_ASSERT(
      got.grad.index_select(0, ignored.nonzero().squeeze(1)).eq(0).all().item<bool>());
}

// A NaN or +inf logit makes its row NaN unless the row is ignored (then 0),
// never a crash. A -inf logit is a class of probability 0: its row keeps the
// oracle's (torch's) value: +inf where that class enters the cross-entropy
// (as the target, or through label smoothing), NaN if all are -inf, finite
// otherwise. The other rows keep their oracle value and gradient.
RC_GTEST_PROP(FairLossProperties, NonFiniteLogitsAffectOnlyTheirRow, ()) {
  const UseKernelPath path(gen_kernel_path());
  const auto dtype = gen_dtype();
  auto data = gen_data();
  auto batch = gen_batch(data, false);
  gen_non_finite(batch.logits);
  const auto logits = batch.logits.to(dtype);
  const auto got = fair_loss_op(logits, batch);
  const auto ignored = batch.targets.eq(batch.params.ignore_index);
  const auto nan_rows = torch::isnan(logits).logical_or(torch::isposinf(logits)).any(1);
  RC_ASSERT(
      torch::isnan(got.value.masked_select(nan_rows.logical_and(ignored.logical_not())))
          .all()
          .item<bool>());
  RC_ASSERT(got.value.masked_select(ignored).eq(0).all().item<bool>());

  // Rows are independent: the oracle of the others with finite stand-ins
  // for NaN and +inf.
  const auto want = fair_loss_oracle(torch::nan_to_num(logits, 0.0, 0.0, -kInf), batch);
  const auto rows = nan_rows.logical_not().nonzero().squeeze(1);
  const auto finite_rows = torch::isfinite(logits).all(1).nonzero().squeeze(1);
  check_fair_loss_close(
      {got.value.index_select(0, rows), got.grad.index_select(0, finite_rows)},
      {want.value.index_select(0, rows), want.grad.index_select(0, finite_rows)}, dtype);
}

// Cross-entropy, smoothmax and the target logit all move with a common shift
// of a row's logits: the loss does not.
RC_GTEST_PROP(FairLossProperties, InvariantToAnExactShiftOfEachRow, ()) {
  const UseKernelPath path(gen_kernel_path());
  const auto dtype = gen_dtype();
  auto data = gen_data();
  const auto batch = gen_batch(data, true);
  const auto [rounded, shifted] = gen_exact_shift(batch.logits, 0);
  RC_ASSERT(torch::equal(shifted.to(dtype).to(torch::kDouble), shifted)); // exact
  check_fair_loss_close(fair_loss_op(shifted.to(dtype), batch),
                        fair_loss_op(rounded.to(dtype), batch), dtype);
}

// Rows are independent: permuting them permutes the loss and the gradient.
RC_GTEST_PROP(FairLossProperties, InvariantToAPermutationOfTheRows, ()) {
  const UseKernelPath path(gen_kernel_path());
  const auto dtype = gen_dtype();
  auto data = gen_data();
  const auto batch = gen_batch(data, true);
  const auto order = data.permutation(batch.logits.size(0));
  Batch permuted = batch;
  permuted.targets = batch.targets.index_select(0, order);
  permuted.upstream = batch.upstream.index_select(0, order);
  const auto logits = batch.logits.to(dtype);
  const auto base = fair_loss_op(logits, batch);
  const auto got = fair_loss_op(logits.index_select(0, order), permuted);
  check_fair_loss_close(
      got, {base.value.index_select(0, order), base.grad.index_select(0, order)}, dtype);
}

// --- the selection quantile ---------------------------------------------------------

namespace {

// Equal bit for bit, except that any NaN equals any NaN and -0 equals +0:
// which of two equal keys a sort or a selection puts at a position is
// unspecified, and torch::quantile's sort is not a selection.
bool same_bits(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) {
    return std::isnan(a) && std::isnan(b);
  }
  return a == 0 ? b == 0 : std::memcmp(&a, &b, sizeof a) == 0;
}

} // namespace

RC_GTEST_PROP(QuantileProperties, SelectionEqualsTorchQuantileBitForBit, ()) {
  const auto dtype = gen_dtype();
  auto data = gen_data();
  const int64_t n = gen_size(500);
  auto values = gen_values(data, {n, 1}, true);
  if (*rc::gen::arbitrary<bool>()) { // few distinct values: long runs of duplicates
    values = data.integers(0, 3, {n, 1}).to(torch::kDouble);
  }
  if (*rc::gen::arbitrary<bool>()) {
    gen_non_finite(values);
  }
  values = values.squeeze(1).to(dtype);
  // Levels: the ends, positions exactly on an element, and anywhere in [0, 1].
  const double q = *rc::gen::oneOf(
      rc::gen::element(0.0, 1.0, 0.5),
      rc::gen::map(rc::gen::inRange<int64_t>(0, n),
                   [n](int64_t k) { return n > 1 ? double(k) / double(n - 1) : 0.0; }),
      rc::gen::map(rc::gen::inRange<int64_t>(0, (int64_t(1) << 53) + 1),
                   [](int64_t k) { return std::ldexp(double(k), -53); }));
  for (const char* mode : {"linear", "lower", "higher", "nearest", "midpoint"}) {
    const auto want = torch::quantile(values, q, c10::nullopt, false, mode);
    const auto got = proxyloss::ops::selection_quantile(values, q, mode);
    RC_LOG() << "mode " << mode << ": got " << got.item<double>() << ", torch "
             << want.item<double>() << "\n";
    RC_ASSERT(got.scalar_type() == dtype);
    RC_ASSERT(same_bits(got.item<double>(), want.item<double>()));
  }
}
