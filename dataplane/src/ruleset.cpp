#include "zonewall/dataplane/ruleset.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <optional>
#include <set>
#include <unordered_map>

#include "zonewall/base/hash.h"

namespace zonewall::dataplane {
namespace {

using compiler::Direction;
using compiler::Entry;
using compiler::NodeTable;
using compiler::Outcome;

constexpr const char* kLogChainPrefix = "log_";
constexpr const char* kClassChainPrefix = "rc_";
constexpr Family kFamilies[] = {Family::kV4, Family::kV6};

const char* suffix(Family f) { return f == Family::kV4 ? "4" : "6"; }

Verdict jumpTo(std::string chain) { return {Verdict::Kind::kJump, std::move(chain)}; }
Verdict gotoTo(std::string chain) { return {Verdict::Kind::kGoto, std::move(chain)}; }
// A verdict map's answer. Allowed: back to the base chain (which goes on to the other
// direction); denied: on to the rest of the lookup rule, "counter drop".
Verdict mapVerdict(bool allow) {
  return {allow ? Verdict::Kind::kReturn : Verdict::Kind::kContinue, {}};
}

class Builder {
 public:
  Builder(const NodeTable& t, const NftOptions& o)
      : t_(t), o_(o), shift_(std::countr_zero(o.class_mask)) {
    rs_.table = o.table;
    rs_.class_mask = o.class_mask;
  }

  Ruleset run() {
    for (const compiler::Attribution& a : t_.attributions) rs_.origins.push_back(a.str());
    logChains();
    classChains();
    for (Family f : kFamilies) {
      remoteMaps(f);
      localSet(f);
      sourceSet(f);
      for (Direction d : {Direction::kIngress, Direction::kEgress}) verdictMaps(f, d);
    }
    for (Family f : kFamilies) {
      for (Direction d : {Direction::kIngress, Direction::kEgress}) directionChain(f, d);
    }
    // Policy judges forwarded traffic only: Kubernetes NetworkPolicy always allows traffic
    // between a pod and its own node (kubelet's probes, node-local agents), which is what the
    // input and output hooks see. Input still drops spoofed sources from the pods.
    baseChain("forward", true);
    baseChain("input", false);
    // Range maps first, then the chains without set lookups: what a new table's first
    // transaction creates (see encodeCreate); the `nft -f` script keeps the same order.
    std::stable_partition(rs_.sets.begin(), rs_.sets.end(), isRangeSet);
    std::stable_partition(rs_.chains.begin(), rs_.chains.end(), needsNoSet);
    return std::move(rs_);
  }

 private:
  // Outcomes that log first get a chain of their own (Calico's Log action: nflog group 0);
  // outcomes that differ only in who decided share it.
  void logChains() {
    std::set<std::string> made;
    for (size_t i = 0; i < t_.outcomes.size(); ++i) {
      const Outcome& o = t_.outcomes[i];
      if (o.logs.empty() || !made.insert(outcomeChain(i)).second) continue;
      ChainDef c{outcomeChain(i), {}, {}};
      for (std::uint32_t l : o.logs) {
        const compiler::Attribution& la = t_.attributions[l];
        std::string prefix =
            fmt::format("zw {} {}", la.policy.substr(la.policy.find(' ') + 1), la.rule_index);
        if (prefix.size() > 60) prefix.resize(60);  // nflog prefixes are capped at 64 bytes
        c.rules.push_back({.kind = Rule::Kind::kLog, .log_group = 0, .text = prefix + ": "});
      }
      c.rules.push_back({.kind = Rule::Kind::kCounterVerdict,
                         .verdict = {o.allow ? Verdict::Kind::kReturn : Verdict::Kind::kDrop, {}}});
      rs_.chains.push_back(std::move(c));
    }
  }

  // A logging outcome's chain is named by what it does (verdict, direction, the Log rules),
  // not by its index in the table, so that it keeps its name across recompiles and an update
  // stays element-level.
  std::string outcomeChain(size_t i) const {
    const Outcome& o = t_.outcomes[i];
    std::string what = o.allow ? "allow" : "deny";
    what += compiler::directionName(t_.attributions[o.attribution].direction);
    // The Log rules by policy and index, not by file position: moving a policy within its file
    // must not rename the chain (and turn an element update into a table replace).
    for (std::uint32_t l : o.logs) {
      const compiler::Attribution& a = t_.attributions[l];
      what += fmt::format("|{}#{}", a.policy, a.rule_index);
    }
    return fmt::format("{}{:016x}", kLogChainPrefix, fnv1a(what));
  }

