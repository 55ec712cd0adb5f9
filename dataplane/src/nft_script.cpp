#include "zonewall/dataplane/nft_script.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <map>
#include <vector>

namespace zonewall::dataplane {
namespace {

using compiler::Direction;
using compiler::Entry;
using compiler::NodeTable;
using compiler::Outcome;
using policy::Addr;
using policy::Family;

constexpr int kNibbles = 4;  // 16-bit class ids, set four bits at a time

struct Fam {
  Family family;
  const char* suffix;    // "4" / "6"
  const char* addr_type; // ipv4_addr / ipv6_addr
  const char* proto;     // ip / ip6
};
constexpr Fam kFams[] = {{Family::kV4, "4", "ipv4_addr", "ip"},
                         {Family::kV6, "6", "ipv6_addr", "ip6"}};

std::string addrText(policy::U128 v) { return policy::formatAddr(Addr{v}); }

std::string rangeText(const policy::Range& r) {
  return r.lo == r.hi ? addrText(r.lo) : addrText(r.lo) + "-" + addrText(r.hi);
}

template <class T>
std::string join(const std::vector<T>& parts, const char* sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

// nft element lists, a few per line so that large maps stay readable in diffs.
std::string elements(const std::vector<std::string>& items) {
  if (items.empty()) return "";
  std::string out = "\t\telements = { ";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ",\n\t\t\t     ";
    out += items[i];
  }
  return out + " }\n";
}

class Renderer {
 public:
  Renderer(const NodeTable& t, const NftOptions& o) : t_(t), o_(o), shift_(std::countr_zero(o.class_mask)) {}

  std::string run() {
    out_ += fmt::format("# zonewall node table for node '{}': {} entries, {} remote classes\n", t_.node,
                        t_.entryCount(), t_.remote_classes.size());
    out_ += fmt::format("table inet {} {{\n", o_.table);
    verdictChains();
    classSetterChains();
    for (const Fam& f : kFams) {
      remoteMaps(f);
      localSet(f);
      for (Direction d : {Direction::kIngress, Direction::kEgress}) verdictMaps(f, d);
    }
    for (const Fam& f : kFams) {
      for (Direction d : {Direction::kIngress, Direction::kEgress}) directionChain(f, d);
    }
    baseChain("forward", "forward", true, true);
    baseChain("input", "input", true, false);
    baseChain("output", "output", false, true);
    out_ += "}\n";
    return out_;
  }

 private:
  std::uint32_t keepMask() const { return ~o_.class_mask; }

  void verdictChains() {
    // One chain per verdict with a counter: the per-verdict counters.
    for (Direction d : {Direction::kIngress, Direction::kEgress}) {
      const char* dn = compiler::directionName(d);
      out_ += fmt::format("\tchain allow_{} {{\n\t\tcounter return\n\t}}\n", dn);
      out_ += fmt::format("\tchain deny_{} {{\n\t\tcounter drop\n\t}}\n", dn);
    }
    // Outcomes that log first get a chain of their own (Calico's Log action: nflog).
    for (size_t i = 0; i < t_.outcomes.size(); ++i) {
      const Outcome& o = t_.outcomes[i];
      if (o.logs.empty()) continue;
      const compiler::Attribution& a = t_.attributions[o.attribution];
      out_ += fmt::format("\tchain outcome_{} {{\n", i);
      for (std::uint32_t l : o.logs) {
        const compiler::Attribution& la = t_.attributions[l];
        std::string prefix = fmt::format("zw {} {}", la.policy.substr(la.policy.find(' ') + 1), la.rule_index);
        if (prefix.size() > 60) prefix.resize(60);  // nflog prefixes are capped at 64 bytes
        out_ += fmt::format("\t\tlog prefix \"{}: \" group 0\n", prefix);
      }
      out_ += fmt::format("\t\tgoto {}_{}\n\t}}\n", o.allow ? "allow" : "deny", compiler::directionName(a.direction));
    }
  }

