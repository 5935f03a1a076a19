// Streaming Smooth-AP kernels (see smooth_ap_kernel.h for the contract).
//
// Compiled once per CPU capability: CMake defines CPU_CAPABILITY (DEFAULT or
// AVX2, plus CPU_CAPABILITY_AVX2 and -mavx2 -mfma for the latter), which
// selects at::vec's implementation and names the namespace below, so the two
// copies never collide.
#include "ops/cpu/kernels/smooth_ap_kernel.h"
#include "ops/cpu/kernel_selection.h"
#include "ops/cpu/kernels/per_capability.h"
#include "ops/cpu/kernels/sigmoid_sums.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

namespace proxyloss {
namespace kernels {
namespace CPU_CAPABILITY {
namespace {

using at::vec::Vectorized;

// Smallest number of (anchor, element) pairs worth a parallel task: waking a
// sleeping OpenMP thread costs about as much as evaluating this many pairs.
constexpr int64_t kMinPairsPerTask = 1 << 16;
// Per-anchor cost (windows, tails, reductions) in units of pairs.
constexpr int64_t kAnchorCost = 32;
// Rows handled per task by the O(P + N) reduction passes.
constexpr int64_t kRowsPerTask = 4096;

// Half-width of the evaluated window in units of tau (see the header).
template <typename T>
constexpr double kWindow = 9.0;
template <>
constexpr double kWindow<double> = 19.0;

// ---------------------------------------------------------------------------
// e^x for x <= 0 on the evaluated pairs, where the window bounds x >= -K
// (up to rounding).
//
// float: inline, no call. Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2,
// with ln2 split in two (its leading part has 9 bits, so n ln2 adds no
// rounding); e^r = 1 + r + r^2 p(r) with Cephes' degree-5 minimax p; 2^n
// assembled in the exponent bits. Relative error below 2 ulp (1.2e-7
// measured against double exp on [-87, 0]); x is clamped at -87 so that 2^n
// stays a normal number whatever the input.
// double: at::vec's exp (SLEEF, 1 ulp).
template <typename T>
Vectorized<T> exp_nonpositive(const Vectorized<T>& x) {
  return x.exp();
}

// 2^n for integer-valued n in [-126, 0].
inline Vectorized<float> exp2_integer(const Vectorized<float>& n) {
#if defined(CPU_CAPABILITY_AVX2)
  const __m256i biased = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(biased, 23));
#else
  constexpr int64_t kLanes = Vectorized<float>::size();
  float lanes[kLanes];
  n.store(lanes);
  for (int64_t l = 0; l < kLanes; ++l) {
    // A NaN lane (NaN input: the polynomial is NaN too) must not reach the cast.
    const int32_t power = lanes[l] >= -126.0f ? static_cast<int32_t>(lanes[l]) : -126;
    const uint32_t bits = static_cast<uint32_t>(power + 127) << 23;
    std::memcpy(&lanes[l], &bits, sizeof(bits));
  }
  return Vectorized<float>::loadu(lanes);
#endif
}

template <>
Vectorized<float> exp_nonpositive<float>(const Vectorized<float>& x_in) {
  using Vec = Vectorized<float>;
  const Vec x = at::vec::clamp_min(x_in, Vec(-87.0f));
  const Vec n = (x * Vec(1.44269504088896341f)).round();
  Vec r = at::vec::fmadd(n, Vec(-0.693359375f), x);
  r = at::vec::fmadd(n, Vec(2.12194440e-4f), r);
  Vec p(1.9875691500e-4f);
  p = at::vec::fmadd(p, r, Vec(1.3981999507e-3f));
  p = at::vec::fmadd(p, r, Vec(8.3334519073e-3f));
  p = at::vec::fmadd(p, r, Vec(4.1665795894e-2f));
  p = at::vec::fmadd(p, r, Vec(1.6666665459e-1f));
  p = at::vec::fmadd(p, r, Vec(5.0000001201e-1f));
  const Vec y = at::vec::fmadd(p, r * r, r + Vec(1.0f));
  return y * exp2_integer(n);
}

// ---------------------------------------------------------------------------
// One sorted side of a class (positives or negatives) with its exponentials
// factored by blocks of kFactorBlock entries: for j in block b, with top_b
// and bottom_b the block's largest and smallest entries,
//   below[j] = e^{(x_j - top_b) / tau},   above[j] = e^{(bottom_b - x_j) / tau},
// both in (0, 1], each computed in double and rounded once. Then for an
// anchor u, one factor per block gives every pair's exponential:
//   e^{(x_j - u) / tau} = below[j] e^{(top_b - u) / tau}
//   e^{(u - x_j) / tau} = above[j] e^{(u - bottom_b) / tau}
// with relative error <= 1.5 ulp (three roundings), no exp per pair, and no
// error from rounding x_j - u. Used only for blocks whose spread
// (top_b - bottom_b) / tau is at most kMaxSpread, which keeps both factors
// within e^(K + kMaxSpread) of 1 on the window's pairs (no overflow, no
// underflow); the others evaluate their pairs directly.
constexpr int64_t kFactorBlock = 512;
constexpr double kMaxSpread = 32.0;
// A block segment shorter than this many vectors evaluates its pairs
// directly: two scalar exps per block cost about as much.
constexpr int64_t kMinFactoredVectors = 8;
// Factoring costs two exps per entry: worth it for a side whose entries are
// each evaluated against at least this many anchors on average.
constexpr int64_t kMinVisitsToFactor = 16;

template <typename T>
struct SortedSide {
  const T* x;
  int64_t n;
  std::vector<T> below;
  std::vector<T> above;
  std::vector<char> factored; // per block; all 0 when the side is not factored

