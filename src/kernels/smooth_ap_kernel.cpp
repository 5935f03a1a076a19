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

template <typename Term, typename T>
double sum_terms(const T* v, int64_t n, T anchor, T inv_tau) {
  return accumulate<Term, false>(v, static_cast<const T*>(nullptr), n, anchor, inv_tau)
      .first;
}

template <typename T>
void forward(const T* v, int64_t P, int64_t M, T inv_tau, T* rank_all, T* rank_pos) {
  at::parallel_for(0, P, grain_for(M), [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const double pos = sum_terms<Sigmoid>(v, P, v[k], inv_tau);
      const double neg = sum_terms<Sigmoid>(v + P, M - P, v[k], inv_tau);
      rank_pos[k] = static_cast<T>(0.5 + pos);
      rank_all[k] = static_cast<T>(0.5 + pos + neg);
    }
  });
}

// Two passes, each parallel over the rows it writes (no shared accumulators,
// deterministic for a given input):
//  - negatives j >= P receive only column terms:
//      grad[j] = inv_tau * sum_k s'_kj a_k
//  - positives k < P receive their column and row terms, which share the
//    s'_kl of the positive block, so one sweep over l < P gives both:
//      grad[k] = inv_tau * ( sum_{l<P} s'_kl (coef_pos[l] - coef_pos[k])
//                            - a_k sum_{l>=P} s'_kl )
//    (s' is even, so s'_lk = s'_kl.) Both parts are summed in double before
//    the single rounding to T, so their cancellation loses nothing.
template <typename T>
void backward(const T* v, int64_t P, int64_t M, T inv_tau, const T* coef_all,
              const T* coef_pos, T* grad) {
  at::parallel_for(P, M, grain_for(P), [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const double col =
          accumulate<SigmoidGrad, true>(v, coef_all, P, v[j], inv_tau).second;
      grad[j] = static_cast<T>(double(inv_tau) * col);
    }
  });
  at::parallel_for(0, P, grain_for(M), [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const auto pos = accumulate<SigmoidGrad, true>(v, coef_pos, P, v[k], inv_tau);
      const double neg = sum_terms<SigmoidGrad>(v + P, M - P, v[k], inv_tau);
      const double total =
          pos.second - double(coef_pos[k]) * pos.first - double(coef_all[k]) * neg;
      grad[k] = static_cast<T>(double(inv_tau) * total);
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
