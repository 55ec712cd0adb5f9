// Calico projectcalico.org/v3: NetworkPolicy, GlobalNetworkPolicy, NetworkSet,
// GlobalNetworkSet, Tier.
#include <cctype>
#include <cmath>

#include "reader.h"

namespace zonewall::policy {
namespace {

std::optional<PortSpec> calicoPort(Reader& r, const YAML::Node& n) {
  if (auto v = Reader::plainInt(n)) {
    if (*v < 0 || *v > 65535) {
      r.error(n, fmt::format("port {} out of range [0, 65535]", *v), "out-of-range");
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
        p2 != s.data() + s.size() || lo < 0 || hi > 65535 || lo > hi) {
      r.error(n, fmt::format("invalid port range '{}' (want lo:hi, 0 <= lo <= hi <= 65535)", s),
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
  auto nets = [&](const char* key, std::vector<Cidr>& out) {
    if (YAML::Node ns = n[key]; ns && r.isSeq(ns, what + "." + key)) {
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
    r.error(n, fmt::format("{} needs a type", what), "missing-field");
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

std::vector<CalicoRule> readCalicoRules(Reader& r, const YAML::Node& rules,
                                        const std::string& what) {
  std::vector<CalicoRule> out;
  if (!rules || !r.isSeq(rules, what)) return out;
  for (const YAML::Node& n : rules) {
    if (!r.isMap(n, what + " rule")) {
      continue;
    }
    r.checkKeys(n,
                {"action", "protocol", "notProtocol", "icmp", "notICMP", "ipVersion", "source",
                 "destination", "http", "metadata"},
                what + " rule");
    CalicoRule rule;
    rule.loc = r.loc(n);
    const size_t rule_mark = r.errorCount();
    if (YAML::Node a = n["action"]; a && a.IsScalar()) {
      std::string s = a.Scalar();
      std::transform(s.begin(), s.end(), s.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (s == "allow") {
        rule.action = Action::kAllow;
      } else if (s == "deny") {
        rule.action = Action::kDeny;
      } else if (s == "pass") {
        rule.action = Action::kPass;
      } else if (s == "log") {
        rule.action = Action::kLog;
      } else {
        r.error(a, fmt::format("unknown action '{}' (Allow, Deny, Pass, Log)", a.Scalar()),
                "invalid-action");
      }
    } else {
      r.error(r.locIn(n, "action"), "rule needs an action", "missing-field");
    }
    auto proto = [&](const char* key, std::optional<Protocol>& dst) {
      if (YAML::Node p = n[key]) {
        auto v = p.IsScalar() ? parseProtocol(p.Scalar()) : std::nullopt;
        if (!v || *v == 0) {
          r.error(p, fmt::format("{}: unknown protocol '{}'", key, p.IsScalar() ? p.Scalar() : "?"),
                  "invalid-protocol");
        } else {
          dst = v;
        }
      }
    };
    proto("protocol", rule.protocol);
    proto("notProtocol", rule.not_protocol);
    if (YAML::Node i = n["icmp"]) {
      rule.icmp = readIcmp(r, i, "icmp");
    }
    if (YAML::Node i = n["notICMP"]) {
      rule.not_icmp = readIcmp(r, i, "notICMP");
    }
    if ((rule.icmp || rule.not_icmp) && !(rule.protocol && isIcmp(*rule.protocol))) {
      r.error(n, "icmp/notICMP need protocol ICMP or ICMPv6", "invalid-rule");
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
    bool has_ports = !rule.destination.ports.empty() || !rule.destination.not_ports.empty();
    if (has_ports && !(rule.protocol && hasPorts(*rule.protocol))) {
      r.error(r.locIn(n["destination"], "ports"), "ports need protocol TCP, UDP, SCTP or UDPLite",
              "invalid-rule");
    }
    for (const Cidr& c : rule.source.nets) {
      if (rule.ip_version && c.family != *rule.ip_version) {
        r.warning(n,
                  fmt::format("net {} never matches ipVersion {}", c.str(),
                              *rule.ip_version == Family::kV4 ? 4 : 6),
                  "never-matches");
      }
    }
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
  const size_t mark = r.errorCount();
  if (YAML::Node t = spec["tier"]; t && t.IsScalar() && !t.Scalar().empty()) pol.tier = t.Scalar();
  pol.order = readOrder(r, spec["order"]);
  if (YAML::Node s = spec["selector"]) {
    auto sel = r.selectorText(s, "spec.selector");
    if (sel) {
      pol.selector = *sel;
    }
  }
  if (YAML::Node s = spec["namespaceSelector"]) {
    if (!global) {
      r.error(s, "namespaceSelector is only valid in a GlobalNetworkPolicy", "invalid-field");
    } else {
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
      for (const YAML::Node& t : types) {
        if (t.IsScalar() && t.Scalar() == "Ingress") {
          pol.ingress = true;
        } else if (t.IsScalar() && t.Scalar() == "Egress") {
          pol.egress = true;
        } else {
          r.error(t, "types entries must be Ingress or Egress", "invalid-field");
        }
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
  Meta m = readMeta(r, doc, !global, kind);
  if (m.name.empty()) return;
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
      return;
    }
  }
  store.network_sets.push_back(std::move(set));
}

void readTier(Reader& r, const YAML::Node& doc, Store& store) {
  Meta m = readMeta(r, doc, false, "Tier");
  if (m.name.empty()) return;
  Tier tier{m.name, std::nullopt, Action::kDeny, r.loc(doc)};
  if (YAML::Node spec = doc["spec"]; spec && spec.IsMap()) {
    r.checkKeys(spec, {"order", "defaultAction"}, "Tier spec");
    tier.order = readOrder(r, spec["order"]);
    if (YAML::Node da = spec["defaultAction"]; da && da.IsScalar()) {
      if (da.Scalar() == "Deny") {
        tier.default_action = Action::kDeny;
      } else if (da.Scalar() == "Pass") {
        tier.default_action = Action::kPass;
      } else {
        r.error(da, "defaultAction must be Deny or Pass", "invalid-field");
        return;
      }
    }
  }
  store.tiers.push_back(std::move(tier));
}

}  // namespace zonewall::policy