  // `visits`: the number of pairs the sweeps will evaluate on this side.
  SortedSide(const T* values, int64_t count, T inv_tau, int64_t visits)
      : x(values), n(count), factored((count + kFactorBlock - 1) / kFactorBlock, 0) {
    if (visits < kMinVisitsToFactor * n) {
      return;
    }
    std::vector<double> to_top(n);
    std::vector<double> from_bottom(n);
    for (int64_t b = 0; b * kFactorBlock < n; ++b) {
      const int64_t first = b * kFactorBlock;
      const int64_t end = std::min(n, first + kFactorBlock);
      factored[b] = (top(b) - bottom(b)) * double(inv_tau) <= kMaxSpread;
      for (int64_t j = first; j < end; ++j) {
        to_top[j] = (double(x[j]) - top(b)) * double(inv_tau);
        from_bottom[j] = (bottom(b) - double(x[j])) * double(inv_tau);
      }
    }
    const auto exp = [](const Vectorized<double>& v) { return v.exp(); };
    at::vec::map(exp, to_top.data(), to_top.data(), n);
    at::vec::map(exp, from_bottom.data(), from_bottom.data(), n);
    below.assign(to_top.begin(), to_top.end());
    above.assign(from_bottom.begin(), from_bottom.end());
  }
  double top(int64_t b) const {
    return x[std::min(n, (b + 1) * kFactorBlock) - 1];
  }
  double bottom(int64_t b) const {
    return x[b * kFactorBlock];
  }
};

// ---------------------------------------------------------------------------
// Sweeps: one anchor u against the partners x[lo, hi) of a sorted side,
// d_j = (x_j - u) / tau. A Pair maps each pair's
//   e = exp(-|d|) in (0, 1]   and   above = (x_j > u)
// to a row term, summed for the anchor, and optionally a column term, added
// to col[j - lo] (a partner's running sum). Written with e, nothing
// overflows and every term keeps full relative precision in the tails:
//   sigmoid(d)  = d >= 0 ? 1 / (1 + e) : e / (1 + e)
//   sigmoid'(d) = sigmoid(d) (1 - sigmoid(d)) = e / (1 + e)^2
// and for d <= 0, sigmoid(-d) = 1 / (1 + e) comes free with sigmoid(d): the
// mirrored pair of the symmetric evaluation. Row terms are summed in T by
// SIMD lanes over one factor block (at most 65 terms per lane), each block
// then added in double, so a row sum keeps ~1e-7 relative error however
// long the window; column buffers are flushed to double by the caller at
// the same bound (see Columns). A Pair provides
//   static constexpr bool kColumns;    whether it has column terms
//   static constexpr bool kTwoSided;   false: every partner is <= u
//   std::pair<V, V> operator()(const V& e, const V& above, int64_t j)
//   std::pair<T, T> operator()(T e, bool above, int64_t j)
// (V = Vectorized<T>; `above` a lane mask; j the partner's index).
template <typename T, typename Pair>
double sweep(const SortedSide<T>& s, int64_t lo, int64_t hi, T u, T inv_tau, T* col,
             const Pair& pair) {
  using Vec = Vectorized<T>;
  constexpr int64_t kLanes = Vec::size();
  const Vec anchor(u);
  const Vec scale(inv_tau);
  const Vec zero(T(0));
  Vec acc(T(0));
  const auto add = [&](const std::pair<Vec, Vec>& terms, int64_t j) {
    acc = acc + terms.first;
    if constexpr (Pair::kColumns) {
      T* c = col + (j - lo);
      (Vec::loadu(c) + terms.second).store(c);
    }
  };
  // exp(-|d|) from d, for blocks that are not factored.
  const auto direct = [&](int64_t j) {
    const Vec d = (Vec::loadu(s.x + j) - anchor) * scale;
    if constexpr (Pair::kTwoSided) {
      add(pair(exp_nonpositive(d.abs().neg()), d > zero, j), j);
    } else {
      add(pair(exp_nonpositive(d), zero, j), j);
    }
  };
  double sum = 0;
  T lanes[kLanes];
  int64_t j = lo;
  while (j + kLanes <= hi) {
    const int64_t b = j / kFactorBlock;
    const int64_t end = std::min(hi, (b + 1) * kFactorBlock);
    acc = Vec(T(0));
    if (s.factored[b] && end - j >= kMinFactoredVectors * kLanes) {
      const Vec to_top(
          static_cast<T>(std::exp((s.top(b) - double(u)) * double(inv_tau))));
      Vec from_bottom(T(0));
      if constexpr (Pair::kTwoSided) {
        from_bottom =
            Vec(static_cast<T>(std::exp((double(u) - s.bottom(b)) * double(inv_tau))));
      }
      for (; j + kLanes <= end; j += kLanes) {
        const Vec e_below = Vec::loadu(s.below.data() + j) * to_top;
        if constexpr (Pair::kTwoSided) {
          const Vec above = Vec::loadu(s.x + j) > anchor;
          add(pair(Vec::blendv(e_below, Vec::loadu(s.above.data() + j) * from_bottom,
                               above),
                   above, j),
              j);
        } else {
          add(pair(e_below, zero, j), j);
        }
      }
    } else {
      for (; j + kLanes <= end; j += kLanes) {
        direct(j);
      }
    }
    if (j < end && j + kLanes <= hi) { // a vector across the block boundary
      direct(j);
      j += kLanes;
    }
    acc.store(lanes);
    for (int64_t l = 0; l < kLanes; ++l) {
      sum += lanes[l];
    }
  }
  for (; j < hi; ++j) {
    const T d = (s.x[j] - u) * inv_tau;
    const auto terms = pair(std::exp(-std::abs(d)), d > T(0), j);
    sum += terms.first;
    if constexpr (Pair::kColumns) {
      col[j - lo] += terms.second;
    }
  }
  return sum;
}

// 1 / (1 + e).
template <typename V>
V logistic_of(const V& e) {
  return V(1) / (V(1) + e);
}

// Row: sigmoid(d), any sign of d.
struct SigmoidRow {
  static constexpr bool kColumns = false;
  static constexpr bool kTwoSided = true;
  template <typename T>
  std::pair<Vectorized<T>, Vectorized<T>> operator()(const Vectorized<T>& e,
                                                     const Vectorized<T>& above,
                                                     int64_t) const {
    const auto r = logistic_of(e);
    return {Vectorized<T>::blendv(e * r, r, above), Vectorized<T>(T(0))};
  }
  template <typename T>
  std::pair<T, T> operator()(T e, bool above, int64_t) const {
    const T r = logistic_of(e);
    return {above ? r : e * r, T(0)};
  }
};

// Symmetric positive pair, partner l below anchor k (d <= 0): row k gets
// sigmoid(d), column l gets sigmoid(-d).
struct SigmoidPair {
  static constexpr bool kColumns = true;
  static constexpr bool kTwoSided = false;
  template <typename V, typename Mask>
  std::pair<V, V> operator()(const V& e, const Mask&, int64_t) const {
    const V r = logistic_of(e);
    return {e * r, r};
  }
};

// Symmetric positive pair, d <= 0, backward: w = sigmoid'(d) (ab_l - ab_k)
// to row k, -w to column l (sigmoid' is even).
template <typename T>
struct SigmoidGradPair {
  static constexpr bool kColumns = true;
  static constexpr bool kTwoSided = false;
  const T* ab;
  T ab_anchor;
  std::pair<Vectorized<T>, Vectorized<T>> operator()(const Vectorized<T>& e,
                                                     const Vectorized<T>&,
                                                     int64_t l) const {
    const auto r = logistic_of(e);
    const auto w = e * r * r * (Vectorized<T>::loadu(ab + l) - Vectorized<T>(ab_anchor));
    return {w, w.neg()};
  }
  std::pair<T, T> operator()(T e, bool, int64_t l) const {
    const T r = logistic_of(e);
    const T w = e * r * r * (ab[l] - ab_anchor);
    return {w, -w};
  }
};

// Positive anchor k, negative partner j, backward: sigmoid'(d) to row k,
// a_k sigmoid'(d) to column j.
template <typename T>
struct SigmoidGradCross {
  static constexpr bool kColumns = true;
  static constexpr bool kTwoSided = true;
  T a_anchor;
  std::pair<Vectorized<T>, Vectorized<T>> operator()(const Vectorized<T>& e,
                                                     const Vectorized<T>&,
                                                     int64_t) const {
    const auto r = logistic_of(e);
    const auto g = e * r * r;
    return {g, g * Vectorized<T>(a_anchor)};
  }
  std::pair<T, T> operator()(T e, bool, int64_t) const {
    const T r = logistic_of(e);
    const T g = e * r * r;
    return {g, g * a_anchor};
  }
};

// ---------------------------------------------------------------------------
// Column sums of one task over partner indices [begin, end). Terms land in
// `block` (T) and are moved to `total` (double) every kAnchorsPerFlush
// anchors, so an entry holds at most that many T terms before a double
// addition: the row sums' bound.
template <typename T>
struct Columns {
  static constexpr int64_t kAnchorsPerFlush = 64;
  int64_t begin = 0;
  int64_t end = 0;
  std::vector<T> block;
  std::vector<double> total;
  int64_t dirty_lo = 0; // [dirty_lo, dirty_hi): touched since the last flush
  int64_t dirty_hi = 0;

