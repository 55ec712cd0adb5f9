#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "commands.h"
#include "input.h"
#include "zonewall/compiler/compile.h"
#include "zonewall/compiler/inventory.h"
#include "zonewall/compiler/program.h"
#include "zonewall/dataplane/ruleset.h"

namespace zonewall::tools {
namespace {

using json = nlohmann::ordered_json;
using compiler::Direction;

std::string familyName(Family f) { return f == Family::kV4 ? "ipv4" : "ipv6"; }

json tableJson(const compiler::NodeTable& t) {
  json attributions = json::array();
  for (const auto& a : t.attributions) {
    json j = {{"kind", a.kind == compiler::Attribution::Kind::kRule        ? "rule"
                       : a.kind == compiler::Attribution::Kind::kEndOfTier ? "end-of-tier"
                       : a.kind == compiler::Attribution::Kind::kNoPolicy  ? "no-policy"
                                                                           : "passed-all-tiers"},
              {"direction", compiler::directionName(a.direction)}};
    if (!a.policy.empty()) j["policy"] = a.policy;
    if (!a.tier.empty()) j["tier"] = a.tier;
    if (a.rule_index >= 0) {
      j["rule"] = a.rule_index;
      j["action"] = policy::actionName(a.action);
    }
    if (!a.rule_name.empty()) j["rule_name"] = a.rule_name;
    if (a.loc.known()) j["location"] = a.loc.str();
    attributions.push_back(j);
  }
  json outcomes = json::array();
  for (const auto& o : t.outcomes) {
    json j = {{"verdict", o.allow ? "allow" : "deny"}, {"attribution", o.attribution}};
    if (!o.logs.empty()) j["log"] = o.logs;
    outcomes.push_back(j);
  }
  json remote_classes = json::array();
  for (const auto& rc : t.remote_classes) {
    std::vector<std::string> keys;
    for (std::uint32_t p : rc.predicates) keys.push_back(t.predicates[p]);
    std::sort(keys.begin(), keys.end());
    remote_classes.push_back(
        {{"id", rc.id}, {"family", familyName(rc.family)}, {"predicates", keys}});
  }
  json exact = json::array();
  for (const auto& [a, id] : t.remote_exact)
    exact.push_back({{"addr", zonewall::formatAddr(a)}, {"class", id}});
  json ranges = json::array();
  for (const auto& [r, id] : t.remote_ranges) {
    ranges.push_back({{"from", zonewall::formatAddr(Addr{r.lo})},
                      {"to", zonewall::formatAddr(Addr{r.hi})},
                      {"class", id}});
  }
  json dirs = json::object();
  size_t local_classes = 0;
  for (Direction d : {Direction::kIngress, Direction::kEgress}) {
    const auto& dt = t.dir(d);
    json classes = json::array();
    for (const auto& lc : dt.classes) {
      json addrs = json::array();
      for (Addr a : lc.addrs) addrs.push_back(zonewall::formatAddr(a));
      classes.push_back({{"id", lc.id},
                         {"family", familyName(lc.family)},
                         {"default", lc.default_outcome},
                         {"addrs", addrs}});
    }
    local_classes += dt.classes.size();
    json entries = json::array();
    for (const auto& e : dt.entries) {
      entries.push_back({{"local", e.local_class},
                         {"remote", e.remote_class},
                         {"protocols", {e.proto_lo, e.proto_hi}},
                         {"ports", {e.port_lo, e.port_hi}},
                         {"outcome", e.outcome}});
    }
    dirs[compiler::directionName(d)] = {{"classes", classes}, {"entries", entries}};
  }
  json counts = {{"entries", t.entryCount()},
                 {"ingress_entries", t.dir(Direction::kIngress).entries.size()},
                 {"egress_entries", t.dir(Direction::kEgress).entries.size()},
                 {"local_classes", local_classes},
                 {"remote_classes", t.remote_classes.size()},
                 {"remote_exact", t.remote_exact.size()},
                 {"remote_ranges", t.remote_ranges.size()},
                 {"outcomes", t.outcomes.size()}};
  return {{"node", t.node},           {"counts", counts},        {"remote_classes", remote_classes},
          {"remote_exact", exact},    {"remote_ranges", ranges}, {"ingress", dirs["ingress"]},
          {"egress", dirs["egress"]}, {"outcomes", outcomes},    {"attributions", attributions}};
}

}  // namespace

int runCompile(const CompileOptions& o, Io io) {
  auto& [in, out, err] = io;
  auto loaded = loadValid(o.paths, in, err);
  if (!loaded) {
    return loaded.error();
  }
  Loaded& l = *loaded;
  compiler::Inventory inv(l.store);
  compiler::Program prog = compiler::lower(l.store);
  auto table = compiler::compileNode(prog, inv, o.node);
  if (!table) {
    err << "zonewall compile: " << table.error().str() << "\n";
    return kExitFindings;
  }
  if (o.format == "json") {
    out << tableJson(*table).dump(2) << "\n";
  } else {
    out << dataplane::renderNft(*table);
  }
  return kExitOk;
}

int runInventory(const InventoryOptions& o, Io io) {
  auto& [in, out, err] = io;
  const std::string& format = o.format;
  auto loaded = loadValid(o.paths, in, err);
  if (!loaded) {
    return loaded.error();
  }
  Loaded& l = *loaded;
  std::vector<const policy::Pod*> pods;
  for (const auto& p : l.store.pods) pods.push_back(&p);
  std::sort(pods.begin(), pods.end(),
            [](const policy::Pod* x, const policy::Pod* y) { return x->key() < y->key(); });
  json list = json::array();
  for (const policy::Pod* p : pods) {
    json ips = json::array();
    for (Addr x : p->ips) ips.push_back(zonewall::formatAddr(x));
    json ports = json::object();
    for (const auto& np : p->ports) {
      if (!np.name.empty())
        ports[np.name] = fmt::format("{}/{}", np.port, policy::protocolName(np.protocol));
    }
    if (format == "text") {
      std::string ip_text;
      for (const auto& ip : ips) ip_text += (ip_text.empty() ? "" : ",") + ip.get<std::string>();
      out << fmt::format("{} {} {} {}\n", p->key(), p->node.empty() ? "-" : p->node,
                         ip_text.empty() ? "-" : ip_text, p->hostVeth());
    }
    list.push_back({{"pod", p->key()},
                    {"node", p->node},
                    {"ips", ips},
                    {"ports", ports},
                    {"iface", p->hostVeth()}});
  }
  if (format == "json") out << json{{"pods", list}}.dump(2) << "\n";
  return kExitOk;
}

}  // namespace zonewall::tools
