// YAML → typed model. The only file in zonewall that sees yaml-cpp.
#include "zonewall/policy/loader.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <map>
#include <set>

namespace zonewall::policy {
namespace {

// Reads one document, reporting every problem with its file:line:col.
class Reader {
 public:
  Reader(const std::string& file, int line_offset, Diagnostics& diags)
      : file_(file), line_offset_(line_offset), diags_(diags) {}

  SourceLoc loc(const YAML::Node& n) const {
    if (!n.IsDefined()) return SourceLoc{file_, 0, 0};  // a missing child: no position
    const YAML::Mark m = n.Mark();
    if (m.line < 0) {
      return SourceLoc{file_, 0, 0};
    }
    return SourceLoc{file_, line_offset_ + m.line + 1, m.column + 1};  // marks are 0-based
  }
  // Location of a child, or of the parent when the child is missing.
  SourceLoc locIn(const YAML::Node& parent, const char* key) const {
    YAML::Node c = parent[key];
    SourceLoc l = c ? loc(c) : loc(parent);
    return l.known() ? l : loc(parent);
  }
  void error(const YAML::Node& at, std::string msg, const char* id = "invalid-field") {
    diags_.error(loc(at), std::move(msg), id);
  }
  void error(SourceLoc at, std::string msg, const char* id = "invalid-field") {
    diags_.error(std::move(at), std::move(msg), id);
  }
  void warning(const YAML::Node& at, std::string msg, const char* id) {
    diags_.warning(loc(at), std::move(msg), id);
  }

  // Warns about keys a Kubernetes or Calico API server would not know: usually a typo that
  // silently changes the policy's meaning.
  void checkKeys(const YAML::Node& map, std::initializer_list<const char*> known,
                 const std::string& where) {
    if (!map.IsMap()) return;
    for (const auto& kv : map) {
      std::string k = kv.first.Scalar();
      if (std::none_of(known.begin(), known.end(), [&](const char* s) { return k == s; })) {
        warning(kv.first, fmt::format("unknown field '{}' in {}", k, where), "unknown-field");
      }
    }
  }

  bool isMap(const YAML::Node& n, const std::string& what) {
    if (n.IsMap()) return true;
    error(n, fmt::format("{} must be a mapping", what));
    return false;
  }
  bool isSeq(const YAML::Node& n, const std::string& what) {
    if (n.IsSequence()) return true;
    if (n.IsNull()) return false;  // "ingress:" with no value = empty list
    error(n, fmt::format("{} must be a list", what));
    return false;
  }
  std::optional<std::string> str(const YAML::Node& n, const std::string& what) {
    if (n.IsScalar()) return n.Scalar();
    error(n, fmt::format("{} must be a string", what));
    return std::nullopt;
  }
  // A plain (unquoted) scalar that is an integer.
  static std::optional<long long> plainInt(const YAML::Node& n) {
    if (!n.IsScalar() || n.Tag() == "!") return std::nullopt;
    const std::string& s = n.Scalar();
    long long v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
  }
  std::optional<long long> integer(const YAML::Node& n, const std::string& what, long long lo,
                                   long long hi) {
    auto v = plainInt(n);
    if (!v) {
      error(n, fmt::format("{} must be an integer", what));
      return std::nullopt;
    }
    if (*v < lo || *v > hi) {
      error(n, fmt::format("{} {} out of range [{}, {}]", what, *v, lo, hi), "out-of-range");
      return std::nullopt;
    }
    return v;
  }

  Labels labels(const YAML::Node& n, const std::string& what) {
    Labels out;
    if (!n || n.IsNull()) return out;
    if (!isMap(n, what)) return out;
    for (const auto& kv : n) {
      if (!kv.second.IsScalar()) {
        error(kv.second,
              fmt::format("{} value for '{}' must be a string", what, kv.first.Scalar()));
        continue;
      }
      out[kv.first.Scalar()] = kv.second.Scalar();
    }
    return out;
  }

  std::optional<Cidr> cidr(const YAML::Node& n, const std::string& what) {
    auto s = str(n, what);
    if (!s) return std::nullopt;
    auto c = parseCidr(*s, /*allow_bare=*/false);
    if (!c) {
      error(n, fmt::format("{}: invalid CIDR '{}'", what, *s), "invalid-cidr");
      return std::nullopt;
    }
    if (c->host_bits_set) {
      warning(n, fmt::format("{}: '{}' has host bits set; it means {}", what, *s, c->cidr.str()),
              "cidr-host-bits");
    }
    return c->cidr;
  }

