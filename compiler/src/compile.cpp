// The node compiler, stage by stage: resolve (which local addresses each policy selects) →
// classify remote addresses (remote_classes.h) → classify local endpoints (here: local
// addresses with the same program share a class) → paint each (local class, remote class)
// pair over protocol × port (painter.h) → emit the table.
//
// State kept between changes (so that one pod or one policy costs little):
//   applies_          which local addresses each policy (by uid) selects
//   applying_[d]      per local address, the policies that apply to it, in evaluation order
//   locals_state_[d]  local classes: local addresses with the same program (the ordered rules
//                     that apply to them), each with its painted segments per remote class
//                     and those paintings as rows; state_of_[d] says which class a local is in
//   remote_           the remote predicates and classes (it owns their invariants)
//   outcomes_         every outcome painted, interned
// A change recomputes the locals it touches (regroup), the remote classes it makes (painted in
// every local class, or taken from the class they split from), and writes into the table only
// the rows and lists that changed (emit).
#include "zonewall/compiler/compile.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "painter.h"
#include "remote_classes.h"

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

// A local class: addresses that evaluate the same program.
struct LocalState {
  std::vector<std::uint64_t> sig;  // identity: rule and tier handles, in order
  std::string order_key;           // content-based: orders classes (and so their ids)
  Family family;
  LocalProgram prog;
  std::vector<size_t> members;  // local positions
  std::uint32_t default_outcome = 0;
  // Paintings by the rule positions that name a remote class (never erased: `segs` points in).
  std::unordered_map<std::vector<std::uint32_t>, std::vector<Segment>, VecHash> cache;
  // By remote class index: its painting, when it differs from the default.
  std::unordered_map<std::uint32_t, const std::vector<Segment>*> segs;
  // The rule positions that name each remote predicate: by predicate index, 1 + an index into
  // `rules_of_pred` (0: no rule names it). A flat index, as painting asks it for every
  // predicate of every changed class.
  std::vector<std::uint32_t> pred_slot;
  std::vector<std::vector<std::uint32_t>> rules_of_pred;
  // `segs` as table rows, by remote class id (local_class unset, outcome internal): what emit()
  // copies. A new local class's rows are written whole (`rows_stale`); after that, the classes
  // whose paintings changed (`stale`: the id their rows were written under, and the class) are
  // merged in at emit().
  std::vector<Entry> rows;
  bool rows_stale = true;
  std::vector<std::pair<RemoteClassId, std::uint32_t>> stale;
  bool painted = false;
};

constexpr std::uint64_t kTierMarker = 1ULL << 63;

// Evaluation order of (tier index, policy), as ProgramBuilder keeps each tier's list.
bool evaluatedBefore(const std::pair<size_t, const LoweredPolicy*>& a,
                     const std::pair<size_t, const LoweredPolicy*>& b) {
  if (a.first != b.first) return a.first < b.first;
  return policyBefore(*a.second, *b.second);
}

}  // namespace

class NodeCompiler::State {
 public:
  State(const Inventory& inv, std::string node) : inv_(inv), remote_(inv, table_) {
    table_.node = std::move(node);
  }

