#include "zonewall/agent/objects.h"

#include <fmt/format.h>

#include "zonewall/policy/loader.h"

namespace zonewall::agent {

using nlohmann::json;

namespace {

const char* apiVersionOf(Kind k) {
  switch (k) {
    case Kind::kNamespace:
    case Kind::kPod:
    case Kind::kNode:
      return "v1";
    case Kind::kNetworkPolicy:
      return "networking.k8s.io/v1";
    case Kind::kAdminPolicy:
    case Kind::kBaselineAdminPolicy:
      return "policy.networking.k8s.io/v1alpha1";
    case Kind::kClusterPolicy:
      return "policy.networking.k8s.io/v1alpha2";
    default:
      return "projectcalico.org/v3";
  }
}

const char* apiKindOf(Kind k) {
  switch (k) {
    case Kind::kCalicoPolicy:
      return "NetworkPolicy";
    default:
      return kindName(k);
  }
}

// Copies `key` of `from` into `to` when present.
void keep(const json& from, json& to, const char* key) {
  if (auto it = from.find(key); it != from.end()) {
    to[key] = *it;
  }
}

// The fields of a Pod the model reads: a Pod as the API server sends it is mostly what the
// agent never looks at (and keeping less keeps 150k pods small).
json trimPod(const json& pod) {
  json out = json::object();
  json meta = json::object();
  if (auto m = pod.find("metadata"); m != pod.end() && m->is_object()) {
    for (const char* k : {"name", "namespace", "labels"}) keep(*m, meta, k);
  }
  out["metadata"] = std::move(meta);
  if (auto spec = pod.find("spec"); spec != pod.end() && spec->is_object()) {
    json s = json::object();
    keep(*spec, s, "nodeName");
    if (auto cs = spec->find("containers"); cs != spec->end() && cs->is_array()) {
      json containers = json::array();
      for (const json& c : *cs) {
        json kept = json::object();
        if (c.is_object()) keep(c, kept, "ports");
        containers.push_back(std::move(kept));
      }
      s["containers"] = std::move(containers);
    }
    out["spec"] = std::move(s);
  }
  if (auto st = pod.find("status"); st != pod.end() && st->is_object()) {
    json s = json::object();
    keep(*st, s, "podIP");
    keep(*st, s, "podIPs");
    out["status"] = std::move(s);
  }
  return out;
}

std::string stringAt(const json& j, const char* a, const char* b) {
  auto x = j.find(a);
  if (x == j.end() || !x->is_object()) return "";
  auto y = x->find(b);
  return y != x->end() && y->is_string() ? y->get<std::string>() : "";
}

}  // namespace

Converted fromApi(Kind k, const json& obj) {
  Converted out;
  if (!obj.is_object()) {  // found by fuzzing: a watch event whose object is a number
    out.errors.push_back(Diagnostic{
        .loc = {.file = std::string(kindName(k))},
        .message = fmt::format("the API server sent a {}, not an object", obj.type_name()),
        .rule_id = "invalid-object"});
    return out;
  }
  std::string ns = stringAt(obj, "metadata", "namespace");
  std::string name = stringAt(obj, "metadata", "name");
  out.key = ns.empty() ? name : ns + "/" + name;

  json doc;
  bool terminating = false;
  if (k == Kind::kPod) {
    std::string phase = stringAt(obj, "status", "phase");
    if (phase == "Succeeded" || phase == "Failed") {
      return out;
    }
    auto meta = obj.find("metadata");
    terminating = meta != obj.end() && meta->is_object() && meta->contains("deletionTimestamp") &&
                  !(*meta)["deletionTimestamp"].is_null();
    doc = trimPod(obj);
  } else if (k == Kind::kNode) {
    // Labels and addresses: a node's status changes on every heartbeat, those rarely.
    doc = {{"metadata", {{"name", name}}}};
    if (auto m = obj.find("metadata"); m != obj.end() && m->is_object()) {
      keep(*m, doc["metadata"], "labels");
    }
    if (auto st = obj.find("status"); st != obj.end() && st->is_object()) {
      json s = json::object();
      keep(*st, s, "addresses");
      doc["status"] = std::move(s);
    }
  } else {
    doc = obj;
    // What the loader does not read and an API server adds (managedFields is most of it).
    if (auto m = doc.find("metadata"); m != doc.end() && m->is_object()) {
      json meta = json::object();
      for (const char* key : {"name", "namespace", "labels"}) keep(*m, meta, key);
      *m = std::move(meta);
    }
    doc.erase("status");
  }
  if (k >= Kind::kTier && !name.empty()) {
    // Calico's Kubernetes datastore stores a default-tier policy as "default.<name>".
    bool policy = k == Kind::kCalicoPolicy || k == Kind::kGlobalPolicy;
    std::string tier = policy::kDefaultTier;
    if (auto spec = doc.find("spec"); spec != doc.end() && spec->is_object()) {
      if (auto t = spec->find("tier"); t != spec->end() && t->is_string()) tier = *t;
    }
    if (policy && tier == policy::kDefaultTier && name.starts_with("default.")) {
      name = name.substr(8);
      doc["metadata"]["name"] = name;
      out.key = ns.empty() ? name : ns + "/" + name;
    }
  }
  doc["apiVersion"] = apiVersionOf(k);
  doc["kind"] = apiKindOf(k);

  policy::Store store;
  Diagnostics diags;
  std::string source = fmt::format("{} {}", kindName(k), out.key);
  policy::loadSources({{source, doc.dump(1)}}, store, diags);
  for (const Diagnostic& d : diags.all()) {
    if (d.severity == Severity::kError) out.errors.push_back(d);
  }
  if (!out.errors.empty()) {
    return out;
  }
  out.object = Object{std::move(store), terminating};
  return out;
}

std::map<ObjectKey, Object> objectsOf(policy::Store&& store) {
  std::map<ObjectKey, Object> out;
  auto put = [&](Kind k, std::string key, auto member, auto&& value) {
    Object o;
    (o.store.*member).push_back(std::forward<decltype(value)>(value));
    out.insert_or_assign({k, std::move(key)}, std::move(o));
  };
  for (auto& n : store.namespaces) put(Kind::kNamespace, n.name, &policy::Store::namespaces, n);
  for (auto& p : store.pods) put(Kind::kPod, p.key(), &policy::Store::pods, p);
  for (auto& p : store.k8s_policies) {
    put(Kind::kNetworkPolicy, p.key(), &policy::Store::k8s_policies, p);
  }
  for (auto& t : store.tiers) put(Kind::kTier, t.name, &policy::Store::tiers, t);
  for (auto& p : store.calico_policies) {
    put(p.global ? Kind::kGlobalPolicy : Kind::kCalicoPolicy, p.key(),
        &policy::Store::calico_policies, p);
  }
  for (auto& n : store.nodes) put(Kind::kNode, n.name, &policy::Store::nodes, n);
  for (auto& p : store.admin_policies) {
    put(kindOf(p), p.name, &policy::Store::admin_policies, p);
  }
  for (auto& s : store.network_sets) {
    put(s.global ? Kind::kGlobalNetworkSet : Kind::kNetworkSet,
        s.global ? s.name : s.ns + "/" + s.name, &policy::Store::network_sets, s);
  }
  return out;
}

}  // namespace zonewall::agent
