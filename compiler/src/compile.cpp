// The node compiler: resolve → classify remote addresses → classify local endpoints → paint.
//
// State kept between changes (so that one pod or one policy costs little):
//   applies_      which local addresses each policy (by uid) selects
//   locals_[d]    local classes: local addresses with the same program (the ordered rules
//                 that apply to them), each with its painted segments per remote class
//   preds_        the remote predicates (rule peers) with their address sets; a predicate no
//                 rule needs any more stays ("dead") until the next build(): it only makes
//                 classes finer, never changes a verdict
//   classes_      remote classes: atoms (pod addresses, address intervals) with the same
//                 predicate membership
#include "zonewall/compiler/compile.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "zonewall/base/hash.h"

namespace zonewall::compiler {
namespace {

using namespace policy;  // NOLINT

std::uint64_t mix(std::uint64_t x) {  // splitmix64 finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

struct VecHash {
  size_t operator()(const std::vector<std::uint32_t>& v) const {
    std::uint64_t h = 0x12345;
    for (std::uint32_t x : v) h = mix(h ^ x);
    return static_cast<size_t>(h);
  }
};

// One rule of one local class's program.
struct ProgRule {
  Action action;
  std::uint32_t pred;  // remote predicate index
  const L4Match* l4;
  AttributionHandle attribution;
};

struct TierSlot {
  Action default_action;
  AttributionHandle end_attribution;
  std::uint32_t end;  // rules [previous end, end) of the program
};

// What a local class evaluates, in order.
struct LocalProgram {
  std::vector<TierSlot> tiers;  // only the tiers that select the endpoint
  std::vector<ProgRule> rules;
  AttributionHandle after_tiers;  // when nothing decided: no policy, or every tier passed
  std::vector<std::pair<Protocol, Protocol>> psegs;  // protocol segments of its clauses
};

// A run of destination ports in one protocol segment while painting.
struct Cell {
  std::uint16_t lo;
  std::uint16_t hi;
  enum : std::uint8_t { kOpen, kPassed, kDecided } status;
  bool allow;
  AttributionHandle attribution;
  std::vector<AttributionHandle> logs;
};

struct Segment {
  Protocol proto_lo;
  Protocol proto_hi;
  std::uint16_t port_lo;
  std::uint16_t port_hi;
  std::uint32_t outcome;  // internal outcome id
  friend bool operator==(const Segment&, const Segment&) = default;
};

// A local class: addresses that evaluate the same program.
struct LocalState {
  std::vector<std::uint64_t> sig;  // identity: rule and tier handles, in order
  std::string order_key;           // content-based: orders classes (and so their ids)
  Family family;
  LocalProgram prog;
  std::vector<Addr> addrs;
  std::uint32_t default_outcome = 0;
  std::unordered_map<std::uint32_t, std::vector<Segment>> segs;  // by remote class index
  std::unordered_map<std::vector<std::uint32_t>, std::vector<Segment>, VecHash> cache;
  std::unordered_map<std::uint32_t, std::vector<std::uint32_t>> rules_of_pred;
  bool painted = false;
  bool reused = false;  // moved into the next generation of states
};

struct RemoteCls {
  Family family;
  std::vector<std::uint32_t> preds;  // sorted predicate indices
  RemoteClassId id = kNoRemoteClass;
  size_t pod_members = 0;
  size_t interval_members = 0;
  bool alive() const { return pod_members + interval_members > 0; }
};

constexpr std::uint64_t kTierMarker = 1ULL << 63;

}  // namespace

class NodeCompiler::State {
 public:
  State(const Inventory& inv, std::string node) : inv_(inv) { table_.node = std::move(node); }

  std::expected<void, Error> build(const Program& prog) {
    clear();
    setProgram(prog);
    const auto& addrs = inv_.addrs();
    for (size_t i = 0; i < addrs.size(); ++i) {
      if (inv_.store().pods[addrs[i].pod].node == table_.node) {
        locals_by_ns_[inv_.store().pods[addrs[i].pod].ns].push_back(locals_.size());
        locals_.push_back(i);
      }
    }
    for (const auto& tier : prog_.policies) {
      for (const auto& pol : tier) applies_[pol->uid] = computeApplies(*pol);
    }
    rebuildLocalPrograms();  // evaluates the predicates the programs need as it meets them
    if (auto err = classifyAll()) return std::unexpected(*err);
    paintDirty();
    emit();
    return {};
  }

