#include "serialize/checked_load.h"

#include <c10/util/Exception.h>
#include <torch/types.h>

#include <algorithm>
#include <exception>
#include <utility>
#include <vector>

namespace proxyloss {
namespace detail {
namespace {

// What a load may replace: each parameter and buffer handle with a copy of
// its value. Module::load gives the handles new data (Tensor::set_ or
// set_data) rather than writing into their storage, but a submodule's own
// load() may copy in place, so the copies are deep.
class TensorSnapshot {
 public:
  explicit TensorSnapshot(const torch::nn::Module& module) {
    torch::NoGradGuard no_grad;
    for (const auto& tensors :
         {module.parameters(/*recurse=*/true), module.buffers(/*recurse=*/true)}) {
      for (const auto& tensor : tensors) {
        if (tensor.defined()) {
          entries_.emplace_back(tensor, tensor.detach().clone());
        }
      }
    }
  }

  void restore() {
    torch::NoGradGuard no_grad;
    for (auto& entry : entries_) {
      entry.first.set_data(entry.second);
    }
  }

 private:
  std::vector<std::pair<torch::Tensor, torch::Tensor>> entries_;
};

} // namespace

// Module::load's reading, except that a tensor is read into a fresh handle
// and then given to the module's tensor with set_data: Module::load's
// Tensor::set_ into an existing tensor of another dtype reinterprets the
// checkpoint's bytes (a float64 value read as int64), silently.
void read_module(torch::nn::Module& module, torch::serialize::InputArchive& archive,
                 const std::vector<std::pair<std::string, double>>& optional_buffers) {
  torch::NoGradGuard no_grad;
  for (auto& parameter : module.named_parameters(/*recurse=*/false)) {
    torch::Tensor saved;
    archive.read(parameter.key(), saved);
    parameter.value().set_data(saved);
  }
  for (auto& buffer : module.named_buffers(/*recurse=*/false)) {
    torch::Tensor saved;
    const auto optional = std::find_if(optional_buffers.begin(), optional_buffers.end(),
                                       [&](const std::pair<std::string, double>& entry) {
                                         return entry.first == buffer.key();
                                       });
    if (optional != optional_buffers.end() &&
        !archive.try_read(buffer.key(), saved, /*is_buffer=*/true)) {
      buffer.value().fill_(optional->second); // an earlier version's checkpoint
      continue;
    }
    archive.read(buffer.key(), saved, /*is_buffer=*/true);
    buffer.value().set_data(saved);
  }
  for (const auto& child : module.named_children()) {
    torch::serialize::InputArchive child_archive;
    archive.read(child.key(), child_archive);
    child.value()->load(child_archive);
  }
}

void load_or_leave_unchanged(
    torch::nn::Module& module, torch::serialize::InputArchive& archive,
    const std::string& module_name, const std::function<void()>& check_loaded,
    const std::vector<std::pair<std::string, double>>& optional_buffers) {
  TensorSnapshot before(module);
  std::string cause;
  try {
    read_module(module, archive, optional_buffers);
    check_loaded();
    return;
  } catch (const c10::Error& error) {
    cause = error.what_without_backtrace();
  } catch (const std::exception& error) {
    cause = error.what();
  }
  before.restore();
  TORCH_CHECK(false, module_name,
              ": cannot load the checkpoint (the module is unchanged): ", cause);
}

} // namespace detail
} // namespace proxyloss