  // Calico selector text, with errors placed at the offending character.
  std::optional<Selector> selectorText(const YAML::Node& n, const std::string& what) {
    auto s = str(n, what);
    if (!s) return std::nullopt;
    SelectorParseError perr;
    bool ok = false;
    Selector sel = parseSelector(*s, &perr, &ok);
    if (!ok) {
      SourceLoc l = loc(n);
      // Plain scalars start at the mark; quoted ones one character later. Multi-line
      // scalars are reported at their start.
      if (s->find('\n') == std::string::npos) {
        l.col += static_cast<int>(perr.offset) + (n.Tag() == "!" ? 1 : 0);
      }
      error(l, fmt::format("{}: invalid selector: {}", what, perr.message), "invalid-selector");
      return std::nullopt;
    }
    return sel;
  }

  // Kubernetes metav1.LabelSelector.
  std::optional<Selector> labelSelector(const YAML::Node& n, const std::string& what) {
    if (n.IsNull()) return Selector::all();  // "podSelector:" with no value = {}
    if (!isMap(n, what)) return std::nullopt;
    checkKeys(n, {"matchLabels", "matchExpressions"}, what);
    std::vector<std::shared_ptr<const SelectorNode>> parts;
    bool ok = true;
    if (YAML::Node ml = n["matchLabels"]; ml && !ml.IsNull()) {
      for (const auto& [k, v] : labels(ml, what + ".matchLabels")) {
        parts.push_back(selEq(k, v));
      }
    }
    if (YAML::Node me = n["matchExpressions"]; me && isSeq(me, what + ".matchExpressions")) {
      for (const YAML::Node& e : me) {
        if (!isMap(e, "matchExpressions entry")) {
          ok = false;
          continue;
        }
        checkKeys(e, {"key", "operator", "values"}, "matchExpressions entry");
        auto key = e["key"] ? str(e["key"], "key") : std::nullopt;
        auto op = e["operator"] ? str(e["operator"], "operator") : std::nullopt;
        if (!key || !op) {
          if (!e["key"] || !e["operator"]) {
            error(e, "matchExpressions entry needs 'key' and 'operator'", "missing-field");
          }
          ok = false;
          continue;
        }
        std::vector<std::string> values;
        if (YAML::Node vs = e["values"]; vs && isSeq(vs, "values")) {
          for (const YAML::Node& v : vs) {
            if (auto s = str(v, "value")) values.push_back(*s);
          }
        }
        if (*op == "In" || *op == "NotIn") {
          if (values.empty()) {
            error(e, fmt::format("operator {} needs a non-empty 'values'", *op));
            ok = false;
            continue;
          }
          parts.push_back(*op == "In" ? selIn(*key, values) : selNotIn(*key, values));
        } else if (*op == "Exists" || *op == "DoesNotExist") {
          if (!values.empty()) {
            error(e["values"], fmt::format("operator {} takes no 'values'", *op));
            ok = false;
            continue;
          }
          parts.push_back(*op == "Exists" ? selHas(*key) : selNot(selHas(*key)));
        } else {
          error(e["operator"],
                fmt::format("unknown operator '{}' (In, NotIn, Exists, DoesNotExist)", *op));
          ok = false;
        }
      }
    }
    if (!ok) return std::nullopt;
    std::sort(parts.begin(), parts.end(),
              [](const auto& a, const auto& b) { return Selector(a).str() < Selector(b).str(); });
    return Selector::conjunction(std::move(parts));
  }

  const std::string& file() const { return file_; }
  Diagnostics& diags() { return diags_; }