  std::expected<void, Error> programChanged(const Program& prog) {
    if (prog.tiers.size() != prog_.tiers.size() ||
        !std::equal(prog.tiers.begin(), prog.tiers.end(), prog_.tiers.begin(),
                    [](const TierInfo& a, const TierInfo& b) { return a.uid == b.uid; })) {
      return build(prog);  // the tiers themselves changed: start over
    }
    std::unordered_set<std::uint32_t> live;
    for (const auto& tier : prog.policies) {
      for (const auto& pol : tier) {
        live.insert(pol->uid);
        if (!applies_.contains(pol->uid)) applies_[pol->uid] = computeApplies(*pol);
      }
    }
    std::erase_if(applies_, [&](const auto& kv) { return !live.contains(kv.first); });
    setProgram(prog);
    return refresh();
  }

  std::expected<void, Error> podLabelsChanged(std::uint32_t pod) {
    std::vector<size_t> changed = inv_.addrsOf(pod);
    bool local = inv_.store().pods[pod].node == table_.node;
    if (local) {
      for (size_t li = 0; li < locals_.size(); ++li) {
        if (inv_.addrs()[locals_[li]].pod != pod) continue;
        for (const auto& tier : prog_.policies) {
          for (const auto& pol : tier) {
            if (!pol->ns.empty() && pol->ns != podOf(li).ns) continue;
            auto& sel = applies_[pol->uid];
            auto at = std::lower_bound(sel.begin(), sel.end(), li);
            bool was = at != sel.end() && *at == li;
            bool now = podSelected(*pol->applies, podOf(li));
            if (now && !was) sel.insert(at, li);
            if (!now && was) sel.erase(at);
          }
        }
      }
    }
    // Its membership in every predicate, and so its class.
    for (size_t i : changed) {
      Addr a = inv_.addrs()[i].addr;
      for (std::uint32_t p = 0; p < preds_.size(); ++p) {
        if (inv_.contains(*preds_[p], a)) {
          pred_sets_[p].pods.set(i);
        } else {
          pred_sets_[p].pods.reset(i);
        }
      }
      std::vector<std::uint32_t> members;
      for (std::uint32_t p = 0; p < preds_.size(); ++p) {
        if (pred_sets_[p].pods.test(i)) members.push_back(p);
      }
      auto cls = classFor(a.family(), members);
      if (!cls) return std::unexpected(cls.error());
      movePod(i, *cls);
    }
    if (local) return refresh();
    dropDeadClasses();
    paintDirty();
    emit();
    return {};
  }

  const NodeTable& table() const { return table_; }

 private:
  void clear() {
    std::string node = std::move(table_.node);
    table_ = NodeTable{};
    table_.node = std::move(node);
    locals_.clear();
    locals_by_ns_.clear();
    applies_.clear();
    for (auto& d : locals_state_) d.clear();
    preds_.clear();
    pred_index_.clear();
    pred_sets_.clear();
    new_preds_.clear();
    classes_.clear();
    class_index_.clear();
    used_ids_.clear();
    dirty_classes_.clear();
    dead_.clear();
    pod_class_.clear();
    cuts_.clear();
    iv_class_.clear();
    outcomes_.clear();
    outcome_index_.clear();
  }

  void setProgram(const Program& prog) {
    prog_ = prog;
    by_uid_.clear();
    for (const auto& tier : prog_.policies) {
      for (const auto& pol : tier) by_uid_[pol->uid] = pol.get();
    }
  }

  const Attribution* findAttribution(AttributionHandle h) const {
    auto uid = static_cast<std::uint32_t>(h >> 32);
    if (auto it = by_uid_.find(uid); it != by_uid_.end()) {
      auto index = static_cast<std::uint32_t>(h);
      return index < it->second->attributions.size() ? &it->second->attributions[index] : nullptr;
    }
    return prog_.find(h);  // tiers and defaults
  }

  // ---- locals and their programs ----

  // The local addresses (by position in locals_) a policy selects, ascending.
  std::vector<size_t> computeApplies(const LoweredPolicy& pol) const {
    std::vector<size_t> sel;
    auto check = [&](size_t li) {
      if (podSelected(*pol.applies, podOf(li))) sel.push_back(li);
    };
    if (!pol.ns.empty()) {
      // Namespaced: only the locals of its namespace.
      auto it = locals_by_ns_.find(pol.ns);
      if (it != locals_by_ns_.end()) {
        for (size_t li : it->second) check(li);
      }
    } else {
      for (size_t li = 0; li < locals_.size(); ++li) check(li);
    }
    return sel;
  }

  bool podSelected(const AddrExpr& e, const Pod& pod) const {
    // A policy selects pods (endpoints), never addresses of network sets.
    const Scope& s = e.scope;
    bool in_scope = false;
    switch (s.kind) {
      case Scope::Kind::kNamespace:
        in_scope = pod.ns == s.ns;
        break;
      case Scope::Kind::kNamespaces:
        in_scope = inv_.namespaceMatches(s.ns_selector, pod.ns, e.calico);
        break;
      case Scope::Kind::kAllAndGlobalSets:
        in_scope = true;
        break;
      case Scope::Kind::kGlobalSets:
        in_scope = false;
        break;
    }
    return in_scope && e.selector.matches(PodLabelView(pod, e.calico));
  }

