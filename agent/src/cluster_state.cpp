#include "zonewall/agent/cluster_state.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <unordered_map>

#include "zonewall/policy/loader.h"

namespace zonewall::agent {

const char* kindName(Kind k) {
  switch (k) {
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kPod:
      return "Pod";
    case Kind::kNode:
      return "Node";
    case Kind::kNetworkPolicy:
      return "NetworkPolicy";
    case Kind::kAdminPolicy:
      return "AdminNetworkPolicy";
    case Kind::kBaselineAdminPolicy:
      return "BaselineAdminNetworkPolicy";
    case Kind::kClusterPolicy:
      return "ClusterNetworkPolicy";
    case Kind::kTier:
      return "Tier";
    case Kind::kCalicoPolicy:
      return "projectcalico.org/v3 NetworkPolicy";
    case Kind::kGlobalPolicy:
      return "GlobalNetworkPolicy";
    case Kind::kNetworkSet:
      return "NetworkSet";
    case Kind::kGlobalNetworkSet:
      return "GlobalNetworkSet";
  }
  return "?";
}

Kind kindOf(const policy::AdminPolicy& p) {
  switch (p.kind) {
    case policy::AdminKind::kAdmin:
      return Kind::kAdminPolicy;
    case policy::AdminKind::kBaseline:
      return Kind::kBaselineAdminPolicy;
    case policy::AdminKind::kCluster:
      return Kind::kClusterPolicy;
  }
  return Kind::kClusterPolicy;
}

void ClusterState::changed(std::unique_lock<std::mutex>& lock, const ObjectKey* key) {
  if (key != nullptr) {
    dirty_.insert(*key);
  }
  Clock::time_point now = Clock::now();
  if (version_ == taken_) {
    first_change_ = now;
  }
  last_change_ = now;
  ++version_;
  lock.unlock();
  cv_.notify_all();
}

void ClusterState::upsert(Kind k, const std::string& key, Object o) {
  std::unique_lock lock(mu_);
  ObjectKey ok{k, key};
  objects_.insert_or_assign(ok, std::move(o));
  changed(lock, &ok);
}

void ClusterState::erase(Kind k, const std::string& key) {
  std::unique_lock lock(mu_);
  ObjectKey ok{k, key};
  if (objects_.erase(ok) > 0) {
    changed(lock, &ok);
  }
}

void ClusterState::replaceKind(Kind k, std::map<std::string, Object> objects,
                               const std::set<std::string>& keep) {
  std::unique_lock lock(mu_);
  for (auto it = objects_.lower_bound({k, std::string()});
       it != objects_.end() && it->first.first == k;) {
    dirty_.insert(it->first);
    it = keep.contains(it->first.second) ? std::next(it) : objects_.erase(it);
  }
  for (auto& [key, o] : objects) {
    ObjectKey ok{k, key};
    dirty_.insert(ok);
    objects_.insert_or_assign(ok, std::move(o));
  }
  changed(lock);
}

void ClusterState::replaceAll(std::map<ObjectKey, Object> objects) {
  std::unique_lock lock(mu_);
  for (const auto& [key, o] : objects_) dirty_.insert(key);
  for (const auto& [key, o] : objects) dirty_.insert(key);
  objects_ = std::move(objects);
  changed(lock);
}

// A record's pod changes with it (the record gives a local pod its addresses).
void ClusterState::recordChanged(const cni::EndpointRecord& r) {
  dirty_.insert({Kind::kPod, r.pod_namespace + "/" + r.pod_name});
  endpoints_dirty_ = true;
}

void ClusterState::upsertEndpoint(const std::string& file, cni::EndpointRecord r) {
  std::unique_lock lock(mu_);
  auto [it, added] = endpoints_.try_emplace(file, r);
  if (!added) {
    if (it->second == r) {
      return;
    }
    recordChanged(it->second);
    it->second = std::move(r);
  }
  recordChanged(it->second);
  changed(lock);
}

void ClusterState::eraseEndpoint(const std::string& file) {
  std::unique_lock lock(mu_);
  auto it = endpoints_.find(file);
  if (it != endpoints_.end()) {
    recordChanged(it->second);
    endpoints_.erase(it);
    changed(lock);
  }
}

void ClusterState::replaceEndpoints(std::map<std::string, cni::EndpointRecord> records) {
  std::unique_lock lock(mu_);
  if (records == endpoints_) {
    return;
  }
  for (const auto& [file, r] : endpoints_) {
    auto it = records.find(file);
    if (it == records.end() || !(it->second == r)) recordChanged(r);
  }
  for (const auto& [file, r] : records) {
    auto it = endpoints_.find(file);
    if (it == endpoints_.end() || !(it->second == r)) recordChanged(r);
  }
  endpoints_ = std::move(records);
  changed(lock);
}

void ClusterState::expectSource(const std::string& name) {
  std::lock_guard lock(mu_);
  unsynced_.insert(name);
}

void ClusterState::markSynced(const std::string& name) {
  std::unique_lock lock(mu_);
  if (unsynced_.erase(name) > 0) {
    changed(lock);
  }
}

std::uint64_t ClusterState::version() const {
  std::lock_guard lock(mu_);
  return version_;
}

void ClusterState::wake() { cv_.notify_all(); }

std::optional<ClusterState::Snapshot> ClusterState::take(
    std::uint64_t seen, Clock::time_point until, std::chrono::microseconds quiet,
    std::chrono::microseconds max_delay, const std::atomic<bool>& stop,
    const std::function<bool(const Snapshot&)>& wants_full) {
  std::unique_lock lock(mu_);
  auto ready = [&] { return stop || (version_ != seen && unsynced_.empty()); };
  if (!cv_.wait_until(lock, until, ready) || stop) {
    return std::nullopt;
  }
  // Coalesce: wait for the burst to end (no change for `quiet`), but never past `max_delay`
  // after the change that started it.
  for (;;) {
    Clock::time_point end = std::min(last_change_ + quiet, first_change_ + max_delay);
    if (Clock::now() >= end || stop) {
      break;
    }
    cv_.wait_until(lock, end);
  }
  Snapshot s;
  Records records;
  if (endpoints_dirty_ || std::any_of(dirty_.begin(), dirty_.end(),
                                      [](const ObjectKey& k) { return k.first == Kind::kPod; })) {
    records = localRecords();
  }
  for (const ObjectKey& key : dirty_) {
    auto it = objects_.find(key);
    Change c{key, it == objects_.end() ? std::nullopt : std::optional(it->second), {}};
    if (key.first == Kind::kPod && c.now) {
      bool recorded = false;
      c.pod = compiled(*c.now, records, recorded);
    }
    s.changes.push_back(std::move(c));
  }
  dirty_.clear();
  endpoints_dirty_ = false;
  if (wants_full(s)) {
    // The full store replaces what the changes carried (at a relist, a copy of every object).
    for (Change& c : s.changes) {
      c.now.reset();
      c.pod.reset();
    }
    assemble(s);
  }
  s.version = version_;
  s.first_change = first_change_;
  taken_ = version_;
  return s;
}

namespace {

template <class T>
void append(std::vector<T>& into, std::vector<T>& from) {
  into.insert(into.end(), std::make_move_iterator(from.begin()),
              std::make_move_iterator(from.end()));
}

}  // namespace

ClusterState::Records ClusterState::localRecords() const {
  Records local;
  for (const auto& [file, r] : endpoints_) {
    local.emplace(r.pod_namespace + "/" + r.pod_name, &r);
  }
  return local;
}

// Local pods' addresses come from the CNI plugin's records: they are what the veth carries,
// known before the API server shows them.
std::optional<policy::Pod> ClusterState::compiled(const Object& o, const Records& records,
                                                  bool& recorded) const {
  recorded = false;
  if (o.store.pods.size() != 1) {
    return std::nullopt;
  }
  policy::Pod pod = o.store.pods[0];
  if (pod.node == node_) {
    if (auto it = records.find(pod.key()); it != records.end()) {
      pod.ips = it->second->ips;
      recorded = true;
    } else if (o.terminating) {
      return std::nullopt;  // its network is gone: CNI DEL ran
    }
  }
  return pod;
}

// Assembles in (kind, key) order, so the same objects always give the same store.
void ClusterState::assemble(Snapshot& s) const {
  s.full = true;
  policy::Store& st = s.store;
  Records local = localRecords();
  std::unordered_map<std::string, bool> seen_local;

  std::set<std::string> tiers(std::begin(policy::kBuiltinTiers), std::end(policy::kBuiltinTiers));
  for (const auto& [key, obj] : objects_) {
    if (key.first == Kind::kTier) {
      for (const auto& t : obj.store.tiers) tiers.insert(t.name);
    }
  }
  for (const auto& [key, const_obj] : objects_) {
    if (key.first == Kind::kPod) {
      bool recorded = false;
      if (auto pod = compiled(const_obj, local, recorded)) {
        if (recorded) seen_local[pod->key()] = true;
        st.pods.push_back(std::move(*pod));
      }
      continue;
    }
    policy::Store o = const_obj.store;  // a copy: the state keeps its own
    for (auto& p : o.calico_policies) {
      if (!tiers.contains(p.tier)) {
        s.dropped.push_back(fmt::format("{} {}: tier '{}' does not exist",
                                        p.global ? "GlobalNetworkPolicy" : "NetworkPolicy", p.key(),
                                        p.tier));
        continue;
      }
      st.calico_policies.push_back(std::move(p));
    }
    append(st.namespaces, o.namespaces);
    append(st.k8s_policies, o.k8s_policies);
    append(st.network_sets, o.network_sets);
    append(st.tiers, o.tiers);
    append(st.admin_policies, o.admin_policies);
    append(st.nodes, o.nodes);
  }
  for (const auto& [file, r] : endpoints_) {
    std::string key = r.pod_namespace + "/" + r.pod_name;
    if (!seen_local.contains(key)) {
      s.unknown_pods.push_back(key);
    }
  }

  // An address belongs to one pod. Two can claim one for a moment (an address reused while
  // the API still lists its old pod): a local pod's record wins, then the first in order.
  std::map<Addr, const policy::Pod*> owner;
  auto claim = [&](policy::Pod& pod) {
    std::erase_if(pod.ips, [&](Addr a) {
      auto [it, fresh] = owner.try_emplace(a, &pod);
      if (!fresh) {
        s.address_conflict = true;
        s.dropped.push_back(fmt::format("Pod {}: address {} is also Pod {}'s", pod.key(),
                                        formatAddr(a), it->second->key()));
      }
      return !fresh;
    });
  };
  for (auto& pod : st.pods) {
    if (seen_local.contains(pod.key()) && pod.node == node_) {
      claim(pod);
    }
  }
  for (auto& pod : st.pods) {
    if (!(seen_local.contains(pod.key()) && pod.node == node_)) claim(pod);
  }
}

}  // namespace zonewall::agent
