#include "zonewall/agent/node_network.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <ifaddrs.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "zonewall/dataplane/masquerade.h"
#include "zonewall/dataplane/transport.h"

namespace zonewall::agent {
namespace {

using namespace std::chrono_literals;

// A failed renewal is tried again after this (Flannel: a minute).
constexpr auto kRenewRetry = 10s;
// A single node's pods get this MTU when no underlay is named.
constexpr int kDefaultMtu = 1500;

// The other nodes' leases of this node's backend (Flannel's backends ignore other types), as
// peers of the overlay of one IP family.
std::vector<Peer> peersOf(const std::vector<SubnetLease>& leases, const SubnetLease& own,
                          const std::string& backend, Family family) {
  const bool v6 = family == Family::kV6;
  std::vector<Peer> out;
  for (const SubnetLease& l : leases) {
    const std::optional<Cidr>& subnet = v6 ? l.ipv6_subnet : l.subnet;
    if (!subnet || l.key() == own.key()) continue;
    if (l.attrs.backend_type != backend) {
      spdlog::warn("ignoring lease {} of backend '{}'", l.key(), l.attrs.backend_type);
      continue;
    }
    if (v6 && !l.attrs.public_ipv6) {
      spdlog::warn("ignoring lease {}: an IPv6 subnet but no PublicIPv6", l.key());
      continue;
    }
    Peer p{*subnet, v6 ? *l.attrs.public_ipv6 : l.attrs.public_ip, {}};
    if (backend == "vxlan") {
      const std::string& text = v6 ? l.attrs.backend_v6_data : l.attrs.backend_data;
      auto data = nlohmann::json::parse(text, nullptr, false);
      auto mac = parseMac(data.is_object() ? data.value("VtepMAC", std::string()) : "");
      if (!mac) {
        spdlog::warn("ignoring lease {}: no VtepMAC in {}", l.key(), text);
        continue;
      }
      p.vtep_mac = *mac;
    }
    out.push_back(p);
  }
  return out;
}

// The backend of one IP family, and the lease's backend data for it.
std::expected<std::pair<Overlay, std::string>, Error> makeBackend(const NetworkConfig& config,
                                                                  const std::string& iface,
                                                                  Addr local) {
  const bool v6 = local.family() == Family::kV6;
  if (config.backend_type == "vxlan") {
    auto overlay = Overlay::vxlan(VxlanSpec{config.vni, config.port, iface, local});
    if (!overlay) return std::unexpected(overlay.error());
    std::string data =
        fmt::format(R"({{"VNI":{},"VtepMAC":"{}"}})", config.vni, formatMac(overlay->mac()));
    return std::pair{std::move(*overlay), std::move(data)};
  }
  if (config.backend_type == "host-gw") {
    auto overlay = Overlay::hostGw(iface, v6 ? config.ipv6_network : config.network);
    if (!overlay) return std::unexpected(overlay.error());
    return std::pair{std::move(*overlay), std::string("null")};  // host-gw: no backend data
  }
  return fail(
      Error::Code::kUnsupported,
      fmt::format("backend '{}': zonewall-agent runs vxlan and host-gw", config.backend_type));
}

std::expected<int, Error> underlayMtu(const std::string& iface) {
  std::ifstream in("/sys/class/net/" + iface + "/mtu");
  int mtu = 0;
  if (!(in >> mtu)) return fail(Error::Code::kInvalidInput, "no interface " + iface);
  return mtu;
}

// The interface of the first default IPv4 route (/proc/net/route: destination 0, mask 0).
std::expected<std::string, Error> defaultRouteInterface() {
  std::ifstream in("/proc/net/route");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string name, dest, gateway, flags, refcnt, use, metric, mask;
    if ((f >> name >> dest >> gateway >> flags >> refcnt >> use >> metric >> mask) &&
        dest == "00000000" && mask == "00000000") {
      return name;
    }
  }
  return fail(Error::Code::kNotFound, "unable to find default route (name the interface: --iface)");
}

}  // namespace

