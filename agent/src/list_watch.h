// List-then-watch of one Kubernetes collection, the protocol of client-go's reflector:
//
//   list (paged, limit 500) ──▶ list_begin, list_item per object, list_end
//     └▶ watch from the list's resourceVersion ──▶ event per ADDED / MODIFIED / DELETED
//          stream ended (timeout, reset, server restart) ─▶ watch again from the last
//                                                            resourceVersion (events, bookmarks)
//          410 Expired (status or ERROR event)           ─▶ list again
//          401 ─▶ token re-read;  403 ─▶ RBAC, logged;  429/5xx ─▶ Retry-After or backoff
//
// What the objects mean is the caller's (kube_source.cpp: the policy inputs; kube_subnets.cpp:
// the nodes' leases).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>

#include "zonewall/agent/decode.h"
#include "zonewall/agent/kube.h"
#include "zonewall/agent/metrics.h"

namespace zonewall::agent {

/// Exponential backoff with full jitter in [d/2, d] (200 ms .. 30 s): agents of every node
/// restarting together spread out.
class Backoff {
 public:
  std::chrono::milliseconds next();
  void reset();

 private:
  std::chrono::milliseconds delay_{200};
  std::mt19937_64 rng_{std::random_device{}()};
};

std::string urlEncode(const std::string& s);

struct ListWatchHandlers {
  std::function<void()> list_begin;
  std::function<void(const nlohmann::json& item)> list_item;
  std::function<void()> list_end;  ///< the whole list arrived: it replaces what was known
  /// An optional collection the server does not serve (a CRD not installed): reads as empty.
  std::function<void()> absent;
  /// "ADDED", "MODIFIED" or "DELETED" and the object.
  std::function<void(std::string_view type, const nlohmann::json& object)> event;
};

class ListWatch {
 public:
  /// `path`: the collection ("/api/v1/nodes"); `name`: for logs and metrics; `optional`: a
  /// 404 means "none of these" (looked for again every 30 s).
  ListWatch(std::string path, std::string name, bool optional, const KubeConfig& config,
            Metrics& metrics, const std::atomic<bool>& stop);
  /// Lists and watches until `stop`.
  void run(const ListWatchHandlers& handlers);
  KubeClient& client() { return client_; }
  /// Sleeps `d`, or less when stopped.
  void pause(std::chrono::milliseconds d);

 private:
  bool list(const ListWatchHandlers& h);
  void watch(const ListWatchHandlers& h);
  bool event(std::string_view line, bool& relist, const ListWatchHandlers& h);
  void onHttpError(long status, const std::string& body, std::chrono::seconds retry_after,
                   const char* what);

  std::string path_, name_;
  bool optional_;
  KubeClient client_;
  Metrics& metrics_;
  const std::atomic<bool>& stop_;
  std::string rv_;
  Backoff backoff_;
  bool absent_logged_ = false;
};

}  // namespace zonewall::agent