  void classSetterChains() {
    for (int n = 0; n < kNibbles; ++n) {
      std::uint32_t nib_mask = 0xfU << (shift_ + 4 * n);
      for (std::uint32_t v = 0; v < 16; ++v) {
        out_ += fmt::format("\tchain rc_n{}_{:x} {{\n\t\tmeta mark set meta mark & 0x{:08x} | 0x{:08x}\n\t}}\n", n, v,
                            ~nib_mask, v << (shift_ + 4 * n));
      }
    }
  }

  void remoteMaps(const Fam& f) {
    for (int n = 0; n < kNibbles; ++n) {
      std::vector<std::string> ranges;
      for (const auto& [r, id] : t_.remote_ranges) {
        unsigned nib = (id >> (4 * n)) & 0xf;
        if (Addr{r.lo}.family() == f.family && nib != 0) {
          ranges.push_back(fmt::format("{} : jump rc_n{}_{:x}", rangeText(r), n, nib));
        }
      }
      std::vector<std::string> exact;
      for (const auto& [a, id] : t_.remote_exact) {
        if (a.family() == f.family) {
          exact.push_back(fmt::format("{} : jump rc_n{}_{:x}", policy::formatAddr(a), n, (id >> (4 * n)) & 0xf));
        }
      }
      out_ += fmt::format("\tmap remote{}_n{}_ranges {{\n\t\ttype {} : verdict\n\t\tflags interval\n{}\t}}\n",
                          f.suffix, n, f.addr_type, elements(ranges));
      out_ += fmt::format("\tmap remote{}_n{}_exact {{\n\t\ttype {} : verdict\n{}\t}}\n", f.suffix, n,
                          f.addr_type, elements(exact));
    }
  }

  void localSet(const Fam& f) {
    std::vector<std::string> addrs;
    std::vector<Addr> all;
    for (const auto& dt : t_.directions) {
      for (const auto& lc : dt.classes) {
        if (lc.family == f.family) all.insert(all.end(), lc.addrs.begin(), lc.addrs.end());
      }
    }
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    for (Addr a : all) addrs.push_back(policy::formatAddr(a));
    out_ += fmt::format("\tset local{} {{\n\t\ttype {}\n{}\t}}\n", f.suffix, f.addr_type, elements(addrs));
  }

  std::string verdictOf(std::uint32_t outcome, Direction d) const {
    const Outcome& o = t_.outcomes[outcome];
    if (!o.logs.empty()) return fmt::format("goto outcome_{}", outcome);
    return fmt::format("goto {}_{}", o.allow ? "allow" : "deny", compiler::directionName(d));
  }

  void verdictMaps(const Fam& f, Direction d) {
    const char* dn = compiler::directionName(d);
    const auto& dt = t_.dir(d);
    std::vector<std::string> exact;
    std::vector<std::string> ranges;
    std::vector<std::string> defaults;
    for (const auto& lc : dt.classes) {
      if (lc.family != f.family) continue;
      for (Addr a : lc.addrs) defaults.push_back(fmt::format("{} : {}", policy::formatAddr(a), verdictOf(lc.default_outcome, d)));
      auto it = std::lower_bound(dt.entries.begin(), dt.entries.end(), lc.id,
                                 [](const Entry& e, std::uint32_t id) { return e.local_class < id; });
      for (; it != dt.entries.end() && it->local_class == lc.id; ++it) {
        const Entry& e = *it;
        std::uint32_t mark = static_cast<std::uint32_t>(e.remote_class) << shift_;
        bool single = e.proto_lo == e.proto_hi && e.port_lo == e.port_hi;
        std::string proto = e.proto_lo == e.proto_hi ? fmt::format("{}", e.proto_lo)
                                                     : fmt::format("{}-{}", e.proto_lo, e.proto_hi);
        std::string port = e.port_lo == e.port_hi ? fmt::format("{}", e.port_lo)
                                                  : fmt::format("{}-{}", e.port_lo, e.port_hi);
        for (Addr a : lc.addrs) {
          std::string item = fmt::format("{} . 0x{:08x} . {} . {} : {}", policy::formatAddr(a), mark, proto, port,
                                         verdictOf(e.outcome, d));
          (single ? exact : ranges).push_back(std::move(item));
        }
      }
    }
    std::string key = fmt::format("{} . mark . inet_proto . inet_service", f.addr_type);
    out_ += fmt::format("\tmap {}{}_exact {{\n\t\ttype {} : verdict\n{}\t}}\n", dn, f.suffix, key, elements(exact));
    out_ += fmt::format("\tmap {}{}_ranges {{\n\t\ttype {} : verdict\n\t\tflags interval\n{}\t}}\n", dn, f.suffix,
                        key, elements(ranges));
    out_ += fmt::format("\tmap {}{}_default {{\n\t\ttype {} : verdict\n{}\t}}\n", dn, f.suffix, f.addr_type,
                        elements(defaults));
  }

