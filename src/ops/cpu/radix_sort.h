// Stable LSD radix sort of (floating-point score, row) entries by score.
//
// A finite float or double maps to an unsigned integer of its width whose
// order is the numeric order (flip every bit of a negative number, only the
// sign bit of a non-negative one; -0 sorts just before +0). The keys are
// then sorted by 11-bit digits, least significant first, each pass a stable
// counting sort: entries with equal scores keep their input order. O(n)
// time, O(n) scratch; a pass whose digit is the same for every entry is
// skipped.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace proxyloss {
namespace ops_impl {

template <typename T>
struct RadixEntry {
  using Key = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  Key key;
  int64_t row;

  static Key key_of(T value) {
    static_assert(std::is_floating_point<T>::value && sizeof(T) == sizeof(Key), "");
    Key bits;
    std::memcpy(&bits, &value, sizeof(bits));
    constexpr Key kSign = Key(1) << (8 * sizeof(Key) - 1);
    return (bits & kSign) ? ~bits : (bits | kSign);
  }
};

// Sorts entries[0, n) by key, stably; `scratch` is resized to n.
template <typename T>
void radix_sort(RadixEntry<T>* entries, int64_t n, std::vector<RadixEntry<T>>& scratch) {
  using Key = typename RadixEntry<T>::Key;
  constexpr int kDigitBits = 11;
  constexpr int kBuckets = 1 << kDigitBits;
  constexpr int kPasses = (8 * sizeof(Key) + kDigitBits - 1) / kDigitBits;
  if (n < 2) {
    return;
  }
  std::vector<std::array<int64_t, kBuckets>> counts(kPasses);
  for (auto& c : counts) {
    c.fill(0);
  }
  for (int64_t i = 0; i < n; ++i) {
    const Key key = entries[i].key;
    for (int p = 0; p < kPasses; ++p) {
      ++counts[p][(key >> (p * kDigitBits)) & (kBuckets - 1)];
    }
  }
  scratch.resize(n);
  RadixEntry<T>* from = entries;
  RadixEntry<T>* to = scratch.data();
  for (int p = 0; p < kPasses; ++p) {
    auto& count = counts[p];
    const int shift = p * kDigitBits;
    if (count[(from[0].key >> shift) & (kBuckets - 1)] == n) {
      continue; // one digit value: the order is unchanged
    }
    int64_t offset = 0;
    for (auto& c : count) { // counts -> first output position of each digit
      const int64_t size = c;
      c = offset;
      offset += size;
    }
    for (int64_t i = 0; i < n; ++i) {
      to[count[(from[i].key >> shift) & (kBuckets - 1)]++] = from[i];
    }
    std::swap(from, to);
  }
  if (from != entries) {
    std::memcpy(entries, from, sizeof(RadixEntry<T>) * n);
  }
}

} // namespace ops_impl
} // namespace proxyloss