std::expected<ExternalInterface, Error> lookupExternalInterface(const std::string& iface) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return fail(Error::Code::kIo, "getifaddrs", errno);
  std::unique_ptr<ifaddrs, decltype(&freeifaddrs)> guard(list, freeifaddrs);
  auto v4 = [](const ifaddrs* a) -> std::optional<Addr> {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) return std::nullopt;
    const auto* in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
    return addrFromBytes(reinterpret_cast<const unsigned char*>(&in->sin_addr), Family::kV4);
  };
  if (auto ip = parseAddr(iface)) {
    for (const ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
      if (v4(a) == ip) return ExternalInterface{a->ifa_name, *ip, std::nullopt};
    }
    return fail(Error::Code::kNotFound, fmt::format("no interface holds {}", iface));
  }
  std::string name = iface;
  if (name.empty()) {
    auto d = defaultRouteInterface();
    if (!d) return std::unexpected(d.error());
    name = *d;
  }
  // The interface's first global IPv6 address (not link-local fe80::/10), for dual stack.
  std::optional<Addr> addr6;
  for (const ifaddrs* a = list; a != nullptr && !addr6; a = a->ifa_next) {
    if (name != a->ifa_name || a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET6) {
      continue;
    }
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a->ifa_addr);
    if (!IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr)) {
      addr6 = addrFromBytes(reinterpret_cast<const unsigned char*>(&in6->sin6_addr), Family::kV6);
    }
  }
  for (const ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (name == a->ifa_name) {
      if (auto ip = v4(a)) return ExternalInterface{name, *ip, addr6};
    }
  }
  return fail(Error::Code::kNotFound,
              fmt::format("interface {} has no IPv4 address (or does not exist)", name));
}

NodeNetwork::NodeNetwork(std::unique_ptr<SubnetManager> manager, NodeNetworkOptions options,
                         Metrics& metrics)
    : manager_(std::move(manager)), options_(std::move(options)), metrics_(metrics) {}

NodeNetwork::~NodeNetwork() {
  stop_ = true;
  wake_renewer_.notify_all();
  if (follower_.joinable()) follower_.join();
  if (renewer_.joinable()) renewer_.join();
  if (checker_.joinable()) checker_.join();
}

SubnetLease NodeNetwork::lease() const {
  std::lock_guard lock(mu_);
  return lease_;
}

