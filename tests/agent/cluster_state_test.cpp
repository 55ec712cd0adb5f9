// The agent's pure parts: API objects read by the policy loader, the cluster state assembled
// into one store (endpoint records, terminating pods, address clashes, missing tiers), and
// bursts coalesced into one snapshot.
#include "zonewall/agent/cluster_state.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "zonewall/agent/objects.h"
#include "zonewall/agent/packet_log.h"
#include "zonewall/policy/loader.h"

namespace zonewall::agent {
namespace {

using nlohmann::json;

json apiPod(const std::string& ns, const std::string& name, const std::string& node,
            const std::string& ip, json labels = json::object()) {
  // A list item as the API server sends it: no kind/apiVersion, fields the agent ignores.
  json pod = {
      {"metadata",
       {{"name", name},
        {"namespace", ns},
        {"uid", "0c2a"},
        {"resourceVersion", "42"},
        {"labels", labels},
        {"managedFields", json::array({{{"manager", "kubectl"}}})}}},
      {"spec",
       {{"nodeName", node},
        {"containers",
         json::array({{{"name", "main"},
                       {"image", "x"},
                       {"ports", json::array({{{"name", "http"}, {"containerPort", 8080}}})}}})}}},
      {"status", {{"phase", "Running"}, {"hostIP", "192.0.2.1"}}}};
  if (!ip.empty()) {
    pod["status"]["podIP"] = ip;
    pod["status"]["podIPs"] = json::array({{{"ip", ip}}});
  }
  return pod;
}

Object pod(const std::string& ns, const std::string& name, const std::string& node,
           const std::string& ip, json labels = json::object()) {
  Converted c = fromApi(Kind::kPod, apiPod(ns, name, node, ip, std::move(labels)));
  EXPECT_TRUE(c.object.has_value());
  return std::move(*c.object);
}

TEST(FromApi, PodKeepsWhatTheModelReads) {
  Converted c =
      fromApi(Kind::kPod, apiPod("bank", "web-0", "node-a", "10.244.0.7", {{"app", "web"}}));
  ASSERT_TRUE(c.object) << (c.errors.empty() ? "" : c.errors[0].str());
  EXPECT_EQ(c.key, "bank/web-0");
  ASSERT_EQ(c.object->store.pods.size(), 1u);
  const policy::Pod& p = c.object->store.pods[0];
  EXPECT_EQ(p.node, "node-a");
  ASSERT_EQ(p.ips.size(), 1u);
  EXPECT_EQ(formatAddr(p.ips[0]), "10.244.0.7");
  EXPECT_EQ(p.labels.at("app"), "web");
  ASSERT_EQ(p.ports.size(), 1u);
  EXPECT_EQ(p.ports[0].port, 8080);
  EXPECT_FALSE(c.object->terminating);
}

// A watch event whose object is not an object (found by fuzzing) is rejected, not a crash.
TEST(FromApi, ObjectThatIsNotAnObjectIsRejected) {
  for (Kind k : {Kind::kPod, Kind::kNetworkPolicy, Kind::kCalicoPolicy, Kind::kNode}) {
    for (const json& j : {json(6), json("x"), json::array({1}), json(nullptr)}) {
      Converted c = fromApi(k, j);
      EXPECT_FALSE(c.object) << j.dump();
      ASSERT_EQ(c.errors.size(), 1u) << j.dump();
      EXPECT_NE(c.errors[0].message.find("not an object"), std::string::npos);
    }
  }
}

TEST(FromApi, PodWithoutAnAddressYetIsStillAPod) {
  Converted c = fromApi(Kind::kPod, apiPod("bank", "web-0", "node-a", ""));
  ASSERT_TRUE(c.object);
  EXPECT_TRUE(c.object->store.pods[0].ips.empty());
}

TEST(FromApi, FinishedPodIsNoObjectAndTerminatingOneIsMarked) {
  json done = apiPod("bank", "job", "node-a", "10.244.0.8");
  done["status"]["phase"] = "Succeeded";
  Converted c = fromApi(Kind::kPod, done);
  EXPECT_FALSE(c.object);
  EXPECT_TRUE(c.errors.empty());
  EXPECT_EQ(c.key, "bank/job");

  json going = apiPod("bank", "web-0", "node-a", "10.244.0.7");
  going["metadata"]["deletionTimestamp"] = "2026-11-29T10:00:00Z";
  Converted g = fromApi(Kind::kPod, going);
  ASSERT_TRUE(g.object);
  EXPECT_TRUE(g.object->terminating);
}

TEST(FromApi, CalicoCrdIsReadAsV3AndDefaultTierPrefixDropped) {
  // As Calico's Kubernetes datastore stores a default-tier GlobalNetworkPolicy "deny-all".
  json gnp = {{"apiVersion", "crd.projectcalico.org/v1"},
              {"kind", "GlobalNetworkPolicy"},
              {"metadata", {{"name", "default.deny-all"}, {"resourceVersion", "7"}}},
              {"spec", {{"selector", "all()"}, {"types", json::array({"Ingress"})}}}};
  Converted c = fromApi(Kind::kGlobalPolicy, gnp);
  ASSERT_TRUE(c.object) << (c.errors.empty() ? "" : c.errors[0].str());
  EXPECT_EQ(c.key, "deny-all");
  ASSERT_EQ(c.object->store.calico_policies.size(), 1u);
  EXPECT_TRUE(c.object->store.calico_policies[0].global);
  EXPECT_EQ(c.object->store.calico_policies[0].name, "deny-all");
}

TEST(FromApi, BadPolicyIsRejectedNamingObjectAndField) {
  json np = {{"metadata", {{"name", "bad"}, {"namespace", "bank"}}},
             {"spec",
              {{"podSelector", json::object()},
               {"ingress", json::array({{{"ports", json::array({{{"port", 70000}}})}}})}}}};
  Converted c = fromApi(Kind::kNetworkPolicy, np);
  EXPECT_FALSE(c.object);
  ASSERT_FALSE(c.errors.empty());
  std::string text = c.errors[0].str();
  EXPECT_NE(text.find("NetworkPolicy bank/bad"), std::string::npos) << text;
  EXPECT_NE(text.find("70000"), std::string::npos) << text;
}

// A staged policy in a policy directory is loaded (and its errors reported) but is never an
// object the agent compiles: it exists to preview a change, as in Calico.
TEST(Objects, StagedPoliciesAreNeverEnforced) {
  policy::Store store;
  Diagnostics diags;
  policy::loadSources({{"p.yaml",
                        "apiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\n"
                        "metadata: {name: lockdown}\nspec: {selector: all(), ingress: [{action: "
                        "Deny}]}\n---\napiVersion: projectcalico.org/v3\nkind: "
                        "StagedKubernetesNetworkPolicy\nmetadata: {name: k, namespace: x}\n"
                        "spec: {podSelector: {}}\n"}},
                      store, diags);
  ASSERT_FALSE(diags.hasErrors());
  ASSERT_EQ(store.staged.size(), 2u);
  EXPECT_TRUE(objectsOf(std::move(store)).empty());
}

// Every snapshot with the whole store.
const std::function<bool(const ClusterState::Snapshot&)> full = [](const auto&) { return true; };

ClusterState::Snapshot takeNow(ClusterState& s) {
  std::atomic<bool> stop{false};
  auto snap = s.take(0, Clock::now() + std::chrono::seconds(1), std::chrono::microseconds(0),
                     std::chrono::microseconds(0), stop, full);
  EXPECT_TRUE(snap);
  return snap ? std::move(*snap) : ClusterState::Snapshot{};
}

const policy::Pod* findPod(const policy::Store& st, const std::string& key) {
  for (const auto& p : st.pods) {
    if (p.key() == key) return &p;
  }
  return nullptr;
}

cni::EndpointRecord record(const std::string& ns, const std::string& name, const std::string& ip) {
  return cni::EndpointRecord{.network = "zw",
                             .container_id = "c-" + name,
                             .ifname = "eth0",
                             .pod_namespace = ns,
                             .pod_name = name,
                             .netns = "/run/netns/x",
                             .host_veth = hostVethName(ns, name),
                             .ips = {*parseAddr(ip)}};
}

TEST(ClusterState, LocalPodTakesItsAddressFromTheEndpointRecord) {
  ClusterState s("node-a");
  s.upsert(Kind::kPod, "bank/web-0", pod("bank", "web-0", "node-a", ""));
  s.upsertEndpoint("zw:c-web-0:eth0.json", record("bank", "web-0", "10.244.0.7"));
  // A record of a pod the cluster does not know yet: not programmed (fail-closed).
  s.upsertEndpoint("zw:c-new:eth0.json", record("bank", "new", "10.244.0.9"));
  auto snap = takeNow(s);
  const policy::Pod* p = findPod(snap.store, "bank/web-0");
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(p->ips.size(), 1u);
  EXPECT_EQ(formatAddr(p->ips[0]), "10.244.0.7");
  EXPECT_EQ(findPod(snap.store, "bank/new"), nullptr);
  EXPECT_EQ(snap.unknown_pods, std::vector<std::string>{"bank/new"});
}

TEST(ClusterState, TerminatingLocalPodGoesWithItsRecord) {
  ClusterState s("node-a");
  Object o = pod("bank", "web-0", "node-a", "10.244.0.7");
  o.terminating = true;
  s.upsert(Kind::kPod, "bank/web-0", o);
  s.upsertEndpoint("zw:c-web-0:eth0.json", record("bank", "web-0", "10.244.0.7"));
  EXPECT_NE(findPod(takeNow(s).store, "bank/web-0"), nullptr);  // still running its grace
  s.eraseEndpoint("zw:c-web-0:eth0.json");                      // CNI DEL ran
  EXPECT_EQ(findPod(takeNow(s).store, "bank/web-0"), nullptr);
}

TEST(ClusterState, ReusedAddressBelongsToOnePod) {
  ClusterState s("node-a");
  s.upsert(Kind::kPod, "a/old", pod("a", "old", "node-b", "10.244.1.5"));
  s.upsert(Kind::kPod, "b/new", pod("b", "new", "node-a", ""));
  s.upsertEndpoint("zw:c-new:eth0.json", record("b", "new", "10.244.1.5"));
  auto snap = takeNow(s);
  EXPECT_EQ(findPod(snap.store, "b/new")->ips.size(), 1u);  // the local record wins
  EXPECT_TRUE(findPod(snap.store, "a/old")->ips.empty());
  ASSERT_EQ(snap.dropped.size(), 1u);
  EXPECT_NE(snap.dropped[0].find("10.244.1.5"), std::string::npos);
}

TEST(ClusterState, PolicyOfAMissingTierIsLeftOut) {
  ClusterState s("node-a");
  json gnp = {{"metadata", {{"name", "security.block"}}},
              {"spec", {{"tier", "security"}, {"selector", "all()"}}}};
  Converted c = fromApi(Kind::kGlobalPolicy, gnp);
  ASSERT_TRUE(c.object);
  s.upsert(Kind::kGlobalPolicy, c.key, *c.object);
  auto snap = takeNow(s);
  EXPECT_TRUE(snap.store.calico_policies.empty());
  ASSERT_EQ(snap.dropped.size(), 1u);
  EXPECT_NE(snap.dropped[0].find("tier 'security' does not exist"), std::string::npos);

  Converted tier =
      fromApi(Kind::kTier, {{"metadata", {{"name", "security"}}}, {"spec", {{"order", 100}}}});
  ASSERT_TRUE(tier.object);
  s.upsert(Kind::kTier, tier.key, *tier.object);
  EXPECT_EQ(takeNow(s).store.calico_policies.size(), 1u);
}

TEST(ClusterState, RelistDropsWhatIsGoneButKeepsRejectedKeys) {
  ClusterState s("node-a");
  s.upsert(Kind::kPod, "a/x", pod("a", "x", "node-b", "10.244.1.1"));
  s.upsert(Kind::kPod, "a/y", pod("a", "y", "node-b", "10.244.1.2"));
  s.upsert(Kind::kPod, "a/z", pod("a", "z", "node-b", "10.244.1.3"));
  std::map<std::string, Object> listed;
  listed.emplace("a/x", pod("a", "x", "node-b", "10.244.1.1"));
  s.replaceKind(Kind::kPod, std::move(listed), {"a/z"});
  auto snap = takeNow(s);
  EXPECT_NE(findPod(snap.store, "a/x"), nullptr);
  EXPECT_EQ(findPod(snap.store, "a/y"), nullptr);  // deleted while nobody watched
  EXPECT_NE(findPod(snap.store, "a/z"), nullptr);  // listed but rejected: last good stays
}

TEST(ClusterState, NothingBeforeEverySourceHasSynced) {
  ClusterState s("node-a");
  s.expectSource("pods");
  s.upsert(Kind::kPod, "a/x", pod("a", "x", "node-b", "10.244.1.1"));
  std::atomic<bool> stop{false};
  auto none = s.take(0, Clock::now() + std::chrono::milliseconds(50), std::chrono::microseconds(0),
                     std::chrono::microseconds(0), stop, full);
  EXPECT_FALSE(none);
  s.markSynced("pods");
  EXPECT_TRUE(s.take(0, Clock::now() + std::chrono::milliseconds(50), std::chrono::microseconds(0),
                     std::chrono::microseconds(0), stop, full));
}

TEST(ClusterState, ABurstIsOneSnapshot) {
  ClusterState s("node-a");
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 1000; ++i) {
      std::string name = "p" + std::to_string(i);
      s.upsert(Kind::kPod, "a/" + name,
               pod("a", name, "node-b", fmt::format("10.244.{}.{}", i / 250, i % 250 + 1)));
    }
  });
  // A generous quiet time: the writer never pauses that long between two events.
  auto snap = s.take(0, Clock::now() + std::chrono::seconds(30), std::chrono::milliseconds(200),
                     std::chrono::seconds(30), stop, full);
  writer.join();
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->store.pods.size(), 1000u);
  EXPECT_EQ(snap->version, s.version());
}

}  // namespace
}  // namespace zonewall::agent

