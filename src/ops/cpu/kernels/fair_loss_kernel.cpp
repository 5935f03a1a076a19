// FairLoss kernels (see fair_loss_kernel.h for the contract and the math).
//
// Compiled once per CPU capability: CMake defines CPU_CAPABILITY (DEFAULT or
// AVX2, plus CPU_CAPABILITY_AVX2 and -mavx2 -mfma for the latter), which
// selects at::vec's implementation and names the namespace below, so the two
// copies never collide.
//
// Two layouts of the same computation, chosen by the row length C:
//  - long rows: one row at a time, its C logits in vectors. Forward reads
//    the row twice (max, then one sweep summing both exponentials and the
//    smoothing term), backward once; a row is at most a few KiB, so the
//    second read comes from L1/L2. Sums go to double blockwise, and the
//    per-row algebra (logs, penalty, chain-rule coefficients) is in double.
//  - short rows: L rows at a time, one row per SIMD lane (a transposed
//    tile), so that no vector is partly empty, no horizontal sum is needed
//    and the per-row algebra is vectorized too. Sums of fewer than
//    kTileMaxClasses terms and the algebra stay in T.
#include "ops/cpu/kernels/fair_loss_kernel.h"
#include "ops/cpu/kernels/per_capability.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace proxyloss {
namespace kernels {
namespace CPU_CAPABILITY {
namespace {

using at::vec::Vectorized;

// ---------------------------------------------------------------------------
// Shared by both layouts.

// Smallest number of logits worth a parallel task.
constexpr int64_t kMinElementsPerTask = 1 << 15;

int64_t grain_for(int64_t C) {
  return std::max<int64_t>(1, kMinElementsPerTask / std::max<int64_t>(C, 1));
}

// Below this, exp in T is exactly 0 (e^-104 < half the smallest float
// denormal, e^-746 < half the smallest double one).
template <typename T>
constexpr T kExpUnderflow = sizeof(T) == 4 ? T(-104) : T(-746);

// exp(v), without evaluating it when every lane is below kExpUnderflow: the
// result is then exactly 0 anyway. With a large beta most of a long row's
// exp(beta x) are such vectors, which saves close to half its exps. NaN
// lanes are never "below", so they still give NaN.
template <typename T>
Vectorized<T> exp_or_zero(const Vectorized<T>& v) {
  const Vectorized<T> below = v < Vectorized<T>(kExpUnderflow<T>);
  return below.zero_mask() == 0 ? Vectorized<T>(T(0)) : v.exp();
}

// Row constants shared by forward and backward.
struct Setup {
  double eps_over_c;  // eps / C
  double weight_sum;  // W = sum_c w_c (C without weights)
  double inv_classes; // 1 / C
};

template <typename T>
Setup setup(const FairLossProblem<T>& p) {
  double weight_sum = static_cast<double>(p.C);
  if (p.weight != nullptr) {
    weight_sum = 0;
    for (int64_t c = 0; c < p.C; ++c) {
      weight_sum += p.weight[c];
    }
  }
  return {p.label_smoothing / p.C, weight_sum, 1.0 / p.C};
}

// One row's penalty from d = smoothmax_beta(z) - z_y >= 0, with
// e = exp(-k d) in (0, 1] so nothing overflows:
//   value = (2 sigmoid(k d) - 1) / C = (1 - e) / (1 + e) / C
//   slope = dvalue/dd = 2 k sigmoid'(k d) / C = 2 k e / (1 + e)^2 / C
struct Penalty {
  double value;
  double slope;
};

Penalty penalty(double d, double k, double inv_classes) {
  // exp(-708) ~ 3e-308: below that e is taken as 0, which changes neither
  // value nor slope beyond 1e-300 and keeps libm off its slow underflow
  // path (the common case of a wrong argmax with k = 1000). NaN stays NaN.
  const double t = k * d;
  const double e = t > 708.0 ? 0.0 : std::exp(-t);
  const double r = 1.0 / (1.0 + e);
  return {(1.0 - e) * r * inv_classes, 2.0 * k * e * r * r * inv_classes};
}

// ---------------------------------------------------------------------------
// Long rows: one row at a time.

// The n <= lanes logits at z as a vector; lanes past n hold 0 (callers
// discard them with Vectorized::set).
template <typename T>
Vectorized<T> load(const T* z, int64_t n) {
  return n == Vectorized<T>::size() ? Vectorized<T>::loadu(z)
                                    : Vectorized<T>::loadu(z, n);
}

// A sum of vectors: lanes accumulate in T over blocks of at most kBlock
// vectors, each block's lanes are then added in double. A block adds at most
// 64 terms per lane, so its rounding stays ~1e-7 relative in float32, and
// the double total does not grow it with C.
template <typename T>
class BlockSum {
 public:
  // Adds the first n lanes of t (n = lanes: all of them).
  void add(const Vectorized<T>& t, int64_t n) {
    acc_ = n == Vectorized<T>::size() ? acc_ + t : Vectorized<T>::set(acc_, acc_ + t, n);
    if (++vectors_ == kBlock) {
      flush();
    }
  }
  double total() {
    flush();
    return total_;
  }