  // One chain per remote class in use, named by its id (a hash of its membership, so it keeps
  // its name across recompiles), that sets all 16 class bits: a packet's class comes from one
  // lookup, never from pieces that a commit between two lookups could mix. The chains come
  // and go with the classes, as Log chains do.
  void classChains() {
    std::set<compiler::RemoteClassId> ids;
    for (const auto& [a, id] : t_.remote_exact) ids.insert(id);
    for (const auto& [r, id] : t_.remote_ranges) ids.insert(id);
    for (compiler::RemoteClassId id : ids) {
      Rule r{.kind = Rule::Kind::kMarkAndOr,
             .mark_mask = ~o_.class_mask,
             .mark_bits = static_cast<std::uint32_t>(id) << shift_};
      rs_.chains.push_back({classChain(id), {}, {r}});
    }
  }

  static std::string classChain(compiler::RemoteClassId id) {
    return fmt::format("{}{:04x}", kClassChainPrefix, id);
  }

  // Ranges, then the exact map (pod addresses), which overrides: a pod's class never depends
  // on an interval lookup.
  void remoteMaps(Family f) {
    // One verdict per class, made once (the exact map has an element per pod address).
    std::unordered_map<compiler::RemoteClassId, Verdict> jumps;
    auto jump = [&](compiler::RemoteClassId id) -> const Verdict& {
      auto it = jumps.find(id);
      if (it == jumps.end()) it = jumps.emplace(id, jumpTo(classChain(id))).first;
      return it->second;
    };
    SetDef ranges{fmt::format("remote{}_ranges", suffix(f)), SetKind::kAddrIntervalVmap, f, {}};
    for (const auto& [r, id] : t_.remote_ranges) {
      if (Addr{r.lo}.family() == f && id != compiler::kNoRemoteClass) {
        ranges.elements.push_back(
            Element{.addr = Addr{r.lo}, .addr_hi = Addr{r.hi}, .verdict = jump(id)});
      }
    }
    SetDef exact{fmt::format("remote{}_exact", suffix(f)), SetKind::kAddrVmap, f, {}};
    exact.elements.reserve(t_.remote_exact.size());
    for (const auto& [a, id] : t_.remote_exact) {
      if (a.family() == f) exact.elements.push_back(Element{.addr = a, .verdict = jump(id)});
    }
    rs_.sets.push_back(std::move(ranges));
    rs_.sets.push_back(std::move(exact));
  }

  // The local addresses a direction has anything to say about. A local class whose default
  // is a plain allow (no policy, no log) and which has no entries allows everything: its
  // packets skip that direction's chain entirely, which halves the cost of a typical new flow
  // (egress is rarely restricted).
  void localSet(Family f) {
    for (Direction d : {Direction::kEgress, Direction::kIngress}) {
      const auto& dt = t_.dir(d);
      std::vector<Addr> addrs;
      for (const auto& lc : dt.classes) {
        if (lc.family != f) continue;
        const Outcome& def = t_.outcomes[lc.default_outcome];
        bool has_entries = std::any_of(dt.entries.begin(), dt.entries.end(),
                                       [&](const Entry& e) { return e.local_class == lc.id; });
        if (def.allow && def.logs.empty() && !has_entries) continue;
        addrs.insert(addrs.end(), lc.addrs.begin(), lc.addrs.end());
      }
      std::sort(addrs.begin(), addrs.end());
      SetDef s{fmt::format("{}_local{}", compiler::directionName(d), suffix(f)),
               SetKind::kAddrSet,
               f,
               {}};
      for (Addr a : addrs) s.elements.push_back(Element{.addr = a});
      rs_.sets.push_back(std::move(s));
    }
  }

  void sourceSet(Family f) {
    SetDef s{fmt::format("pod_src{}", suffix(f)), SetKind::kIfaceAddrSet, f, {}};
    for (const auto& ep : t_.endpoints) {
      for (Addr a : ep.addrs) {
        if (a.family() == f) s.elements.push_back(Element{.iface = ep.iface, .addr = a});
      }
    }
    rs_.sets.push_back(std::move(s));
  }

  std::uint32_t originOf(std::uint32_t outcome) const {
    return t_.outcomes[outcome].attribution + 1;
  }

  Verdict verdictOf(std::uint32_t outcome) const {
    const Outcome& o = t_.outcomes[outcome];
    if (!o.logs.empty()) return gotoTo(outcomeChain(outcome));
    return mapVerdict(o.allow);
  }

