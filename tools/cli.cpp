#include "cli.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "zonewall/compiler/compile.h"
#include "zonewall/compiler/inventory.h"
#include "zonewall/compiler/lint.h"
#include "zonewall/compiler/program.h"
#include "zonewall/compiler/reference.h"
#include "zonewall/dataplane/batch.h"
#include "zonewall/dataplane/diff.h"
#include "zonewall/dataplane/drift.h"
#include "zonewall/dataplane/programmer.h"
#include "zonewall/dataplane/ruleset.h"
#include "zonewall/dataplane/transport.h"
#include "zonewall/policy/loader.h"

namespace zonewall::tools {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using compiler::Direction;
using policy::Store;
using zonewall::Addr;
using zonewall::Diagnostics;

constexpr int kExitOk = 0;
constexpr int kExitFindings = 1;
constexpr int kExitUsage = 2;

const char* kVersion = "0.1.0";

// ---- arguments ----

struct Args {
  std::vector<std::string> paths;
  std::map<std::string, std::string> flags;
  bool help = false;
};

struct UsageError {
  std::string message;
};

// Parses "PATH... --flag value --flag=value"; `known` lists the flags that take a value.
std::optional<Args> parseArgs(const std::vector<std::string>& argv, size_t from,
                              const std::set<std::string>& known, std::string* error) {
  Args a;
  for (size_t i = from; i < argv.size(); ++i) {
    const std::string& s = argv[i];
    if (s == "--help" || s == "-h") {
      a.help = true;
      continue;
    }
    if (s.starts_with("--")) {
      std::string name = s.substr(2);
      std::string value;
      bool has_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      if (!known.contains(name)) {
        *error = fmt::format("unknown flag --{}", name);
        return std::nullopt;
      }
      // Switches take no value.
      static const std::set<std::string> kSwitches = {"dry-run", "repair"};
      if (!has_value && kSwitches.contains(name)) {
        a.flags[name] = "true";
        continue;
      }
      if (!has_value) {
        if (i + 1 >= argv.size()) {
          *error = fmt::format("flag --{} needs a value", name);
          return std::nullopt;
        }
        value = argv[++i];
      }
      a.flags[name] = value;
      continue;
    }
    a.paths.push_back(s);
  }
  return a;
}

// ---- input ----

// Reads PATH... (files, directories recursively for *.yaml/*.yml in sorted order, "-" for
// stdin). Returns false, with a message, when something cannot be read.
bool readSources(const std::vector<std::string>& paths, std::istream& in,
                 std::vector<policy::SourceText>& out, std::string* error) {
  auto readFile = [&](const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    if (!f) {
      *error = fmt::format("{}: cannot read: {}", p.string(), std::strerror(errno));
      return false;
    }
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (f.bad()) {
      *error = fmt::format("{}: read error", p.string());
      return false;
    }
    out.push_back({p.string(), std::move(text)});
    return true;
  };
  for (const std::string& path : paths) {
    if (path == "-") {
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      out.push_back({"<stdin>", std::move(text)});
      continue;
    }
    std::error_code ec;
    fs::file_status st = fs::status(path, ec);
    if (ec || !fs::exists(st)) {
      *error = fmt::format("{}: no such file or directory", path);
      return false;
    }
    if (fs::is_directory(st)) {
      std::vector<fs::path> files;
      for (auto it = fs::recursive_directory_iterator(path, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        auto ext = it->path().extension();
        if (it->is_regular_file() && (ext == ".yaml" || ext == ".yml")) files.push_back(it->path());
      }
      if (ec) {
        *error = fmt::format("{}: cannot list: {}", path, ec.message());
        return false;
      }
      std::sort(files.begin(), files.end());
      for (const auto& f : files) {
        if (!readFile(f)) return false;
      }
      continue;
    }
    if (!readFile(path)) return false;
  }
  return true;
}

struct Loaded {
  Store store;
  Diagnostics diags;
};

// Parses the documents on every core: YAML parsing is most of a large lint's time. Each
// worker takes a contiguous run of documents; results merge in input order, so the outcome
// is the same as a sequential load.
void loadParallel(const std::vector<policy::SourceText>& sources, Store& store,
                  Diagnostics& diags) {
  std::vector<policy::SourceText> docs;
  size_t bytes = 0;
  for (const auto& src : sources) {
    for (auto& d : policy::splitDocuments(src)) {
      bytes += d.text.size();
      docs.push_back(std::move(d));
    }
  }
  // Below ~256 KiB a thread costs more than it saves.
  size_t workers =
      bytes < (256u << 10) ? 1 : std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 8);
  workers = std::min(workers, docs.size());
  if (workers <= 1) {
    policy::loadSources(docs, store, diags);
    return;
  }
  std::vector<Store> stores(workers);
  std::vector<Diagnostics> found(workers);
  std::vector<std::thread> threads;
  size_t per = (docs.size() + workers - 1) / workers;
  for (size_t w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      size_t lo = w * per;
      size_t hi = std::min(docs.size(), lo + per);
      if (lo < hi) {
        std::vector<policy::SourceText> part(
            std::make_move_iterator(docs.begin() + static_cast<long>(lo)),
            std::make_move_iterator(docs.begin() + static_cast<long>(hi)));
        policy::loadSources(part, stores[w], found[w]);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (size_t w = 0; w < workers; ++w) {
    policy::mergeStore(store, std::move(stores[w]));
    diags.append(found[w]);
  }
}

// Reads and loads; returns an exit code when the input could not even be read.
std::optional<int> load(const Args& a, std::istream& in, std::ostream& err, Loaded& loaded) {
  if (a.paths.empty()) {
    err << "zonewall: no input: give files, directories or - for stdin\n";
    return kExitUsage;
  }
  std::vector<policy::SourceText> sources;
  std::string error;
  if (!readSources(a.paths, in, sources, &error)) {
    err << "zonewall: " << error << "\n";
    return kExitUsage;
  }
  loadParallel(sources, loaded.store, loaded.diags);
  policy::validateStore(loaded.store, loaded.diags);
  return std::nullopt;
}

// For commands that need valid input: print the errors and stop.
bool reportLoadErrors(const Diagnostics& diags, std::ostream& err) {
  if (!diags.hasErrors()) return false;
  Diagnostics sorted = diags;
  sorted.sort();
  for (const auto& d : sorted.all()) {
    if (d.severity == zonewall::Severity::kError) err << d.str() << "\n";
  }
  err << "zonewall: the input has errors; nothing was compiled\n";
  return true;
}

std::string familyName(zonewall::Family f) { return f == zonewall::Family::kV4 ? "ipv4" : "ipv6"; }

// ---- lint ----

const char* kLintHelp = R"(usage: zonewall lint PATH... [--format text|json|sarif]

Checks policy YAML (Kubernetes NetworkPolicy v1, Calico projectcalico.org/v3, with optional
Namespace/Pod inventory) and prints every finding as
  file:line:col: severity: message [rule-id]
Exit: 0 no errors (warnings allowed), 1 errors found, 2 usage or unreadable input.
)";

// A SARIF artifactLocation.uri: a URI reference, so characters outside RFC 3986's
// unreserved set and '/' are percent-encoded; stdin has no file and is called "stdin".
std::string sarifUri(const std::string& file) {
  if (file == "<stdin>") return "stdin";
  std::string out;
  for (unsigned char c : file) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

json sarif(const Diagnostics& diags) {
  json rules = json::array();
  for (const auto& r : compiler::lintRules()) {
    rules.push_back({{"id", r.id}, {"shortDescription", {{"text", r.summary}}}});
  }
  json results = json::array();
  for (const auto& d : diags.all()) {
    json region = json::object();
    if (d.loc.line > 0) {
      region["startLine"] = d.loc.line;
      region["startColumn"] = std::max(1, d.loc.col);
    }
    json phys = {{"artifactLocation", {{"uri", sarifUri(d.loc.file)}}}};
    if (!region.empty()) phys["region"] = region;
    const char* level = d.severity == zonewall::Severity::kError     ? "error"
                        : d.severity == zonewall::Severity::kWarning ? "warning"
                                                                     : "note";
    results.push_back({{"ruleId", d.rule_id},
                       {"level", level},
                       {"message", {{"text", d.message}}},
                       {"locations", json::array({{{"physicalLocation", phys}}})}});
  }
  return {{"$schema", "https://json.schemastore.org/sarif-2.1.0.json"},
          {"version", "2.1.0"},
          {"runs", json::array({{{"tool",
                                  {{"driver",
                                    {{"name", "zonewall"},
                                     {"version", kVersion},
                                     {"informationUri", "https://github.com/zonewall/zonewall"},
                                     {"rules", rules}}}}},
                                 {"results", results}}})}};
}

int cmdLint(const Args& a, std::istream& in, std::ostream& out, std::ostream& err) {
  if (a.help) {
    out << kLintHelp;
    return kExitOk;
  }
  std::string format = a.flags.contains("format") ? a.flags.at("format") : "text";
  if (format != "text" && format != "json" && format != "sarif") {
    err << "zonewall lint: --format must be text, json or sarif\n";
    return kExitUsage;
  }
  Loaded l;
  if (auto rc = load(a, in, err, l)) return *rc;
  compiler::Inventory inv(l.store);
  compiler::lint(l.store, inv, l.diags);
  l.diags.sort();
  size_t errors = 0;
  size_t warnings = 0;
  for (const auto& d : l.diags.all()) {
    errors += d.severity == zonewall::Severity::kError;
    warnings += d.severity == zonewall::Severity::kWarning;
  }
  if (format == "sarif") {
    out << sarif(l.diags).dump(2) << "\n";
  } else if (format == "json") {
    json findings = json::array();
    for (const auto& d : l.diags.all()) {
      findings.push_back({{"file", d.loc.file},
                          {"line", d.loc.line},
                          {"column", d.loc.col},
                          {"severity", zonewall::severityName(d.severity)},
                          {"message", d.message},
                          {"rule", d.rule_id}});
    }
    out << json{{"findings", findings}, {"errors", errors}, {"warnings", warnings}}.dump(2) << "\n";
  } else {
    for (const auto& d : l.diags.all()) out << d.str() << "\n";
    err << fmt::format("{} error(s), {} warning(s)\n", errors, warnings);
  }
  return errors > 0 ? kExitFindings : kExitOk;
}

// ---- compile ----

const char* kCompileHelp = R"(usage: zonewall compile PATH... --node NODE [--format nft|json]

Compiles the classification table of NODE (the pods whose spec.nodeName is NODE) and prints it
as an `nft -f` script (default) or as JSON with element counts.
Exit: 0 compiled, 1 the input has errors, 2 usage or unreadable input.
)";

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
    remote_classes.push_back(
        {{"id", rc.id}, {"family", familyName(rc.family)}, {"predicates", rc.predicates}});
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

int cmdCompile(const Args& a, std::istream& in, std::ostream& out, std::ostream& err) {
  if (a.help) {
    out << kCompileHelp;
    return kExitOk;
  }
  if (!a.flags.contains("node")) {
    err << "zonewall compile: --node NODE is required\n";
    return kExitUsage;
  }
  std::string format = a.flags.contains("format") ? a.flags.at("format") : "nft";
  if (format != "nft" && format != "json") {
    err << "zonewall compile: --format must be nft or json\n";
    return kExitUsage;
  }
  Loaded l;
  if (auto rc = load(a, in, err, l)) return *rc;
  if (reportLoadErrors(l.diags, err)) return kExitFindings;
  compiler::Inventory inv(l.store);
  compiler::Program prog = compiler::lower(l.store);
  auto table = compiler::compileNode(prog, inv, a.flags.at("node"));
  if (!table) {
    err << "zonewall compile: " << table.error().str() << "\n";
    return kExitFindings;
  }
  if (format == "json") {
    out << tableJson(*table).dump(2) << "\n";
  } else {
    out << dataplane::renderNft(*table);
  }
  return kExitOk;
}

// ---- matrix and explain share the cluster view: one table per node ----

struct Cluster {
  compiler::Program program;
  std::map<std::string, compiler::NodeTable> tables;
};

std::optional<std::string> buildCluster(const Store& store, const compiler::Inventory& inv,
                                        Cluster& c) {
  c.program = compiler::lower(store);
  std::set<std::string> nodes;
  for (const auto& p : store.pods) nodes.insert(p.node);
  for (const std::string& n : nodes) {
    auto t = compiler::compileNode(c.program, inv, n);
    if (!t) return t.error().str();
    c.tables.emplace(n, std::move(*t));
  }
  return std::nullopt;
}

struct SideDecision {
  bool applies = false;  // the side is a pod with policy evaluation
  const compiler::Outcome* outcome = nullptr;
  const compiler::NodeTable* table = nullptr;
};

SideDecision decideSide(const Cluster& c, const compiler::Inventory& inv, Direction d, Addr local,
                        Addr remote, policy::Protocol proto, std::uint16_t port) {
  SideDecision s;
  const policy::Pod* pod = inv.podAt(local);
  if (pod == nullptr) return s;
  auto it = c.tables.find(pod->node);
  if (it == c.tables.end()) return s;
  s.table = &it->second;
  s.outcome = it->second.decide(d, local, remote, proto, port);
  s.applies = s.outcome != nullptr;
  return s;
}

bool connectionAllowed(const Cluster& c, const compiler::Inventory& inv, Addr src, Addr dst,
                       policy::Protocol proto, std::uint16_t port) {
  if (src.family() != dst.family()) return false;
  SideDecision e = decideSide(c, inv, Direction::kEgress, src, dst, proto, port);
  if (e.applies && !e.outcome->allow) return false;
  SideDecision i = decideSide(c, inv, Direction::kIngress, dst, src, proto, port);
  return !(i.applies && !i.outcome->allow);
}

std::optional<std::uint16_t> parsePort(const std::string& s) {
  int v = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v < 0 || v > 65535)
    return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

const char* kMatrixHelp =
    R"(usage: zonewall matrix PATH... [--port N] [--protocol TCP|UDP|SCTP] [--format text|json]

Prints the pod x pod reachability of the inventory on one port (default 80/TCP): a connection
is allowed iff the source's egress and the destination's ingress allow it, each decided by the
compiled table of the pod's node. Text: one row per source, '.' allowed, 'X' denied.
JSON: {"port":80,"protocol":"TCP","results":[{"from":"x/a","to":"x/b","allowed":true},...]}
Exit: 0 printed, 1 the input has errors, 2 usage or unreadable input.
)";

int cmdMatrix(const Args& a, std::istream& in, std::ostream& out, std::ostream& err) {
  if (a.help) {
    out << kMatrixHelp;
    return kExitOk;
  }
  std::uint16_t port = 80;
  if (a.flags.contains("port")) {
    auto p = parsePort(a.flags.at("port"));
    if (!p || *p == 0) {
      err << "zonewall matrix: --port must be 1-65535\n";
      return kExitUsage;
    }
    port = *p;
  }
  std::string proto_text = a.flags.contains("protocol") ? a.flags.at("protocol") : "TCP";
  auto proto = policy::parseProtocol(proto_text);
  if (!proto || !policy::hasPorts(*proto)) {
    err << "zonewall matrix: --protocol must be TCP, UDP or SCTP\n";
    return kExitUsage;
  }
  std::string format = a.flags.contains("format") ? a.flags.at("format") : "text";
  if (format != "text" && format != "json") {
    err << "zonewall matrix: --format must be text or json\n";
    return kExitUsage;
  }
  Loaded l;
  if (auto rc = load(a, in, err, l)) return *rc;
  if (reportLoadErrors(l.diags, err)) return kExitFindings;
  compiler::Inventory inv(l.store);
  Cluster cluster;
  if (auto e = buildCluster(l.store, inv, cluster)) {
    err << "zonewall matrix: " << *e << "\n";
    return kExitFindings;
  }
  std::vector<const policy::Pod*> pods;
  for (const auto& p : l.store.pods) {
    if (!p.ips.empty()) pods.push_back(&p);
  }
  std::sort(pods.begin(), pods.end(),
            [](const policy::Pod* x, const policy::Pod* y) { return x->key() < y->key(); });
  // A probe goes to the destination's first IP, from the source's address of that family.
  auto allowed = [&](const policy::Pod* src, const policy::Pod* dst) {
    Addr to = dst->ips.front();
    auto from = std::find_if(src->ips.begin(), src->ips.end(),
                             [&](Addr x) { return x.family() == to.family(); });
    return from != src->ips.end() && connectionAllowed(cluster, inv, *from, to, *proto, port);
  };
  if (format == "json") {
    json results = json::array();
    for (const auto* s : pods) {
      for (const auto* d : pods)
        results.push_back({{"from", s->key()}, {"to", d->key()}, {"allowed", allowed(s, d)}});
    }
    out << json{{"port", port}, {"protocol", policy::protocolName(*proto)}, {"results", results}}
               .dump(2)
        << "\n";
    return kExitOk;
  }
  size_t w = 4;
  for (const auto* p : pods) w = std::max(w, p->key().size());
  out << fmt::format("{}/{}  (rows: from, columns: to; '.' allowed, 'X' denied)\n",
                     policy::protocolName(*proto), port);
  out << fmt::format("{:<{}}", "", w);
  for (size_t i = 0; i < pods.size(); ++i) out << fmt::format(" {:>2}", i);
  out << "\n";
  for (size_t i = 0; i < pods.size(); ++i) {
    out << fmt::format("{:<{}}", pods[i]->key(), w);
    for (const auto* d : pods) out << fmt::format("  {}", allowed(pods[i], d) ? '.' : 'X');
    out << fmt::format("   {}\n", i);
  }
  return kExitOk;
}

const char* kExplainHelp =
    R"(usage: zonewall explain PATH... --from NS/POD|IP --to NS/POD|IP --port N/PROTO

Explains one connection: the verdict of the source's egress and the destination's ingress, each
with the deciding policy, rule index and its file:line (or the default that applied).
PROTO is TCP, UDP or SCTP; for ICMP and ICMPv6 give TYPE[:CODE]/ICMP.
Exit: 0 explained, 1 the input has errors, 2 usage or unreadable input.
)";

