// zonewall-cni under abuse, exec'd as a runtime would in a real node netns: garbage, truncated and
// 10 MB configs, wrong types for every field, every CNI_* variable missing or junk, netns paths
// that are not network namespaces, interface names at and past the kernel's limit, and ADD racing
// DEL of one container. Each refusal is the spec's error JSON with its code, and the IPAM store,
// the node's links and routes, the endpoint records and the pod's netns are as they were.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "cni_harness.h"

namespace zonewall::testing {
namespace {

using nlohmann::json;

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// What a refused call must leave as it found it.
struct HostState {
  std::map<std::string, std::string> reservations;  // address -> owner record
  std::map<std::string, std::string> endpoints;     // record name -> contents
  std::string links;
  std::string routes;
  std::string pod_links;
  friend bool operator==(const HostState&, const HostState&) = default;
};

HostState snapshot(const CniNode& node, const std::string& pod) {
  HostState s;
  for (const std::string& r : node.reservations()) {
    s.reservations[r] = slurp(std::filesystem::path(node.poolDir()) / r);
  }
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(node.endpointsDir(), ec)) {
    s.endpoints[e.path().filename()] = slurp(e.path());
  }
  s.links = node.nodeOut("ip -o link show");
  // The main tables; the kernel's own routes (link-local, appearing as DAD completes) aside.
  std::istringstream routes(node.nodeOut("ip route show") + node.nodeOut("ip -6 route show"));
  for (std::string line; std::getline(routes, line);) {
    if (line.find("proto kernel") == std::string::npos) s.routes += line + "\n";
  }
  s.pod_links = run("nsenter --net=" + pod + " ip -o link show 2>&1").out;
  return s;
}

std::string describe(const HostState& s) {
  std::string out = "reservations:";
  for (const auto& [k, v] : s.reservations) out += " " + k;
  out += "\nendpoints:";
  for (const auto& [k, v] : s.endpoints) out += " " + k;
  return out + "\nlinks:\n" + s.links + "routes:\n" + s.routes + "pod links:\n" + s.pod_links;
}

// The spec's error reply: non-zero exit, a JSON object with cniVersion, an integer code and a
// message; `code` when the case fixes one.
void expectRefused(const PluginRun& r, std::optional<int> code) {
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.exit_code, -1) << "killed: " << r.out;
  json j = r.json();
  ASSERT_TRUE(j.is_object()) << "not JSON: " << r.out.substr(0, 300);
  EXPECT_TRUE(j["cniVersion"].is_string()) << r.out;
  ASSERT_TRUE(j["code"].is_number_integer()) << r.out;
  EXPECT_TRUE(j["msg"].is_string() && !j["msg"].get<std::string>().empty()) << r.out;
  if (code) {
    EXPECT_EQ(j["code"].get<int>(), *code) << r.out;
  }
}

// A node with one pod already attached (c0) and an empty pod netns the abuse aims at.
struct Scene {
  CniNode& node;
  std::string pod0;
  std::string target;
  HostState before;

  explicit Scene(CniNode& n) : node(n) {
    pod0 = node.newPod();
    target = node.newPod();
    PluginRun r = node.add("c0", pod0, "bank/web-0");
    EXPECT_EQ(r.exit_code, 0) << r.out;
    before = snapshot(node, target);
  }
  std::map<std::string, std::string> env(const std::string& command = "ADD") const {
    return CniNode::env(command, "c1", target, "eth0", "K8S_POD_NAMESPACE=bank;K8S_POD_NAME=x");
  }
  void expectUnchanged(const std::string& what) const {
    HostState now = snapshot(node, target);
    EXPECT_TRUE(now == before) << what << "\nbefore:\n"
                               << describe(before) << "\nafter:\n"
                               << describe(now);
  }
};

#define NEW_SCENE(node_var, scene_var, tag, subnets) \
  ZONEWALL_REQUIRE_ROOT();                           \
  CniNode node_var(tag, subnets);                    \
  ASSERT_TRUE(node_var.ok()) << "node netns";        \
  Scene scene_var(node_var);                         \
  ASSERT_FALSE(::testing::Test::HasFailure())

