#include "calico_shape.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "zonewall/base/hash.h"

namespace zonewall::bench {
namespace {

using policy::K8sPeer;
using policy::K8sPolicy;
using policy::K8sPort;
using policy::K8sRule;
using policy::Pod;
using policy::Store;

// Calico's mark bits (its defaults): a policy or profile sets "accept"; "pass" skips to the
// next tier.
constexpr std::uint32_t kAccept = 0x10000;
constexpr std::uint32_t kPass = 0x20000;
constexpr int kReturnStride = 5;  // a group chain's RETURN-on-verdict, every fifth jump

std::string markIs(std::uint32_t bit) {
  return fmt::format("meta mark & {:#010x} == {:#010x}", bit, bit);
}
std::string markClear(std::uint32_t bits) {
  return fmt::format("meta mark & {:#010x} == 0x00000000", bits);
}
std::string clearMark(std::uint32_t bits) {
  return fmt::format("meta mark set meta mark & {:#010x}", ~bits);
}
std::string setAccept() { return fmt::format("meta mark set meta mark | {:#010x}", kAccept); }

const char* protoName(policy::Protocol p) {
  switch (p) {
    case policy::kUdp:
      return "udp";
    case policy::kSctp:
      return "sctp";
    default:
      return "tcp";
  }
}

class Renderer {
 public:
  Renderer(const Store& st, const std::string& node) : st_(st), node_(node) {
    for (const auto& ns : st.namespaces) ns_labels_[ns.name] = &ns.labels;
  }

  CalicoShape render() {
    // Policies in Calico's order for one tier (Kubernetes policies all have order 1000: by
    // name, "knp.default.<name>").
    std::vector<const K8sPolicy*> order;
    for (const auto& p : st_.k8s_policies) order.push_back(&p);
    std::ranges::sort(order, [](const K8sPolicy* a, const K8sPolicy* b) {
      return std::tie(a->ns, a->name) < std::tie(b->ns, b->name);
    });
    std::vector<std::string> dispatch_from, dispatch_to;
    for (const Pod& pod : st_.pods) {
      if (pod.node != node_) continue;
      std::vector<const K8sPolicy*> in, out;
      for (const K8sPolicy* p : order) {
        if (p->ns != pod.ns || !p->pod_selector.matches(pod.labels)) continue;
        if (p->ingress) in.push_back(p);
        if (p->egress) out.push_back(p);
      }
      const std::string iface = pod.hostVeth();
      endpointChain("cali-tw-" + iface, pod.ns, in, true);
      endpointChain("cali-fw-" + iface, pod.ns, out, false);
      dispatch_to.push_back(fmt::format("\"{}\" : goto cali-tw-{}", iface, iface));
      dispatch_from.push_back(fmt::format("\"{}\" : goto cali-fw-{}", iface, iface));
    }
    dispatchChain("cali-from-wl-dispatch", "iifname", dispatch_from);
    dispatchChain("cali-to-wl-dispatch", "oifname", dispatch_to);
    // The forward hook (Calico's cali-FORWARD, jumped to from filter FORWARD).
    chain("filter-FORWARD",
          {clearMark(kAccept | kPass | 0xc0000), "iifname \"zw*\" jump cali-from-wl-dispatch",
           "oifname \"zw*\" jump cali-to-wl-dispatch",
           markIs(kAccept) + " accept comment \"Policy explicitly accepted packet.\""},
          "type filter hook forward priority filter; policy accept;");

    out_.nft = "table ip calico-bench {\n";
    for (const auto& [name, members] : sets_) {
      out_.nft += "\tset " + name + " {\n\t\ttype " +
                  (name.starts_with("cali40n") ? "ipv4_addr . inet_proto . inet_service"
                                               : "ipv4_addr;\n\t\tflags interval") +
                  "\n";
      if (!members.empty()) {
        out_.nft += "\t\telements = { " + fmt::format("{}", fmt::join(members, ", ")) + " }\n";
      }
      out_.nft += "\t}\n";
      out_.set_members += members.size();
    }
    out_.sets = sets_.size();
    out_.nft += chains_ + "}\n";
    return std::move(out_);
  }

 private:
  void chain(const std::string& name, const std::vector<std::string>& rules,
             const std::string& hook = "") {
    chains_ += "\tchain " + name + " {\n";
    if (!hook.empty()) chains_ += "\t\t" + hook + "\n";
    for (const auto& r : rules) chains_ += "\t\t" + r + "\n";
    chains_ += "\t}\n";
    ++out_.chains;
    out_.rules += rules.size();
  }

