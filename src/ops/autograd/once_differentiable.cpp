#include "ops/autograd/once_differentiable.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/functions/basic_ops.h>

#include <memory>
#include <utility>

namespace proxyloss {
namespace ops_impl {

torch::autograd::variable_list once_differentiable(torch::autograd::variable_list grads,
                                                   const std::string& op_name) {
  // The engine runs a backward with grad mode on exactly when create_graph.
  if (!at::GradMode::is_enabled()) {
    return grads;
  }
  torch::autograd::variable_list inputs;
  inputs.reserve(grads.size());
  for (auto& grad : grads) {
    if (grad.defined()) {
      auto alias = grad.detach();
      alias.set_requires_grad(true); // so that the Error node is attached
      inputs.push_back(std::move(alias));
    } else {
      inputs.emplace_back();
    }
  }
  auto error = std::make_shared<torch::autograd::DelayedError>(
      op_name +
          " is differentiable once: its backward is not differentiable (double "
          "backward, e.g. a gradient penalty through this loss, is not supported)",
      static_cast<int>(inputs.size()));
  return (*error)(std::move(inputs));
}

} // namespace ops_impl
} // namespace proxyloss
