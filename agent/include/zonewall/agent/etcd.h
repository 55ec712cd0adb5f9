// etcd v3 through its JSON gateway (POST /v3/...), the calls a node agent needs to hold a
// subnet lease as Flannel does: leases (grant, keepalive, time-to-live, revoke), a create-if-
// absent transaction, put/range/delete, and a watch stream. Keys and values are base64 on the
// wire, int64s come back as strings, and fields at their default are left out
// (../shared/notes/etcd-gateway.md); this client hides all three.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "zonewall/agent/kube.h"
#include "zonewall/base/error.h"

namespace zonewall::agent {

/// Where etcd is: "http://127.0.0.1:2379", or https with a CA and a client certificate.
struct EtcdEndpoint {
  std::string url;
  std::string ca_file, cert_file, key_file;
};

class EtcdClient {
 public:
  explicit EtcdClient(const EtcdEndpoint& endpoint);

  struct KeyValue {
    std::string key;
    std::string value;
    std::int64_t lease = 0;
    std::int64_t mod_revision = 0;
  };
  struct Lease {
    std::int64_t id = 0;
    std::int64_t ttl = 0;  ///< seconds; 0 = expired or unknown
  };

  std::expected<Lease, Error> grant(std::int64_t ttl_seconds);
  /// The lease's remaining TTL after one keepalive: 0 when it had expired.
  std::expected<std::int64_t, Error> keepAlive(std::int64_t id);
  /// The remaining TTL: 0 when it has expired (or never existed).
  std::expected<std::int64_t, Error> timeToLive(std::int64_t id);
  std::expected<void, Error> revoke(std::int64_t id);

  /// Puts `value` at `key` only if the key does not exist (a transaction on its create
  /// revision): true if this call created it; otherwise `current` gets what is there.
  std::expected<bool, Error> createIfAbsent(const std::string& key, const std::string& value,
                                            std::int64_t lease, KeyValue* current = nullptr);
  std::expected<void, Error> put(const std::string& key, const std::string& value,
                                 std::int64_t lease = 0);
  std::expected<std::optional<KeyValue>, Error> get(const std::string& key);
  /// Every key under `prefix`, and the store's revision when read.
  struct Range {
    std::vector<KeyValue> kvs;
    std::int64_t revision = 0;
  };
  std::expected<Range, Error> range(const std::string& prefix);
  std::expected<void, Error> del(const std::string& key);

  struct WatchEvent {
    bool deleted = false;
    KeyValue kv;  ///< for a delete: the key (and the value before, when etcd sent it)
    std::int64_t revision = 0;
  };
  /// Watches `prefix` from `start_revision` until `stop`, the stream ends or `on_event` returns
  /// false. Returns the revision to resume from; kCompacted when that revision is gone (re-list).
  static constexpr std::int64_t kCompacted = -1;
  std::expected<std::int64_t, Error> watch(const std::string& prefix, std::int64_t start_revision,
                                           const std::function<bool(const WatchEvent&)>& on_event,
                                           const std::atomic<bool>& stop,
                                           std::chrono::seconds idle = std::chrono::seconds(60));

 private:
  std::expected<std::string, Error> call(const std::string& path, const std::string& body);
  KubeClient http_;
  std::atomic<bool> never_{false};
};

/// The key just after every key that starts with `prefix` (etcd's range_end for a prefix).
std::string prefixEnd(std::string prefix);

}  // namespace zonewall::agent