  void verdictMaps(Family f, Direction d) {
    const char* dn = compiler::directionName(d);
    const auto& dt = t_.dir(d);
    SetDef exact{fmt::format("{}{}_exact", dn, suffix(f)), SetKind::kConcatVmap, f, {}};
    SetDef ranges{fmt::format("{}{}_ranges", dn, suffix(f)), SetKind::kConcatIntervalVmap, f, {}};
    SetDef any{fmt::format("{}{}_any", dn, suffix(f)), SetKind::kAddrMarkVmap, f, {}};
    SetDef defaults{fmt::format("{}{}_default", dn, suffix(f)), SetKind::kAddrVmap, f, {}};
    for (const auto& lc : dt.classes) {
      if (lc.family != f) continue;
      for (Addr a : lc.addrs) {
        defaults.elements.push_back(Element{.addr = a,
                                            .verdict = verdictOf(lc.default_outcome),
                                            .origin = originOf(lc.default_outcome)});
      }
      auto it =
          std::lower_bound(dt.entries.begin(), dt.entries.end(), lc.id,
                           [](const Entry& e, std::uint32_t id) { return e.local_class < id; });
      for (; it != dt.entries.end() && it->local_class == lc.id; ++it) {
        const Entry& e = *it;
        // Exact keys (one protocol, one port) go to the hash map, whose deletes are cheap.
        bool single = e.proto_lo == e.proto_hi && e.port_lo == e.port_hi;
        for (Addr a : lc.addrs) {
          Element el{.addr = a,
                     .mark = static_cast<std::uint32_t>(e.remote_class) << shift_,
                     .proto_lo = e.proto_lo,
                     .proto_hi = e.proto_hi,
                     .port_lo = e.port_lo,
                     .port_hi = e.port_hi,
                     .verdict = verdictOf(e.outcome),
                     .origin = originOf(e.outcome)};
          bool everything =
              e.proto_lo == 0 && e.proto_hi == 255 && e.port_lo == 0 && e.port_hi == 65535;
          (single ? exact : everything ? any : ranges).elements.push_back(el);
        }
      }
    }
    std::sort(defaults.elements.begin(), defaults.elements.end(),
              [](const Element& x, const Element& y) { return x.addr < y.addr; });
    rs_.sets.push_back(std::move(exact));
    rs_.sets.push_back(std::move(any));
    rs_.sets.push_back(std::move(ranges));
    rs_.sets.push_back(std::move(defaults));
  }

  void directionChain(Family f, Direction d) {
    const char* dn = compiler::directionName(d);
    // Ingress: the local endpoint is the destination and the peer the source; egress: the reverse.
    bool local_is_source = d == Direction::kEgress;
    ChainDef c{fmt::format("{}{}", dn, suffix(f)), {}, {}};
    c.rules.push_back({.kind = Rule::Kind::kMarkAnd, .count = true, .mark_mask = ~o_.class_mask});
    for (const char* kind : {"ranges", "exact"}) {
      c.rules.push_back({.kind = Rule::Kind::kAddrVmap,
                         .family = f,
                         .source = !local_is_source,
                         .set = fmt::format("remote{}_{}", suffix(f), kind)});
    }
    auto verdictMapRules = [&](ChainDef& chain, const std::string& set) {
      for (bool icmp : {true, false}) {
        chain.rules.push_back({.kind = Rule::Kind::kVerdictMap,
                               .family = f,
                               .source = local_is_source,
                               .icmp = icmp,
                               .counted_drop = true,
                               .mark_mask = o_.class_mask,
                               .set = set});
      }
    };
    verdictMapRules(c, fmt::format("{}{}_exact", dn, suffix(f)));
    c.rules.push_back({.kind = Rule::Kind::kAnyMap,
                       .family = f,
                       .source = local_is_source,
                       .counted_drop = true,
                       .mark_mask = o_.class_mask,
                       .set = fmt::format("{}{}_any", dn, suffix(f))});
    // The range map's lookups (and the default after them) sit in a chain of their own, which
    // a rebuilt range map's swap rewrites, never this one. It is reached by goto, not jump: the
    // allow chains return, and must return to the base chain, not to this one's default.
    std::string ranges = fmt::format("{}{}_ranges", dn, suffix(f));
    ChainDef rng{swapChainName(ranges), {}, {}};
    verdictMapRules(rng, ranges);
    rng.rules.push_back({.kind = Rule::Kind::kAddrVmap,
                         .family = f,
                         .source = local_is_source,
                         .counted_drop = true,
                         .set = fmt::format("{}{}_default", dn, suffix(f))});
    rs_.chains.push_back(std::move(rng));
    c.rules.push_back({.kind = Rule::Kind::kGoto, .verdict = gotoTo(swapChainName(ranges))});
    rs_.chains.push_back(std::move(c));
  }

  // A base chain: conntrack's verdicts, then a goto to the chain of the packet's family
  // (forward4, forward6, ...), so that an IPv4 packet never walks the IPv6 rules nor the
  // reverse. Reached by goto, the family chain ends in the base chain's policy, accept.
  void baseChain(const char* hook, bool policy) {
    ChainDef c{hook, hook, {}};
    c.rules.push_back({.kind = Rule::Kind::kCtEstablished});
    c.rules.push_back({.kind = Rule::Kind::kCtInvalid});
    for (Family f : kFamilies) {
      std::string chain = fmt::format("{}{}", hook, suffix(f));
      c.rules.push_back({.kind = Rule::Kind::kFamilyGoto, .family = f, .verdict = gotoTo(chain)});
      rs_.chains.push_back(familyChain(chain, f, policy));
    }
    rs_.chains.push_back(std::move(c));
  }

