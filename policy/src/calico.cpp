// Calico projectcalico.org/v3: NetworkPolicy, GlobalNetworkPolicy, NetworkSet,
// GlobalNetworkSet, Tier.
#include <cctype>
#include <cmath>

#include "names.h"
#include "reader.h"

namespace zonewall::policy {
namespace {

std::optional<PortSpec> calicoPort(Reader& r, const YAML::Node& n) {
  if (auto v = Reader::plainInt(n)) {
    if (*v < 1 || *v > 65535) {
      r.error(
          n,
          fmt::format("port {}: port range invalid, port number must be between 1 and 65535", *v),
          "out-of-range");
      return std::nullopt;
    }
    return PortSpec{static_cast<std::uint16_t>(*v), static_cast<std::uint16_t>(*v), {}};
  }
  if (!n.IsScalar()) {
    r.error(n, "port must be a number, a 'lo:hi' range or a name", "invalid-port");
    return std::nullopt;
  }
  const std::string& s = n.Scalar();
  if (auto colon = s.find(':'); colon != std::string::npos) {
    int lo = -1;
    int hi = -1;
    auto [p1, e1] = std::from_chars(s.data(), s.data() + colon, lo);
    auto [p2, e2] = std::from_chars(s.data() + colon + 1, s.data() + s.size(), hi);
    if (e1 != std::errc() || e2 != std::errc() || p1 != s.data() + colon ||
        p2 != s.data() + s.size() || lo < 1 || hi > 65535 || lo > hi) {
      r.error(n, fmt::format("invalid port range '{}' (want lo:hi, 1 <= lo <= hi <= 65535)", s),
              "invalid-port");
      return std::nullopt;
    }
    return PortSpec{static_cast<std::uint16_t>(lo), static_cast<std::uint16_t>(hi), {}};
  }
  if (!validPortName(s)) {
    r.error(n, fmt::format("invalid port '{}'", s), "invalid-port");
    return std::nullopt;
  }
  return PortSpec{0, 0, s};
}

// Calico's name rules (libcalico-go validator/v3): which shape each kind's name must have.
enum NameRule { kNpName, kGnpName, kTierName, kSubdomainName };

void checkCalicoName(Reader& r, const YAML::Node& doc, const std::string& name, NameRule rule) {
  const YAML::Node at = doc["metadata"]["name"];
  if (name.size() > (rule == kTierName ? 63U : 253U)) {
    r.error(
        at,
        fmt::format("name is too long by {} bytes", name.size() - (rule == kTierName ? 63U : 253U)),
        "invalid-name");
    return;
  }
  bool ok = false;
  const char* shape = "lower case alphanumeric characters or '-'";
  switch (rule) {
    case kTierName:
      ok = isDns1123Label(name);
      break;
    case kSubdomainName:
      ok = isDns1123Subdomain(name);
      shape = "lower case alphanumeric characters, '-' or '.'";
      break;
    case kGnpName:
    case kNpName: {
      // A label, or two joined by one dot; a NetworkPolicy may also be knp.default.<subdomain>
      // or ossg.default.<subdomain>.
      size_t dot = name.find('.');
      ok = isDns1123Label(name) ||
           (dot != std::string::npos && isDns1123Label(name.substr(0, dot)) &&
            isDns1123Label(name.substr(dot + 1)));
      if (rule == kNpName && !ok) {
        for (const char* prefix : {"knp.default.", "ossg.default."}) {
          if (name.starts_with(prefix)) {
            ok = ok || isDns1123Subdomain(name.substr(std::string_view(prefix).size()));
          }
        }
      }
      break;
    }
  }
  if (!ok) r.error(at, fmt::format("name '{}' must consist of {}", name, shape), "invalid-name");
}

// Calico's list limits (kubebuilder MaxItems on its API types).
constexpr size_t kMaxRules = 1024;
constexpr size_t kMaxNets = 256;
constexpr size_t kMaxPorts = 50;

// Calico's CEL rule on every selector but a rule's namespaceSelector and notSelector.
void refuseGlobal(Reader& r, const YAML::Node& n, const std::string& what) {
  if (n && n.IsScalar() && n.Scalar().find("global(") != std::string::npos) {
    r.error(n,
            fmt::format("{}: global() can only be used in an EntityRule namespaceSelector", what),
            "invalid-selector");
  }
}

EntityRule readEntity(Reader& r, const YAML::Node& n, const std::string& what) {
  EntityRule e;
  if (!n || n.IsNull()) return e;
  e.loc = r.loc(n);
  if (!r.isMap(n, what)) {
    return e;
  }
  r.checkKeys(n,
              {"selector", "notSelector", "namespaceSelector", "nets", "notNets", "ports",
               "notPorts", "serviceAccounts", "services"},
              what);
  auto sel = [&](const char* key, std::optional<Selector>& out) {
    if (YAML::Node s = n[key]) {
      out = r.selectorText(s, what + "." + key);
    }
  };
  sel("selector", e.selector);
  sel("notSelector", e.not_selector);
  sel("namespaceSelector", e.namespace_selector);
  // global() stands only as a rule's whole namespaceSelector (Calico's CEL rule on EntityRule
  // and validateEntityRule); a notSelector may hold it, and there it matches like all().
  refuseGlobal(r, n["selector"], what + ".selector");
  if (YAML::Node ns = n["namespaceSelector"];
      ns && ns.IsScalar() && ns.Scalar().find("global(") != std::string::npos) {
    std::string bare;
    for (char c : ns.Scalar()) {
      if (c != ' ' && c != '\t') bare += c;
    }
    if (bare != "global()") {
      r.error(ns,
              fmt::format("{}.namespaceSelector: global() cannot be combined with other "
                          "selectors",
                          what),
              "invalid-selector");
    }
  }
  auto nets = [&](const char* key, std::vector<Cidr>& out) {
    if (YAML::Node ns = n[key]; ns && r.isSeq(ns, what + "." + key)) {
      if (ns.size() > kMaxNets) {
        r.error(
            ns,
            fmt::format("{}.{}: {} entries; Calico's limit is {}", what, key, ns.size(), kMaxNets),
            "too-many");
      }
      for (const YAML::Node& c : ns) {
        if (auto cidr = r.cidr(c, what + "." + key)) {
          out.push_back(*cidr);
        }
      }
    }
  };
  nets("nets", e.nets);
  nets("notNets", e.not_nets);
  auto ports = [&](const char* key, std::vector<PortSpec>& out) {
    if (YAML::Node ps = n[key]; ps && r.isSeq(ps, what + "." + key)) {
      if (ps.size() > kMaxPorts) {
        r.error(
            ps,
            fmt::format("{}.{}: {} entries; Calico's limit is {}", what, key, ps.size(), kMaxPorts),
            "too-many");
      }
      for (const YAML::Node& p : ps) {
        if (auto spec = calicoPort(r, p)) {
          out.push_back(*spec);
        }
      }
    }
  };
  ports("ports", e.ports);
  ports("notPorts", e.not_ports);
  for (const char* unsupported : {"serviceAccounts", "services"}) {
    if (n[unsupported]) {
      r.error(n[unsupported],
              fmt::format("{}.{} is not supported by zonewall; refusing to guess its meaning", what,
                          unsupported),
              "unsupported-field");
    }
  }
  return e;
}

std::optional<IcmpMatch> readIcmp(Reader& r, const YAML::Node& n, const char* what) {
  if (!r.isMap(n, what)) return std::nullopt;
  r.checkKeys(n, {"type", "code"}, what);
  IcmpMatch m;
  if (!n["type"]) {
    // Calico takes `icmp: {}` (it matches like no icmp field at all), not a code alone.
    if (n["code"]) {
      r.error(n, fmt::format("{}: ICMP code specified without an ICMP type", what),
              "missing-field");
    }
    return std::nullopt;
  }
  auto t = r.integer(n["type"], "icmp type", 0, 254);
  if (!t) return std::nullopt;
  m.type = static_cast<std::uint8_t>(*t);
  if (YAML::Node c = n["code"]) {
    auto cv = r.integer(c, "icmp code", 0, 255);
    if (!cv) return std::nullopt;
    m.code = static_cast<std::uint8_t>(*cv);
  }
  return m;
}

// A Calico protocol: one of its names, spelt exactly, or a number 1-255 (validateProtocol).
std::optional<Protocol> calicoProtocol(Reader& r, const YAML::Node& p, const char* key) {
  if (!p.IsScalar()) {
    r.error(p, fmt::format("{} must be a name or a number", key), "invalid-protocol");
    return std::nullopt;
  }
  const std::string& s = p.Scalar();
  int num = -1;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), num);
  if (!s.empty() && ec == std::errc() && end == s.data() + s.size()) {
    if (num < 1 || num > 255) {
      r.error(p, fmt::format("{} {}: protocol number invalid (1-255)", key, s), "invalid-protocol");
      return std::nullopt;
    }
    return static_cast<Protocol>(num);
  }
  for (const char* name : {"TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite"}) {
    if (s == name) return parseProtocol(s);
  }
  r.error(p,
          fmt::format("{} '{}': protocol name invalid (TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite, "
                      "spelt so, or a number)",
                      key, s),
          "invalid-protocol");
  return std::nullopt;
}