  const Pod& podOf(size_t li) const { return inv_.store().pods[inv_.addrs()[locals_[li]].pod]; }
  Addr addrOf(size_t li) const { return inv_.addrs()[locals_[li]].addr; }

  std::uint32_t predIndex(const AddrExprPtr& e) {
    auto [it, fresh] = pred_index_.emplace(e->key, static_cast<std::uint32_t>(preds_.size()));
    if (fresh) {
      preds_.push_back(e);
      pred_sets_.push_back(inv_.evaluate(*e));
      new_preds_.push_back(it->second);
    }
    return it->second;
  }

  // Per local address, the policies (by tier) that select it in direction `di`: one pass
  // over the policies, each looked up once.
  std::vector<std::vector<std::pair<size_t, const LoweredPolicy*>>> applying(int di) {
    std::vector<std::vector<std::pair<size_t, const LoweredPolicy*>>> out(locals_.size());
    for (size_t t = 0; t < prog_.policies.size(); ++t) {
      for (const auto& pol : prog_.policies[t]) {
        if (!pol->applies_to[di]) continue;
        auto it = applies_.find(pol->uid);
        if (it == applies_.end()) continue;
        for (size_t li : it->second) out[li].push_back({t, pol.get()});
      }
    }
    return out;
  }

  // Recomputes every local address's program; keeps the classes (and their painting) whose
  // program did not change.
  void rebuildLocalPrograms() {
    for (Direction d : {Direction::kIngress, Direction::kEgress}) {
      const int di = static_cast<int>(d);
      auto pols = applying(di);
      std::map<std::pair<Family, std::vector<std::uint64_t>>, LocalState> next;
      for (size_t li = 0; li < locals_.size(); ++li) {
        std::vector<std::uint64_t> sig;
        for (size_t k = 0; k < pols[li].size(); ++k) {
          const auto& [t, pol] = pols[li][k];
          const auto& rules = pol->rules[di];
          for (std::uint32_t r = 0; r < rules.size(); ++r) {
            if (inv_.contains(*rules[r].local, addrOf(li)))
              sig.push_back(attributionHandle(pol->uid, r));
          }
          if (k + 1 == pols[li].size() || pols[li][k + 1].first != t)
            sig.push_back(kTierMarker | t);
        }
        auto key = std::make_pair(addrOf(li).family(), std::move(sig));
        auto it = next.find(key);
        if (it == next.end()) {
          // Reuse the class (and its painting) if its program is unchanged. A reused state is
          // moved out and flagged, so that it can never match twice.
          auto old = std::find_if(
              locals_state_[di].begin(), locals_state_[di].end(), [&](const LocalState& s) {
                return !s.reused && s.family == key.first && s.sig == key.second;
              });
          LocalState st;
          if (old != locals_state_[di].end()) {
            st = std::move(*old);
            old->reused = true;
          } else {
            st = makeLocal(d, key.first, key.second, li, pols[li]);
          }
          st.addrs.clear();
          it = next.emplace(key, std::move(st)).first;
        }
        it->second.addrs.push_back(addrOf(li));
      }
      locals_state_[di].clear();
      for (auto& [key, st] : next) locals_state_[di].push_back(std::move(st));
      // Class ids follow a content-based order, the same whatever the history of changes.
      std::sort(locals_state_[di].begin(), locals_state_[di].end(),
                [](const LocalState& a, const LocalState& b) {
                  return std::tie(a.family, a.order_key) < std::tie(b.family, b.order_key);
                });
    }
  }