int cmdExplain(const Args& a, std::istream& in, std::ostream& out, std::ostream& err) {
  if (a.help) {
    out << kExplainHelp;
    return kExitOk;
  }
  for (const char* f : {"from", "to", "port"}) {
    if (!a.flags.contains(f)) {
      err << "zonewall explain: --" << f << " is required\n";
      return kExitUsage;
    }
  }
  const std::string& port_text = a.flags.at("port");
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
  Loaded l;
  if (auto rc = load(a, in, err, l)) return *rc;
  if (reportLoadErrors(l.diags, err)) return kExitFindings;
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
  auto dst = resolve(a.flags.at("to"), std::nullopt);
  if (!dst) {
    err << "zonewall explain: --to " << a.flags.at("to")
        << ": no such pod (with an IP) or address\n";
    return kExitUsage;
  }
  auto src = resolve(a.flags.at("from"), dst->family());
  if (!src) {
    err << "zonewall explain: --from " << a.flags.at("from")
        << ": no such pod (with an IP of the destination's family) or address\n";
    return kExitUsage;
  }
  Cluster cluster;
  if (auto e = buildCluster(l.store, inv, cluster)) {
    err << "zonewall explain: " << *e << "\n";
    return kExitFindings;
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
  bool allowed = true;
  for (Direction d : {Direction::kEgress, Direction::kIngress}) {
    Addr local = d == Direction::kEgress ? *src : *dst;
    Addr remote = d == Direction::kEgress ? *dst : *src;
    SideDecision s = decideSide(cluster, inv, d, local, remote, *proto, *port);
    const char* dn = compiler::directionName(d);
    if (!s.applies) {
      out << fmt::format("{:<8} {}: not a pod: no policy applies\n", dn, name(local));
      continue;
    }
    const auto& attr = s.table->attributions[s.outcome->attribution];
    out << fmt::format("{:<8} {} (node '{}'): {} by {}\n", dn, name(local), s.table->node,
                       s.outcome->allow ? "ALLOW" : "DENY", attr.str());
    for (std::uint32_t lg : s.outcome->logs)
      out << fmt::format("         logged by {}\n", s.table->attributions[lg].str());
    allowed = allowed && s.outcome->allow;
  }
  out << fmt::format("verdict: {}\n", allowed ? "ALLOWED" : "DENIED");
  // The compiled table and the reference interpreter must agree; if they ever do not, that
  // is a compiler bug worth a loud report rather than a quiet wrong answer.
  compiler::ReferenceEvaluator ref(l.store);
  if (ref.connectionAllowed({*src, *dst, *proto, *port}) != allowed) {
    err << "zonewall explain: internal error: the reference evaluator disagrees; please report "
           "this input\n";
    return 3;
  }
  return kExitOk;
}

const char* kApplyHelp = R"(usage: zonewall apply PATH... --node NODE [--netns NAME] [--dry-run]

Compiles the table of NODE and programs it into the kernel's nftables as table inet zonewall,
in one netlink transaction: the kernel holds the old table or the new one, never a mix. The
kernel's table is read once: if its chains and rules are zonewall's, only the elements that
differ are sent; otherwise the table is replaced whole. --dry-run prints the element-level
diff (or why the table would be replaced) and changes nothing. --netns NAME programs the
network namespace /run/netns/NAME. Needs CAP_NET_ADMIN.
Exit: 0 applied (or nothing to do), 1 the input has errors or the kernel refused, 2 usage.
)";

