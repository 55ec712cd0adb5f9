// The YAML reader every object reader uses (the only code in zonewall that sees yaml-cpp,
// with kubernetes.cpp, calico.cpp and loader.cpp): locations as 1-based file:line:col,
// diagnostics, typed scalars, labels, CIDRs, selectors; and what all objects share.
#pragma once

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "names.h"
#include "zonewall/base/diagnostic.h"
#include "zonewall/policy/model.h"
#include "zonewall/policy/selector.h"

namespace zonewall::policy {

/// Calico's API refuses longer selector strings (kubebuilder MaxLength on every selector).
inline constexpr size_t kMaxSelectorLength = 1024;

// Reads one document, reporting every problem with its file:line:col.
class Reader {
 public:
  Reader(const std::string& file, int line_offset, Diagnostics& diags)
      : file_(file), line_offset_(line_offset), diags_(diags) {}

  SourceLoc loc(const YAML::Node& n) const {
    if (!n.IsDefined()) return SourceLoc{file_, 0, 0};  // a missing child: no position
    const YAML::Mark m = n.Mark();
    if (m.line < 0) {
      return SourceLoc{file_, 0, 0};
    }
    return SourceLoc{file_, line_offset_ + m.line + 1, m.column + 1};  // marks are 0-based
  }
  // Location of a child, or of the parent when the child is missing.
  SourceLoc locIn(const YAML::Node& parent, const char* key) const {
    YAML::Node c = parent[key];
    SourceLoc l = c ? loc(c) : loc(parent);
    return l.known() ? l : loc(parent);
  }
  void error(const YAML::Node& at, std::string msg, const char* id = "invalid-field") {
    ++errors_;
    diags_.error(loc(at), std::move(msg), id);
  }
  void error(SourceLoc at, std::string msg, const char* id = "invalid-field") {
    ++errors_;
    diags_.error(std::move(at), std::move(msg), id);
  }
  void warning(const YAML::Node& at, std::string msg, const char* id) {
    diags_.warning(loc(at), std::move(msg), id);
  }

  // Warns about keys a Kubernetes or Calico API server would not know: usually a typo that
  // silently changes the policy's meaning.
  void checkKeys(const YAML::Node& map, std::initializer_list<const char*> known,
                 const std::string& where) {
    if (!map.IsMap()) return;
    for (const auto& kv : map) {
      std::string k = kv.first.Scalar();
      if (k == also_known_) continue;
      if (std::none_of(known.begin(), known.end(), [&](const char* s) { return k == s; })) {
        warning(kv.first, fmt::format("unknown field '{}' in {}", k, where), "unknown-field");
      }
    }
  }

  bool isMap(const YAML::Node& n, const std::string& what) {
    if (n.IsMap()) return true;
    error(n, fmt::format("{} must be a mapping", what));
    return false;
  }
  bool isSeq(const YAML::Node& n, const std::string& what) {
    if (n.IsSequence()) return true;
    if (n.IsNull()) return false;  // "ingress:" with no value = empty list
    error(n, fmt::format("{} must be a list", what));
    return false;
  }
  std::optional<std::string> str(const YAML::Node& n, const std::string& what) {
    if (n.IsScalar()) return n.Scalar();
    error(n, fmt::format("{} must be a string", what));
    return std::nullopt;
  }
  // A plain (unquoted) scalar that is an integer.
  static std::optional<long long> plainInt(const YAML::Node& n) {
    if (!n.IsScalar() || n.Tag() == "!") return std::nullopt;
    const std::string& s = n.Scalar();
    long long v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
  }
  std::optional<long long> integer(const YAML::Node& n, const std::string& what, long long lo,
                                   long long hi) {
    auto v = plainInt(n);
    if (!v) {
      error(n, fmt::format("{} must be an integer", what));
      return std::nullopt;
    }
    if (*v < lo || *v > hi) {
      error(n, fmt::format("{} {} out of range [{}, {}]", what, *v, lo, hi), "out-of-range");
      return std::nullopt;
    }
    return v;
  }