  LocalState makeLocal(Direction d, Family fam, const std::vector<std::uint64_t>& sig, size_t li,
                       const std::vector<std::pair<size_t, const LoweredPolicy*>>& pols) {
    const int di = static_cast<int>(d);
    LocalState st;
    st.sig = sig;
    st.family = fam;
    LocalProgram& lp = st.prog;
    for (size_t k = 0; k < pols.size(); ++k) {
      const auto& [t, pol] = pols[k];
      const auto& rules = pol->rules[di];
      for (std::uint32_t r = 0; r < rules.size(); ++r) {
        if (!inv_.contains(*rules[r].local, addrOf(li))) continue;
        const LoweredRule& rule = rules[r];
        lp.rules.push_back({rule.action, predIndex(rule.peer), &rule.l4,
                            attributionHandle(pol->uid, rule.attribution)});
        st.order_key += pol->key + "#" + std::to_string(r) + ";";
      }
      if (k + 1 == pols.size() || pols[k + 1].first != t) {
        const TierInfo& tier = prog_.tiers[t];
        lp.tiers.push_back({tier.default_action,
                            attributionHandle(tier.uid, static_cast<std::uint32_t>(di)),
                            static_cast<std::uint32_t>(lp.rules.size())});
        st.order_key += "|" + tier.name + ";";
      }
    }
    lp.after_tiers =
        lp.tiers.empty()
            ? attributionHandle(Program::kDefaultsUid, static_cast<std::uint32_t>(di))
            : attributionHandle(Program::kDefaultsUid, 2 + static_cast<std::uint32_t>(di));
    std::set<int> cut{0, 256};
    for (const ProgRule& r : lp.rules) {
      for (const L4Clause& c : r.l4->clauses) {
        cut.insert(c.proto_lo);
        cut.insert(c.proto_hi + 1);
      }
    }
    for (auto it = cut.begin(); std::next(it) != cut.end(); ++it) {
      lp.psegs.push_back({static_cast<Protocol>(*it), static_cast<Protocol>(*std::next(it) - 1)});
    }
    for (std::uint32_t pos = 0; pos < lp.rules.size(); ++pos)
      st.rules_of_pred[lp.rules[pos].pred].push_back(pos);
    std::vector<Segment> none = evaluate(lp, {{0, 255}}, {}, kNoOutcome);
    st.default_outcome = none.front().outcome;
    return st;
  }

  // ---- remote classes ----

  std::expected<std::uint32_t, Error> classFor(Family fam,
                                               const std::vector<std::uint32_t>& preds) {
    auto key = std::make_pair(fam, preds);
    if (auto it = class_index_.find(key); it != class_index_.end()) return it->second;
    RemoteCls c{fam, preds, kNoRemoteClass, 0, 0};
    if (!preds.empty()) {
      // The id is a hash of the membership (predicate keys), so a class keeps its id when
      // unrelated pods and policies change; a collision probes to the next free id.
      std::vector<std::string_view> keys;
      for (std::uint32_t p : preds) keys.push_back(preds_[p]->key);
      std::sort(keys.begin(), keys.end());
      std::string canonical = fam == Family::kV4 ? "ipv4" : "ipv6";
      for (auto k : keys) canonical += "|" + std::string(k);
      std::uint32_t id = static_cast<std::uint32_t>(fnv1a(canonical) % 65535) + 1;
      for (std::uint32_t tries = 0; used_ids_.contains({fam, static_cast<RemoteClassId>(id)});
           ++tries) {
        if (tries >= 65535) {
          return fail(Error::Code::kUnsupported,
                      fmt::format("node {}: more than 65535 remote address classes", table_.node),
                      0);
        }
        id = id % 65535 + 1;
      }
      c.id = static_cast<RemoteClassId>(id);
      used_ids_.insert({fam, c.id});
    }
    auto idx = static_cast<std::uint32_t>(classes_.size());
    classes_.push_back(std::move(c));
    class_index_.emplace(std::move(key), idx);
    dirty_classes_.insert(idx);
    return idx;
  }

  void movePod(size_t i, std::uint32_t to) {
    std::uint32_t from = pod_class_[i];
    if (from == to) return;
    --classes_[from].pod_members;
    ++classes_[to].pod_members;
    pod_class_[i] = to;
    updateExact(i);
  }

  // A pod address is listed in the exact (hash) map whenever it has a class of its own, even
  // when its interval has the same one: its class must never depend on an interval lookup.
  // Updating the kernel's rbtree interval set can return a transient false negative for an
  // address in a range being replaced, which would classify a pod as class 0 for a moment
  // (and could deny an allowed flow); hash lookups have no such window.
  static bool needsExact(RemoteClassId pod_id, RemoteClassId interval_id) {
    return pod_id != kNoRemoteClass || pod_id != interval_id;
  }

  void updateExact(size_t i) {
    Addr a = inv_.addrs()[i].addr;
    RemoteClassId pod_id = classes_[pod_class_[i]].id;
    RemoteClassId iv_id = classes_[iv_class_[intervalOf(a.v)]].id;
    auto& ex = table_.remote_exact;
    auto it = std::lower_bound(ex.begin(), ex.end(), a,
                               [](const auto& e, Addr x) { return e.first < x; });
    bool present = it != ex.end() && it->first == a;
    if (!needsExact(pod_id, iv_id)) {
      if (present) ex.erase(it);
    } else if (present) {
      it->second = pod_id;
    } else {
      ex.insert(it, {a, pod_id});
    }
  }

  size_t intervalOf(U128 v) const {
    return static_cast<size_t>(std::upper_bound(cuts_.begin(), cuts_.end(), v) - cuts_.begin()) - 1;
  }

