// The cluster as this node's agent knows it: every object its source reported (by kind and
// name), and the CNI plugin's endpoint records, assembled on demand into the one
// policy::Store the compiler reads.
//
//   sources (threads) ──upsert/erase/replace──▶ ClusterState ──take()──▶ the loop (one thread)
//
// Sources never wait for the loop: a change bumps a version and wakes it; the loop takes
// everything that changed since it last looked in one go (a burst of events is one compile).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "zonewall/cni/endpoint.h"
#include "zonewall/policy/model.h"

namespace zonewall::agent {

/// The kinds of object a source reports, in the order they are assembled.
enum class Kind : std::uint8_t {
  kNamespace,
  kPod,
  kNode,                 ///< v1: labels and addresses, for cluster-admin `nodes` peers
  kNetworkPolicy,        ///< networking.k8s.io/v1
  kAdminPolicy,          ///< policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy
  kBaselineAdminPolicy,  ///< v1alpha1 BaselineAdminNetworkPolicy
  kClusterPolicy,        ///< v1alpha2 ClusterNetworkPolicy
  kTier,                 ///< projectcalico.org/v3 from here on
  kCalicoPolicy,         ///< NetworkPolicy
  kGlobalPolicy,         ///< GlobalNetworkPolicy
  kNetworkSet,
  kGlobalNetworkSet,
};
const char* kindName(Kind k);
/// The kind a cluster-admin policy is listed as.
Kind kindOf(const policy::AdminPolicy& p);

/// One object, as the policy loader read it: `store` holds exactly that object.
struct Object {
  policy::Store store;
  /// A pod being deleted (deletionTimestamp): it keeps its addresses until the CNI plugin
  /// removes its network (its endpoint record goes), as Calico keeps a terminating pod's.
  bool terminating = false;
};

using ObjectKey = std::pair<Kind, std::string>;  ///< kind and "ns/name" (or "name")
using Clock = std::chrono::steady_clock;

class ClusterState {
 public:
  explicit ClusterState(std::string node) : node_(std::move(node)) {}

  // ---- sources (any thread) ----
  void upsert(Kind k, const std::string& key, Object o);
  void erase(Kind k, const std::string& key);
  /// Every object of kind `k` (a relist): those not in `objects` were deleted meanwhile,
  /// except the keys in `keep` (listed, but rejected: their last good version stays).
  void replaceKind(Kind k, std::map<std::string, Object> objects,
                   const std::set<std::string>& keep = {});
  /// Every object of every kind (a directory source's rescan).
  void replaceAll(std::map<ObjectKey, Object> objects);
  /// Endpoint records by file name.
  void upsertEndpoint(const std::string& file, cni::EndpointRecord r);
  void eraseEndpoint(const std::string& file);
  void replaceEndpoints(std::map<std::string, cni::EndpointRecord> records);
  /// A source that must have listed everything before the first commit (a partial view
  /// would judge packets by a partial policy set).
  void expectSource(const std::string& name);
  void markSynced(const std::string& name);

  // ---- the loop ----
  /// An object that changed since the last snapshot: what it is now (nothing: deleted).
  struct Change {
    ObjectKey key;
    std::optional<Object> now;
    /// For a Pod (its object or its endpoint record changed): the pod as the node compiles
    /// it, by the full store's rules — a local pod's addresses are its endpoint record's, a
    /// terminating local pod without one is gone (nothing). Claims of one address by two
    /// pods are not resolved here.
    std::optional<policy::Pod> pod;
  };
  /// What changed since the last snapshot and, when asked for (`full`), the store assembled
  /// from everything with what the assembly had to leave out (then the changes keep only
  /// their keys).
  struct Snapshot {
    std::vector<Change> changes;  ///< objects, in key order, each once (its latest state)
    bool full = false;            ///< the fields below are filled
    policy::Store store;
    std::vector<std::string> dropped;  ///< "why" lines: an object left out, and why
    /// Local endpoint records whose pod the cluster source does not know yet (not
    /// programmed: their traffic stays dropped until it does).
    std::vector<std::string> unknown_pods;
    /// Some address was claimed by two pods (one left out of it: `dropped` says which).
    bool address_conflict = false;
    std::uint64_t version = 0;
    Clock::time_point first_change;  ///< the oldest change this snapshot includes
  };

  /// Waits until the state changed since version `seen` (or `stop` is set, or `until`),
  /// then until it has been quiet for `quiet` (at most `max_delay` after the first change):
  /// a burst becomes one snapshot. `wants_full` sees the changes and says whether the whole
  /// store must be assembled too. nullopt when nothing changed, or not every expected source
  /// has synced.
  std::optional<Snapshot> take(std::uint64_t seen, Clock::time_point until,
                               std::chrono::microseconds quiet, std::chrono::microseconds max_delay,
                               const std::atomic<bool>& stop,
                               const std::function<bool(const Snapshot&)>& wants_full);
  /// Wakes a take() (shutdown).
  void wake();
  std::uint64_t version() const;

 private:
  using Records = std::unordered_map<std::string, const cni::EndpointRecord*>;  ///< by pod
  void changed(std::unique_lock<std::mutex>& lock, const ObjectKey* key = nullptr);
  void recordChanged(const cni::EndpointRecord& r);
  Records localRecords() const;
  /// A pod object as the node compiles it (Change::pod); `recorded` set when its addresses
  /// are its record's.
  std::optional<policy::Pod> compiled(const Object& o, const Records& records,
                                      bool& recorded) const;
  void assemble(Snapshot& s) const;

  const std::string node_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<ObjectKey, Object> objects_;
  std::map<std::string, cni::EndpointRecord> endpoints_;
  std::set<std::string> unsynced_;
  std::set<ObjectKey> dirty_;  ///< objects changed since the last snapshot
  bool endpoints_dirty_ = false;
  std::uint64_t version_ = 0;
  std::uint64_t taken_ = 0;  ///< the version of the last snapshot
  Clock::time_point first_change_{};
  Clock::time_point last_change_{};
};

}  // namespace zonewall::agent
