#include "zonewall/analysis/l4_text.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace zonewall::analysis {
namespace {

bool everything(const std::vector<compiler::PortRange>& ports) {
  return ports.size() == 1 && ports[0].lo == 0 && ports[0].hi == 65535;
}

std::string icmpText(const compiler::PortRange& r) {
  const int t_lo = r.lo >> 8;
  const int t_hi = r.hi >> 8;
  if ((r.lo & 0xff) == 0 && (r.hi & 0xff) == 0xff) {
    return t_lo == t_hi ? fmt::format("type {}", t_lo) : fmt::format("types {}-{}", t_lo, t_hi);
  }
  if (t_lo == t_hi) {
    return (r.lo & 0xff) == (r.hi & 0xff)
               ? fmt::format("type {} code {}", t_lo, r.lo & 0xff)
               : fmt::format("type {} codes {}-{}", t_lo, r.lo & 0xff, r.hi & 0xff);
  }
  return fmt::format("type/code {}:{}-{}:{}", t_lo, r.lo & 0xff, t_hi, r.hi & 0xff);
}

// Folds the last range into its predecessor when they are adjacent and carry the same ports.
void foldLast(std::vector<L4Range>& set) {
  if (set.size() >= 2) {
    L4Range& a = set[set.size() - 2];
    L4Range& b = set.back();
    if (a.proto_hi + 1 == b.proto_lo && a.ports == b.ports) {
      a.proto_hi = b.proto_hi;
      set.pop_back();
    }
  }
}

}  // namespace

void addL4(std::vector<L4Range>& set, policy::Protocol lo, policy::Protocol hi,
           std::uint16_t port_lo, std::uint16_t port_hi) {
  if (!set.empty() && set.back().proto_lo == lo && set.back().proto_hi == hi) {
    auto& ports = set.back().ports;
    if (port_lo <= ports.back().hi + 1U) {
      ports.back().hi = std::max(ports.back().hi, port_hi);
    } else {
      ports.push_back({port_lo, port_hi});
    }
    return;
  }
  foldLast(set);  // the last range is complete now
  set.push_back({lo, hi, {{port_lo, port_hi}}});
}

namespace {

// What `set` leaves out of the whole space.
std::vector<L4Range> complement(const std::vector<L4Range>& set) {
  std::vector<L4Range> out;
  auto addAll = [&](int lo, int hi) {
    if (lo <= hi) {
      out.push_back({static_cast<policy::Protocol>(lo), static_cast<policy::Protocol>(hi)});
      foldLast(out);
    }
  };
  int next = 0;
  for (const L4Range& r : set) {
    addAll(next, r.proto_lo - 1);
    std::vector<compiler::PortRange> rest = compiler::complementPorts(r.ports);
    if (!rest.empty()) {
      out.push_back({r.proto_lo, r.proto_hi, rest});
      foldLast(out);
    }
    next = r.proto_hi + 1;
  }
  addAll(next, 255);
  return out;
}

std::string joinedText(const std::vector<L4Range>& set) {
  std::string s;
  for (const L4Range& r : set) s += (s.empty() ? "" : ", ") + l4Text(r);
  return s;
}

}  // namespace

std::vector<L4Range> unionL4(const std::vector<std::vector<L4Range>>& sets) {
  std::set<int> cuts{0, 256};
  for (const auto& set : sets) {
    for (const L4Range& r : set) {
      cuts.insert(r.proto_lo);
      cuts.insert(r.proto_hi + 1);
    }
  }
  std::vector<L4Range> out;
  for (auto c = cuts.begin(); std::next(c) != cuts.end(); ++c) {
    std::vector<std::pair<std::uint16_t, std::uint16_t>> ports;
    for (const auto& set : sets) {
      for (const L4Range& r : set) {
        if (r.proto_lo <= *c && *c <= r.proto_hi) {
          for (const auto& p : r.ports) ports.push_back({p.lo, p.hi});
        }
      }
    }
    std::sort(ports.begin(), ports.end());
    for (const auto& [lo, hi] : ports) {
      addL4(out, static_cast<policy::Protocol>(*c),
            static_cast<policy::Protocol>(*std::next(c) - 1), lo, hi);
    }
  }
  // addL4 folds a range into its predecessor only when the next one starts: fold the last.
  foldLast(out);
  return out;
}

std::string l4Text(const std::vector<L4Range>& set) {
  std::vector<L4Range> folded;
  for (const L4Range& r : set) {
    folded.push_back(r);
    foldLast(folded);
  }
  std::vector<L4Range> rest = complement(folded);
  if (rest.empty()) return "every protocol";
  std::string direct = joinedText(folded);
  std::string except = "every protocol except " + joinedText(rest);
  return except.size() < direct.size() ? except : direct;
}

std::string l4Text(const L4Range& range) {
  const policy::Protocol lo = range.proto_lo;
  const policy::Protocol hi = range.proto_hi;
  const std::vector<compiler::PortRange>& ports = range.ports;
  if (lo == 0 && hi == 255) return "every protocol";
  std::string proto = lo == hi ? policy::protocolName(lo) : fmt::format("protocols {}-{}", lo, hi);
  if (lo != hi || (!policy::hasPorts(lo) && !policy::isIcmp(lo))) return proto;
  if (everything(ports)) return proto + (policy::hasPorts(lo) ? " (all ports)" : "");
  std::vector<std::string> parts;
  for (const auto& r : ports) {
    if (policy::isIcmp(lo)) {
      parts.push_back(icmpText(r));
    } else {
      parts.push_back(r.lo == r.hi ? fmt::format("{}", r.lo) : fmt::format("{}-{}", r.lo, r.hi));
    }
  }
  return fmt::format("{} {}", proto, fmt::join(parts, ","));
}

}  // namespace zonewall::analysis
