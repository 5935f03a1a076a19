// Exact sums of sigmoid and sigmoid' over sorted scores at a cost that does
// not grow with how crowded the scores are: the crowded-window path of the
// Smooth-AP kernels (smooth_ap_kernel.h).
//
// Problem. Sources x[0, n) ascending with weight vectors w^v (v < nw), queries
// u[0, m) ascending, d_ij = (x_j - u_i) / tau:
//   out[i nw + v] = sum_j w^v_j f(d_ij),   f = sigmoid or sigmoid'.
// Both sides are cut into blocks of consecutive entries whose spread
// (last - first) / tau is at most s = kSpread. For a query block Q (centre
// c_Q, offsets e_i = (u_i - c_Q) / tau, |e_i| <= s / 2) a source block S
// (centre c_S, offsets g_j = (x_j - c_S) / tau) is
//   near  when some pair has |d| < D (D = kNear), else
//   far   (then every pair of Q x S has |d| >= D, on one side).
//
// Far field: the alternating series, for d <= -D,
//   sigmoid(d)  = sum_{r=1}^{R} (-1)^(r+1) e^{r d}     + E,  |E| <= e^{(R+1) d}
//   sigmoid'(d) = sum_{r=1}^{R} (-1)^(r+1) r e^{r d}   + E', |E'| <= (R+1) e^{(R+1) d}
// (alternating with decreasing terms since e^d <= e^-D < 1/2), and
// sigmoid(d) = 1 - sigmoid(-d), sigmoid' even, for d >= D. Each term is
// separable, e^{r d_ij} = e^{r (x_j - b)/tau} e^{r (b - u_i)/tau}, so the far
// blocks below Q contribute  sum_r (-1)^(r+1) c_r low_r F_i^r  with low_r the
// prefix sum over the blocks below of w_j e^{r (x_j - b)/tau} re-centred at
// b = the top of the last far block (every factor <= 1: no overflow; a far
// gap underflows to 0, as its terms do) and F_i = e^{(b - u_i)/tau} <= e^-D;
// above likewise with suffix sums re-centred at the bottom of the first far
// block. Relative error of a far pair's term: sigmoid(d) >= e^d / (1 + e^-D)
// and sigmoid'(d) >= e^d / (1 + e^-D)^2 for d <= -D, so
//   |E| / sigmoid(d)  <= (1 + e^-D) e^{-R D},
//   |E'| / sigmoid'(d) <= (R + 1) (1 + e^-D)^2 e^{-R D};
// float: D = 2, R = 10: 2.9e-8 < 2^-24 = 6.0e-8; double: D = 3, R = 14:
// 9.5e-18 < 2^-53 = 1.1e-16. Per query O(R), whatever the far blocks hold.
//
// Near field: Taylor expansion about the block centres. With
// d_ij = d0 + t, d0 = (c_S - c_Q)/tau, t = g_j - e_i, |t| <= s,
//   f(d0 + t) = sum_{k<n} a_k(d0) t^k + E,  a_k = f^(k)(d0) / k!,
// and t^k = sum_{p+l=k} C(k, l) g^p (-e)^l, so a source block's moments
// mu_p = sum_j w_j g_j^p give the query block's local coefficients
//   L_l = sum_p C(p + l, l) a_{p+l}(d0) mu_p
//       = (1 / l!) sum_p f^(p+l)(d0) (mu_p / p!)   (O(n^2) per block pair)
// and each query sum_l L_l (-e_i)^l (O(n) per query).
// Bound (Cauchy on the circle |z - d0| = rho, rho < pi: sigmoid's poles are
// at +-i pi (2k + 1)). For |Im z| <= rho and w = e^{-z}, |arg w| <= rho, so
//   |1 + w|^2 = 1 + |w|^2 + 2 |w| cos(arg w) >= (1 + cos rho)(1 + |w|^2)
// (the difference is -cos(rho) (1 - |w|)^2 >= 0 for rho >= pi/2), hence
//   |sigmoid(z)|  <= min(1, e^{Re z}) / sqrt(1 + cos rho),
//   |sigmoid'(z)| = |sigmoid(z) sigmoid(-z)| <= min(1, e^{-|Re z|}) / (1 + cos rho)
// and on the circle |a_k| <= A rho^-k with A = min(1, e^{d0 + rho}) /
// sqrt(1 + cos rho) for sigmoid, min(1, e^{-|d0| + rho}) / (1 + cos rho)
// for sigmoid'. So per pair (unit weight), with q = s / rho,
//   |E| <= A q^n / (1 - q).
// The pair's own value is at least e^{min(d0, 0) - s} / 2 (sigmoid(y) >=
// e^{min(y, 0)} / 2) resp. e^{-|d0| - s} / 4 (sigmoid'(y) >= e^{-|y|} / 4),
// so the relative error is at most
//   sigmoid:  2 e^{rho + s} q^n / ((1 - q) sqrt(1 + cos rho)),
//   sigmoid': 4 e^{rho + s} q^n / ((1 - q) (1 + cos rho)),
// whatever d0. With s = 1/2, rho = 5/2 (q = 1/5): float n = 15: 1.7e-8 and
// 3.7e-9 < 2^-24 = 6.0e-8; double n = 27: 6.8e-17 and 1.5e-17 < 2^-53 =
// 1.1e-16 (a test puts pairs at |t| = s). The
// coefficients a_k(d0) of sigmoid come from sigmoid' = sigmoid (1 - sigmoid):
//   (k + 1) a_{k+1} = a_k c_0 - sum_{p=0}^{k-1} a_p a_{k-p},
//   a_0 = sigmoid(d0), c_0 = 1 - a_0 = sigmoid(-d0),
// both a_0 and c_0 from e^{-|d0|} without cancellation; those of sigmoid'
// are (k + 1) a_{k+1}. |d0| <= D + s in the near field, so every
// coefficient is O(1) there, and the recurrence (in double) loses nothing
// that matters at the truncation's level.
//
// Where a block pair holds few pairs (|Q| |S| < kMinExpansionPairs) its pairs
// are evaluated directly instead, in double; consecutive such source blocks
// form one run per query.
//
// Rounding. Every step is in double: the far series alternates, but the sum
// of its terms' magnitudes is at most (1 + e^-D) / (1 - e^-D) < 1.32 times
// its value, and the near field's coefficients are O(1) (above), so for
// float the rounding adds ~1e-15 relative to the truncation's 2^-24; for
// double the result is as exact as a sum in double (as the windows' are).
// Memory: a double copy of the sources and their weights, and per block and
// weight vector n + 2 R + 1 doubles: O(M).
//
// All arithmetic is in double; centres are (first + last) / 2 and offsets
// x - c, exact in double for float scores (so huge offsets such as 1e6 with
// small tau lose nothing beyond one rounding of (x - c) / tau); ties fall in
// one block. Queries are independent of each other: results do not depend on
// the thread count.
//
// Compiled per CPU capability (in its namespace) with the kernel source that
// includes it, smooth_ap_kernel.cpp.
#pragma once