  Labels labels(const YAML::Node& n, const std::string& what) {
    Labels out;
    if (!n || n.IsNull()) return out;
    if (!isMap(n, what)) return out;
    for (const auto& kv : n) {
      if (!kv.second.IsScalar()) {
        error(kv.second,
              fmt::format("{} value for '{}' must be a string", what, kv.first.Scalar()));
        continue;
      }
      const std::string& key = kv.first.Scalar();
      if (auto why = qualifiedNameError(key)) {
        error(kv.first, fmt::format("{}: invalid label key '{}': {}", what, key, *why),
              "invalid-label");
        continue;
      }
      if (auto why = labelValueError(kv.second.Scalar())) {
        error(kv.second,
              fmt::format("{}: invalid value '{}' for label '{}': {}", what, kv.second.Scalar(),
                          key, *why),
              "invalid-label");
        continue;
      }
      out[key] = kv.second.Scalar();
    }
    return out;
  }

  std::optional<Cidr> cidr(const YAML::Node& n, const std::string& what) {
    auto s = str(n, what);
    if (!s) return std::nullopt;
    auto c = parseCidr(*s, /*allow_bare=*/false);
    if (!c) {
      error(n, fmt::format("{}: invalid CIDR '{}'", what, *s), "invalid-cidr");
      return std::nullopt;
    }
    if (c->host_bits_set) {
      warning(n, fmt::format("{}: '{}' has host bits set; it means {}", what, *s, c->cidr.str()),
              "cidr-host-bits");
    }
    return c->cidr;
  }

  // Calico selector text, with errors placed at the offending character.
  std::optional<Selector> selectorText(const YAML::Node& n, const std::string& what) {
    auto s = str(n, what);
    if (!s) return std::nullopt;
    if (s->size() > kMaxSelectorLength) {
      error(n,
            fmt::format("{}: selector is {} characters long; Calico's limit is {}", what, s->size(),
                        kMaxSelectorLength),
            "invalid-selector");
      return std::nullopt;
    }
    auto sel = parseSelector(*s);
    if (!sel) {
      const SelectorParseError& perr = sel.error();
      SourceLoc l = loc(n);
      // Plain scalars start at the mark; quoted ones one character later. Multi-line
      // scalars are reported at their start.
      if (s->find('\n') == std::string::npos) {
        l.col += static_cast<int>(perr.offset) + (n.Tag() == "!" ? 1 : 0);
      }
      error(l, fmt::format("{}: invalid selector: {}", what, perr.message), "invalid-selector");
      return std::nullopt;
    }
    return *sel;
  }

  // Kubernetes metav1.LabelSelector.
  std::optional<Selector> labelSelector(const YAML::Node& n, const std::string& what) {
    if (n.IsNull()) return Selector::all();  // "podSelector:" with no value = {}
    if (!isMap(n, what)) return std::nullopt;
    checkKeys(n, {"matchLabels", "matchExpressions"}, what);
    std::vector<std::shared_ptr<const SelectorNode>> parts;
    bool ok = true;
    if (YAML::Node ml = n["matchLabels"]; ml && !ml.IsNull()) {
      for (const auto& [k, v] : labels(ml, what + ".matchLabels")) {
        parts.push_back(selEq(k, v));
      }
    }
    if (YAML::Node me = n["matchExpressions"]; me && isSeq(me, what + ".matchExpressions")) {
      for (const YAML::Node& e : me) {
        if (!isMap(e, "matchExpressions entry")) {
          ok = false;
          continue;
        }
        checkKeys(e, {"key", "operator", "values"}, "matchExpressions entry");
        auto key = e["key"] ? str(e["key"], "key") : std::nullopt;
        auto op = e["operator"] ? str(e["operator"], "operator") : std::nullopt;
        if (!key || !op) {
          if (!e["key"] || !e["operator"]) {
            error(e, "matchExpressions entry needs 'key' and 'operator'", "missing-field");
          }
          ok = false;
          continue;
        }
        if (auto why = qualifiedNameError(*key)) {
          error(e["key"], fmt::format("invalid label key '{}': {}", *key, *why), "invalid-label");
          ok = false;
          continue;
        }
        std::vector<std::string> values;
        if (YAML::Node vs = e["values"]; vs && isSeq(vs, "values")) {
          for (const YAML::Node& v : vs) {
            auto s = str(v, "value");
            if (!s) continue;
            if (auto why = labelValueError(*s)) {
              error(v, fmt::format("invalid label value '{}': {}", *s, *why), "invalid-label");
              ok = false;
            }
            values.push_back(*s);
          }
        }
        if (*op == "In" || *op == "NotIn") {
          if (values.empty()) {
            error(e, fmt::format("operator {} needs a non-empty 'values'", *op));
            ok = false;
            continue;
          }
          parts.push_back(*op == "In" ? selIn(*key, values) : selNotIn(*key, values));
        } else if (*op == "Exists" || *op == "DoesNotExist") {
          if (!values.empty()) {
            error(e["values"], fmt::format("operator {} takes no 'values'", *op));
            ok = false;
            continue;
          }
          parts.push_back(*op == "Exists" ? selHas(*key) : selNot(selHas(*key)));
        } else {
          error(e["operator"],
                fmt::format("unknown operator '{}' (In, NotIn, Exists, DoesNotExist)", *op));
          ok = false;
        }
      }
    }
    if (!ok) return std::nullopt;
    std::sort(parts.begin(), parts.end(),
              [](const auto& a, const auto& b) { return Selector(a).str() < Selector(b).str(); });
    return Selector::conjunction(std::move(parts));
  }

