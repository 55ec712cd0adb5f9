// What the agent exposes to whoever operates it: Prometheus metrics (prometheus-cpp's
// registry, text format) and liveness/readiness, on one HTTP port (civetweb).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <expected>
#include <memory>
#include <string>

#include "zonewall/base/error.h"

struct mg_context;
struct mg_connection;

namespace zonewall::agent {

class Metrics {
 public:
  Metrics();

  /// The registry in Prometheus' text exposition format.
  std::string render() const;

  // The loop.
  prometheus::Histogram& event_to_kernel;  ///< first change of a batch → its commit done
  prometheus::Histogram& compile_seconds;
  prometheus::Counter& commits;
  prometheus::Counter& commit_failures;
  prometheus::Counter& compile_failures;
  prometheus::Family<prometheus::Gauge>& set_entries;  ///< label: set
  prometheus::Gauge& endpoints;                        ///< local endpoints programmed
  prometheus::Counter& reconciles;
  prometheus::Counter& drift_found;     ///< differences a reconcile found
  prometheus::Counter& drift_repaired;  ///< reconciles that repaired drift
  // The sources.
  prometheus::Family<prometheus::Counter>& watch_restarts;  ///< label: resource
  prometheus::Family<prometheus::Counter>& relists;         ///< label: resource
  prometheus::Family<prometheus::Counter>& rejected;        ///< label: kind
  prometheus::Counter& policy_waits;          ///< CNI ADDs that waited for their pod's commit
  prometheus::Counter& policy_wait_timeouts;  ///< ... and were answered by the timeout
  prometheus::Counter& logged_packets;        ///< packets Calico's Log action sent to nflog
  prometheus::Counter& lease_renewals;        ///< this node's subnet lease renewed
  prometheus::Counter& lease_renew_failures;  ///< ... a renewal failed (kept, retried)
  prometheus::Counter& lease_lost;            ///< ... expired and taken by another node
  prometheus::Gauge& overlay_peers;           ///< remote nodes the overlay routes to
  prometheus::Counter& overlay_changes;       ///< neighbours, FDB entries, routes written

 private:
  explicit Metrics(std::shared_ptr<prometheus::Registry> registry);
  std::shared_ptr<prometheus::Registry> registry_;
};

/// GET /metrics, /healthz (the process answers) and /readyz (every source listed and the
/// first commit done: 503 until then).
class StatusServer {
 public:
  /// Listens on `listen` ("9402", "127.0.0.1:9402"; civetweb's listening_ports syntax).
  static std::expected<std::unique_ptr<StatusServer>, Error> start(const std::string& listen,
                                                                   const Metrics& metrics,
                                                                   const std::atomic<bool>& ready);
  ~StatusServer();
  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

 private:
  StatusServer(const Metrics& metrics, const std::atomic<bool>& ready)
      : metrics_(metrics), ready_(ready) {}
  static int handle(mg_connection* conn, void* self);

  const Metrics& metrics_;
  const std::atomic<bool>& ready_;
  mg_context* ctx_ = nullptr;
};

}  // namespace zonewall::agent