// Ports need a protocol that has them (Calico's validateRule): TCP, UDP or SCTP — not UDPLite.
// A rule without a protocol may list named ports only.
void checkRulePorts(Reader& r, const YAML::Node& n, const CalicoRule& rule) {
  const EntityRule& dst = rule.destination;
  const bool supports = rule.protocol && (*rule.protocol == kTcp || *rule.protocol == kUdp ||
                                          *rule.protocol == kSctp);
  for (auto [key, list] : {std::pair{"ports", &dst.ports}, std::pair{"notPorts", &dst.not_ports}}) {
    if (list->empty()) continue;
    const bool named_only =
        std::all_of(list->begin(), list->end(), [](const PortSpec& p) { return !p.name.empty(); });
    if (!rule.protocol && named_only) {
      // Calico matches a named port of any protocol here; zonewall needs to know which.
      r.error(r.locIn(n["destination"], key),
              fmt::format("destination.{}: named ports without a protocol are not supported by "
                          "zonewall; set the rule's protocol",
                          key),
              "unsupported-field");
    } else if (!rule.protocol) {
      r.error(r.locIn(n["destination"], key),
              fmt::format("destination.{}: rules with numeric port or port range must set "
                          "protocol to TCP or UDP or SCTP",
                          key),
              "invalid-rule");
    } else if (!supports) {
      r.error(r.locIn(n["destination"], key),
              fmt::format("destination.{}: rules that specify ports must set protocol to TCP or "
                          "UDP or SCTP",
                          key),
              "invalid-rule");
    }
  }
}

