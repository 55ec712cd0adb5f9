// List-then-watch of every resource the agent reads, one thread each.
//
//   list (paged, limit 500) ──▶ replaceKind (a relist diffs: what is gone was deleted)
//     └▶ watch from the list's resourceVersion ──▶ upsert / erase per event
//          stream ended (timeout, reset, server restart) ─▶ watch again from the last
//                                                            resourceVersion (events, bookmarks)
//          410 Expired (status or ERROR event)           ─▶ list again
//          401 ─▶ token re-read;  403 ─▶ RBAC, logged;  429/5xx ─▶ Retry-After or backoff
#include <curl/curl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

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
    {Kind::kNetworkPolicy, "/apis/networking.k8s.io/v1/networkpolicies", "networkpolicies", false},
    {Kind::kTier, "/apis/crd.projectcalico.org/v1/tiers", "tiers", true},
    {Kind::kCalicoPolicy, "/apis/crd.projectcalico.org/v1/networkpolicies",
     "calico-networkpolicies", true},
    {Kind::kGlobalPolicy, "/apis/crd.projectcalico.org/v1/globalnetworkpolicies",
     "globalnetworkpolicies", true},
    {Kind::kNetworkSet, "/apis/crd.projectcalico.org/v1/networksets", "networksets", true},
    {Kind::kGlobalNetworkSet, "/apis/crd.projectcalico.org/v1/globalnetworksets",
     "globalnetworksets", true},
};

// Pages of 500, as kubectl and client-go's reflector list.
constexpr int kPageSize = 500;
// The server ends a watch after this (a random 30-60 min without it); with bookmarks about
// once a minute a healthy stream is never silent for longer than `kIdle`.
constexpr int kWatchTimeoutSeconds = 290;
constexpr std::chrono::seconds kIdle{150};
// A missing CRD (Calico not installed) is looked for again this often.
constexpr std::chrono::seconds kCrdRetry{30};
constexpr std::chrono::milliseconds kBackoffMin{200};
constexpr std::chrono::milliseconds kBackoffMax{30'000};

class Backoff {
 public:
  // Full jitter in [d/2, d]: agents of every node restarting together spread out.
  std::chrono::milliseconds next() {
    auto d = delay_;
    delay_ = std::min(delay_ * 2, kBackoffMax);
    std::uniform_int_distribution<long> pick(d.count() / 2, d.count());
    return std::chrono::milliseconds(pick(rng_));
  }
  void reset() { delay_ = kBackoffMin; }

 private:
  std::chrono::milliseconds delay_ = kBackoffMin;
  std::mt19937_64 rng_{std::random_device{}()};
};

std::string resourceVersionOf(const json& obj) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return "";
  auto rv = m->find("resourceVersion");
  return rv != m->end() && rv->is_string() ? rv->get<std::string>() : "";
}

// The one-line reason of a Status body, or the body's start.
std::string statusMessage(const std::string& body) {
  auto j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) {
    return j["message"].get<std::string>();
  }
  return body.substr(0, 200);
}

std::string urlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

class ResourceWatch {
 public:
  ResourceWatch(const Resource& r, const KubeConfig& config, ClusterState& state, Metrics& metrics,
                const std::atomic<bool>& stop)
      : r_(r), client_(config), state_(state), metrics_(metrics), stop_(stop) {
    state_.expectSource(r_.name);
  }

  void run() {
    while (!stop_) {
      if (!list()) {
        continue;
      }
      watch();  // returns when a relist is needed, or on stop
    }
  }

