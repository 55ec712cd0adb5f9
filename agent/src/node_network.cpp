#include "zonewall/agent/node_network.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <nlohmann/json.hpp>

namespace zonewall::agent {
namespace {

using namespace std::chrono_literals;

// A lost connection or an ended watch is tried again after this.
constexpr auto kRetry = 2s;
// A failed renewal is tried again after this (Flannel: a minute).
constexpr auto kRenewRetry = 10s;

std::vector<VxlanPeer> vxlanPeers(const std::vector<SubnetLease>& leases, const SubnetLease& own) {
  std::vector<VxlanPeer> out;
  for (const SubnetLease& l : leases) {
    if (!l.subnet || l.key() == own.key()) continue;
    if (l.attrs.backend_type != "vxlan") {
      spdlog::warn("ignoring lease {} of backend '{}'", l.key(), l.attrs.backend_type);
      continue;
    }
    auto data = nlohmann::json::parse(l.attrs.backend_data, nullptr, false);
    auto mac = parseMac(data.is_object() ? data.value("VtepMAC", std::string()) : "");
    if (!mac) {
      spdlog::warn("ignoring lease {}: no VtepMAC in {}", l.key(), l.attrs.backend_data);
      continue;
    }
    out.push_back({*l.subnet, l.attrs.public_ip, *mac});
  }
  return out;
}

// Sleeps until `until` or until `stop`, in short steps.
void sleepUntil(std::chrono::steady_clock::time_point until, const std::atomic<bool>& stop) {
  while (!stop && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(100ms);
}

}  // namespace

NodeNetwork::NodeNetwork(NodeNetworkOptions options, Metrics& metrics)
    : options_(std::move(options)), metrics_(metrics) {}

NodeNetwork::~NodeNetwork() {
  stop_ = true;
  if (watcher_.joinable()) watcher_.join();
  if (renewer_.joinable()) renewer_.join();
}

SubnetLease NodeNetwork::lease() const {
  std::lock_guard lock(mu_);
  return lease_;
}

std::expected<std::unique_ptr<NodeNetwork>, Error> NodeNetwork::start(NodeNetworkOptions options,
                                                                      Metrics& metrics) {
  std::unique_ptr<NodeNetwork> n(new NodeNetwork(std::move(options), metrics));
  const NodeNetworkOptions& o = n->options_;
  n->manager_ = std::make_unique<EtcdSubnetManager>(o.etcd, o.prefix, o.ttl);
  auto config = n->manager_->config();
  if (!config) return std::unexpected(config.error());
  n->config_ = *config;
  if (config->backend_type != "vxlan") {
    return fail(
        Error::Code::kUnsupported,
        fmt::format("backend '{}': zonewall-agent runs the vxlan backend", config->backend_type));
  }
  auto overlay = VxlanOverlay::ensure(VxlanSpec{config->vni, config->port, o.iface, o.public_ip});
  if (!overlay) return std::unexpected(overlay.error());
  n->overlay_ = std::make_unique<VxlanOverlay>(std::move(*overlay));
  LeaseAttrs attrs;
  attrs.public_ip = o.public_ip;
  attrs.backend_type = "vxlan";
  attrs.backend_data =
      fmt::format(R"({{"VNI":{},"VtepMAC":"{}"}})", config->vni, formatMac(n->overlay_->mac()));
  auto lease = n->manager_->acquire(*config, attrs, previousSubnet(o.subnet_file));
  if (!lease) return std::unexpected(lease.error());
  n->lease_ = *lease;
  spdlog::info("leased {} (PublicIP {}, VTEP {}, until {}s from now)", lease->subnet->str(),
               formatAddr(o.public_ip), formatMac(n->overlay_->mac()),
               std::chrono::duration_cast<std::chrono::seconds>(lease->expiration -
                                                                std::chrono::system_clock::now())
                   .count());
  if (auto ok = n->overlay_->assign(*lease->subnet); !ok) return std::unexpected(ok.error());
  std::filesystem::create_directories(std::filesystem::path(o.subnet_file).parent_path());
  if (auto ok = writeSubnetEnv(o.subnet_file, *config, *lease, n->overlay_->mtu(), o.ip_masq);
      !ok) {
    return std::unexpected(ok.error());
  }
  if (auto ok = n->resync(); !ok) return std::unexpected(ok.error());
  n->watcher_ = std::thread([p = n.get()] { p->followLeases(); });
  n->renewer_ = std::thread([p = n.get()] { p->renewLoop(); });
  return n;
}

// Lists every lease and makes the overlay route to exactly the others. Our own key missing
// (expired while etcd was away) is claimed again; taken by another node, it is lost: loud.
std::expected<std::int64_t, Error> NodeNetwork::resync() {
  static thread_local std::unique_ptr<EtcdSubnetManager> lister;
  if (!lister)
    lister = std::make_unique<EtcdSubnetManager>(options_.etcd, options_.prefix, options_.ttl);
  auto listed = lister->leases();
  if (!listed) return std::unexpected(listed.error());
  std::lock_guard lock(mu_);
  bool present = false;
  for (const SubnetLease& l : listed->first) {
    if (l.subnet != lease_.subnet) continue;
    present = true;
    if (l.attrs.public_ip != options_.public_ip) {
      metrics_.lease_lost.Increment();
      spdlog::critical(
          "lease {} LOST: it expired and node {} holds it now; this node's pods "
          "keep their addresses but no longer own them",
          lease_.key(), formatAddr(l.attrs.public_ip));
    }
  }
  if (!present) {
    spdlog::warn("lease {} is gone from etcd (expired?): claiming it again", lease_.key());
    auto again = lister->acquire(config_, lease_.attrs, lease_.subnet);
    if (again && again->subnet == lease_.subnet) {
      lease_ = *again;
    } else if (again) {
      (void)lister->release(*again);  // never move this node's pods to another subnet
      metrics_.lease_lost.Increment();
      spdlog::critical("lease {} LOST: another node took it", lease_.key());
    }
  }
  const std::vector<VxlanPeer> peers = vxlanPeers(listed->first, lease_);
  auto changes = overlay_->sync(peers);
  if (!changes) return std::unexpected(changes.error());
  metrics_.overlay_peers.Set(static_cast<double>(peers.size()));
  metrics_.overlay_changes.Increment(changes->added + changes->removed);
  if (changes->added + changes->removed > 0) {
    spdlog::info("overlay: {} entries added, {} removed, {} peers unchanged", changes->added,
                 changes->removed, changes->unchanged);
  }
  return listed->second;
}

void NodeNetwork::followLeases() {
  EtcdSubnetManager watcher(options_.etcd, options_.prefix, options_.ttl);
  std::int64_t revision = 0;
  while (!stop_) {
    if (revision == 0) {
      // (Re)list: the overlay from the whole set, then watch from just after it.
      auto listed = resync();
      if (!listed) {
        spdlog::warn("leases/overlay: {} (retrying)", listed.error().str());
        sleepUntil(std::chrono::steady_clock::now() + kRetry, stop_);
        continue;
      }
      revision = *listed + 1;
    }
    auto next = watcher.watch(
        revision,
        [&](const SubnetLease&, bool) {
          if (auto ok = resync(); !ok) spdlog::warn("overlay: {}", ok.error().str());
          return !stop_;
        },
        stop_);
    if (!next || *next == EtcdClient::kCompacted) {
      if (!next && !stop_) spdlog::warn("lease watch: {} (retrying)", next.error().str());
      revision = 0;
      sleepUntil(std::chrono::steady_clock::now() + kRetry, stop_);
      continue;
    }
    revision = *next;
  }
}

void NodeNetwork::renewLoop() {
  const auto margin = std::min(options_.renew_margin, options_.ttl / 2);
  while (!stop_) {
    SubnetLease l = lease();
    const auto until_renew = l.expiration - margin - std::chrono::system_clock::now();
    sleepUntil(std::chrono::steady_clock::now() +
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(until_renew),
               stop_);
    if (stop_) return;
    l = lease();
    if (auto ok = manager_->renew(l); ok) {
      metrics_.lease_renewals.Increment();
      std::lock_guard lock(mu_);
      lease_ = l;
      spdlog::debug("lease {} renewed", l.key());
    } else {
      // etcd away: keep the lease, the addresses and the dataplane; try again soon.
      metrics_.lease_renew_failures.Increment();
      spdlog::warn("lease {}: renewal failed: {} (kept; retrying)", l.key(), ok.error().str());
      sleepUntil(std::chrono::steady_clock::now() + kRenewRetry, stop_);
    }
  }
}

}  // namespace zonewall::agent
