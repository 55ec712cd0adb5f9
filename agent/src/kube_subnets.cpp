// Flannel's kube subnet manager (flannel-io/flannel pkg/subnet/kube/kube.go) and the
// single-node static one. In Kubernetes mode nothing is leased: the node controller assigns
// each node its spec.podCIDR(s), and a node's lease is what its annotations say about it.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "list_watch.h"
#include "zonewall/agent/kube.h"
#include "zonewall/agent/leases.h"

namespace zonewall::agent {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Flannel polls the API for its node every 3 s for 30 s before it gives up.
constexpr auto kNodePoll = 3s;
constexpr auto kNodeWait = 30s;

struct Annotations {
  std::string managed, backend_data, backend_v6_data, backend_type, public_ip, public_ipv6,
      public_ip_overwrite;
  explicit Annotations(const std::string& p)
      : managed(p + "kube-subnet-manager"),
        backend_data(p + "backend-data"),
        backend_v6_data(p + "backend-v6-data"),
        backend_type(p + "backend-type"),
        public_ip(p + "public-ip"),
        public_ipv6(p + "public-ipv6"),
        public_ip_overwrite(p + "public-ip-overwrite") {}
};

std::string annotation(const json& node, const std::string& key) {
  const json& a = node.value("metadata", json::object()).value("annotations", json::object());
  auto it = a.find(key);
  return it != a.end() && it->is_string() ? it->get<std::string>() : "";
}

// spec.podCIDRs (or the older single spec.podCIDR) as an IPv4 and an IPv6 subnet.
std::expected<std::pair<std::optional<Cidr>, std::optional<Cidr>>, Error> podCidrs(
    const json& node, const std::string& name) {
  const json& spec = node.value("spec", json::object());
  std::vector<std::string> cidrs;
  if (spec.contains("podCIDRs") && spec["podCIDRs"].is_array() && !spec["podCIDRs"].empty()) {
    for (const json& c : spec["podCIDRs"]) {
      if (c.is_string()) cidrs.push_back(c.get<std::string>());
    }
  } else if (spec.contains("podCIDR") && spec["podCIDR"].is_string() &&
             !spec["podCIDR"].get<std::string>().empty()) {
    cidrs.push_back(spec["podCIDR"].get<std::string>());
  }
  if (cidrs.size() > 2) {
    return fail(Error::Code::kInvalidInput,
                fmt::format("node \"{}\" pod cidrs should be IPv4/IPv6 only or dualstack", name));
  }
  std::pair<std::optional<Cidr>, std::optional<Cidr>> out;
  for (const std::string& text : cidrs) {
    auto c = parseCidr(text);
    if (!c) {
      return fail(Error::Code::kInvalidInput,
                  fmt::format("node \"{}\": invalid pod CIDR \"{}\"", name, text));
    }
    (c->cidr.family == Family::kV4 ? out.first : out.second) = c->cidr;
  }
  return out;
}

bool within(const Cidr& network, const Cidr& subnet) {
  return network.family == subnet.family && network.prefix <= subnet.prefix &&
         network.contains(subnet.base);
}

std::expected<NetworkConfig, Error> readNetConf(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail(Error::Code::kIo, fmt::format("failed to read net conf: {}", path));
  std::stringstream text;
  text << in.rdbuf();
  auto config = parseNetworkConfig(text.str());
  if (!config) {
    Error err = config.error();
    err.message = "error parsing subnet config: " + err.message;
    if (err.loc.known()) {
      err.loc.file = path;  // "net-conf.json:3:14: error parsing subnet config: ..."
    } else {
      err.message = path + ": " + err.message;
    }
    return std::unexpected(std::move(err));
  }
  return config;
}

class KubeSubnetManager final : public SubnetManager {
 public:
  KubeSubnetManager(const KubeConfig& kube, KubeSubnetOptions options, std::string prefix,
                    NetworkConfig config, Metrics& metrics)
      : kube_(kube),
        options_(std::move(options)),
        names_(prefix),
        config_(std::move(config)),
        metrics_(metrics),
        client_(kube) {}

  std::string name() const override { return "kube"; }
  std::expected<NetworkConfig, Error> config() override { return config_; }

