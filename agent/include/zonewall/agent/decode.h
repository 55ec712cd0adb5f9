// What the agent reads off the network, decoded without I/O: the lines of a watch stream, a
// Kubernetes list page and watch event, and etcd's JSON gateway replies. The clients
// (kube_client.cpp, list_watch.cpp, etcd_client.cpp) call these; the fuzz targets (fuzz/) feed
// them garbage. Nothing here throws: a reply that is not what the API promises is an Error or
// is skipped, never a crash.
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "zonewall/agent/etcd.h"
#include "zonewall/base/error.h"

namespace zonewall::agent {

/// Splits a stream into lines as it arrives (a chunk may end anywhere, even inside a line).
/// A line may not outgrow kMaxLine: an API object is at most ~1.5 MiB (etcd's request limit),
/// so a longer line is not an event, and buffering it would take unbounded memory.
class LineSplitter {
 public:
  static constexpr size_t kMaxLine = 64u << 20;
  enum class Status : std::uint8_t { kMore, kStopped, kTooLong };
  /// Hands each complete line (without its '\n') to `on_line`; kStopped as soon as it returns
  /// false, kTooLong when the unfinished line passes kMaxLine.
  Status feed(std::string_view chunk, const std::function<bool(std::string_view)>& on_line);
  /// What arrived after the last complete line.
  const std::string& rest() const { return buffer_; }

 private:
  std::string buffer_;
};

/// One page of a Kubernetes list.
struct KubeListPage {
  nlohmann::json items = nlohmann::json::array();
  std::string resource_version;
  std::string continue_token;
};
std::expected<KubeListPage, Error> parseKubeListPage(std::string_view body);

/// One event of a Kubernetes watch stream (one line of it).
struct KubeWatchEvent {
  std::string type;  ///< ADDED, MODIFIED, DELETED, BOOKMARK, ERROR (or whatever was sent)
  nlohmann::json object;
  std::string resource_version;  ///< the object's metadata.resourceVersion, when a string
  long error_code = 0;           ///< ERROR: the Status's code (410: the version expired)
};
/// Nothing for a line that is not an event (an object with a type and an object).
std::optional<KubeWatchEvent> parseKubeWatchEvent(std::string_view line);

/// The one-line reason of a Kubernetes Status body, or the body's start.
std::string statusMessage(std::string_view body);

// etcd's v3 JSON gateway (../shared/notes/etcd-gateway.md). int64s arrive as strings and a
// field at its default is left out; a value that is neither reads as its default.
namespace etcd_reply {

using KeyValue = EtcdClient::KeyValue;

std::expected<EtcdClient::Lease, Error> grant(std::string_view body);
/// The TTL left after a keepalive: 0 when the lease had expired.
std::expected<std::int64_t, Error> keepAlive(std::string_view body);
std::expected<std::int64_t, Error> timeToLive(std::string_view body);
/// Whether a create-if-absent transaction succeeded; if not, `current` gets what is there.
std::expected<bool, Error> txn(std::string_view body, KeyValue* current);
std::expected<EtcdClient::Range, Error> range(std::string_view body);

/// One message of a watch stream.
struct WatchMessage {
  std::vector<EtcdClient::WatchEvent> events;
  bool canceled = false;
  std::int64_t compact_revision = 0;  ///< canceled because its revision was compacted away
  /// A progress notification: the watch has seen everything up to this revision.
  std::int64_t progress_revision = 0;
};
/// Nothing for a line that is not a watch response.
std::optional<WatchMessage> watchMessage(std::string_view line);

}  // namespace etcd_reply
}  // namespace zonewall::agent