const char* kVerifyHelp = R"(usage: zonewall verify PATH... --node NODE [--netns NAME] [--repair]

Reads table inet zonewall back from the kernel and compares it with NODE's compiled table:
prints every drift (missing or changed chains, rules, set elements). --repair reconciles: it
sends the element-level fix, or replaces the table when its skeleton was changed.
Exit: 0 in sync (or repaired), 1 drift found (or the input has errors), 2 usage.
)";

struct Programmed {
  std::unique_ptr<dataplane::Transport> transport;
  std::unique_ptr<dataplane::Programmer> programmer;
  dataplane::Programmer::Plan plan;
  std::string node;
  size_t entries = 0;
};

// Compiles NODE, reads the kernel's table once and works out what would bring it there.
std::optional<int> prepare(const Args& a, std::istream& in, std::ostream& err, const char* cmd,
                           Programmed& p) {
  if (!a.flags.contains("node")) {
    err << "zonewall " << cmd << ": --node NODE is required\n";
    return kExitUsage;
  }
  Loaded l;
  if (auto rc = load(a, in, err, l)) return *rc;
  if (reportLoadErrors(l.diags, err)) return kExitFindings;
  compiler::Inventory inv(l.store);
  auto table = compiler::compileNode(compiler::lower(l.store), inv, a.flags.at("node"));
  if (!table) {
    err << "zonewall " << cmd << ": " << table.error().str() << "\n";
    return kExitFindings;
  }
  p.node = table->node;
  p.entries = table->entryCount();
  std::string netns = a.flags.contains("netns") ? "/run/netns/" + a.flags.at("netns") : "";
  auto transport = dataplane::openNetlink(netns);
  if (!transport) {
    err << "zonewall " << cmd << ": " << transport.error().str() << "\n";
    return kExitFindings;
  }
  p.transport = std::move(*transport);
  p.programmer = std::make_unique<dataplane::Programmer>(*p.transport);
  auto plan = p.programmer->plan(dataplane::buildRuleset(*table));
  if (!plan) {
    err << "zonewall " << cmd << ": reading the kernel's table: " << plan.error().str() << "\n";
    return kExitFindings;
  }
  p.plan = std::move(*plan);
  return std::nullopt;
}