  void directionChain(const Fam& f, Direction d) {
    const char* dn = compiler::directionName(d);
    // Ingress: the local endpoint is the destination and the peer the source; egress: the reverse.
    const char* local = d == Direction::kIngress ? "daddr" : "saddr";
    const char* remote = d == Direction::kIngress ? "saddr" : "daddr";
    out_ += fmt::format("\tchain {}{} {{\n", dn, f.suffix);
    out_ += fmt::format("\t\tmeta mark set meta mark & 0x{:08x}\n", keepMask());
    for (int n = 0; n < kNibbles; ++n) {
      out_ += fmt::format("\t\t{} {} vmap @remote{}_n{}_ranges\n", f.proto, remote, f.suffix, n);
      out_ += fmt::format("\t\t{} {} vmap @remote{}_n{}_exact\n", f.proto, remote, f.suffix, n);
    }
    std::string key = fmt::format("{} {} . meta mark & 0x{:08x} . meta l4proto", f.proto, local, o_.class_mask);
    // ICMP has no ports: its first 16 header bits are type << 8 | code, which nft reads as
    // "th sport".
    for (const char* kind : {"exact", "ranges"}) {
      out_ += fmt::format("\t\tmeta l4proto {{ icmp, ipv6-icmp }} {} . th sport vmap @{}{}_{}\n", key, dn, f.suffix, kind);
      out_ += fmt::format("\t\tmeta l4proto != {{ icmp, ipv6-icmp }} {} . th dport vmap @{}{}_{}\n", key, dn, f.suffix,
                          kind);
    }
    out_ += fmt::format("\t\t{} {} vmap @{}{}_default\n", f.proto, local, dn, f.suffix);
    out_ += "\t}\n";
  }

  void baseChain(const char* name, const char* hook, bool egress, bool ingress) {
    out_ += fmt::format("\tchain {} {{\n\t\ttype filter hook {} priority filter; policy accept;\n", name, hook);
    out_ += "\t\tct state established,related accept\n";
    out_ += "\t\tct state invalid drop\n";
    // Neighbour discovery is never blocked: without it no IPv6 traffic flows at all.
    out_ += "\t\ticmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept\n";
    for (const Fam& f : kFams) {
      if (egress) out_ += fmt::format("\t\t{} saddr @local{} jump egress{}\n", f.proto, f.suffix, f.suffix);
      if (ingress) out_ += fmt::format("\t\t{} daddr @local{} jump ingress{}\n", f.proto, f.suffix, f.suffix);
    }
    out_ += fmt::format("\t\tmeta mark set meta mark & 0x{:08x}\n", keepMask());
    out_ += "\t}\n";
  }

  const NodeTable& t_;
  const NftOptions& o_;
  int shift_;
  std::string out_;
};

}  // namespace

std::string renderNft(const NodeTable& table, const NftOptions& options) {
  return Renderer(table, options).run();
}

}  // namespace zonewall::dataplane
