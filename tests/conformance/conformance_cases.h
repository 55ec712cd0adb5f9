// The conformance cases of tests/conformance/data/k8s-netpol-e2e.yaml (transcribed from the
// upstream Kubernetes e2e suite; see data/README.md) as scenarios: the model turned into
// Namespace and Pod objects, each case's (or step's) policies with real CIDRs.
#pragma once

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "test_support.h"
#include "zonewall/base/ip.h"

namespace zonewall::testing {

namespace fs = std::filesystem;

inline fs::path conformanceFile() {
  if (const char* env = std::getenv("ZONEWALL_CONFORMANCE")) return env;
  return fs::path(sourceDir()) / "tests" / "conformance" / "data" / "k8s-netpol-e2e.yaml";
}

struct Probe {
  int port;
  std::string protocol;
  std::set<std::string> denied;
};

// One run of the matrix: the policies in effect and the labels added on top of the model.
struct Scenario {
  std::string name;
  YAML::Node policies;
  std::map<std::string, std::map<std::string, std::string>> extra_ns_labels;
  std::map<std::string, std::map<std::string, std::string>> extra_pod_labels;
  std::vector<Probe> probes;
};

inline std::vector<Scenario> loadScenarios(const YAML::Node& root) {
  std::vector<Scenario> out;
  auto probes = [](const YAML::Node& n) {
    std::vector<Probe> ps;
    for (const auto& p : n) {
      Probe probe{p["port"].as<int>(), p["protocol"].as<std::string>(), {}};
      for (const auto& d : p["denied"]) probe.denied.insert(d.as<std::string>());
      ps.push_back(probe);
    }
    return ps;
  };
  for (const auto& c : root["cases"]) {
    std::string id = c["id"].as<std::string>();
    if (!c["steps"]) {
      out.push_back({id, c["policies"], {}, {}, probes(c["probes"])});
      continue;
    }
    Scenario acc;
    int step = 0;
    for (const auto& s : c["steps"]) {
      acc.name = id + "/step" + std::to_string(++step);
      acc.policies.reset(s["policies"]);  // rebind: operator= would write through to earlier steps
      for (const char* key : {"extra_namespace_labels", "extra_pod_labels"}) {
        auto& target =
            std::string(key) == "extra_pod_labels" ? acc.extra_pod_labels : acc.extra_ns_labels;
        if (!s[key]) continue;
        for (const auto& kv : s[key]) {
          for (const auto& l : kv.second)
            target[kv.first.as<std::string>()][l.first.as<std::string>()] =
                l.second.as<std::string>();
        }
      }
      acc.probes = probes(s["probes"]);
      out.push_back(acc);
    }
  }
  return out;
}

inline std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The model as Namespace and Pod objects.
inline std::string inventoryYaml(const YAML::Node& model, const Scenario& sc) {
  YAML::Emitter e;
  for (const auto& ns : model["namespaces"]) {
    std::string n = ns.as<std::string>();
    e << YAML::BeginDoc << YAML::BeginMap << YAML::Key << "apiVersion" << YAML::Value << "v1"
      << YAML::Key << "kind" << YAML::Value << "Namespace" << YAML::Key << "metadata" << YAML::Value
      << YAML::BeginMap << YAML::Key << "name" << YAML::Value << n << YAML::Key << "labels"
      << YAML::Value << YAML::BeginMap;
    e << YAML::Key << "kubernetes.io/metadata.name" << YAML::Value << n;
    if (auto it = sc.extra_ns_labels.find(n); it != sc.extra_ns_labels.end()) {
      for (const auto& [k, v] : it->second) e << YAML::Key << k << YAML::Value << v;
    }
    e << YAML::EndMap << YAML::EndMap << YAML::EndMap;
  }
  for (const auto& ns : model["namespaces"]) {
    for (const auto& pod : model["pods"]) {
      std::string key = ns.as<std::string>() + "/" + pod.as<std::string>();
      e << YAML::BeginDoc << YAML::BeginMap << YAML::Key << "apiVersion" << YAML::Value << "v1"
        << YAML::Key << "kind" << YAML::Value << "Pod" << YAML::Key << "metadata" << YAML::Value
        << YAML::BeginMap << YAML::Key << "name" << YAML::Value << pod.as<std::string>()
        << YAML::Key << "namespace" << YAML::Value << ns.as<std::string>() << YAML::Key << "labels"
        << YAML::Value << YAML::BeginMap << YAML::Key << "pod" << YAML::Value
        << pod.as<std::string>();
      if (auto it = sc.extra_pod_labels.find(key); it != sc.extra_pod_labels.end()) {
        for (const auto& [k, v] : it->second) e << YAML::Key << k << YAML::Value << v;
      }
      e << YAML::EndMap << YAML::EndMap;
      e << YAML::Key << "spec" << YAML::Value << YAML::BeginMap << YAML::Key << "containers"
        << YAML::Value << YAML::BeginSeq << YAML::BeginMap << YAML::Key << "name" << YAML::Value
        << "server" << YAML::Key << "ports" << YAML::Value << YAML::BeginSeq;
      for (const auto& port : model["ports"]) {
        for (const auto& proto : model["protocols"]) {
          std::string pr = proto.as<std::string>();
          e << YAML::BeginMap << YAML::Key << "name" << YAML::Value
            << "serve-" + port.as<std::string>() + "-" + lower(pr) << YAML::Key << "containerPort"
            << YAML::Value << port.as<int>() << YAML::Key << "protocol" << YAML::Value << pr
            << YAML::EndMap;
        }
      }
      e << YAML::EndSeq << YAML::EndMap << YAML::EndSeq << YAML::EndMap;
      e << YAML::Key << "status" << YAML::Value << YAML::BeginMap << YAML::Key << "podIP"
        << YAML::Value << model["pod_ips"][key].as<std::string>() << YAML::EndMap << YAML::EndMap;
    }
  }
  return e.c_str();
}

// cidr_of / except_of → real, masked CIDRs of the model's pod IPs.
inline std::string cidrOf(const YAML::Node& model, const YAML::Node& ref) {
  std::string ip = model["pod_ips"][ref["pod"].as<std::string>()].as<std::string>();
  auto c = zonewall::parseCidr(ip + "/" + ref["prefix"].as<std::string>());
  return c ? c->cidr.str() : "invalid";
}

inline YAML::Node substitute(const YAML::Node& model, const YAML::Node& n) {
  if (n.IsMap()) {
    YAML::Node out(YAML::NodeType::Map);
    for (const auto& kv : n) {
      std::string k = kv.first.as<std::string>();
      if (k == "cidr_of") {
        out["cidr"] = cidrOf(model, kv.second);
      } else if (k == "except_of") {
        YAML::Node ex(YAML::NodeType::Sequence);
        for (const auto& r : kv.second) ex.push_back(cidrOf(model, r));
        out["except"] = ex;
      } else {
        out[k] = substitute(model, kv.second);
      }
    }
    return out;
  }
  if (n.IsSequence()) {
    YAML::Node out(YAML::NodeType::Sequence);
    for (const auto& x : n) out.push_back(substitute(model, x));
    return out;
  }
  return YAML::Clone(n);
}

inline std::string policiesYaml(const YAML::Node& model, const YAML::Node& policies) {
  YAML::Emitter e;
  for (const auto& p : policies) e << YAML::BeginDoc << substitute(model, p);
  return e.c_str();
}

// Loads the file; the cases live in the repository, so a missing file is a failure anywhere.
class ConformanceFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = conformanceFile();
    ASSERT_TRUE(fs::exists(path_)) << "conformance file missing: " << path_;
    root_ = YAML::LoadFile(path_.string());
  }
  fs::path path_;
  YAML::Node root_;
};

}  // namespace zonewall::testing
