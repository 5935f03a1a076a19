// The one place where differences between LibTorch versions live.
//
// proxyloss builds against Debian's LibTorch 1.13 and against LibTorch 2.x.
// Code elsewhere uses only APIs present in both; what differs is named here.
#pragma once

#include <torch/version.h>

#include <c10/util/Exception.h>
#include <c10/util/Optional.h>

#include <string>
#include <utility>
#include <vector>

#define PROXYLOSS_TORCH_VERSION_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||                    \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace proxyloss {

// c10::optional is its own type in 1.13 and an alias of std::optional in
// recent 2.x; c10::nullopt works with both, so options use c10::optional.
template <typename T>
using optional = c10::optional<T>;

namespace compat {

// Collects the messages of the c10 warnings (TORCH_WARN) issued while it is
// alive, instead of printing them. The handler interface changed in 2.0:
// 1.13 passes (location, message, verbatim) and keeps the setter in
// c10::Warning; 2.x passes a c10::Warning and keeps it in c10::WarningUtils.
// Process-wide; meant for tests and tools.
class ScopedWarningCollector : public c10::WarningHandler {
 public:
  ScopedWarningCollector() : previous_(current_handler()) {
    install(this);
  }
  ~ScopedWarningCollector() override {
    install(previous_);
  }
  ScopedWarningCollector(const ScopedWarningCollector&) = delete;
  ScopedWarningCollector& operator=(const ScopedWarningCollector&) = delete;

  const std::vector<std::string>& messages() const {
    return messages_;
  }

#if PROXYLOSS_TORCH_VERSION_AT_LEAST(2, 0)
  void process(const c10::Warning& warning) override {
    messages_.push_back(warning.msg());
  }
#else
  void process(const c10::SourceLocation& /*location*/, const std::string& message,
               const bool /*verbatim*/) override {
    messages_.push_back(message);
  }
#endif

 private:
#if PROXYLOSS_TORCH_VERSION_AT_LEAST(2, 0)
  static c10::WarningHandler* current_handler() {
    return c10::WarningUtils::get_warning_handler();
  }
  static void install(c10::WarningHandler* handler) {
    c10::WarningUtils::set_warning_handler(handler);
  }
#else
  static c10::WarningHandler* current_handler() {
    return c10::Warning::get_warning_handler();
  }
  static void install(c10::WarningHandler* handler) {
    c10::Warning::set_warning_handler(handler);
  }
#endif

  c10::WarningHandler* previous_;
  std::vector<std::string> messages_;
};

// torch's enum-valued options (`reduction_t` & co.) are c10::variant in 1.13
// and std::variant in 2.x. extend_variant_t<V, Extra...> is V's own variant
// template over V's alternatives followed by Extra..., so a proxyloss variant
// built from a torch one is always of the right kind, with no version check.
template <typename Variant, typename... Extra>
struct extend_variant;
template <template <typename...> class Var, typename... Ts, typename... Extra>
struct extend_variant<Var<Ts...>, Extra...> {
  using type = Var<Ts..., Extra...>;
};
template <typename Variant, typename... Extra>
using extend_variant_t = typename extend_variant<Variant, Extra...>::type;

// visit() for such a variant: the call is unqualified, so argument-dependent
// lookup finds c10::visit (1.13) or std::visit (2.x), matching the variant.
template <typename Visitor, typename Variant>
decltype(auto) visit_variant(Visitor&& visitor, Variant&& variant) {
  return visit(std::forward<Visitor>(visitor), std::forward<Variant>(variant));
}

} // namespace compat

} // namespace proxyloss
