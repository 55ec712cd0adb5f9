#include "painter.h"

#include <algorithm>

namespace zonewall::compiler {
namespace {

using policy::Action;

// A run of destination ports in one protocol segment while painting.
struct Cell {
  std::uint16_t lo;
  std::uint16_t hi;
  enum : std::uint8_t { kOpen, kPassed, kDecided } status;
  bool allow;
  AttributionHandle attribution;
  std::vector<AttributionHandle> logs;
};

// Paints `rule` on the open cells of one row that `ports` cover, splitting cells at the
// ports' edges. Cells and ports both ascend: one pass over each.
void paintRule(std::vector<Cell>& cells, const std::vector<PortRange>& ports,
               const ProgRule& rule) {
  std::vector<Cell> out;
  out.reserve(cells.size() + 2 * ports.size());
  size_t first = 0;  // the first port range that does not end before the current cell
  for (Cell& c : cells) {
    while (first < ports.size() && ports[first].hi < c.lo) ++first;
    if (c.status != Cell::kOpen) {
      out.push_back(std::move(c));
      continue;
    }
    std::uint32_t pos = c.lo;
    for (size_t i = first; i < ports.size() && ports[i].lo <= c.hi; ++i) {
      const PortRange& pr = ports[i];
      if (pr.hi < pos) continue;
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

}  // namespace

std::uint32_t OutcomeInterner::intern(bool allow, AttributionHandle attribution,
                                      const std::vector<AttributionHandle>& logs) {
  auto key = std::make_tuple(allow, attribution, logs);
  auto [it, fresh] = index_.emplace(key, static_cast<std::uint32_t>(outcomes_.size()));
  if (fresh) {
    outcomes_.push_back(std::move(key));
  }
  return it->second;
}

void OutcomeInterner::clear() {
  outcomes_.clear();
  index_.clear();
}

std::vector<Segment> paint(const LocalProgram& lp,
                           const std::vector<std::pair<Protocol, Protocol>>& psegs,
                           const std::vector<std::uint32_t>& positions,
                           std::uint32_t default_outcome, OutcomeInterner& outcomes) {
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
            paintRule(grid[s], cl.ports, rule);
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
      std::uint32_t o = c.status == Cell::kDecided ? outcomes.intern(c.allow, c.attribution, c.logs)
                                                   : outcomes.intern(true, lp.after_tiers, c.logs);
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
}  // namespace zonewall::compiler
