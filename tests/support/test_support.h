// Helpers shared by the test files.
#pragma once

#include <proxyloss/compat.h>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <random>
#include <string>

namespace test_support {

// Max |a - b| over elements where both are finite, and a check that both are
// NaN/inf at the same places.
inline double max_abs_diff(const torch::Tensor& a_in, const torch::Tensor& b_in) {
  const auto a = a_in.detach().to(torch::kDouble).cpu();
  const auto b = b_in.detach().to(torch::kDouble).cpu();
  EXPECT_EQ(a.sizes(), b.sizes());
  const auto a_nan = torch::isnan(a);
  const auto b_nan = torch::isnan(b);
  EXPECT_TRUE(torch::equal(a_nan, b_nan)) << "NaN pattern differs:\n" << a << "\n" << b;
  const auto both = a_nan.logical_or(b_nan).logical_not();
  if (!both.any().item<bool>()) {
    return 0.0;
  }
  return (a.masked_select(both) - b.masked_select(both)).abs().max().item<double>();
}

inline double max_abs(const torch::Tensor& t) {
  const auto d = t.detach().to(torch::kDouble).cpu();
  const auto finite = d.masked_select(torch::isfinite(d));
  return finite.numel() == 0 ? 0.0 : finite.abs().max().item<double>();
}

// True when `fn` throws c10::Error whose message contains every fragment.
template <typename Fn>
::testing::AssertionResult throws_with(Fn&& fn,
                                       std::initializer_list<std::string> fragments) {
  try {
    fn();
  } catch (const c10::Error& e) {
    const std::string message = e.what_without_backtrace();
    for (const auto& fragment : fragments) {
      if (message.find(fragment) == std::string::npos) {
        return ::testing::AssertionFailure()
               << "message lacks \"" << fragment << "\": " << message;
      }
    }
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no c10::Error thrown";
}

inline int64_t count_containing(const std::vector<std::string>& messages,
                                const std::string& fragment) {
  return std::count_if(messages.begin(), messages.end(), [&](const std::string& m) {
    return m.find(fragment) != std::string::npos;
  });
}

// A file in the temp directory whose name no other test, test process or
// second run of the suite can take (process id, a per-process counter and
// a random number), removed when it goes out of scope. For tests that write
// checkpoints: `ctest -j` runs every test case in its own process, at once.
class UniqueTempFile {
 public:
  explicit UniqueTempFile(const std::string& stem) {
    static std::atomic<int> counter{0};
    std::random_device entropy;
    path_ = (std::filesystem::temp_directory_path() /
             ("proxyloss_" + stem + "_" + std::to_string(::getpid()) + "_" +
              std::to_string(counter++) + "_" + std::to_string(entropy()) + ".pt"))
                .string();
  }
  ~UniqueTempFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  UniqueTempFile(const UniqueTempFile&) = delete;
  UniqueTempFile& operator=(const UniqueTempFile&) = delete;

  const std::string& path() const {
    return path_;
  }

 private:
  std::string path_;
};

} // namespace test_support
