// The CNI protocol without a kernel: environment, CNI_ARGS, config, results and error codes.
#include "zonewall/cni/protocol.h"

#include <gtest/gtest.h>

#include "zonewall/base/host_veth.h"
#include "zonewall/cni/plugin.h"

namespace zonewall::cni {
namespace {

using nlohmann::json;
using Env = std::map<std::string, std::string>;

Env addEnv() {
  return {{"CNI_COMMAND", "ADD"},
          {"CNI_CONTAINERID", "abc123"},
          {"CNI_NETNS", "/run/netns/x"},
          {"CNI_IFNAME", "eth0"},
          {"CNI_PATH", "/opt/cni/bin"},
          {"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=bank;K8S_POD_NAME=web-0;K8S_POD_UID=u1"}};
}

struct EnvCase {
  const char* name;
  Env env;
  std::optional<ErrorCode> error;  // nullopt: accepted
  const char* message_part = "";
};

// Each required variable, each malformed value, and what VERSION/DEL/GC tolerate.
TEST(Environment, ValidatesWhatEachCommandRequires) {
  auto with = [](Env e, const std::string& k, const std::string& v) {
    e[k] = v;
    return e;
  };
  auto without = [](Env e, const std::string& k) {
    e.erase(k);
    return e;
  };
  const EnvCase cases[] = {
      {.name = "full ADD", .env = addEnv()},
      {.name = "no command",
       .env = without(addEnv(), "CNI_COMMAND"),
       .error = ErrorCode::kInvalidEnvironment,
       .message_part = "CNI_COMMAND"},
      {.name = "unknown command",
       .env = with(addEnv(), "CNI_COMMAND", "PUT"),
       .error = ErrorCode::kInvalidEnvironment,
       .message_part = "PUT"},
      {.name = "ADD without container id",
       .env = without(addEnv(), "CNI_CONTAINERID"),
       .error = ErrorCode::kInvalidEnvironment,
       .message_part = "CNI_CONTAINERID"},
      {.name = "container id with a slash",
       .env = with(addEnv(), "CNI_CONTAINERID", "../etc"),
       .error = ErrorCode::kInvalidEnvironment,
       .message_part = "CNI_CONTAINERID"},
      {.name = "ADD without netns",
       .env = without(addEnv(), "CNI_NETNS"),
       .error = ErrorCode::kInvalidEnvironment,
       .message_part = "CNI_NETNS"},
      {.name = "relative netns",
       .env = with(addEnv(), "CNI_NETNS", "run/netns/x"),
       .error = ErrorCode::kInvalidEnvironment,
       .message_part = "absolute"},
      {.name = "ADD without ifname",
       .env = without(addEnv(), "CNI_IFNAME"),
       .error = ErrorCode::kInvalidEnvironment,
       .message_part = "CNI_IFNAME"},
      {.name = "ifname too long",
       .env = with(addEnv(), "CNI_IFNAME", "abcdefghijklmnop"),
       .error = ErrorCode::kInvalidEnvironment,
       .message_part = "CNI_IFNAME"},
      {.name = "ifname with colon",
       .env = with(addEnv(), "CNI_IFNAME", "eth0:1"),
       .error = ErrorCode::kInvalidEnvironment,
       .message_part = "CNI_IFNAME"},
      {.name = "ifname dot-dot",
       .env = with(addEnv(), "CNI_IFNAME", ".."),
       .error = ErrorCode::kInvalidEnvironment},
      {.name = "DEL with empty netns",
       .env = with(with(addEnv(), "CNI_COMMAND", "DEL"), "CNI_NETNS", "")},
      {.name = "DEL without netns",
       .env = without(with(addEnv(), "CNI_COMMAND", "DEL"), "CNI_NETNS")},
      {.name = "CHECK without netns",
       .env = without(with(addEnv(), "CNI_COMMAND", "CHECK"), "CNI_NETNS"),
       .error = ErrorCode::kInvalidEnvironment},
      {.name = "VERSION with dummies",
       .env = {{"CNI_COMMAND", "VERSION"}, {"CNI_NETNS", "dummy"}, {"CNI_IFNAME", "dummy"}}},
      {.name = "GC needs CNI_PATH",
       .env = {{"CNI_COMMAND", "GC"}},
       .error = ErrorCode::kInvalidEnvironment,
       .message_part = "CNI_PATH"},
      {.name = "ADD needs CNI_PATH, as the reference plugins' skel",
       .env = without(addEnv(), "CNI_PATH"),
       .error = ErrorCode::kInvalidEnvironment,
       .message_part = "CNI_PATH"},
      {.name = "DEL needs CNI_PATH",
       .env = without(with(addEnv(), "CNI_COMMAND", "DEL"), "CNI_PATH"),
       .error = ErrorCode::kInvalidEnvironment,
       .message_part = "CNI_PATH"},
      {.name = "STATUS with CNI_PATH", .env = {{"CNI_COMMAND", "STATUS"}, {"CNI_PATH", "/x"}}},
      {.name = "unknown CNI_ARGS key",
       .env = with(addEnv(), "CNI_ARGS", "FOO=1"),
       .error = ErrorCode::kInvalidEnvironment,
       .message_part = "FOO"},
      {.name = "unknown key ignored",
       .env = with(addEnv(), "CNI_ARGS", "FOO=1;IgnoreUnknown=true")},
      {.name = "IgnoreUnknown=0 keeps it strict",
       .env = with(addEnv(), "CNI_ARGS", "IgnoreUnknown=0;FOO=1"),
       .error = ErrorCode::kInvalidEnvironment},
      {.name = "CNI_ARGS without =",
       .env = with(addEnv(), "CNI_ARGS", "IgnoreUnknown"),
       .error = ErrorCode::kInvalidEnvironment,
       .message_part = "KEY=VALUE"},
      {.name = "IgnoreUnknown not a bool",
       .env = with(addEnv(), "CNI_ARGS", "IgnoreUnknown=yes"),
       .error = ErrorCode::kInvalidEnvironment},
      {.name = "empty CNI_ARGS", .env = with(addEnv(), "CNI_ARGS", "")},
      {.name = "namespace without name",
       .env = with(addEnv(), "CNI_ARGS", "K8S_POD_NAMESPACE=a"),
       .error = ErrorCode::kInvalidEnvironment},
  };
  for (const EnvCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto env = parseEnvironment(c.env);
    if (!c.error) {
      EXPECT_TRUE(env.has_value()) << env.error().msg;
      continue;
    }
    ASSERT_FALSE(env.has_value());
    EXPECT_EQ(env.error().code, *c.error);
    EXPECT_NE(env.error().msg.find(c.message_part), std::string::npos) << env.error().msg;
  }
}

// K8S_* keys land in the args; the host veth name is the dataplane's for eth0.
TEST(Environment, ReadsKubernetesArgsAndNamesTheHostVeth) {
  auto env = parseEnvironment(addEnv());
  ASSERT_TRUE(env.has_value());
  EXPECT_EQ(env->args.pod_namespace, "bank");
  EXPECT_EQ(env->args.pod_name, "web-0");
  EXPECT_EQ(env->args.pod_uid, "u1");
  EXPECT_EQ(hostVethFor(*env), zonewall::hostVethName("bank", "web-0"));
  Environment second = *env;
  second.ifname = "net1";
  EXPECT_NE(hostVethFor(second), hostVethFor(*env));
  Environment plain = *env;
  plain.args = {};
  EXPECT_EQ(hostVethFor(plain), zonewall::hostVethName("abc123", "eth0"));
  EXPECT_LE(hostVethFor(*env).size(), 15U);
}

struct ConfCase {
  const char* name;
  std::string conf;
  Command command = Command::kAdd;
  std::optional<ErrorCode> error;
  const char* message_part = "";
};

// Every config error code with its trigger.
TEST(NetConf, RefusesBadConfigsWithTheSpecCode) {
  const std::string ok =
      R"({"cniVersion":"1.0.0","name":"zw","type":"zonewall","ipam":{"subnet":"10.244.1.0/24"}})";
  const ConfCase cases[] = {
      {.name = "valid", .conf = ok},
      {.name = "not JSON", .conf = "{\"cniVersion\":", .error = ErrorCode::kDecode},
      {.name = "a number beyond double (found by fuzzing)",
       .conf = R"({"cniVersion":"1.0.0","name":"zw","type":"z","mtu":1E400})",
       .error = ErrorCode::kDecode},
      {.name = "not an object", .conf = "[1]", .error = ErrorCode::kInvalidConfig},
      {.name = "no cniVersion",
       .conf = R"({"name":"zw","type":"zonewall"})",
       .error = ErrorCode::kInvalidConfig,
       .message_part = "cniVersion"},
      {.name = "old cniVersion",
       .conf = R"({"cniVersion":"0.3.1","name":"zw","type":"zonewall"})",
       .error = ErrorCode::kIncompatibleVersion,
       .message_part = "0.3.1"},
      {.name = "future cniVersion",
       .conf = R"({"cniVersion":"2.0.0","name":"zw","type":"zonewall"})",
       .error = ErrorCode::kIncompatibleVersion},
      {.name = "no name",
       .conf = R"({"cniVersion":"1.0.0","type":"zonewall"})",
       .error = ErrorCode::kInvalidConfig,
       .message_part = "name"},
      {.name = "name with a slash",
       .conf = R"({"cniVersion":"1.0.0","name":"a/b","type":"zonewall"})",
       .error = ErrorCode::kInvalidConfig},
      {.name = "no type",
       .conf = R"({"cniVersion":"1.0.0","name":"zw"})",
       .error = ErrorCode::kInvalidConfig,
       .message_part = "type"},
      {.name = "mtu not a number",
       .conf = R"({"cniVersion":"1.0.0","name":"zw","type":"z","mtu":"9000"})",
       .error = ErrorCode::kInvalidConfig,
       .message_part = "mtu"},
      {.name = "mtu too small",
       .conf = R"({"cniVersion":"1.0.0","name":"zw","type":"z","mtu":10})",
       .error = ErrorCode::kInvalidConfig},
      {.name = "bad subnet",
       .conf = R"({"cniVersion":"1.0.0","name":"zw","type":"z","ipam":{"subnet":"10.244.1.0/33"}})",
       .error = ErrorCode::kInvalidConfig,
       .message_part = "ipam.subnet"},
      {.name = "two IPv4 subnets",
       .conf = R"({"cniVersion":"1.0.0","name":"zw","type":"z",)"
               R"("ipam":{"subnet":["10.1.0.0/24","10.2.0.0/24"]}})",
       .error = ErrorCode::kInvalidConfig},
      {.name = "unknown ipam field",
       .conf = R"({"cniVersion":"1.0.0","name":"zw","type":"z","ipam":{"subnett":"10.1.0.0/24"}})",
       .error = ErrorCode::kUnsupportedField,
       .message_part = "ipam.subnett=\"10.1.0.0/24\""},
      {.name = "delegated ipam",
       .conf = R"({"cniVersion":"1.0.0","name":"zw","type":"z","ipam":{"type":"host-local"}})",
       .error = ErrorCode::kUnsupportedField,
       .message_part = "host-local"},
      {.name = "unknown top-level key passes",
       .conf = R"({"cniVersion":"1.0.0","name":"zw","type":"z","somePlugin":{"x":1},)"
               R"("capabilities":{"portMappings":true}})"},
      {.name = "prevResult not an object",
       .conf = R"({"cniVersion":"1.0.0","name":"zw","type":"z","prevResult":3})",
       .error = ErrorCode::kInvalidConfig},
      {.name = "GC on 1.0.0",
       .conf = ok,
       .command = Command::kGc,
       .error = ErrorCode::kIncompatibleVersion},
      {.name = "GC without attachments",
       .conf = R"({"cniVersion":"1.1.0","name":"zw","type":"z"})",
       .command = Command::kGc,
       .error = ErrorCode::kInvalidConfig,
       .message_part = "cni.dev/attachments"},
      {.name = "GC with valid-attachments",
       .conf = R"({"cniVersion":"1.1.0","name":"zw","type":"z",)"
               R"("cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]})",
       .command = Command::kGc},
      {.name = "GC attachment without ifname",
       .conf = R"({"cniVersion":"1.1.0","name":"zw","type":"z",)"
               R"("cni.dev/attachments":[{"containerID":"a"}]})",
       .command = Command::kGc,
       .error = ErrorCode::kInvalidConfig,
       .message_part = "ifname"},
      {.name = "STATUS on 0.4.0",
       .conf = R"({"cniVersion":"0.4.0","name":"zw","type":"z"})",
       .command = Command::kStatus,
       .error = ErrorCode::kIncompatibleVersion},
  };
  for (const ConfCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto conf = parseNetConf(c.conf, c.command);
    if (!c.error) {
      EXPECT_TRUE(conf.has_value()) << conf.error().msg;
      continue;
    }
    ASSERT_FALSE(conf.has_value());
    EXPECT_EQ(conf.error().code, *c.error) << conf.error().msg;
    EXPECT_NE(conf.error().msg.find(c.message_part), std::string::npos) << conf.error().msg;
  }
}

