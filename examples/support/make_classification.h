// Synthetic classification data with the semantics of scikit-learn's
// make_classification (Guyon's "Madelon" design), written in C++ from its
// documented algorithm:
//
//  1. Each class gets n_clusters_per_class Gaussian clusters; the clusters sit
//     on distinct vertices of an n_informative-dimensional hypercube with
//     side 2 * class_sep (coordinates +-class_sep).
//  2. Each cluster is standard normal, multiplied by its own random matrix
//     (entries uniform in [-1, 1]: a random covariance), shifted to its vertex.
//  3. Redundant features are random linear combinations of the informative
//     ones, repeated features copies of informative or redundant ones, the
//     rest standard normal noise.
//  4. A fraction flip_y of the labels is replaced by a uniformly random class
//     (so about flip_y * (C - 1) / C of the labels actually change).
//  5. Features are shifted and scaled, then rows and columns shuffled.
//
// Rows are shared among the classes by `weights`, so weights {0.995, 0.005}
// gives 0.5 % positives before the label flips. Deterministic from `seed`
// (its own mt19937_64, not torch's generator), on every platform. The numbers
// differ from scikit-learn's, whose NumPy generator is not reproduced.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace demo {

struct MakeClassificationOptions {
  int64_t n_samples = 100;
  int64_t n_features = 20;
  int64_t n_informative = 2;
  int64_t n_redundant = 2;
  int64_t n_repeated = 0;
  int64_t n_classes = 2;
  int64_t n_clusters_per_class = 2;
  // Share of rows per class: n_classes values, or n_classes - 1 (the last
  // class gets the rest); empty for balanced classes.
  std::vector<double> weights;
  // Fraction of labels replaced by a random class.
  double flip_y = 0.01;
  // Half the side of the hypercube: larger separates the clusters more.
  double class_sep = 1.0;
  // Clusters on the vertices of a hypercube; false: of a random polytope.
  bool hypercube = true;
  // Added to every feature, then multiplied; nullopt draws one per feature,
  // shift uniform in [-class_sep, class_sep], scale uniform in [1, 101].
  std::optional<double> shift = 0.0;
  std::optional<double> scale = 1.0;
  // Shuffle the rows and the columns.
  bool shuffle = true;
  uint64_t seed = 0;
};

struct Dataset {
  torch::Tensor x; // [n_samples, n_features] float32
  torch::Tensor y; // [n_samples] int64 in [0, n_classes)
};

// Throws std::invalid_argument for inconsistent options (feature counts that
// exceed n_features, more clusters than hypercube vertices, bad weights).
Dataset make_classification(const MakeClassificationOptions& options);

// The first `fraction` of the rows, then the rest (make_classification
// shuffles, so this is a random split).
std::pair<Dataset, Dataset> split_rows(const Dataset& data, double fraction);

} // namespace demo