 private:
  void pause(std::chrono::milliseconds d) {
    auto until = std::chrono::steady_clock::now() + d;
    while (!stop_ && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // What an HTTP error status means for the caller: pause as needed. Returns a log line.
  void onHttpError(long status, const std::string& body, std::chrono::seconds retry_after,
                   const char* what) {
    std::string msg = statusMessage(body);
    if (status == 401) {
      spdlog::warn("{} {}: 401 Unauthorized; re-reading the token", what, r_.name);
      client_.reloadToken();
    } else if (status == 403) {
      spdlog::error("{} {}: 403 Forbidden (RBAC): {}", what, r_.name, msg);
    } else {
      spdlog::warn("{} {}: HTTP {}: {}", what, r_.name, status, msg);
    }
    if (retry_after.count() > 0 && (status == 429 || status >= 500)) {
      pause(std::min<std::chrono::milliseconds>(retry_after, kBackoffMax));
    } else {
      pause(backoff_.next());
    }
  }

  void convert(const json& item, std::map<std::string, Object>& into,
               std::set<std::string>& rejected) {
    Converted c = fromApi(r_.kind, item);
    if (c.object) {
      into.emplace(c.key, std::move(*c.object));
    } else if (!c.errors.empty()) {
      reject(c);
      rejected.insert(c.key);
    }
  }

  void reject(const Converted& c) {
    for (const Diagnostic& d : c.errors) {
      spdlog::error("rejected {} {}: {} (its last good version, if any, stays enforced)",
                    kindName(r_.kind), c.key, d.str());
    }
    metrics_.rejected.Add({{"kind", kindName(r_.kind)}}).Increment();
  }

  // A full, paged list; true when it replaced the kind's objects.
  bool list() {
    metrics_.relists.Add({{"resource", r_.name}}).Increment();
    std::map<std::string, Object> objects;
    std::set<std::string> rejected;
    std::string cont;
    for (;;) {
      std::string path = fmt::format("{}?limit={}", r_.path, kPageSize);
      if (!cont.empty()) path += "&continue=" + urlEncode(cont);
      auto resp = client_.request(path, stop_);
      if (stop_) return false;
      if (!resp) {
        spdlog::warn("list {}: {}", r_.name, resp.error().str());
        pause(backoff_.next());
        return false;
      }
      if (resp->status == 404 && r_.optional) {
        // Not installed: nothing of this kind exists. Synced (empty), looked for again later.
        if (!absent_logged_) {
          spdlog::info("list {}: the API server does not serve it (CRD not installed)", r_.name);
          state_.replaceKind(r_.kind, {});
          absent_logged_ = true;
        }
        state_.markSynced(r_.name);
        pause(kCrdRetry);
        return false;
      }
      if (resp->status == 410) {  // the continue token expired: from scratch
        spdlog::info("list {}: continue token expired; listing again", r_.name);
        return false;
      }
      if (resp->status != 200) {
        onHttpError(resp->status, resp->body, resp->retry_after, "list");
        return false;
      }
      auto page = json::parse(resp->body, nullptr, false);
      if (!page.is_object() || !page.contains("items") || !page["items"].is_array()) {
        spdlog::error("list {}: the response is not a list", r_.name);
        pause(backoff_.next());
        return false;
      }
      for (const json& item : page["items"]) convert(item, objects, rejected);
      const json& meta = page.value("metadata", json::object());
      rv_ = meta.value("resourceVersion", "");
      cont = meta.value("continue", "");
      if (cont.empty()) break;
    }
    absent_logged_ = false;
    backoff_.reset();
    spdlog::info("list {}: {} objects at resourceVersion {}", r_.name, objects.size(), rv_);
    state_.replaceKind(r_.kind, std::move(objects), rejected);
    state_.markSynced(r_.name);
    return true;
  }

  // Handles one watch event; false when the watch must end (relist).
  bool event(std::string_view line, bool& relist) {
    auto ev = json::parse(line, nullptr, false);
    if (!ev.is_object() || !ev.contains("type") || !ev.contains("object")) {
      spdlog::warn("watch {}: not an event: {}", r_.name, std::string(line.substr(0, 200)));
      return true;
    }
    const std::string type = ev["type"].is_string() ? ev["type"].get<std::string>() : "";
    const json& obj = ev["object"];
    if (type == "ERROR") {
      // A Status inside a 200 stream; 410 means the resourceVersion was compacted away.
      if (obj.value("code", 0) == 410) {
        spdlog::info("watch {}: resourceVersion {} expired; listing again", r_.name, rv_);
        relist = true;
      } else {
        spdlog::warn("watch {}: error event: {}", r_.name, obj.dump().substr(0, 300));
      }
      return false;
    }
    if (std::string rv = resourceVersionOf(obj); !rv.empty()) {
      rv_ = rv;
    }
    if (type == "BOOKMARK") {
      return true;
    }
    Converted c = fromApi(r_.kind, obj);
    if (type == "DELETED") {
      state_.erase(r_.kind, c.key);
    } else if (type == "ADDED" || type == "MODIFIED") {
      if (c.object) {
        state_.upsert(r_.kind, c.key, std::move(*c.object));
      } else if (!c.errors.empty()) {
        reject(c);
      } else {
        state_.erase(r_.kind, c.key);  // a pod that finished
      }
    }
    return true;
  }

  void watch() {
    for (bool first = true; !stop_; first = false) {
      if (!first) {
        metrics_.watch_restarts.Add({{"resource", r_.name}}).Increment();
      }
      std::string path =
          fmt::format("{}?watch=1&resourceVersion={}&allowWatchBookmarks=true&timeoutSeconds={}",
                      r_.path, urlEncode(rv_), kWatchTimeoutSeconds);
      bool relist = false;
      std::string body;
      auto status = client_.stream(
          path, [&](std::string_view line) { return event(line, relist); }, stop_, kIdle, &body);
      if (stop_ || relist) {
        return;
      }
      if (!status) {
        spdlog::warn("watch {}: {}", r_.name, status.error().str());
        pause(backoff_.next());
        continue;
      }
      if (*status == 410) {
        spdlog::info("watch {}: resourceVersion {} expired; listing again", r_.name, rv_);
        return;
      }
      if (*status != 200) {
        onHttpError(*status, body, std::chrono::seconds(0), "watch");
        if (*status == 404) return;  // the CRD went away: list (reads as empty)
        continue;
      }
      backoff_.reset();  // a stream that ended normally: resume from rv_ at once
    }
  }

  const Resource& r_;
  KubeClient client_;
  ClusterState& state_;
  Metrics& metrics_;
  const std::atomic<bool>& stop_;
  std::string rv_;
  Backoff backoff_;
  bool absent_logged_ = false;
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
