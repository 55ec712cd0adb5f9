// The Programmer against a fake kernel (the Transport seam, GoogleMock): when it reads the
// kernel, what it plans from what it reads, which transactions it commits, and what it
// remembers. No root: the kernel's side is pinned by tests/kernel/netlink_test.cpp.
#include "zonewall/dataplane/programmer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "compiler/harness.h"
#include "zonewall/dataplane/drift.h"

namespace zonewall::dataplane {
namespace {

using ::testing::_;
using ::testing::Return;

class FakeKernel : public Transport {
 public:
  MOCK_METHOD((std::expected<void, Error>), commit, (const Batch& batch), (override));
  MOCK_METHOD((std::expected<TableSnapshot, Error>), read, (const std::string& table), (override));
};

const std::string kPods = compiler::ns("x") + compiler::pod("x/a", "app: a", "10.0.0.1", "n1") +
                          compiler::pod("x/b", "app: b", "10.0.0.2", "n1");
const std::string kPolicy =
    "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
    "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {app: a}}\n"
    "  ingress: [{from: [{podSelector: {matchLabels: {app: b}}}], ports: [{port: PORT}]}]\n";

Ruleset rulesetWithPort(int port) {
  std::string policy = kPolicy;
  policy.replace(policy.find("PORT"), 4, std::to_string(port));
  compiler::Cluster c(kPods + policy);
  return buildRuleset(c.table("n1"));
}

std::expected<void, Error> ok() { return {}; }

// The first plan reads the kernel; after a commit, plans diff against what was committed and
// never read again: a create is two transactions, a policy change an element update.
TEST(Programmer, ReadsTheKernelOnlyForItsFirstPlan) {
  FakeKernel kernel;
  EXPECT_CALL(kernel, read("zonewall")).Times(1).WillOnce(Return(TableSnapshot{}));
  std::vector<std::vector<BatchMessage>> committed;
  EXPECT_CALL(kernel, commit(_)).WillRepeatedly([&](const Batch& b) {
    committed.push_back(b.contents);
    return ok();
  });
  Programmer programmer(kernel);

  auto create = programmer.plan(rulesetWithPort(80));
  ASSERT_TRUE(create.has_value());
  EXPECT_TRUE(create->read_kernel);
  EXPECT_EQ(create->kind, Programmer::Plan::Kind::kCreate);
  ASSERT_TRUE(programmer.commit(std::move(*create)).has_value());
  EXPECT_EQ(committed.size(), 2U);

  auto update = programmer.plan(rulesetWithPort(8080));
  ASSERT_TRUE(update.has_value());
  EXPECT_FALSE(update->read_kernel);
  EXPECT_EQ(update->kind, Programmer::Plan::Kind::kUpdate);
  EXPECT_FALSE(update->diff.sets.empty());
  ASSERT_TRUE(programmer.commit(std::move(*update)).has_value());
  EXPECT_GT(committed.size(), 2U);

  auto same = programmer.plan(rulesetWithPort(8080));
  ASSERT_TRUE(same.has_value());
  EXPECT_EQ(same->kind, Programmer::Plan::Kind::kNothing);
  const size_t before = committed.size();
  ASSERT_TRUE(programmer.commit(std::move(*same)).has_value());
  EXPECT_EQ(committed.size(), before);
}

// A commit the kernel refuses leaves the state unknown (some transactions may have gone
// through): the next plan reads the kernel again.
TEST(Programmer, AFailedCommitMakesTheNextPlanRead) {
  FakeKernel kernel;
  EXPECT_CALL(kernel, read("zonewall")).Times(2).WillRepeatedly(Return(TableSnapshot{}));
  EXPECT_CALL(kernel, commit(_))
      .WillOnce(Return(fail(Error::Code::kKernel, "refused", EINVAL)))
      .WillRepeatedly(Return(ok()));
  Programmer programmer(kernel);
  auto plan = programmer.plan(rulesetWithPort(80));
  ASSERT_TRUE(plan.has_value());
  auto committed = programmer.commit(std::move(*plan));
  ASSERT_FALSE(committed.has_value());
  EXPECT_EQ(committed.error().sys_errno, EINVAL);
  EXPECT_FALSE(programmer.known().has_value());
  auto again = programmer.plan(rulesetWithPort(80));
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->read_kernel);
}

// A kernel that holds exactly the table plans nothing; the snapshot analyses back to it.
TEST(Programmer, TheKernelHoldingTheTablePlansNothing) {
  const Ruleset want = rulesetWithPort(80);
  KernelState state = analyzeSnapshot(want, snapshotOf(want));
  EXPECT_TRUE(state.exists);
  EXPECT_TRUE(state.skeleton_matches);
  EXPECT_TRUE(state.drift.empty());
  ASSERT_EQ(state.ruleset.sets.size(), want.sets.size());
  for (size_t i = 0; i < want.sets.size(); ++i) {
    EXPECT_EQ(state.ruleset.sets[i].elements.size(), want.sets[i].elements.size())
        << want.sets[i].name;
  }
  FakeKernel kernel;
  EXPECT_CALL(kernel, read("zonewall")).WillOnce(Return(snapshotOf(want)));
  EXPECT_CALL(kernel, commit(_)).Times(0);
  Programmer programmer(kernel);
  auto plan = programmer.plan(want);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->kind, Programmer::Plan::Kind::kNothing);
  EXPECT_TRUE(plan->empty());
}