std::string nested(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string tenMegabyteArray() {
  std::string s = "[1";
  while (s.size() < (10u << 20)) s += ",1";
  return s + "]";
}

// The address reserved now that was not before.
std::string newReservation(const HostState& now, const HostState& before) {
  for (const auto& [address, owner] : now.reservations) {
    if (!before.reservations.contains(address)) return address;
  }
  return "";
}

// Garbage, truncated, empty and 10 MB configs on stdin, for every command that reads one.
TEST(CniAbuse, BadStdinIsRefusedAndChangesNothing) {
  NEW_SCENE(node, scene, "sa", std::vector<std::string>{"10.244.20.0/24"});
  std::mt19937 rng(20261207);
  std::string garbage(4096, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  json big = json::parse(node.conf());
  big["padding"] = std::string(10 << 20, 'x');
  big["mtu"] = "1500";  // the one thing wrong, after 10 MB
  struct Case {
    const char* name;
    std::string stdin_text;
    int code;
  };
  const std::string conf = node.conf();
  const Case cases[] = {
      {"garbage bytes", garbage, 6},
      {"truncated JSON", conf.substr(0, conf.size() / 2), 6},
      {"empty", "", 6},
      {"a JSON string", "\"zonewall\"", 7},
      {"NUL in the middle", conf.substr(0, 20) + std::string(1, '\0') + conf.substr(20), 6},
      {"10 MB array", tenMegabyteArray(), 7},
      {"10 MB of nesting", nested(5 << 20), 6},
      {"nesting past 10000 in prevResult",
       R"({"cniVersion":"1.0.0","name":"zwtest","type":"zonewall","prevResult":{"dns":{"x":)" +
           nested(10001) + "}}}",
       6},
      {"10 MB config, one field wrong at the end", big.dump(), 7},
  };
  for (const Case& c : cases) {
    for (const char* command : {"ADD", "CHECK", "DEL"}) {
      SCOPED_TRACE(std::string(c.name) + " " + command);
      expectRefused(node.exec(scene.env(command), c.stdin_text), c.code);
      scene.expectUnchanged(c.name);
    }
  }
}

// Every field the plugin reads, and every field of a chained plugin's prevResult, with each JSON
// type it must not have.
TEST(CniAbuse, WrongTypesAreRefusedAndChangeNothing) {
  NEW_SCENE(node, scene, "sb", std::vector<std::string>{"10.244.21.0/24"});
  const json prev = {{"cniVersion", "1.0.0"},
                     {"interfaces", {{{"name", "lo"}, {"mac", "00:00:00:00:00:00"}}}},
                     {"ips", {{{"address", "192.0.2.1/32"}, {"interface", 0}}}},
                     {"routes", {{{"dst", "0.0.0.0/0"}, {"gw", "192.0.2.254"}}}},
                     {"dns", {{"nameservers", {"10.96.0.10"}}}}};
  enum Kind { kString, kInteger, kNumber, kBool, kObject, kList, kStringOrList };
  struct Field {
    json::json_pointer at;
    Kind kind;
    int code = 7;
  };
  const Field fields[] = {
      {json::json_pointer("/cniVersion"), kString},
      {json::json_pointer("/name"), kString},
      {json::json_pointer("/type"), kString},
      {json::json_pointer("/mtu"), kInteger},
      {json::json_pointer("/ipam"), kObject},
      {json::json_pointer("/ipam/type"), kString, 2},
      {json::json_pointer("/ipam/subnet"), kStringOrList},
      {json::json_pointer("/ipam/dataDir"), kString},
      {json::json_pointer("/ipam/subnetFile"), kString},
      {json::json_pointer("/endpointsDir"), kString},
      {json::json_pointer("/policySetupTimeout"), kNumber},
      {json::json_pointer("/policyWaitSocket"), kString},
      {json::json_pointer("/dns"), kObject},
      {json::json_pointer("/disableCheck"), kBool},
      {json::json_pointer("/prevResult"), kObject},
      {json::json_pointer("/prevResult/interfaces"), kList},
      {json::json_pointer("/prevResult/interfaces/0"), kObject},
      {json::json_pointer("/prevResult/interfaces/0/name"), kString},
      {json::json_pointer("/prevResult/interfaces/0/mac"), kString},
      {json::json_pointer("/prevResult/ips"), kList},
      {json::json_pointer("/prevResult/ips/0"), kObject},
      {json::json_pointer("/prevResult/ips/0/address"), kString},
      {json::json_pointer("/prevResult/ips/0/interface"), kInteger},
      {json::json_pointer("/prevResult/routes"), kList},
      {json::json_pointer("/prevResult/routes/0/dst"), kString},
      {json::json_pointer("/prevResult/routes/0/gw"), kString},
      {json::json_pointer("/prevResult/dns"), kObject},
  };
  auto wrongFor = [](Kind k) {
    std::vector<json> out;
    if (k != kString && k != kStringOrList) out.emplace_back("x");
    if (k != kInteger && k != kNumber) out.emplace_back(17);
    if (k != kNumber) out.emplace_back(2.5);
    if (k != kBool) out.emplace_back(true);
    if (k != kObject) out.push_back(json::object({{"a", 1}}));
    if (k != kList && k != kStringOrList) out.push_back(json::array({1}));
    return out;
  };
  json base = json::parse(node.conf());
  base["prevResult"] = prev;
  for (const Field& f : fields) {
    for (const json& wrong : wrongFor(f.kind)) {
      json conf = base;
      conf[f.at] = wrong;
      // DEL reads only interface names from prevResult and never fails on the rest of it.
      for (const char* command : {"ADD", "CHECK"}) {
        SCOPED_TRACE(f.at.to_string() + "=" + wrong.dump() + " " + command);
        expectRefused(node.exec(scene.env(command), conf.dump()), f.code);
        scene.expectUnchanged(f.at.to_string());
      }
    }
  }
}

// Each CNI_* variable missing in turn, and set to junk.
TEST(CniAbuse, BadEnvironmentIsRefusedAndChangesNothing) {
  NEW_SCENE(node, scene, "sc", std::vector<std::string>{"10.244.22.0/24"});
  const std::string conf = node.conf();
  for (const char* command : {"ADD", "CHECK", "DEL"}) {
    for (const char* var :
         {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"}) {
      // The spec lets DEL come without a netns (the pod's netns may be gone already).
      if (std::string(command) == "DEL" && std::string(var) == "CNI_NETNS") continue;
      SCOPED_TRACE(std::string(command) + " without " + var);
      auto env = scene.env(command);
      env.erase(var);
      expectRefused(node.exec(env, conf), 4);
      scene.expectUnchanged(var);
    }
  }
  struct Junk {
    const char* var;
    std::string value;
    int code;
  };
  const Junk junk[] = {
      {"CNI_COMMAND", "ADDX", 4},
      {"CNI_COMMAND", "add", 4},
      {"CNI_CONTAINERID", "../c1", 4},
      {"CNI_CONTAINERID", "-c1", 4},
      {"CNI_CONTAINERID", std::string("c\n1"), 4},
      {"CNI_NETNS", "run/netns/x", 4},
      {"CNI_NETNS", "/nonexistent/netns", 3},
      {"CNI_IFNAME", "abcdefghijklmnop", 4},  // 16 bytes: one past IFNAMSIZ - 1
      {"CNI_IFNAME", "eth/0", 4},
      {"CNI_IFNAME", "eth 0", 4},
      {"CNI_IFNAME", "..", 4},
      {"CNI_ARGS", "K8S_POD_NAME", 4},
      {"CNI_ARGS", "=x", 4},
      {"CNI_ARGS", "UNKNOWN_KEY=1", 4},
      {"CNI_ARGS", "IgnoreUnknown=maybe", 4},
      {"CNI_ARGS", "K8S_POD_NAMESPACE=bank", 4},
  };
  // CHECK needs a prevResult to get as far as the netns.
  json check_conf = json::parse(conf);
  check_conf["prevResult"] = {{"cniVersion", "1.0.0"},
                              {"interfaces", {{{"name", "eth0"}, {"sandbox", scene.target}}}},
                              {"ips", {{{"address", "10.244.22.9/32"}, {"interface", 0}}}}};
  for (const char* command : {"ADD", "CHECK", "DEL"}) {
    for (const Junk& j : junk) {
      if (std::string(command) == "DEL" && std::string(j.var) == "CNI_NETNS") continue;
      SCOPED_TRACE(std::string(command) + " " + j.var + "=" + j.value);
      auto env = scene.env(command);
      env[j.var] = j.value;
      expectRefused(node.exec(env, std::string(command) == "CHECK" ? check_conf.dump() : conf),
                    j.code);
      scene.expectUnchanged(j.var);
    }
  }
  // 15 bytes is the kernel's limit, and works.
  auto env = scene.env();
  env["CNI_IFNAME"] = "abcdefghijklmno";
  PluginRun ok = node.exec(env, conf);
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  EXPECT_TRUE(CniNode::inNs(scene.target, "ip link show abcdefghijklmno"));
  env["CNI_COMMAND"] = "DEL";
  EXPECT_EQ(node.exec(env, conf).exit_code, 0);
  scene.expectUnchanged("after ADD and DEL of a 15-byte CNI_IFNAME");
}

// CNI_NETNS naming something that is not a network namespace.
TEST(CniAbuse, NetnsThatIsNotOneIsRefusedAndChangesNothing) {
  NEW_SCENE(node, scene, "sd", std::vector<std::string>{"10.244.23.0/24"});
  TempDir dir;
  const std::string file = (dir.path() / "file").string();
  std::ofstream(file) << "not a namespace\n";
  const std::string loop = (dir.path() / "loop").string();
  std::filesystem::create_symlink(loop + "2", loop);
  std::filesystem::create_symlink(loop, loop + "2");
  const std::string fifo = (dir.path() / "fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string mnt = "/proc/self/ns/mnt";  // a namespace, of the wrong type
  struct Case {
    const char* name;
    std::string path;
    int code;
  };
  const Case cases[] = {{"a regular file", file, 4},    {"a symlink loop", loop, 4},
                        {"a directory", dir.path(), 4}, {"a FIFO", fifo, 4},
                        {"/dev/null", "/dev/null", 4},  {"a mount namespace", mnt, 4},
                        {"gone", file + ".gone", 3}};
  for (const Case& c : cases) {
    for (const char* command : {"ADD", "CHECK"}) {
      SCOPED_TRACE(std::string(c.name) + " " + command);
      auto env = scene.env(command);
      env["CNI_NETNS"] = c.path;
      json conf = json::parse(node.conf());
      if (std::string(command) == "CHECK") {  // a well-formed prevResult, so CHECK gets to it
        conf["prevResult"] = {{"cniVersion", "1.0.0"},
                              {"interfaces", {{{"name", "eth0"}, {"sandbox", c.path}}}},
                              {"ips", {{{"address", "10.244.23.9/32"}, {"interface", 0}}}}};
      }
      expectRefused(node.exec(env, conf.dump()), c.code);
      scene.expectUnchanged(c.name);
    }
  }
}

// ADD and DEL of one container at the same moment, many times: whichever wins, the attachment
// ends whole or absent (never an address without a veth, nor a veth whose address is free), and
// a DEL afterwards leaves the node as it was.
TEST(CniAbuse, ConcurrentAddAndDelOfOneContainer) {
  NEW_SCENE(node, scene, "se", std::vector<std::string>{"10.244.24.0/24"});
  const std::string conf = node.conf();
  int whole = 0;
  int absent = 0;
  for (int round = 0; round < 40; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    PluginProcess add = node.start(scene.env("ADD"), conf);
    PluginProcess del = node.start(scene.env("DEL"), conf);
    PluginRun a = CniNode::finish(add);
    PluginRun d = CniNode::finish(del);
    EXPECT_EQ(d.exit_code, 0) << d.out;
    ASSERT_EQ(a.exit_code, 0) << a.out;
    HostState now = snapshot(node, scene.target);
    bool has_veth = now.links.find(zonewall::hostVethName("bank", "x")) != std::string::npos;
    bool has_eth0 = now.pod_links.find("eth0@") != std::string::npos;
    size_t extra_reservations = now.reservations.size() - scene.before.reservations.size();
    size_t extra_endpoints = now.endpoints.size() - scene.before.endpoints.size();
    if (has_veth) {
      ++whole;
      EXPECT_TRUE(has_eth0);
      EXPECT_EQ(extra_reservations, 1u) << describe(now);
      EXPECT_EQ(extra_endpoints, 1u) << describe(now);
      std::string ip = newReservation(now, scene.before);
      EXPECT_NE(now.routes.find(ip + " dev " + zonewall::hostVethName("bank", "x")),
                std::string::npos)
          << describe(now);
    } else {
      ++absent;
      scene.expectUnchanged("DEL won the race");
    }
    ASSERT_EQ(node.exec(scene.env("DEL"), conf).exit_code, 0);
    scene.expectUnchanged("after the final DEL");
  }
  std::printf("ADD+DEL races: %d ended with the pod attached, %d without\n", whole, absent);
}

}  // namespace
}  // namespace zonewall::testing