 private:
  const std::string& file_;
  int line_offset_;
  Diagnostics& diags_;
};

struct Meta {
  std::string name;
  std::string ns;
  Labels labels;
};

bool validPortName(const std::string& s) {
  // IANA_SVC_NAME: 1-15 chars of [a-z0-9-], at least one letter, no leading/trailing or
  // double hyphen.
  if (s.empty() || s.size() > 15 || s.front() == '-' || s.back() == '-' ||
      s.find("--") != std::string::npos) {
    return false;
  }
  bool letter = false;
  for (char c : s) {
    if (std::islower(static_cast<unsigned char>(c))) {
      letter = true;
    } else if (!std::isdigit(static_cast<unsigned char>(c)) && c != '-') {
      return false;
    }
  }
  return letter;
}

Meta readMeta(Reader& r, const YAML::Node& doc, bool namespaced, const std::string& kind) {
  Meta m;
  YAML::Node md = doc["metadata"];
  if (!md || !md.IsMap()) {
    r.error(md ? md : doc, fmt::format("{} needs metadata with a name", kind), "missing-field");
    return m;
  }
  if (YAML::Node n = md["name"]; n && n.IsScalar() && !n.Scalar().empty()) {
    m.name = n.Scalar();
  } else {
    r.error(r.locIn(md, "name"), fmt::format("{} needs metadata.name", kind), "missing-field");
  }
  if (namespaced) {
    YAML::Node n = md["namespace"];
    m.ns = (n && n.IsScalar() && !n.Scalar().empty()) ? n.Scalar() : "default";
  } else if (md["namespace"]) {
    r.warning(md["namespace"], fmt::format("{} is not namespaced; namespace ignored", kind),
              "unknown-field");
  }
  m.labels = r.labels(md["labels"], "metadata.labels");
  return m;
}

void readNamespace(Reader& r, const YAML::Node& doc, Store& store) {
  Meta m = readMeta(r, doc, false, "Namespace");
  if (m.name.empty()) return;
  Namespace ns{m.name, m.labels, r.loc(doc)};
  ns.labels[kNamespaceNameLabel] = m.name;
  store.namespaces.push_back(std::move(ns));
}

void readPod(Reader& r, const YAML::Node& doc, Store& store) {
  Meta m = readMeta(r, doc, true, "Pod");
  if (m.name.empty()) return;
  Pod pod{m.ns, m.name, m.labels, {}, {}, {}, r.loc(doc)};
  YAML::Node spec = doc["spec"];
  if (spec && spec.IsMap()) {
    if (YAML::Node nn = spec["nodeName"]; nn && nn.IsScalar()) pod.node = nn.Scalar();
    if (YAML::Node cs = spec["containers"]; cs && r.isSeq(cs, "spec.containers")) {
      for (const YAML::Node& c : cs) {
        YAML::Node ps = c.IsMap() ? c["ports"] : YAML::Node();
        if (!ps || !r.isSeq(ps, "container ports")) continue;
        for (const YAML::Node& p : ps) {
          if (!r.isMap(p, "container port")) continue;
          NamedPort np;
          if (YAML::Node cp = p["containerPort"]) {
            auto v = r.integer(cp, "containerPort", 1, 65535);
            if (!v) continue;
            np.port = static_cast<std::uint16_t>(*v);
          } else {
            r.error(p, "container port needs containerPort", "missing-field");
            continue;
          }
          if (YAML::Node pr = p["protocol"]) {
            auto proto = pr.IsScalar() ? parseProtocol(pr.Scalar()) : std::nullopt;
            if (!proto || (*proto != kTcp && *proto != kUdp && *proto != kSctp)) {
              r.error(pr, "container port protocol must be TCP, UDP or SCTP", "invalid-protocol");
              continue;
            }
            np.protocol = *proto;
          }
          if (YAML::Node nm = p["name"]; nm && nm.IsScalar()) {
            np.name = nm.Scalar();
            if (!validPortName(np.name)) {
              r.error(nm,
                      fmt::format("invalid port name '{}' (IANA service name: 1-15 "
                                  "lower-case letters, digits, '-')",
                                  np.name),
                      "invalid-port-name");
              continue;
            }
          }
          pod.ports.push_back(np);
        }
      }
    }
  }
  YAML::Node status = doc["status"];
  std::set<Addr> seen;
  auto addIp = [&](const YAML::Node& n) {
    auto s = r.str(n, "pod IP");
    if (!s) return;
    auto a = parseAddr(*s);
    if (!a) {
      r.error(n, fmt::format("invalid pod IP '{}'", *s), "invalid-ip");
      return;
    }
    if (seen.insert(*a).second) pod.ips.push_back(*a);
  };
  if (status && status.IsMap()) {
    if (YAML::Node ip = status["podIP"]; ip && !ip.IsNull()) addIp(ip);
    if (YAML::Node ips = status["podIPs"]; ips && r.isSeq(ips, "status.podIPs")) {
      for (const YAML::Node& e : ips) {
        if (e.IsMap() && e["ip"]) {
          addIp(e["ip"]);
        } else {
          r.error(e, "podIPs entry needs 'ip'", "missing-field");
        }
      }
    }
  }
  store.pods.push_back(std::move(pod));
}

std::vector<K8sPort> readK8sPorts(Reader& r, const YAML::Node& ports) {
  std::vector<K8sPort> out;
  if (!ports || !r.isSeq(ports, "ports")) return out;
  for (const YAML::Node& p : ports) {
    if (!r.isMap(p, "port entry")) continue;
    r.checkKeys(p, {"protocol", "port", "endPort"}, "NetworkPolicyPort");
    K8sPort kp;
    kp.loc = r.loc(p);
    bool ok = true;
    if (YAML::Node pr = p["protocol"]; pr && !pr.IsNull()) {
      auto proto = pr.IsScalar() ? parseProtocol(pr.Scalar()) : std::nullopt;
      if (!proto || (*proto != kTcp && *proto != kUdp && *proto != kSctp) ||
          pr.Scalar() != protocolName(*proto)) {
        r.error(pr, fmt::format("protocol must be TCP, UDP or SCTP, not '{}'", pr.Scalar()),
                "invalid-protocol");
        ok = false;
      } else {
        kp.protocol = *proto;
      }
    }
    if (YAML::Node pt = p["port"]; pt && !pt.IsNull()) {
      if (auto n = Reader::plainInt(pt)) {
        if (*n < 1 || *n > 65535) {
          r.error(pt, fmt::format("port {} out of range [1, 65535]", *n), "out-of-range");
          ok = false;
        } else {
          kp.port = static_cast<std::uint16_t>(*n);
        }
      } else if (pt.IsScalar() && validPortName(pt.Scalar())) {
        kp.name = pt.Scalar();
      } else {
        r.error(pt,
                fmt::format("port must be a number 1-65535 or a port name, not '{}'",
                            pt.IsScalar() ? pt.Scalar() : "?"),
                "invalid-port");
        ok = false;
      }
    }
    if (YAML::Node ep = p["endPort"]; ep && !ep.IsNull()) {
      auto n = r.integer(ep, "endPort", 1, 65535);
      if (!n) {
        ok = false;
      } else if (!kp.name.empty()) {
        r.error(ep, "endPort cannot be used with a named port", "invalid-port");
        ok = false;
      } else if (!kp.port) {
        if (!p["port"] || p["port"].IsNull()) {
          r.error(ep, "endPort needs a numeric port", "invalid-port");
          ok = false;
        }
      } else if (*n < *kp.port) {
        r.error(ep, fmt::format("endPort {} is less than port {}", *n, *kp.port), "invalid-port");
        ok = false;
      } else {
        kp.end_port = static_cast<std::uint16_t>(*n);
      }
    }
    if (ok) out.push_back(kp);
  }
  return out;
}

std::vector<K8sRule> readK8sRules(Reader& r, const YAML::Node& rules, const char* peers_key,
                                  const std::string& what) {
  std::vector<K8sRule> out;
  if (!rules || !r.isSeq(rules, what)) return out;
  for (const YAML::Node& rule : rules) {
    K8sRule kr;
    kr.loc = r.loc(rule);
    if (rule.IsNull()) {  // "- {}" written as "-": allow everything
      out.push_back(kr);
      continue;
    }
    if (!r.isMap(rule, what + " rule")) continue;
    r.checkKeys(rule, {peers_key, "ports"}, what + " rule");
    if (YAML::Node peers = rule[peers_key]; peers && r.isSeq(peers, peers_key)) {
      for (const YAML::Node& p : peers) {
        if (!r.isMap(p, "peer")) continue;
        r.checkKeys(p, {"podSelector", "namespaceSelector", "ipBlock"}, "NetworkPolicyPeer");
        K8sPeer peer;
        peer.loc = r.loc(p);
        if (YAML::Node ps = p["podSelector"])
          peer.pod_selector = r.labelSelector(ps, "podSelector");
        if (YAML::Node ns = p["namespaceSelector"]) {
          peer.namespace_selector = r.labelSelector(ns, "namespaceSelector");
        }
        if (YAML::Node ib = p["ipBlock"]) {
          if (peer.pod_selector || peer.namespace_selector || p["podSelector"] ||
              p["namespaceSelector"]) {
            r.error(ib, "ipBlock cannot be combined with podSelector or namespaceSelector",
                    "invalid-peer");
            continue;
          }
          if (!r.isMap(ib, "ipBlock")) continue;
          r.checkKeys(ib, {"cidr", "except"}, "ipBlock");
          if (!ib["cidr"]) {
            r.error(ib, "ipBlock needs cidr", "missing-field");
            continue;
          }
          auto c = r.cidr(ib["cidr"], "ipBlock.cidr");
          if (!c) continue;
          K8sIpBlock block{*c, {}};
          bool ok = true;
          if (YAML::Node ex = ib["except"]; ex && r.isSeq(ex, "ipBlock.except")) {
            for (const YAML::Node& e : ex) {
              auto ec = r.cidr(e, "ipBlock.except");
              if (!ec) {
                ok = false;
                continue;
              }
              if (ec->family != c->family || ec->prefix <= c->prefix || !c->contains(ec->base)) {
                r.error(e,
                        fmt::format("except '{}' must be a strict subnet of cidr '{}'", ec->str(),
                                    c->str()),
                        "invalid-cidr");
                ok = false;
                continue;
              }
              block.except.push_back(*ec);
            }
          }
          if (!ok) continue;
          peer.ip_block = block;
        }
        bool any = p["podSelector"] || p["namespaceSelector"] || p["ipBlock"];
        if (!any) {
          r.error(p, "peer needs podSelector, namespaceSelector or ipBlock", "invalid-peer");
          continue;
        }
        if ((p["podSelector"] && !peer.pod_selector) ||
            (p["namespaceSelector"] && !peer.namespace_selector)) {
          continue;  // selector error already reported
        }
        kr.peers.push_back(std::move(peer));
      }
      if (kr.peers.empty() && peers.IsSequence() && peers.size() > 0) {
        continue;  // every peer was invalid: dropping the rule keeps the policy closed
      }
    }
    kr.ports = readK8sPorts(r, rule["ports"]);
    if (rule["ports"] && rule["ports"].IsSequence() && rule["ports"].size() > 0 &&
        kr.ports.empty()) {
      continue;  // every port was invalid: the rule must not widen to all ports
    }
    out.push_back(std::move(kr));
  }
  return out;
}

void readK8sPolicy(Reader& r, const YAML::Node& doc, Store& store) {
  Meta m = readMeta(r, doc, true, "NetworkPolicy");
  YAML::Node spec = doc["spec"];
  if (!spec || !spec.IsMap()) {
    r.error(spec ? spec : doc, "NetworkPolicy needs a spec", "missing-field");
    return;
  }
  if (m.name.empty()) return;
  r.checkKeys(spec, {"podSelector", "policyTypes", "ingress", "egress"}, "NetworkPolicy spec");
  K8sPolicy pol;
  pol.ns = m.ns;
  pol.name = m.name;
  pol.loc = r.loc(doc);
  size_t errors_before = r.diags().all().size();
  if (YAML::Node ps = spec["podSelector"]) {
    auto sel = r.labelSelector(ps, "spec.podSelector");
    if (!sel) return;
    pol.pod_selector = *sel;
  } else {
    r.error(spec, "spec.podSelector is required (use {} to select every pod)", "missing-field");
    return;
  }
  pol.ingress_rules = readK8sRules(r, spec["ingress"], "from", "ingress");
  pol.egress_rules = readK8sRules(r, spec["egress"], "to", "egress");
  if (YAML::Node pt = spec["policyTypes"]; pt && !pt.IsNull()) {
    if (r.isSeq(pt, "policyTypes")) {
      for (const YAML::Node& t : pt) {
        if (t.IsScalar() && t.Scalar() == "Ingress") {
          pol.ingress = true;
        } else if (t.IsScalar() && t.Scalar() == "Egress") {
          pol.egress = true;
        } else {
          r.error(t, "policyTypes entries must be Ingress or Egress", "invalid-field");
        }
      }
    }
  } else {
    // Kubernetes defaulting: Ingress always; Egress when the policy has egress rules.
    pol.ingress = true;
    pol.egress = spec["egress"] && spec["egress"].IsSequence() && spec["egress"].size() > 0;
  }
  // A policy with an error anywhere is dropped whole: a half-read policy could allow more
  // than its author wrote. The diagnostics make the run fail anyway.
  for (size_t i = errors_before; i < r.diags().all().size(); ++i) {
    if (r.diags().all()[i].severity == Severity::kError) return;
  }
  store.k8s_policies.push_back(std::move(pol));
}

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

EntityRule readEntity(Reader& r, const YAML::Node& n, const std::string& what, bool* ok) {
  EntityRule e;
  if (!n || n.IsNull()) return e;
  e.loc = r.loc(n);
  if (!r.isMap(n, what)) {
    *ok = false;
    return e;
  }
  r.checkKeys(n,
              {"selector", "notSelector", "namespaceSelector", "nets", "notNets", "ports",
               "notPorts", "serviceAccounts", "services"},
              what);
  auto sel = [&](const char* key, std::optional<Selector>& out) {
    if (YAML::Node s = n[key]) {
      out = r.selectorText(s, what + "." + key);
      if (!out) *ok = false;
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
        } else {
          *ok = false;
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
        } else {
          *ok = false;
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
      *ok = false;
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

std::vector<CalicoRule> readCalicoRules(Reader& r, const YAML::Node& rules, const std::string& what,
                                        bool* ok) {
  std::vector<CalicoRule> out;
  if (!rules || !r.isSeq(rules, what)) return out;
  for (const YAML::Node& n : rules) {
    if (!r.isMap(n, what + " rule")) {
      *ok = false;
      continue;
    }
    r.checkKeys(n,
                {"action", "protocol", "notProtocol", "icmp", "notICMP", "ipVersion", "source",
                 "destination", "http", "metadata"},
                what + " rule");
    CalicoRule rule;
    rule.loc = r.loc(n);
    bool rule_ok = true;
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
        rule_ok = false;
      }
    } else {
      r.error(r.locIn(n, "action"), "rule needs an action", "missing-field");
      rule_ok = false;
    }
    auto proto = [&](const char* key, std::optional<Protocol>& dst) {
      if (YAML::Node p = n[key]) {
        auto v = p.IsScalar() ? parseProtocol(p.Scalar()) : std::nullopt;
        if (!v || *v == 0) {
          r.error(p, fmt::format("{}: unknown protocol '{}'", key, p.IsScalar() ? p.Scalar() : "?"),
                  "invalid-protocol");
          rule_ok = false;
        } else {
          dst = v;
        }
      }
    };
    proto("protocol", rule.protocol);
    proto("notProtocol", rule.not_protocol);
    if (YAML::Node i = n["icmp"]) {
      rule.icmp = readIcmp(r, i, "icmp");
      rule_ok = rule_ok && rule.icmp.has_value();
    }
    if (YAML::Node i = n["notICMP"]) {
      rule.not_icmp = readIcmp(r, i, "notICMP");
      rule_ok = rule_ok && rule.not_icmp.has_value();
    }
    if ((rule.icmp || rule.not_icmp) && !(rule.protocol && isIcmp(*rule.protocol))) {
      r.error(n, "icmp/notICMP need protocol ICMP or ICMPv6", "invalid-rule");
      rule_ok = false;
    }
    if (YAML::Node v = n["ipVersion"]) {
      auto iv = Reader::plainInt(v);
      if (iv == 4) {
        rule.ip_version = Family::kV4;
      } else if (iv == 6) {
        rule.ip_version = Family::kV6;
      } else {
        r.error(v, "ipVersion must be 4 or 6", "invalid-field");
        rule_ok = false;
      }
    }
    if (n["http"]) {
      r.error(n["http"], "http match is not supported by zonewall (needs an L7 proxy)",
              "unsupported-field");
      rule_ok = false;
    }
    rule.source = readEntity(r, n["source"], "source", &rule_ok);
    rule.destination = readEntity(r, n["destination"], "destination", &rule_ok);
    if (!rule.source.ports.empty() || !rule.source.not_ports.empty()) {
      r.error(r.locIn(n["source"], rule.source.ports.empty() ? "notPorts" : "ports"),
              "source ports are not supported by zonewall", "unsupported-field");
      rule_ok = false;
    }
    bool has_ports = !rule.destination.ports.empty() || !rule.destination.not_ports.empty();
    if (has_ports && !(rule.protocol && hasPorts(*rule.protocol))) {
      r.error(r.locIn(n["destination"], "ports"), "ports need protocol TCP, UDP, SCTP or UDPLite",
              "invalid-rule");
      rule_ok = false;
    }
    for (const Cidr& c : rule.source.nets) {
      if (rule.ip_version && c.family != *rule.ip_version) {
        r.warning(n,
                  fmt::format("net {} never matches ipVersion {}", c.str(),
                              *rule.ip_version == Family::kV4 ? 4 : 6),
                  "never-matches");
      }
    }
    if (rule_ok) {
      out.push_back(std::move(rule));
    } else {
      *ok = false;
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
  bool ok = true;
  if (YAML::Node t = spec["tier"]; t && t.IsScalar() && !t.Scalar().empty()) pol.tier = t.Scalar();
  pol.order = readOrder(r, spec["order"]);
  if (spec["order"] && !pol.order) ok = false;
  if (YAML::Node s = spec["selector"]) {
    auto sel = r.selectorText(s, "spec.selector");
    if (sel) {
      pol.selector = *sel;
    } else {
      ok = false;
    }
  }
  if (YAML::Node s = spec["namespaceSelector"]) {
    if (!global) {
      r.error(s, "namespaceSelector is only valid in a GlobalNetworkPolicy", "invalid-field");
      ok = false;
    } else {
      pol.namespace_selector = r.selectorText(s, "spec.namespaceSelector");
      ok = ok && pol.namespace_selector.has_value();
    }
  }
  if (spec["serviceAccountSelector"]) {
    r.error(spec["serviceAccountSelector"], "serviceAccountSelector is not supported by zonewall",
            "unsupported-field");
    ok = false;
  }
  for (const char* host_only : {"doNotTrack", "preDNAT", "applyOnForward"}) {
    if (YAML::Node f = spec[host_only]; f && f.IsScalar() && f.Scalar() == "true") {
      r.error(
          f, fmt::format("{} applies to host endpoints, which zonewall does not manage", host_only),
          "unsupported-field");
      ok = false;
    }
  }
  pol.ingress_rules = readCalicoRules(r, spec["ingress"], "ingress", &ok);
  pol.egress_rules = readCalicoRules(r, spec["egress"], "egress", &ok);
  if (YAML::Node types = spec["types"]; types && !types.IsNull()) {
    if (r.isSeq(types, "types")) {
      for (const YAML::Node& t : types) {
        if (t.IsScalar() && t.Scalar() == "Ingress") {
          pol.ingress = true;
        } else if (t.IsScalar() && t.Scalar() == "Egress") {
          pol.egress = true;
        } else {
          r.error(t, "types entries must be Ingress or Egress", "invalid-field");
          ok = false;
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
  if (ok) store.calico_policies.push_back(std::move(pol));
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

void readObject(Reader& r, const YAML::Node& doc, Store& store) {
  if (doc.IsNull()) return;  // empty document ("---" at the end)
  if (!doc.IsMap()) {
    r.error(doc, "a document must be a Kubernetes object (a mapping)", "invalid-object");
    return;
  }
  YAML::Node kind_n = doc["kind"];
  YAML::Node api_n = doc["apiVersion"];
  if (!kind_n || !kind_n.IsScalar() || !api_n || !api_n.IsScalar()) {
    r.error(doc, "object needs apiVersion and kind", "invalid-object");
    return;
  }
  const std::string& kind = kind_n.Scalar();
  const std::string& api = api_n.Scalar();
  if (api == "v1" && kind == "List") {
    if (YAML::Node items = doc["items"]; items && r.isSeq(items, "items")) {
      for (const YAML::Node& item : items) readObject(r, item, store);
    }
    return;
  }
  if (api == "v1" && kind == "Namespace") return readNamespace(r, doc, store);
  if (api == "v1" && kind == "Pod") return readPod(r, doc, store);
  if (api == "networking.k8s.io/v1" && kind == "NetworkPolicy") {
    return readK8sPolicy(r, doc, store);
  }
  if (api == "projectcalico.org/v3") {
    if (kind == "NetworkPolicy") return readCalicoPolicy(r, doc, store, false);
    if (kind == "GlobalNetworkPolicy") return readCalicoPolicy(r, doc, store, true);
    if (kind == "NetworkSet") return readNetworkSet(r, doc, store, false);
    if (kind == "GlobalNetworkSet") return readNetworkSet(r, doc, store, true);
    if (kind == "Tier") return readTier(r, doc, store);
  }
  r.error(kind_n, fmt::format("unknown kind '{}' in apiVersion '{}'", kind, api), "unknown-kind");
}

}  // namespace

void loadSources(const std::vector<SourceText>& sources, Store& store, Diagnostics& diags) {
  for (const SourceText& src : sources) {
    Reader r(src.name, src.line_offset, diags);
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAll(src.text);
    } catch (const YAML::Exception& e) {
      SourceLoc loc{src.name, e.mark.line >= 0 ? src.line_offset + e.mark.line + 1 : 0,
                    e.mark.column >= 0 ? e.mark.column + 1 : 0};
      diags.error(loc, fmt::format("YAML syntax error: {}", e.msg), "yaml-syntax");
      continue;
    }
    for (const YAML::Node& doc : docs) {
      try {
        readObject(r, doc, store);
      } catch (const YAML::Exception& e) {
        // Type conversions inside yaml-cpp: report where, never let it escape policy/.
        diags.error(r.loc(doc), fmt::format("invalid object: {}", e.msg), "invalid-object");
      }
    }
  }
}

std::vector<SourceText> splitDocuments(const SourceText& source) {
  std::vector<SourceText> out;
  const std::string& t = source.text;
  size_t start = 0;
  int start_line = 0;
  int line = 0;
  for (size_t pos = 0; pos < t.size();) {
    size_t eol = t.find('\n', pos);
    size_t end = eol == std::string::npos ? t.size() : eol;
    std::string_view l(t.data() + pos, end - pos);
    bool marker =
        l.starts_with("---") && (l.size() == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r');
    if (marker && pos > start) {
      out.push_back({source.name, t.substr(start, pos - start), source.line_offset + start_line});
      start = pos;
      start_line = line;
    }
    ++line;
    pos = eol == std::string::npos ? t.size() : eol + 1;
  }
  if (start < t.size() || out.empty()) {
    out.push_back({source.name, t.substr(start), source.line_offset + start_line});
  }
  return out;
}

void mergeStore(Store& into, Store&& from) {
  auto move = [](auto& dst, auto& src) {
    dst.insert(dst.end(), std::make_move_iterator(src.begin()), std::make_move_iterator(src.end()));
  };
  move(into.namespaces, from.namespaces);
  move(into.pods, from.pods);
  move(into.k8s_policies, from.k8s_policies);
  move(into.calico_policies, from.calico_policies);
  move(into.network_sets, from.network_sets);
  move(into.tiers, from.tiers);
}

void validateStore(const Store& store, Diagnostics& diags) {
  auto dup = [&](const std::string& kind, const std::string& key, const SourceLoc& loc,
                 std::map<std::string, SourceLoc>& seen) {
    auto [it, fresh] = seen.emplace(key, loc);
    if (!fresh) {
      diags.error(
          loc, fmt::format("duplicate {} '{}' (first defined at {})", kind, key, it->second.str()),
          "duplicate-name");
    }
  };
  std::map<std::string, SourceLoc> ns_seen;
  std::map<std::string, SourceLoc> pod_seen;
  std::map<std::string, SourceLoc> k8s_seen;
  std::map<std::string, SourceLoc> cal_seen;
  std::map<std::string, SourceLoc> set_seen;
  std::map<std::string, SourceLoc> tier_seen;
  for (const auto& n : store.namespaces) dup("Namespace", n.name, n.loc, ns_seen);
  for (const auto& p : store.pods) dup("Pod", p.key(), p.loc, pod_seen);
  for (const auto& p : store.k8s_policies) dup("NetworkPolicy", p.key(), p.loc, k8s_seen);
  for (const auto& p : store.calico_policies) {
    dup(p.global ? "GlobalNetworkPolicy" : "Calico NetworkPolicy",
        (p.global ? "global/" : "ns/") + p.key(), p.loc, cal_seen);
  }
  for (const auto& s : store.network_sets) {
    dup(s.global ? "GlobalNetworkSet" : "NetworkSet", (s.global ? "global/" : s.ns + "/") + s.name,
        s.loc, set_seen);
  }
  for (const auto& t : store.tiers) dup("Tier", t.name, t.loc, tier_seen);
  for (const auto& p : store.calico_policies) {
    if (p.tier != kDefaultTier && !tier_seen.contains(p.tier)) {
      diags.error(p.loc,
                  fmt::format("policy '{}' names tier '{}', which is not defined", p.key(), p.tier),
                  "unknown-tier");
    }
  }
  std::map<Addr, const Pod*> ip_owner;
  for (const auto& p : store.pods) {
    for (Addr a : p.ips) {
      auto [it, fresh] = ip_owner.emplace(a, &p);
      if (!fresh) {
        diags.error(p.loc,
                    fmt::format("pod IP {} of {} is also the IP of {}", formatAddr(a), p.key(),
                                it->second->key()),
                    "duplicate-ip");
      }
    }
  }
}

}  // namespace zonewall::policy