  void dispatchChain(const std::string& name, const char* key,
                     const std::vector<std::string>& entries) {
    std::vector<std::string> rules;
    if (!entries.empty()) {
      rules.push_back(fmt::format("{} vmap {{ {} }}", key, fmt::join(entries, ", ")));
    }
    rules.push_back("drop comment \"Unknown interface\"");
    chain(name, rules);
  }

  // An endpoint's chain for one direction: conntrack, the tier of its policies, its profile.
  void endpointChain(const std::string& name, const std::string& ns,
                     const std::vector<const K8sPolicy*>& policies, bool ingress) {
    std::vector<std::string> r = {"ct state established,related accept", "ct state invalid drop",
                                  clearMark(kAccept | kPass)};
    if (!ingress) {
      r.push_back(
          "udp dport 4789 drop comment \"Drop VXLAN encapped packets originating in "
          "workloads\"");
      r.push_back(
          "meta l4proto 4 drop comment \"Drop IPinIP encapped packets originating in "
          "workloads\"");
    }
    if (!policies.empty()) {
      r.push_back(clearMark(kPass) + " comment \"Start of tier default\"");
      // Consecutive policies with one selector form a group, in a chain of its own when it
      // has more than one policy.
      for (size_t i = 0; i < policies.size();) {
        size_t j = i + 1;
        while (j < policies.size() && sameSelector(*policies[i], *policies[j])) ++j;
        std::string target =
            j - i == 1 ? policyChain(*policies[i], ingress) : groupChain(policies, i, j, ingress);
        r.push_back(markClear(kPass) + " jump " + target);
        r.push_back(markIs(kAccept) + " return comment \"Return if policy accepted\"");
        i = j;
      }
      r.push_back(markClear(kPass) + " drop comment \"Drop if no policies passed packet\"");
    }
    r.push_back("jump " + profileChain(ns, ingress));
    r.push_back(markIs(kAccept) + " return comment \"Return if profile accepted\"");
    r.push_back("drop comment \"Drop if no profiles matched\"");
    chain(name, r);
  }

  static bool sameSelector(const K8sPolicy& a, const K8sPolicy& b) {
    return a.ns == b.ns && a.pod_selector.str() == b.pod_selector.str();
  }

  std::string groupChain(const std::vector<const K8sPolicy*>& policies, size_t from, size_t to,
                         bool ingress) {
    std::string key = ingress ? "i" : "o";
    for (size_t k = from; k < to; ++k) key += "|" + policies[k]->key();
    std::string name = fmt::format("cali-g{}-{:016x}", ingress ? 'i' : 'o', zonewall::fnv1a(key));
    if (!rendered_.insert(name).second) return name;
    std::vector<std::string> r;
    for (size_t k = from; k < to; ++k) {
      size_t n = k - from;
      if (n != 0 && n % kReturnStride == 0) {
        r.push_back(
            fmt::format("meta mark & {:#010x} != 0x00000000 return comment \"Return on "
                        "verdict\"",
                        kAccept | kPass));
      }
      std::string jump = "jump " + policyChain(*policies[k], ingress);
      r.push_back(n % kReturnStride == 0 ? jump : markClear(kAccept | kPass) + " " + jump);
    }
    chain(name, r);
    return name;
  }

  // The namespace's profile (kns.<ns>): Kubernetes namespaces allow what no policy judges.
  std::string profileChain(const std::string& ns, bool ingress) {
    std::string name = std::string(ingress ? "cali-pri-kns." : "cali-pro-kns.") + ns;
    if (rendered_.insert(name).second) chain(name, {setAccept(), "return"});
    return name;
  }

  std::string policyChain(const K8sPolicy& p, bool ingress) {
    std::string name = std::string(ingress ? "cali-pi-" : "cali-po-") + p.ns + "." + p.name;
    if (!rendered_.insert(name).second) return name;
    std::vector<std::string> r;
    const char* peer_dir = ingress ? "saddr" : "daddr";
    for (const K8sRule& rule : ingress ? p.ingress_rules : p.egress_rules) {
      std::vector<std::string> peers;
      if (rule.peers.empty()) peers.push_back("");
      for (const K8sPeer& peer : rule.peers) peers.push_back(peerMatch(p, peer, peer_dir));
      for (const std::string& peer : peers) {
        for (const std::string& ports : portMatches(p, rule)) {
          std::string m = peer;
          if (!ports.empty()) m += (m.empty() ? "" : " ") + ports;
          r.push_back((m.empty() ? "" : m + " ") + setAccept());
          r.push_back(markIs(kAccept) + " return");
        }
      }
    }
    chain(name, r);
    return name;
  }

