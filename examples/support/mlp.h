// Multi-layer perceptrons for the demos.
#pragma once

#include <torch/nn/modules/container/sequential.h>

#include <cstdint>
#include <vector>

namespace demo {

// Linear layers of the given widths with ReLU between them:
// {20, 64, 1} is Linear(20, 64), ReLU, Linear(64, 1). Initialised by torch's
// default (seed it with torch::manual_seed first for repeatable runs).
torch::nn::Sequential make_mlp(const std::vector<int64_t>& widths);

} // namespace demo