namespace zonewall::agent {
namespace {

// What nflog hands over: the prefix the table's Log chains set, and the packet's first bytes.
TEST(PacketLog, DecodesPrefixAndFiveTuple) {
  // IPv4 TCP 10.244.0.5:43210 -> 10.244.0.7:81
  std::string v4(24, '\0');
  v4[0] = 0x45;
  v4[9] = 6;
  const unsigned char addrs[] = {10, 244, 0, 5, 10, 244, 0, 7};
  std::memcpy(v4.data() + 12, addrs, 8);
  v4[20] = static_cast<char>(43210 >> 8);
  v4[21] = static_cast<char>(43210 & 0xff);
  v4[22] = 0;
  v4[23] = 81;
  LoggedPacket p;
  ASSERT_TRUE(decodeLogged("zw bank/allow-web 2: ", v4, p));
  EXPECT_EQ(p.str(), "policy bank/allow-web rule 2: TCP 10.244.0.5:43210 -> 10.244.0.7:81");

  // IPv6 ICMPv6 echo request fd00::1 -> fd00::2
  std::string v6(44, '\0');
  v6[0] = 0x60;
  v6[6] = 58;
  v6[8] = static_cast<char>(0xfd);
  v6[23] = 1;
  v6[24] = static_cast<char>(0xfd);
  v6[39] = 2;
  v6[40] = static_cast<char>(128);
  ASSERT_TRUE(decodeLogged("zw log-all 0: ", v6, p));
  EXPECT_EQ(p.str(), "policy log-all rule 0: ICMPv6 type 128 code 0 fd00::1 -> fd00::2");

  EXPECT_FALSE(decodeLogged("not ours: ", v4, p));
  EXPECT_FALSE(decodeLogged("zw x 0: ", "", p));
}

}  // namespace
}  // namespace zonewall::agent
