#include "zonewall/base/ip.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>

namespace zonewall {
namespace {

U128 hostMask(int host_bits) {
  return host_bits >= 128 ? kU128Max : ((static_cast<U128>(1) << host_bits) - 1);
}

}  // namespace

AddrBytes addrBytes(Addr a, Family f) {
  AddrBytes out;
  out.size = f == Family::kV4 ? 4 : 16;
  for (std::size_t i = 0; i < out.size; ++i) {
    out.bytes[i] = static_cast<unsigned char>(a.v >> (8 * (out.size - 1 - i)));
  }
  return out;
}

Addr addrFromBytes(const unsigned char* p, Family f) {
  U128 v = 0;
  const int size = f == Family::kV4 ? 4 : 16;
  for (int i = 0; i < size; ++i) {
    v = (v << 8) | p[i];
  }
  return f == Family::kV4 ? Addr::fromV4(static_cast<std::uint32_t>(v)) : Addr{v};
}

std::optional<Addr> parseAddr(std::string_view text) {
  if (text.empty() || text.size() > 64) {
    return std::nullopt;
  }
  std::string s(text);
  if (s.find(':') == std::string::npos) {
    in_addr a4{};
    if (inet_pton(AF_INET, s.c_str(), &a4) != 1) {
      return std::nullopt;
    }
    return addrFromBytes(reinterpret_cast<const unsigned char*>(&a4.s_addr), Family::kV4);
  }
  in6_addr a6{};
  if (inet_pton(AF_INET6, s.c_str(), &a6) != 1) {
    return std::nullopt;
  }
  Addr a = addrFromBytes(a6.s6_addr, Family::kV6);
  if (a.family() == Family::kV4) {
    return std::nullopt;  // ::ffff:a.b.c.d would alias IPv4
  }
  return a;
}

std::string formatAddr(Addr a) {
  char buf[INET6_ADDRSTRLEN] = {};
  const AddrBytes b = addrBytes(a, a.family());
  inet_ntop(a.family() == Family::kV4 ? AF_INET : AF_INET6, b.data(), buf, sizeof buf);
  return buf;
}

bool Cidr::contains(Addr a) const {
  if (a.family() != family) {
    return false;
  }
  int host_bits = familyBits(family) - prefix;
  return (a.v & ~hostMask(host_bits)) == base.v;
}

std::vector<Range> Cidr::ranges() const {
  int host_bits = familyBits(family) - prefix;
  Range r{base.v, base.v | hostMask(host_bits)};
  if (family == Family::kV4) {
    return {r};
  }
  // Carve the IPv4-mapped block out of an IPv6 CIDR that covers it.
  if (r.lo <= kV4MappedBase && r.hi >= kV4MappedLast) {
    std::vector<Range> out;
    if (r.lo < kV4MappedBase) {
      out.push_back({r.lo, kV4MappedBase - 1});
    }
    if (r.hi > kV4MappedLast) {
      out.push_back({kV4MappedLast + 1, r.hi});
    }
    return out;
  }
  return {r};
}

std::string Cidr::str() const { return fmt::format("{}/{}", formatAddr(base), prefix); }

std::optional<CidrParse> parseCidr(std::string_view text, bool allow_bare) {
  auto slash = text.find('/');
  std::string_view addr_text = text.substr(0, slash);
  auto addr = parseAddr(addr_text);
  if (!addr) {
    return std::nullopt;
  }
  Family fam = addr->family();
  int max_prefix = familyBits(fam);
  int prefix = max_prefix;
  if (slash == std::string_view::npos) {
    if (!allow_bare) {
      return std::nullopt;
    }
  } else {
    std::string_view p = text.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec != std::errc() || ptr != p.data() + p.size() || prefix < 0 ||
        prefix > max_prefix) {
      return std::nullopt;
    }
  }
  U128 mask = ~hostMask(max_prefix - prefix);
  if (fam == Family::kV4) {
    mask |= ~static_cast<U128>(0xffffffffULL);  // keep the mapped prefix bits
  }
  CidrParse out;
  out.cidr = Cidr{Addr{addr->v & mask}, prefix, fam};
  out.host_bits_set = (addr->v & mask) != addr->v;
  return out;
}

IntervalSet IntervalSet::ofCidr(const Cidr& c) {
  IntervalSet s;
  for (const Range& r : c.ranges()) {
    s.add(r);
  }
  return s;
}

void IntervalSet::add(Range r) {
  std::vector<Range> one{r};
  *this = unite(IntervalSet(std::move(one)));
}

IntervalSet IntervalSet::unite(const IntervalSet& o) const {
  std::vector<Range> all;
  all.reserve(ranges_.size() + o.ranges_.size());
  std::merge(ranges_.begin(), ranges_.end(), o.ranges_.begin(), o.ranges_.end(),
             std::back_inserter(all));
  std::vector<Range> out;
  for (const Range& r : all) {
    // Merge overlapping and adjacent ranges (hi + 1 == lo), minding overflow at the top.
    if (!out.empty() && (out.back().hi == kU128Max || r.lo <= out.back().hi + 1)) {
      out.back().hi = std::max(out.back().hi, r.hi);
    } else {
      out.push_back(r);
    }
  }
  return IntervalSet(std::move(out));
}

IntervalSet IntervalSet::intersect(const IntervalSet& o) const {
  std::vector<Range> out;
  size_t i = 0;
  size_t j = 0;
  while (i < ranges_.size() && j < o.ranges_.size()) {
    U128 lo = std::max(ranges_[i].lo, o.ranges_[j].lo);
    U128 hi = std::min(ranges_[i].hi, o.ranges_[j].hi);
    if (lo <= hi) {
      out.push_back({lo, hi});
    }
    if (ranges_[i].hi < o.ranges_[j].hi) {
      ++i;
    } else {
      ++j;
    }
  }
  return IntervalSet(std::move(out));
}

IntervalSet IntervalSet::complement() const {
  std::vector<Range> out;
  U128 next = 0;
  bool done = false;
  for (const Range& r : ranges_) {
    if (r.lo > next) {
      out.push_back({next, r.lo - 1});
    }
    if (r.hi == kU128Max) {
      done = true;
      break;
    }
    next = r.hi + 1;
  }
  if (!done) {
    out.push_back({next, kU128Max});
  }
  return IntervalSet(std::move(out));
}

bool IntervalSet::contains(U128 v) const {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), v,
                             [](U128 x, const Range& r) { return x < r.lo; });
  return it != ranges_.begin() && std::prev(it)->hi >= v;
}

IntervalSet familySpace(Family f) {
  IntervalSet s;
  if (f == Family::kV4) {
    s.add({kV4MappedBase, kV4MappedLast});
    return s;
  }
  return s.unite(IntervalSet::all()).minus(familySpace(Family::kV4));
}

}  // namespace zonewall
