#include "zonewall/agent/metrics.h"

#include <civetweb.h>
#include <prometheus/text_serializer.h>

#include <cstring>
#include <sstream>

namespace zonewall::agent {

namespace {

prometheus::Counter& counter(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
}

prometheus::Family<prometheus::Counter>& counters(prometheus::Registry& r, const char* name,
                                                  const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

// Seconds, from a fraction of a millisecond (an element change) to past Calico's 1-2 s.
const prometheus::Histogram::BucketBoundaries kLatencyBuckets{
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5};

}  // namespace

Metrics::Metrics() : Metrics(std::make_shared<prometheus::Registry>()) {}

Metrics::Metrics(std::shared_ptr<prometheus::Registry> reg)
    : event_to_kernel(prometheus::BuildHistogram()
                          .Name("zonewall_event_to_kernel_seconds")
                          .Help("From the first cluster change of a batch to its commit in the "
                                "kernel")
                          .Register(*reg)
                          .Add({}, kLatencyBuckets)),
      compile_seconds(prometheus::BuildHistogram()
                          .Name("zonewall_compile_seconds")
                          .Help("Compiling the node's table from the cluster state")
                          .Register(*reg)
                          .Add({}, kLatencyBuckets)),
      commits(counter(*reg, "zonewall_commits_total", "Transactions committed to nftables")),
      commit_failures(counter(*reg, "zonewall_commit_failures_total",
                              "Commits the kernel refused (retried after a read of the kernel)")),
      compile_failures(counter(*reg, "zonewall_compile_failures_total",
                               "Cluster states that did not compile (the kernel kept the last "
                               "table)")),
      set_entries(prometheus::BuildGauge()
                      .Name("zonewall_table_entries")
                      .Help("Elements of each nftables set or map of the node's table")
                      .Register(*reg)),
      endpoints(prometheus::BuildGauge()
                    .Name("zonewall_local_endpoints")
                    .Help("Pods of this node in the committed table")
                    .Register(*reg)
                    .Add({})),
      reconciles(counter(*reg, "zonewall_reconciles_total", "Reads of the kernel's table")),
      drift_found(counter(*reg, "zonewall_reconcile_drift_total",
                          "Differences between the kernel and the committed table found by a "
                          "reconcile")),
      drift_repaired(counter(*reg, "zonewall_reconcile_repairs_total",
                             "Reconciles that found drift and repaired it")),
      watch_restarts(counters(*reg, "zonewall_watch_restarts_total",
                              "Watches started again (stream ended, connection lost)")),
      relists(counters(*reg, "zonewall_relists_total",
                       "Full lists of a resource (start, expired resourceVersion)")),
      rejected(counters(*reg, "zonewall_objects_rejected_total",
                        "Cluster objects left out because they do not read or compile")),
      policy_waits(counter(*reg, "zonewall_policy_waits_total",
                           "CNI ADDs that waited for their pod's rules to be committed")),
      policy_wait_timeouts(counter(*reg, "zonewall_policy_wait_timeouts_total",
                                   "CNI ADDs whose wait ended by their timeout")),
      logged_packets(counter(*reg, "zonewall_logged_packets_total",
                             "Packets Calico's Log action sent to nflog, read by the agent")),
      lease_renewals(
          counter(*reg, "zonewall_lease_renewals_total", "Renewals of this node's subnet lease")),
      lease_renew_failures(counter(*reg, "zonewall_lease_renew_failures_total",
                                   "Renewals that failed (the lease is kept and retried)")),
      lease_lost(counter(*reg, "zonewall_lease_lost_total",
                         "Times this node's subnet lease expired and another node took it")),
      overlay_peers(prometheus::BuildGauge()
                        .Name("zonewall_overlay_peers")
                        .Help("Remote nodes the overlay has a route to")
                        .Register(*reg)
                        .Add({})),
      overlay_changes(counter(*reg, "zonewall_overlay_changes_total",
                              "Neighbours, FDB entries and routes the overlay added or removed")),
      registry_(std::move(reg)) {}

std::string Metrics::render() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return std::move(out).str();
}

std::expected<std::unique_ptr<StatusServer>, Error> StatusServer::start(
    const std::string& listen, const Metrics& metrics, const std::atomic<bool>& ready) {
  std::unique_ptr<StatusServer> s(new StatusServer(metrics, ready));
  // Two threads: a scrape and a probe at the same time; nothing here is slow.
  const char* options[] = {"listening_ports", listen.c_str(), "num_threads", "2", nullptr};
  mg_callbacks callbacks{};
  s->ctx_ = mg_start(&callbacks, nullptr, options);
  if (s->ctx_ == nullptr) {
    return fail(Error::Code::kIo, "metrics: cannot listen on '" + listen + "'");
  }
  for (const char* uri : {"/metrics", "/healthz", "/readyz"}) {
    mg_set_request_handler(s->ctx_, uri, &StatusServer::handle, s.get());
  }
  return s;
}

StatusServer::~StatusServer() {
  if (ctx_ != nullptr) {
    mg_stop(ctx_);
  }
}

int StatusServer::handle(mg_connection* conn, void* self_ptr) {
  const auto* self = static_cast<const StatusServer*>(self_ptr);
  const mg_request_info* req = mg_get_request_info(conn);
  std::string_view uri = req->local_uri != nullptr ? req->local_uri : "";
  int status = 200;
  std::string body;
  const char* type = "text/plain; charset=utf-8";
  if (uri == "/metrics") {
    body = self->metrics_.render();
    type = "text/plain; version=0.0.4; charset=utf-8";
  } else if (uri == "/healthz") {
    body = "ok\n";
  } else if (self->ready_) {
    body = "ok\n";
  } else {
    status = 503;
    body = "not ready: the cluster is not listed yet or nothing has been committed\n";
  }
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n",
            status, status == 200 ? "OK" : "Service Unavailable", type, body.size());
  mg_write(conn, body.data(), body.size());
  return status;
}

}  // namespace zonewall::agent