// Calico's validateRule over nets: one IP version per rule, the rule's own if it names one,
// and no notNets catch-all (it would match no traffic).
void checkRuleNets(Reader& r, const YAML::Node& n, const CalicoRule& rule) {
  bool seen_v4 = false;
  bool seen_v6 = false;
  auto scan = [&](const char* side, const char* key, const std::vector<Cidr>& nets) {
    bool v4 = false;
    bool v6 = false;
    const YAML::Node at = n[side] && n[side].IsMap() && n[side][key] ? n[side][key] : n;
    const bool negated = std::string_view(key) == "notNets";
    for (const Cidr& c : nets) {
      (c.family == Family::kV4 ? v4 : v6) = true;
      if (negated && c.prefix == 0) {
        r.error(at,
                fmt::format("{}.{}: catch-all CIDR {} in negation creates logical contradiction "
                            "(matches no traffic)",
                            side, key, c.str()),
                "invalid-rule");
      }
    }
    if (rule.ip_version &&
        ((v4 && *rule.ip_version != Family::kV4) || (v6 && *rule.ip_version != Family::kV6))) {
      r.error(at, fmt::format("{}.{}: rule IP version doesn't match CIDR version", side, key),
              "invalid-rule");
    }
    if ((v4 && seen_v6) || (v6 && seen_v4) || (v4 && v6)) {
      r.error(at, fmt::format("{}.{}: rule contains both IPv4 and IPv6 CIDRs", side, key),
              "invalid-rule");
    }
    seen_v4 = seen_v4 || v4;
    seen_v6 = seen_v6 || v6;
  };
  scan("source", "nets", rule.source.nets);
  scan("source", "notNets", rule.source.not_nets);
  scan("destination", "nets", rule.destination.nets);
  scan("destination", "notNets", rule.destination.not_nets);
}

