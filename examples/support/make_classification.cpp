#include "support/make_classification.h"

#include <torch/torch.h>

#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

namespace demo {
namespace {

// Uniform and normal draws from mt19937_64 with our own transforms: the
// standard library's distributions are implementation-defined, and the data
// must be the same everywhere for a given seed.
constexpr double kTwoPi = 6.283185307179586476925286766559;

class Random {
 public:
  explicit Random(uint64_t seed) : engine_(seed) {}

  // Uniform in [0, 1), 53 random bits.
  double uniform() {
    return static_cast<double>(engine_() >> 11) * 0x1.0p-53;
  }
  // Uniform integer in [0, n), n > 0.
  int64_t integer(int64_t n) {
    const auto k = static_cast<int64_t>(uniform() * static_cast<double>(n));
    return std::min(k, n - 1);
  }
  // Standard normal, Box-Muller (each pair of uniforms gives two values).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - uniform(); // in (0, 1]: log is finite
    const double u2 = uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double angle = kTwoPi * u2;
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }
  // Fisher-Yates shuffle.
  template <typename T>
  void shuffle(std::vector<T>& values) {
    for (auto i = static_cast<int64_t>(values.size()) - 1; i > 0; --i) {
      std::swap(values[static_cast<size_t>(i)],
                values[static_cast<size_t>(integer(i + 1))]);
    }
  }

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

void require(bool condition, const std::string& message) {
  if (!condition) {
    throw std::invalid_argument("make_classification: " + message);
  }
}

// Class shares summing to 1, from the options' weights.
std::vector<double> class_weights(const MakeClassificationOptions& o) {
  const auto classes = static_cast<size_t>(o.n_classes);
  if (o.weights.empty()) {
    return std::vector<double>(classes, 1.0 / static_cast<double>(o.n_classes));
  }
  require(o.weights.size() == classes || o.weights.size() + 1 == classes,
          "weights must hold n_classes or n_classes - 1 values");
  std::vector<double> weights = o.weights;
  if (weights.size() + 1 == classes) {
    weights.push_back(1.0 - std::accumulate(weights.begin(), weights.end(), 0.0));
  }
  for (const double w : weights) {
    require(w >= 0.0, "weights must be >= 0");
  }
  return weights;
}

// `count` distinct vertices of the {0, 1}^dims hypercube, by rejection.
std::vector<std::vector<int>> hypercube_vertices(int64_t count, int64_t dims,
                                                 Random& random) {
  std::set<std::vector<int>> seen;
  std::vector<std::vector<int>> vertices;
  while (static_cast<int64_t>(vertices.size()) < count) {
    std::vector<int> vertex(static_cast<size_t>(dims));
    for (auto& bit : vertex) {
      bit = random.uniform() < 0.5 ? 1 : 0;
    }
    if (seen.insert(vertex).second) {
      vertices.push_back(std::move(vertex));
    }
  }
  return vertices;
}

} // namespace

Dataset make_classification(const MakeClassificationOptions& o) {
  require(o.n_samples > 0, "n_samples must be > 0");
  require(o.n_classes >= 1 && o.n_clusters_per_class >= 1,
          "n_classes and n_clusters_per_class must be >= 1");
  require(o.n_informative >= 1 && o.n_redundant >= 0 && o.n_repeated >= 0,
          "n_informative must be >= 1, n_redundant and n_repeated >= 0");
  require(o.n_informative + o.n_redundant + o.n_repeated <= o.n_features,
          "n_informative + n_redundant + n_repeated must be <= n_features");
  const int64_t n_clusters = o.n_classes * o.n_clusters_per_class;
  require(
      std::log2(static_cast<double>(n_clusters)) <= static_cast<double>(o.n_informative),
      "n_classes * n_clusters_per_class must be <= 2^n_informative");
  require(o.flip_y >= 0.0 && o.flip_y <= 1.0, "flip_y must be in [0, 1]");
  const std::vector<double> weights = class_weights(o);

  Random random(o.seed);
  const int64_t n = o.n_samples;
  const int64_t f = o.n_features;
  const int64_t d = o.n_informative;
  std::vector<double> x(static_cast<size_t>(n * f), 0.0); // row-major [n, f]
  std::vector<int64_t> y(static_cast<size_t>(n), 0);
  const auto at = [&](int64_t row, int64_t col) -> double& {
    return x[static_cast<size_t>(row * f + col)];
  };

  // Rows per cluster: cluster k belongs to class k % n_classes and gets its
  // share of that class's rows; the rounding remainder goes round-robin.
  std::vector<int64_t> cluster_rows(static_cast<size_t>(n_clusters));
  int64_t assigned = 0;
  for (int64_t k = 0; k < n_clusters; ++k) {
    const double share = weights[static_cast<size_t>(k % o.n_classes)] /
                         static_cast<double>(o.n_clusters_per_class);
    cluster_rows[static_cast<size_t>(k)] =
        static_cast<int64_t>(static_cast<double>(n) * share);
    assigned += cluster_rows[static_cast<size_t>(k)];
  }
  require(assigned <= n, "weights must sum to at most 1");
  for (int64_t i = 0; i < n - assigned; ++i) {
    ++cluster_rows[static_cast<size_t>(i % n_clusters)];
  }

  // Centroids: distinct hypercube vertices scaled to +-class_sep.
  const auto vertices = hypercube_vertices(n_clusters, d, random);
  std::vector<std::vector<double>> centroids(static_cast<size_t>(n_clusters));
  for (int64_t k = 0; k < n_clusters; ++k) {
    auto& c = centroids[static_cast<size_t>(k)];
    for (const int bit : vertices[static_cast<size_t>(k)]) {
      c.push_back((2.0 * bit - 1.0) * o.class_sep);
    }
  }
  if (!o.hypercube) { // random polytope: shrink each cluster and each axis
    for (auto& c : centroids) {
      const double s = random.uniform();
      for (auto& v : c) {
        v *= s;
      }
    }
    for (int64_t j = 0; j < d; ++j) {
      const double s = random.uniform();
      for (auto& c : centroids) {
        c[static_cast<size_t>(j)] *= s;
      }
    }
  }

  // Informative features: standard normal, then per cluster x <- x A + c.
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      at(i, j) = random.normal();
    }
  }
  std::vector<double> a(static_cast<size_t>(d * d));
  std::vector<double> row(static_cast<size_t>(d));
  int64_t start = 0;
  for (int64_t k = 0; k < n_clusters; ++k) {
    const int64_t stop = start + cluster_rows[static_cast<size_t>(k)];
    for (auto& v : a) {
      v = 2.0 * random.uniform() - 1.0;
    }
    const auto& c = centroids[static_cast<size_t>(k)];
    for (int64_t i = start; i < stop; ++i) {
      y[static_cast<size_t>(i)] = k % o.n_classes;
      for (int64_t j = 0; j < d; ++j) {
        double sum = c[static_cast<size_t>(j)];
        for (int64_t m = 0; m < d; ++m) {
          sum += at(i, m) * a[static_cast<size_t>(m * d + j)];
        }
        row[static_cast<size_t>(j)] = sum;
      }
      for (int64_t j = 0; j < d; ++j) {
        at(i, j) = row[static_cast<size_t>(j)];
      }
    }
    start = stop;
  }

  // Redundant features: x[:, d:d+r] = x[:, :d] B, B uniform in [-1, 1].
  const int64_t r = o.n_redundant;
  std::vector<double> b(static_cast<size_t>(d * r));
  for (auto& v : b) {
    v = 2.0 * random.uniform() - 1.0;
  }
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < r; ++j) {
      double sum = 0.0;
      for (int64_t m = 0; m < d; ++m) {
        sum += at(i, m) * b[static_cast<size_t>(m * r + j)];
      }
      at(i, d + j) = sum;
    }
  }

  // Repeated features: copies of random informative or redundant columns.
  const int64_t useful = d + r;
  for (int64_t j = 0; j < o.n_repeated; ++j) {
    const auto source =
        static_cast<int64_t>(static_cast<double>(useful - 1) * random.uniform() + 0.5);
    for (int64_t i = 0; i < n; ++i) {
      at(i, useful + j) = at(i, source);
    }
  }

  // The remaining features: pure noise.
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = useful + o.n_repeated; j < f; ++j) {
      at(i, j) = random.normal();
    }
  }

  // Label noise: a fraction flip_y of the rows gets a uniformly random class.
  std::vector<bool> flip(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    flip[static_cast<size_t>(i)] = random.uniform() < o.flip_y;
  }
  for (int64_t i = 0; i < n; ++i) {
    if (flip[static_cast<size_t>(i)]) {
      y[static_cast<size_t>(i)] = random.integer(o.n_classes);
    }
  }

  // Shift, then scale, each feature.
  std::vector<double> shift(static_cast<size_t>(f), o.shift.value_or(0.0));
  if (!o.shift) {
    for (auto& v : shift) {
      v = (2.0 * random.uniform() - 1.0) * o.class_sep;
    }
  }
  std::vector<double> scale(static_cast<size_t>(f), o.scale.value_or(1.0));
  if (!o.scale) {
    for (auto& v : scale) {
      v = 1.0 + 100.0 * random.uniform();
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < f; ++j) {
      at(i, j) =
          (at(i, j) + shift[static_cast<size_t>(j)]) * scale[static_cast<size_t>(j)];
    }
  }

  // Row and column orders (identity without shuffle).
  std::vector<int64_t> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), 0);
  std::vector<int64_t> cols(static_cast<size_t>(f));
  std::iota(cols.begin(), cols.end(), 0);
  if (o.shuffle) {
    random.shuffle(rows);
    random.shuffle(cols);
  }

  Dataset out{torch::empty({n, f}, torch::kFloat), torch::empty({n}, torch::kLong)};
  auto* x_out = out.x.data_ptr<float>();
  auto* y_out = out.y.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t source_row = rows[static_cast<size_t>(i)];
    y_out[i] = y[static_cast<size_t>(source_row)];
    for (int64_t j = 0; j < f; ++j) {
      x_out[i * f + j] = static_cast<float>(at(source_row, cols[static_cast<size_t>(j)]));
    }
  }
  return out;
}

std::pair<Dataset, Dataset> split_rows(const Dataset& data, double fraction) {
  const int64_t n = data.x.size(0);
  const auto first = static_cast<int64_t>(fraction * static_cast<double>(n));
  return {
      Dataset{data.x.narrow(0, 0, first), data.y.narrow(0, 0, first)},
      Dataset{data.x.narrow(0, first, n - first), data.y.narrow(0, first, n - first)}};
}

} // namespace demo