  std::expected<SubnetLease, Error> acquire(const NetworkConfig& config, const LeaseAttrs& attrs,
                                            const std::optional<Cidr>& /*previous*/) override {
    const std::string path = "/api/v1/nodes/" + urlEncode(options_.node);
    auto node = getNode(path);
    if (!node) return std::unexpected(node.error());
    if (node->value("spec", json::object()).value("podCIDR", "").empty()) {
      return fail(Error::Code::kNotFound,
                  fmt::format("node \"{}\" pod cidr not assigned", options_.node));
    }
    auto cidrs = podCidrs(*node, options_.node);
    if (!cidrs) return std::unexpected(cidrs.error());
    SubnetLease lease;
    lease.attrs = attrs;
    lease.expiration = std::chrono::system_clock::now() + std::chrono::hours(24);
    if (cidrs->first && config.enable_ipv4) {
      if (!within(config.network, *cidrs->first)) {
        return fail(Error::Code::kInvalidInput,
                    fmt::format("subnet \"{}\" specified in the flannel net config doesn't "
                                "contain \"{}\" PodCIDR of the \"{}\" node",
                                config.network.str(), cidrs->first->str(), options_.node));
      }
      lease.subnet = cidrs->first;
    }
    if (cidrs->second && config.enable_ipv6) {
      if (!within(config.ipv6_network, *cidrs->second)) {
        return fail(Error::Code::kInvalidInput,
                    fmt::format("subnet \"{}\" specified in the flannel net config doesn't "
                                "contain \"{}\" IPv6 PodCIDR of the \"{}\" node",
                                config.ipv6_network.str(), cidrs->second->str(), options_.node));
      }
      lease.ipv6_subnet = cidrs->second;
    }
    if (!lease.subnet && !lease.ipv6_subnet) {
      return fail(Error::Code::kInvalidInput,
                  fmt::format("node \"{}\": no pod CIDR of an enabled IP family", options_.node));
    }
    // Checked before anything is published: a node whose podCIDR the network does not hold
    // never advertises a lease.
    if (auto ok = publish(path, *node, lease); !ok) return std::unexpected(ok.error());
    if (options_.set_network_unavailable) {
      if (auto ok = markNetworkAvailable(path); !ok) return std::unexpected(ok.error());
    }
    return lease;
  }

  void follow(const std::function<void(const std::vector<SubnetLease>&)>& on_leases,
              const std::atomic<bool>& stop) override {
    ListWatch nodes("/api/v1/nodes", "nodes", false, kube_, metrics_, stop);
    std::map<std::string, SubnetLease> known, listing;
    auto deliver = [&] {
      std::vector<SubnetLease> all;
      all.reserve(known.size());
      for (const auto& [name, l] : known) all.push_back(l);
      on_leases(all);
    };
    nodes.run({
        .list_begin = [&] { listing.clear(); },
        .list_item =
            [&](const json& n) {
              if (auto l = leaseOf(n)) listing[nameOf(n)] = std::move(*l);
            },
        .list_end =
            [&] {
              known = std::move(listing);
              listing = {};
              deliver();
            },
        .absent = [] {},
        .event =
            [&](std::string_view type, const json& n) {
              auto l = type == "DELETED" ? std::nullopt : leaseOf(n);
              auto it = known.find(nameOf(n));
              if (!l && it == known.end()) return;
              if (l && it != known.end() && it->second.key() == l->key() &&
                  it->second.attrs == l->attrs) {
                return;  // a status heartbeat: nothing the overlay uses changed
              }
              if (l) {
                known[nameOf(n)] = std::move(*l);
              } else {
                known.erase(it);
              }
              deliver();
            },
    });
  }

 private:
  static std::string nameOf(const json& n) {
    return n.value("metadata", json::object()).value("name", "");
  }

  static std::string isoNow() {
    const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
  }