  /// One more key every checkKeys() accepts while it is set (a staged policy's stagedAction,
  /// read by the enforced kind's reader); empty: none.
  void alsoKnow(std::string key) { also_known_ = std::move(key); }

  const std::string& file() const { return file_; }
  Diagnostics& diags() { return diags_; }

  /// How many errors this reader has reported (see keepUnlessErrors): every error of a
  /// document goes through error(), so counting here costs nothing per object.
  size_t errorCount() const { return errors_; }

 private:
  const std::string& file_;
  int line_offset_;
  Diagnostics& diags_;
  size_t errors_ = 0;
  std::string also_known_;
};

struct Meta {
  std::string name;
  std::string ns;
  Labels labels;
};

/// An IANA service name (a named port): 1-15 of [a-z0-9-], a letter, no edge or double hyphen.
bool validPortName(const std::string& s);

/// metadata: name (required), namespace (default "default" when namespaced), labels.
Meta readMeta(Reader& r, const YAML::Node& doc, bool namespaced, const std::string& kind);

/// One rule for every object: an object with an error anywhere (reported since `mark`, a
/// Reader::errorCount()) is dropped whole — a half-read policy could allow more than its
/// author wrote, and the diagnostics make the run fail anyway.
template <class T>
void keepUnlessErrors(const Reader& r, size_t mark, std::vector<T>& into, T&& object) {
  if (r.errorCount() == mark) {
    into.push_back(std::forward<T>(object));
  }
}

// The readers of each kind (kubernetes.cpp, calico.cpp, admin.cpp); each appends to `store`.
void readNamespace(Reader& r, const YAML::Node& doc, Store& store);
void readPod(Reader& r, const YAML::Node& doc, Store& store);
void readK8sPolicy(Reader& r, const YAML::Node& doc, Store& store);
void readCalicoPolicy(Reader& r, const YAML::Node& doc, Store& store, bool global);
void readNetworkSet(Reader& r, const YAML::Node& doc, Store& store, bool global);
void readTier(Reader& r, const YAML::Node& doc, Store& store);
void readZoneContract(Reader& r, const YAML::Node& doc, Store& store);
/// StagedNetworkPolicy, StagedGlobalNetworkPolicy, StagedKubernetesNetworkPolicy.
void readStagedPolicy(Reader& r, const YAML::Node& doc, Store& store);
/// AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy (admin.cpp).
void readAdminPolicy(Reader& r, const YAML::Node& doc, Store& store, AdminKind kind);
void readNode(Reader& r, const YAML::Node& doc, Store& store);

}  // namespace zonewall::policy