  std::string peerMatch(const K8sPolicy& p, const K8sPeer& peer, const char* dir) {
    if (peer.ip_block) {
      std::string m = fmt::format("ip {} {}", dir, peer.ip_block->cidr.str());
      std::vector<std::string> except;
      for (const auto& c : peer.ip_block->except) except.push_back(c.str());
      if (!except.empty()) m += fmt::format(" ip {} != {{ {} }}", dir, fmt::join(except, ", "));
      return m;
    }
    // The selector as Calico writes it: the namespace's, then the pod's.
    std::string ns_sel =
        peer.namespace_selector ? peer.namespace_selector->str() : "ns == '" + p.ns + "'";
    std::string pod_sel = peer.pod_selector ? peer.pod_selector->str() : "all()";
    std::string key = ns_sel + " && " + pod_sel;
    std::string name = fmt::format("cali40s_{:016x}", zonewall::fnv1a(key));
    if (!sets_.contains(name)) {
      std::set<std::string>& members = sets_[name];
      for (const Pod& pod : st_.pods) {
        bool ns_ok = peer.namespace_selector
                         ? peer.namespace_selector->matches(*ns_labels_.at(pod.ns))
                         : pod.ns == p.ns;
        if (!ns_ok || (peer.pod_selector && !peer.pod_selector->matches(pod.labels))) continue;
        for (const Addr& a : pod.ips) {
          if (a.family() == Family::kV4) members.insert(formatAddr(a));
        }
      }
    }
    return fmt::format("ip {} @{}", dir, name);
  }

  // Per protocol, its ports (numbers and ranges); a named port is an IP set of the selected
  // endpoints' (address, protocol, port).
  std::vector<std::string> portMatches(const K8sPolicy& p, const K8sRule& rule) {
    if (rule.ports.empty()) return {""};
    std::map<policy::Protocol, std::vector<std::string>> numbered;
    std::vector<std::string> out;
    for (const K8sPort& port : rule.ports) {
      if (!port.name.empty()) {
        std::string name =
            fmt::format("cali40n_{:016x}",
                        zonewall::fnv1a(p.key() + "/" + port.name + protoName(port.protocol)));
        std::set<std::string>& members = sets_[name];
        for (const Pod& pod : st_.pods) {
          if (pod.ns != p.ns || !p.pod_selector.matches(pod.labels)) continue;
          for (const auto& np : pod.ports) {
            if (np.name != port.name || np.protocol != port.protocol) continue;
            for (const Addr& a : pod.ips) {
              if (a.family() == Family::kV4) {
                members.insert(
                    fmt::format("{} . {} . {}", formatAddr(a), protoName(np.protocol), np.port));
              }
            }
          }
        }
        out.push_back(fmt::format("ip daddr . meta l4proto . th dport @{}", name));
        continue;
      }
      auto& list = numbered[port.protocol];
      if (!port.port) {
        list.push_back("");  // every port of the protocol
      } else if (port.end_port) {
        list.push_back(fmt::format("{}-{}", *port.port, *port.end_port));
      } else {
        list.push_back(std::to_string(*port.port));
      }
    }
    for (auto& [proto, list] : numbered) {
      if (std::ranges::find(list, "") != list.end()) {
        out.push_back(fmt::format("meta l4proto {}", protoName(proto)));
      } else {
        out.push_back(fmt::format("{} dport {{ {} }}", protoName(proto), fmt::join(list, ", ")));
      }
    }
    return out;
  }

  const Store& st_;
  std::string node_;
  std::map<std::string, const policy::Labels*> ns_labels_;
  std::map<std::string, std::set<std::string>> sets_;
  std::set<std::string> rendered_;
  std::string chains_;
  CalicoShape out_;
};

}  // namespace

CalicoShape calicoShape(const Store& store, const std::string& node) {
  return Renderer(store, node).render();
}

}  // namespace zonewall::bench
