// compileNode: resolve → classify remote addresses → classify local endpoints → paint.
#include "zonewall/compiler/compile.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <string_view>
#include <unordered_map>

namespace zonewall::compiler {
namespace {

using namespace policy;  // NOLINT

std::uint64_t fnv1a(std::string_view s, std::uint64_t seed = 1469598103934665603ULL) {
  std::uint64_t h = seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64 finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

struct Hash128 {
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  void add(const Hash128& o) {
    a ^= o.a;
    b ^= o.b;
  }
  friend bool operator==(const Hash128&, const Hash128&) = default;
  friend auto operator<=>(const Hash128&, const Hash128&) = default;
};

Hash128 seedOf(std::string_view key) {
  return Hash128{mix(fnv1a(key)), mix(fnv1a(key, 0x84222325cbf29ce4ULL) ^ 0x9e3779b97f4a7c15ULL)};
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
  std::uint32_t attribution;
};

struct TierSlot {
  Action default_action;
  std::uint32_t end_attribution;
  std::uint32_t begin;  // rules [begin, end) of the program
  std::uint32_t end;
};

// What a local class evaluates, in order.
struct LocalProgram {
  std::vector<TierSlot> tiers;  // only the tiers that select the endpoint
  std::vector<ProgRule> rules;
  std::uint32_t after_tiers;  // attribution when nothing decided (no policy / all passed)
};

// A run of destination ports in one protocol segment while painting.
struct Cell {
  std::uint16_t lo;
  std::uint16_t hi;
  enum : std::uint8_t { kOpen, kPassed, kDecided } status;
  bool allow;
  std::uint32_t attribution;
  std::vector<std::uint32_t> logs;
};

struct Segment {
  Protocol proto_lo;
  Protocol proto_hi;
  std::uint16_t port_lo;
  std::uint16_t port_hi;
  std::uint32_t outcome;
};

class NodeCompiler {
 public:
  NodeCompiler(const Program& prog, const Inventory& inv, const std::string& node)
      : prog_(prog), inv_(inv) {
    table_.node = node;
  }

  std::expected<NodeTable, Error> run() {
    collectLocals();
    resolvePolicies();
    buildLocalPrograms();
    evaluatePredicates();
    if (auto err = classifyRemotes()) return std::unexpected(*err);
    for (Direction d : {Direction::kIngress, Direction::kEgress}) paintDirection(d);
    compactAttributions();
    return std::move(table_);
  }

 private:
  // ---- locals and their programs ----

  void collectLocals() {
    const auto& addrs = inv_.addrs();
    for (size_t i = 0; i < addrs.size(); ++i) {
      if (inv_.store().pods[addrs[i].pod].node == table_.node) locals_.push_back(i);
    }
  }

  // applies_[tier][policy] = which locals the policy selects (by position in locals_).
  void resolvePolicies() {
    std::map<std::string, std::vector<size_t>> by_ns;
    for (size_t li = 0; li < locals_.size(); ++li) {
      by_ns[podOf(li).ns].push_back(li);
    }
    applies_.resize(prog_.policies.size());
    for (size_t t = 0; t < prog_.policies.size(); ++t) {
      for (const LoweredPolicy& pol : prog_.policies[t]) {
        std::vector<bool> sel(locals_.size(), false);
        auto check = [&](size_t li) { sel[li] = podSelected(*pol.applies, podOf(li)); };
        if (!pol.ns.empty()) {
          if (auto it = by_ns.find(pol.ns); it != by_ns.end()) {
            for (size_t li : it->second) check(li);
          }
        } else {
          for (size_t li = 0; li < locals_.size(); ++li) check(li);
        }
        applies_[t].push_back(std::move(sel));
      }
    }
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
    if (fresh) preds_.push_back(e);
    return it->second;
  }

  void buildLocalPrograms() {
    for (Direction d : {Direction::kIngress, Direction::kEgress}) {
      const int di = static_cast<int>(d);
      std::map<std::pair<Family, std::vector<std::uint32_t>>, size_t> by_sig;
      for (size_t li = 0; li < locals_.size(); ++li) {
        // Signature: the tiers and rules that apply to this local address, in order.
        std::vector<std::uint32_t> sig;
        LocalProgram lp;
        std::uint32_t rule_id = 0;
        for (size_t t = 0; t < prog_.policies.size(); ++t) {
          bool selected = false;
          TierSlot slot{prog_.tiers[t].default_action, prog_.tiers[t].end_attribution[di],
                        static_cast<std::uint32_t>(lp.rules.size()), 0};
          for (size_t j = 0; j < prog_.policies[t].size(); ++j) {
            const LoweredPolicy& pol = prog_.policies[t][j];
            if (!pol.applies_to[di] || !applies_[t][j][li]) {
              rule_id += static_cast<std::uint32_t>(pol.rules[di].size());
              continue;
            }
            selected = true;
            for (const LoweredRule& r : pol.rules[di]) {
              if (inv_.contains(*r.local, addrOf(li))) {
                sig.push_back(rule_id);
                lp.rules.push_back({r.action, predIndex(r.peer), &r.l4, r.attribution});
              }
              ++rule_id;
            }
          }
          if (selected) {
            sig.push_back(0x80000000U | static_cast<std::uint32_t>(t));  // tier marker
            slot.end = static_cast<std::uint32_t>(lp.rules.size());
            lp.tiers.push_back(slot);
          }
        }
        lp.after_tiers = lp.tiers.empty() ? prog_.no_policy[di] : prog_.passed_all[di];
        auto key = std::make_pair(addrOf(li).family(), sig);
        auto [it, fresh] = by_sig.emplace(key, programs_[di].size());
        if (fresh) {
          programs_[di].push_back(std::move(lp));
          members_[di].emplace_back();
        }
        members_[di][it->second].push_back(addrOf(li));
      }
      // Class ids follow the signature order: deterministic whatever the input order.
      for (const auto& [key, idx] : by_sig) class_order_[di].push_back(idx);
    }
  }

  // ---- remote classes ----

  void evaluatePredicates() {
    // Predicates in key order: the evaluation (and every id derived from it) is independent
    // of the order policies were loaded in.
    pred_sets_.reserve(preds_.size());
    for (const AddrExprPtr& p : preds_) pred_sets_.push_back(inv_.evaluate(*p));
  }

  std::optional<Error> classifyRemotes() {
    const auto& addrs = inv_.addrs();
    const size_t n = addrs.size();
    // Elementary intervals: cut the space wherever any predicate's range starts or ends.
    std::vector<U128> cuts{0, kV4MappedBase, kV4MappedLast + 1};
    for (const AddrSet& s : pred_sets_) {
      for (const Range& r : s.ranges.ranges()) {
        cuts.push_back(r.lo);
        if (r.hi != kU128Max) cuts.push_back(r.hi + 1);
      }
    }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    const size_t m = cuts.size();
    auto intervalOf = [&](U128 v) {
      return static_cast<size_t>(std::upper_bound(cuts.begin(), cuts.end(), v) - cuts.begin()) - 1;
    };

    // Group atoms (pod addresses and intervals) by a 128-bit hash of their membership: each
    // predicate XORs its seed into the atoms on one side of it (the smaller side of the pods,
    // the same side for intervals, so that a pod and an interval with equal membership hash
    // equal). Equal membership gives equal hashes; the chance that unequal ones collide is
    // about atoms^2 / 2^128.
    Hash128 v4_seed = seedOf("family:ipv4");
    Hash128 v6_seed = seedOf("family:ipv6");
    std::vector<Hash128> pod_hash(n);
    for (size_t i = 0; i < n; ++i) {
      pod_hash[i] = addrs[i].addr.family() == Family::kV4 ? v4_seed : v6_seed;
    }
    std::vector<Hash128> iv_hash(m);
    for (size_t k = 0; k < m; ++k) {
      iv_hash[k] = Addr{cuts[k]}.family() == Family::kV4 ? v4_seed : v6_seed;
    }
    std::vector<std::uint8_t> covered(m);
    for (size_t p = 0; p < preds_.size(); ++p) {
      const AddrSet& s = pred_sets_[p];
      Hash128 seed = seedOf(preds_[p]->key);
      bool inside = s.pods.count() * 2 <= n;
      if (inside) {
        s.pods.forEach([&](size_t i) { pod_hash[i].add(seed); });
      } else {
        Bitset out = s.pods;
        out.flip();
        out.forEach([&](size_t i) { pod_hash[i].add(seed); });
      }
      std::fill(covered.begin(), covered.end(), 0);
      for (const Range& r : s.ranges.ranges()) {
        for (size_t k = intervalOf(r.lo); k < m && cuts[k] <= r.hi; ++k) covered[k] = 1;
      }
      for (size_t k = 0; k < m; ++k) {
        if ((covered[k] != 0) == inside) iv_hash[k].add(seed);
      }
    }

    // Classes, each with its membership read off a representative.
    std::map<Hash128, size_t> class_of_hash;
    struct Cls {
      Family family;
      std::vector<std::uint32_t> preds;
      std::string canonical;
      RemoteClassId id = 0;
    };
    std::vector<Cls> classes;
    auto classFor = [&](const Hash128& h, Family fam, auto&& member) {
      auto [it, fresh] = class_of_hash.emplace(h, classes.size());
      if (fresh) {
        Cls c{fam, {}, fam == Family::kV4 ? "ipv4" : "ipv6", 0};
        for (std::uint32_t p = 0; p < preds_.size(); ++p) {
          if (member(p)) {
            c.preds.push_back(p);
            c.canonical += "|" + preds_[p]->key;
          }
        }
        classes.push_back(std::move(c));
      }
      return it->second;
    };
    std::vector<size_t> pod_class(n);
    for (size_t i = 0; i < n; ++i) {
      pod_class[i] = classFor(pod_hash[i], addrs[i].addr.family(),
                              [&](std::uint32_t p) { return pred_sets_[p].pods.test(i); });
    }
    std::vector<size_t> iv_class(m);
    for (size_t k = 0; k < m; ++k) {
      iv_class[k] = classFor(iv_hash[k], Addr{cuts[k]}.family(),
                             [&](std::uint32_t p) { return pred_sets_[p].ranges.contains(cuts[k]); });
    }

    // Ids: a hash of the membership, so that a class keeps its id when unrelated pods and
    // policies change (few entries change). Collisions probe to the next free id, in
    // canonical order, so the result stays deterministic.
    std::vector<size_t> order(classes.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return classes[a].canonical < classes[b].canonical; });
    std::set<std::pair<Family, RemoteClassId>> used;
    for (size_t ci : order) {
      Cls& c = classes[ci];
      if (c.preds.empty()) continue;  // id 0: named by no rule peer
      std::uint32_t id = static_cast<std::uint32_t>(fnv1a(c.canonical) % 65535) + 1;
      for (std::uint32_t tries = 0; used.contains({c.family, static_cast<RemoteClassId>(id)}); ++tries) {
        if (tries >= 65535) {
          return Error{Error::Code::kUnsupported,
                       fmt::format("node {}: more than 65535 remote address classes", table_.node),
                       {}, 0};
        }
        id = id % 65535 + 1;
      }
      c.id = static_cast<RemoteClassId>(id);
      used.insert({c.family, c.id});
    }
    for (size_t ci : order) {
      const Cls& c = classes[ci];
      if (c.id == kNoRemoteClass) continue;
      RemoteClass rc{c.id, c.family, {}};
      for (std::uint32_t p : c.preds) rc.predicates.push_back(preds_[p]->key);
      table_.remote_classes.push_back(std::move(rc));
    }
    std::sort(table_.remote_classes.begin(), table_.remote_classes.end(),
              [](const RemoteClass& a, const RemoteClass& b) {
                return std::tie(a.family, a.id) < std::tie(b.family, b.id);
              });

    // The maps: intervals merged where neighbours share a class; a pod address listed only
    // when its class differs from its interval's.
    for (size_t k = 0; k < m; ++k) {
      RemoteClassId id = classes[iv_class[k]].id;
      U128 hi = k + 1 < m ? cuts[k + 1] - 1 : kU128Max;
      if (id == kNoRemoteClass) continue;
      auto& rr = table_.remote_ranges;
      if (!rr.empty() && rr.back().second == id && rr.back().first.hi + 1 == cuts[k]) {
        rr.back().first.hi = hi;
      } else {
        rr.push_back({Range{cuts[k], hi}, id});
      }
    }
    for (size_t i = 0; i < n; ++i) {
      RemoteClassId id = classes[pod_class[i]].id;
      if (id != classes[iv_class[intervalOf(addrs[i].addr.v)]].id) {
        table_.remote_exact.push_back({addrs[i].addr, id});
      }
    }
    for (const Cls& c : classes) {
      remote_.push_back({c.family, c.id, c.preds});
    }
    return std::nullopt;
  }

  // ---- painting ----

  std::uint32_t internOutcome(bool allow, std::uint32_t attr, const std::vector<std::uint32_t>& logs) {
    auto key = std::make_tuple(allow, attr, logs);
    auto [it, fresh] = outcome_index_.emplace(key, static_cast<std::uint32_t>(table_.outcomes.size()));
    if (fresh) table_.outcomes.push_back(Outcome{allow, attr, logs});
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

  // Evaluates `lp` restricted to the rules at `positions` over the whole protocol × port
  // space; returns the segments that differ from `default_outcome`.
  std::vector<Segment> evaluate(const LocalProgram& lp, const std::vector<std::pair<Protocol, Protocol>>& psegs,
                                const std::vector<std::uint32_t>& positions,
                                std::uint32_t default_outcome) {
    std::vector<std::vector<Cell>> grid(psegs.size());
    for (auto& cells : grid) cells = {Cell{0, 65535, Cell::kOpen, false, 0, {}}};
    auto anyOpen = [&](std::uint8_t status) {
      return std::any_of(grid.begin(), grid.end(), [&](const std::vector<Cell>& cells) {
        return std::any_of(cells.begin(), cells.end(), [&](const Cell& c) { return c.status == status; });
      });
    };
    size_t next = 0;
    for (const TierSlot& tier : lp.tiers) {
      for (; next < positions.size() && positions[next] < tier.end; ++next) {
        const ProgRule& rule = lp.rules[positions[next]];
        for (const L4Clause& cl : rule.l4->clauses) {
          for (size_t s = 0; s < psegs.size(); ++s) {
            if (psegs[s].first >= cl.proto_lo && psegs[s].second <= cl.proto_hi) {
              paint(grid[s], cl.ports, rule);
            }
          }
        }
        // Everything decided or passed: the tier's later rules cannot change anything.
        if (rule.action != Action::kLog && !anyOpen(Cell::kOpen)) {
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
      if (!anyOpen(Cell::kOpen)) break;  // all decided: later tiers cannot change anything
    }
    // Merge equal neighbours, then equal neighbouring protocol segments.
    std::vector<std::vector<std::tuple<std::uint16_t, std::uint16_t, std::uint32_t>>> rows(psegs.size());
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

  void paintDirection(Direction d) {
    const int di = static_cast<int>(d);
    DirectionTable& dt = table_.directions[di];
    std::uint32_t next_id = 1;
    for (size_t idx : class_order_[di]) {
      const LocalProgram& lp = programs_[di][idx];
      LocalClass lc;
      lc.id = next_id++;
      lc.addrs = members_[di][idx];
      std::sort(lc.addrs.begin(), lc.addrs.end());
      lc.family = lc.addrs.front().family();
      // Protocol segments: every protocol a clause names starts or ends one.
      std::set<int> cut{0, 256};
      for (const ProgRule& r : lp.rules) {
        for (const L4Clause& c : r.l4->clauses) {
          cut.insert(c.proto_lo);
          cut.insert(c.proto_hi + 1);
        }
      }
      std::vector<std::pair<Protocol, Protocol>> psegs;
      for (auto it = cut.begin(); std::next(it) != cut.end(); ++it) {
        psegs.push_back({static_cast<Protocol>(*it), static_cast<Protocol>(*std::next(it) - 1)});
      }
      // The default: what a peer that matches no rule gets.
      std::vector<Segment> none = evaluate(lp, {{0, 255}}, {}, kNoOutcome);
      lc.default_outcome = none.front().outcome;
      // Rules by predicate, to gather each remote class's matching rules quickly.
      std::unordered_map<std::uint32_t, std::vector<std::uint32_t>> rules_of_pred;
      for (std::uint32_t pos = 0; pos < lp.rules.size(); ++pos) {
        rules_of_pred[lp.rules[pos].pred].push_back(pos);
      }
      std::unordered_map<std::vector<std::uint32_t>, std::vector<Segment>, VecHash> cache;
      std::vector<std::pair<RemoteClassId, const std::vector<Segment>*>> per_class;
      for (const RemoteInfo& rc : remote_) {
        if (rc.family != lc.family) continue;
        std::vector<std::uint32_t> positions;
        for (std::uint32_t p : rc.preds) {
          if (auto it = rules_of_pred.find(p); it != rules_of_pred.end()) {
            positions.insert(positions.end(), it->second.begin(), it->second.end());
          }
        }
        if (positions.empty()) continue;  // no rule names this class: the default applies
        std::sort(positions.begin(), positions.end());
        auto it = cache.find(positions);
        if (it == cache.end()) {
          std::vector<Segment> segs = evaluate(lp, psegs, positions, lc.default_outcome);
          it = cache.emplace(positions, std::move(segs)).first;
        }
        per_class.push_back({rc.id, &it->second});
      }
      for (const auto& [rid, segs] : per_class) {
        for (const Segment& s : *segs) {
          dt.entries.push_back({lc.id, rid, s.proto_lo, s.proto_hi, s.port_lo, s.port_hi, s.outcome});
        }
      }
      dt.classes.push_back(std::move(lc));
    }
    std::sort(dt.entries.begin(), dt.entries.end(), [](const Entry& a, const Entry& b) {
      return std::tie(a.local_class, a.remote_class, a.proto_lo, a.port_lo) <
             std::tie(b.local_class, b.remote_class, b.proto_lo, b.port_lo);
    });
  }

  // Keep only the attributions the table uses, renumbered in program order.
  void compactAttributions() {
    std::set<std::uint32_t> used;
    for (const Outcome& o : table_.outcomes) {
      used.insert(o.attribution);
      used.insert(o.logs.begin(), o.logs.end());
    }
    std::map<std::uint32_t, std::uint32_t> remap;
    for (std::uint32_t a : used) {
      remap[a] = static_cast<std::uint32_t>(table_.attributions.size());
      table_.attributions.push_back(prog_.attributions[a]);
    }
    for (Outcome& o : table_.outcomes) {
      o.attribution = remap[o.attribution];
      for (auto& l : o.logs) l = remap[l];
    }
  }

  static constexpr std::uint32_t kNoOutcome = ~0U;

  struct RemoteInfo {
    Family family;
    RemoteClassId id;
    std::vector<std::uint32_t> preds;
  };

  const Program& prog_;
  const Inventory& inv_;
  NodeTable table_;
  std::vector<size_t> locals_;  // indices into inv_.addrs()
  std::vector<std::vector<std::vector<bool>>> applies_;
  std::vector<AddrExprPtr> preds_;
  std::unordered_map<std::string, std::uint32_t> pred_index_;
  std::vector<AddrSet> pred_sets_;
  std::vector<RemoteInfo> remote_;
  std::vector<LocalProgram> programs_[2];
  std::vector<std::vector<Addr>> members_[2];
  std::vector<size_t> class_order_[2];
  std::map<std::tuple<bool, std::uint32_t, std::vector<std::uint32_t>>, std::uint32_t> outcome_index_;
};

}  // namespace

std::expected<NodeTable, Error> compileNode(const Program& program, const Inventory& inventory,
                                            const std::string& node) {
  return NodeCompiler(program, inventory, node).run();
}

}  // namespace zonewall::compiler