// Where the text stops being JSON, or which number does not fit, is in the error's details.
TEST(NetConf, DecodeErrorsSayWhere) {
  auto truncated = parseNetConf("{\"cniVersion\":\n  \"1.0.0\",\n  \"name\"", Command::kAdd);
  ASSERT_FALSE(truncated.has_value());
  EXPECT_EQ(truncated.error().code, ErrorCode::kDecode);
  EXPECT_TRUE(truncated.error().details.starts_with("line 3, column 9: syntax error"))
      << truncated.error().details;
  auto overflow = parseNetConf(R"({"cniVersion":"1.0.0","mtu":-1e999})", Command::kAdd);
  ASSERT_FALSE(overflow.has_value());
  EXPECT_EQ(overflow.error().code, ErrorCode::kDecode);
  EXPECT_EQ(overflow.error().details, "number overflow parsing '-1e999'");
}

// The fields zonewall reads, including both subnet forms and the defaults.
TEST(NetConf, ReadsItsFields) {
  auto conf = parseNetConf(
      R"({"cniVersion":"1.1.0","name":"zw","type":"zonewall","mtu":1450,"endpointsDir":"/e",
          "dns":{"nameservers":["10.96.0.10"]},
          "ipam":{"type":"zonewall","subnet":["10.244.1.0/24","fd00:1::/64"],
                  "dataDir":"/d","subnetFile":"/s"}})",
      Command::kAdd);
  ASSERT_TRUE(conf.has_value()) << conf.error().msg;
  EXPECT_EQ(conf->mtu, 1450);
  ASSERT_EQ(conf->subnets.size(), 2U);
  EXPECT_EQ(conf->subnets[0].str(), "10.244.1.0/24");
  EXPECT_EQ(conf->subnets[1].str(), "fd00:1::/64");
  EXPECT_EQ(conf->data_dir, "/d");
  EXPECT_EQ(conf->subnet_file, "/s");
  EXPECT_EQ(conf->endpoints_dir, "/e");
  EXPECT_EQ(conf->dns["nameservers"][0], "10.96.0.10");

  auto defaults =
      parseNetConf(R"({"cniVersion":"1.0.0","name":"zw","type":"zonewall"})", Command::kAdd);
  ASSERT_TRUE(defaults.has_value());
  EXPECT_EQ(defaults->subnet_file, "/run/zonewall/subnet.env");
  EXPECT_EQ(defaults->endpoints_dir, "/run/zonewall/endpoints");
  EXPECT_TRUE(defaults->subnets.empty());
}