std::vector<CalicoRule> readCalicoRules(Reader& r, const YAML::Node& rules,
                                        const std::string& what) {
  std::vector<CalicoRule> out;
  if (!rules || !r.isSeq(rules, what)) return out;
  if (rules.size() > kMaxRules) {
    r.error(rules, fmt::format("{}: {} rules; Calico's limit is {}", what, rules.size(), kMaxRules),
            "too-many");
  }
  for (const YAML::Node& n : rules) {
    if (!r.isMap(n, what + " rule")) {
      continue;
    }
    r.checkKeys(n,
                {"action", "protocol", "notProtocol", "icmp", "notICMP", "ipVersion", "source",
                 "destination", "http", "metadata"},
                what + " rule");
    auto proto = [&](const char* key, std::optional<Protocol>& dst) {
      if (YAML::Node p = n[key]) dst = calicoProtocol(r, p, key);
    };
    CalicoRule rule;
    rule.loc = r.loc(n);
    const size_t rule_mark = r.errorCount();
    if (YAML::Node a = n["action"]; a && a.IsScalar()) {
      // Calico's Action is an enum of exactly these spellings.
      const std::string& s = a.Scalar();
      if (s == "Allow") {
        rule.action = Action::kAllow;
      } else if (s == "Deny") {
        rule.action = Action::kDeny;
      } else if (s == "Pass") {
        rule.action = Action::kPass;
      } else if (s == "Log") {
        rule.action = Action::kLog;
      } else {
        r.error(a,
                fmt::format("unsupported action '{}': supported values: Allow, Deny, Log, Pass", s),
                "invalid-action");
      }
    } else {
      r.error(r.locIn(n, "action"), "rule needs an action", "missing-field");
    }
    proto("protocol", rule.protocol);
    proto("notProtocol", rule.not_protocol);
    if (YAML::Node i = n["icmp"]) {
      rule.icmp = readIcmp(r, i, "icmp");
    }
    if (YAML::Node i = n["notICMP"]) {
      rule.not_icmp = readIcmp(r, i, "notICMP");
    }
    if (n["icmp"] && !(rule.protocol && isIcmp(*rule.protocol))) {
      r.error(n["icmp"], "ICMP fields require protocol to be ICMP or ICMPv6", "invalid-rule");
    }
    if (n["notICMP"] && !(rule.protocol && isIcmp(*rule.protocol))) {
      // Calico's validator lets this pass, but Felix cannot render an ICMP match without
      // the protocol; zonewall will not guess.
      r.error(n["notICMP"], "notICMP needs protocol ICMP or ICMPv6", "invalid-rule");
    }
    if (YAML::Node v = n["ipVersion"]) {
      auto iv = Reader::plainInt(v);
      if (iv == 4) {
        rule.ip_version = Family::kV4;
      } else if (iv == 6) {
        rule.ip_version = Family::kV6;
      } else {
        r.error(v, "ipVersion must be 4 or 6", "invalid-field");
      }
    }
    // Calico's CEL rules on Rule: ICMP is IPv4's, ICMPv6 is IPv6's.
    for (auto [key, p] :
         {std::pair{"protocol", rule.protocol}, std::pair{"notProtocol", rule.not_protocol}}) {
      if (p && rule.ip_version) {
        if (*p == kIcmp && *rule.ip_version != Family::kV4) {
          r.error(n[key], "protocol ICMP requires ipVersion 4", "invalid-rule");
        } else if (*p == kIcmpV6 && *rule.ip_version != Family::kV6) {
          r.error(n[key], "protocol ICMPv6 requires ipVersion 6", "invalid-rule");
        }
      }
    }
    if (n["http"]) {
      r.error(n["http"], "http match is not supported by zonewall (needs an L7 proxy)",
              "unsupported-field");
    }
    rule.source = readEntity(r, n["source"], "source");
    rule.destination = readEntity(r, n["destination"], "destination");
    if (!rule.source.ports.empty() || !rule.source.not_ports.empty()) {
      r.error(r.locIn(n["source"], rule.source.ports.empty() ? "notPorts" : "ports"),
              "source ports are not supported by zonewall", "unsupported-field");
    }
    checkRulePorts(r, n, rule);
    checkRuleNets(r, n, rule);
    if (r.errorCount() == rule_mark) {
      out.push_back(std::move(rule));
    }
  }
  return out;
}

