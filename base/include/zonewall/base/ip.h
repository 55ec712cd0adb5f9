// IPv4 and IPv6 addresses, CIDRs and interval sets in one 128-bit space.
//
// IPv4 addresses live in the IPv4-mapped block ::ffff:0:0/96, so one ordered key space holds both
// families and a v4 CIDR is one interval. IPv6 CIDRs never include that block (an IPv6 "::/0"
// must not match IPv4 packets), so an IPv6 CIDR that covers it becomes two intervals.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zonewall {

__extension__ using U128 = unsigned __int128;

enum class Family : std::uint8_t { kV4 = 4, kV6 = 6 };
/// Address width in bits: 32 or 128.
inline constexpr int familyBits(Family f) { return f == Family::kV4 ? 32 : 128; }

inline constexpr U128 kV4MappedBase = static_cast<U128>(0xffffULL) << 32;
inline constexpr U128 kV4MappedLast = kV4MappedBase | 0xffffffffULL;
inline constexpr U128 kU128Max = ~static_cast<U128>(0);

struct Addr {
  U128 v = 0;

  Family family() const {
    return (v >= kV4MappedBase && v <= kV4MappedLast) ? Family::kV4 : Family::kV6;
  }
  std::uint32_t v4() const { return static_cast<std::uint32_t>(v); }
  static Addr fromV4(std::uint32_t ip) { return Addr{kV4MappedBase | ip}; }
  friend auto operator<=>(const Addr&, const Addr&) = default;
};

/// An address in network byte order, as the kernel and the wire carry it: 4 bytes for IPv4,
/// 16 for IPv6.
struct AddrBytes {
  std::array<unsigned char, 16> bytes{};
  std::size_t size = 0;
  const unsigned char* data() const { return bytes.data(); }
};
/// `a` as an address of family `f`. The family is the caller's (a set's, a socket's), not the
/// value's: an IPv6 range can end just below the IPv4-mapped block, whose first address would
/// otherwise read as IPv4.
AddrBytes addrBytes(Addr a, Family f);
/// The address at `p`: 4 bytes for kV4, 16 for kV6.
Addr addrFromBytes(const unsigned char* p, Family f);

/// Parses "10.0.0.1" or "fd00::1". IPv4-mapped IPv6 text is rejected (it never appears on the
/// wire and would alias IPv4).
std::optional<Addr> parseAddr(std::string_view text);
std::string formatAddr(Addr a);

struct Range {
  U128 lo = 0;
  U128 hi = 0;
  friend auto operator<=>(const Range&, const Range&) = default;
};

struct Cidr {
  Addr base;       ///< network address (host bits cleared)
  int prefix = 0;  ///< prefix length within its family (0..32 or 0..128)
  Family family = Family::kV4;

  bool contains(Addr a) const;
  /// The addresses covered, as 1 or 2 disjoint ranges (see file comment).
  std::vector<Range> ranges() const;
  std::string str() const;
  friend auto operator<=>(const Cidr&, const Cidr&) = default;
};

struct CidrParse {
  Cidr cidr;
  bool host_bits_set = false;  ///< "10.0.0.5/24": accepted, masked, worth a lint note
};
/// The one-address CIDR of `a` (/32 or /128).
inline Cidr hostCidr(Addr a) { return Cidr{a, familyBits(a.family()), a.family()}; }
/// Parses "10.0.0.0/8", "fd00::/64"; a bare address is a host route (/32, /128).
std::optional<CidrParse> parseCidr(std::string_view text, bool allow_bare = false);

/// Sorted, disjoint, non-adjacent closed ranges over the 128-bit space.
class IntervalSet {
 public:
  IntervalSet() = default;
  static IntervalSet all() { return IntervalSet({Range{0, kU128Max}}); }
  static IntervalSet ofCidr(const Cidr& c);

  void add(Range r);
  IntervalSet unite(const IntervalSet& o) const;
  IntervalSet intersect(const IntervalSet& o) const;
  IntervalSet complement() const;
  IntervalSet minus(const IntervalSet& o) const { return intersect(o.complement()); }
  bool contains(U128 v) const;
  bool empty() const { return ranges_.empty(); }
  bool isAll() const {
    return ranges_.size() == 1 && ranges_[0].lo == 0 && ranges_[0].hi == kU128Max;
  }
  const std::vector<Range>& ranges() const { return ranges_; }
  friend bool operator==(const IntervalSet&, const IntervalSet&) = default;

 private:
  explicit IntervalSet(std::vector<Range> r) : ranges_(std::move(r)) {}
  std::vector<Range> ranges_;
};

/// The whole IPv4 space / the whole IPv6 space (without the mapped block).
IntervalSet familySpace(Family f);

}  // namespace zonewall