  std::expected<void, Error> build(const Program& prog) {
    clear();
    setProgram(prog);
    const auto& addrs = inv_.addrs();
    for (size_t i = 0; i < addrs.size(); ++i) {
      if (inv_.live(i) && isLocal(inv_.store().pods[addrs[i].pod])) addLocal(i);
    }
    for (const auto& tier : prog_.policies) {
      for (const auto& pol : tier) applies_[pol->uid] = computeApplies(*pol);
    }
    rebuildLocalPrograms();  // evaluates the predicates the programs need as it meets them
    if (auto ok = remote_.classifyAll(); !ok) return ok;
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
    // The policies that came (a changed one comes under a new uid) and went, and the locals
    // either selects: only their programs can change.
    std::unordered_set<std::uint32_t> live;
    std::vector<std::pair<size_t, const LoweredPolicy*>> came;
    std::vector<size_t> affected;
    for (size_t t = 0; t < prog.policies.size(); ++t) {
      for (const auto& pol : prog.policies[t]) {
        live.insert(pol->uid);
        if (applies_.contains(pol->uid)) continue;
        auto& sel = applies_[pol->uid] = computeApplies(*pol);
        affected.insert(affected.end(), sel.begin(), sel.end());
        came.push_back({t, pol.get()});
      }
    }
    std::unordered_set<std::uint32_t> went;
    for (const auto& [uid, sel] : applies_) {
      if (live.contains(uid)) continue;
      went.insert(uid);
      affected.insert(affected.end(), sel.begin(), sel.end());
    }
    std::erase_if(applies_, [&](const auto& kv) { return went.contains(kv.first); });
    std::sort(affected.begin(), affected.end());
    affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
    // The policies that went leave the applying lists while the old program still holds them.
    for (auto& lists : applying_) {
      for (size_t li : affected) {
        std::erase_if(lists[li], [&](const auto& tp) { return went.contains(tp.second->uid); });
      }
    }
    setProgram(prog);
    for (const auto& [t, pol] : came) {
      for (size_t li : applies_[pol->uid]) {
        for (int di = 0; di < 2; ++di) {
          if (!pol->applies_to[di]) continue;
          auto& list = applying_[di][li];
          std::pair<size_t, const LoweredPolicy*> tp{t, pol};
          list.insert(std::upper_bound(list.begin(), list.end(), tp, evaluatedBefore), tp);
        }
      }
    }
    return refresh(affected);
  }

  std::expected<void, Error> podLabelsChanged(std::uint32_t pod) {
    std::vector<size_t> changed = inv_.addrsOf(pod);
    std::vector<size_t> affected;
    if (isLocal(inv_.store().pods[pod])) {
      for (size_t slot : changed) {
        affected.push_back(local_of_slot_.at(slot));
        selectLocal(affected.back());
      }
    }
    // Its membership in every predicate, and so its class.
    for (size_t i : changed) {
      if (auto ok = remote_.addressChanged(i); !ok) return ok;
    }
    if (!affected.empty()) return refresh(affected);
    paintAndEmit();
    return {};
  }

  std::expected<void, Error> podsChanged(const std::vector<size_t>& removed,
                                         const std::vector<size_t>& added) {
    // Past a few addresses, one pass over the exact map beats editing it per address (each
    // edit moves half the sorted map on average).
    constexpr size_t kBatch = 8;
    if (removed.size() + added.size() > kBatch) remote_.beginBatch();
    std::vector<size_t> affected;  // local positions gone or taken
    for (size_t slot : removed) {
      remote_.addressRemoved(slot);
      auto it = local_of_slot_.find(slot);
      if (it == local_of_slot_.end()) continue;
      size_t li = it->second;
      local_of_slot_.erase(it);
      for (auto& [uid, sel] : applies_) {
        auto at = std::lower_bound(sel.begin(), sel.end(), li);
        if (at != sel.end() && *at == li) sel.erase(at);
      }
      std::erase(locals_by_ns_[podOf(li).ns], li);
      for (auto& lists : applying_) lists[li].clear();
      locals_[li] = kDeadLocal;
      free_locals_.push_back(li);
      endpoints_changed_ = true;
      affected.push_back(li);
    }
    for (size_t slot : added) {
      if (!inv_.live(slot)) continue;  // added, then removed again
      if (auto ok = remote_.addressAdded(slot); !ok) return ok;
      if (!isLocal(inv_.store().pods[inv_.addrs()[slot].pod])) continue;
      affected.push_back(addLocal(slot));
      selectLocal(affected.back());
    }
    remote_.endBatch();
    if (!affected.empty()) return refresh(affected);
    paintAndEmit();
    return {};
  }

  const NodeTable& table() const { return table_; }

