// The gradients an autograd Function's backward returns, made to refuse a
// second differentiation with a clear error, as Python's
// torch.autograd.function.once_differentiable does: when the backward runs
// with create_graph=True, each gradient gets an Error node as its grad_fn, so
// that create_graph itself works but differentiating through these gradients
// raises "<op> is differentiable once: ...".
#pragma once

#include <torch/csrc/autograd/variable.h>

#include <string>

namespace proxyloss {
namespace ops_impl {

torch::autograd::variable_list once_differentiable(torch::autograd::variable_list grads,
                                                   const std::string& op_name);

} // namespace ops_impl
} // namespace proxyloss