using PlanKind = dataplane::Programmer::Plan::Kind;

std::optional<int> commit(Programmed& p, const char* cmd, std::ostream& out, std::ostream& err) {
  auto messages = p.programmer->commit(p.plan);
  if (!messages) {
    err << "zonewall " << cmd << ": " << messages.error().str() << "\n";
    return kExitFindings;
  }
  const char* verb = std::string(cmd) == "apply" ? "applied" : "repaired";
  std::string transactions;
  for (size_t m : *messages)
    transactions += (transactions.empty() ? "" : " + ") + std::to_string(m);
  const char* counts[] = {"no transaction", "one transaction", "two transactions",
                          "three transactions", "four transactions"};
  transactions =
      (messages->size() < std::size(counts) ? std::string(counts[messages->size()])
                                            : std::to_string(messages->size()) + " transactions") +
      " of " + transactions;
  if (p.plan.kind == PlanKind::kCreate) {
    out << fmt::format("{} node '{}' ({} entries): table created in {} netlink messages\n", verb,
                       p.node, p.entries, transactions);
    return std::nullopt;
  }
  size_t elements = 0;
  for (const auto& c : p.plan.diff.sets) elements += c.add.size() + c.remove.size();
  const auto& cc = p.plan.diff.chains;
  std::string chains = cc.add.empty() && cc.remove.empty()
                           ? ""
                           : fmt::format(" and {} chain changes", cc.add.size() + cc.remove.size());
  std::string swaps;
  for (const auto& sw : cc.swaps) {
    for (size_t i = 0; i < sw.old_sets.size(); ++i) {
      swaps += fmt::format(", map {} rebuilt as {} ({} entries)", sw.old_sets[i],
                           sw.replacements[i].name, sw.replacements[i].elements.size());
    }
    for (const auto& b : sw.bridges) {
      swaps += fmt::format(", {} {} bridged into {}", b.elements.size(),
                           b.elements.size() == 1 ? "entry" : "entries", b.name);
    }
  }
  out << fmt::format("{} node '{}' ({} entries): {} in {} netlink messages\n", verb, p.node,
                     p.entries,
                     p.plan.kind == PlanKind::kReplace
                         ? std::string("table replaced")
                         : fmt::format("{} element changes{}{}", elements, chains, swaps),
                     transactions);
  if (p.plan.kind == PlanKind::kReplace) {
    for (const auto& d : p.plan.drift) out << "  because " << d << "\n";
  }
  return std::nullopt;
}