  // Classifies every atom from scratch (build()).
  std::optional<Error> classifyAll() {
    const auto& addrs = inv_.addrs();
    pod_class_.assign(addrs.size(), 0);
    // Group pod addresses by membership, predicate by predicate (partition refinement):
    // the cost is the size of the smaller side of each predicate, not pods x predicates.
    std::vector<std::uint32_t> group(addrs.size(), 0);
    std::vector<Family> group_family{Family::kV4, Family::kV6};
    for (size_t i = 0; i < addrs.size(); ++i)
      group[i] = addrs[i].addr.family() == Family::kV4 ? 0 : 1;
    std::vector<std::vector<std::uint32_t>> group_preds(2);
    std::vector<std::uint32_t> split_to;
    for (std::uint32_t p = 0; p < preds_.size(); ++p) {
      const Bitset& bits = pred_sets_[p].pods;
      split_to.assign(group_preds.size(), ~0U);
      bits.forEach([&](size_t i) {
        std::uint32_t g = group[i];
        if (split_to[g] == ~0U) {
          split_to[g] = static_cast<std::uint32_t>(group_preds.size());
          std::vector<std::uint32_t> gp = group_preds[g];
          gp.push_back(p);
          group_preds.push_back(std::move(gp));
          group_family.push_back(group_family[g]);
        }
        group[i] = split_to[g];
      });
    }
    // Groups with equal membership can arise on different paths only if equal; map each
    // group to its class.
    std::vector<std::uint32_t> cls_of_group(group_preds.size(), ~0U);
    for (size_t i = 0; i < addrs.size(); ++i) {
      std::uint32_t g = group[i];
      if (cls_of_group[g] == ~0U) {
        auto c = classFor(group_family[g], group_preds[g]);
        if (!c) return c.error();
        cls_of_group[g] = *c;
      }
      pod_class_[i] = cls_of_group[g];
      ++classes_[pod_class_[i]].pod_members;
    }
    if (auto err = classifyIntervals()) return err;
    rebuildExact();
    new_preds_.clear();
    return std::nullopt;
  }

  // The exact map from scratch: every pod address whose class needs listing.
  void rebuildExact() {
    const auto& addrs = inv_.addrs();
    table_.remote_exact.clear();
    for (size_t i = 0; i < addrs.size(); ++i) {
      RemoteClassId pod_id = classes_[pod_class_[i]].id;
      if (needsExact(pod_id, classes_[iv_class_[intervalOf(addrs[i].addr.v)]].id)) {
        table_.remote_exact.push_back({addrs[i].addr, pod_id});
      }
    }
  }

  // Intervals: cut the space wherever a predicate's range starts or ends. Few, so always
  // recomputed whole.
  std::optional<Error> classifyIntervals() {
    for (std::uint32_t c : iv_class_) --classes_[c].interval_members;
    std::vector<U128> cuts{0, kV4MappedBase, kV4MappedLast + 1};
    std::vector<std::uint32_t> ranged;
    for (std::uint32_t p = 0; p < preds_.size(); ++p) {
      const IntervalSet& r = pred_sets_[p].ranges;
      if (r.empty()) continue;
      ranged.push_back(p);
      for (const Range& x : r.ranges()) {
        cuts.push_back(x.lo);
        if (x.hi != kU128Max) cuts.push_back(x.hi + 1);
      }
    }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    cuts_ = std::move(cuts);
    iv_class_.assign(cuts_.size(), 0);
    for (size_t k = 0; k < cuts_.size(); ++k) {
      std::vector<std::uint32_t> members;
      for (std::uint32_t p : ranged) {
        if (pred_sets_[p].ranges.contains(cuts_[k])) members.push_back(p);
      }
      auto c = classFor(Addr{cuts_[k]}.family(), members);
      if (!c) return c.error();
      iv_class_[k] = *c;
      ++classes_[*c].interval_members;
    }
    return std::nullopt;
  }

  // New predicates split the classes they cut.
  std::optional<Error> refineClasses() {
    if (new_preds_.empty()) return std::nullopt;
    bool ranges_changed = false;
    for (std::uint32_t p : new_preds_) {
      ranges_changed = ranges_changed || !pred_sets_[p].ranges.empty();
      std::unordered_map<std::uint32_t, std::uint32_t> split;  // old class -> new class
      std::vector<size_t> moved;
      pred_sets_[p].pods.forEach([&](size_t i) { moved.push_back(i); });
      for (size_t i : moved) {
        std::uint32_t from = pod_class_[i];
        auto it = split.find(from);
        if (it == split.end()) {
          std::vector<std::uint32_t> preds = classes_[from].preds;
          preds.insert(std::upper_bound(preds.begin(), preds.end(), p), p);
          auto c = classFor(classes_[from].family, preds);
          if (!c) return c.error();
          it = split.emplace(from, *c).first;
        }
        std::uint32_t to = it->second;
        --classes_[from].pod_members;
        ++classes_[to].pod_members;
        pod_class_[i] = to;
      }
    }
    new_preds_.clear();
    if (ranges_changed) {
      if (auto err = classifyIntervals()) return err;
    }
    rebuildExact();  // every pod address may now differ from its interval's class
    return std::nullopt;
  }

