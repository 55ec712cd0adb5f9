// Ruleset → `nft -f` text.
#include <fmt/format.h>

#include "zonewall/dataplane/ruleset.h"

namespace zonewall::dataplane {
namespace {

std::string addrText(Addr a) { return formatAddr(a); }

std::string verdictText(const Verdict& v) {
  switch (v.kind) {
    case Verdict::Kind::kAccept:
      return "accept";
    case Verdict::Kind::kDrop:
      return "drop";
    case Verdict::Kind::kReturn:
      return "return";
    case Verdict::Kind::kJump:
      return "jump " + v.chain;
    case Verdict::Kind::kGoto:
      return "goto " + v.chain;
    case Verdict::Kind::kContinue:
      return "continue";
  }
  return "accept";
}

std::string range(unsigned lo, unsigned hi) {
  return lo == hi ? fmt::format("{}", lo) : fmt::format("{}-{}", lo, hi);
}

std::string elementText(const SetDef& s, const Element& e) {
  switch (s.kind) {
    case SetKind::kAddrSet:
      return addrText(e.addr);
    case SetKind::kAddrVmap:
      return fmt::format("{} : {}", addrText(e.addr), verdictText(e.verdict));
    case SetKind::kAddrIntervalVmap: {
      std::string key =
          e.addr == e.addr_hi ? addrText(e.addr) : addrText(e.addr) + "-" + addrText(e.addr_hi);
      return fmt::format("{} : {}", key, verdictText(e.verdict));
    }
    case SetKind::kIfaceAddrSet:
      return fmt::format("\"{}\" . {}", e.iface, addrText(e.addr));
    case SetKind::kAddrMarkVmap:
      return fmt::format("{} . 0x{:08x} : {}", addrText(e.addr), e.mark, verdictText(e.verdict));
    case SetKind::kConcatVmap:
    case SetKind::kConcatIntervalVmap:
      return fmt::format("{} . 0x{:08x} . {} . {} : {}", addrText(e.addr), e.mark,
                         range(e.proto_lo, e.proto_hi), range(e.port_lo, e.port_hi),
                         verdictText(e.verdict));
  }
  return "";
}

std::string setText(const SetDef& s) {
  const char* addr_type = s.family == Family::kV4 ? "ipv4_addr" : "ipv6_addr";
  std::string type;
  bool interval = false;
  bool map = true;
  switch (s.kind) {
    case SetKind::kAddrSet:
      type = addr_type;
      map = false;
      break;
    case SetKind::kAddrVmap:
      type = fmt::format("{} : verdict", addr_type);
      break;
    case SetKind::kAddrIntervalVmap:
      type = fmt::format("{} : verdict", addr_type);
      interval = true;
      break;
    case SetKind::kConcatVmap:
      type = fmt::format("{} . mark . inet_proto . inet_service : verdict", addr_type);
      break;
    case SetKind::kConcatIntervalVmap:
      type = fmt::format("{} . mark . inet_proto . inet_service : verdict", addr_type);
      interval = true;
      break;
    case SetKind::kIfaceAddrSet:
      type = fmt::format("ifname . {}", addr_type);
      map = false;
      break;
    case SetKind::kAddrMarkVmap:
      type = fmt::format("{} . mark : verdict", addr_type);
      break;
  }
  std::string out = fmt::format("\t{} {} {{\n\t\ttype {}\n", map ? "map" : "set", s.name, type);
  if (interval) out += "\t\tflags interval\n";
  if (!s.elements.empty()) {
    // A few per line so that large maps stay readable in diffs.
    out += "\t\telements = { ";
    for (size_t i = 0; i < s.elements.size(); ++i) {
      if (i) out += ",\n\t\t\t     ";
      out += elementText(s, s.elements[i]);
    }
    out += " }\n";
  }
  return out + "\t}\n";
}

std::string ruleBody(const Rule& r);

std::string ruleText(const Rule& r) {
  std::string out = ruleBody(r);
  if (r.count) out += " counter";
  if (r.counted_drop) out += " counter drop";
  return out;
}

std::string ruleBody(const Rule& r) {
  const char* proto = r.family == Family::kV4 ? "ip" : "ip6";
  const char* field = r.source ? "saddr" : "daddr";
  switch (r.kind) {
    case Rule::Kind::kMarkAnd:
      return fmt::format("meta mark set meta mark & 0x{:08x}", r.mark_mask);
    case Rule::Kind::kMarkAndOr:
      return fmt::format("meta mark set meta mark & 0x{:08x} | 0x{:08x}", r.mark_mask, r.mark_bits);
    case Rule::Kind::kCtEstablished:
      return "ct state established,related accept";
    case Rule::Kind::kCtInvalid:
      return "ct state invalid drop";
    case Rule::Kind::kCounterVerdict:
      return "counter " + verdictText(r.verdict);
    case Rule::Kind::kNdpAccept:
      return fmt::format("icmpv6 type {} accept", r.icmp_type);
    case Rule::Kind::kLocalJump:
      return fmt::format("{} {} @{} {}", proto, field, r.set, verdictText(r.verdict));
    case Rule::Kind::kAddrVmap:
      return fmt::format("{} {} vmap @{}", proto, field, r.set);
    case Rule::Kind::kVerdictMap: {
      // ICMP has no ports: its first 16 header bits are type << 8 | code ("th sport").
      const char* icmp = r.family == Family::kV4 ? "icmp" : "ipv6-icmp";
      return fmt::format(
          "meta l4proto {}{} {} {} . meta mark & 0x{:08x} . meta l4proto . th {} vmap @{}",
          r.icmp ? "" : "!= ", icmp, proto, field, r.mark_mask, r.icmp ? "sport" : "dport", r.set);
    }
    case Rule::Kind::kLog:
      return fmt::format("log prefix \"{}\" group {}", r.text, r.log_group);
    case Rule::Kind::kGoto:
      return verdictText(r.verdict);
    case Rule::Kind::kFamilyGoto:
      return fmt::format("meta nfproto {} {}", r.family == Family::kV4 ? "ipv4" : "ipv6",
                         verdictText(r.verdict));
    case Rule::Kind::kAnyMap:
      return fmt::format("{} {} . meta mark & 0x{:08x} vmap @{}", proto, field, r.mark_mask, r.set);
    case Rule::Kind::kAntiSpoof:
      return fmt::format("iifname \"{}*\" iifname . {} saddr != @{} drop", r.text, proto, r.set);
  }
  return "";
}

}  // namespace

std::string renderNft(const Ruleset& rs, const std::string& header) {
  std::string out = header;
  out += fmt::format("table inet {} {{\n", rs.table);
  for (const SetDef& s : rs.sets) out += setText(s);
  for (const ChainDef& c : rs.chains) {
    out += fmt::format("\tchain {} {{\n", c.name);
    if (!c.hook.empty())
      out += fmt::format("\t\ttype filter hook {} priority filter; policy accept;\n", c.hook);
    for (const Rule& r : c.rules) out += "\t\t" + ruleText(r) + "\n";
    out += "\t}\n";
  }
  return out + "}\n";
}

std::string renderNft(const compiler::NodeTable& table, const NftOptions& options) {
  return renderNft(
      buildRuleset(table, options),
      fmt::format("# zonewall node table for node '{}': {} entries, {} remote classes\n",
                  table.node, table.entryCount(), table.remote_classes.size()));
}

}  // namespace zonewall::dataplane