#include "ops/cpu/kernels/per_capability.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace proxyloss {
namespace kernels {
namespace CPU_CAPABILITY {
namespace {

// The function summed.
enum class SigmoidFn { kSigmoid, kSigmoidGrad };

// Parameters of the expansions per score type (bounds in the header comment).
template <typename T>
struct ExpansionOrder;
template <>
struct ExpansionOrder<float> {
  static constexpr double kNear = 2.0;    // D
  static constexpr int kFarTerms = 10;    // R
  static constexpr int kTaylorTerms = 15; // n
};
template <>
struct ExpansionOrder<double> {
  static constexpr double kNear = 3.0;
  static constexpr int kFarTerms = 14;
  static constexpr int kTaylorTerms = 27;
};
constexpr int kMaxTaylorTerms = 27;
constexpr double kSpread = 0.5; // s: a block's largest (last - first) / tau
// Block pairs with fewer pairs than this are evaluated pair by pair: an
// expansion costs about n^2 operations.
constexpr int64_t kMinExpansionPairs = 64;
// Query blocks per parallel task, at least.
constexpr int64_t kQueryBlocksPerTask = 8;
// Fewer entries than this are prepared, and fewer queries evaluated, on the
// calling thread: waking the other threads would cost more.
constexpr int64_t kMinParallelEntries = 2048;

// Grain of at::parallel_for over `count` units holding `entries` entries:
// all of them (no parallelism) for small work.
inline int64_t grain_for(int64_t count, int64_t entries, int64_t grain) {
  return entries < kMinParallelEntries ? std::max<int64_t>(count, 1) : grain;
}

using Vec = at::vec::Vectorized<double>;
constexpr int64_t kLanes = Vec::size();

// Lanes [0, count) set.
inline Vec lane_mask(int64_t count) {
  double bits[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) {
    bits[l] = l < count ? 1.0 : 0.0;
  }
  return Vec::loadu(bits) == Vec(1.0);
}

// Sum of the lanes, in lane order.
inline double lane_sum(const Vec& v) {
  double lanes[kLanes];
  v.store(lanes);
  double sum = 0;
  for (int64_t l = 0; l < kLanes; ++l) {
    sum += lanes[l];
  }
  return sum;
}

// k! and 1 / k!, k <= kMaxTaylorTerms.
struct Factorials {
  double value[kMaxTaylorTerms + 1];
  double inverse[kMaxTaylorTerms + 1];
  Factorials() {
    value[0] = 1;
    for (int k = 1; k <= kMaxTaylorTerms; ++k) {
      value[k] = value[k - 1] * k;
    }
    for (int k = 0; k <= kMaxTaylorTerms; ++k) {
      inverse[k] = 1.0 / value[k];
    }
  }
};
inline const Factorials& factorials() {
  static const Factorials table;
  return table;
}

// Blocks of an ascending side: block b is [first[b], first[b + 1]), of
// spread (last - first) / tau <= kSpread (entries compared in double).
struct SortedBlocks {
  std::vector<int64_t> first;
  std::vector<double> bottom, top, centre;
  int64_t count() const {
    return int64_t(bottom.size());
  }
  int64_t size(int64_t b) const {
    return first[b + 1] - first[b];
  }