std::optional<double> readOrder(Reader& r, const YAML::Node& n) {
  if (!n || n.IsNull()) return std::nullopt;
  try {
    double d = n.as<double>();
    if (!std::isfinite(d)) throw YAML::Exception(n.Mark(), "not finite");
    return d;
  } catch (const YAML::Exception&) {
    r.error(n, "order must be a number", "invalid-field");
    return std::nullopt;
  }
}

}  // namespace

void readCalicoPolicy(Reader& r, const YAML::Node& doc, Store& store, bool global) {
  const char* kind = global ? "GlobalNetworkPolicy" : "NetworkPolicy";
  const size_t mark = r.errorCount();
  Meta m = readMeta(r, doc, !global, kind);
  YAML::Node spec = doc["spec"];
  if (!spec || !spec.IsMap()) {
    r.error(spec ? spec : doc, fmt::format("{} needs a spec", kind), "missing-field");
    return;
  }
  if (m.name.empty()) return;
  r.checkKeys(
      spec,
      {"tier", "order", "selector", "namespaceSelector", "types", "ingress", "egress",
       "serviceAccountSelector", "doNotTrack", "preDNAT", "applyOnForward", "performanceHints"},
      std::string(kind) + " spec");
  CalicoPolicy pol;
  pol.global = global;
  pol.ns = global ? "" : m.ns;
  pol.name = m.name;
  pol.loc = r.loc(doc);
  if (YAML::Node t = spec["tier"]; t && t.IsScalar() && !t.Scalar().empty()) pol.tier = t.Scalar();
  pol.order = readOrder(r, spec["order"]);
  checkCalicoName(r, doc, m.name, global ? kGnpName : kNpName);
  if (YAML::Node s = spec["selector"]) {
    refuseGlobal(r, s, "spec.selector");
    auto sel = r.selectorText(s, "spec.selector");
    if (sel) {
      pol.selector = *sel;
    }
  }
  if (YAML::Node s = spec["namespaceSelector"]) {
    if (!global) {
      r.error(s, "namespaceSelector is only valid in a GlobalNetworkPolicy", "invalid-field");
    } else {
      refuseGlobal(r, s, "spec.namespaceSelector");
      pol.namespace_selector = r.selectorText(s, "spec.namespaceSelector");
    }
  }
  if (spec["serviceAccountSelector"]) {
    r.error(spec["serviceAccountSelector"], "serviceAccountSelector is not supported by zonewall",
            "unsupported-field");
  }
  for (const char* host_only : {"doNotTrack", "preDNAT", "applyOnForward"}) {
    if (YAML::Node f = spec[host_only]; f && f.IsScalar() && f.Scalar() == "true") {
      r.error(
          f, fmt::format("{} applies to host endpoints, which zonewall does not manage", host_only),
          "unsupported-field");
    }
  }
  pol.ingress_rules = readCalicoRules(r, spec["ingress"], "ingress");
  pol.egress_rules = readCalicoRules(r, spec["egress"], "egress");
  if (YAML::Node types = spec["types"]; types && !types.IsNull()) {
    if (r.isSeq(types, "types")) {
      if (types.size() == 0) {
        r.error(types, "types: should have at least 1 item (or be left out)", "invalid-field");
      }
      for (const YAML::Node& t : types) {
        bool& flag = t.IsScalar() && t.Scalar() == "Egress" ? pol.egress : pol.ingress;
        if (!t.IsScalar() || (t.Scalar() != "Ingress" && t.Scalar() != "Egress")) {
          r.error(t, "types entries must be Ingress or Egress", "invalid-field");
        } else if (flag) {
          r.error(t, fmt::format("'{}' type specified more than once", t.Scalar()),
                  "invalid-field");
        }
        flag = true;
      }
    }
  } else {
    // Calico defaulting: Egress when there are only egress rules, both when there are both,
    // Ingress otherwise.
    bool has_in = spec["ingress"] && spec["ingress"].IsSequence() && spec["ingress"].size() > 0;
    bool has_eg = spec["egress"] && spec["egress"].IsSequence() && spec["egress"].size() > 0;
    pol.ingress = has_in || !has_eg;
    pol.egress = has_eg;
  }
  if (!pol.ingress && !pol.ingress_rules.empty()) {
    r.warning(spec["ingress"], "ingress rules are ignored: types does not include Ingress",
              "ignored-rules");
  }
  if (!pol.egress && !pol.egress_rules.empty()) {
    r.warning(spec["egress"], "egress rules are ignored: types does not include Egress",
              "ignored-rules");
  }
  keepUnlessErrors(r, mark, store.calico_policies, std::move(pol));
}

