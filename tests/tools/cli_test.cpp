// The `zonewall` CLI contract: exit codes, formats, golden outputs. Runs the real binary.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_support.h"

namespace zonewall::testing {
namespace {

std::string zw(const std::string& args) { return zonewallBinary() + " " + args; }
std::string bank() { return sourceDir() + "/examples/bank"; }

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Golden files are byte-stable; ZONEWALL_UPDATE_GOLDEN=1 rewrites them.
void expectGolden(const std::string& name, const std::string& actual) {
  std::string path = sourceDir() + "/tests/golden/" + name;
  if (const char* u = std::getenv("ZONEWALL_UPDATE_GOLDEN");
      u != nullptr && std::string(u) == "1") {
    std::ofstream(path) << actual;
    return;
  }
  std::string want = readFile(path);
  ASSERT_FALSE(want.empty()) << "missing golden file " << path
                             << " (regenerate with ZONEWALL_UPDATE_GOLDEN=1)";
  EXPECT_EQ(actual, want) << "golden " << name
                          << " differs; if intended: ZONEWALL_UPDATE_GOLDEN=1 ctest -R Cli";
}

// Every subcommand answers --help with exit 0; unknown commands and flags exit 2.
TEST(Cli, HelpAndUsageErrors) {
  for (const char* cmd : {"lint", "compile", "matrix", "explain", "apply", "verify", "inventory"}) {
    RunResult r = run(zw(std::string(cmd) + " --help"));
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find("usage: zonewall " + std::string(cmd)), std::string::npos) << cmd;
  }
  EXPECT_EQ(run(zw("--help")).exit_code, 0);
  EXPECT_EQ(run(zw("frobnicate 2>/dev/null")).exit_code, 2);
  EXPECT_EQ(run(zw("lint " + bank() + " --colour 2>/dev/null")).exit_code, 2);
  EXPECT_EQ(run(zw("lint " + bank() + " --format xml 2>/dev/null")).exit_code, 2);
  EXPECT_EQ(run(zw("compile " + bank() + " 2>/dev/null")).exit_code, 2);  // --node missing
  EXPECT_EQ(run(zw("matrix " + bank() + " --port 0 2>/dev/null")).exit_code, 2);
  EXPECT_EQ(run(zw("explain " + bank() + " --from a --to b --port 80 2>/dev/null")).exit_code, 2);
  EXPECT_EQ(run(zw("lint /nonexistent/path 2>/dev/null")).exit_code, 2);
  EXPECT_EQ(run(zw("lint 2>/dev/null")).exit_code, 2);
}

// lint: the example is clean (exit 0); a bad file gives file:line:col findings and exit 1.
TEST(Cli, LintExitCodesAndText) {
  EXPECT_EQ(run(zw("lint " + bank() + " 2>/dev/null")).exit_code, 0);
  std::string bad = sourceDir() + "/tests/golden/bad/bad-cidr.yaml";
  RunResult r = run(zw("lint " + bad + " 2>/dev/null"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(
      r.out.find(bad + ":12:15: error: ipBlock.cidr: invalid CIDR '10.0.0.0/33' [invalid-cidr]"),
      std::string::npos)
      << r.out;
}

// lint reads stdin with "-".
TEST(Cli, LintReadsStdin) {
  RunResult r = run("printf 'apiVersion: v1\\nkind: Nope\\n' | " + zw("lint - 2>/dev/null"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("<stdin>:2:7: error:"), std::string::npos) << r.out;
}

// lint --format json and sarif: well-formed, with the findings and their locations.
TEST(Cli, LintJsonAndSarif) {
  std::string bad = sourceDir() + "/tests/golden/bad/many-errors.yaml";
  RunResult j = run(zw("lint " + bad + " --format json"));
  EXPECT_EQ(j.exit_code, 1);
  auto doc = nlohmann::json::parse(j.out);
  EXPECT_EQ(doc["errors"], 2);
  EXPECT_EQ(doc["findings"][0]["line"], 14);
  EXPECT_EQ(doc["findings"][0]["rule"], "invalid-cidr");

  RunResult s = run(zw("lint " + bad + " --format sarif"));
  EXPECT_EQ(s.exit_code, 1);
  auto sarif = nlohmann::json::parse(s.out);
  EXPECT_EQ(sarif["version"], "2.1.0");
  EXPECT_EQ(sarif["$schema"], "https://json.schemastore.org/sarif-2.1.0.json");
  const auto& run0 = sarif["runs"][0];
  EXPECT_EQ(run0["tool"]["driver"]["name"], "zonewall");
  std::set<std::string> rule_ids;
  for (const auto& rule : run0["tool"]["driver"]["rules"]) rule_ids.insert(rule["id"]);
  ASSERT_EQ(run0["results"].size(), 3u);
  for (const auto& res : run0["results"]) {
    EXPECT_TRUE(rule_ids.contains(res["ruleId"]))
        << res["ruleId"];  // every result's rule is declared
    EXPECT_TRUE(res["level"] == "error" || res["level"] == "warning" || res["level"] == "note");
    EXPECT_FALSE(res["message"]["text"].get<std::string>().empty());
    const auto& loc = res["locations"][0]["physicalLocation"];
    EXPECT_EQ(loc["artifactLocation"]["uri"], bad);
    EXPECT_GE(loc["region"]["startLine"].get<int>(), 1);
    EXPECT_GE(loc["region"]["startColumn"].get<int>(), 1);
  }
}

// compile: golden nft script and JSON table of the bank example's node-a.
TEST(Cli, CompileGolden) {
  // Relative paths, so that the locations inside do not depend on the checkout's place.
  std::string cd = "cd " + sourceDir() + " && ";
  RunResult nft = run(cd + zw("compile examples/bank --node node-a"));
  ASSERT_EQ(nft.exit_code, 0);
  expectGolden("bank-node-a.nft", nft.out);
  RunResult json = run(cd + zw("compile examples/bank --node node-a --format json"));
  ASSERT_EQ(json.exit_code, 0);
  expectGolden("bank-node-a.json", json.out);
  auto doc = nlohmann::json::parse(json.out);
  EXPECT_EQ(doc["counts"]["entries"].get<size_t>(),
            doc["ingress"]["entries"].size() + doc["egress"]["entries"].size());
}

// Bad input to compile: errors on stderr, exit 1, nothing on stdout.
TEST(Cli, CompileRefusesBadInput) {
  RunResult r = run(
      zw("compile " + sourceDir() + "/tests/golden/bad/bad-selector.yaml --node n 2>/dev/null"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty());
}

// matrix --format json: one row per ordered pod pair, in the documented shape.
TEST(Cli, MatrixJson) {
  RunResult r = run(zw("matrix " + bank() + " --port 5432 --protocol TCP --format json"));
  ASSERT_EQ(r.exit_code, 0);
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["port"], 5432);
  EXPECT_EQ(doc["protocol"], "TCP");
  ASSERT_EQ(doc["results"].size(), 49u);
  std::map<std::string, bool> m;
  for (const auto& row : doc["results"])
    m[row["from"].get<std::string>() + ">" + row["to"].get<std::string>()] = row["allowed"];
  EXPECT_TRUE(m.at("internal/api-1>secure/ledger"));
  EXPECT_FALSE(m.at("internal/batch>secure/ledger"));
  EXPECT_FALSE(m.at("public/web-1>secure/ledger"));
}

// explain names the deciding policy, rule and file:line of each side.
TEST(Cli, Explain) {
  RunResult r =
      run(zw("explain " + bank() + " --from internal/batch --to secure/ledger --port 5432/TCP"));
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find(
                "ingress  secure/ledger (10.244.0.30) (node 'node-a'): DENY by GlobalNetworkPolicy "
                "security.secure-zone-isolation ingress rule 2 (Deny) at " +
                bank() + "/calico/tiers.yaml:"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("verdict: DENIED"), std::string::npos);
  RunResult ok =
      run(zw("explain " + bank() + " --from 192.0.2.9 --to public/web-1 --port 8080/TCP"));
  EXPECT_NE(ok.out.find("verdict: ALLOWED"), std::string::npos) << ok.out;
  EXPECT_EQ(
      run(zw("explain " + bank() + " --from nope/x --to public/web-1 --port 80/TCP 2>/dev/null"))
          .exit_code,
      2);
}

// explain names the cluster-admin policy that decided: kind, name, tier, priority, the rule's
// index and name, its file:line — and the baseline's.
TEST(Cli, ExplainNamesTheAdminPolicyThatDecided) {
  std::string cd = "cd " + sourceDir() + " && ";
  RunResult vault =
      run(cd + zw("explain examples/bank --from internal/api-1 --to secure/vault --port 8200/TCP"));
  ASSERT_EQ(vault.exit_code, 0) << vault.out;
  EXPECT_NE(vault.out.find("ingress  secure/vault (10.244.1.30) (node 'node-b'): DENY by "
                           "AdminNetworkPolicy secure-ingress (tier kube-admin, priority 10) "
                           "ingress rule 3 'nobody-else' (Deny) at "
                           "examples/bank/admin/cluster-admin.yaml:45:5"),
            std::string::npos)
      << vault.out;
  EXPECT_NE(vault.out.find("verdict: DENIED"), std::string::npos) << vault.out;
  RunResult ledger =
      run(cd + zw("explain examples/bank --from secure/ledger --to secure/vault --port 8200/TCP"));
  EXPECT_NE(ledger.out.find("ALLOW by AdminNetworkPolicy secure-ingress (tier kube-admin, "
                            "priority 10) ingress rule 1 'ledger-to-vault' (Allow) at "
                            "examples/bank/admin/cluster-admin.yaml:30:5"),
            std::string::npos)
      << ledger.out;
  RunResult batch = run(
      cd + zw("explain examples/bank --from internal/api-1 --to internal/batch --port 8081/TCP"));
  EXPECT_NE(batch.out.find("DENY by BaselineAdminNetworkPolicy default (tier kube-baseline) "
                           "ingress rule 1 'default-deny' (Deny) at "
                           "examples/bank/admin/cluster-admin.yaml:65:5"),
            std::string::npos)
      << batch.out;
}

// The security team stages a stricter secure-zone isolation (api may no longer pass) and the
// deletion of the ledger's own policy (the cluster baseline keeps the ledger closed then); the
// internal team stages a policy that lets the API call batch jobs (and so isolates batch from
// the monitoring scrape the baseline allowed): previewed against the bank before promoting.
const char* kBankStaged = R"(apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata:
  name: security.secure-zone-isolation
spec:
  tier: security
  order: 20
  selector: zone == 'secure'
  types: [Ingress]
  ingress:
  - action: Pass
    source:
      selector: zone == 'secure'
  - action: Deny
---
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata: {name: ledger, namespace: secure}
spec: {stagedAction: Delete}
---
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata: {name: batch, namespace: internal}
spec:
  podSelector: {matchLabels: {app: batch}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: api}}}]
    ports: [{port: http}]
)";