int cmdApply(const Args& a, std::istream& in, std::ostream& out, std::ostream& err) {
  if (a.help) {
    out << kApplyHelp;
    return kExitOk;
  }
  Programmed p;
  if (auto rc = prepare(a, in, err, "apply", p)) return *rc;
  const auto& plan = p.plan;
  if (a.flags.contains("dry-run")) {
    if (plan.kind == PlanKind::kCreate) {
      out << "would create table inet zonewall\n";
    } else if (plan.kind == PlanKind::kReplace) {
      out << "would replace table inet zonewall:\n";
      for (const auto& d : plan.drift) out << "  " << d << "\n";
    } else {
      for (const auto& c : plan.diff.chains.remove) out << "- chain " << c << "\n";
      for (const auto& c : plan.diff.chains.add) out << "+ chain " << c.name << "\n";
      for (const auto& sw : plan.diff.chains.swaps) {
        for (size_t i = 0; i < sw.old_sets.size(); ++i) {
          out << fmt::format("~ map {} rebuilt as {} ({} entries)\n", sw.old_sets[i],
                             sw.replacements[i].name, sw.replacements[i].elements.size());
        }
        for (const auto& b : sw.bridges) {
          out << fmt::format(
              "~ map {} bridged: {} {} for new classes and addresses until it goes\n", b.name,
              b.elements.size(), b.elements.size() == 1 ? "entry" : "entries");
        }
      }
      for (const auto& s : plan.diff.chains.drop_sets) out << "- set " << s << "\n";
      if (plan.drop_aside) out << "- table inet " << dataplane::asideTable(plan.want.table) << "\n";
      auto lines = dataplane::describeChanges(plan.want, plan.diff.sets);
      for (const auto& sw : plan.diff.chains.swaps) {
        for (auto& line : dataplane::describeChanges(plan.want, sw.edits))
          lines.push_back(std::move(line));
      }
      for (const auto& line : lines) out << line << "\n";
      out << fmt::format("{} element changes\n", lines.size());
    }
    return kExitOk;
  }
  if (plan.empty()) {
    out << fmt::format("node '{}': the kernel already holds this table; nothing to do\n", p.node);
    return kExitOk;
  }
  if (auto rc = commit(p, "apply", out, err)) return *rc;
  return kExitOk;
}

