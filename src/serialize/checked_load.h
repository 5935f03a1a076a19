// Loading a checkpoint into a module as one transaction. Internal: the
// modules' load() overrides use it, so that torch::load(module, path) either
// restores the whole saved state or fails with a clear error and leaves the
// module as it was.
#pragma once

#include <torch/nn/module.h>
#include <torch/serialize/input-archive.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace proxyloss {
namespace detail {

// Reads `module`'s parameters and buffers from `archive` as
// torch::nn::Module::load does (and its submodules through their own load()),
// except that a tensor of another dtype or device replaces the module's
// tensor's data instead of being reinterpreted; then runs `check_loaded`, which
// inspects the loaded tensors and throws c10::Error when they do not fit the
// module's options. If either throws, every parameter and buffer of the
// module (recursively) gets back the tensor it held before, and a c10::Error
// "<module_name>: cannot load the checkpoint (the module is unchanged): ..."
// carries the cause. Non-tensor state must be assigned by the caller after
// this returns. `optional_buffers`: buffers (of `module` itself) that a
// checkpoint written by an earlier version may lack, each with the value
// that fills it then.
void load_or_leave_unchanged(
    torch::nn::Module& module, torch::serialize::InputArchive& archive,
    const std::string& module_name, const std::function<void()>& check_loaded,
    const std::vector<std::pair<std::string, double>>& optional_buffers = {});

} // namespace detail
} // namespace proxyloss