void readNetworkSet(Reader& r, const YAML::Node& doc, Store& store, bool global) {
  const char* kind = global ? "GlobalNetworkSet" : "NetworkSet";
  const size_t mark = r.errorCount();
  Meta m = readMeta(r, doc, !global, kind);
  if (m.name.empty()) return;
  checkCalicoName(r, doc, m.name, kSubdomainName);
  if (m.labels.contains(kCalicoNamespaceLabel)) {
    r.error(r.locIn(doc["metadata"]["labels"], kCalicoNamespaceLabel),
            fmt::format("{} is not a valid label name", kCalicoNamespaceLabel), "invalid-label");
  }
  NetworkSet set{global, global ? "" : m.ns, m.name, m.labels, {}, r.loc(doc)};
  YAML::Node spec = doc["spec"];
  if (spec && spec.IsMap()) {
    r.checkKeys(spec, {"nets", "allowedEgressDomains"}, std::string(kind) + " spec");
    if (YAML::Node nets = spec["nets"]; nets && r.isSeq(nets, "spec.nets")) {
      for (const YAML::Node& c : nets) {
        if (auto cidr = r.cidr(c, "spec.nets")) set.nets.push_back(*cidr);
      }
    }
    if (spec["allowedEgressDomains"]) {
      r.error(spec["allowedEgressDomains"], "allowedEgressDomains is not supported by zonewall",
              "unsupported-field");
    }
  }
  keepUnlessErrors(r, mark, store.network_sets, std::move(set));
}

