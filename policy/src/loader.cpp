// YAML → typed model: documents split and parsed, each object handed to the reader of its
// kind (kubernetes.cpp, calico.cpp, admin.cpp), yaml-cpp's exceptions turned into diagnostics here.
#include "zonewall/policy/loader.h"

#include <yaml-cpp/depthguard.h>

#include <algorithm>
#include <iterator>
#include <optional>
#include <string_view>

#include "reader.h"

namespace zonewall::policy {
namespace {

void readObject(Reader& r, const YAML::Node& doc, Store& store) {
  if (doc.IsNull()) return;  // empty document ("---" at the end)
  if (!doc.IsMap()) {
    r.error(doc, "a document must be a Kubernetes object (a mapping)", "invalid-object");
    return;
  }
  YAML::Node kind_n = doc["kind"];
  YAML::Node api_n = doc["apiVersion"];
  if (!kind_n || !kind_n.IsScalar() || !api_n || !api_n.IsScalar()) {
    r.error(doc, "object needs apiVersion and kind", "invalid-object");
    return;
  }
  const std::string& kind = kind_n.Scalar();
  const std::string& api = api_n.Scalar();
  if (api == "v1" && kind == "List") {
    if (YAML::Node items = doc["items"]; items && r.isSeq(items, "items")) {
      for (const YAML::Node& item : items) readObject(r, item, store);
    }
    return;
  }
  if (api == "v1" && kind == "Namespace") return readNamespace(r, doc, store);
  if (api == "v1" && kind == "Pod") return readPod(r, doc, store);
  if (api == "v1" && kind == "Node") return readNode(r, doc, store);
  if (api == "policy.networking.k8s.io/v1alpha1") {
    if (kind == "AdminNetworkPolicy") return readAdminPolicy(r, doc, store, AdminKind::kAdmin);
    if (kind == "BaselineAdminNetworkPolicy") {
      return readAdminPolicy(r, doc, store, AdminKind::kBaseline);
    }
  }
  if (api == "policy.networking.k8s.io/v1alpha2" && kind == "ClusterNetworkPolicy") {
    return readAdminPolicy(r, doc, store, AdminKind::kCluster);
  }
  if (api == "networking.k8s.io/v1" && kind == "NetworkPolicy") {
    return readK8sPolicy(r, doc, store);
  }
  if (api == "projectcalico.org/v3") {
    if (kind == "NetworkPolicy") return readCalicoPolicy(r, doc, store, false);
    if (kind == "GlobalNetworkPolicy") return readCalicoPolicy(r, doc, store, true);
    if (kind == "NetworkSet") return readNetworkSet(r, doc, store, false);
    if (kind == "GlobalNetworkSet") return readNetworkSet(r, doc, store, true);
    if (kind == "Tier") return readTier(r, doc, store);
    if (kind == "StagedNetworkPolicy" || kind == "StagedGlobalNetworkPolicy" ||
        kind == "StagedKubernetesNetworkPolicy") {
      return readStagedPolicy(r, doc, store);
    }
  }
  if (api == "zonewall.io/v1alpha1" && kind == "ZoneContract")
    return readZoneContract(r, doc, store);
  r.error(kind_n, fmt::format("unknown kind '{}' in apiVersion '{}'", kind, api), "unknown-kind");
}

// The first line of `text` that holds more than blanks, comments, directives and document
// markers (0-based), if any.
std::optional<int> firstContentLine(std::string_view text) {
  int line = 0;
  for (size_t pos = 0; pos < text.size(); ++line) {
    size_t eol = std::min(text.find('\n', pos), text.size());
    std::string_view l = text.substr(pos, eol - pos);
    size_t first = l.find_first_not_of(" \t\r");
    if (first != std::string_view::npos && l[first] != '#' && l[0] != '%' &&
        !l.starts_with("---") && !l.starts_with("...")) {
      return line;
    }
    pos = eol + 1;
  }
  return std::nullopt;
}

}  // namespace

void loadSources(const std::vector<SourceText>& sources, Store& store, Diagnostics& diags) {
  for (const SourceText& source : sources) {
    // One document at a time: yaml-cpp 0.7's LoadAll never returns on some malformed streams
    // (a lone ",": its parser reports a document without consuming the token, allocating
    // forever; jbeder/yaml-cpp#1040, fixed upstream after 0.8).
    for (const SourceText& src : splitDocuments(source)) {
      Reader r(src.name, src.line_offset, diags);
      if (src.text.size() > kMaxDocumentBytes) {
        diags.error(
            {src.name, src.line_offset + firstContentLine(src.text).value_or(0) + 1, 1},
            fmt::format("document of {:.1f} MiB: zonewall reads at most {} MiB per "
                        "document (an API object is at most 3 MiB); split it into "
                        "several documents or files",
                        static_cast<double>(src.text.size()) / (1 << 20), kMaxDocumentBytes >> 20),
            "document-too-large");
        continue;
      }
      YAML::Node doc;
      try {
        doc = YAML::Load(src.text);
      } catch (const YAML::DeepRecursion& e) {
        // yaml-cpp's own bound on nesting (its stack), reported as "bad file".
        diags.error({src.name, src.line_offset + e.mark.line + 1, e.mark.column + 1},
                    fmt::format("YAML nested deeper than {} levels", e.depth()), "yaml-syntax");
        continue;
      } catch (const YAML::Exception& e) {
        SourceLoc loc{src.name, e.mark.line >= 0 ? src.line_offset + e.mark.line + 1 : 0,
                      e.mark.column >= 0 ? e.mark.column + 1 : 0};
        diags.error(loc, fmt::format("YAML syntax error: {}", e.msg), "yaml-syntax");
        continue;
      }
      if (doc.IsNull()) {
        // An empty document, or one yaml-cpp read as nothing although it holds something.
        if (auto line = firstContentLine(src.text)) {
          diags.error({src.name, src.line_offset + *line + 1, 1},
                      "a document must be a Kubernetes object (a mapping)", "invalid-object");
        }
        continue;
      }
      try {
        readObject(r, doc, store);
      } catch (const YAML::Exception& e) {
        // Type conversions inside yaml-cpp: report where, never let it escape policy/.
        diags.error(r.loc(doc), fmt::format("invalid object: {}", e.msg), "invalid-object");
      }
    }
  }
}

std::vector<SourceText> splitDocuments(const SourceText& source) {
  std::vector<SourceText> out;
  const std::string& t = source.text;
  size_t start = 0;
  int start_line = 0;
  int line = 0;
  for (size_t pos = 0; pos < t.size();) {
    size_t eol = t.find('\n', pos);
    size_t end = eol == std::string::npos ? t.size() : eol;
    std::string_view l(t.data() + pos, end - pos);
    auto marker = [&](std::string_view m) {
      return l.starts_with(m) && (l.size() == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r');
    };
    if (marker("---") && pos > start) {  // a document starts here
      out.push_back({source.name, t.substr(start, pos - start), source.line_offset + start_line});
      start = pos;
      start_line = line;
    }
    ++line;
    pos = eol == std::string::npos ? t.size() : eol + 1;
    if (marker("...")) {  // a document ends with this line
      out.push_back({source.name, t.substr(start, pos - start), source.line_offset + start_line});
      start = pos;
      start_line = line;
    }
  }
  if (start < t.size() || out.empty()) {
    out.push_back({source.name, t.substr(start), source.line_offset + start_line});
  }
  return out;
}

void mergeStore(Store& into, Store&& from) {
  auto move = [](auto& dst, auto& src) {
    dst.insert(dst.end(), std::make_move_iterator(src.begin()), std::make_move_iterator(src.end()));
  };
  move(into.namespaces, from.namespaces);
  move(into.pods, from.pods);
  move(into.k8s_policies, from.k8s_policies);
  move(into.calico_policies, from.calico_policies);
  move(into.network_sets, from.network_sets);
  move(into.tiers, from.tiers);
  move(into.admin_policies, from.admin_policies);
  move(into.nodes, from.nodes);
  move(into.staged, from.staged);
  move(into.contracts, from.contracts);
}
}  // namespace zonewall::policy
