// The demos' synthetic data generator (examples/support/make_classification):
// determinism from the seed, class shares, label-flip rate, feature structure
// and option checks.
#include "support/make_classification.h" // examples/support, via its target

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>

namespace {

demo::MakeClassificationOptions base_options() {
  demo::MakeClassificationOptions o;
  o.n_samples = 20000;
  o.n_features = 20;
  o.n_informative = 10;
  o.n_redundant = 2;
  o.n_clusters_per_class = 3;
  o.flip_y = 0.0;
  o.class_sep = 0.8;
  o.seed = 42;
  return o;
}

double share_of(const torch::Tensor& y, int64_t label) {
  return y.eq(label).to(torch::kDouble).mean().item<double>();
}

} // namespace

TEST(MakeClassification, ShapesAndDtypes) {
  auto o = base_options();
  o.n_classes = 3;
  const auto data = demo::make_classification(o);
  EXPECT_EQ(data.x.sizes(), (std::vector<int64_t>{20000, 20}));
  EXPECT_EQ(data.y.sizes(), (std::vector<int64_t>{20000}));
  EXPECT_EQ(data.x.scalar_type(), torch::kFloat);
  EXPECT_EQ(data.y.scalar_type(), torch::kLong);
  EXPECT_TRUE(torch::isfinite(data.x).all().item<bool>());
  EXPECT_EQ(data.y.min().item<int64_t>(), 0);
  EXPECT_EQ(data.y.max().item<int64_t>(), 2);
}

TEST(MakeClassification, SameSeedSameDataOtherSeedOtherData) {
  auto o = base_options();
  o.flip_y = 0.05;
  const auto a = demo::make_classification(o);
  const auto b = demo::make_classification(o);
  EXPECT_TRUE(torch::equal(a.x, b.x));
  EXPECT_TRUE(torch::equal(a.y, b.y));
  o.seed = 43;
  const auto c = demo::make_classification(o);
  EXPECT_FALSE(torch::equal(a.x, c.x));
}

TEST(MakeClassification, ClassSharesFollowWeights) {
  auto o = base_options();
  o.weights = {0.9, 0.1};
  const auto data = demo::make_classification(o);
  // Without flips the shares are exact up to the rounding of the clusters.
  EXPECT_NEAR(share_of(data.y, 1), 0.1, 1e-3);

  // n_classes - 1 weights: the last class gets the rest.
  o.n_classes = 3;
  o.n_informative = 4;
  o.n_clusters_per_class = 2;
  o.weights = {0.5, 0.3};
  const auto three = demo::make_classification(o);
  EXPECT_NEAR(share_of(three.y, 0), 0.5, 1e-3);
  EXPECT_NEAR(share_of(three.y, 1), 0.3, 1e-3);
  EXPECT_NEAR(share_of(three.y, 2), 0.2, 1e-3);

  // No weights: balanced.
  o.weights.clear();
  const auto balanced = demo::make_classification(o);
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_NEAR(share_of(balanced.y, c), 1.0 / 3.0, 1e-3);
  }
}

TEST(MakeClassification, FlipYReplacesThatFractionOfLabelsByRandomClasses) {
  // Without shuffling, the features (drawn before the flips) are the same
  // with and without flips, and the rows stay in place: compare labels.
  auto o = base_options();
  o.shuffle = false;
  const auto clean = demo::make_classification(o);
  o.flip_y = 0.2;
  const auto noisy = demo::make_classification(o);
  EXPECT_TRUE(torch::equal(clean.x, noisy.x));
  // A flipped label gets a uniformly random class: with 2 classes half keep
  // their value, so about 0.2 / 2 of the labels change (sd ~0.002 here).
  const double changed = clean.y.ne(noisy.y).to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(changed, 0.1, 0.01);

  // Rare positives: 0.5 % of class 1 before flips, 5 % flips; about
  // 0.995 * 0.05 / 2 of the rows become noise positives.
  o.weights = {0.995, 0.005};
  o.flip_y = 0.05;
  const auto rare = demo::make_classification(o);
  EXPECT_NEAR(share_of(rare.y, 1), 0.005 * (1 - 0.025) + 0.995 * 0.025, 0.003);
}