int cmdVerify(const Args& a, std::istream& in, std::ostream& out, std::ostream& err) {
  if (a.help) {
    out << kVerifyHelp;
    return kExitOk;
  }
  Programmed p;
  if (auto rc = prepare(a, in, err, "verify", p)) return *rc;
  const auto& plan = p.plan;
  if (plan.kind == PlanKind::kCreate) out << "drift: table inet zonewall does not exist\n";
  for (const auto& d : plan.drift) out << "drift: " << d << "\n";
  if (plan.kind == PlanKind::kUpdate) {
    for (const auto& c : plan.diff.chains.remove) out << "drift: - chain " << c << "\n";
    for (const auto& c : plan.diff.chains.add) out << "drift: + chain " << c.name << "\n";
    for (const auto& line : dataplane::describeChanges(plan.want, plan.diff.sets))
      out << "drift: " << line << "\n";
    for (const auto& sw : plan.diff.chains.swaps) {
      for (const auto& line : dataplane::describeChanges(plan.want, sw.edits))
        out << "drift: " << line << "\n";
    }
  }
  if (plan.empty()) {
    out << fmt::format("node '{}': in sync ({} entries)\n", p.node, p.entries);
    return kExitOk;
  }
  if (!a.flags.contains("repair")) return kExitFindings;
  if (auto rc = commit(p, "verify", out, err)) return *rc;
  return kExitOk;
}

