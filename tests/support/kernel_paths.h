// Parametrises op tests over every implementation of the proxyloss ops: the
// fused CPU kernel of the best capability, the fused kernel's portable build,
// and the device-generic ATen implementation (forced on CPU).
#pragma once

#include "ops/cpu/kernel_selection.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace test_support {

enum class KernelPath { Fused, FusedPortable, Generic };

inline std::string kernel_path_name(const ::testing::TestParamInfo<KernelPath>& info) {
  switch (info.param) {
    case KernelPath::Fused:
      return "Fused";
    case KernelPath::FusedPortable:
      return "FusedPortable";
    default:
      return "Generic";
  }
}

// A fixture whose tests run with the selected implementation.
class KernelPathTest : public ::testing::TestWithParam<KernelPath> {
 protected:
  void SetUp() override {
    if (GetParam() == KernelPath::Generic) {
      generic_ = std::make_unique<proxyloss::detail::ForceGenericKernels>();
    }
    if (GetParam() == KernelPath::FusedPortable) {
      portable_ = std::make_unique<proxyloss::detail::ForceDefaultCpuCapability>();
    }
  }

 private:
  std::unique_ptr<proxyloss::detail::ForceGenericKernels> generic_;
  std::unique_ptr<proxyloss::detail::ForceDefaultCpuCapability> portable_;
};

#define PROXYLOSS_INSTANTIATE_KERNEL_PATHS(Fixture)                                     \
  INSTANTIATE_TEST_SUITE_P(Paths, Fixture,                                              \
                           ::testing::Values(::test_support::KernelPath::Fused,         \
                                             ::test_support::KernelPath::FusedPortable, \
                                             ::test_support::KernelPath::Generic),      \
                           ::test_support::kernel_path_name)

} // namespace test_support