  void dropDeadClasses() {
    for (std::uint32_t c = 0; c < classes_.size(); ++c) {
      if (classes_[c].alive() || dead_.contains(c)) continue;
      dead_.insert(c);
      dirty_classes_.erase(c);
      class_index_.erase({classes_[c].family, classes_[c].preds});
      if (classes_[c].id != kNoRemoteClass) used_ids_.erase({classes_[c].family, classes_[c].id});
      for (auto& dir : locals_state_) {
        for (LocalState& st : dir) st.segs.erase(c);
      }
    }
  }

  std::expected<void, Error> refresh() {
    rebuildLocalPrograms();
    if (auto err = refineClasses()) return std::unexpected(*err);
    dropDeadClasses();
    paintDirty();
    emit();
    return {};
  }

  // ---- painting ----

  std::uint32_t internOutcome(bool allow, AttributionHandle attr,
                              const std::vector<AttributionHandle>& logs) {
    auto key = std::make_tuple(allow, attr, logs);
    auto [it, fresh] = outcome_index_.emplace(key, static_cast<std::uint32_t>(outcomes_.size()));
    if (fresh) outcomes_.push_back(key);
    return it->second;
  }

  static void paint(std::vector<Cell>& cells, const std::vector<PortRange>& ports,
                    const ProgRule& rule) {
    std::vector<Cell> out;
    out.reserve(cells.size() + 2 * ports.size());
    for (Cell& c : cells) {
      if (c.status != Cell::kOpen) {
        out.push_back(std::move(c));
        continue;
      }
      std::uint32_t pos = c.lo;
      for (const PortRange& pr : ports) {
        if (pr.hi < pos || pr.lo > c.hi) continue;
        std::uint32_t lo = std::max<std::uint32_t>(pr.lo, pos);
        std::uint32_t hi = std::min<std::uint32_t>(pr.hi, c.hi);
        if (lo > pos) {
          Cell before = c;
          before.lo = static_cast<std::uint16_t>(pos);
          before.hi = static_cast<std::uint16_t>(lo - 1);
          out.push_back(std::move(before));
        }
        Cell hit = c;
        hit.lo = static_cast<std::uint16_t>(lo);
        hit.hi = static_cast<std::uint16_t>(hi);
        switch (rule.action) {
          case Action::kAllow:
          case Action::kDeny:
            hit.status = Cell::kDecided;
            hit.allow = rule.action == Action::kAllow;
            hit.attribution = rule.attribution;
            break;
          case Action::kPass:
            hit.status = Cell::kPassed;
            break;
          case Action::kLog:
            if (std::find(hit.logs.begin(), hit.logs.end(), rule.attribution) == hit.logs.end()) {
              hit.logs.push_back(rule.attribution);
            }
            break;
        }
        out.push_back(std::move(hit));
        pos = hi + 1;
        if (pos > c.hi) break;
      }
      if (pos <= c.hi) {
        Cell rest = std::move(c);
        rest.lo = static_cast<std::uint16_t>(pos);
        out.push_back(std::move(rest));
      }
    }
    cells = std::move(out);
  }

