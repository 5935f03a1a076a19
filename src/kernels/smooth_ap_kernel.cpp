// Streaming Smooth-AP kernels (see smooth_ap_kernel.h for the contract).
//
// Compiled once per CPU capability: CMake defines CPU_CAPABILITY (DEFAULT or
// AVX2, plus CPU_CAPABILITY_AVX2 and -mavx2 -mfma for the latter), which
// selects at::vec's implementation and names the namespace below, so the two
// copies never collide.
#include "kernels/smooth_ap_kernel.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#ifndef CPU_CAPABILITY
#error "CPU_CAPABILITY must be defined (DEFAULT or AVX2) by the build"
#endif

namespace proxyloss {
namespace kernels {
namespace CPU_CAPABILITY {
namespace {

using at::vec::Vectorized;

// Smallest number of (anchor, element) pairs worth a parallel task.
constexpr int64_t kMinPairsPerTask = 1 << 15;

int64_t grain_for(int64_t inner) {
  return std::max<int64_t>(1, kMinPairsPerTask / std::max<int64_t>(inner, 1));
}

// The logistic terms of x, written with e = exp(-|x|) in (0, 1] so nothing
// overflows and both keep full relative precision in the tails:
//   sigmoid(x)  = x >= 0 ? 1 / (1 + e) : e / (1 + e)
//   sigmoid'(x) = sigmoid(x) * (1 - sigmoid(x)) = e / (1 + e)^2
// A NaN x gives NaN (every comparison with it is false, e is NaN).
struct Sigmoid {
  template <typename T>
  static Vectorized<T> eval(const Vectorized<T>& x) {
    const Vectorized<T> one(T(1));
    const Vectorized<T> e = x.abs().neg().exp();
    const Vectorized<T> r = one / (one + e);
    return Vectorized<T>::blendv(e * r, r, x >= Vectorized<T>(T(0)));
  }
  template <typename T>
  static T eval(T x) {
    const T e = std::exp(-std::abs(x));
    const T r = T(1) / (T(1) + e);
    return x >= T(0) ? r : e * r;
  }
};

struct SigmoidGrad {
  template <typename T>
  static Vectorized<T> eval(const Vectorized<T>& x) {
    const Vectorized<T> one(T(1));
    const Vectorized<T> e = x.abs().neg().exp();
    const Vectorized<T> r = one / (one + e);
    return e * r * r;
  }
  template <typename T>
  static T eval(T x) {
    const T e = std::exp(-std::abs(x));
    const T r = T(1) / (T(1) + e);
    return e * r * r;
  }
};

// Sums over j in [0, n) of t_j = Term((v[j] - anchor) * inv_tau):
//   first  = sum_j t_j
//   second = sum_j t_j * w[j]          (only when kWeighted; else 0)
// SIMD lanes accumulate in T over blocks of kBlock elements; each block's
// lanes are then added in double. A float block sum of at most 64 terms of
// size <= 1 keeps ~1e-7 relative error, and the double totals do not grow
// it with n, so results match a double reference to ~1e-6 even at n = 1e6.
template <typename Term, bool kWeighted, typename T>
std::pair<double, double> accumulate(const T* v, const T* w, int64_t n, T anchor,
                                     T inv_tau) {
  using Vec = Vectorized<T>;
  constexpr int64_t kLanes = Vec::size();
  constexpr int64_t kBlock = 64 * kLanes;
  const Vec anchor_vec(anchor);
  const Vec scale_vec(inv_tau);
  double sum = 0;
  double weighted_sum = 0;
  T lanes[kLanes];
  int64_t j = 0;
  while (j + kLanes <= n) {
    const int64_t block_end = std::min(n, j + kBlock);
    Vec acc(T(0));
    Vec weighted_acc(T(0));
    for (; j + kLanes <= block_end; j += kLanes) {
      const Vec t = Term::eval((Vec::loadu(v + j) - anchor_vec) * scale_vec);
      acc = acc + t;
      if (kWeighted) {
        weighted_acc = weighted_acc + t * Vec::loadu(w + j);
      }
    }
    acc.store(lanes);
    for (int64_t l = 0; l < kLanes; ++l) {
      sum += lanes[l];
    }
    if (kWeighted) {
      weighted_acc.store(lanes);
      for (int64_t l = 0; l < kLanes; ++l) {
        weighted_sum += lanes[l];
      }
    }
  }
  for (; j < n; ++j) {
    const T t = Term::eval((v[j] - anchor) * inv_tau);
    sum += t;
    if (kWeighted) {
      weighted_sum += double(t) * double(w[j]);
    }
  }
  return {sum, weighted_sum};
}

// Half-width of the evaluated window in units of tau (see the header).
template <typename T>
constexpr double kWindow = 9.0;
template <>
constexpr double kWindow<double> = 19.0;

// Sums over the tails of an ascending array x with weights w (w = 1 when
// unweighted), for the orders r = 1, 2 of the tail forms, O(1) per anchor u
// after O(n) preparation:
//   below_r(lo, u) = sum_{j <  lo} w_j e^{r (x_j - u) / tau}
//                  = low_r[lo] e^{r (x_{lo-1} - u) / tau}
//   above_r(hi, u) = sum_{j >= hi} w_j e^{r (u - x_j) / tau}
//                  = high_r[hi] e^{r (u - x_hi) / tau}
// with low_r[k] = sum_{j<k} w_j e^{r (x_j - x_{k-1})/tau} and high_r[k] =
// sum_{j>=k} w_j e^{r (x_k - x_j)/tau}, built by recurrences whose factors
// step[k]^r, step[k] = e^{(x_{k-1} - x_k)/tau}, are <= 1: nothing overflows,
// and a far gap underflows to 0, as its terms do. Used for lo, hi in the
// tails only (x_{lo-1} <= u <= x_hi), which the window guarantees.
struct Tails {
  std::vector<double> low[2];
  std::vector<double> high[2];
};

template <typename T>
std::vector<double> steps(const T* x, int64_t n, T inv_tau) {
  std::vector<double> step(std::max<int64_t>(n, 1), 0.0);
  for (int64_t k = 1; k < n; ++k) {
    step[k] = std::exp((double(x[k - 1]) - double(x[k])) * double(inv_tau));
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

// (below_1, below_2) and (above_1, above_2) at an anchor.
template <typename T>
std::pair<double, double> below(const Tails& t, const T* x, int64_t lo, T u, T inv_tau) {
  if (lo == 0) {
    return {0.0, 0.0};
  }
  const double e = std::exp((double(x[lo - 1]) - double(u)) * double(inv_tau));
  return {t.low[0][lo] * e, t.low[1][lo] * e * e};
}

template <typename T>
std::pair<double, double> above(const Tails& t, const T* x, int64_t n, int64_t hi, T u,
                                T inv_tau) {
  if (hi == n) {
    return {0.0, 0.0};
  }
  const double e = std::exp((double(u) - double(x[hi])) * double(inv_tau));
  return {t.high[0][hi] * e, t.high[1][hi] * e * e};
}

// The window [lo, hi) of an ascending array: the entries within K tau of u.
template <typename T>
std::pair<int64_t, int64_t> window(const T* x, int64_t n, T u, T reach) {
  const int64_t lo = std::lower_bound(x, x + n, u - reach) - x;
  const int64_t hi = std::upper_bound(x + lo, x + n, u + reach) - x;
  return {lo, hi};
}

// One sorted side of the class (positives or negatives) with its tails.
template <typename T>
struct Side {
  const T* x;
  int64_t n;
  std::vector<double> step;
  Tails plain;
};

template <typename T>
Side<T> make_side(const T* x, int64_t n, T inv_tau) {
  Side<T> side{x, n, steps(x, n, inv_tau), {}};
  side.plain = tails<T>(side.step, nullptr, n);
  return side;
}

// sum_j sigmoid((x_j - u) / tau) over one side: window term by term, the
// tails by their two-term forms.
template <typename T>
double sigmoid_sum(const Side<T>& s, T u, T inv_tau, T reach) {
  const auto [lo, hi] = window(s.x, s.n, u, reach);
  const double inside = accumulate<Sigmoid, false>(
                            s.x + lo, static_cast<const T*>(nullptr), hi - lo, u, inv_tau)
                            .first;
  // sigmoid(d) = e^d - e^2d + ... below; 1 - e^-d + e^-2d - ... above.
  const auto low = below(s.plain, s.x, lo, u, inv_tau);
  const auto high = above(s.plain, s.x, s.n, hi, u, inv_tau);
  return inside + double(s.n - hi) - (high.first - high.second) +
         (low.first - low.second);
}

// (sum_j s'_j, sum_j s'_j w_j) over one side, s'_j = sigmoid'((x_j - u) / tau),
// tails by their two-term forms; `weighted` holds the tails of w (or nullptr).
template <typename T>
std::pair<double, double> sigmoid_grad_sums(const Side<T>& s, const T* w,
                                            const Tails* weighted, T u, T inv_tau,
                                            T reach) {
  const auto [lo, hi] = window(s.x, s.n, u, reach);
  std::pair<double, double> sums =
      w ? accumulate<SigmoidGrad, true>(s.x + lo, w + lo, hi - lo, u, inv_tau)
        : accumulate<SigmoidGrad, false>(s.x + lo, w, hi - lo, u, inv_tau);
  // sigmoid'(d) = e^-|d| - 2 e^-2|d| + ... on both sides.
  const auto tail = [&](const Tails& t) {
    const auto low = below(t, s.x, lo, u, inv_tau);
    const auto high = above(t, s.x, s.n, hi, u, inv_tau);
    return (low.first - 2 * low.second) + (high.first - 2 * high.second);
  };
  sums.first += tail(s.plain);
  if (weighted) {
    sums.second += tail(*weighted);
  }
  return sums;
}

template <typename T>
T reach_of(T inv_tau) {
  return static_cast<T>(kWindow<T> / double(inv_tau));
}

template <typename T>
void forward(const T* pos, int64_t P, const T* neg, int64_t N, T inv_tau, T* rank_all,
             T* rank_pos) {
  const T reach = reach_of(inv_tau);
  const auto positives = make_side(pos, P, inv_tau);
  const auto negatives = make_side(neg, N, inv_tau);
  at::parallel_for(0, P, grain_for(P + N), [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const double in_pos = sigmoid_sum(positives, pos[k], inv_tau, reach);
      const double in_neg = sigmoid_sum(negatives, pos[k], inv_tau, reach);
      rank_pos[k] = static_cast<T>(0.5 + in_pos);
      rank_all[k] = static_cast<T>(0.5 + in_pos + in_neg);
    }
  });
}

// Two passes, each parallel over the rows it writes (no shared accumulators,
// deterministic for a given input). Each positive's column and row terms
// share its sweep over the positives and are summed in double before the
// single rounding to T, so their cancellation loses nothing.
template <typename T>
void backward(const T* pos, int64_t P, const T* neg, int64_t N, T inv_tau,
              const T* coef_all, const T* coef_pos, T* grad_pos, T* grad_neg) {
  const T reach = reach_of(inv_tau);
  const auto positives = make_side(pos, P, inv_tau);
  const auto negatives = make_side(neg, N, inv_tau);
  const Tails tails_all = tails(positives.step, coef_all, P);
  const Tails tails_pos = tails(positives.step, coef_pos, P);
  at::parallel_for(0, N, grain_for(P), [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const auto col =
          sigmoid_grad_sums(positives, coef_all, &tails_all, neg[j], inv_tau, reach);
      grad_neg[j] = static_cast<T>(double(inv_tau) * col.second);
    }
  });
  at::parallel_for(0, P, grain_for(P + N), [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const auto in_pos =
          sigmoid_grad_sums(positives, coef_pos, &tails_pos, pos[k], inv_tau, reach);
      const double in_neg = sigmoid_grad_sums(negatives, static_cast<const T*>(nullptr),
                                              nullptr, pos[k], inv_tau, reach)
                                .first;
      const double total = in_pos.second - double(coef_pos[k]) * in_pos.first -
                           double(coef_all[k]) * in_neg;
      grad_pos[k] = static_cast<T>(double(inv_tau) * total);
    }
  });
}

} // namespace
} // namespace CPU_CAPABILITY

#define PROXYLOSS_CONCAT_INNER(a, b) a##b
#define PROXYLOSS_CONCAT(a, b) PROXYLOSS_CONCAT_INNER(a, b)

const SmoothAPKernels& PROXYLOSS_CONCAT(smooth_ap_kernels_, CPU_CAPABILITY)() {
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