std::expected<std::unique_ptr<NodeNetwork>, Error> NodeNetwork::start(
    std::unique_ptr<SubnetManager> manager, NodeNetworkOptions options, Metrics& metrics) {
  std::unique_ptr<NodeNetwork> n(new NodeNetwork(std::move(manager), std::move(options), metrics));
  const NodeNetworkOptions& o = n->options_;
  auto config = n->manager_->config();
  if (!config) return std::unexpected(config.error());
  n->config_ = *config;
  LeaseAttrs attrs;
  attrs.public_ip = o.public_ip;
  attrs.backend_type = config->backend_type;
  auto mtu = n->startBackends(attrs);
  if (!mtu) return std::unexpected(mtu.error());
  auto lease = n->manager_->acquire(*config, attrs, previousSubnet(o.subnet_file));
  if (!lease) return std::unexpected(lease.error());
  n->lease_ = *lease;
  n->lease_ttl_ = lease->expiration - std::chrono::system_clock::now();
  spdlog::info(
      "leased {} from the {} subnet manager (PublicIP {}, backend {}{})",
      lease->subnet ? lease->subnet->str() : lease->key(), n->manager_->name(),
      formatAddr(lease->attrs.public_ip), config->backend_type,
      n->manager_->expires()
          ? fmt::format(", lease for {}s", std::chrono::duration_cast<std::chrono::seconds>(
                                               lease->expiration - std::chrono::system_clock::now())
                                               .count())
          : "");
  if (n->overlay_ && lease->subnet) {
    if (auto ok = n->overlay_->assign(*lease->subnet); !ok) return std::unexpected(ok.error());
  }
  if (n->overlay6_ && lease->ipv6_subnet) {
    if (auto ok = n->overlay6_->assign(*lease->ipv6_subnet); !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (o.ip_masq) {
    if (auto ok = n->masquerade(); !ok) return std::unexpected(ok.error());
  }
  std::filesystem::create_directories(std::filesystem::path(o.subnet_file).parent_path());
  if (auto ok = writeSubnetEnv(o.subnet_file, *config, *lease, *mtu, o.ip_masq); !ok) {
    return std::unexpected(ok.error());
  }
  n->follower_ = std::thread([p = n.get()] {
    p->manager_->follow([p](const std::vector<SubnetLease>& all) { p->onLeases(all); }, p->stop_);
  });
  if (n->manager_->expires()) n->renewer_ = std::thread([p = n.get()] { p->renewLoop(); });
  if ((n->overlay_ || n->overlay6_) && o.check_interval.count() > 0) {
    n->checker_ = std::thread([p = n.get()] { p->checkLoop(); });
  }
  return n;
}

// One backend per IP family the network enables (flannel.1 and flannel-v6.1 for vxlan), none
// for a single node; the lease's attributes get their addresses and data. The MTU pods get.
std::expected<int, Error> NodeNetwork::startBackends(LeaseAttrs& attrs) {
  const NodeNetworkOptions& o = options_;
  if (manager_->name() == "static") {
    return o.iface.empty() ? kDefaultMtu : underlayMtu(o.iface);
  }
  for (Family f : {Family::kV4, Family::kV6}) {
    const bool v6 = f == Family::kV6;
    if (!(v6 ? config_.enable_ipv6 : config_.enable_ipv4)) continue;
    const std::optional<Addr> local = v6 ? o.public_ipv6 : std::optional(o.public_ip);
    if (!local) {
      return fail(Error::Code::kInvalidInput,
                  "the network enables IPv6 (EnableIPv6) but this node has no IPv6 address "
                  "(--public-ipv6, or a global one on --iface)");
    }
    auto backend = makeBackend(config_, o.iface, *local);
    if (!backend) return std::unexpected(backend.error());
    (v6 ? overlay6_ : overlay_) = std::move(backend->first);
    if (v6) {
      attrs.public_ipv6 = local;
      attrs.backend_v6_data = std::move(backend->second);
    } else {
      attrs.backend_data = std::move(backend->second);
    }
  }
  // Pods get what fits every tunnel they use (dual stack: the IPv6 device's, 20 bytes less).
  return std::min(overlay_ ? overlay_->mtu() : INT_MAX, overlay6_ ? overlay6_->mtu() : INT_MAX);
}

std::expected<void, Error> NodeNetwork::masquerade() {
  dataplane::MasqueradeSpec spec;
  spec.table = options_.masq_table;
  if (lease_.subnet) spec.nets.push_back({config_.network, *lease_.subnet});
  if (lease_.ipv6_subnet) spec.nets.push_back({config_.ipv6_network, *lease_.ipv6_subnet});
  auto transport = dataplane::openNetlink("");
  if (!transport) return std::unexpected(transport.error());
  const dataplane::Batch batch = dataplane::encodeMasquerade(spec, 1);
  if (auto ok = (*transport)->commit(batch); !ok) {
    return fail(ok.error().code, "masquerade table: " + ok.error().str());
  }
  spdlog::info("masquerade: pod traffic from {} leaving {} (table inet {})",
               lease_.subnet ? lease_.subnet->str() : "", config_.network.str(), spec.table);
  return {};
}

void NodeNetwork::onLeases(const std::vector<SubnetLease>& leases) {
  SubnetLease own;
  {
    std::lock_guard lock(mu_);
    own = lease_;
    if (manager_->expires()) {
      auto it = std::find_if(leases.begin(), leases.end(),
                             [&](const SubnetLease& l) { return l.key() == own.key(); });
      if (it == leases.end()) {
        if (!reclaim_ && !lost_) {
          spdlog::warn("lease {} is gone from the datastore (expired?): claiming it again",
                       own.key());
          reclaim_ = true;
          wake_renewer_.notify_all();
        }
      } else if (it->attrs.public_ip != options_.public_ip) {
        if (!lost_) {
          lost_ = true;
          metrics_.lease_lost.Increment();
          spdlog::critical(
              "lease {} LOST: it expired and node {} holds it now; this node's pods keep "
              "their addresses but no longer own them",
              own.key(), formatAddr(it->attrs.public_ip));
        }
      } else {
        lost_ = false;
      }
    }
  }
  syncOverlays(leases, own);
}

void NodeNetwork::syncOverlays(const std::vector<SubnetLease>& leases, const SubnetLease& own) {
  std::lock_guard lock(overlay_mu_);
  leases_ = leases;
  int peers = 0, added = 0, removed = 0, unchanged = 0;
  for (auto [overlay, family] : {std::pair{&overlay_, Family::kV4}, {&overlay6_, Family::kV6}}) {
    if (!*overlay) continue;
    const std::vector<Peer> want = peersOf(leases, own, config_.backend_type, family);
    auto changes = (*overlay)->sync(want);
    if (!changes) {
      spdlog::error("overlay: {} (repaired at the next check)", changes.error().str());
      (*overlay)->forget();
      continue;
    }
    peers += static_cast<int>(want.size());
    added += changes->added;
    removed += changes->removed;
    unchanged += changes->unchanged;
  }
  metrics_.overlay_peers.Set(peers);
  metrics_.overlay_changes.Increment(added + removed);
  if (added + removed > 0) {
    spdlog::info("overlay: {} entries added, {} removed, {} peers unchanged", added, removed,
                 unchanged);
  }
}

// Flannel's route check, for every backend: read the kernel's entries again and put back what
// someone removed or changed.
void NodeNetwork::checkLoop() {
  auto next = std::chrono::steady_clock::now() + options_.check_interval;
  while (!stop_) {
    if (std::chrono::steady_clock::now() < next) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    next = std::chrono::steady_clock::now() + options_.check_interval;
    std::vector<SubnetLease> leases;
    {
      std::lock_guard lock(overlay_mu_);
      if (overlay_) overlay_->forget();
      if (overlay6_) overlay6_->forget();
      leases = leases_;
    }
    syncOverlays(leases, lease());
  }
}

void NodeNetwork::renewLoop() {
  const auto margin =
      std::min<std::chrono::system_clock::duration>(options_.renew_margin, lease_ttl_ / 2);
  std::unique_lock lock(mu_);
  while (!stop_) {
    const auto renew_at = lease_.expiration - margin;
    wake_renewer_.wait_until(lock, renew_at, [&] { return stop_ || reclaim_; });
    if (stop_) return;
    SubnetLease l = lease_;
    const bool reclaim = reclaim_;
    lock.unlock();
    std::expected<void, Error> ok;
    if (reclaim) {
      // Our key expired while etcd was away: the same subnet again, or lost.
      auto again = manager_->acquire(config_, l.attrs, l.subnet);
      if (again && again->key() == l.key()) {
        l = *again;
      } else if (again) {
        (void)manager_->release(*again);  // never move this node's pods to another subnet
        ok = fail(Error::Code::kConflict, "another node took it");
      } else {
        ok = std::unexpected(again.error());
      }
    } else {
      ok = manager_->renew(l);
    }
    lock.lock();
    if (ok) {
      metrics_.lease_renewals.Increment();
      lease_ = l;
      reclaim_ = false;
      spdlog::debug("lease {} renewed", l.key());
      continue;
    }
    if (ok.error().code == Error::Code::kConflict) {
      reclaim_ = false;
      lost_ = true;
      metrics_.lease_lost.Increment();
      spdlog::critical("lease {} LOST: {}", l.key(), ok.error().str());
      continue;
    }
    // etcd away: keep the lease, the addresses and the dataplane; try again soon.
    metrics_.lease_renew_failures.Increment();
    spdlog::warn("lease {}: renewal failed: {} (kept; retrying)", l.key(), ok.error().str());
    wake_renewer_.wait_for(lock, kRenewRetry, [&] { return stop_.load(); });
  }
}

}  // namespace zonewall::agent
