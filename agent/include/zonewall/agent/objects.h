// Objects from the outside world into the model: an API server's JSON objects, a directory's
// YAML, both read by the same policy loader as the CLI's input (one meaning for one text).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "zonewall/agent/cluster_state.h"
#include "zonewall/base/diagnostic.h"

namespace zonewall::agent {

/// One API object read: the object under its key, or the errors that reject it.
struct Converted {
  std::string key;  ///< "ns/name" or "name"
  std::optional<Object> object;
  std::vector<Diagnostic> errors;  ///< located in the object's JSON as the agent logs it
};

/// Reads an object of kind `k` as the API server returns it (list items lack kind and
/// apiVersion; Calico's kinds come as crd.projectcalico.org/v1 and are read as
/// projectcalico.org/v3). A pod that has finished (phase Succeeded or Failed) reads as no
/// object: it holds no address any more.
Converted fromApi(Kind k, const nlohmann::json& obj);

/// The objects of a loaded store, by kind and key.
std::map<ObjectKey, Object> objectsOf(policy::Store&& store);

}  // namespace zonewall::agent