  void reset(int64_t b, int64_t e) {
    begin = b;
    end = std::max(b, e);
    block.assign(end - begin, T(0));
    total.assign(end - begin, 0.0);
    dirty_lo = end;
    dirty_hi = begin;
  }
  // Buffer of the window [lo, hi), which must lie in [begin, end).
  T* window(int64_t lo, int64_t hi) {
    dirty_lo = std::min(dirty_lo, lo);
    dirty_hi = std::max(dirty_hi, hi);
    return block.data() + (lo - begin);
  }
  void flush() {
    for (int64_t j = dirty_lo; j < dirty_hi; ++j) {
      total[j - begin] += double(block[j - begin]);
      block[j - begin] = T(0);
    }
    dirty_lo = end;
    dirty_hi = begin;
  }
  double at(int64_t j) const {
    return j >= begin && j < end ? total[j - begin] : 0.0;
  }
};

// Sum over tasks, in task order (deterministic for a given partition).
template <typename T>
double column_sum(const std::vector<Columns<T>>& columns, int64_t j) {
  double sum = 0;
  for (const auto& c : columns) {
    sum += c.at(j);
  }
  return sum;
}

// ---------------------------------------------------------------------------
// Tails. Sums over the tails of an ascending array x with weights w (w = 1
// when unweighted), for the orders r = 1, 2 of the tail forms, O(1) per
// anchor u after O(n) preparation:
//   below_r(lo, u) = sum_{j <  lo} w_j e^{r (x_j - u) / tau}
//                  = low_r[lo] e^{r (x_{lo-1} - u) / tau}
//   above_r(hi, u) = sum_{j >= hi} w_j e^{r (u - x_j) / tau}
//                  = high_r[hi] e^{r (u - x_hi) / tau}
// with low_r[k] = sum_{j<k} w_j e^{r (x_j - x_{k-1})/tau} and high_r[k] =
// sum_{j>=k} w_j e^{r (x_k - x_j)/tau}, built by recurrences whose factors
// step[k]^r, step[k] = e^{(x_{k-1} - x_k)/tau}, are <= 1: nothing overflows,
// and a far gap underflows to 0, as its terms do. Used for lo, hi in the
// tails only (x_{lo-1} <= u <= x_hi), which the windows guarantee.
struct Tails {
  std::vector<double> low[2];
  std::vector<double> high[2];
};

template <typename T>
std::vector<double> steps(const T* x, int64_t n, T inv_tau) {
  std::vector<double> step(std::max<int64_t>(n, 1), 0.0);
  for (int64_t k = 1; k < n; ++k) {
    step[k] = (double(x[k - 1]) - double(x[k])) * double(inv_tau);
  }
  if (n > 1) {
    at::vec::map([](const Vectorized<double>& v) { return v.exp(); }, step.data() + 1,
                 step.data() + 1, n - 1);
  }
  return step;
}

template <typename T>
Tails tails(const std::vector<double>& step, const T* w, int64_t n) {
  Tails t;
  for (int r = 0; r < 2; ++r) {
    auto& low = t.low[r];
    auto& high = t.high[r];
    low.assign(n + 1, 0.0);
    high.assign(n + 1, 0.0);
    for (int64_t k = 0; k < n; ++k) {
      const double factor = k > 0 ? (r == 0 ? step[k] : step[k] * step[k]) : 0.0;
      low[k + 1] = low[k] * factor + (w ? double(w[k]) : 1.0);
    }
    for (int64_t k = n - 1; k >= 0; --k) {
      const double factor =
          k + 1 < n ? (r == 0 ? step[k + 1] : step[k + 1] * step[k + 1]) : 0.0;
      high[k] = (w ? double(w[k]) : 1.0) + high[k + 1] * factor;
    }
  }
  return t;
}

// e^{(x_{lo-1} - u) / tau} and e^{(u - x_hi) / tau}: the factors of the
// tails at an anchor, 0 for an empty tail. One exp serves every Tails of the
// same array.
struct TailFactors {
  double below;
  double above;
};

template <typename T>
TailFactors tail_factors(const T* x, int64_t n, int64_t lo, int64_t hi, T u, T inv_tau) {
  return {lo > 0 ? std::exp((double(x[lo - 1]) - double(u)) * double(inv_tau)) : 0.0,
          hi < n ? std::exp((double(u) - double(x[hi])) * double(inv_tau)) : 0.0};
}

// Sums of the tail forms over [0, lo) and [hi, n):
//   sigmoid(d)  = e^d - e^2d + ...            (below)
//   sigmoid(d)  = 1 - e^-d + e^-2d - ...      (above; the 1s are counted by
//                                              the caller)
//   sigmoid'(d) = e^-|d| - 2 e^-2|d| + ...    (both)
struct TailSums {
  double sigmoid_below;
  double sigmoid_above; // without the 1s
  double grad;
};

inline TailSums tail_sums(const Tails& t, int64_t lo, int64_t hi, TailFactors f) {
  const double b1 = t.low[0][lo] * f.below;
  const double b2 = t.low[1][lo] * f.below * f.below;
  const double a1 = t.high[0][hi] * f.above;
  const double a2 = t.high[1][hi] * f.above * f.above;
  return {b1 - b2, a2 - a1, (b1 - 2 * b2) + (a1 - 2 * a2)};
}

// ---------------------------------------------------------------------------
// Windows, each found once by monotone sweeps (the anchors are sorted):
//   positive pairs: anchor k evaluates the positives l in [pp_lo[k], k),
//     pp_lo[k] = first l with pos[l] >= pos[k] - reach. Each unordered pair
//     {l < k} is evaluated once, at its upper anchor. Positive l is evaluated
//     (as a column) by the anchors k in (l, pp_hi[l]), pp_hi[l] = first k
//     with pp_lo[k] > l; its tails are [0, pp_lo[l]) and [pp_hi[l], P).
//   negatives: anchor k evaluates [pn_lo[k], pn_hi[k]), the negatives within
//     reach of pos[k]. Negative j is evaluated by the anchors in
//     [np_lo[j], np_hi[j]) (np_lo[j] = #{k : pn_hi[k] <= j}, np_hi[j] =
//     #{k : pn_lo[k] <= j}); its tails are the other positives.
// The tails' pairs all have |d| > K (up to rounding): their forms are exact.
struct Windows {
  std::vector<int64_t> pp_lo, pp_hi, pn_lo, pn_hi;
  std::vector<int64_t> np_lo, np_hi; // only when built with negatives' columns