void readTier(Reader& r, const YAML::Node& doc, Store& store) {
  const size_t mark = r.errorCount();
  Meta m = readMeta(r, doc, false, "Tier");
  if (m.name.empty()) return;
  checkCalicoName(r, doc, m.name, kTierName);
  Tier tier{m.name, std::nullopt, Action::kDeny, r.loc(doc)};
  YAML::Node spec = doc["spec"];
  if (spec && spec.IsMap()) {
    r.checkKeys(spec, {"order", "defaultAction"}, "Tier spec");
    tier.order = readOrder(r, spec["order"]);
    if (YAML::Node da = spec["defaultAction"]; da && da.IsScalar()) {
      if (da.Scalar() == "Deny") {
        tier.default_action = Action::kDeny;
      } else if (da.Scalar() == "Pass") {
        tier.default_action = Action::kPass;
      } else {
        r.error(da, "defaultAction must be Deny or Pass", "invalid-field");
      }
    }
  }
  // Calico's CEL rules on its well-known tiers.
  struct WellKnown {
    const char* name;
    double order;
    Action action;
  };
  for (const WellKnown& w : {WellKnown{kDefaultTier, kDefaultTierOrder, Action::kDeny},
                             WellKnown{kKubeAdminTier, kKubeAdminTierOrder, Action::kPass},
                             WellKnown{kKubeBaselineTier, kKubeBaselineTierOrder, Action::kPass}}) {
    if (tier.name != w.name) continue;
    if (tier.order != w.order) {
      r.error(spec && spec["order"] ? spec["order"] : doc,
              fmt::format("{} tier order must be {}", w.name, w.order), "invalid-field");
    }
    if (tier.default_action != w.action) {
      r.error(spec && spec.IsMap() && spec["defaultAction"] ? spec["defaultAction"] : doc,
              fmt::format("The '{}' tier must have default action '{}'", w.name,
                          w.action == Action::kDeny ? "Deny" : "Pass"),
              "invalid-field");
    }
  }
  keepUnlessErrors(r, mark, store.tiers, std::move(tier));
}

void readStagedPolicy(Reader& r, const YAML::Node& doc, Store& store) {
  const std::string kind = doc["kind"].Scalar();
  const bool k8s = kind == "StagedKubernetesNetworkPolicy";
  const bool global = kind == "StagedGlobalNetworkPolicy";
  const size_t mark = r.errorCount();
  StagedPolicy staged;
  staged.loc = r.loc(doc);
  YAML::Node spec = doc["spec"];
  if (spec && spec.IsMap()) {
    if (YAML::Node a = spec["stagedAction"]) {
      const std::string v = a.IsScalar() ? a.Scalar() : "?";
      if (v == "Set") {
        staged.action = StagedAction::kSet;
      } else if (v == "Delete") {
        staged.action = StagedAction::kDelete;
      } else if (v == "Learn") {
        staged.action = StagedAction::kLearn;
      } else if (v == "Ignore") {
        staged.action = StagedAction::kIgnore;
      } else {
        r.error(a,
                fmt::format("unsupported stagedAction '{}': supported values: Set, Delete, Learn, "
                            "Ignore",
                            v),
                "invalid-field");
      }
    }
    if (staged.action == StagedAction::kDelete) {
      // Calico's validator: a Delete names its target and nothing else (a Calico one may keep
      // its tier).
      for (const auto& kv : spec) {
        const std::string& k = kv.first.Scalar();
        if (k != "stagedAction" && (k8s || k != "tier")) {
          r.error(kv.first,
                  fmt::format("spec.{}: Spec fields{} should all be zero-value if stagedAction "
                              "is Delete",
                              k, k8s ? "" : ", except Tier,"),
                  "invalid-field");
        }
      }
    }
  }
  // The rest is the policy it would become, read by the enforced kind's reader. A Delete
  // only names its target.
  Store one;
  if (k8s && staged.action == StagedAction::kDelete) {
    Meta m = readMeta(r, doc, true, kind);
    if (!m.name.empty())
      one.k8s_policies.push_back(K8sPolicy{m.ns, m.name, {}, false, false, {}, {}, r.loc(doc)});
  } else {
    r.alsoKnow("stagedAction");
    if (k8s) {
      readK8sPolicy(r, doc, one);
    } else {
      readCalicoPolicy(r, doc, one, global);
    }
    r.alsoKnow("");
  }
  if (r.errorCount() != mark) return;  // the reader said why
  if (k8s && !one.k8s_policies.empty()) {
    staged.policy = std::move(one.k8s_policies.front());
  } else if (!k8s && !one.calico_policies.empty()) {
    staged.policy = std::move(one.calico_policies.front());
  } else {
    return;
  }
  store.staged.push_back(std::move(staged));
}

}  // namespace zonewall::policy
