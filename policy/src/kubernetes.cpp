// Kubernetes v1 Namespace and Pod, networking.k8s.io/v1 NetworkPolicy.
#include <cctype>

#include "reader.h"

namespace zonewall::policy {
namespace {

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

}  // namespace

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
  const size_t mark = r.errorCount();
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
  keepUnlessErrors(r, mark, store.k8s_policies, std::move(pol));
}

}  // namespace zonewall::policy