  template <typename T>
  Windows(const T* pos, int64_t P, const T* neg, int64_t N, T reach,
          bool negative_columns)
      : pp_lo(P), pp_hi(P), pn_lo(P), pn_hi(P) {
    int64_t l = 0;
    int64_t lo = 0;
    int64_t hi = 0;
    for (int64_t k = 0; k < P; ++k) {
      const T below = pos[k] - reach;
      const T above = pos[k] + reach;
      while (pos[l] < below) {
        ++l;
      }
      while (lo < N && neg[lo] < below) {
        ++lo;
      }
      hi = std::max(hi, lo);
      while (hi < N && !(above < neg[hi])) {
        ++hi;
      }
      pp_lo[k] = l;
      pn_lo[k] = lo;
      pn_hi[k] = hi;
    }
    int64_t k = 0;
    for (int64_t i = 0; i < P; ++i) {
      while (k < P && pp_lo[k] <= i) {
        ++k;
      }
      pp_hi[i] = k;
    }
    if (negative_columns) {
      add_negative_columns(P, N);
    }
  }

  void add_negative_columns(int64_t P, int64_t N) {
    np_lo.resize(N);
    np_hi.resize(N);
    int64_t a = 0;
    int64_t b = 0;
    for (int64_t j = 0; j < N; ++j) {
      while (a < P && pn_hi[a] <= j) {
        ++a;
      }
      while (b < P && pn_lo[b] <= j) {
        ++b;
      }
      np_lo[j] = a;
      np_hi[j] = b;
    }
  }