const char* kInventoryHelp = R"(usage: zonewall inventory PATH... [--format text|json]

Lists the pods of the input: namespace/name, node, IPs, host veth (text); JSON adds the
named ports: {"pods":[{"pod":"x/a","node":"n1","ips":["10.0.0.1"],"ports":{"http":"8080/TCP"},
"iface":"zw..."}]}
Exit: 0 listed, 1 the input has errors, 2 usage or unreadable input.
)";

int cmdInventory(const Args& a, std::istream& in, std::ostream& out, std::ostream& err) {
  if (a.help) {
    out << kInventoryHelp;
    return kExitOk;
  }
  std::string format = a.flags.contains("format") ? a.flags.at("format") : "text";
  if (format != "text" && format != "json") {
    err << "zonewall inventory: --format must be text or json\n";
    return kExitUsage;
  }
  Loaded l;
  if (auto rc = load(a, in, err, l)) return *rc;
  if (reportLoadErrors(l.diags, err)) return kExitFindings;
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

const char* kHelp = R"(usage: zonewall COMMAND [ARGS...]

Label-based zone policies compiled into an nftables classification table.

commands:
  lint     PATH... [--format text|json|sarif]          check policies, print findings
  compile  PATH... --node NODE [--format nft|json]     the node's table as nft script or JSON
  matrix   PATH... [--port N] [--protocol P] [--format text|json]
                                                       pod x pod reachability
  explain  PATH... --from NS/POD|IP --to NS/POD|IP --port N/PROTO
                                                       why a connection is allowed or denied
  inventory PATH... [--format text|json]               the pods: node, IPs, named ports
  apply    PATH... --node NODE [--netns NAME] [--dry-run]
                                                       program the node's table into nftables
  verify   PATH... --node NODE [--netns NAME] [--repair]
                                                       report (and repair) drift in the kernel

PATH is a file, a directory (*.yaml, *.yml, recursively) or - for stdin.
`zonewall COMMAND --help` describes each command.
)";

}  // namespace

