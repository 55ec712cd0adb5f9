#include "zonewall/analysis/groups.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace zonewall::analysis {

std::uint32_t GroupNamer::add(std::vector<std::uint32_t> pods) {
  std::sort(pods.begin(), pods.end());
  groups_.push_back(std::move(pods));
  return static_cast<std::uint32_t>(groups_.size() - 1);
}

std::vector<std::string> GroupNamer::names() const {
  // Per namespace: how many pods, and the labels all of them carry (they tell no group of the
  // namespace apart, so names leave them out).
  std::map<std::string, size_t> pods_in_ns;
  std::map<std::string, policy::Labels> ns_common;
  for (const policy::Pod& p : store_.pods) {
    auto [it, fresh] = ns_common.try_emplace(p.ns, p.labels);
    if (!fresh) {
      std::erase_if(it->second, [&](const auto& kv) {
        auto l = p.labels.find(kv.first);
        return l == p.labels.end() || l->second != kv.second;
      });
    }
    ++pods_in_ns[p.ns];
  }
  auto byLabels = [&](const std::vector<std::uint32_t>& g) {
    const policy::Pod& first = store_.pods[g.front()];
    if (g.size() == pods_in_ns[first.ns]) return first.ns + "/*";
    policy::Labels common = first.labels;
    for (std::uint32_t p : g) {
      std::erase_if(common, [&](const auto& kv) {
        auto it = store_.pods[p].labels.find(kv.first);
        return it == store_.pods[p].labels.end() || it->second != kv.second;
      });
    }
    std::erase_if(common, [&](const auto& kv) { return ns_common[first.ns].contains(kv.first); });
    std::string s;
    for (const auto& [k, v] : common) s += fmt::format("{}{}={}", s.empty() ? "" : ",", k, v);
    return s.empty() ? std::string() : first.ns + "/" + s;
  };
  auto byNames = [&](const std::vector<std::uint32_t>& g) {
    std::vector<std::string> names;
    for (std::uint32_t p : g) names.push_back(store_.pods[p].name);
    std::sort(names.begin(), names.end());
    constexpr size_t kShown = 3;
    std::string list = fmt::format(
        "{}", fmt::join(names.begin(), names.begin() + std::min(names.size(), kShown), ","));
    if (names.size() > kShown) list += fmt::format(",+{} more", names.size() - kShown);
    return fmt::format("{}/{{{}}}", store_.pods[g.front()].ns, list);
  };
  std::vector<std::string> out;
  // A name two different groups would share is replaced by the pods' names (one group may be
  // registered twice: a dual-stack pod's two addresses).
  std::map<std::string, std::vector<const std::vector<std::uint32_t>*>> uses;
  for (const auto& g : groups_) {
    out.push_back(byLabels(g));
    auto& u = uses[out.back()];
    if (std::find_if(u.begin(), u.end(), [&](const auto* x) { return *x == g; }) == u.end())
      u.push_back(&g);
  }
  for (size_t i = 0; i < groups_.size(); ++i) {
    if (out[i].empty() || uses[out[i]].size() > 1) out[i] = byNames(groups_[i]);
  }
  return out;
}

}  // namespace zonewall::analysis