  template <typename T>
  SortedBlocks(const T* x, int64_t n, double inv_tau) {
    first.push_back(0);
    for (int64_t j = 0; j < n;) {
      const double lo = x[j];
      int64_t k = j + 1;
      while (k < n && (double(x[k]) - lo) * inv_tau <= kSpread) {
        ++k;
      }
      const double hi = x[k - 1];
      bottom.push_back(lo);
      top.push_back(hi);
      centre.push_back(0.5 * (lo + hi));
      first.push_back(k);
      j = k;
    }
  }
};

// Work of sigmoid_sums for these blocks (no arithmetic): block pairs taken
// by expansions and pairs evaluated directly. For the choice of algorithm.
struct ExpansionWork {
  int64_t expansions = 0;
  int64_t direct_pairs = 0;
};

inline ExpansionWork expansion_work(const SortedBlocks& sources,
                                    const SortedBlocks& queries, double inv_tau,
                                    double near) {
  ExpansionWork work;
  int64_t lo = 0;
  int64_t hi = 0;
  for (int64_t q = 0; q < queries.count(); ++q) {
    while (lo < sources.count() &&
           (sources.top[lo] - queries.bottom[q]) * inv_tau <= -near) {
      ++lo;
    }
    hi = std::max(hi, lo);
    while (hi < sources.count() &&
           (sources.bottom[hi] - queries.top[q]) * inv_tau < near) {
      ++hi;
    }
    for (int64_t b = lo; b < hi; ++b) {
      const int64_t pairs = queries.size(q) * sources.size(b);
      if (pairs < kMinExpansionPairs) {
        work.direct_pairs += pairs;
      } else {
        ++work.expansions;
      }
    }
  }
  return work;
}

// The source side prepared once: per block and weight vector the Taylor
// moments mu_p (p < n) and the far-field sums
//   low_r[b]  = sum_{j in blocks <= b} w_j e^{r (x_j - top_b) / tau}
//   high_r[b] = sum_{j in blocks >= b} w_j e^{r (bottom_b - x_j) / tau}
//   mass[b]   = sum_{j in blocks >= b} w_j
// (r = 1..R), built block by block with factors <= 1.
template <typename T>
struct SigmoidSources {
  static constexpr int kN = ExpansionOrder<T>::kTaylorTerms;
  static constexpr int kR = ExpansionOrder<T>::kFarTerms;
  const SortedBlocks& blocks;
  const T* x;
  int nw;
  std::vector<std::vector<double>> w; // [nw][n], 1 where no weights were given
  std::vector<double> xd;             // x in double
  std::vector<double> moments;        // [block][v][p]
  std::vector<double> low, high;      // [block][v][r - 1]
  std::vector<double> mass;           // [block + 1][v]

