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

// Each relabel recomputes what the pod's classes touch (compile_bench: 0.1-2 ms at 1k-10k
// policies, 7 ms for a local pod at 150k x 10k); past this many in one snapshot a fresh
// compile (50-400 ms) is the cheaper way, as it is for a burst of any other kind.
constexpr size_t kMaxRelabels = 16;

bool isPolicy(Kind k) {
  return k == Kind::kNetworkPolicy || k == Kind::kCalicoPolicy || k == Kind::kGlobalPolicy ||
         k == Kind::kAdminPolicy || k == Kind::kBaselineAdminPolicy || k == Kind::kClusterPolicy;
}

bool samePorts(const policy::Pod& a, const policy::Pod& b) {
  if (a.ports.size() != b.ports.size()) return false;
  for (size_t i = 0; i < a.ports.size(); ++i) {
    if (a.ports[i].name != b.ports[i].name || a.ports[i].protocol != b.ports[i].protocol ||
        a.ports[i].port != b.ports[i].port) {
      return false;
    }
  }
  return true;
}

}  // namespace

// What the last full compile was made of, kept so that the next change costs only itself.
// The inventory and the compiler hold references into `store`: a Built never moves.
struct ClusterCompiler::Built {
  policy::Store store;
  std::unordered_map<std::string, std::uint32_t> pod_index;  ///< "ns/name" → store.pods
  std::set<std::string> recorded;                            ///< pods addressed by a record
  std::set<std::string> unknown;  ///< pods whose endpoint record waits for the pod object
  std::set<std::string> terminating;
  std::set<std::string> tiers;
  std::map<ObjectKey, std::string> builder_keys;  ///< policy object → ProgramBuilder key
  std::vector<std::string> dropped;               ///< of the full compile
  std::map<ObjectKey, std::string> dropped_policies;
  std::unique_ptr<compiler::Inventory> inventory;
  std::unique_ptr<compiler::ProgramBuilder> builder;
  std::unique_ptr<compiler::NodeCompiler> compiler;
};

ClusterCompiler::ClusterCompiler(std::string node) : node_(std::move(node)) {}
ClusterCompiler::~ClusterCompiler() = default;

const char* ClusterCompiler::pathName(Path p) {
  switch (p) {
    case Path::kFull:
      return "full";
    case Path::kPolicies:
      return "policies";
    case Path::kLabels:
      return "labels";
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
// API shows a pod before its node runs it), or deleted before it had one: no set, class or
// endpoint of any table depends on it.
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
  if (c.key.first != Kind::kPod || built_->recorded.contains(key) ||
      built_->unknown.contains(key)) {
    return false;
  }
  if (auto it = built_->pod_index.find(key);
      it != built_->pod_index.end() && !built_->store.pods[it->second].ips.empty()) {
    return false;
  }
  return !c.now || (c.now->store.pods.size() == 1 && c.now->store.pods[0].ips.empty());
}

bool ClusterCompiler::incremental(const ClusterState::Snapshot& s) const {
  if (!built_ || s.endpoints_changed || s.changes.empty()) {
    return false;
  }
  bool policies = false;
  bool labels = false;
  size_t relabels = 0;
  for (const auto& c : s.changes) {
    if (inert(c)) {
      continue;
    }
    if (isPolicy(c.key.first)) {
      policies = true;
      continue;
    }
    if (c.key.first != Kind::kPod || !c.now || c.now->store.pods.size() != 1) {
      return false;
    }
    auto it = built_->pod_index.find(c.key.second);
    if (it == built_->pod_index.end()) {
      return false;  // a pod added (or one that was left out)
    }
    const policy::Pod& was = built_->store.pods[it->second];
    const policy::Pod& now = c.now->store.pods[0];
    // Only its labels may differ: anything else moves addresses or named ports.
    bool same_addrs = built_->recorded.contains(c.key.second) || was.ips == now.ips;
    if (was.node != now.node || !same_addrs || !samePorts(was, now) ||
        built_->terminating.contains(c.key.second) != c.now->terminating) {
      return false;
    }
    labels = true;
    ++relabels;
  }
  // One kind of change at a time (each has its own entry point), or none that matters.
  return relabels <= kMaxRelabels && !(policies && labels);
}

std::expected<ClusterCompiler::Path, Error> ClusterCompiler::apply(ClusterState::Snapshot& s) {
  std::expected<void, Error> ok;
  Path path = Path::kFull;
  if (s.full) {
    ok = rebuild(s);
  } else {
    path = Path::kUnchanged;
    for (const auto& c : s.changes) {
      if (!inert(c)) {
        path = isPolicy(c.key.first) ? Path::kPolicies : Path::kLabels;
        break;
      }
    }
    if (path == Path::kPolicies) {
      ok = applyPolicies(s);
    } else if (path == Path::kLabels) {
      ok = applyLabels(s);
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
  b->recorded = std::move(s.recorded_pods);
  b->terminating = std::move(s.terminating_pods);
  b->dropped = std::move(s.dropped);
  b->unknown.insert(s.unknown_pods.begin(), s.unknown_pods.end());
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
    if (inert(c)) {
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

std::expected<void, Error> ClusterCompiler::applyLabels(const ClusterState::Snapshot& s) {
  Built& b = *built_;
  for (const auto& c : s.changes) {
    if (inert(c)) {
      continue;
    }
    std::uint32_t i = b.pod_index.at(c.key.second);
    policy::Labels old = std::move(b.store.pods[i].labels);
    b.store.pods[i].labels = c.now->store.pods[0].labels;
    b.inventory->relabel(i, old);
    if (auto ok = b.compiler->podLabelsChanged(i); !ok) {
      return ok;
    }
  }
  return {};
}

}  // namespace zonewall::agent