 private:
  void clear() {
    std::string node = std::move(table_.node);
    table_ = NodeTable{};
    table_.node = std::move(node);
    attr_handles_.clear();
    locals_.clear();
    free_locals_.clear();
    local_of_slot_.clear();
    locals_by_ns_.clear();
    applies_.clear();
    for (auto& d : locals_state_) d.clear();
    for (auto& d : applying_) d.clear();
    for (auto& d : state_of_) d.clear();
    classes_changed_ = true;
    endpoints_changed_ = true;
    remote_.clear();
    outcomes_.clear();
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

  // A local address's position: a dead one's again, or a new one.
  size_t addLocal(size_t slot) {
    size_t li = locals_.size();
    if (free_locals_.empty()) {
      locals_.push_back(slot);
      for (auto& lists : applying_) lists.resize(locals_.size());
      for (auto& of : state_of_) of.resize(locals_.size(), kNoState);
    } else {
      li = free_locals_.back();
      free_locals_.pop_back();
      locals_[li] = slot;
    }
    auto& in_ns = locals_by_ns_[inv_.store().pods[inv_.addrs()[slot].pod].ns];
    in_ns.insert(std::lower_bound(in_ns.begin(), in_ns.end(), li), li);
    local_of_slot_.emplace(slot, li);
    endpoints_changed_ = true;
    return li;
  }
  bool dead(size_t li) const { return locals_[li] == kDeadLocal; }

  bool isLocal(const Pod& pod) const {
    return table_.node == kEveryNode || pod.node == table_.node;
  }

  // Whether policy `pol` applies to the local address at position `li`.
  bool selects(const LoweredPolicy& pol, size_t li) const {
    return (pol.ns.empty() || pol.ns == podOf(li).ns) && podSelected(*pol.applies, podOf(li));
  }

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
      for (size_t li = 0; li < locals_.size(); ++li) {
        if (!dead(li)) check(li);
      }
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
      case Scope::Kind::kEverything:
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

  // Selects local `li` against every policy afresh: applies_ and its applying lists.
  void selectLocal(size_t li) {
    for (auto& lists : applying_) lists[li].clear();
    for (size_t t = 0; t < prog_.policies.size(); ++t) {
      for (const auto& pol : prog_.policies[t]) {
        auto& sel = applies_[pol->uid];
        auto at = std::lower_bound(sel.begin(), sel.end(), li);
        bool was = at != sel.end() && *at == li;
        bool now = selects(*pol, li);
        if (now && !was) sel.insert(at, li);
        if (!now && was) sel.erase(at);
        if (!now) continue;
        for (int di = 0; di < 2; ++di) {
          if (pol->applies_to[di]) applying_[di][li].push_back({t, pol.get()});
        }
      }
    }
  }

  // Local li's program in direction `di`, as its identity: the handles of the rules that apply
  // to it, in evaluation order, each tier closed by a marker.
  std::vector<std::uint64_t> signature(int di, size_t li) const {
    const auto& pols = applying_[di][li];
    std::vector<std::uint64_t> sig;
    for (size_t k = 0; k < pols.size(); ++k) {
      const auto& [t, pol] = pols[k];
      const auto& rules = pol->rules[di];
      for (std::uint32_t r = 0; r < rules.size(); ++r) {
        if (inv_.contains(*rules[r].local, addrOf(li)))
          sig.push_back(attributionHandle(pol->uid, r));
      }
      if (k + 1 == pols.size() || pols[k + 1].first != t) sig.push_back(kTierMarker | t);
    }
    return sig;
  }

  // Every local's applying lists and class afresh (classes whose program is unchanged keep
  // their painting).
  void rebuildLocalPrograms() {
    std::vector<size_t> all;
    for (size_t li = 0; li < locals_.size(); ++li) {
      if (!dead(li)) all.push_back(li);
    }
    for (int di = 0; di < 2; ++di) applying_[di] = applying(di);
    regroup(all);
  }

  // Locals `affected` (positions; dead ones leave) find their class again from their applying
  // lists: the class with their program if there is one (even one they alone were in), a new
  // one otherwise. Classes left empty go; the rest keep their painting.
  void regroup(const std::vector<size_t>& affected) {
    for (Direction d : {Direction::kIngress, Direction::kEgress}) {
      const int di = static_cast<int>(d);
      auto& states = locals_state_[di];
      auto& of = state_of_[di];
      for (size_t li : affected) {
        if (of[li] == kNoState) continue;
        std::erase(states[of[li]].members, li);
        of[li] = kNoState;
      }
      bool regrouped = false;
      for (size_t li : affected) {
        if (dead(li) || of[li] != kNoState) continue;  // gone, or listed twice
        std::vector<std::uint64_t> sig = signature(di, li);
        Family fam = addrOf(li).family();
        auto it = std::find_if(states.begin(), states.end(), [&](const LocalState& st) {
          return st.family == fam && st.sig == sig;
        });
        if (it == states.end()) {
          states.push_back(makeLocal(d, fam, std::move(sig), li, applying_[di][li]));
          it = std::prev(states.end());
          regrouped = true;
        }
        it->members.push_back(li);
        of[li] = static_cast<size_t>(it - states.begin());
      }
      regrouped |=
          std::erase_if(states, [](const LocalState& st) { return st.members.empty(); }) != 0;
      if (regrouped) {
        // Class ids follow a content-based order, the same whatever the history of changes.
        std::sort(states.begin(), states.end(), [](const LocalState& a, const LocalState& b) {
          return std::tie(a.family, a.order_key) < std::tie(b.family, b.order_key);
        });
        for (size_t k = 0; k < states.size(); ++k) {
          for (size_t li : states[k].members) of[li] = k;
        }
        classes_changed_ = true;
      }
      members_changed_ |= !affected.empty();
    }
  }

  LocalState makeLocal(Direction d, Family fam, std::vector<std::uint64_t> sig, size_t li,
                       const std::vector<std::pair<size_t, const LoweredPolicy*>>& pols) {
    const int di = static_cast<int>(d);
    LocalState st;
    st.sig = std::move(sig);
    st.family = fam;
    LocalProgram& lp = st.prog;
    for (size_t k = 0; k < pols.size(); ++k) {
      const auto& [t, pol] = pols[k];
      const auto& rules = pol->rules[di];
      for (std::uint32_t r = 0; r < rules.size(); ++r) {
        if (!inv_.contains(*rules[r].local, addrOf(li))) continue;
        const LoweredRule& rule = rules[r];
        lp.rules.push_back({rule.action, remote_.predicate(rule.peer), &rule.l4,
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
    for (std::uint32_t pos = 0; pos < lp.rules.size(); ++pos) {
      std::uint32_t p = lp.rules[pos].pred;
      if (p >= st.pred_slot.size()) st.pred_slot.resize(p + 1, 0);
      if (st.pred_slot[p] == 0) {
        st.rules_of_pred.emplace_back();
        st.pred_slot[p] = static_cast<std::uint32_t>(st.rules_of_pred.size());
      }
      st.rules_of_pred[st.pred_slot[p] - 1].push_back(pos);
    }
    std::vector<Segment> none = paint(lp, {{0, 255}}, {}, kNoOutcome, outcomes_);
    st.default_outcome = none.front().outcome;
    return st;
  }

  // Classes no atom has any more: their painting goes with them.
  void dropDeadClasses() {
    std::vector<std::uint32_t> dropped = remote_.dropDead();
    if (dropped.empty()) return;
    std::vector<bool> gone(remote_.size(), false);
    for (std::uint32_t c : dropped) gone[c] = true;
    for (auto& dir : locals_state_) {
      for (LocalState& st : dir) {
        if (dropped.size() < st.segs.size() / 4) {
          for (std::uint32_t c : dropped) forgetPair(st, c);
          continue;
        }
        // Many classes went (a split emptied them): one pass over the local class's paintings.
        for (auto it = st.segs.begin(); it != st.segs.end();) {
          if (!gone[it->first]) {
            ++it;
            continue;
          }
          rowsChanged(st, it->first);
          it = st.segs.erase(it);
        }
      }
    }
  }

  // After the programs of locals `affected` may have changed.
  std::expected<void, Error> refresh(const std::vector<size_t>& affected) {
    regroup(affected);
    if (auto ok = remote_.refine(); !ok) return ok;
    paintAndEmit();
    return {};
  }

  // The classes made since the last change painted (before the dead ones go: a class made by a
  // split may take its painting from a parent that died in the split), the dead dropped, the
  // table written.
  void paintAndEmit() {
    paintDirty();
    dropDeadClasses();
    emit();
    if (remote_.wantsCompaction()) compactClasses();
  }

  // ---- painting ----

  void paintPair(LocalState& st, std::uint32_t c) {
    const RemoteGroup& rc = remote_[c];
    // Only a painting that differs makes the state's rows stale (a class repainted the same,
    // as most are after a pod moves between classes, costs emit() nothing).
    auto forget = [&] { forgetPair(st, c); };
    if (rc.family != st.family) return forget();
    std::vector<std::uint32_t>& positions = positions_;
    positions.clear();
    for (std::uint32_t p : rc.preds) {
      if (p >= st.pred_slot.size()) break;  // predicates made after this class's program
      if (std::uint32_t slot = st.pred_slot[p]; slot != 0) {
        const auto& at = st.rules_of_pred[slot - 1];
        positions.insert(positions.end(), at.begin(), at.end());
      }
    }
    if (positions.empty()) return forget();  // no rule names this class: the default applies
    std::sort(positions.begin(), positions.end());
    auto it = st.cache.find(positions);
    if (it == st.cache.end()) {
      it = st.cache
               .emplace(positions,
                        paint(st.prog, st.prog.psegs, positions, st.default_outcome, outcomes_))
               .first;
    }
    if (it->second.empty()) return forget();
    setPair(st, c, &it->second);
  }

  // The pair (st, c) paints as `segs` (a painting of st's cache) now.
  void setPair(LocalState& st, std::uint32_t c, const std::vector<Segment>* segs) {
    auto [at, fresh] = st.segs.try_emplace(c, segs);
    if (!fresh) {
      if (at->second == segs) return;
      bool same = *at->second == *segs;
      at->second = segs;
      if (same) return;
    }
    rowsChanged(st, c);
  }

  // The remote classes renumbered densely (dropped ones keep their index until then): each
  // painting follows its class to its new index.
  void compactClasses() {
    std::vector<std::uint32_t> to = remote_.compact();
    for (auto& dir : locals_state_) {
      for (LocalState& st : dir) {
        std::unordered_map<std::uint32_t, const std::vector<Segment>*> segs;
        segs.reserve(st.segs.size());
        for (const auto& [c, painting] : st.segs) segs.emplace(to[c], painting);
        st.segs = std::move(segs);
      }
    }
  }

  // Whether a rule of st's program names remote predicate `p`.
  static bool names(const LocalState& st, std::uint32_t p) {
    return p < st.pred_slot.size() && st.pred_slot[p] != 0;
  }

  // The pair (st, c) paints as the default now.
  void forgetPair(LocalState& st, std::uint32_t c) {
    if (st.segs.erase(c) != 0) rowsChanged(st, c);
  }

  // The rows of remote class `c` in `st` are to be written again (before its id can change:
  // a class's id is freed only when the class is dropped, in the same change).
  void rowsChanged(LocalState& st, std::uint32_t c) {
    if (!st.rows_stale) st.stale.push_back({remote_[c].id, c});
  }

  void paintDirty() {
    const auto& splits = remote_.splits();
    for (auto& dir : locals_state_) {
      for (LocalState& st : dir) {
        if (!st.painted) {
          for (std::uint32_t c = 0; c < remote_.size(); ++c) {
            if (remote_[c].alive()) paintPair(st, c);
          }
          st.painted = true;
          continue;
        }
        // Ascending: a split's parent, if made in this change too, is painted before it.
        for (std::uint32_t c : remote_.dirty()) {
          auto split = splits.find(c);
          if (split == splits.end() || names(st, split->second.pred)) {
            paintPair(st, c);
            continue;
          }
          if (auto was = st.segs.find(split->second.parent); was != st.segs.end()) {
            setPair(st, c, was->second);
          } else {
            forgetPair(st, c);
          }
        }
      }
    }
    remote_.clearDirty();
  }

  // ---- the table ----

  // Brings `st.rows` in step with `st.segs`: whole, or just the classes in `st.stale`.
  void refreshRows(LocalState& st) {
    // The rows to write: every painted class's when the whole is stale, else the stale classes
    // still painted (under their ids now), merged in one pass with the rows whose ids are not
    // stale. (Within one change no live class holds a dropped class's id.)
    std::vector<std::pair<RemoteClassId, const std::vector<Segment>*>> fresh;
    std::vector<RemoteClassId> gone;
    if (st.rows_stale) {
      for (const auto& [c, segs] : st.segs) fresh.push_back({remote_[c].id, segs});
      st.rows.clear();
    } else {
      for (const auto& [id, c] : st.stale) {
        gone.push_back(id);
        if (auto it = st.segs.find(c); it != st.segs.end()) {
          fresh.push_back({remote_[c].id, it->second});
        }
      }
      std::sort(gone.begin(), gone.end());
    }
    auto byId = [](const auto& a, const auto& b) { return a.first < b.first; };
    std::sort(fresh.begin(), fresh.end(), byId);
    fresh.erase(std::unique(fresh.begin(), fresh.end(),
                            [](const auto& a, const auto& b) { return a.first == b.first; }),
                fresh.end());
    std::vector<Entry> rows;
    rows.reserve(st.rows.size() + fresh.size());
    auto next = fresh.begin();
    auto writeUpTo = [&](std::uint32_t bound) {  // the fresh classes with ids below `bound`
      for (; next != fresh.end() && next->first < bound; ++next) {
        for (const Segment& s : *next->second) {
          rows.push_back({0, next->first, s.proto_lo, s.proto_hi, s.port_lo, s.port_hi, s.outcome});
        }
      }
    };
    for (const Entry& e : st.rows) {
      if (std::binary_search(gone.begin(), gone.end(), e.remote_class)) continue;
      writeUpTo(e.remote_class);
      rows.push_back(e);
    }
    writeUpTo(~0U);
    st.rows = std::move(rows);
    st.rows_stale = false;
    st.stale.clear();
  }

  // Writes what changed since the last emit(): the remote maps always (RemoteClassifier keeps
  // its own account), the endpoints when a local address came or went, the classes, entries,
  // outcomes and attributions when a local class or a painting changed. A pod relabelled
  // within its classes costs no pass over the entries.
  void emit() {
    remote_.emit();
    if (endpoints_changed_) emitEndpoints();
    bool changed = classes_changed_;
    for (auto& dir : locals_state_) {
      for (LocalState& st : dir) {
        if (!st.rows_stale && st.stale.empty()) continue;
        refreshRows(st);
        changed = true;
      }
    }
    if (changed) {
      emitClasses();
    } else if (members_changed_) {
      for (int di = 0; di < 2; ++di) {
        for (size_t k = 0; k < locals_state_[di].size(); ++k) {
          table_.directions[di].classes[k].addrs = addrsOf(locals_state_[di][k]);
        }
      }
    }
    classes_changed_ = false;
    members_changed_ = false;
  }

  std::vector<Addr> addrsOf(const LocalState& st) const {
    std::vector<Addr> addrs;
    for (size_t li : st.members) addrs.push_back(addrOf(li));
    std::sort(addrs.begin(), addrs.end());
    return addrs;
  }

  void emitEndpoints() {
    table_.endpoints.clear();
    std::map<std::string, LocalEndpoint> eps;
    for (size_t li = 0; li < locals_.size(); ++li) {
      if (dead(li)) continue;
      const Pod& pod = podOf(li);
      LocalEndpoint& ep = eps[pod.key()];
      ep.pod = pod.key();
      ep.iface = pod.hostVeth();
      ep.addrs.push_back(addrOf(li));
    }
    for (auto& [key, ep] : eps) {
      std::sort(ep.addrs.begin(), ep.addrs.end());  // positions are not in address order
      table_.endpoints.push_back(std::move(ep));
    }
    endpoints_changed_ = false;
  }

  void emitClasses() {
    std::unordered_map<AttributionHandle, std::uint32_t> attr_ids;
    std::vector<std::uint32_t> outcome_ids(outcomes_.size(), ~0U);
    // The last table's attributions, to move rather than copy (a handle's attribution never
    // changes: a changed policy is lowered under a new uid).
    std::unordered_map<AttributionHandle, Attribution> previous;
    for (size_t k = 0; k < attr_handles_.size(); ++k) {
      previous.emplace(attr_handles_[k], std::move(table_.attributions[k]));
    }
    attr_handles_.clear();
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
            attr_handles_.push_back(h);
            if (auto was = previous.find(h); was != previous.end()) {
              table_.attributions.push_back(std::move(was->second));
            } else {
              const Attribution* a = findAttribution(h);
              table_.attributions.push_back(a ? *a : Attribution{});
            }
          }
          return ai->second;
        };
        Outcome o{allow, attrId(attr), {}};
        for (AttributionHandle l : logs) o.logs.push_back(attrId(l));
        table_.outcomes.push_back(std::move(o));
      }
      return id;
    };
    for (Direction d : {Direction::kIngress, Direction::kEgress}) {
      const int di = static_cast<int>(d);
      DirectionTable& dt = table_.directions[di];
      dt.classes.clear();
      size_t rows = 0;
      for (const LocalState& st : locals_state_[di]) rows += st.rows.size();
      dt.entries.resize(rows);
      Entry* out = dt.entries.data();
      std::uint32_t next_id = 1;
      for (LocalState& st : locals_state_[di]) {
        LocalClass lc{next_id++, st.family, outcomeId(st.default_outcome), addrsOf(st)};
        for (const Entry& e : st.rows) {
          std::uint32_t o = outcome_ids[e.outcome];  // interned already, mostly
          *out++ = {lc.id,
                    e.remote_class,
                    e.proto_lo,
                    e.proto_hi,
                    e.port_lo,
                    e.port_hi,
                    o != ~0U ? o : outcomeId(e.outcome)};
        }
        dt.classes.push_back(std::move(lc));
      }
    }
  }

  const Inventory& inv_;
  Program prog_;
  std::unordered_map<std::uint32_t, const LoweredPolicy*> by_uid_;
  NodeTable table_;
  std::vector<AttributionHandle> attr_handles_;  // of table_.attributions, by index
  // Local addresses by position (slots of inv_.addrs()); a position never moves, a removed
  // address's is dead until an added one takes it.
  static constexpr size_t kDeadLocal = ~size_t{0};
  std::vector<size_t> locals_;
  std::unordered_map<size_t, size_t> local_of_slot_;  // slot → position
  std::vector<size_t> free_locals_;                   // dead positions, for reuse
  std::unordered_map<std::uint32_t, std::vector<size_t>>
      applies_;  // by policy uid: locals it selects
  std::unordered_map<std::string, std::vector<size_t>> locals_by_ns_;
  std::vector<LocalState> locals_state_[2];
  // Per direction, by local position: the policies that apply to it in evaluation order (tier,
  // policy), and its class (index into locals_state_).
  std::vector<std::vector<std::pair<size_t, const LoweredPolicy*>>> applying_[2];
  static constexpr size_t kNoState = ~size_t{0};
  std::vector<size_t> state_of_[2];
  bool classes_changed_ = true;    // locals_state_ regrouped since the last emit()
  bool members_changed_ = true;    // a local moved between classes since the last emit()
  bool endpoints_changed_ = true;  // a local address came or went since the last emit()
  RemoteClassifier remote_;
  OutcomeInterner outcomes_;
  std::vector<std::uint32_t> positions_;  // paintPair's scratch
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
std::expected<void, Error> NodeCompiler::podsChanged(const std::vector<size_t>& removed,
                                                     const std::vector<size_t>& added) {
  return s_->podsChanged(removed, added);
}
const NodeTable& NodeCompiler::table() const { return s_->table(); }

std::expected<NodeTable, Error> compileNode(const Program& program, const Inventory& inventory,
                                            const std::string& node) {
  NodeCompiler c(inventory, node);
  if (auto r = c.build(program); !r) return std::unexpected(r.error());
  return c.table();
}

}  // namespace zonewall::compiler