 private:
  static constexpr int64_t kBlock = 64;
  void flush() {
    T lanes[Vectorized<T>::size()];
    acc_.store(lanes);
    for (const T lane : lanes) {
      total_ += lane;
    }
    acc_ = Vectorized<T>(T(0));
    vectors_ = 0;
  }
  Vectorized<T> acc_{T(0)};
  int64_t vectors_ = 0;
  double total_ = 0;
};

// max_c z_c; NaN when the row holds a NaN.
template <typename T>
T row_max(const T* z, int64_t C) {
  using Vec = Vectorized<T>;
  Vec acc(-std::numeric_limits<T>::infinity());
  for (int64_t c = 0; c < C; c += Vec::size()) {
    const int64_t n = std::min<int64_t>(Vec::size(), C - c);
    const Vec v = at::vec::maximum(acc, load(z + c, n));
    acc = n == Vec::size() ? v : Vec::set(acc, v, n);
  }
  T lanes[Vec::size()];
  acc.store(lanes);
  T m = lanes[0];
  for (const T lane : lanes) {
    m = (std::isnan(lane) || lane > m) ? lane : m;
  }
  return m;
}

// Sums of one row, with x_c = z_c - m <= 0:
//   ties   = #{c : x_c = 0}                  (the maxima; >= 1 in a finite row)
//   ce     = sum_{c : x_c < 0} exp(x_c)
//   beta   = sum_{c : x_c < 0} exp(beta x_c)
//   smooth = sum_c w_c x_c                   (only when kSmooth; w_c = 1 when
//                                             !kWeighted)
// The maxima, which add exactly 1 each, are counted apart so that
// log(ties + ce) = log(ties) + log1p(ce / ties) keeps full relative precision
// for a confident row, where summing 1 + tiny in float would round tiny away
// (and the penalty amplifies the error of log(...) / beta k times).
struct RowSums {
  double ties;
  double ce;
  double beta;
  double smooth;
};

// log1p(r) for r >= 0 from one log: with u = 1 + r rounded,
// log1p(r) = log(u) * r / (u - 1) to a few ulps (Goldberg's correction of
// the rounding of 1 + r), r itself when u == 1. NaN stays NaN. glibc's
// log1p costs about twice its log, and every row takes two.
double log1p_via_log(double r) {
  const double u = 1.0 + r;
  return u == 1.0 ? r : std::log(u) * r / (u - 1.0);
}

// log(ties + rest) for ties >= 1, rest >= 0.
double log_sum(double ties, double rest) {
  return ties == 1.0 ? log1p_via_log(rest) : std::log(ties) + log1p_via_log(rest / ties);
}

template <bool kSmooth, bool kWeighted, typename T>
RowSums row_sums(const T* z, const T* w, int64_t C, T m, T beta) {
  using Vec = Vectorized<T>;
  const Vec zero(T(0));
  const Vec m_vec(m);
  const Vec beta_vec(beta);
  BlockSum<T> ties;
  BlockSum<T> ce;
  BlockSum<T> beta_sum;
  BlockSum<T> smooth;
  for (int64_t c = 0; c < C; c += Vec::size()) {
    const int64_t n = std::min<int64_t>(Vec::size(), C - c);
    const Vec x = load(z + c, n) - m_vec;
    const Vec is_max = x == zero;
    ties.add(x.eq(zero), n);
    ce.add(Vec::blendv(x.exp(), zero, is_max), n);
    beta_sum.add(Vec::blendv(exp_or_zero(x * beta_vec), zero, is_max), n);
    if (kSmooth) {
      smooth.add(kWeighted ? x * load(w + c, n) : x, n);
    }
  }
  return {ties.total(), ce.total(), beta_sum.total(), kSmooth ? smooth.total() : 0.0};
}

// One long row i: loss and statistics.
template <bool kSmooth, bool kWeighted, typename T>
void forward_row(const FairLossProblem<T>& p, const Setup& s, int64_t i, T* loss,
                 const FairLossRowStats<T*>& stats) {
  const int64_t y = p.targets[i];
  if (y == p.ignore_index) {
    loss[i] = stats.row_max[i] = stats.lse[i] = stats.beta_lse[i] = T(0);
    return;
  }
  const double beta = p.smooth_max_beta;
  const double eps = p.label_smoothing;
  const T* z = p.logits + i * p.C;
  const T m = row_max(z, p.C);
  const RowSums sums =
      row_sums<kSmooth, kWeighted>(z, p.weight, p.C, m, static_cast<T>(beta));
  const double lse = log_sum(sums.ties, sums.ce);
  const double beta_lse = log_sum(sums.ties, sums.beta);
  const double x_y = double(z[y]) - double(m);
  const double w_y = kWeighted ? double(p.weight[y]) : 1.0;
  double ce = (1.0 - eps) * w_y * (lse - x_y);
  if (kSmooth) {
    ce += s.eps_over_c * (s.weight_sum * lse - sums.smooth);
  }
  const Penalty pen = penalty(beta_lse / beta - x_y, p.scaling_factor, s.inv_classes);
  loss[i] = static_cast<T>(ce + pen.value);
  stats.row_max[i] = m;
  stats.lse[i] = static_cast<T>(lse);
  stats.beta_lse[i] = static_cast<T>(beta_lse);
}

// One long row i of the gradient:
//   grad[c] = g (A p_c + a q_c - eps w_c / C),
// then the target entry is recomputed in double as
//   g (A expm1(x_y - lse) + a expm1(beta x_y - beta_lse) + eps (W - w_y) / C),
// the same value written so that p_y, q_y close to 1 cancel without loss.
template <bool kWeighted, typename T>
void backward_row(const FairLossProblem<T>& p, const Setup& s, int64_t i,
                  const T* grad_loss, const FairLossRowStats<const T*>& stats, T* grad) {
  using Vec = Vectorized<T>;
  T* out = grad + i * p.C;
  const int64_t y = p.targets[i];
  if (y == p.ignore_index) {
    std::fill(out, out + p.C, T(0));
    return;
  }
  const double beta = p.smooth_max_beta;
  const double eps = p.label_smoothing;
  const T* z = p.logits + i * p.C;
  const double g = grad_loss[i];
  const T m = stats.row_max[i];
  const double lse = stats.lse[i];
  const double beta_lse = stats.beta_lse[i];
  const double x_y = double(z[y]) - double(m);
  const double w_y = kWeighted ? double(p.weight[y]) : 1.0;
  const double big_a = (1.0 - eps) * w_y + s.eps_over_c * s.weight_sum;
  const Penalty pen = penalty(beta_lse / beta - x_y, p.scaling_factor, s.inv_classes);

  const Vec m_vec(m);
  const Vec beta_vec(static_cast<T>(beta));
  const Vec lse_vec(static_cast<T>(lse));
  const Vec neg_beta_lse_vec(static_cast<T>(-beta_lse));
  const Vec ce_coef(static_cast<T>(g * big_a));
  const Vec pen_coef(static_cast<T>(g * pen.slope));
  const Vec smooth_coef(static_cast<T>(g * s.eps_over_c));
  for (int64_t c = 0; c < p.C; c += Vec::size()) {
    const int64_t n = std::min<int64_t>(Vec::size(), p.C - c);
    const Vec x = load(z + c, n) - m_vec;
    const Vec prob = (x - lse_vec).exp();
    const Vec beta_prob = exp_or_zero(at::vec::fmadd(x, beta_vec, neg_beta_lse_vec));
    const Vec smooth = kWeighted ? smooth_coef * load(p.weight + c, n) : smooth_coef;
    const Vec value = at::vec::fmadd(ce_coef, prob, pen_coef * beta_prob) - smooth;
    value.store(out + c, static_cast<int>(n));
  }
  // A zero slope (a wrong argmax by far) needs no expm1 for its term.
  const double pen_term =
      pen.slope == 0.0 ? 0.0 : pen.slope * std::expm1(beta * x_y - beta_lse);
  out[y] = static_cast<T>(g * (big_a * std::expm1(x_y - lse) + pen_term +
                               s.eps_over_c * (s.weight_sum - w_y)));
}

// ---------------------------------------------------------------------------
// Short rows: L rows at a time, one row per lane.

template <typename T>
constexpr int64_t kLanes = Vectorized<T>::size();

// Rows shorter than this use tiles (24 classes in float32, 12 in float64):
// measured on AVX2, tiles are faster up to about 3 vectors per row, where
// the transposition starts to cost more than the partial vectors and
// per-row scalar work it saves.
template <typename T>
constexpr int64_t kTileMaxClasses = 3 * kLanes<T>;

// L rows starting at row0, transposed: z[c * L + r] is class c of row
// row0 + r. Lanes r >= rows (past the batch's end) hold rows of zeros, and
// lanes of ignored rows their logits; the results of both are dropped.
template <typename T>
struct Tile {
  explicit Tile(int64_t C) : z(C * kLanes<T>), out(C * kLanes<T>) {}
  std::vector<T> z;
  std::vector<T> out;           // backward's gradient, same layout
  alignas(64) T z_y[kLanes<T>]; // logit of the target (of class 0 if none)
  alignas(64) T w_y[kLanes<T>]; // its weight (1 without weights)
  int64_t target[kLanes<T>];    // the target, 0 on dropped lanes
  bool valid[kLanes<T>];        // a row whose result is kept
  int64_t row0 = 0;
  int64_t rows = 0;
};

template <typename T>
void load_tile(const FairLossProblem<T>& p, int64_t row0, Tile<T>& t) {
  constexpr int64_t L = kLanes<T>;
  t.row0 = row0;
  t.rows = std::min(L, p.N - row0);
  for (int64_t r = 0; r < L; ++r) {
    const int64_t i = row0 + r;
    const bool in_batch = r < t.rows;
    const int64_t y = in_batch ? p.targets[i] : p.ignore_index;
    t.valid[r] = y != p.ignore_index;
    t.target[r] = t.valid[r] ? y : 0;
    for (int64_t c = 0; c < p.C; ++c) {
      t.z[c * L + r] = in_batch ? p.logits[i * p.C + c] : T(0);
    }
    t.z_y[r] = t.z[t.target[r] * L + r];
    t.w_y[r] = p.weight != nullptr ? p.weight[t.target[r]] : T(1);
  }
}

// log(ties + rest) = log(ties) + log1p(rest / ties), lanewise (see RowSums).
template <typename T>
Vectorized<T> log_sum(const Vectorized<T>& ties, const Vectorized<T>& rest) {
  return ties.log() + (rest / ties).log1p();
}

// The penalty of L rows (see Penalty), in T.
template <typename T>
struct PenaltyLanes {
  Vectorized<T> value;
  Vectorized<T> slope;
};

template <typename T>
PenaltyLanes<T> penalty(const Vectorized<T>& d, double k, double inv_classes) {
  using Vec = Vectorized<T>;
  const Vec one(T(1));
  const Vec e = (d * Vec(static_cast<T>(-k))).exp();
  const Vec r = one / (one + e);
  const Vec inv_c(static_cast<T>(inv_classes));
  return {(one - e) * r * inv_c, Vec(static_cast<T>(2 * k)) * e * r * r * inv_c};
}

template <bool kSmooth, bool kWeighted, typename T>
void forward_tile(const FairLossProblem<T>& p, const Setup& s, const Tile<T>& t, T* loss,
                  const FairLossRowStats<T*>& stats) {
  using Vec = Vectorized<T>;
  constexpr int64_t L = kLanes<T>;
  const Vec zero(T(0));
  const Vec beta(static_cast<T>(p.smooth_max_beta));
  Vec m(-std::numeric_limits<T>::infinity());
  for (int64_t c = 0; c < p.C; ++c) {
    m = at::vec::maximum(m, Vec::loadu(t.z.data() + c * L));
  }
  // The sums of RowSums, one row per lane.
  Vec ties(T(0));
  Vec ce(T(0));
  Vec beta_sum(T(0));
  Vec smooth(T(0));
  for (int64_t c = 0; c < p.C; ++c) {
    const Vec x = Vec::loadu(t.z.data() + c * L) - m;
    const Vec is_max = x == zero;
    ties = ties + x.eq(zero);
    ce = ce + Vec::blendv(x.exp(), zero, is_max);
    beta_sum = beta_sum + Vec::blendv(exp_or_zero(x * beta), zero, is_max);
    if (kSmooth) {
      smooth = kWeighted ? at::vec::fmadd(x, Vec(p.weight[c]), smooth) : smooth + x;
    }
  }
  const Vec lse = log_sum(ties, ce);
  const Vec beta_lse = log_sum(ties, beta_sum);
  const Vec x_y = Vec::loadu(t.z_y) - m;
  Vec value =
      Vec(static_cast<T>(1 - p.label_smoothing)) * Vec::loadu(t.w_y) * (lse - x_y);
  if (kSmooth) {
    value = value + Vec(static_cast<T>(s.eps_over_c)) *
                        (Vec(static_cast<T>(s.weight_sum)) * lse - smooth);
  }
  value = value + penalty(beta_lse / beta - x_y, p.scaling_factor, s.inv_classes).value;

  alignas(64) T lanes[4][L];
  value.store(lanes[0]);
  m.store(lanes[1]);
  lse.store(lanes[2]);
  beta_lse.store(lanes[3]);
  for (int64_t r = 0; r < t.rows; ++r) {
    const int64_t i = t.row0 + r;
    const bool keep = t.valid[r];
    loss[i] = keep ? lanes[0][r] : T(0);
    stats.row_max[i] = keep ? lanes[1][r] : T(0);
    stats.lse[i] = keep ? lanes[2][r] : T(0);
    stats.beta_lse[i] = keep ? lanes[3][r] : T(0);
  }
}

// backward_row's formulas, one row per lane.
template <bool kWeighted, typename T>
void backward_tile(const FairLossProblem<T>& p, const Setup& s, Tile<T>& t,
                   const T* grad_loss, const FairLossRowStats<const T*>& stats, T* grad) {
  using Vec = Vectorized<T>;
  constexpr int64_t L = kLanes<T>;
  // Per-row inputs; dropped lanes get 0 (finite, and a zero gradient).
  alignas(64) T lanes[4][L];
  for (int64_t r = 0; r < L; ++r) {
    const int64_t i = t.row0 + r;
    const bool keep = t.valid[r];
    lanes[0][r] = keep ? grad_loss[i] : T(0);
    lanes[1][r] = keep ? stats.row_max[i] : T(0);
    lanes[2][r] = keep ? stats.lse[i] : T(0);
    lanes[3][r] = keep ? stats.beta_lse[i] : T(0);
  }
  const Vec g = Vec::loadu(lanes[0]);
  const Vec m = Vec::loadu(lanes[1]);
  const Vec lse = Vec::loadu(lanes[2]);
  const Vec beta_lse = Vec::loadu(lanes[3]);
  const Vec beta(static_cast<T>(p.smooth_max_beta));
  const Vec eps_over_c(static_cast<T>(s.eps_over_c));
  const Vec w_y = Vec::loadu(t.w_y);
  const Vec x_y = Vec::loadu(t.z_y) - m;
  const Vec slope = penalty(beta_lse / beta - x_y, p.scaling_factor, s.inv_classes).slope;
  const Vec big_a = Vec(static_cast<T>(1 - p.label_smoothing)) * w_y +
                    Vec(static_cast<T>(s.eps_over_c * s.weight_sum));
  const Vec ce_coef = g * big_a;
  const Vec pen_coef = g * slope;
  const Vec smooth_coef = g * eps_over_c;
  for (int64_t c = 0; c < p.C; ++c) {
    const Vec x = Vec::loadu(t.z.data() + c * L) - m;
    const Vec prob = (x - lse).exp();
    const Vec beta_prob = exp_or_zero(at::vec::fmadd(x, beta, beta_lse.neg()));
    const Vec smooth = kWeighted ? smooth_coef * Vec(p.weight[c]) : smooth_coef;
    const Vec value = at::vec::fmadd(ce_coef, prob, pen_coef * beta_prob) - smooth;
    value.store(t.out.data() + c * L);
  }
  const Vec on_target = g * (big_a * (x_y - lse).expm1() +
                             slope * at::vec::fmadd(x_y, beta, beta_lse.neg()).expm1() +
                             eps_over_c * (Vec(static_cast<T>(s.weight_sum)) - w_y));
  on_target.store(lanes[0]);
  for (int64_t r = 0; r < t.rows; ++r) {
    T* out = grad + (t.row0 + r) * p.C;
    if (!t.valid[r]) {
      std::fill(out, out + p.C, T(0));
      continue;
    }
    for (int64_t c = 0; c < p.C; ++c) {
      out[c] = t.out[c * L + r];
    }
    out[t.target[r]] = lanes[0][r];
  }
}

// ---------------------------------------------------------------------------
// Entry points: parallel over rows (long) or tiles (short).

template <bool kSmooth, bool kWeighted, typename T>
void forward_all(const FairLossProblem<T>& p, T* loss,
                 const FairLossRowStats<T*>& stats) {
  const Setup s = setup(p);
  if (p.C < kTileMaxClasses<T>) {
    constexpr int64_t L = kLanes<T>;
    at::parallel_for(0, (p.N + L - 1) / L, grain_for(p.C * L), [&](int64_t b, int64_t e) {
      Tile<T> t(p.C);
      for (int64_t k = b; k < e; ++k) {
        load_tile(p, k * L, t);
        forward_tile<kSmooth, kWeighted>(p, s, t, loss, stats);
      }
    });
    return;
  }
  at::parallel_for(0, p.N, grain_for(p.C), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      forward_row<kSmooth, kWeighted>(p, s, i, loss, stats);
    }
  });
}

template <typename T>
void forward(const FairLossProblem<T>& p, T* loss, const FairLossRowStats<T*>& stats) {
  const bool smooth = p.label_smoothing > 0;
  const bool weighted = p.weight != nullptr;
  if (smooth && weighted) {
    forward_all<true, true>(p, loss, stats);
  } else if (smooth) {
    forward_all<true, false>(p, loss, stats);
  } else if (weighted) {
    forward_all<false, true>(p, loss, stats);
  } else {
    forward_all<false, false>(p, loss, stats);
  }
}

template <bool kWeighted, typename T>
void backward_all(const FairLossProblem<T>& p, const T* grad_loss,
                  const FairLossRowStats<const T*>& stats, T* grad) {
  const Setup s = setup(p);
  if (p.C < kTileMaxClasses<T>) {
    constexpr int64_t L = kLanes<T>;
    at::parallel_for(0, (p.N + L - 1) / L, grain_for(p.C * L), [&](int64_t b, int64_t e) {
      Tile<T> t(p.C);
      for (int64_t k = b; k < e; ++k) {
        load_tile(p, k * L, t);
        backward_tile<kWeighted>(p, s, t, grad_loss, stats, grad);
      }
    });
    return;
  }
  at::parallel_for(0, p.N, grain_for(p.C), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      backward_row<kWeighted>(p, s, i, grad_loss, stats, grad);
    }
  });
}

template <typename T>
void backward(const FairLossProblem<T>& p, const T* grad_loss,
              const FairLossRowStats<const T*>& stats, T* grad) {
  if (p.weight != nullptr) {
    backward_all<true>(p, grad_loss, stats, grad);
  } else {
    backward_all<false>(p, grad_loss, stats, grad);
  }
}

} // namespace
} // namespace CPU_CAPABILITY

const FairLossKernels& PROXYLOSS_PER_CAPABILITY(fair_loss_kernels_)() {
  static const FairLossKernels table{
      &CPU_CAPABILITY::forward<float>,
      &CPU_CAPABILITY::forward<double>,
      &CPU_CAPABILITY::backward<float>,
      &CPU_CAPABILITY::backward<double>,
  };
  return table;
}

} // namespace kernels
} // namespace proxyloss
