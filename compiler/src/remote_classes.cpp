#include "remote_classes.h"

#include <fmt/format.h>

#include <algorithm>
#include <string_view>
#include <unordered_map>

#include "zonewall/base/hash.h"

namespace zonewall::compiler {

void RemoteClassifier::clear() {
  table_.remote_exact.clear();
  preds_.clear();
  pred_index_.clear();
  pred_sets_.clear();
  new_preds_.clear();
  classes_.clear();
  class_index_.clear();
  used_ids_.clear();
  dirty_.clear();
  splits_.clear();
  dead_.clear();
  listed_.clear();
  pod_class_.clear();
  cuts_.clear();
  iv_class_.clear();
  batch_ = false;
}

std::uint32_t RemoteClassifier::predicate(const AddrExprPtr& e) {
  auto [it, fresh] = pred_index_.emplace(e->key, static_cast<std::uint32_t>(preds_.size()));
  if (fresh) {
    preds_.push_back(e);
    pred_sets_.push_back(inv_.evaluate(*e));
    new_preds_.push_back(it->second);
  }
  return it->second;
}

// Pod address `i`'s membership in every predicate (its bits set and cleared), and its class.
std::expected<std::uint32_t, Error> RemoteClassifier::classify(size_t i) {
  Addr a = inv_.addrs()[i].addr;
  std::vector<std::uint32_t> members;
  for (std::uint32_t p = 0; p < preds_.size(); ++p) {
    if (inv_.contains(*preds_[p], a)) {
      pred_sets_[p].pods.set(i);
      members.push_back(p);
    } else {
      pred_sets_[p].pods.reset(i);
    }
  }
  return classFor(a.family(), members);
}

std::expected<void, Error> RemoteClassifier::addressChanged(size_t i) {
  auto cls = classify(i);
  if (!cls) {
    return std::unexpected(cls.error());
  }
  movePod(i, *cls);
  return {};
}

std::expected<void, Error> RemoteClassifier::addressAdded(size_t i) {
  if (pod_class_.size() <= i) pod_class_.resize(i + 1, kNoClass);
  for (AddrSet& set : pred_sets_) {
    if (set.pods.size() <= i) set.pods.resize(inv_.addrs().size());
  }
  auto cls = classify(i);
  if (!cls) {
    return std::unexpected(cls.error());
  }
  pod_class_[i] = *cls;
  ++classes_[*cls].pod_members;
  if (!batch_) updateExact(i);
  return {};
}

void RemoteClassifier::endBatch() {
  if (batch_) rebuildExact();
  batch_ = false;
}

void RemoteClassifier::addressRemoved(size_t i) {
  if (i >= pod_class_.size() || pod_class_[i] == kNoClass) return;
  for (std::uint32_t p : classes_[pod_class_[i]].preds) pred_sets_[p].pods.reset(i);
  --classes_[pod_class_[i]].pod_members;
  pod_class_[i] = kNoClass;
  if (batch_) return;
  Addr a = inv_.addrs()[i].addr;
  auto& ex = table_.remote_exact;
  auto it =
      std::lower_bound(ex.begin(), ex.end(), a, [](const auto& e, Addr x) { return e.first < x; });
  if (it != ex.end() && it->first == a) ex.erase(it);
}

std::vector<std::uint32_t> RemoteClassifier::dropDead() {
  std::vector<std::uint32_t> dropped;
  for (std::uint32_t c = 0; c < classes_.size(); ++c) {
    if (classes_[c].alive() || dead_.contains(c)) {
      continue;
    }
    dead_.insert(c);
    dirty_.erase(c);
    class_index_.erase({classes_[c].family, classes_[c].preds});
    if (classes_[c].id != kNoRemoteClass) {
      used_ids_.erase({classes_[c].family, classes_[c].id});
    }
    dropped.push_back(c);
  }
  return dropped;
}

std::vector<std::uint32_t> RemoteClassifier::compact() {
  std::vector<std::uint32_t> to(classes_.size(), kNoClass);
  std::vector<RemoteGroup> kept;
  kept.reserve(classes_.size() - dead_.size());
  for (std::uint32_t c = 0; c < classes_.size(); ++c) {
    if (dead_.contains(c)) continue;
    to[c] = static_cast<std::uint32_t>(kept.size());
    kept.push_back(std::move(classes_[c]));
  }
  classes_ = std::move(kept);
  dead_.clear();
  for (auto& [key, c] : class_index_) c = to[c];
  for (std::uint32_t& c : pod_class_) {
    if (c != kNoClass) c = to[c];
  }
  for (std::uint32_t& c : iv_class_) c = to[c];
  for (std::uint32_t& c : listed_) c = to[c];
  return to;
}

std::expected<std::uint32_t, Error> RemoteClassifier::classFor(
    Family fam, const std::vector<std::uint32_t>& preds) {
  auto key = std::make_pair(fam, preds);
  if (auto it = class_index_.find(key); it != class_index_.end()) return it->second;
  RemoteGroup c{fam, preds, kNoRemoteClass, 0, 0};
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
                    fmt::format("node {}: more than 65535 remote address classes", table_.node), 0);
      }
      id = id % 65535 + 1;
    }
    c.id = static_cast<RemoteClassId>(id);
    used_ids_.insert({fam, c.id});
  }
  auto idx = static_cast<std::uint32_t>(classes_.size());
  classes_.push_back(std::move(c));
  class_index_.emplace(std::move(key), idx);
  dirty_.insert(idx);
  return idx;
}