// Staged policies are linted, never enforced, and previewed by explain/matrix --staged.
TEST(Cli, StagedPoliciesPreviewedNeverEnforced) {
  TempDir dir;
  const std::string staged = dir.write("staged.yaml", kBankStaged).string();
  const std::string in = bank() + " " + staged;
  // Never enforced: node-a's table is byte for byte the bank's golden one.
  RunResult compiled = run(zw("compile " + in + " --node node-a"));
  ASSERT_EQ(compiled.exit_code, 0);
  EXPECT_EQ(compiled.out, readFile(sourceDir() + "/tests/golden/bank-node-a.nft"));
  // Linted: what promotion would do, at the staged object's file:line.
  RunResult lint = run(zw("lint " + in));
  EXPECT_EQ(lint.exit_code, 0) << lint.out;
  EXPECT_NE(
      lint.out.find(staged + ":1:1: info: StagedGlobalNetworkPolicy is not enforced; promoting it "
                             "would replace GlobalNetworkPolicy security.secure-zone-isolation "
                             "[staged-policy]"),
      std::string::npos)
      << lint.out;
  EXPECT_NE(lint.out.find("would delete NetworkPolicy secure/ledger"), std::string::npos)
      << lint.out;
  // explain --staged: allowed today, denied once promoted, by the staged rule.
  RunResult e = run(
      zw("explain " + in + " --from internal/api-1 --to secure/ledger --port 5432/TCP --staged"));
  ASSERT_EQ(e.exit_code, 0) << e.out;
  EXPECT_NE(e.out.find("verdict: ALLOWED\nif the 3 staged policies were promoted:"),
            std::string::npos)
      << e.out;
  EXPECT_NE(e.out.find("security.secure-zone-isolation ingress rule 1 (Deny) at " + staged + ":14"),
            std::string::npos)
      << e.out;
  EXPECT_NE(e.out.find("promotion changes the verdict: ALLOWED -> DENIED"), std::string::npos)
      << e.out;
  // Without --staged, explain answers for what is enforced only.
  RunResult plain =
      run(zw("explain " + in + " --from internal/api-1 --to secure/ledger --port 5432/TCP"));
  EXPECT_EQ(plain.out.find("staged"), std::string::npos) << plain.out;
  // matrix --staged: the cells promotion would open and close, in JSON and text.
  auto cells = [&](const std::string& port) {
    RunResult m = run(zw("matrix " + in + " --port " + port + " --format json --staged"));
    EXPECT_EQ(m.exit_code, 0) << m.out;
    std::map<std::string, std::pair<bool, bool>> out;  // "from -> to" → (now, staged)
    const auto doc = nlohmann::json::parse(m.out);
    for (const auto& row : doc["results"]) {
      out[row["from"].get<std::string>() + " -> " + row["to"].get<std::string>()] = {row["allowed"],
                                                                                     row["staged"]};
    }
    return out;
  };
  auto ledger = cells("5432");
  EXPECT_EQ(ledger["internal/api-1 -> secure/ledger"], std::pair(true, false));
  // Without the ledger's own policy the baseline decides: still closed to its zone.
  EXPECT_EQ(ledger["secure/vault -> secure/ledger"], std::pair(false, false));
  auto batch = cells("8081");
  EXPECT_EQ(batch["internal/api-1 -> internal/batch"], std::pair(false, true));
  EXPECT_EQ(batch["monitoring/prometheus -> internal/batch"], std::pair(true, false));
  RunResult text = run(zw("matrix " + in + " --port 8081 --staged"));
  const size_t body = text.out.find('\n');
  EXPECT_NE(text.out.find("'+' opened, '-' closed"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("  -", body), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("  +", body), std::string::npos) << text.out;
}

// The largest resident set of any child waited for so far, in bytes (each test runs in its own
// process under ctest).
size_t childrenMaxRss() {
  rusage u{};
  ::getrusage(RUSAGE_CHILDREN, &u);
  return static_cast<size_t>(u.ru_maxrss) * 1024;
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;  // shadow memory and redzones: no memory bound holds
#else
constexpr bool kSanitized = false;
#endif

// Resource bounds (README "Fuzzing"): 65,536 port ranges load, lint and compile to what they say,
// in the documented memory (about 100 bytes per byte of the largest document); a policy with a
// million peers is past the per-document limit and is refused at its first line, unparsed.
TEST(Cli, ResourceBoundsOnHugePolicies) {
  TempDir dir;
  const std::string head =
      "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
      "metadata: {name: huge, namespace: public}\nspec:\n  podSelector: {}\n  ingress:\n";
  const std::string inv = bank() + "/inventory";
  const std::string peers = (dir.path() / "peers.yaml").string();
  {
    std::ofstream out(peers);
    out << head << "  - from:\n";
    for (int i = 0; i < 1000000; ++i) {
      out << "    - ipBlock: {cidr: 10." << (i >> 16) << '.' << ((i >> 8) & 255) << '.' << (i & 255)
          << "/32}\n";
    }
  }
  RunResult refused = run(zw("lint " + peers + " " + inv + " 2>&1"));
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.out.find(peers + ":1:1: error: document of 3"), std::string::npos)
      << refused.out;
  EXPECT_NE(refused.out.find("[document-too-large]"), std::string::npos) << refused.out;
  // Read, never parsed: the file and a copy or two of it (first, so that no other child's
  // resident set is in the figure).
  if (!kSanitized) {
    EXPECT_LT(childrenMaxRss(), 4 * std::filesystem::file_size(peers) + (64u << 20));
  }

  const std::string ports = (dir.path() / "ports.yaml").string();
  {
    std::ofstream out(ports);
    out << head << "  - ports:\n";
    for (int i = 0; i < 65536; ++i) {  // every odd port, once for TCP and once for UDP
      int p = (i % 32768) * 2 + 1;
      out << "    - {port: " << p << ", endPort: " << p
          << ", protocol: " << (i < 32768 ? "TCP" : "UDP") << "}\n";
    }
  }
  RunResult compiled = run(zw("compile " + ports + " " + inv + " --node node-a --format json"));
  ASSERT_EQ(compiled.exit_code, 0) << compiled.out.substr(0, 500);
  EXPECT_TRUE(nlohmann::json::parse(compiled.out, nullptr, false).is_object());
  EXPECT_EQ(run(zw("lint " + ports + " " + inv)).exit_code, 0);
  for (auto [port, verdict] : {std::pair{"40001/TCP", "ALLOW"},
                               {"40000/TCP", "DENY"},
                               {"65535/UDP", "ALLOW"},
                               {"2/UDP", "DENY"}}) {
    RunResult r = run(zw("explain " + ports + " " + inv + " --from 10.1.2.3 --to public/web-1 " +
                         "--port " + port));
    EXPECT_NE(
        r.out.find(std::string("ingress  public/web-1 (10.244.0.10) (node 'node-a'): ") + verdict),
        std::string::npos)
        << port << "\n"
        << r.out;
  }
  size_t ports_size = std::filesystem::file_size(ports);
  if (!kSanitized) {
    EXPECT_LT(childrenMaxRss(), 100 * ports_size + (128u << 20));
  }
}

}  // namespace
}  // namespace zonewall::testing

