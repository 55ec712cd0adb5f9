#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <expected>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli.h"
#include "commands.h"
#include "input.h"
#include "zonewall/analysis/view.h"
#include "zonewall/compiler/inventory.h"
#include "zonewall/compiler/program.h"
#include "zonewall/compiler/reference.h"

namespace zonewall::tools {
namespace {

using json = nlohmann::ordered_json;
using compiler::Direction;

std::optional<std::uint16_t> parsePort(const std::string& s) {
  int v = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v < 0 || v > 65535)
    return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

}  // namespace

int runMatrix(const MatrixOptions& o, Io io) {
  auto& [in, out, err] = io;
  const auto port = static_cast<std::uint16_t>(o.port);  // 1-65535: the command table checks
  auto proto = policy::parseProtocol(o.protocol);
  if (!proto || !policy::hasPorts(*proto)) {
    err << "zonewall matrix: --protocol must be TCP, UDP or SCTP\n";
    return kExitUsage;
  }
  auto loaded = loadValid(o.paths, in, err);
  if (!loaded) {
    return loaded.error();
  }
  Loaded& l = *loaded;
  auto cluster = analysis::ClusterView::build(l.store);
  if (!cluster) {
    err << "zonewall matrix: " << cluster.error().str() << "\n";
    return kExitFindings;
  }
  // With --staged, the same pods under the promoted policies.
  const policy::Store promoted_store = o.staged ? policy::promoteStaged(l.store) : policy::Store{};
  std::unique_ptr<analysis::ClusterView> promoted;
  if (o.staged) {
    auto p = analysis::ClusterView::build(promoted_store);
    if (!p) {
      err << "zonewall matrix: " << p.error().str() << "\n";
      return kExitFindings;
    }
    promoted = std::move(*p);
  }
  std::vector<const policy::Pod*> pods;
  for (const auto& p : l.store.pods) {
    if (!p.ips.empty()) pods.push_back(&p);
  }
  std::sort(pods.begin(), pods.end(),
            [](const policy::Pod* x, const policy::Pod* y) { return x->key() < y->key(); });
  // A probe goes to the destination's first IP, from the source's address of that family.
  auto allowedBy = [&](const analysis::ClusterView& view, const policy::Pod* src,
                       const policy::Pod* dst) {
    Addr to = dst->ips.front();
    auto from = std::find_if(src->ips.begin(), src->ips.end(),
                             [&](Addr x) { return x.family() == to.family(); });
    if (from == src->ips.end()) return false;
    auto seg = view.flow(view.endpointAt(*from)->cls, view.endpointAt(to)->cls, *proto, port);
    return seg && seg->allowed();
  };
  auto allowed = [&](const policy::Pod* src, const policy::Pod* dst) {
    return allowedBy(**cluster, src, dst);
  };
  auto cell = [&](const policy::Pod* src, const policy::Pod* dst) {
    const bool now = allowed(src, dst);
    if (!promoted) return now ? '.' : 'X';
    const bool then = allowedBy(*promoted, src, dst);
    return now == then ? (now ? '.' : 'X') : (then ? '+' : '-');
  };
  if (o.format == "json") {
    json results = json::array();
    for (const auto* s : pods) {
      for (const auto* d : pods) {
        json r = {{"from", s->key()}, {"to", d->key()}, {"allowed", allowed(s, d)}};
        if (promoted) r["staged"] = allowedBy(*promoted, s, d);
        results.push_back(std::move(r));
      }
    }
    out << json{{"port", port}, {"protocol", policy::protocolName(*proto)}, {"results", results}}
               .dump(2)
        << "\n";
    return kExitOk;
  }
  size_t w = 4;
  for (const auto* p : pods) w = std::max(w, p->key().size());
  out << fmt::format(
      "{}/{}  (rows: from, columns: to; '.' allowed, 'X' denied{})\n", policy::protocolName(*proto),
      port, promoted ? "; if the staged policies were promoted: '+' opened, '-' closed" : "");
  out << fmt::format("{:<{}}", "", w);
  for (size_t i = 0; i < pods.size(); ++i) out << fmt::format(" {:>2}", i);
  out << "\n";
  for (size_t i = 0; i < pods.size(); ++i) {
    out << fmt::format("{:<{}}", pods[i]->key(), w);
    for (const auto* d : pods) out << fmt::format("  {}", cell(pods[i], d));
    out << fmt::format("   {}\n", i);
  }
  return kExitOk;
}

int runExplain(const ExplainOptions& o, Io io) {
  auto& [in, out, err] = io;
  const std::string& port_text = o.port;
  auto slash = port_text.find('/');
  auto proto = slash == std::string::npos ? std::nullopt
                                          : policy::parseProtocol(port_text.substr(slash + 1));
  std::optional<std::uint16_t> port;
  if (proto && policy::isIcmp(*proto)) {
    std::string tc = port_text.substr(0, slash);
    auto colon = tc.find(':');
    auto type = parsePort(tc.substr(0, colon));
    auto code = colon == std::string::npos ? std::optional<std::uint16_t>(0)
                                           : parsePort(tc.substr(colon + 1));
    if (type && code && *type < 256 && *code < 256)
      port = static_cast<std::uint16_t>(*type << 8 | *code);
  } else if (proto) {
    port = parsePort(port_text.substr(0, slash));
  }
  if (!proto || !port) {
    err << "zonewall explain: --port must be N/PROTO (e.g. 80/TCP, 53/UDP, 8:0/ICMP)\n";
    return kExitUsage;
  }
  auto loaded = loadValid(o.paths, in, err);
  if (!loaded) {
    return loaded.error();
  }
  Loaded& l = *loaded;
  compiler::Inventory inv(l.store);
  auto resolve = [&](const std::string& s,
                     std::optional<zonewall::Family> fam) -> std::optional<Addr> {
    if (auto ip = zonewall::parseAddr(s)) return ip;
    auto slash_pos = s.find('/');
    if (slash_pos == std::string::npos) return std::nullopt;
    const policy::Pod* p = l.store.findPod(s.substr(0, slash_pos), s.substr(slash_pos + 1));
    if (p == nullptr) return std::nullopt;
    for (Addr x : p->ips) {
      if (!fam || x.family() == *fam) return x;
    }
    return std::nullopt;
  };
  auto dst = resolve(o.to, std::nullopt);
  if (!dst) {
    err << "zonewall explain: --to " << o.to << ": no such pod (with an IP) or address\n";
    return kExitUsage;
  }
  auto src = resolve(o.from, dst->family());
  if (!src) {
    err << "zonewall explain: --from " << o.from
        << ": no such pod (with an IP of the destination's family) or address\n";
    return kExitUsage;
  }
  auto name = [&](Addr x) {
    const policy::Pod* p = inv.podAt(x);
    return p ? fmt::format("{} ({})", p->key(), zonewall::formatAddr(x)) : zonewall::formatAddr(x);
  };
  std::string port_shown = policy::isIcmp(*proto)
                               ? fmt::format("type {} code {}", *port >> 8, *port & 0xff)
                               : fmt::format("port {}", *port);
  out << fmt::format("flow: {} -> {} {} {}\n", name(*src), name(*dst), policy::protocolName(*proto),
                     port_shown);
  // One explanation of the flow under `store`'s policies; the verdict, or an exit code.
  auto explainUnder = [&](const policy::Store& store) -> std::expected<bool, int> {
    auto cluster = analysis::ClusterView::build(store);
    if (!cluster) {
      err << "zonewall explain: " << cluster.error().str() << "\n";
      return std::unexpected(kExitFindings);
    }
    bool allowed = true;
    for (Direction d : {Direction::kEgress, Direction::kIngress}) {
      Addr local = d == Direction::kEgress ? *src : *dst;
      Addr remote = d == Direction::kEgress ? *dst : *src;
      // The cluster's table decides as the table of `local`'s node does (every pod is local).
      const compiler::NodeTable& t = (*cluster)->table();
      const compiler::Outcome* outcome = t.decide(d, local, remote, *proto, *port);
      const char* dn = compiler::directionName(d);
      const policy::Pod* pod = inv.podAt(local);
      if (outcome == nullptr || pod == nullptr) {
        out << fmt::format("{:<8} {}: not a pod: no policy applies\n", dn, name(local));
        continue;
      }
      const auto& attr = t.attributions[outcome->attribution];
      out << fmt::format("{:<8} {} (node '{}'): {} by {}\n", dn, name(local), pod->node,
                         outcome->allow ? "ALLOW" : "DENY", attr.str());
      for (std::uint32_t lg : outcome->logs)
        out << fmt::format("         logged by {}\n", t.attributions[lg].str());
      allowed = allowed && outcome->allow;
    }
    out << fmt::format("verdict: {}\n", allowed ? "ALLOWED" : "DENIED");
    // The compiled table and the reference interpreter must agree; if they ever do not, that
    // is a compiler bug worth a loud report rather than a quiet wrong answer.
    compiler::ReferenceEvaluator ref(store);
    if (ref.connectionAllowed({*src, *dst, *proto, *port}) != allowed) {
      err << "zonewall explain: internal error: the reference evaluator disagrees; please report "
             "this input\n";
      return std::unexpected(kExitInternal);
    }
    return allowed;
  };
  auto now = explainUnder(l.store);
  if (!now) return now.error();
  if (o.staged) {
    out << fmt::format("if the {} staged polic{} were promoted:\n", l.store.staged.size(),
                       l.store.staged.size() == 1 ? "y" : "ies");
    auto then = explainUnder(policy::promoteStaged(l.store));
    if (!then) return then.error();
    out << (*now == *then
                ? fmt::format("promotion changes nothing: {}\n", *now ? "ALLOWED" : "DENIED")
                : fmt::format("promotion changes the verdict: {} -> {}\n",
                              *now ? "ALLOWED" : "DENIED", *then ? "ALLOWED" : "DENIED"));
  }
  return kExitOk;
}

}  // namespace zonewall::tools