  ChainDef familyChain(const std::string& name, Family f, bool policy) const {
    ChainDef c{name, {}, {}};
    if (f == Family::kV6) {
      // Neighbour discovery is never blocked: without it no IPv6 traffic flows at all.
      // ICMPv6 133..136: router solicitation and advertisement, neighbour solicitation and
      // advertisement (RFC 4861).
      for (std::uint8_t type = 133; type <= 136; ++type) {
        c.rules.push_back({.kind = Rule::Kind::kNdpAccept, .icmp_type = type});
      }
    }
    // Anti-spoofing: what comes in from a pod's host veth carries that pod's address.
    c.rules.push_back({.kind = Rule::Kind::kAntiSpoof,
                       .family = f,
                       .set = fmt::format("pod_src{}", suffix(f)),
                       .text = kHostVethPrefix});
    if (policy) {
      c.rules.push_back({.kind = Rule::Kind::kLocalJump,
                         .family = f,
                         .source = true,
                         .set = fmt::format("egress_local{}", suffix(f)),
                         .verdict = jumpTo(fmt::format("egress{}", suffix(f)))});
      c.rules.push_back({.kind = Rule::Kind::kLocalJump,
                         .family = f,
                         .source = false,
                         .set = fmt::format("ingress_local{}", suffix(f)),
                         .verdict = jumpTo(fmt::format("ingress{}", suffix(f)))});
      c.rules.push_back({.kind = Rule::Kind::kMarkAnd, .mark_mask = ~o_.class_mask});
    }
    return c;
  }

  const NodeTable& t_;
  const NftOptions& o_;
  int shift_;
  Ruleset rs_;
};

}  // namespace

const SetDef* Ruleset::findSet(const std::string& name) const {
  for (const SetDef& s : sets) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const ChainDef* Ruleset::findChain(const std::string& name) const {
  for (const ChainDef& c : chains) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

Ruleset buildRuleset(const NodeTable& table, const NftOptions& options) {
  return Builder(table, options).run();
}

}  // namespace zonewall::dataplane

namespace zonewall::dataplane {

namespace {
constexpr std::string_view kAlternateSuffix = "_b";
constexpr std::string_view kRangesSuffix = "_ranges";
constexpr std::string_view kDefaultSuffix = "_default";

std::string_view firstName(std::string_view name) {
  if (name.ends_with(kAlternateSuffix)) name.remove_suffix(kAlternateSuffix.size());
  return name;
}
}  // namespace

bool isRangeSet(const SetDef& s) { return s.kind == SetKind::kConcatIntervalVmap; }

bool needsNoSet(const ChainDef& c) {
  return c.hook.empty() &&
         std::ranges::all_of(c.rules, [](const Rule& r) { return r.set.empty(); });
}

bool isRangeSetName(const std::string& name) {
  return isSwappedSetName(name) && firstName(name).ends_with(kRangesSuffix);
}

bool isSwappedSetName(const std::string& name) {
  std::string_view first = firstName(name);
  bool verdicts =
      first.starts_with("ingress") || first.starts_with("egress");  // not the remote class maps
  return verdicts && (first.ends_with(kRangesSuffix) || first.ends_with(kDefaultSuffix));
}

std::string alternateSet(const std::string& name) {
  if (name.ends_with(kAlternateSuffix))
    return name.substr(0, name.size() - kAlternateSuffix.size());
  return name + std::string(kAlternateSuffix);
}

std::string swapChainName(const std::string& set) {
  std::string_view base = firstName(set);
  for (std::string_view suffix : {kRangesSuffix, kDefaultSuffix}) {
    if (base.ends_with(suffix)) base.remove_suffix(suffix.size());
  }
  return std::string(base) + "_rng";
}

ChainDef withAlternateSets(ChainDef c) {
  for (Rule& r : c.rules) {
    if (isSwappedSetName(r.set)) r.set = alternateSet(r.set);
  }
  return c;
}

void renameSwappedSet(Ruleset& rs, const std::string& from, const std::string& to) {
  for (SetDef& s : rs.sets) {
    if (s.name == from) s.name = to;
  }
  for (ChainDef& c : rs.chains) {
    if (c.name != swapChainName(from)) continue;
    for (Rule& r : c.rules) {
      if (r.set == from) r.set = to;
    }
  }
}

}  // namespace zonewall::dataplane