  // Pairs evaluated at anchor k.
  int64_t pairs(int64_t k) const {
    return (k - pp_lo[k]) + (pn_hi[k] - pn_lo[k]);
  }
  // Pairs evaluated in all, positive and negative partners.
  int64_t positive_pairs() const {
    int64_t total = 0;
    for (size_t k = 0; k < pp_lo.size(); ++k) {
      total += int64_t(k) - pp_lo[k];
    }
    return total;
  }
  int64_t negative_pairs() const {
    int64_t total = 0;
    for (size_t k = 0; k < pn_lo.size(); ++k) {
      total += pn_hi[k] - pn_lo[k];
    }
    return total;
  }
};

// Splits the anchors [0, P) into contiguous tasks of about equal cost, as
// many as there are threads at most (each task holds column buffers over
// its partners' span); boundaries depend only on the windows and the thread
// count, so results are deterministic for a given thread count.
std::vector<int64_t> partition(const Windows& w, int64_t P) {
  std::vector<int64_t> prefix(P + 1, 0);
  for (int64_t k = 0; k < P; ++k) {
    prefix[k + 1] = prefix[k] + w.pairs(k) + kAnchorCost;
  }
  const int64_t total = prefix[P];
  const int64_t tasks = std::max<int64_t>(
      1, std::min<int64_t>(at::get_num_threads(), total / kMinPairsPerTask));
  std::vector<int64_t> bounds{0};
  for (int64_t t = 1; t < tasks; ++t) {
    const int64_t k = std::lower_bound(prefix.begin(), prefix.end(), total * t / tasks) -
                      prefix.begin();
    bounds.push_back(std::max(bounds.back(), std::min(k, P)));
  }
  bounds.push_back(P);
  return bounds;
}

// Runs body(task, begin, end) for every task, one per thread.
template <typename Body>
void for_each_task(const std::vector<int64_t>& bounds, const Body& body) {
  const int64_t tasks = int64_t(bounds.size()) - 1;
  at::parallel_for(0, tasks, 1, [&](int64_t first, int64_t last) {
    for (int64_t t = first; t < last; ++t) {
      body(t, bounds[t], bounds[t + 1]);
    }
  });
}

template <typename T>
T reach_of(T inv_tau) {
  return static_cast<T>(kWindow<T> / double(inv_tau));
}

// ---------------------------------------------------------------------------
// Crowded windows: block expansions (sigmoid_sums.h), whose cost per row
// does not grow with the number of pairs in its window. Chosen by estimated
// cost, in nanoseconds per forward + backward measured on the benchmark's
// machine (2-core AMD EPYC, AVX2): a window pair costs kWindowPairCost, an
// expansion (Taylor coefficients and local coefficients of one block pair)
// kExpansionCost, a pair evaluated directly by the expansions
// kDirectPairCost, and each row kExpansionRowCost (moments, far-field
// series, local expansions, in every sum it takes part in). The estimate is
// a pass over the blocks: no arithmetic. Windows holding at most
// kExpansionPairsPerRow pairs per row skip it.
constexpr double kWindowPairCost = 1.3;
constexpr double kExpansionCost = 5 * 200.0; // five sums, most of them of a pair
constexpr double kDirectPairCost = 5 * 3.0;
constexpr double kExpansionRowCost = 100.0;
constexpr int64_t kExpansionPairsPerRow = 64;

struct ClassBlocks {
  SortedBlocks pos;
  SortedBlocks neg;
  template <typename T>
  ClassBlocks(const T* p, int64_t P, const T* n, int64_t N, double inv_tau)
      : pos(p, P, inv_tau), neg(n, N, inv_tau) {}
};

// The class's blocks where the expansions are to be used, else nullopt.
template <typename T>
std::optional<ClassBlocks> expansion_blocks(const Windows& w, const T* pos, int64_t P,
                                            const T* neg, int64_t N, T inv_tau) {
  using proxyloss::detail::SmoothAPAlgorithm;
  const SmoothAPAlgorithm forced = proxyloss::detail::forced_smooth_ap_algorithm();
  const bool automatic = forced == SmoothAPAlgorithm::kAuto;
  if (forced == SmoothAPAlgorithm::kWindows ||
      (automatic &&
       w.positive_pairs() + w.negative_pairs() <= kExpansionPairsPerRow * (P + N))) {
    return std::nullopt;
  }
  std::optional<ClassBlocks> blocks(std::in_place, pos, P, neg, N, double(inv_tau));
  if (automatic) {
    // Each sum's work once: positives to positives, negatives to positives,
    // positives to negatives (the backward's columns).
    const double near = ExpansionOrder<T>::kNear;
    ExpansionWork work;
    for (const auto& [sources, queries] : {std::make_pair(&blocks->pos, &blocks->pos),
                                           std::make_pair(&blocks->neg, &blocks->pos),
                                           std::make_pair(&blocks->pos, &blocks->neg)}) {
      const auto part = expansion_work(*sources, *queries, double(inv_tau), near);
      work.expansions += part.expansions;
      work.direct_pairs += part.direct_pairs;
    }
    const double expansions = kExpansionCost / 3 * double(work.expansions) +
                              kDirectPairCost / 3 * double(work.direct_pairs) +
                              kExpansionRowCost * double(P + N);
    const double windows =
        kWindowPairCost * double(w.positive_pairs() + w.negative_pairs());
    if (windows <= expansions) {
      return std::nullopt;
    }
  }
  return blocks;
}

// rank_pos = 0.5 + sum_l sigmoid(d(pos_l)) (the l == k term included, as in
// the header's contract), rank_all = rank_pos + sum_j sigmoid(d(neg_j)).
template <typename T>
void forward_expanded(const ClassBlocks& blocks, const T* pos, int64_t P, const T* neg,
                      int64_t N, T inv_tau_in, T* rank_all, T* rank_pos) {
  const double inv_tau = inv_tau_in;
  const SortedBlocks& pos_blocks = blocks.pos;
  const SortedBlocks& neg_blocks = blocks.neg;
  std::vector<double> in_pos(P);
  std::vector<double> in_neg(P);
  {
    const SigmoidSources<T> src(pos_blocks, pos, {nullptr}, inv_tau);
    sigmoid_sums<SigmoidFn::kSigmoid>(src, pos, pos_blocks, inv_tau, in_pos.data());
  }
  {
    const SigmoidSources<T> src(neg_blocks, neg, {nullptr}, inv_tau);
    sigmoid_sums<SigmoidFn::kSigmoid>(src, pos, pos_blocks, inv_tau, in_neg.data());
  }
  for (int64_t k = 0; k < P; ++k) {
    rank_pos[k] = static_cast<T>(0.5 + in_pos[k]);
    rank_all[k] = static_cast<T>(0.5 + in_pos[k] + in_neg[k]);
  }
}

// The header's backward formulas, each sum over a whole side:
//   grad_pos[k] = inv_tau (sum_l s'_kl ab_l - ab_k sum_l s'_kl - a_k sum_j s'_kj)
//   grad_neg[j] = inv_tau sum_k s'_jk a_k
template <typename T>
void backward_expanded(const ClassBlocks& blocks, const T* pos, int64_t P, const T* neg,
                       int64_t N, T inv_tau_in, const T* coef_all, const T* coef_pos,
                       T* grad_pos, T* grad_neg) {
  const double inv_tau = inv_tau_in;
  const SortedBlocks& pos_blocks = blocks.pos;
  const SortedBlocks& neg_blocks = blocks.neg;
  std::vector<double> pos_terms(2 * P); // [k][ab, 1]
  std::vector<double> neg_terms(P);
  std::vector<double> column(N);
  {
    const SigmoidSources<T> src(pos_blocks, pos, {coef_pos, nullptr}, inv_tau);
    sigmoid_sums<SigmoidFn::kSigmoidGrad>(src, pos, pos_blocks, inv_tau,
                                          pos_terms.data());
  }
  {
    const SigmoidSources<T> src(neg_blocks, neg, {nullptr}, inv_tau);
    sigmoid_sums<SigmoidFn::kSigmoidGrad>(src, pos, pos_blocks, inv_tau,
                                          neg_terms.data());
  }
  {
    const SigmoidSources<T> src(pos_blocks, pos, {coef_all}, inv_tau);
    sigmoid_sums<SigmoidFn::kSigmoidGrad>(src, neg, neg_blocks, inv_tau, column.data());
  }
  for (int64_t k = 0; k < P; ++k) {
    const double in_pos = pos_terms[2 * k] - double(coef_pos[k]) * pos_terms[2 * k + 1];
    grad_pos[k] = static_cast<T>(inv_tau * (in_pos - double(coef_all[k]) * neg_terms[k]));
  }
  for (int64_t j = 0; j < N; ++j) {
    grad_neg[j] = static_cast<T>(inv_tau * column[j]);
  }
}

// rank_pos[k] = 1 + (positive rows [pp_lo, k)) + (positive columns
// (k, pp_hi)) + tails (the l == k term, sigmoid(0) = 0.5, is the header's
// 0.5 offset: 0.5 + 0.5 = 1); rank_all[k] adds the negatives' window and
// tails.
template <typename T>
void forward(const T* pos, int64_t P, const T* neg, int64_t N, T inv_tau, T* rank_all,
             T* rank_pos) {
  const T reach = reach_of(inv_tau);
  const Windows w(pos, P, neg, N, reach, /*negative_columns=*/false);
  if (const auto blocks = expansion_blocks(w, pos, P, neg, N, inv_tau)) {
    forward_expanded(*blocks, pos, P, neg, N, inv_tau, rank_all, rank_pos);
    return;
  }
  const Tails pos_tails = tails<T>(steps(pos, P, inv_tau), nullptr, P);
  const Tails neg_tails = tails<T>(steps(neg, N, inv_tau), nullptr, N);
  const SortedSide<T> pos_side(pos, P, inv_tau, w.positive_pairs());
  const SortedSide<T> neg_side(neg, N, inv_tau, w.negative_pairs());
  const auto bounds = partition(w, P);
  std::vector<Columns<T>> columns(bounds.size() - 1);
  std::vector<double> row_pos(P);
  std::vector<double> row_neg(P);
  for_each_task(bounds, [&](int64_t t, int64_t begin, int64_t end) {
    auto& col = columns[t];
    if (begin == end) {
      return;
    }
    col.reset(w.pp_lo[begin], end - 1);
    for (int64_t k = begin; k < end; ++k) {
      if ((k - begin) % Columns<T>::kAnchorsPerFlush == 0) {
        col.flush();
      }
      const int64_t lo = w.pp_lo[k];
      row_pos[k] =
          sweep(pos_side, lo, k, pos[k], inv_tau, col.window(lo, k), SigmoidPair{});
      row_neg[k] = sweep(neg_side, w.pn_lo[k], w.pn_hi[k], pos[k], inv_tau,
                         static_cast<T*>(nullptr), SigmoidRow{});
    }
    col.flush();
  });
  at::parallel_for(0, P, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const T u = pos[k];
      const int64_t pp_hi = w.pp_hi[k];
      const auto pp = tail_sums(pos_tails, w.pp_lo[k], pp_hi,
                                tail_factors(pos, P, w.pp_lo[k], pp_hi, u, inv_tau));
      const auto pn = tail_sums(neg_tails, w.pn_lo[k], w.pn_hi[k],
                                tail_factors(neg, N, w.pn_lo[k], w.pn_hi[k], u, inv_tau));
      const double in_pos = row_pos[k] + column_sum(columns, k) + double(P - pp_hi) +
                            pp.sigmoid_above + pp.sigmoid_below;
      const double in_neg =
          row_neg[k] + double(N - w.pn_hi[k]) + pn.sigmoid_above + pn.sigmoid_below;
      rank_pos[k] = static_cast<T>(1.0 + in_pos);
      rank_all[k] = static_cast<T>(1.0 + in_pos + in_neg);
    }
  });
}

// One sweep over the anchors evaluates every pair once: positive pairs
// symmetrically (w = s'_kl (ab_l - ab_k) to k, -w to l) and negative pairs
// both ways (s'_kj to k's row, a_k s'_kj to j's column). Each positive's
// terms are combined in double before the single rounding to T.
template <typename T>
void backward(const T* pos, int64_t P, const T* neg, int64_t N, T inv_tau,
              const T* coef_all, const T* coef_pos, T* grad_pos, T* grad_neg) {
  const T reach = reach_of(inv_tau);
  Windows w(pos, P, neg, N, reach, /*negative_columns=*/false);
  if (const auto blocks = expansion_blocks(w, pos, P, neg, N, inv_tau)) {
    backward_expanded(*blocks, pos, P, neg, N, inv_tau, coef_all, coef_pos, grad_pos,
                      grad_neg);
    return;
  }
  w.add_negative_columns(P, N);
  const auto pos_steps = steps(pos, P, inv_tau);
  const Tails pos_tails = tails<T>(pos_steps, nullptr, P);
  const Tails pos_tails_ab = tails(pos_steps, coef_pos, P);
  const Tails pos_tails_a = tails(pos_steps, coef_all, P);
  const Tails neg_tails = tails<T>(steps(neg, N, inv_tau), nullptr, N);
  const SortedSide<T> pos_side(pos, P, inv_tau, w.positive_pairs());
  const SortedSide<T> neg_side(neg, N, inv_tau, w.negative_pairs());
  const auto bounds = partition(w, P);
  std::vector<Columns<T>> pos_columns(bounds.size() - 1);
  std::vector<Columns<T>> neg_columns(bounds.size() - 1);
  std::vector<double> row_pos(P);
  std::vector<double> row_neg(P);
  for_each_task(bounds, [&](int64_t t, int64_t begin, int64_t end) {
    auto& pcol = pos_columns[t];
    auto& ncol = neg_columns[t];
    if (begin == end) {
      return;
    }
    pcol.reset(w.pp_lo[begin], end - 1);
    ncol.reset(w.pn_lo[begin], w.pn_hi[end - 1]);
    for (int64_t k = begin; k < end; ++k) {
      if ((k - begin) % Columns<T>::kAnchorsPerFlush == 0) {
        pcol.flush();
        ncol.flush();
      }
      const int64_t lo = w.pp_lo[k];
      const int64_t nlo = w.pn_lo[k];
      const int64_t nhi = w.pn_hi[k];
      row_pos[k] = sweep(pos_side, lo, k, pos[k], inv_tau, pcol.window(lo, k),
                         SigmoidGradPair<T>{coef_pos, coef_pos[k]});
      row_neg[k] = sweep(neg_side, nlo, nhi, pos[k], inv_tau, ncol.window(nlo, nhi),
                         SigmoidGradCross<T>{coef_all[k]});
    }
    pcol.flush();
    ncol.flush();
  });
  at::parallel_for(0, P, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const T u = pos[k];
      const int64_t lo = w.pp_lo[k];
      const int64_t hi = w.pp_hi[k];
      const auto f = tail_factors(pos, P, lo, hi, u, inv_tau);
      const double in_pos = row_pos[k] + column_sum(pos_columns, k) +
                            tail_sums(pos_tails_ab, lo, hi, f).grad -
                            double(coef_pos[k]) * tail_sums(pos_tails, lo, hi, f).grad;
      const auto pn = tail_sums(neg_tails, w.pn_lo[k], w.pn_hi[k],
                                tail_factors(neg, N, w.pn_lo[k], w.pn_hi[k], u, inv_tau));
      const double in_neg = row_neg[k] + pn.grad;
      grad_pos[k] =
          static_cast<T>(double(inv_tau) * (in_pos - double(coef_all[k]) * in_neg));
    }
  });
  at::parallel_for(0, N, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const int64_t lo = w.np_lo[j];
      const int64_t hi = w.np_hi[j];
      const auto f = tail_factors(pos, P, lo, hi, neg[j], inv_tau);
      const double total =
          column_sum(neg_columns, j) + tail_sums(pos_tails_a, lo, hi, f).grad;
      grad_neg[j] = static_cast<T>(double(inv_tau) * total);
    }
  });
}

} // namespace
} // namespace CPU_CAPABILITY

const SmoothAPKernels& PROXYLOSS_PER_CAPABILITY(smooth_ap_kernels_)() {
  static const SmoothAPKernels table{
      &CPU_CAPABILITY::forward<float>,
      &CPU_CAPABILITY::forward<double>,
      &CPU_CAPABILITY::backward<float>,
      &CPU_CAPABILITY::backward<double>,
  };
  return table;
}

} // namespace kernels
} // namespace proxyloss