  // Evaluates `lp` restricted to the rules at `positions` over the whole protocol x port
  // space; returns the segments that differ from `default_outcome`.
  std::vector<Segment> evaluate(const LocalProgram& lp,
                                const std::vector<std::pair<Protocol, Protocol>>& psegs,
                                const std::vector<std::uint32_t>& positions,
                                std::uint32_t default_outcome) {
    std::vector<std::vector<Cell>> grid(psegs.size());
    for (auto& cells : grid) cells = {Cell{0, 65535, Cell::kOpen, false, 0, {}}};
    auto anyOpen = [&] {
      return std::any_of(grid.begin(), grid.end(), [&](const std::vector<Cell>& cells) {
        return std::any_of(cells.begin(), cells.end(),
                           [&](const Cell& c) { return c.status == Cell::kOpen; });
      });
    };
    size_t next = 0;
    for (const TierSlot& tier : lp.tiers) {
      for (; next < positions.size() && positions[next] < tier.end; ++next) {
        const ProgRule& rule = lp.rules[positions[next]];
        for (const L4Clause& cl : rule.l4->clauses) {
          for (size_t s = 0; s < psegs.size(); ++s) {
            if (psegs[s].first >= cl.proto_lo && psegs[s].second <= cl.proto_hi)
              paint(grid[s], cl.ports, rule);
          }
        }
        // Everything decided or passed: the tier's later rules cannot change anything.
        if (rule.action != Action::kLog && !anyOpen()) {
          while (next < positions.size() && positions[next] < tier.end) ++next;
          break;
        }
      }
      for (auto& cells : grid) {
        for (Cell& c : cells) {
          if (c.status == Cell::kOpen) {
            if (tier.default_action == Action::kPass) {
              c.status = Cell::kPassed;
            } else {
              c.status = Cell::kDecided;
              c.allow = false;
              c.attribution = tier.end_attribution;
            }
          }
          if (c.status == Cell::kPassed) c.status = Cell::kOpen;  // on to the next tier
        }
      }
      if (!anyOpen()) break;  // all decided: later tiers cannot change anything
    }
    // Merge equal neighbours, then equal neighbouring protocol segments.
    std::vector<std::vector<std::tuple<std::uint16_t, std::uint16_t, std::uint32_t>>> rows(
        psegs.size());
    for (size_t s = 0; s < psegs.size(); ++s) {
      for (const Cell& c : grid[s]) {
        std::uint32_t o = c.status == Cell::kDecided ? internOutcome(c.allow, c.attribution, c.logs)
                                                     : internOutcome(true, lp.after_tiers, c.logs);
        auto& row = rows[s];
        if (!row.empty() && std::get<2>(row.back()) == o) {
          std::get<1>(row.back()) = c.hi;
        } else {
          row.emplace_back(c.lo, c.hi, o);
        }
      }
    }
    std::vector<Segment> out;
    for (size_t s = 0; s < psegs.size();) {
      size_t e = s + 1;
      while (e < psegs.size() && rows[e] == rows[s]) ++e;
      for (const auto& [lo, hi, o] : rows[s]) {
        if (o != default_outcome) out.push_back({psegs[s].first, psegs[e - 1].second, lo, hi, o});
      }
      s = e;
    }
    return out;
  }

  void paintPair(LocalState& st, std::uint32_t c) {
    const RemoteCls& rc = classes_[c];
    st.segs.erase(c);
    if (rc.family != st.family) return;
    std::vector<std::uint32_t> positions;
    for (std::uint32_t p : rc.preds) {
      if (auto it = st.rules_of_pred.find(p); it != st.rules_of_pred.end()) {
        positions.insert(positions.end(), it->second.begin(), it->second.end());
      }
    }
    if (positions.empty()) return;  // no rule names this class: the default applies
    std::sort(positions.begin(), positions.end());
    auto it = st.cache.find(positions);
    if (it == st.cache.end()) {
      it = st.cache
               .emplace(positions, evaluate(st.prog, st.prog.psegs, positions, st.default_outcome))
               .first;
    }
    if (!it->second.empty()) st.segs[c] = it->second;
  }

  void paintDirty() {
    for (auto& dir : locals_state_) {
      for (LocalState& st : dir) {
        if (!st.painted) {
          for (std::uint32_t c = 0; c < classes_.size(); ++c) {
            if (classes_[c].alive()) paintPair(st, c);
          }
          st.painted = true;
          continue;
        }
        for (std::uint32_t c : dirty_classes_) {
          if (classes_[c].alive()) paintPair(st, c);
        }
      }
    }
    dirty_classes_.clear();
  }

  // ---- the table ----