// Result JSON per version: 0.4.0 tags each ip with its version, 1.1.0 reports the MTU.
TEST(Result, RendersPerVersion) {
  Result r;
  r.interfaces = {
      {.name = "zwabc", .mac = "ee:ee:ee:ee:ee:ee", .mtu = 1500},
      {.name = "eth0", .mac = "02:00:00:00:00:01", .sandbox = "/run/netns/p", .mtu = 1500}};
  r.ips = {{.interface = 1, .address = *zonewall::parseAddr("10.244.1.7"), .prefix = 32},
           {.interface = 1, .address = *zonewall::parseAddr("fd00::7"), .prefix = 128}};
  r.routes = {{"0.0.0.0/0", "169.254.1.1"}};
  json v04 = resultToJson(r, "0.4.0");
  EXPECT_EQ(v04["ips"][0]["version"], "4");
  EXPECT_EQ(v04["ips"][1]["version"], "6");
  EXPECT_EQ(v04["ips"][0]["address"], "10.244.1.7/32");
  EXPECT_FALSE(v04["interfaces"][0].contains("mtu"));
  json v10 = resultToJson(r, "1.0.0");
  EXPECT_FALSE(v10["ips"][0].contains("version"));
  EXPECT_EQ(v10["interfaces"][1]["sandbox"], "/run/netns/p");
  EXPECT_FALSE(v10["interfaces"][0].contains("sandbox"));
  json v11 = resultToJson(r, "1.1.0");
  EXPECT_EQ(v11["interfaces"][1]["mtu"], 1500);
  EXPECT_EQ(v11["cniVersion"], "1.1.0");

  auto back = resultFromJson(v10);
  ASSERT_TRUE(back.has_value()) << back.error().msg;
  EXPECT_EQ(back->ips.size(), 2U);
  EXPECT_EQ(back->ips[1].address, *zonewall::parseAddr("fd00::7"));
  EXPECT_EQ(back->ips[1].interface, 1);
  EXPECT_EQ(back->routes[0].gw, "169.254.1.1");
}