  SigmoidSources(const SortedBlocks& b, const T* values,
                 const std::vector<const T*>& weights, double inv_tau)
      : blocks(b), x(values), nw(int(weights.size())) {
    const int64_t nb = blocks.count();
    const int64_t n = blocks.first[nb];
    w.resize(nw);
    for (int v = 0; v < nw; ++v) {
      w[v].resize(n);
      for (int64_t j = 0; j < n; ++j) {
        w[v][j] = weights[v] ? double(weights[v][j]) : 1.0;
      }
    }
    moments.assign(nb * nw * kN, 0.0);
    low.assign(nb * nw * kR, 0.0);
    high.assign(nb * nw * kR, 0.0);
    mass.assign((nb + 1) * nw, 0.0);
    // Per block: moments, and the block's own far sums (re-centred at its
    // top and bottom: factors in [e^{-r s}, 1]), SIMD over the entries
    // (lanes summed in a fixed order at the end of the block).
    xd.resize(n);
    for (int64_t j = 0; j < n; ++j) {
      xd[j] = double(x[j]);
    }
    at::parallel_for(0, nb, grain_for(nb, n, 64), [&](int64_t begin, int64_t end) {
      std::vector<double> g;
      std::vector<double> to_top;
      for (int64_t bl = begin; bl < end; ++bl) {
        const int64_t j0 = blocks.first[bl];
        const int64_t len = blocks.first[bl + 1] - j0;
        g.resize(len);
        to_top.resize(len);
        for (int64_t j = 0; j < len; ++j) {
          g[j] = (xd[j0 + j] - blocks.centre[bl]) * inv_tau;
          to_top[j] = (xd[j0 + j] - blocks.top[bl]) * inv_tau;
        }
        at::vec::map([](const Vec& a) { return a.exp(); }, to_top.data(), to_top.data(),
                     len);
        // e^{(bottom - top) / tau} >= e^-s: the division below is safe.
        const Vec span(std::exp((blocks.bottom[bl] - blocks.top[bl]) * inv_tau));
        for (int v = 0; v < nw; ++v) {
          Vec mu[kN];
          Vec lo[kR];
          Vec hi[kR];
          for (int k = 0; k < kN; ++k) {
            mu[k] = Vec(0.0);
          }
          for (int r = 0; r < kR; ++r) {
            lo[r] = Vec(0.0);
            hi[r] = Vec(0.0);
          }
          for (int64_t j = 0; j < len; j += kLanes) {
            const int64_t lanes = std::min<int64_t>(kLanes, len - j);
            // Lanes past the block's end have weight 0 (and factors 1).
            const Vec wj = Vec::loadu(&w[v][j0 + j], lanes);
            const Vec gj = Vec::loadu(&g[j], lanes);
            const Vec up_factor =
                Vec::blendv(Vec(1.0), Vec::loadu(&to_top[j], lanes), lane_mask(lanes));
            const Vec down_factor = span / up_factor; // e^{(bottom - x_j) / tau}
            Vec power = wj;
            for (int k = 0; k < kN; ++k) {
              mu[k] = mu[k] + power;
              power = power * gj;
            }
            Vec up = wj * up_factor;
            Vec down = wj * down_factor;
            for (int r = 0; r < kR; ++r) {
              lo[r] = lo[r] + up;
              hi[r] = hi[r] + down;
              up = up * up_factor;
              down = down * down_factor;
            }
          }
          for (int k = 0; k < kN; ++k) {
            moments[(bl * nw + v) * kN + k] = lane_sum(mu[k]) * factorials().inverse[k];
          }
          for (int r = 0; r < kR; ++r) {
            low[(bl * nw + v) * kR + r] = lane_sum(lo[r]);
            high[(bl * nw + v) * kR + r] = lane_sum(hi[r]);
          }
        }
      }
    });
    // Prefix (low) and suffix (high, mass) over the blocks.
    for (int64_t bl = 1; bl < nb; ++bl) {
      const double step = std::exp((blocks.top[bl - 1] - blocks.top[bl]) * inv_tau);
      for (int v = 0; v < nw; ++v) {
        const double* prev = &low[((bl - 1) * nw + v) * kR];
        double* cur = &low[(bl * nw + v) * kR];
        double factor = step;
        for (int r = 0; r < kR; ++r) {
          cur[r] += prev[r] * factor;
          factor *= step;
        }
      }
    }
    for (int64_t bl = nb - 1; bl >= 0; --bl) {
      for (int v = 0; v < nw; ++v) {
        double own = 0;
        for (int64_t j = blocks.first[bl]; j < blocks.first[bl + 1]; ++j) {
          own += w[v][j];
        }
        mass[bl * nw + v] = mass[(bl + 1) * nw + v] + own;
      }
      if (bl + 1 < nb) {
        const double step =
            std::exp((blocks.bottom[bl] - blocks.bottom[bl + 1]) * inv_tau);
        for (int v = 0; v < nw; ++v) {
          const double* next = &high[((bl + 1) * nw + v) * kR];
          double* cur = &high[(bl * nw + v) * kR];
          double factor = step;
          for (int r = 0; r < kR; ++r) {
            cur[r] += next[r] * factor;
            factor *= step;
          }
        }
      }
    }
  }
};

// Taylor coefficients of f at d0, a[0, n) (see the header comment).
template <SigmoidFn F>
void taylor_coefficients(double d0, int n, double* a) {
  double s[kMaxTaylorTerms + 1];
  const double e = std::exp(-std::abs(d0));
  const double big = 1.0 / (1.0 + e);
  const double small = e / (1.0 + e);
  s[0] = d0 >= 0 ? big : small;
  const double c0 = d0 >= 0 ? small : big;
  const int needed = F == SigmoidFn::kSigmoid ? n - 1 : n;
  for (int k = 0; k < needed; ++k) {
    double sum = s[k] * c0;
    for (int p = 0; p < k; ++p) {
      sum -= s[p] * s[k - p];
    }
    s[k + 1] = sum / double(k + 1);
  }
  for (int k = 0; k < n; ++k) {
    a[k] = F == SigmoidFn::kSigmoid ? s[k] : double(k + 1) * s[k + 1];
  }
}

// sum_{j in [a, b)} w_j f((x_j - u) / tau) pair by pair, in double, kLanes
// pairs at a time (lanes past b have weight 0).
template <SigmoidFn F>
double direct_sum(const double* x, const double* w, int64_t a, int64_t b, double u,
                  double inv_tau) {
  Vec acc(0.0);
  for (int64_t j = a; j < b; j += kLanes) {
    const int64_t lanes = std::min<int64_t>(kLanes, b - j);
    const Vec d = (Vec::loadu(x + j, lanes) - Vec(u)) * Vec(inv_tau);
    const Vec e = d.abs().neg().exp();
    const Vec r = Vec(1.0) / (Vec(1.0) + e);
    Vec f;
    if constexpr (F == SigmoidFn::kSigmoid) {
      f = Vec::blendv(e * r, r, d >= Vec(0.0)); // d >= 0: 1 / (1 + e)
    } else {
      f = e * r * r;
    }
    acc = acc + Vec::loadu(w + j, lanes) * f;
  }
  return lane_sum(acc);
}

// out[i nw + v] for the queries u[0, m) with blocks `qblocks` (see the header
// comment). `out` is overwritten.
template <SigmoidFn F, typename T>
void sigmoid_sums(const SigmoidSources<T>& src, const T* u, const SortedBlocks& qblocks,
                  double inv_tau, double* out) {
  constexpr int kN = SigmoidSources<T>::kN;
  constexpr int kR = SigmoidSources<T>::kR;
  constexpr double kD = ExpansionOrder<T>::kNear;
  const SortedBlocks& sb = src.blocks;
  const int64_t nsb = sb.count();
  const int nw = src.nw;
  const Factorials& factorial = factorials();
  const int64_t nqb = qblocks.count();
  const int64_t tasks = (nqb + kQueryBlocksPerTask - 1) / kQueryBlocksPerTask;
  const int64_t m = qblocks.first[nqb];
  at::parallel_for(
      0, tasks, grain_for(tasks, m, 1), [&](int64_t task_begin, int64_t task_end) {
        std::vector<double> local(nw * kN);
        std::vector<int64_t> runs; // direct runs of sources [runs[2k], runs[2k + 1])
        for (int64_t qb = task_begin * kQueryBlocksPerTask;
             qb < std::min(nqb, task_end * kQueryBlocksPerTask); ++qb) {
          const double q_bottom = qblocks.bottom[qb];
          const double q_top = qblocks.top[qb];
          const double q_centre = qblocks.centre[qb];
          const int64_t q_size = qblocks.size(qb);
          // Near source blocks [near_lo, near_hi): not entirely below by D,
          // not entirely above by D.
          const int64_t near_lo =
              std::partition_point(
                  sb.top.begin(), sb.top.end(),
                  [&](double t) { return (t - q_bottom) * inv_tau <= -kD; }) -
              sb.top.begin();
          const int64_t near_hi =
              std::partition_point(sb.bottom.begin(), sb.bottom.end(),
                                   [&](double b) { return (b - q_top) * inv_tau < kD; }) -
              sb.bottom.begin();
          // Far-field factors of query i: e^{(top_below - u_i)/tau} =
          // below e^{-e_i} and e^{(u_i - bottom_above)/tau} = above / e^{-e_i}
          // (|e_i| <= s / 2: one exp per query).
          const double below =
              near_lo > 0 ? std::exp((sb.top[near_lo - 1] - q_centre) * inv_tau) : 0.0;
          const double above =
              near_hi < nsb ? std::exp((q_centre - sb.bottom[near_hi]) * inv_tau) : 0.0;
          std::fill(local.begin(), local.end(), 0.0);
          runs.clear();
          for (int64_t b = near_lo; b < std::max(near_lo, near_hi); ++b) {
            if (q_size * sb.size(b) < kMinExpansionPairs) {
              if (!runs.empty() && runs.back() == sb.first[b]) {
                runs.back() = sb.first[b + 1];
              } else {
                runs.push_back(sb.first[b]);
                runs.push_back(sb.first[b + 1]);
              }
              continue;
            }
            // Derivatives f^(k)(d0) = k! a_k.
            double a[kMaxTaylorTerms];
            taylor_coefficients<F>((sb.centre[b] - q_centre) * inv_tau, kN, a);
            for (int k = 0; k < kN; ++k) {
              a[k] *= factorial.value[k];
            }
            for (int v = 0; v < nw; ++v) {
              const double* mu = &src.moments[(b * nw + v) * kN];
              double* L = &local[v * kN];
              for (int l = 0; l < kN; ++l) {
                double sum = 0;
                for (int p = 0; p + l < kN; ++p) {
                  sum += a[p + l] * mu[p];
                }
                L[l] += sum;
              }
            }
          }
          // L_l = (1 / l!) sum_p f^(p+l)(d0) mu_p / p!  (moments are stored / p!).
          for (int v = 0; v < nw; ++v) {
            for (int l = 0; l < kN; ++l) {
              local[v * kN + l] *= factorial.inverse[l];
            }
          }
          // The queries, kLanes at a time (padding lanes sit at the centre).
          const int64_t i_end = qblocks.first[qb + 1];
          for (int64_t i = qblocks.first[qb]; i < i_end; i += kLanes) {
            const int64_t lanes = std::min<int64_t>(kLanes, i_end - i);
            double ul[kLanes];
            for (int64_t l = 0; l < kLanes; ++l) {
              ul[l] = l < lanes ? double(u[i + l]) : q_centre;
            }
            const Vec minus_e = (Vec(q_centre) - Vec::loadu(ul)) * Vec(inv_tau);
            const Vec offset = minus_e.exp();
            const Vec below_factor = Vec(below) * offset;
            const Vec above_factor = Vec(above) / offset;
            for (int v = 0; v < nw; ++v) {
              // Local expansion (Horner in -e).
              const double* L = &local[v * kN];
              Vec value(L[kN - 1]);
              for (int l = kN - 2; l >= 0; --l) {
                value = value * minus_e + Vec(L[l]);
              }
              // Far below: sum_r (-1)^(r+1) c_r low_r F^r; above: the mirror
              // (sigmoid: mass minus the series).
              Vec series_below(0.0);
              Vec series_above(0.0);
              const double* lo =
                  near_lo > 0 ? &src.low[((near_lo - 1) * nw + v) * kR] : nullptr;
              const double* hi =
                  near_hi < nsb ? &src.high[(near_hi * nw + v) * kR] : nullptr;
              Vec power_below = below_factor;
              Vec power_above = above_factor;
              for (int r = 0; r < kR; ++r) {
                const double c = (r % 2 == 0 ? 1.0 : -1.0) *
                                 (F == SigmoidFn::kSigmoid ? 1.0 : double(r + 1));
                if (lo != nullptr) {
                  series_below = series_below + Vec(c * lo[r]) * power_below;
                  power_below = power_below * below_factor;
                }
                if (hi != nullptr) {
                  series_above = series_above + Vec(c * hi[r]) * power_above;
                  power_above = power_above * above_factor;
                }
              }
              if constexpr (F == SigmoidFn::kSigmoid) {
                value = value + series_below +
                        (Vec(src.mass[near_hi * nw + v]) - series_above);
              } else {
                value = value + series_below + series_above;
              }
              double values[kLanes];
              value.store(values);
              for (int64_t l = 0; l < lanes; ++l) {
                double direct = 0;
                for (size_t k = 0; k < runs.size(); k += 2) {
                  direct += direct_sum<F>(src.xd.data(), src.w[v].data(), runs[k],
                                          runs[k + 1], ul[l], inv_tau);
                }
                out[(i + l) * nw + v] = values[l] + direct;
              }
            }
          }
        }
      });
}

} // namespace
} // namespace CPU_CAPABILITY
} // namespace kernels
} // namespace proxyloss
