// Runs the C++ ranking-loss modules over a few training steps and writes
// every input and result to a folder, for test_ops_from_python.py, which
// repeats the steps with nothing but torch.ops.proxyloss.* and compares.
//   module_steps OUT_DIR
// OUT_DIR/manifest.txt has one line per tensor, "name dtype d0,d1,...", and
// OUT_DIR/name.bin its contiguous little-endian bytes.
#include <proxyloss/proxyloss.h>

#include <torch/torch.h>

#include <fstream>
#include <iostream>
#include <string>

namespace {

class Writer {
 public:
  explicit Writer(std::string dir)
      : dir_(std::move(dir)), manifest_(dir_ + "/manifest.txt") {}

  void write(const std::string& name, const torch::Tensor& tensor_in) {
    const auto tensor = tensor_in.detach().contiguous().cpu();
    manifest_ << name << " " << dtype_name(tensor.scalar_type()) << " ";
    for (int64_t d = 0; d < tensor.dim(); ++d) {
      manifest_ << (d ? "," : "") << tensor.size(d);
    }
    manifest_ << "\n";
    std::ofstream out(dir_ + "/" + name + ".bin", std::ios::binary);
    out.write(static_cast<const char*>(tensor.data_ptr()),
              static_cast<std::streamsize>(tensor.numel() * tensor.element_size()));
  }

 private:
  static std::string dtype_name(torch::ScalarType type) {
    switch (type) {
      case torch::kFloat:
        return "float32";
      case torch::kDouble:
        return "float64";
      case torch::kLong:
        return "int64";
      case torch::kBool:
        return "bool";
      default:
        throw std::runtime_error("module_steps: unexpected dtype");
    }
  }

  std::string dir_;
  std::ofstream manifest_;
};

// Steps of one loss: each writes <prefix>_<step>_{logits,targets,loss,
// per_class,valid,grad}, then the final queue buffers.
template <typename Loss>
void run(Writer& out, const std::string& prefix, Loss& loss, int64_t num_classes,
         torch::Dtype dtype, int steps) {
  for (int step = 0; step < steps; ++step) {
    const std::string tag = prefix + "_" + std::to_string(step);
    auto logits = (torch::randn({24, num_classes}) * 2).to(dtype);
    auto targets =
        torch::randint(0, num_classes == 1 ? 2 : num_classes, {24}, torch::kLong);
    targets.index_fill_(0, torch::randint(0, 24, {3}, torch::kLong), -100);
    if (step == 2) {
      logits[5][0] = std::nan(""); // non-finite: NaN result, batch not queued
    }
    const auto x = logits.clone().requires_grad_(true);
    torch::Tensor value, per_class, valid;
    std::tie(value, per_class, valid) = loss->forward_per_class(x, targets);
    value.sum().backward();
    out.write(tag + "_logits", logits);
    out.write(tag + "_targets", targets);
    out.write(tag + "_loss", value);
    out.write(tag + "_per_class", per_class);
    out.write(tag + "_valid", valid);
    out.write(tag + "_grad", x.grad());
  }
  for (const auto& name : {"queue_logits", "queue_targets", "queue_ptr"}) {
    out.write(prefix + "_" + name, loss->named_buffers()[name]);
  }
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: module_steps OUT_DIR\n";
    return 2;
  }
  Writer out(argv[1]);
  torch::manual_seed(2026);
  proxyloss::SmoothAPLoss ap(
      proxyloss::SmoothAPLossOptions(3).queue_size(40).temperature(0.05));
  run(out, "smooth_ap", ap, 3, torch::kFloat, 5);
  proxyloss::SmoothAPLoss binary(
      proxyloss::SmoothAPLossOptions(1).queue_size(30).reduction(torch::kNone));
  run(out, "smooth_ap_binary", binary, 1, torch::kDouble, 5);
  proxyloss::RecallAtQuantileLoss recall(proxyloss::RecallAtQuantileLossOptions(2)
                                             .quantile(0.1)
                                             .interpolation("linear")
                                             .queue_size(50)
                                             .temperature(0.02)
                                             .reduction(torch::kSum));
  run(out, "recall", recall, 2, torch::kDouble, 5);
  return 0;
}