  // The lease as Flannel's annotations on this node (the public-ip-overwrite annotation wins
  // over our address), patched only when they differ: a strategic merge patch through
  // nodes/status, the one write Flannel's ClusterRole grants.
  std::expected<void, Error> publish(const std::string& path, const json& node,
                                     SubnetLease& lease) {
    const LeaseAttrs& attrs = lease.attrs;
    const std::string overwrite = annotation(node, names_.public_ip_overwrite);
    if (!overwrite.empty()) {
      auto ip = parseAddr(overwrite);
      if (!ip || ip->family() != Family::kV4) {
        return fail(Error::Code::kInvalidInput,
                    fmt::format("node \"{}\": annotation {}: not an IPv4 address: \"{}\"",
                                options_.node, names_.public_ip_overwrite, overwrite));
      }
      spdlog::info("overriding public ip with '{}' from node annotation '{}'", overwrite,
                   names_.public_ip_overwrite);
      lease.attrs.public_ip = *ip;
    }
    const std::string public_ip = formatAddr(attrs.public_ip);
    const std::string public_ipv6 = attrs.public_ipv6 ? formatAddr(*attrs.public_ipv6) : "";
    if (annotation(node, names_.backend_data) == attrs.backend_data &&
        annotation(node, names_.backend_type) == attrs.backend_type &&
        annotation(node, names_.public_ip) == public_ip &&
        annotation(node, names_.managed) == "true" &&
        (!attrs.public_ipv6 || (annotation(node, names_.backend_v6_data) == attrs.backend_v6_data &&
                                annotation(node, names_.public_ipv6) == public_ipv6))) {
      return {};
    }
    json annotations = {{names_.backend_type, attrs.backend_type},
                        {names_.backend_data, attrs.backend_data},
                        {names_.public_ip, public_ip},
                        {names_.managed, "true"}};
    if (attrs.public_ipv6) {
      annotations[names_.backend_v6_data] = attrs.backend_v6_data;
      annotations[names_.public_ipv6] = public_ipv6;
    }
    return patchStatus(path, {{"metadata", {{"annotations", annotations}}}});
  }

  // Flannel's CompleteLease: the node's NetworkUnavailable condition is False.
  std::expected<void, Error> markNetworkAvailable(const std::string& path) {
    const std::string now = isoNow();
    json condition = {
        {"type", "NetworkUnavailable"}, {"status", "False"},
        {"reason", "ZonewallIsUp"},     {"message", "zonewall-agent is running on this node"},
        {"lastTransitionTime", now},    {"lastHeartbeatTime", now}};
    return patchStatus(path, {{"status", {{"conditions", json::array({condition})}}}});
  }

  // Flannel's nodeToLease; nodes that flanneld (or an agent) does not manage have none.
  std::optional<SubnetLease> leaseOf(const json& n) const {
    if (annotation(n, names_.managed) != "true") return std::nullopt;
    const std::string name = nameOf(n);
    SubnetLease l;
    auto ip = parseAddr(annotation(n, names_.public_ip));
    auto cidrs = podCidrs(n, name);
    if (!ip || ip->family() != Family::kV4 || !cidrs || (config_.enable_ipv4 && !cidrs->first)) {
      spdlog::warn("node {}: no lease in its annotations and pod CIDRs ({}={}, podCIDR {})", name,
                   names_.public_ip, annotation(n, names_.public_ip),
                   cidrs ? (cidrs->first ? cidrs->first->str() : "none") : cidrs.error().str());
      return std::nullopt;
    }
    l.attrs.public_ip = *ip;
    l.attrs.backend_type = annotation(n, names_.backend_type);
    l.attrs.backend_data = annotation(n, names_.backend_data);
    if (config_.enable_ipv4) l.subnet = cidrs->first;
    if (config_.enable_ipv6 && cidrs->second) {
      auto ip6 = parseAddr(annotation(n, names_.public_ipv6));
      if (ip6 && ip6->family() == Family::kV6) {
        l.ipv6_subnet = cidrs->second;
        l.attrs.public_ipv6 = *ip6;
        l.attrs.backend_v6_data = annotation(n, names_.backend_v6_data);
      }
    }
    return l;
  }

  std::expected<json, Error> getNode(const std::string& path) {
    const auto deadline = std::chrono::steady_clock::now() + kNodeWait;
    std::string last;
    for (;;) {
      auto resp = client_.request(path, stop_);
      if (resp && resp->status == 200) {
        auto node = json::parse(resp->body, nullptr, false);
        if (node.is_object()) return node;
        last = "the response is not a Node";
      } else {
        if (resp && resp->status == 401) client_.reloadToken();
        last = resp ? fmt::format("HTTP {}: {}", resp->status, statusMessage(resp->body))
                    : resp.error().str();
      }
      if (std::chrono::steady_clock::now() + kNodePoll > deadline) break;
      spdlog::info("node {}: {} (retrying)", options_.node, last);
      std::this_thread::sleep_for(kNodePoll);
    }
    return fail(Error::Code::kIo,
                fmt::format("timeout contacting kube-api, failed to get node \"{}\": {}",
                            options_.node, last));
  }