  void emit() {
    std::unordered_map<AttributionHandle, std::uint32_t> attr_ids;
    std::vector<std::uint32_t> outcome_ids(outcomes_.size(), ~0U);
    table_.attributions.clear();
    table_.outcomes.clear();
    // Outcomes and attributions in first-use order of the (sorted) table: deterministic.
    auto outcomeId = [&](std::uint32_t internal) {
      std::uint32_t& id = outcome_ids[internal];
      if (id == ~0U) {
        id = static_cast<std::uint32_t>(table_.outcomes.size());
        const auto& [allow, attr, logs] = outcomes_[internal];
        auto attrId = [&](AttributionHandle h) {
          auto [ai, afresh] =
              attr_ids.emplace(h, static_cast<std::uint32_t>(table_.attributions.size()));
          if (afresh) {
            const Attribution* a = findAttribution(h);
            table_.attributions.push_back(a ? *a : Attribution{});
          }
          return ai->second;
        };
        Outcome o{allow, attrId(attr), {}};
        for (AttributionHandle l : logs) o.logs.push_back(attrId(l));
        table_.outcomes.push_back(std::move(o));
      }
      return id;
    };
    table_.remote_classes.clear();
    for (std::uint32_t c = 0; c < classes_.size(); ++c) {
      const RemoteCls& rc = classes_[c];
      if (!rc.alive() || rc.id == kNoRemoteClass) continue;
      RemoteClass out{rc.id, rc.family, {}};
      for (std::uint32_t p : rc.preds) out.predicates.push_back(preds_[p]->key);
      std::sort(out.predicates.begin(), out.predicates.end());
      table_.remote_classes.push_back(std::move(out));
    }
    std::sort(table_.remote_classes.begin(), table_.remote_classes.end(),
              [](const RemoteClass& a, const RemoteClass& b) {
                return std::tie(a.family, a.id) < std::tie(b.family, b.id);
              });
    table_.remote_ranges.clear();
    for (size_t k = 0; k < cuts_.size(); ++k) {
      RemoteClassId id = classes_[iv_class_[k]].id;
      U128 hi = k + 1 < cuts_.size() ? cuts_[k + 1] - 1 : kU128Max;
      if (id == kNoRemoteClass) continue;
      auto& rr = table_.remote_ranges;
      if (!rr.empty() && rr.back().second == id && rr.back().first.hi + 1 == cuts_[k]) {
        rr.back().first.hi = hi;
      } else {
        rr.push_back({Range{cuts_[k], hi}, id});
      }
    }
    table_.endpoints.clear();
    std::map<std::string, LocalEndpoint> eps;
    for (size_t li = 0; li < locals_.size(); ++li) {
      const Pod& pod = podOf(li);
      LocalEndpoint& ep = eps[pod.key()];
      ep.pod = pod.key();
      ep.iface = pod.hostVeth();
      ep.addrs.push_back(addrOf(li));
    }
    for (auto& [key, ep] : eps) table_.endpoints.push_back(std::move(ep));
    for (Direction d : {Direction::kIngress, Direction::kEgress}) {
      const int di = static_cast<int>(d);
      DirectionTable& dt = table_.directions[di];
      dt.classes.clear();
      dt.entries.clear();
      std::uint32_t next_id = 1;
      for (const LocalState& st : locals_state_[di]) {
        LocalClass lc{next_id++, st.family, outcomeId(st.default_outcome), st.addrs};
        std::sort(lc.addrs.begin(), lc.addrs.end());
        std::vector<std::pair<RemoteClassId, const std::vector<Segment>*>> pairs;
        for (const auto& [c, segs] : st.segs) pairs.push_back({classes_[c].id, &segs});
        std::sort(pairs.begin(), pairs.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        for (const auto& [rid, segs] : pairs) {
          for (const Segment& s : *segs) {
            dt.entries.push_back(
                {lc.id, rid, s.proto_lo, s.proto_hi, s.port_lo, s.port_hi, outcomeId(s.outcome)});
          }
        }
        dt.classes.push_back(std::move(lc));
      }
    }
  }

  static constexpr std::uint32_t kNoOutcome = ~0U;

  const Inventory& inv_;
  Program prog_;
  std::unordered_map<std::uint32_t, const LoweredPolicy*> by_uid_;
  NodeTable table_;
  std::vector<size_t> locals_;  // indices into inv_.addrs()
  std::unordered_map<std::uint32_t, std::vector<size_t>>
      applies_;  // by policy uid: locals it selects
  std::unordered_map<std::string, std::vector<size_t>> locals_by_ns_;
  std::vector<LocalState> locals_state_[2];
  std::vector<AddrExprPtr> preds_;
  std::unordered_map<std::string, std::uint32_t> pred_index_;
  std::vector<AddrSet> pred_sets_;
  std::vector<std::uint32_t> new_preds_;
  std::vector<RemoteCls> classes_;
  std::map<std::pair<Family, std::vector<std::uint32_t>>, std::uint32_t> class_index_;
  std::set<std::pair<Family, RemoteClassId>> used_ids_;
  std::set<std::uint32_t> dirty_classes_;
  std::set<std::uint32_t> dead_;
  std::vector<std::uint32_t> pod_class_;  // by address index
  std::vector<U128> cuts_;
  std::vector<std::uint32_t> iv_class_;
  std::vector<std::tuple<bool, AttributionHandle, std::vector<AttributionHandle>>> outcomes_;
  std::map<std::tuple<bool, AttributionHandle, std::vector<AttributionHandle>>, std::uint32_t>
      outcome_index_;
};

NodeCompiler::NodeCompiler(const Inventory& inventory, std::string node)
    : s_(std::make_unique<State>(inventory, std::move(node))) {}
NodeCompiler::~NodeCompiler() = default;
std::expected<void, Error> NodeCompiler::build(const Program& program) {
  return s_->build(program);
}
std::expected<void, Error> NodeCompiler::programChanged(const Program& program) {
  return s_->programChanged(program);
}
std::expected<void, Error> NodeCompiler::podLabelsChanged(std::uint32_t pod) {
  return s_->podLabelsChanged(pod);
}
const NodeTable& NodeCompiler::table() const { return s_->table(); }

std::expected<NodeTable, Error> compileNode(const Program& program, const Inventory& inventory,
                                            const std::string& node) {
  NodeCompiler c(inventory, node);
  if (auto r = c.build(program); !r) return std::unexpected(r.error());
  return c.table();
}

}  // namespace zonewall::compiler