// An element someone edited by hand is drift an update repairs: exactly that entry is
// replaced, nothing else.
TEST(Programmer, AnEditedElementIsRepairedByAnUpdate) {
  const Ruleset want = rulesetWithPort(80);
  TableSnapshot edited = snapshotOf(want);
  auto exact = std::ranges::find_if(edited.sets, [](const auto& kv) {
    return kv.first.ends_with("_exact") && !kv.second.elements.empty();
  });
  ASSERT_NE(exact, edited.sets.end());
  Verdict& v = exact->second.elements.front().verdict;
  v = {v.kind == Verdict::Kind::kReturn ? Verdict::Kind::kContinue : Verdict::Kind::kReturn, {}};
  FakeKernel kernel;
  EXPECT_CALL(kernel, read("zonewall")).WillOnce(Return(edited));
  Programmer programmer(kernel);
  auto plan = programmer.plan(want);
  ASSERT_TRUE(plan.has_value());
  ASSERT_EQ(plan->kind, Programmer::Plan::Kind::kUpdate);
  ASSERT_EQ(plan->diff.sets.size(), 1U);
  EXPECT_EQ(plan->diff.sets.front().set, exact->first);
  EXPECT_EQ(plan->diff.sets.front().add.size(), 1U);
  EXPECT_EQ(plan->diff.sets.front().remove.size(), 1U);
}

// A table whose skeleton differs (a chain gone) is replaced, built aside first, and the plan
// says why; a left-over aside table is reported as drift.
TEST(Programmer, AForeignSkeletonIsReplacedAndSaysWhy) {
  const Ruleset want = rulesetWithPort(80);
  TableSnapshot foreign = snapshotOf(want);
  const std::string gone = "forward";  // a base chain: never one an update would add
  foreign.chains.erase(gone);
  foreign.rules.erase(gone);
  foreign.aside_exists = true;
  FakeKernel kernel;
  EXPECT_CALL(kernel, read("zonewall")).WillOnce(Return(foreign));
  std::vector<BatchMessage> first_messages;
  int commits = 0;
  EXPECT_CALL(kernel, commit(_)).WillRepeatedly([&](const Batch& b) {
    if (commits++ == 0) {
      first_messages = b.contents;
    }
    return ok();
  });
  Programmer programmer(kernel);
  auto plan = programmer.plan(want);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->kind, Programmer::Plan::Kind::kReplace);
  EXPECT_TRUE(std::ranges::find(plan->drift, "chain " + gone + " is missing") != plan->drift.end());
  EXPECT_TRUE(std::ranges::find(plan->drift,
                                "table inet zonewall_aside is left from an interrupted replace") !=
              plan->drift.end());
  ASSERT_TRUE(programmer.commit(std::move(*plan)).has_value());
  EXPECT_EQ(commits, 4);  // aside: two transactions; in place: two
  EXPECT_TRUE(std::ranges::any_of(first_messages, [](const BatchMessage& m) {
    return m.op == BatchMessage::Op::kAddTable && m.object == "zonewall_aside";
  }));
}

}  // namespace
}  // namespace zonewall::dataplane