  std::expected<void, Error> patchStatus(const std::string& node_path, const json& patch) {
    const auto deadline = std::chrono::steady_clock::now() + kNodeWait;
    std::string last;
    for (;;) {
      auto resp = client_.request(node_path + "/status", stop_, "PATCH", patch.dump(),
                                  "application/strategic-merge-patch+json");
      if (resp && resp->status == 200) return {};
      if (resp && resp->status == 401) client_.reloadToken();
      last = resp ? fmt::format("HTTP {}: {}", resp->status, statusMessage(resp->body))
                  : resp.error().str();
      if ((resp && resp->status == 403) ||
          std::chrono::steady_clock::now() + kNodePoll > deadline) {
        break;
      }
      std::this_thread::sleep_for(kNodePoll);
    }
    return fail(Error::Code::kIo,
                fmt::format("failed to patch node \"{}\": {}", options_.node, last));
  }

  KubeConfig kube_;
  KubeSubnetOptions options_;
  Annotations names_;
  NetworkConfig config_;
  Metrics& metrics_;
  KubeClient client_;
  std::atomic<bool> stop_{false};
};

class StaticSubnetManager final : public SubnetManager {
 public:
  StaticSubnetManager(NetworkConfig config, Cidr subnet)
      : config_(std::move(config)), subnet_(subnet) {}
  std::string name() const override { return "static"; }
  std::expected<NetworkConfig, Error> config() override { return config_; }
  std::expected<SubnetLease, Error> acquire(const NetworkConfig& config, const LeaseAttrs& attrs,
                                            const std::optional<Cidr>& /*previous*/) override {
    if (!within(config.network, subnet_)) {
      return fail(Error::Code::kInvalidInput, fmt::format("subnet {} is not inside the network {}",
                                                          subnet_.str(), config.network.str()));
    }
    SubnetLease l;
    l.subnet = subnet_;
    l.attrs = attrs;
    l.expiration = std::chrono::system_clock::time_point::max();
    return l;
  }
  void follow(const std::function<void(const std::vector<SubnetLease>&)>& on_leases,
              const std::atomic<bool>& stop) override {
    on_leases({});  // no other node, ever
    while (!stop) std::this_thread::sleep_for(100ms);
  }

 private:
  NetworkConfig config_;
  Cidr subnet_;
};

}  // namespace

std::expected<std::string, Error> annotationPrefix(const std::string& given) {
  std::string prefix = given;
  const auto slashes = std::count(prefix.begin(), prefix.end(), '/');
  if (slashes > 1) {
    return fail(Error::Code::kInvalidInput, "subnet/kube: prefix can contain at most single slash");
  }
  if (slashes == 0) prefix += "/";
  if (!prefix.ends_with('/') && !prefix.ends_with('-')) prefix += "-";
  // Go's regexp.MatchString: anchored at the end only.
  static const std::regex kShape(R"((?:[a-z0-9_-]+\.)+[a-z0-9_-]+/(?:[a-z0-9_-]+-)?$)");
  if (!std::regex_search(prefix, kShape)) {
    return fail(Error::Code::kInvalidInput,
                "subnet/kube: prefix must be in a format: fqdn/[0-9a-z-_]*");
  }
  return prefix;
}

std::expected<std::unique_ptr<SubnetManager>, Error> kubeSubnetManager(const KubeConfig& kube,
                                                                       KubeSubnetOptions options,
                                                                       Metrics& metrics) {
  auto prefix = annotationPrefix(options.annotation_prefix);
  if (!prefix) return std::unexpected(prefix.error());
  auto config = readNetConf(options.net_conf);
  if (!config) return std::unexpected(config.error());
  return std::make_unique<KubeSubnetManager>(kube, std::move(options), *prefix, *config, metrics);
}

std::unique_ptr<SubnetManager> staticSubnetManager(NetworkConfig config, Cidr subnet) {
  return std::make_unique<StaticSubnetManager>(std::move(config), subnet);
}

}  // namespace zonewall::agent
