// The Kubernetes API as the agent speaks it: HTTPS + JSON through libcurl (no client-go), the
// list-then-watch protocol of ../shared/notes/kube-apiserver.md.
#pragma once

#include <atomic>
#include <chrono>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "zonewall/agent/cluster_state.h"
#include "zonewall/agent/metrics.h"
#include "zonewall/agent/sources.h"
#include "zonewall/base/error.h"

namespace zonewall::agent {

/// How to reach and authenticate to the API server.
struct KubeConfig {
  std::string server;  ///< "https://10.96.0.1:443"
  std::string ca_file;
  std::string ca_pem;  ///< certificate-authority-data, decoded
  bool insecure = false;
  std::string token;
  /// Re-read every minute and after a 401: projected service account tokens rotate.
  std::string token_file;
  std::string cert_file, key_file;  ///< client certificate (kubeconfig)
  std::string cert_pem, key_pem;
};

/// In a pod: KUBERNETES_SERVICE_HOST/_PORT and the service account's token and CA
/// (`sa_dir`, normally /var/run/secrets/kubernetes.io/serviceaccount).
std::expected<KubeConfig, Error> inClusterConfig(
    const std::string& sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount");
/// A kubeconfig file: its current context, or `context`.
std::expected<KubeConfig, Error> loadKubeconfig(const std::string& path,
                                                const std::string& context = "");

/// One connection's worth of API calls (one per thread: libcurl handles are not shared). It
/// is the agent's HTTP(S)+JSON client: etcd's v3 JSON gateway (etcd.h) goes through it too.
class KubeClient {
 public:
  explicit KubeClient(KubeConfig config);
  ~KubeClient();
  KubeClient(const KubeClient&) = delete;
  KubeClient& operator=(const KubeClient&) = delete;

  struct Response {
    long status = 0;
    std::string body;
    std::chrono::seconds retry_after{0};  ///< from a 429 or 503
  };
  /// A request (GET unless `method`); a transport failure is an Error, an HTTP error status
  /// is a Response. `stop` aborts it within about a second.
  std::expected<Response, Error> request(const std::string& path, const std::atomic<bool>& stop,
                                         const std::string& method = "GET",
                                         const std::string& body = "",
                                         const std::string& content_type = "application/json");
  /// A watch: `on_line` gets each line of the stream as it arrives (return false to end it).
  /// Returns the HTTP status when the stream ends; the body of an error status in `error_body`.
  /// The stream is dropped when no byte arrived for `idle` (a dead connection).
  /// A POST `body` instead of a GET when given (etcd's watch).
  std::expected<long, Error> stream(const std::string& path,
                                    const std::function<bool(std::string_view)>& on_line,
                                    const std::atomic<bool>& stop, std::chrono::seconds idle,
                                    std::string* error_body = nullptr,
                                    const std::string& post_body = "");
  /// Reads the token file again (after a 401).
  void reloadToken();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The cluster from the API server: Namespaces, Pods (every node: remote pods' labels and
/// addresses decide classes), NetworkPolicies, and Calico's kinds as its Kubernetes datastore
/// stores them (crd.projectcalico.org/v1; a cluster without Calico's CRDs has none of them).
/// Each resource is listed (paged), then watched from the list's resourceVersion; a watch
/// that ends is resumed from the last resourceVersion seen (events and bookmarks), an expired
/// one (410) relisted and diffed. Errors back off with jitter.
std::unique_ptr<Source> kubeSource(KubeConfig config, ClusterState& state, Metrics& metrics);

}  // namespace zonewall::agent
