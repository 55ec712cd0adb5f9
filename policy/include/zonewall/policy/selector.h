// Label selectors: the full Calico selector grammar, which also expresses Kubernetes
// LabelSelectors (matchLabels / matchExpressions) exactly.
//
//   expr   := or
//   or     := and ( "||" and )*
//   and    := unary ( "&&" unary )*
//   unary  := "!" unary | "(" expr ")" | "all()" | "global()" | "has(" key ")" | key op
//   (global() matches everything, as in Calico; it means "no namespace" only as a rule's
//   whole namespaceSelector, the one place Calico's validator lets it stand)
//   op     := ("=="|"!=") str | "in" set | "not" "in" set
//           | "contains" str | "starts" "with" str | "ends" "with" str
//   set    := "{" [ str ("," str)* ] "}"
#pragma once

#include <cstdint>
#include <expected>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace zonewall::policy {

using Labels = std::map<std::string, std::string, std::less<>>;

/// What a selector is evaluated against: a label lookup.
class LabelView {
 public:
  virtual ~LabelView() = default;
  virtual const std::string* get(std::string_view key) const = 0;
};

/// A plain label map as a LabelView.
class MapLabelView final : public LabelView {
 public:
  explicit MapLabelView(const Labels& l) : labels_(l) {}
  const std::string* get(std::string_view key) const override;

 private:
  const Labels& labels_;
};

struct SelectorNode {
  enum class Op : std::uint8_t {
    kAll,
    kGlobal,
    kHas,
    kEq,
    kNe,
    kIn,
    kNotIn,
    kContains,
    kStartsWith,
    kEndsWith,
    kNot,
    kAnd,
    kOr,
  };
  Op op = Op::kAll;
  std::string key;
  std::vector<std::string> values;  ///< one for kEq..kEndsWith, the set (sorted) for kIn/kNotIn
  std::vector<std::shared_ptr<const SelectorNode>> kids;
};

/// An immutable selector expression; cheap to copy.
class Selector {
 public:
  Selector();  ///< all()
  explicit Selector(std::shared_ptr<const SelectorNode> root);

  bool matches(const LabelView& labels) const;
  bool matches(const Labels& labels) const { return matches(MapLabelView(labels)); }
  /// Canonical Calico text: equal selectors print equal, so it serves as an identity key.
  const std::string& str() const { return text_; }
  bool isAll() const { return root_->op == SelectorNode::Op::kAll; }
  const SelectorNode& root() const { return *root_; }
  const std::shared_ptr<const SelectorNode>& rootPtr() const { return root_; }

  static Selector all() { return Selector(); }
  static Selector conjunction(std::vector<std::shared_ptr<const SelectorNode>> parts);

 private:
  std::shared_ptr<const SelectorNode> root_;
  std::string text_;
};

struct SelectorParseError {
  size_t offset = 0;  ///< 0-based offset into the selector text
  std::string message;
};

/// Parses Calico selector syntax. An empty or all-blank string is all().
std::expected<Selector, SelectorParseError> parseSelector(std::string_view text);

/// Whether a Calico rule namespaceSelector picks an entity outside every namespace (a
/// GlobalNetworkSet). Calico prefixes the selector's label names with "pcns.", which such an
/// entity lacks, reads all() as has(projectcalico.org/namespace) and global() as its negation
/// (libcalico-go updateprocessors/rules.go): `!has(team)` picks it, `all()` does not.
bool namespaceSelectorPicksGlobal(const Selector& ns_selector);

/// Builders used to express Kubernetes LabelSelectors.
std::shared_ptr<const SelectorNode> selEq(std::string key, std::string value);
std::shared_ptr<const SelectorNode> selIn(std::string key, std::vector<std::string> values);
std::shared_ptr<const SelectorNode> selNotIn(std::string key, std::vector<std::string> values);
std::shared_ptr<const SelectorNode> selHas(std::string key);
std::shared_ptr<const SelectorNode> selNot(std::shared_ptr<const SelectorNode> kid);

}  // namespace zonewall::policy