// A chained prevResult keeps its own fields; ours are appended with shifted indices.
TEST(Result, MergesIntoAPrevResult) {
  json prev = json::parse(R"({"cniVersion":"1.0.0","interfaces":[{"name":"a","custom":1}],
      "ips":[{"address":"192.0.2.1/24","interface":0,"gateway":"192.0.2.254"}],"routes":[],
      "dns":{"search":["x"]}})");
  Result ours;
  ours.interfaces = {{.name = "zw1"}, {.name = "eth1", .sandbox = "/n"}};
  ours.ips = {{.interface = 1, .address = *zonewall::parseAddr("10.0.0.1"), .prefix = 32}};
  json merged = mergeResultJson(prev, resultToJson(ours, "1.0.0"));
  ASSERT_EQ(merged["interfaces"].size(), 3U);
  EXPECT_EQ(merged["interfaces"][0]["custom"], 1);
  EXPECT_EQ(merged["ips"][0]["gateway"], "192.0.2.254");
  EXPECT_EQ(merged["ips"][1]["interface"], 2);
  EXPECT_EQ(merged["dns"]["search"][0], "x");

  EXPECT_FALSE(resultFromJson(json::parse(R"({"ips":[{"address":"10.0.0.1/32","interface":5}]})"))
                   .has_value());
  EXPECT_FALSE(resultFromJson(json::parse(R"({"ips":[{"address":"nonsense"}]})")).has_value());
}

