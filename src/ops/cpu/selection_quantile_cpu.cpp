// CPU implementation of proxyloss::selection_quantile: per column one
// nth_element and, when interpolating, a min over the part above it. O(M)
// per column, no host synchronisation beyond reading the values.
#include "ops/cpu/kernel_selection.h"
#include "ops/selection_quantile.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace proxyloss {
namespace ops_impl {
namespace {

template <typename T>
void column_quantiles(const T* values, int64_t M, int64_t C, double q,
                      QuantileInterpolation mode, T* out) {
  const auto position = quantile_position<T>(M, q, mode);
  at::parallel_for(0, C, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> column(M);
    for (int64_t c = begin; c < end; ++c) {
      bool has_nan = false;
      for (int64_t m = 0; m < M; ++m) {
        column[m] = values[m * C + c];
        has_nan = has_nan || std::isnan(column[m]);
      }
      if (has_nan) {
        out[c] = std::numeric_limits<T>::quiet_NaN();
        continue;
      }
      std::nth_element(column.begin(), column.begin() + position.below, column.end());
      const T below = column[position.below];
      if (!position.interpolate) {
        out[c] = below;
        continue;
      }
      const T above =
          position.distinct_upper
              ? *std::min_element(column.begin() + position.below + 1, column.end())
              : below;
      out[c] = torch_lerp(below, above, static_cast<T>(position.weight));
    }
  });
}

// Puts the order statistic of every rank in `ranks` (sorted, distinct,
// relative to `first`) at its place in [first, last): nth_element at the
// middle rank, then the ranks below and above it in their halves. O(n log k)
// for k ranks.
template <typename T>
void select_ranks(T* first, T* last, const int64_t* ranks_begin, const int64_t* ranks_end,
                  int64_t offset) {
  if (ranks_begin == ranks_end) {
    return;
  }
  const int64_t* middle = ranks_begin + (ranks_end - ranks_begin) / 2;
  T* nth = first + (*middle - offset);
  std::nth_element(first, nth, last);
  select_ranks(first, nth, ranks_begin, middle, offset);
  select_ranks(nth + 1, last, middle + 1, ranks_end, *middle + 1);
}

template <typename T>
void vector_quantiles(const T* values, int64_t n, const std::vector<double>& levels,
                      QuantileInterpolation mode, T* out) {
  std::vector<T> sorted(values, values + n);
  if (std::any_of(sorted.begin(), sorted.end(), [](T v) { return std::isnan(v); })) {
    std::fill(out, out + levels.size(), std::numeric_limits<T>::quiet_NaN());
    return;
  }
  std::vector<QuantilePosition> positions;
  std::vector<int64_t> ranks;
  for (const double q : levels) {
    positions.push_back(quantile_position<T>(n, q, mode));
    ranks.push_back(positions.back().below);
    if (positions.back().distinct_upper) {
      ranks.push_back(positions.back().below + 1);
    }
  }
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  select_ranks(sorted.data(), sorted.data() + n, ranks.data(),
               ranks.data() + ranks.size(), 0);
  for (size_t k = 0; k < positions.size(); ++k) {
    const auto& position = positions[k];
    const T below = sorted[position.below];
    if (!position.interpolate) {
      out[k] = below;
      continue;
    }
    const T above = position.distinct_upper ? sorted[position.below + 1] : below;
    out[k] = torch_lerp(below, above, static_cast<T>(position.weight));
  }
}

} // namespace

at::Tensor selection_quantiles_cpu(const at::Tensor& values_in, const at::Tensor& levels,
                                   c10::string_view interpolation) {
  if (detail::generic_kernels_forced()) {
    return selection_quantiles_generic(values_in, levels, interpolation);
  }
  check_selection_quantiles_inputs(values_in, levels);
  const auto mode =
      parse_interpolation(interpolation, "proxyloss::selection_quantiles: interpolation");
  const auto values = values_in.detach().contiguous();
  const auto host_levels = levels_on_host(levels);
  auto out = at::empty({levels.size(0)}, values.options());
  if (values.size(0) == 0) {
    return out.fill_(std::numeric_limits<double>::quiet_NaN());
  }
  AT_DISPATCH_FLOATING_TYPES(values.scalar_type(), "selection_quantiles_cpu", [&] {
    vector_quantiles(values.data_ptr<scalar_t>(), values.size(0), host_levels, mode,
                     out.data_ptr<scalar_t>());
  });
  return out;
}

at::Tensor selection_quantile_cpu(const at::Tensor& values_in, double q,
                                  c10::string_view interpolation) {
  if (detail::generic_kernels_forced()) {
    return selection_quantile_generic(values_in, q, interpolation);
  }
  check_selection_quantile_inputs(values_in, q);
  if (values_in.size(0) == 0) {
    return quantile_of_nothing(values_in);
  }
  const auto mode =
      parse_interpolation(interpolation, "proxyloss::selection_quantile: interpolation");
  const bool column = values_in.dim() == 1;
  const auto values = (column ? values_in.unsqueeze(1) : values_in).detach().contiguous();
  const int64_t M = values.size(0);
  const int64_t C = values.size(1);
  auto out = at::empty({C}, values.options());
  AT_DISPATCH_FLOATING_TYPES(values.scalar_type(), "selection_quantile_cpu", [&] {
    column_quantiles(values.data_ptr<scalar_t>(), M, C, q, mode,
                     out.data_ptr<scalar_t>());
  });
  return column ? out.squeeze(0) : out;
}

} // namespace ops_impl
} // namespace proxyloss

TORCH_LIBRARY_IMPL(proxyloss, CPU, m) {
  m.impl("selection_quantile", &proxyloss::ops_impl::selection_quantile_cpu);
  m.impl("selection_quantiles", &proxyloss::ops_impl::selection_quantiles_cpu);
}