TEST(MakeClassification, RedundantAndRepeatedFeaturesAreCombinationsAndCopies) {
  auto o = base_options();
  o.n_samples = 2000;
  o.n_features = 13;
  o.n_informative = 10;
  o.n_redundant = 2;
  o.n_repeated = 1;
  o.shuffle = false;
  const auto data = demo::make_classification(o);
  // Redundant columns lie in the span of the informative ones: rank 10.
  const auto x = data.x.to(torch::kDouble);
  const auto singular = torch::linalg_svdvals(x.narrow(1, 0, 12));
  EXPECT_GT(singular[9].item<double>(), 1e-3 * singular[0].item<double>());
  EXPECT_LT(singular[10].item<double>(), 1e-5 * singular[0].item<double>());
  // The repeated column is a copy of one of the first 12.
  bool found = false;
  for (int64_t j = 0; j < 12; ++j) {
    found = found || torch::equal(data.x.select(1, 12), data.x.select(1, j));
  }
  EXPECT_TRUE(found);
}

TEST(MakeClassification, ClustersAreSeparatedByClassSep) {
  // Without flips and with well separated clusters a class's rows sit around
  // its vertices, +-class_sep on each informative axis: a large class_sep
  // makes the class means differ far more than a small one.
  auto o = base_options();
  o.n_informative = 2;
  o.n_redundant = 0;
  o.n_features = 2;
  o.n_clusters_per_class = 1;
  o.shuffle = false;
  const auto gap = [&](double class_sep) {
    o.class_sep = class_sep;
    const auto data = demo::make_classification(o);
    const auto mean0 = data.x.index({data.y.eq(0)}).mean(0);
    const auto mean1 = data.x.index({data.y.eq(1)}).mean(0);
    return (mean0 - mean1).norm().item<double>();
  };
  // Two distinct vertices of the square of side 2 class_sep are 2 class_sep
  // or 2 sqrt(2) class_sep apart (up to the clusters' random linear maps,
  // which move the means little).
  const double near = gap(0.1);
  const double far = gap(5.0);
  EXPECT_GT(far, 20.0 * near);
  EXPECT_GT(far, 5.0);
}

TEST(MakeClassification, SplitRowsKeepsTheOrder) {
  auto o = base_options();
  o.n_samples = 1000;
  const auto data = demo::make_classification(o);
  const auto [train, validation] = demo::split_rows(data, 0.75);
  EXPECT_EQ(train.x.size(0), 750);
  EXPECT_EQ(validation.x.size(0), 250);
  EXPECT_TRUE(torch::equal(validation.y, data.y.narrow(0, 750, 250)));
}

TEST(MakeClassification, RejectsInconsistentOptions) {
  auto o = base_options();
  o.n_redundant = 11; // 10 + 11 > 20 features
  EXPECT_THROW(demo::make_classification(o), std::invalid_argument);
  o = base_options();
  o.n_informative = 2;
  o.n_redundant = 0;
  o.n_clusters_per_class = 3; // 6 clusters > 2^2 vertices
  EXPECT_THROW(demo::make_classification(o), std::invalid_argument);
  o = base_options();
  o.weights = {0.2, 0.3, 0.5}; // 3 weights for 2 classes
  EXPECT_THROW(demo::make_classification(o), std::invalid_argument);
  o = base_options();
  o.weights = {0.7, 0.6}; // more rows than n_samples
  EXPECT_THROW(demo::make_classification(o), std::invalid_argument);
  o = base_options();
  o.flip_y = 1.5;
  EXPECT_THROW(demo::make_classification(o), std::invalid_argument);
}
