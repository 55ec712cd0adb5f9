// Kubernetes NetworkPolicy conformance: every case and step of the upstream e2e suite
// (tests/conformance/data/k8s-netpol-e2e.yaml) through `zonewall matrix`, each probe's full 9x9
// matrix compared, self pairs included.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "conformance/conformance_cases.h"

namespace zonewall::testing {
namespace {

using Conformance = ConformanceFixture;

// Every probe of every case and step: the matrix zonewall computes equals the expected one.
TEST_F(Conformance, EveryCaseMatchesUpstreamTruthTable) {
  std::vector<Scenario> scenarios = loadScenarios(root_);
  ASSERT_GE(scenarios.size(), 18u);
  const YAML::Node model = root_["model"];
  std::vector<std::string> pods;
  for (const auto& ns : model["namespaces"]) {
    for (const auto& p : model["pods"])
      pods.push_back(ns.as<std::string>() + "/" + p.as<std::string>());
  }
  size_t probes = 0;
  for (const Scenario& sc : scenarios) {
    SCOPED_TRACE(sc.name);
    TempDir dir;
    dir.write("inventory.yaml", inventoryYaml(model, sc));
    dir.write("policies.yaml", policiesYaml(model, sc.policies));
    for (const Probe& probe : sc.probes) {
      RunResult r =
          run(zonewallBinary() + " matrix " + dir.path().string() + " --port " +
              std::to_string(probe.port) + " --protocol " + probe.protocol + " --format json");
      ASSERT_EQ(r.exit_code, 0) << r.out;
      auto j = nlohmann::json::parse(r.out);
      ASSERT_EQ(j["results"].size(), 81u);
      std::set<std::string> denied;
      for (const auto& row : j["results"]) {
        if (!row["allowed"].get<bool>())
          denied.insert(row["from"].get<std::string>() + " -> " + row["to"].get<std::string>());
      }
      EXPECT_EQ(denied, probe.denied) << "probe " << probe.port << "/" << probe.protocol;
      ++probes;
    }
  }
  EXPECT_GE(probes, 20u);
}

// The repository's copies of the transcribed cases are the ones the steering repository
// publishes beside the checkout (../shared/conformance/), byte for byte, when that is present:
// a refreshed upstream transcription is noticed rather than silently not run.
TEST(ConformanceData, CopiesMatchTheSharedOnesWhenPresent) {
  const fs::path shared = fs::path(sourceDir()) / ".." / "shared" / "conformance";
  if (!fs::exists(shared)) {
    if (inCi())
      FAIL() << "CI runs with ../shared beside the checkout, and " << shared << " is missing";
    GTEST_SKIP() << "no " << shared << " beside the checkout: nothing to compare";
  }
  auto slurp = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  size_t compared = 0;
  for (const auto& entry : fs::directory_iterator(shared)) {
    if (entry.path().extension() != ".yaml") continue;
    const fs::path ours =
        fs::path(sourceDir()) / "tests" / "conformance" / "data" / entry.path().filename();
    ASSERT_TRUE(fs::exists(ours)) << entry.path() << " has no copy in tests/conformance/data/";
    EXPECT_EQ(slurp(ours), slurp(entry.path())) << ours << " differs from " << entry.path();
    ++compared;
  }
  EXPECT_GT(compared, 0u);
}

}  // namespace
}  // namespace zonewall::testing
