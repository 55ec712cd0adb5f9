// zonewall.io/v1alpha1 ZoneContract: zonewall's own kind, read with the same care as the
// Kubernetes and Calico kinds (every field located, unknown fields warned about, an object
// with an error dropped whole).
//
//   apiVersion: zonewall.io/v1alpha1
//   kind: ZoneContract
//   metadata: {name: bank}
//   spec:
//     zones:
//       public: {namespaceSelector: "zone == 'public'", exposed: true}
//       vault:  {namespaceSelector: "zone == 'secure'", selector: "app == 'vault'"}
//     statements:
//     - deny: {from: public, to: secure}
//     - allowOnly: {from: internal, to: secure, ports: [TCP/5432]}
//     - require: {from: monitoring, to: "*", ports: [TCP/9090]}
#include <charconv>

#include "reader.h"

namespace zonewall::policy {
namespace {

std::optional<std::uint16_t> portNumber(std::string_view s) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

// "TCP/5432", "UDP/8000-8100", "SCTP", "ICMP".
std::optional<ContractPort> readPort(Reader& r, const YAML::Node& n) {
  auto text = r.str(n, "ports[]");
  if (!text) return std::nullopt;
  const auto slash = text->find('/');
  const std::string proto_text = text->substr(0, slash);
  auto proto = parseProtocol(proto_text);
  if (!proto) {
    r.error(n,
            fmt::format("ports: unknown protocol '{}' (TCP, UDP, SCTP, ICMP, ICMPv6, or a number)",
                        proto_text));
    return std::nullopt;
  }
  ContractPort port{*proto, 0, 65535, r.loc(n)};
  if (slash == std::string::npos) return port;
  if (!hasPorts(*proto)) {
    r.error(n, fmt::format("ports: {} has no ports; write just '{}'", proto_text, proto_text));
    return std::nullopt;
  }
  const std::string range = text->substr(slash + 1);
  const auto dash = range.find('-');
  auto lo = portNumber(range.substr(0, dash));
  auto hi = dash == std::string::npos ? lo : portNumber(range.substr(dash + 1));
  if (!lo || !hi || *lo == 0 || *hi < *lo) {
    r.error(
        n, fmt::format("ports: '{}' is not PROTOCOL/PORT or PROTOCOL/FIRST-LAST (1-65535)", *text));
    return std::nullopt;
  }
  port.lo = *lo;
  port.hi = *hi;
  return port;
}

void readZones(Reader& r, const YAML::Node& zones, ZoneContract& c) {
  if (!zones || !r.isMap(zones, "spec.zones")) {
    if (!zones) r.error(r.loc(zones), "spec.zones is required", "missing-field");
    return;
  }
  for (const auto& kv : zones) {
    Zone z;
    z.name = kv.first.Scalar();
    z.loc = r.loc(kv.first);
    if (z.name.empty() || z.name == "*") {
      r.error(kv.first, "a zone needs a name other than '*' (which means every pod)");
      continue;
    }
    const YAML::Node& spec = kv.second;
    const std::string where = "zone " + z.name;
    if (!r.isMap(spec, where)) continue;
    r.checkKeys(spec, {"namespaceSelector", "selector", "exposed", "description"}, where);
    if (YAML::Node ns = spec["namespaceSelector"]) {
      if (auto sel = r.selectorText(ns, where + " namespaceSelector")) z.namespace_selector = *sel;
    }
    if (YAML::Node ps = spec["selector"]) {
      if (auto sel = r.selectorText(ps, where + " selector")) z.selector = *sel;
    }
    if (YAML::Node e = spec["exposed"]) {
      if (e.IsScalar() && (e.Scalar() == "true" || e.Scalar() == "false")) {
        z.exposed = e.Scalar() == "true";
      } else {
        r.error(e, where + ": exposed must be true or false");
      }
    }
    c.zones.push_back(std::move(z));
  }
}

void readStatement(Reader& r, const YAML::Node& n, ZoneContract& c) {
  if (!r.isMap(n, "statements[]")) return;
  if (n.size() != 1) {
    r.error(n, "a statement is exactly one of deny, allowOnly, require");
    return;
  }
  const auto kv = *n.begin();
  const std::string verb = kv.first.Scalar();
  ContractStatement st;
  if (verb == "deny") {
    st.kind = ContractStatement::Kind::kDeny;
  } else if (verb == "allowOnly") {
    st.kind = ContractStatement::Kind::kAllowOnly;
  } else if (verb == "require") {
    st.kind = ContractStatement::Kind::kRequire;
  } else {
    r.error(kv.first, fmt::format("unknown statement '{}' (deny, allowOnly, require)", verb));
    return;
  }
  st.loc = r.loc(kv.first);
  const YAML::Node& body = kv.second;
  if (!r.isMap(body, verb)) return;
  r.checkKeys(body, {"from", "to", "ports", "description"}, verb);
  auto readZoneName = [&](const char* key, std::string& field, SourceLoc& loc) {
    YAML::Node z = body[key];
    if (!z) {
      r.error(body, fmt::format("{}: '{}' (a zone, or \"*\") is required", verb, key),
              "missing-field");
      return;
    }
    if (auto s = r.str(z, fmt::format("{}.{}", verb, key))) {
      field = *s;
      loc = r.loc(z);
    }
  };
  readZoneName("from", st.from, st.from_loc);
  readZoneName("to", st.to, st.to_loc);
  YAML::Node ports = body["ports"];
  if (st.kind == ContractStatement::Kind::kDeny && ports) {
    r.error(ports, "deny takes no ports: it denies every flow (use allowOnly for a port list)");
  }
  if (st.kind != ContractStatement::Kind::kDeny) {
    if (!ports || ports.IsNull() || (ports.IsSequence() && ports.size() == 0)) {
      r.error(ports ? ports : kv.first, fmt::format("{} needs ports", verb), "missing-field");
    } else if (r.isSeq(ports, verb + ".ports")) {
      for (const YAML::Node& p : ports) {
        if (auto port = readPort(r, p)) st.ports.push_back(*port);
      }
    }
  }
  if (YAML::Node d = body["description"]) {
    if (auto s = r.str(d, verb + ".description")) st.description = *s;
  }
  c.statements.push_back(std::move(st));
}

}  // namespace

void readZoneContract(Reader& r, const YAML::Node& doc, Store& store) {
  const size_t mark = r.errorCount();
  Meta m = readMeta(r, doc, false, "ZoneContract");
  if (m.name.empty()) return;
  ZoneContract c;
  c.name = m.name;
  c.loc = r.loc(doc);
  YAML::Node spec = doc["spec"];
  if (!spec || !spec.IsMap()) {
    r.error(spec ? spec : doc, "ZoneContract needs a spec", "missing-field");
    return;
  }
  r.checkKeys(spec, {"zones", "statements"}, "ZoneContract spec");
  readZones(r, spec["zones"], c);
  if (YAML::Node sts = spec["statements"]; sts && r.isSeq(sts, "spec.statements")) {
    for (const YAML::Node& n : sts) readStatement(r, n, c);
  }
  // Every statement names zones the contract defines.
  for (const ContractStatement& st : c.statements) {
    for (const auto* end : {&st.from, &st.to}) {
      const std::string& name = *end;
      const SourceLoc& loc = end == &st.from ? st.from_loc : st.to_loc;
      if (!name.empty() && name != "*" && c.zone(name) == nullptr) {
        r.error(loc,
                fmt::format("unknown zone '{}' (the contract defines: {})", name,
                            [&] {
                              std::string s;
                              for (const Zone& z : c.zones) s += (s.empty() ? "" : ", ") + z.name;
                              return s.empty() ? std::string("none") : s;
                            }()),
                "unknown-zone");
      }
    }
  }
  keepUnlessErrors(r, mark, store.contracts, std::move(c));
}

}  // namespace zonewall::policy
