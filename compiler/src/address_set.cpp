#include "zonewall/compiler/address_set.h"

#include <algorithm>
#include <numeric>

namespace zonewall::compiler {

void Bitset::setRange(size_t lo, size_t hi) {
  for (size_t i = lo; i < hi && i % 64 != 0; ++i) {
    set(i);
    lo = i + 1;
  }
  while (lo + 64 <= hi) {
    words_[lo / 64] = ~0ULL;
    lo += 64;
  }
  for (size_t i = lo; i < hi; ++i) set(i);
}

Bitset& Bitset::operator&=(const Bitset& o) {
  for (size_t i = 0; i < words_.size(); ++i) words_[i] &= o.words_[i];
  return *this;
}

Bitset& Bitset::operator|=(const Bitset& o) {
  for (size_t i = 0; i < words_.size(); ++i) words_[i] |= o.words_[i];
  return *this;
}

void Bitset::flip() {
  for (auto& w : words_) w = ~w;
  trim();
}

size_t Bitset::count() const {
  return std::accumulate(words_.begin(), words_.end(), size_t{0},
                         [](size_t acc, std::uint64_t w) { return acc + std::popcount(w); });
}

bool Bitset::none() const {
  return std::all_of(words_.begin(), words_.end(), [](std::uint64_t w) { return w == 0; });
}

}  // namespace zonewall::compiler
