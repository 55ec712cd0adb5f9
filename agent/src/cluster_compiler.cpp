#include "zonewall/agent/cluster_compiler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <unordered_map>

#include "zonewall/compiler/compile.h"
#include "zonewall/compiler/inventory.h"
#include "zonewall/compiler/program.h"
#include "zonewall/policy/loader.h"

namespace zonewall::agent {

namespace {

// Pod changes in one snapshot applied one by one (each a few inventory updates and, for a
// local pod, one pass over the policies); past this many a fresh compile is the cheaper way.
constexpr size_t kMaxPodChanges = 4096;

bool isPolicy(Kind k) {
  return k == Kind::kNetworkPolicy || k == Kind::kCalicoPolicy || k == Kind::kGlobalPolicy ||
         k == Kind::kAdminPolicy || k == Kind::kBaselineAdminPolicy || k == Kind::kClusterPolicy;
}

}  // namespace

// What the last full compile was made of, kept so that the next change costs only itself.
// The inventory and the compiler hold references into `store`: a Built never moves.
struct ClusterCompiler::Built {
  policy::Store store;
  /// "ns/name" → store.pods. A deleted pod's entry stays (no addresses, its namespace kept:
  /// the compiler looks at it, NodeCompiler::podsChanged) until a later snapshot reuses it.
  std::unordered_map<std::string, std::uint32_t> pod_index;
  std::vector<std::uint32_t> free_pods;  ///< store.pods entries to reuse
  bool address_conflict = false;         ///< of the full compile
  std::set<std::string> tiers;
  std::map<ObjectKey, std::string> builder_keys;  ///< policy object → ProgramBuilder key
  std::vector<std::string> dropped;               ///< of the full compile
  std::map<ObjectKey, std::string> dropped_policies;
  std::unique_ptr<compiler::Inventory> inventory;
  std::unique_ptr<compiler::ProgramBuilder> builder;
  std::unique_ptr<compiler::NodeCompiler> compiler;

