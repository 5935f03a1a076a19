// Links against an installed proxyloss and runs its op through the
// dispatcher: fails if the library or its op registrations are missing.
#include <proxyloss/proxyloss.h>

#include <torch/torch.h>

#include <iostream>

int main() {
  proxyloss::SmoothAPLoss loss(proxyloss::SmoothAPLossOptions(2).queue_size(8));
  const auto logits = torch::tensor({{2.0, -1.0}, {-1.0, 2.0}, {1.5, 0.0}, {0.0, 1.0}});
  const auto targets = torch::tensor({0, 1, 0, 1}, torch::kLong);
  const float value = loss->forward(logits, targets).item<float>();
  std::cout << "proxyloss " << PROXYLOSS_VERSION << " installed: loss " << value << "\n";
  return value >= 0.0f && value < 0.5f ? 0 : 1;
}
