// A loss module that declares its forward to take per-sample weights as its
// third argument: forward(logits, targets, sample_weight), sample_weight
// undefined meaning no weights. LossWarmupWrapper passes its sample_weight to
// a warmup loss only when that loss implements this (in C++ neither
// torch::nn::AnyModule nor the language tells a forward's arity or its
// parameters' names at run time, so the loss says it). FairLoss, the focal
// losses, the queued ranking losses and LossWarmupWrapper implement it; a
// loss of your own can too.
#pragma once

namespace proxyloss {

class SampleWeightedLoss {
 public:
  virtual ~SampleWeightedLoss() = default;
};

} // namespace proxyloss