  /// The pods of namespace `ns` that have addresses (store.pods indices).
  std::vector<std::uint32_t> podsOf(const std::string& ns) const {
    std::vector<std::uint32_t> out;
    for (const auto& [key, i] : pod_index) {
      if (store.pods[i].ns == ns && !store.pods[i].ips.empty()) out.push_back(i);
    }
    return out;
  }
  const std::vector<Addr>* addrsOf(const std::string& key) const {
    auto it = pod_index.find(key);
    return it == pod_index.end() ? nullptr : &store.pods[it->second].ips;
  }
};

ClusterCompiler::ClusterCompiler(std::string node) : node_(std::move(node)) {}
ClusterCompiler::~ClusterCompiler() = default;

const char* ClusterCompiler::pathName(Path p) {
  switch (p) {
    case Path::kFull:
      return "full";
    case Path::kPolicies:
      return "policies";
    case Path::kPods:
      return "pods";
    case Path::kPodsAndPolicies:
      return "pods+policies";
    case Path::kUnchanged:
      return "unchanged";
  }
  return "?";
}

const compiler::NodeTable& ClusterCompiler::table() const {
  assert(built_);
  return built_->compiler->table();
}

// A pod without an address before and after the change — created and not yet given one (the
// API shows a pod before its node runs it), deleted before it had one, or an endpoint record
// of a pod the API does not show yet: no set, class or endpoint of any table depends on it.
bool ClusterCompiler::inert(const ClusterState::Change& c) const {
  const std::string& key = c.key.second;
  if (c.key.first == Kind::kNode) {
    // A heartbeat: labels and addresses as they were (only they reach the compiler).
    auto was = std::find_if(built_->store.nodes.begin(), built_->store.nodes.end(),
                            [&](const policy::Node& n) { return n.name == key; });
    const policy::Node* now =
        c.now && c.now->store.nodes.size() == 1 ? &c.now->store.nodes[0] : nullptr;
    if (was == built_->store.nodes.end() || now == nullptr) {
      return was == built_->store.nodes.end() && now == nullptr;
    }
    return was->labels == now->labels && was->addrs == now->addrs;
  }
  if (c.key.first != Kind::kPod || built_->address_conflict) {
    return false;  // (a pod that lost an address claim has none, but must be assembled again)
  }
  const std::vector<Addr>* was = built_->addrsOf(key);
  return (was == nullptr || was->empty()) && (!c.pod || c.pod->ips.empty());
}

bool ClusterCompiler::incremental(const ClusterState::Snapshot& s) const {
  if (!built_ || s.changes.empty()) {
    return false;
  }
  const Built& b = *built_;
  std::set<std::string> changed_pods;
  for (const auto& c : s.changes) {
    if (c.key.first == Kind::kPod) changed_pods.insert(c.key.second);
  }
  size_t pods = 0;
  std::set<Addr> claimed;
  for (const auto& c : s.changes) {
    if (inert(c) || isPolicy(c.key.first)) {
      continue;
    }
    if (b.address_conflict) {
      return false;
    }
    // A namespace added, relabelled or deleted: its pods are re-added. Its NetworkSets'
    // ranges would change with it: those compile afresh.
    if (c.key.first == Kind::kNamespace) {
      const std::string& ns = c.key.second;
      if (std::any_of(b.store.network_sets.begin(), b.store.network_sets.end(),
                      [&](const policy::NetworkSet& set) { return !set.global && set.ns == ns; })) {
        return false;
      }
      pods += b.podsOf(ns).size();
      continue;
    }
    // A pod added, deleted, readdressed, relabelled; its endpoint record come or gone.
    // Anything else (tiers, sets, nodes) compiles afresh.
    if (c.key.first != Kind::kPod) {
      return false;
    }
    ++pods;
    if (!c.pod) {
      continue;
    }
    if (!b.builder->knowsNamedPorts(*c.pod)) {
      return false;  // policies naming that port lower differently now
    }
    // An address another pod holds (and keeps), or two changed pods claim: the full
    // assembly decides who gets it.
    for (Addr a : c.pod->ips) {
      if (!claimed.insert(a).second) {
        return false;
      }
      if (auto slot = b.inventory->findAddr(a)) {
        const policy::Pod& holder = b.store.pods[b.inventory->addrs()[*slot].pod];
        if (!changed_pods.contains(holder.key())) {
          return false;
        }
      }
    }
  }
  return pods <= kMaxPodChanges;
}

std::expected<ClusterCompiler::Path, Error> ClusterCompiler::apply(ClusterState::Snapshot& s) {
  std::expected<void, Error> ok;
  Path path = Path::kFull;
  if (s.full) {
    ok = rebuild(s);
  } else {
    bool pods = false;
    bool policies = false;
    for (const auto& c : s.changes) {
      if (!inert(c)) {
        (isPolicy(c.key.first) ? policies : pods) = true;
      }
    }
    path = pods && policies ? Path::kPodsAndPolicies
           : pods           ? Path::kPods
           : policies       ? Path::kPolicies
                            : Path::kUnchanged;
    // Pods first: the policies then select among the pods as they are now.
    if (pods) {
      ok = applyPods(s);
    }
    if (ok && policies) {
      ok = applyPolicies(s);
    }
  }
  if (!ok) {
    built_.reset();  // its state is unknown now: the next snapshot compiles afresh
    return std::unexpected(ok.error());
  }
  dropped_ = built_->dropped;
  for (const auto& [key, why] : built_->dropped_policies) dropped_.push_back(why);
  return path;
}

std::expected<void, Error> ClusterCompiler::rebuild(ClusterState::Snapshot& s) {
  built_.reset();
  auto b = std::make_unique<Built>();
  b->store = std::move(s.store);
  b->dropped = std::move(s.dropped);
  b->address_conflict = s.address_conflict;
  Diagnostics diags;
  policy::validateStore(b->store, diags);
  if (diags.hasErrors()) {
    std::string first;
    for (const Diagnostic& d : diags.all()) {
      if (d.severity == Severity::kError) {
        first = d.str();
        break;
      }
    }
    return fail(Error::Code::kInvalidInput, "the cluster state does not validate: " + first);
  }
  for (std::uint32_t i = 0; i < b->store.pods.size(); ++i) {
    b->pod_index.emplace(b->store.pods[i].key(), i);
  }
  b->tiers.insert(std::begin(policy::kBuiltinTiers), std::end(policy::kBuiltinTiers));
  for (const auto& t : b->store.tiers) b->tiers.insert(t.name);
  for (const auto& p : b->store.k8s_policies) {
    b->builder_keys.emplace(ObjectKey{Kind::kNetworkPolicy, p.key()},
                            compiler::ProgramBuilder::keyOf(p));
  }
  for (const auto& p : b->store.admin_policies) {
    b->builder_keys.emplace(ObjectKey{kindOf(p), p.name}, compiler::ProgramBuilder::keyOf(p));
  }
  for (const auto& p : b->store.calico_policies) {
    b->builder_keys.emplace(
        ObjectKey{p.global ? Kind::kGlobalPolicy : Kind::kCalicoPolicy, p.key()},
        compiler::ProgramBuilder::keyOf(p));
  }
  b->inventory = std::make_unique<compiler::Inventory>(b->store);
  b->builder = std::make_unique<compiler::ProgramBuilder>(b->store);
  b->compiler = std::make_unique<compiler::NodeCompiler>(*b->inventory, node_);
  if (auto ok = b->compiler->build(b->builder->program()); !ok) {
    return std::unexpected(ok.error());
  }
  built_ = std::move(b);
  return {};
}

std::expected<void, Error> ClusterCompiler::applyPolicies(const ClusterState::Snapshot& s) {
  Built& b = *built_;
  for (const auto& c : s.changes) {
    if (inert(c) || !isPolicy(c.key.first)) {
      continue;
    }
    b.dropped_policies.erase(c.key);
    if (auto it = b.builder_keys.find(c.key); it != b.builder_keys.end()) {
      b.builder->erase(it->second);
      b.builder_keys.erase(it);
    }
    if (!c.now) {
      continue;
    }
    for (const auto& p : c.now->store.k8s_policies) {
      b.builder->upsert(p);
      b.builder_keys[c.key] = compiler::ProgramBuilder::keyOf(p);
    }
    for (const auto& p : c.now->store.admin_policies) {
      b.builder->upsert(p);
      b.builder_keys[c.key] = compiler::ProgramBuilder::keyOf(p);
    }
    for (const auto& p : c.now->store.calico_policies) {
      if (!b.tiers.contains(p.tier)) {
        b.dropped_policies[c.key] =
            fmt::format("{} {}: tier '{}' does not exist",
                        p.global ? "GlobalNetworkPolicy" : "NetworkPolicy", p.key(), p.tier);
        continue;
      }
      b.builder->upsert(p);
      b.builder_keys[c.key] = compiler::ProgramBuilder::keyOf(p);
    }
  }
  return b.compiler->programChanged(b.builder->program());
}

// Every changed pod leaves the inventory (its old addresses, labels, ports), then comes back
// as it is now: slots die and are made, and the compiler reclassifies just those.
std::expected<void, Error> ClusterCompiler::applyPods(const ClusterState::Snapshot& s) {
  Built& b = *built_;
  // Each changed pod, as it is now (nothing: gone). A changed namespace's pods come back as
  // they are, after selectors see the namespace's new labels.
  std::map<std::string, std::optional<policy::Pod>> pods;
  for (const auto& c : s.changes) {
    if (c.key.first == Kind::kPod && !inert(c)) pods[c.key.second] = c.pod;
  }
  for (const auto& c : s.changes) {
    if (c.key.first != Kind::kNamespace) continue;
    const std::string& ns = c.key.second;
    std::erase_if(b.store.namespaces, [&](const policy::Namespace& n) { return n.name == ns; });
    if (c.now) {
      for (const auto& n : c.now->store.namespaces) b.store.namespaces.push_back(n);
    }
    b.inventory->namespaceChanged(ns);
    for (std::uint32_t i : b.podsOf(ns)) pods.try_emplace(b.store.pods[i].key(), b.store.pods[i]);
  }
  std::vector<size_t> removed;
  for (const auto& [key, now] : pods) {
    if (auto it = b.pod_index.find(key); it != b.pod_index.end()) {
      auto slots = b.inventory->removePod(it->second);
      removed.insert(removed.end(), slots.begin(), slots.end());
    }
  }
  std::vector<std::uint32_t> readd;
  std::vector<std::uint32_t> released;  // reusable once the compiler has seen them go
  for (const auto& [key, now] : pods) {
    auto it = b.pod_index.find(key);
    if (!now) {
      if (it != b.pod_index.end()) {
        // Gone: its entry keeps the namespace until reused (see Built::pod_index).
        policy::Pod& gone = b.store.pods[it->second];
        gone.ips.clear();
        gone.labels.clear();
        gone.ports.clear();
        released.push_back(it->second);
        b.pod_index.erase(it);
      }
      continue;
    }
    if (it == b.pod_index.end()) {
      std::uint32_t i;
      if (b.free_pods.empty()) {
        i = static_cast<std::uint32_t>(b.store.pods.size());
        b.store.pods.push_back(*now);
      } else {
        i = b.free_pods.back();
        b.free_pods.pop_back();
        b.store.pods[i] = *now;
      }
      it = b.pod_index.emplace(key, i).first;
    } else {
      b.store.pods[it->second] = *now;
    }
    readd.push_back(it->second);
  }
  std::vector<size_t> added;
  for (std::uint32_t i : readd) {
    auto slots = b.inventory->addPod(i);
    added.insert(added.end(), slots.begin(), slots.end());
  }
  auto ok = b.compiler->podsChanged(removed, added);
  b.inventory->recycle();
  b.free_pods.insert(b.free_pods.end(), released.begin(), released.end());
  return ok;
}

}  // namespace zonewall::agent
