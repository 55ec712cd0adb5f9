// Sets of addresses: pod addresses as bits, everything else as intervals.
//
// An address is either a pod address (membership is a bit over the inventory's sorted pod
// addresses) or not (membership is the interval set). The two halves together answer
// "does this set contain address a" for every a, which is what selectors, CIDRs and their
// negations need: `notSelector` matches external addresses, `selector` never does.
#pragma once

#include <bit>
#include <cstdint>
#include <vector>

#include "zonewall/base/ip.h"

namespace zonewall::compiler {

class Bitset {
 public:
  Bitset() = default;
  explicit Bitset(size_t n, bool value = false)
      : n_(n), words_((n + 63) / 64, value ? ~0ULL : 0ULL) {
    trim();
  }
  size_t size() const { return n_; }
  /// Grows (new bits clear) or shrinks to `n` bits.
  void resize(size_t n) {
    n_ = n;
    words_.resize((n + 63) / 64, 0ULL);
    trim();
  }
  bool test(size_t i) const { return (words_[i / 64] >> (i % 64)) & 1ULL; }
  void set(size_t i) { words_[i / 64] |= 1ULL << (i % 64); }
  void reset(size_t i) { words_[i / 64] &= ~(1ULL << (i % 64)); }
  void setRange(size_t lo, size_t hi);  ///< [lo, hi)
  Bitset& operator&=(const Bitset& o);
  Bitset& operator|=(const Bitset& o);
  void flip();
  size_t count() const;
  bool none() const;
  template <class F>
  void forEach(F&& f) const {
    for (size_t w = 0; w < words_.size(); ++w) {
      for (std::uint64_t bits = words_[w]; bits != 0; bits &= bits - 1) {
        f(w * 64 + static_cast<size_t>(std::countr_zero(bits)));
      }
    }
  }
  friend bool operator==(const Bitset&, const Bitset&) = default;

 private:
  void trim() {
    if (n_ % 64 != 0 && !words_.empty()) words_.back() &= (1ULL << (n_ % 64)) - 1;
  }
  size_t n_ = 0;
  std::vector<std::uint64_t> words_;
};

struct AddrSet {
  Bitset pods;         ///< over Inventory::addrs()
  IntervalSet ranges;  ///< for addresses that are not pod addresses

  AddrSet& operator&=(const AddrSet& o) {
    pods &= o.pods;
    ranges = ranges.intersect(o.ranges);
    return *this;
  }
  AddrSet& operator|=(const AddrSet& o) {
    pods |= o.pods;
    ranges = ranges.unite(o.ranges);
    return *this;
  }
  void flip() {
    pods.flip();
    ranges = ranges.complement();
  }
};

}  // namespace zonewall::compiler
