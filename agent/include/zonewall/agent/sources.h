// Where the agent learns the cluster: each source runs on its own thread and reports into
// the ClusterState; the loop never waits on one.
#pragma once

#include <expected>
#include <memory>
#include <string>

#include "zonewall/agent/cluster_state.h"
#include "zonewall/agent/metrics.h"
#include "zonewall/base/error.h"

namespace zonewall::agent {

class Source {
 public:
  virtual ~Source() = default;
  /// Starts the source's thread; the first full read is reported by markSynced(name()).
  virtual void start() = 0;
  /// Stops and joins the thread (also done by the destructor).
  virtual void stop() = 0;
};

/// The YAML files under `dir` (*.yaml, *.yml, recursively; what the CLI reads), watched with
/// inotify: an edit is an event like any other. A file with errors changes nothing: its last
/// good content stays enforced, and each error is logged with its file:line:col.
std::expected<std::unique_ptr<Source>, Error> directorySource(const std::string& dir,
                                                              ClusterState& state,
                                                              Metrics& metrics);

/// The CNI plugin's endpoint records under `dir` (cni/endpoint.h), watched with inotify: the
/// local pods' host veths and addresses, known before the API server shows them.
std::expected<std::unique_ptr<Source>, Error> endpointSource(const std::string& dir,
                                                             ClusterState& state);

}  // namespace zonewall::agent