namespace zonewall::testing {
namespace {

// A run whose stderr is kept too.
struct Run3 {
  int exit_code = -1;
  std::string out;
  std::string err;
};
Run3 run3(const std::string& cmdline) {
  TempDir t;
  const std::string errf = t.path().string() + "/stderr";
  RunResult r = run(cmdline + " 2>" + errf);
  return {r.exit_code, r.out, readFile(errf)};
}

const char* kBankChange =
    "diff examples/bank --to examples/bank/inventory examples/bank/kubernetes "
    "examples/bank-change";

// diff of the demo's change, in every format, against golden files; the SARIF is well-formed.
TEST(Cli, DiffGoldenEveryFormat) {
  std::string cd = "cd " + sourceDir() + " && ";
  for (const auto& [format, file] :
       std::map<std::string, std::string>{{"text", "bank-diff.txt"},
                                          {"json", "bank-diff.json"},
                                          {"markdown", "bank-diff.md"},
                                          {"sarif", "bank-diff.sarif"}}) {
    Run3 r = run3(cd + zw(std::string(kBankChange) + " --format " + format));
    ASSERT_EQ(r.exit_code, 0) << format << ": " << r.err;
    expectGolden(file, r.out);
  }
  RunResult s = run(cd + zw(std::string(kBankChange) + " --format sarif"));
  auto sarif = nlohmann::json::parse(s.out);
  EXPECT_EQ(sarif["version"], "2.1.0");
  const auto& run0 = sarif["runs"][0];
  std::set<std::string> rule_ids;
  for (const auto& rule : run0["tool"]["driver"]["rules"]) rule_ids.insert(rule["id"]);
  ASSERT_EQ(run0["results"].size(), 1u);
  for (const auto& res : run0["results"]) {
    EXPECT_TRUE(rule_ids.contains(res["ruleId"])) << res["ruleId"];
    const auto& loc = res["locations"][0]["physicalLocation"];
    EXPECT_EQ(loc["artifactLocation"]["uri"], "examples/bank-change/kubernetes/ledger-batch.yaml");
    EXPECT_EQ(loc["region"]["startLine"], 11);
  }
  // The change keeps the bank's contract: batch reaching the ledger on 5432 is what
  // allowOnly internal → secure permits.
  Run3 c = run3(cd + zw(std::string(kBankChange) + " --contract examples/contracts/bank.yaml"));
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  // Against a contract that forbids it: exit 1, the statement and a pod pair named.
  RunResult v =
      run(cd + zw(std::string(kBankChange) + " --contract tests/golden/contracts/violated.yaml"));
  EXPECT_EQ(v.exit_code, 1);
  EXPECT_NE(v.out.find("breaks contract statement deny internal → secure at "
                       "tests/golden/contracts/violated.yaml:12:5: e.g. internal/batch → "
                       "secure/ledger TCP 5432"),
            std::string::npos)
      << v.out;
}

// git:REV:PATH on both sides, from a repository made here; a bad revision is exit 2.
TEST(Cli, DiffReadsGitRevisions) {
  TempDir tmp;
  const std::string dir = tmp.path().string();
  std::string git = "cd " + dir + " && git -c user.name=t -c user.email=t@example.com ";
  ASSERT_EQ(run("cp -r " + sourceDir() + "/examples/bank " + dir + "/bank").exit_code, 0);
  ASSERT_EQ(run(git + "init -q && " + git + "add . && " + git + "commit -qm before").exit_code, 0);
  ASSERT_EQ(
      run("cp " + sourceDir() + "/examples/bank-change/kubernetes/ledger-batch.yaml " + dir +
          "/bank/kubernetes/ && cp " + sourceDir() + "/examples/bank-change/calico/tiers.yaml " +
          dir + "/bank/calico/ && cp " + sourceDir() +
          "/examples/bank-change/admin/cluster-admin.yaml " + dir + "/bank/admin/")
          .exit_code,
      0);
  ASSERT_EQ(run(git + "add . && " + git + "commit -qm after").exit_code, 0);
  Run3 r = run3("cd " + dir + " && " + zw("diff git:HEAD~1:bank --to git:HEAD:bank --format json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  ASSERT_EQ(doc["changes"].size(), 1u);
  EXPECT_EQ(doc["changes"][0]["change"], "opened");
  EXPECT_EQ(doc["changes"][0]["by"][0]["location"]["file"],
            "git:HEAD:bank/kubernetes/ledger-batch.yaml");
  // The working tree against its own HEAD: nothing changes.
  RunResult same = run("cd " + dir + " && " + zw("diff git:HEAD:bank --to bank"));
  EXPECT_EQ(same.exit_code, 0);
  EXPECT_EQ(same.out, "zonewall diff: no flow opens or closes\n");
  Run3 bad = run3("cd " + dir + " && " + zw("diff git:no-such-rev:bank --to bank"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(bad.out.empty());
  EXPECT_NE(bad.err.find("git:no-such-rev:bank: no such revision 'no-such-rev'"), std::string::npos)
      << bad.err;
  Run3 nopath = run3("cd " + dir + " && " + zw("diff git:HEAD:nowhere --to bank"));
  EXPECT_EQ(nopath.exit_code, 2);
  EXPECT_TRUE(nopath.out.empty());
}

// check: the bank keeps its contract (golden text and JSON); a contract it breaks is exit 1
// with a counterexample per violation; a bad contract is exit 2 at its file:line:col.
TEST(Cli, CheckZoneContracts) {
  std::string cd = "cd " + sourceDir() + " && ";
  Run3 ok = run3(cd + zw("check examples/bank --contract examples/contracts/bank.yaml"));
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  expectGolden("bank-check.txt", ok.out);
  RunResult violated =
      run(cd + zw("check examples/bank --contract tests/golden/contracts/violated.yaml"));
  EXPECT_EQ(violated.exit_code, 1);
  expectGolden("bank-check-violated.txt", violated.out);
  RunResult j = run(cd + zw("check examples/bank --contract tests/golden/contracts/violated.yaml "
                            "--format json"));
  EXPECT_EQ(j.exit_code, 1);
  expectGolden("bank-check-violated.json", j.out);
  auto doc = nlohmann::json::parse(j.out);
  EXPECT_FALSE(doc["holds"].get<bool>());
  const auto& deny = doc["statements"][0];
  EXPECT_EQ(deny["violations"][0]["from"], "internal/api-1");
  EXPECT_EQ(deny["violations"][0]["to"], "secure/ledger");
  EXPECT_EQ(deny["violations"][0]["port"], 5432);
  EXPECT_EQ(deny["violations"][0]["ingress"]["location"]["file"],
            "examples/bank/kubernetes/secure.yaml");

  for (const auto& [file, where] : std::map<std::string, std::string>{
           {"unknown-zone.yaml", "unknown-zone.yaml:8:18: error: unknown zone 'pubilc'"},
           {"bad-selector.yaml",
            "bad-selector.yaml:6:39: error: zone secure namespaceSelector: "
            "invalid selector"},
           {"empty-zone.yaml", "empty-zone.yaml:7:5: error: zone 'payments' matches no pod"}}) {
    Run3 bad = run3(cd + zw("check examples/bank --contract tests/golden/contracts/" + file));
    EXPECT_EQ(bad.exit_code, 2) << file;
    EXPECT_TRUE(bad.out.empty()) << file << ": " << bad.out;
    EXPECT_NE(bad.err.find("tests/golden/contracts/" + where), std::string::npos)
        << file << ": " << bad.err;
  }
  Run3 none = run3(cd + zw("check examples/bank --contract examples/bank/kubernetes"));
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("expected one ZoneContract"), std::string::npos) << none.err;
}

}  // namespace
}  // namespace zonewall::testing

namespace zonewall::testing {
namespace {

// paths: from the public zone to the vault, golden; a bad selector or one matching no pod is
// exit 2 with nothing on stdout.
TEST(Cli, PathsFromPublicToTheVault) {
  std::string cd = "cd " + sourceDir() + " && ";
  Run3 r = run3(cd + zw("paths examples/bank --contract examples/contracts/bank.yaml --from public "
                        "--to vault"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expectGolden("bank-paths.txt", r.out);
  Run3 j = run3(cd + zw("paths examples/bank --contract examples/contracts/bank.yaml --from public "
                        "--to vault --format json"));
  ASSERT_EQ(j.exit_code, 0);
  auto doc = nlohmann::json::parse(j.out);
  ASSERT_EQ(doc["paths"].size(), 1u);
  EXPECT_EQ(doc["paths"][0]["hops"], 3);
  EXPECT_EQ(doc["paths"][0]["path"][2]["to"], "secure/app=vault");
  EXPECT_EQ(doc["cut"].size(), 1u);
  Run3 bounded = run3(cd + zw("paths examples/bank --contract examples/contracts/bank.yaml --from "
                              "public --to vault --max-hops 2"));
  EXPECT_EQ(bounded.exit_code, 0);
  EXPECT_NE(bounded.out.find("no path within 2 hop(s)"), std::string::npos) << bounded.out;
  // The default sources: pods that accept traffic from outside (the vault does: no rule of the
  // bank denies addresses that are not pods, an honest finding).
  Run3 d = run3(cd + zw("paths examples/bank --to \"app == 'vault'\" --format json"));
  ASSERT_EQ(d.exit_code, 0) << d.err;
  auto dd = nlohmann::json::parse(d.out);
  EXPECT_EQ(dd["from"]["what"], "pods that accept traffic from outside the cluster");
  for (const auto& [args, what] : std::map<std::string, std::string>{
           {"--to \"app == (\"", "--to 'app == (': invalid selector at column"},
           {"--to \"app == 'nothing'\"", "--to 'app == 'nothing'' matches no pod"}}) {
    Run3 bad = run3(cd + zw("paths examples/bank " + args));
    EXPECT_EQ(bad.exit_code, 2) << args;
    EXPECT_TRUE(bad.out.empty()) << bad.out;
    EXPECT_NE(bad.err.find(what), std::string::npos) << bad.err;
  }
}

// graph: DOT golden; SVG through Graphviz, parsed: a node per group, an edge per allowed
// flow, none red against the bank's own contract, a red one against a stricter contract.
TEST(Cli, GraphDotSvgJson) {
  std::string cd = "cd " + sourceDir() + " && ";
  Run3 dot = run3(cd + zw("graph examples/bank --group namespace"));
  ASSERT_EQ(dot.exit_code, 0) << dot.err;
  expectGolden("bank-graph-namespace.dot", dot.out);
  Run3 j = run3(cd + zw("graph examples/bank --format json"));
  ASSERT_EQ(j.exit_code, 0);
  auto doc = nlohmann::json::parse(j.out);
  const size_t nodes = doc["nodes"].size();
  const size_t edges = doc["edges"].size();
  ASSERT_GT(nodes, 3u);
  ASSERT_GT(edges, 3u);

  Run3 svg = run3(cd + zw("graph examples/bank --format svg"));
  ASSERT_EQ(svg.exit_code, 0) << svg.err;
  // Graphviz writes one <g class="node"> per node and one <g class="edge"> per edge, each
  // with a <title>; the labels are the groups.
  auto count = [&](const std::string& needle) {
    size_t c = 0;
    for (size_t at = svg.out.find(needle); at != std::string::npos;
         at = svg.out.find(needle, at + 1))
      ++c;
    return c;
  };
  EXPECT_NE(svg.out.find("<svg"), std::string::npos);
  EXPECT_NE(svg.out.find("</svg>"), std::string::npos);
  EXPECT_EQ(count("class=\"node\""), nodes);
  EXPECT_EQ(count("class=\"edge\""), edges);
  for (const auto& n : doc["nodes"]) {
    std::string label = n["label"];
    for (auto [from, to] :
         {std::pair<std::string, std::string>{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}}) {
      for (size_t at = label.find(from); at != std::string::npos;
           at = label.find(from, at + to.size()))
        label.replace(at, 1, to);
    }
    EXPECT_NE(svg.out.find(">" + label + "</text>"), std::string::npos) << label;
  }
  EXPECT_EQ(count("stroke=\"red\""), 0u);

  Run3 red = run3(cd + zw("graph examples/bank --group zone --format svg --contract "
                          "tests/golden/contracts/violated.yaml"));
  ASSERT_EQ(red.exit_code, 0) << red.err;
  EXPECT_NE(red.out.find("stroke=\"red\""), std::string::npos);
  Run3 zone = run3(cd + zw("graph examples/bank --group zone --format json --contract "
                           "tests/golden/contracts/violated.yaml"));
  auto zd = nlohmann::json::parse(zone.out);
  bool internal_to_secure_red = false;
  for (const auto& e : zd["edges"]) {
    if (zd["nodes"][e["from"].get<size_t>()]["label"] == "internal" &&
        zd["nodes"][e["to"].get<size_t>()]["label"] == "secure")
      internal_to_secure_red = e["against_contract"].get<bool>();
  }
  EXPECT_TRUE(internal_to_secure_red);
  Run3 nozone = run3(cd + zw("graph examples/bank --group zone"));
  EXPECT_EQ(nozone.exit_code, 2);
}

}  // namespace
}  // namespace zonewall::testing
