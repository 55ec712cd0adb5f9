// List-then-watch (list_watch.h) of every resource the agent reads, one thread each: a list
// replaces the kind's objects (a relist diffs: what is gone was deleted), a watch event upserts
// or erases one.
#include <curl/curl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "list_watch.h"
#include "zonewall/agent/kube.h"
#include "zonewall/agent/objects.h"

namespace zonewall::agent {
namespace {

using nlohmann::json;

struct Resource {
  Kind kind;
  const char* path;  ///< the collection, cluster-wide
  const char* name;  ///< for logs and metrics
  bool optional;     ///< a CRD that may not be installed (no Calico): 404 reads as empty
};

constexpr Resource kResources[] = {
    {Kind::kNamespace, "/api/v1/namespaces", "namespaces", false},
    {Kind::kPod, "/api/v1/pods", "pods", false},
    {Kind::kNode, "/api/v1/nodes", "nodes", false},
    {Kind::kNetworkPolicy, "/apis/networking.k8s.io/v1/networkpolicies", "networkpolicies", false},
    {Kind::kAdminPolicy, "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies",
     "adminnetworkpolicies", true},
    {Kind::kBaselineAdminPolicy,
     "/apis/policy.networking.k8s.io/v1alpha1/baselineadminnetworkpolicies",
     "baselineadminnetworkpolicies", true},
    {Kind::kClusterPolicy, "/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies",
     "clusternetworkpolicies", true},
    {Kind::kTier, "/apis/crd.projectcalico.org/v1/tiers", "tiers", true},
    {Kind::kCalicoPolicy, "/apis/crd.projectcalico.org/v1/networkpolicies",
     "calico-networkpolicies", true},
    {Kind::kGlobalPolicy, "/apis/crd.projectcalico.org/v1/globalnetworkpolicies",
     "globalnetworkpolicies", true},
    {Kind::kNetworkSet, "/apis/crd.projectcalico.org/v1/networksets", "networksets", true},
    {Kind::kGlobalNetworkSet, "/apis/crd.projectcalico.org/v1/globalnetworksets",
     "globalnetworksets", true},
};

class ResourceWatch {
 public:
  ResourceWatch(const Resource& r, const KubeConfig& config, ClusterState& state, Metrics& metrics,
                const std::atomic<bool>& stop)
      : r_(r),
        lw_(r.path, r.name, r.optional, config, metrics, stop),
        state_(state),
        metrics_(metrics) {
    state_.expectSource(r_.name);
  }

  void run() {
    lw_.run({
        .list_begin =
            [&] {
              listed_.clear();
              rejected_.clear();
            },
        .list_item = [&](const json& item) { convert(item); },
        .list_end =
            [&] {
              state_.replaceKind(r_.kind, std::move(listed_), rejected_);
              listed_ = {};
              state_.markSynced(r_.name);
            },
        .absent =
            [&] {
              state_.replaceKind(r_.kind, {});
              state_.markSynced(r_.name);
            },
        .event = [&](std::string_view type, const json& obj) { event(type, obj); },
    });
  }

 private:
  void convert(const json& item) {
    Converted c = fromApi(r_.kind, item);
    if (c.object) {
      listed_.emplace(c.key, std::move(*c.object));
    } else if (!c.errors.empty()) {
      reject(c);
      rejected_.insert(c.key);
    }
  }

  void reject(const Converted& c) {
    for (const Diagnostic& d : c.errors) {
      spdlog::error("rejected {} {}: {} (its last good version, if any, stays enforced)",
                    kindName(r_.kind), c.key, d.str());
    }
    metrics_.rejected.Add({{"kind", kindName(r_.kind)}}).Increment();
  }

  void event(std::string_view type, const json& obj) {
    Converted c = fromApi(r_.kind, obj);
    if (type == "DELETED") {
      state_.erase(r_.kind, c.key);
    } else if (c.object) {
      state_.upsert(r_.kind, c.key, std::move(*c.object));
    } else if (!c.errors.empty()) {
      reject(c);
    } else {
      state_.erase(r_.kind, c.key);  // a pod that finished
    }
  }

  const Resource& r_;
  ListWatch lw_;
  ClusterState& state_;
  Metrics& metrics_;
  std::map<std::string, Object> listed_;  ///< a list in progress
  std::set<std::string> rejected_;
};

class KubeSource final : public Source {
 public:
  KubeSource(KubeConfig config, ClusterState& state, Metrics& metrics) {
    for (const Resource& r : kResources) {
      watches_.push_back(std::make_unique<ResourceWatch>(r, config, state, metrics, stop_));
    }
  }
  ~KubeSource() override { stop(); }

  void start() override {
    for (auto& w : watches_) {
      threads_.emplace_back([raw = w.get()] { raw->run(); });
    }
  }
  void stop() override {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::unique_ptr<ResourceWatch>> watches_;
  std::vector<std::thread> threads_;
};

}  // namespace

std::unique_ptr<Source> kubeSource(KubeConfig config, ClusterState& state, Metrics& metrics) {
  static std::once_flag curl_init;
  std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  return std::make_unique<KubeSource>(std::move(config), state, metrics);
}

}  // namespace zonewall::agent