// Whole invocations without a kernel: VERSION, and errors replied as JSON with exit 1.
TEST(Plugin, AnswersVersionAndReportsErrorsAsJson) {
  Outcome v =
      runPlugin({{"CNI_COMMAND", "VERSION"}, {"CNI_NETNS", "dummy"}}, R"({"cniVersion":"1.0.0"})");
  EXPECT_EQ(v.exit_code, 0);
  json vj = json::parse(v.stdout_text);
  EXPECT_EQ(vj["cniVersion"], "1.0.0");
  EXPECT_EQ(vj["supportedVersions"], json::parse(R"(["0.4.0","1.0.0","1.1.0"])"));
  EXPECT_EQ(json::parse(runPlugin({{"CNI_COMMAND", "VERSION"}}, "").stdout_text)["cniVersion"],
            "1.1.0");

  Outcome bad_env =
      runPlugin({{"CNI_COMMAND", "ADD"}}, R"({"cniVersion":"1.0.0","name":"zw","type":"z"})");
  EXPECT_EQ(bad_env.exit_code, 1);
  json be = json::parse(bad_env.stdout_text);
  EXPECT_EQ(be["code"], 4);
  EXPECT_EQ(be["cniVersion"], "1.0.0");
  EXPECT_TRUE(be["msg"].get<std::string>().starts_with("CNI_CONTAINERID"));

  Env env = addEnv();
  Outcome bad_json = runPlugin(env, "{not json");
  EXPECT_EQ(bad_json.exit_code, 1);
  json bj = json::parse(bad_json.stdout_text);
  EXPECT_EQ(bj["code"], 6);
  EXPECT_TRUE(bj.contains("details"));

  // Code 5: the reservation directory cannot be created (DEL needs no netns to get there).
  Env del = env;
  del["CNI_COMMAND"] = "DEL";
  Outcome io = runPlugin(
      del, R"({"cniVersion":"1.0.0","name":"zw","type":"z","ipam":{"dataDir":"/dev/null/zw"}})");
  EXPECT_EQ(io.exit_code, 1);
  EXPECT_EQ(json::parse(io.stdout_text)["code"], 5) << io.stdout_text;
  EXPECT_NE(json::parse(io.stdout_text)["msg"].get<std::string>().find("/dev/null/zw"),
            std::string::npos);

  env["CNI_NETNS"] = "/nonexistent/netns";
  Outcome no_ns = runPlugin(
      env, R"({"cniVersion":"1.0.0","name":"zw","type":"z","ipam":{"subnet":"10.9.0.0/24"}})");
  EXPECT_EQ(json::parse(no_ns.stdout_text)["code"], 3);
  env["CNI_NETNS"] = "/proc/self/status";  // exists, but is no network namespace
  Outcome not_ns = runPlugin(
      env, R"({"cniVersion":"1.0.0","name":"zw","type":"z","ipam":{"subnet":"10.9.0.0/24"}})");
  EXPECT_EQ(json::parse(not_ns.stdout_text)["code"], 4);
}

}  // namespace
}  // namespace zonewall::cni
