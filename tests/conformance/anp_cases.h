// The cluster-admin conformance cases of tests/conformance/data/anp-conformance-subset.yaml
// (network-policy-api v0.1.7 ConformanceTests, transcribed; see data/README.md) as steps: the
// model turned into Namespace and Pod objects, each step's complete object set, its checks —
// and the same objects rewritten into v1alpha2 ClusterNetworkPolicy, so that one transcription
// judges both API versions.
#pragma once

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "conformance/conformance_cases.h"
#include "test_support.h"

namespace zonewall::testing {

inline fs::path anpConformanceFile() {
  return fs::path(sourceDir()) / "tests" / "conformance" / "data" / "anp-conformance-subset.yaml";
}

struct AnpCheck {
  std::string from;  ///< "house/pod"
  std::string to;
  std::string protocol;
  int port = 0;
  bool allowed = false;
};

struct AnpStep {
  std::string name;  ///< "CaseId/step N"
  YAML::Node objects;
  std::vector<AnpCheck> checks;
};

enum class AnpApi { kV1Alpha1, kV1Alpha2 };

inline std::vector<AnpStep> loadAnpSteps(const YAML::Node& root) {
  std::vector<AnpStep> out;
  for (const auto& c : root["cases"]) {
    int n = 0;
    for (const auto& s : c["steps"]) {
      AnpStep step;
      step.name = c["id"].as<std::string>() + "/step " + std::to_string(++n);
      step.objects.reset(s["objects"]);
      for (const auto& ch : s["checks"]) {
        step.checks.push_back({ch["from"].as<std::string>(), ch["to"].as<std::string>(),
                               ch["protocol"].as<std::string>(), ch["port"].as<int>(),
                               ch["expect"].as<std::string>() == "allowed"});
      }
      out.push_back(std::move(step));
    }
  }
  return out;
}

/// "house/pod" → the pod's real namespace and name, e.g. "network-policy-conformance-gryffindor/
/// harry-potter-0".
inline std::string anpPodKey(const YAML::Node& model, const std::string& ref) {
  auto slash = ref.find('/');
  return model["namespaces"][ref.substr(0, slash)]["name"].as<std::string>() + "/" +
         ref.substr(slash + 1);
}

/// The model's pods: house-local "house/pod" ref → real "namespace/name" and IP.
struct AnpPod {
  std::string ref;
  std::string key;
  std::string ip;
};
inline std::vector<AnpPod> anpPods(const YAML::Node& model) {
  std::vector<AnpPod> out;
  for (const auto& house : model["pods"]) {
    for (const auto& pod : house.second) {
      std::string ref = house.first.as<std::string>() + "/" + pod.as<std::string>();
      out.push_back(
          {ref, anpPodKey(model, ref), model["suggested_pod_ips"][ref].as<std::string>()});
    }
  }
  return out;
}

// The model as Namespace and Pod objects: StatefulSet replicas labelled with their house (and
// the StatefulSet's own labels), every container port the upstream servers declare.
inline std::string anpInventoryYaml(const YAML::Node& model) {
  YAML::Emitter e;
  for (const auto& ns : model["namespaces"]) {
    e << YAML::BeginDoc << YAML::BeginMap << YAML::Key << "apiVersion" << YAML::Value << "v1"
      << YAML::Key << "kind" << YAML::Value << "Namespace" << YAML::Key << "metadata" << YAML::Value
      << YAML::BeginMap << YAML::Key << "name" << YAML::Value << ns.second["name"] << YAML::Key
      << "labels" << YAML::Value << ns.second["labels"] << YAML::EndMap << YAML::EndMap;
  }
  for (const auto& house : model["pods"]) {
    const std::string h = house.first.as<std::string>();
    for (const auto& pod : house.second) {
      const std::string name = pod.as<std::string>();
      const std::string sts = name.substr(0, name.rfind('-'));
      e << YAML::BeginDoc << YAML::BeginMap << YAML::Key << "apiVersion" << YAML::Value << "v1"
        << YAML::Key << "kind" << YAML::Value << "Pod" << YAML::Key << "metadata" << YAML::Value
        << YAML::BeginMap << YAML::Key << "name" << YAML::Value << name << YAML::Key << "namespace"
        << YAML::Value << model["namespaces"][h]["name"] << YAML::Key << "labels" << YAML::Value
        << YAML::BeginMap << YAML::Key << "conformance-house" << YAML::Value << h << YAML::Key
        << "statefulset.kubernetes.io/pod-name" << YAML::Value << name << YAML::Key
        << "controller-revision-hash" << YAML::Value << sts + "-5d4f8c7b9" << YAML::Key
        << "apps.kubernetes.io/pod-index" << YAML::Value << name.substr(name.rfind('-') + 1)
        << YAML::EndMap << YAML::EndMap;
      e << YAML::Key << "spec" << YAML::Value << YAML::BeginMap << YAML::Key << "containers"
        << YAML::Value << YAML::BeginSeq << YAML::BeginMap << YAML::Key << "name" << YAML::Value
        << "server" << YAML::Key << "ports" << YAML::Value << YAML::BeginSeq;
      for (const auto& port : model["container_ports"]) {
        e << YAML::BeginMap << YAML::Key << "containerPort" << YAML::Value << port["port"]
          << YAML::Key << "protocol" << YAML::Value << port["protocol"];
        if (port["name"]) e << YAML::Key << "name" << YAML::Value << port["name"];
        e << YAML::EndMap;
      }
      e << YAML::EndSeq << YAML::EndMap << YAML::EndSeq << YAML::EndMap;
      e << YAML::Key << "status" << YAML::Value << YAML::BeginMap << YAML::Key << "podIP"
        << YAML::Value << model["suggested_pod_ips"][h + "/" + name] << YAML::EndMap
        << YAML::EndMap;
    }
  }
  return e.c_str();
}

// `{cidr_of: {pod, prefix}}` → the pod's real CIDR.
inline YAML::Node anpSubstitute(const YAML::Node& model, const YAML::Node& n) {
  if (n.IsMap()) {
    if (n["cidr_of"]) {
      std::string ip =
          model["suggested_pod_ips"][n["cidr_of"]["pod"].as<std::string>()].as<std::string>();
      return YAML::Node(ip + "/" + n["cidr_of"]["prefix"].as<std::string>());
    }
    YAML::Node out(YAML::NodeType::Map);
    for (const auto& kv : n) out[kv.first.as<std::string>()] = anpSubstitute(model, kv.second);
    return out;
  }
  if (n.IsSequence()) {
    YAML::Node out(YAML::NodeType::Sequence);
    for (const auto& x : n) out.push_back(anpSubstitute(model, x));
    return out;
  }
  return YAML::Clone(n);
}

// v1alpha1 `ports` entry → v1alpha2 `protocols` entry.
inline YAML::Node toV1Alpha2Protocol(const YAML::Node& port) {
  YAML::Node out(YAML::NodeType::Map);
  if (port["namedPort"]) {
    out["destinationNamedPort"] = port["namedPort"].as<std::string>();
    return out;
  }
  const YAML::Node src = port["portNumber"] ? port["portNumber"] : port["portRange"];
  std::string proto = src["protocol"] ? lower(src["protocol"].as<std::string>()) : "tcp";
  YAML::Node dest(YAML::NodeType::Map);
  if (port["portNumber"]) {
    dest["number"] = src["port"].as<int>();
  } else {
    dest["range"]["start"] = src["start"].as<int>();
    dest["range"]["end"] = src["end"].as<int>();
  }
  out[proto]["destinationPort"] = dest;
  return out;
}

// An AdminNetworkPolicy → ClusterNetworkPolicy tier Admin (its priority kept); the
// BaselineAdminNetworkPolicy → ClusterNetworkPolicy tier Baseline (priority 0: it is alone);
// Allow → Accept, `ports` → `protocols`. Anything else (a NetworkPolicy) stays.
inline YAML::Node toV1Alpha2(const YAML::Node& obj) {
  const std::string kind = obj["kind"].as<std::string>();
  if (kind != "AdminNetworkPolicy" && kind != "BaselineAdminNetworkPolicy") return YAML::Clone(obj);
  YAML::Node out(YAML::NodeType::Map);
  out["apiVersion"] = "policy.networking.k8s.io/v1alpha2";
  out["kind"] = "ClusterNetworkPolicy";
  out["metadata"] = YAML::Clone(obj["metadata"]);
  YAML::Node spec(YAML::NodeType::Map);
  const YAML::Node in = obj["spec"];
  spec["tier"] = kind == "AdminNetworkPolicy" ? "Admin" : "Baseline";
  spec["priority"] = in["priority"] ? in["priority"].as<int>() : 0;
  spec["subject"] = YAML::Clone(in["subject"]);
  for (const char* dir : {"ingress", "egress"}) {
    if (!in[dir]) continue;
    YAML::Node rules(YAML::NodeType::Sequence);
    for (const auto& r : in[dir]) {
      YAML::Node rule(YAML::NodeType::Map);
      if (r["name"]) rule["name"] = r["name"].as<std::string>();
      std::string action = r["action"].as<std::string>();
      rule["action"] = action == "Allow" ? "Accept" : action;
      const char* peers = std::string(dir) == "ingress" ? "from" : "to";
      rule[peers] = YAML::Clone(r[peers]);
      if (r["ports"]) {
        YAML::Node protocols(YAML::NodeType::Sequence);
        for (const auto& p : r["ports"]) protocols.push_back(toV1Alpha2Protocol(p));
        rule["protocols"] = protocols;
      }
      rules.push_back(rule);
    }
    spec[dir] = rules;
  }
  out["spec"] = spec;
  return out;
}

inline std::string anpObjectsYaml(const YAML::Node& model, const YAML::Node& objects, AnpApi api) {
  YAML::Emitter e;
  for (const auto& o : objects) {
    YAML::Node obj = anpSubstitute(model, o);
    e << YAML::BeginDoc << (api == AnpApi::kV1Alpha2 ? toV1Alpha2(obj) : obj);
  }
  return e.c_str();
}

class AnpConformanceFixture : public ::testing::TestWithParam<AnpApi> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(anpConformanceFile())) << "missing: " << anpConformanceFile();
    root_ = YAML::LoadFile(anpConformanceFile().string());
    model_ = root_["model"];
  }
  YAML::Node root_;
  YAML::Node model_;
};

inline std::string anpApiName(const ::testing::TestParamInfo<AnpApi>& info) {
  return info.param == AnpApi::kV1Alpha1 ? "v1alpha1_ANP_BANP" : "v1alpha2_CNP";
}

}  // namespace zonewall::testing
