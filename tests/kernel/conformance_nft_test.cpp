// `nft -c -f` accepts `zonewall compile --format nft` of every conformance case (needs root).
#include <gtest/gtest.h>

#include "conformance/conformance_cases.h"

namespace zonewall::testing {
namespace {

using Conformance = ConformanceFixture;

// nft -c -f accepts the compiled ruleset of every case (one node holds all nine pods).
TEST_F(Conformance, NftAcceptsEveryCompiledCase) {
  if (!isRoot()) {
    if (inCi()) FAIL() << "kernel test needs root under CI";
    GTEST_SKIP() << "needs root for nft -c (run as root)";
  }
  ASSERT_EQ(run("command -v nft >/dev/null").exit_code, 0) << "nft not installed";
  const YAML::Node model = root_["model"];
  for (const Scenario& sc : loadScenarios(root_)) {
    SCOPED_TRACE(sc.name);
    TempDir dir;
    dir.write("inventory.yaml", inventoryYaml(model, sc));
    dir.write("policies.yaml", policiesYaml(model, sc.policies));
    fs::path nft = dir.path() / "out.nft";
    RunResult r = run(zonewallBinary() + " compile " + dir.path().string() + "/inventory.yaml " +
                      dir.path().string() + "/policies.yaml --node '' > " + nft.string());
    ASSERT_EQ(r.exit_code, 0);
    RunResult c = run("nft -c -f " + nft.string() + " 2>&1");
    EXPECT_EQ(c.exit_code, 0) << c.out;
  }
}

}  // namespace
}  // namespace zonewall::testing
