#include "reader.h"

#include <cctype>

namespace zonewall::policy {

bool validPortName(const std::string& s) {
  // IANA_SVC_NAME: 1-15 chars of [a-z0-9-], at least one letter, no leading/trailing or
  // double hyphen.
  if (s.empty() || s.size() > 15 || s.front() == '-' || s.back() == '-' ||
      s.find("--") != std::string::npos) {
    return false;
  }
  bool letter = false;
  for (char c : s) {
    if (std::islower(static_cast<unsigned char>(c))) {
      letter = true;
    } else if (!std::isdigit(static_cast<unsigned char>(c)) && c != '-') {
      return false;
    }
  }
  return letter;
}

Meta readMeta(Reader& r, const YAML::Node& doc, bool namespaced, const std::string& kind) {
  Meta m;
  YAML::Node md = doc["metadata"];
  if (!md || !md.IsMap()) {
    r.error(md ? md : doc, fmt::format("{} needs metadata with a name", kind), "missing-field");
    return m;
  }
  if (YAML::Node n = md["name"]; n && n.IsScalar() && !n.Scalar().empty()) {
    m.name = n.Scalar();
  } else {
    r.error(r.locIn(md, "name"), fmt::format("{} needs metadata.name", kind), "missing-field");
  }
  if (namespaced) {
    YAML::Node n = md["namespace"];
    m.ns = (n && n.IsScalar() && !n.Scalar().empty()) ? n.Scalar() : "default";
  } else if (md["namespace"]) {
    r.warning(md["namespace"], fmt::format("{} is not namespaced; namespace ignored", kind),
              "unknown-field");
  }
  m.labels = r.labels(md["labels"], "metadata.labels");
  return m;
}

}  // namespace zonewall::policy