int runCli(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
           std::ostream& err) {
  if (args.empty()) {
    err << kHelp;
    return kExitUsage;
  }
  const std::string& cmd = args[0];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    out << kHelp;
    return kExitOk;
  }
  if (cmd == "--version" || cmd == "version") {
    out << "zonewall " << kVersion << "\n";
    return kExitOk;
  }
  struct Command {
    std::set<std::string> flags;
    int (*run)(const Args&, std::istream&, std::ostream&, std::ostream&);
  };
  static const std::map<std::string, Command> commands = {
      {"lint", {{"format"}, cmdLint}},
      {"compile", {{"node", "format"}, cmdCompile}},
      {"matrix", {{"port", "protocol", "format"}, cmdMatrix}},
      {"explain", {{"from", "to", "port"}, cmdExplain}},
      {"inventory", {{"format"}, cmdInventory}},
      {"apply", {{"node", "netns", "dry-run"}, cmdApply}},
      {"verify", {{"node", "netns", "repair"}, cmdVerify}},
  };
  auto it = commands.find(cmd);
  if (it == commands.end()) {
    err << "zonewall: unknown command '" << cmd << "'\n" << kHelp;
    return kExitUsage;
  }
  std::string error;
  auto parsed = parseArgs(args, 1, it->second.flags, &error);
  if (!parsed) {
    err << "zonewall " << cmd << ": " << error << " (see zonewall " << cmd << " --help)\n";
    return kExitUsage;
  }
  return it->second.run(*parsed, in, out, err);
}

}  // namespace zonewall::tools