void RemoteClassifier::movePod(size_t i, std::uint32_t to) {
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
bool RemoteClassifier::needsExact(RemoteClassId pod_id, RemoteClassId interval_id) {
  return pod_id != kNoRemoteClass || pod_id != interval_id;
}

void RemoteClassifier::updateExact(size_t i) {
  Addr a = inv_.addrs()[i].addr;
  RemoteClassId pod_id = classes_[pod_class_[i]].id;
  RemoteClassId iv_id = classes_[iv_class_[intervalOf(a.v)]].id;
  auto& ex = table_.remote_exact;
  auto it =
      std::lower_bound(ex.begin(), ex.end(), a, [](const auto& e, Addr x) { return e.first < x; });
  bool present = it != ex.end() && it->first == a;
  if (!needsExact(pod_id, iv_id)) {
    if (present) ex.erase(it);
  } else if (present) {
    it->second = pod_id;
  } else {
    ex.insert(it, {a, pod_id});
  }
}

size_t RemoteClassifier::intervalOf(U128 v) const {
  return static_cast<size_t>(std::upper_bound(cuts_.begin(), cuts_.end(), v) - cuts_.begin()) - 1;
}

// Classifies every atom from scratch (build()).
std::expected<void, Error> RemoteClassifier::classifyAll() {
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
    if (!inv_.live(i)) {
      pod_class_[i] = kNoClass;
      continue;
    }
    std::uint32_t g = group[i];
    if (cls_of_group[g] == ~0U) {
      auto c = classFor(group_family[g], group_preds[g]);
      if (!c) return std::unexpected(c.error());
      cls_of_group[g] = *c;
    }
    pod_class_[i] = cls_of_group[g];
    ++classes_[pod_class_[i]].pod_members;
  }
  if (auto ok = classifyIntervals(); !ok) return ok;
  rebuildExact();
  new_preds_.clear();
  return {};
}

// The exact map from scratch: every pod address whose class needs listing.
void RemoteClassifier::rebuildExact() {
  const auto& addrs = inv_.addrs();
  table_.remote_exact.clear();
  for (std::uint32_t i : inv_.byAddress()) {  // the map is sorted by address
    RemoteClassId pod_id = classes_[pod_class_[i]].id;
    if (needsExact(pod_id, classes_[iv_class_[intervalOf(addrs[i].addr.v)]].id)) {
      table_.remote_exact.push_back({addrs[i].addr, pod_id});
    }
  }
}

// Intervals: cut the space wherever a predicate's range starts or ends. Few, so always
// recomputed whole.
std::expected<void, Error> RemoteClassifier::classifyIntervals() {
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
    if (!c) return std::unexpected(c.error());
    iv_class_[k] = *c;
    ++classes_[*c].interval_members;
  }
  return {};
}

// New predicates split the classes they cut.
std::expected<void, Error> RemoteClassifier::refine() {
  if (new_preds_.empty()) return {};
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
        size_t made = classes_.size();
        auto c = classFor(classes_[from].family, preds);
        if (!c) return std::unexpected(c.error());
        if (*c >= made) splits_.emplace(*c, Split{from, p});
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
    if (auto ok = classifyIntervals(); !ok) return ok;
  }
  rebuildExact();  // every pod address may now differ from its interval's class
  return {};
}

void RemoteClassifier::emit() const {
  // The classes the table lists, in its order (most changes leave it as it was).
  std::vector<std::uint32_t> listed;
  for (std::uint32_t c = 0; c < classes_.size(); ++c) {
    if (classes_[c].alive() && classes_[c].id != kNoRemoteClass) listed.push_back(c);
  }
  std::sort(listed.begin(), listed.end(), [&](std::uint32_t a, std::uint32_t b) {
    return std::tie(classes_[a].family, classes_[a].id) <
           std::tie(classes_[b].family, classes_[b].id);
  });
  if (listed != listed_ || table_.remote_classes.size() != listed_.size()) {
    table_.remote_classes.clear();
    for (std::uint32_t c : listed) {
      const RemoteGroup& rc = classes_[c];
      table_.remote_classes.push_back({rc.id, rc.family, rc.preds});
    }
    listed_ = std::move(listed);
  }
  for (size_t p = table_.predicates.size(); p < preds_.size(); ++p) {
    table_.predicates.push_back(preds_[p]->key);
  }
  table_.remote_ranges.clear();
  for (size_t k = 0; k < cuts_.size(); ++k) {
    RemoteClassId id = classes_[iv_class_[k]].id;
    U128 hi = k + 1 < cuts_.size() ? cuts_[k + 1] - 1 : kU128Max;
    if (id == kNoRemoteClass) {
      continue;
    }
    auto& rr = table_.remote_ranges;
    if (!rr.empty() && rr.back().second == id && rr.back().first.hi + 1 == cuts_[k]) {
      rr.back().first.hi = hi;
    } else {
      rr.push_back({Range{cuts_[k], hi}, id});
    }
  }
}

}  // namespace zonewall::compiler
