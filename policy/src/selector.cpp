#include "zonewall/policy/selector.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace zonewall::policy {
namespace {

using Node = SelectorNode;
using NodePtr = std::shared_ptr<const SelectorNode>;

NodePtr makeNode(Node::Op op, std::string key = {}, std::vector<std::string> values = {},
                 std::vector<NodePtr> kids = {}) {
  auto n = std::make_shared<Node>();
  n->op = op;
  n->key = std::move(key);
  n->values = std::move(values);
  n->kids = std::move(kids);
  return n;
}

std::string quote(const std::string& s) {
  // Calico strings have no escapes: pick the quote that the value does not contain.
  return s.find('\'') == std::string::npos ? "'" + s + "'" : "\"" + s + "\"";
}

std::string render(const Node& n, bool nested) {
  switch (n.op) {
    case Node::Op::kAll:
      return "all()";
    case Node::Op::kGlobal:
      return "global()";
    case Node::Op::kHas:
      return fmt::format("has({})", n.key);
    case Node::Op::kEq:
      return fmt::format("{} == {}", n.key, quote(n.values[0]));
    case Node::Op::kNe:
      return fmt::format("{} != {}", n.key, quote(n.values[0]));
    case Node::Op::kIn:
    case Node::Op::kNotIn: {
      std::string set;
      for (const auto& v : n.values) {
        set += (set.empty() ? "" : ", ") + quote(v);
      }
      return fmt::format("{} {} {{{}}}", n.key, n.op == Node::Op::kIn ? "in" : "not in", set);
    }
    case Node::Op::kContains:
      return fmt::format("{} contains {}", n.key, quote(n.values[0]));
    case Node::Op::kStartsWith:
      return fmt::format("{} starts with {}", n.key, quote(n.values[0]));
    case Node::Op::kEndsWith:
      return fmt::format("{} ends with {}", n.key, quote(n.values[0]));
    case Node::Op::kNot:
      return "!" + render(*n.kids[0], true);
    case Node::Op::kAnd:
    case Node::Op::kOr: {
      std::string out;
      const char* sep = n.op == Node::Op::kAnd ? " && " : " || ";
      for (const auto& k : n.kids) {
        out += (out.empty() ? "" : sep) + render(*k, true);
      }
      return nested ? "(" + out + ")" : out;
    }
  }
  return "all()";
}

bool eval(const Node& n, const LabelView& lv) {
  switch (n.op) {
    case Node::Op::kAll:
      return true;
    case Node::Op::kGlobal:
      return true;  // Calico's GlobalNode: only a rule's whole namespaceSelector gives it meaning
    case Node::Op::kHas:
      return lv.get(n.key) != nullptr;
    case Node::Op::kEq: {
      const std::string* v = lv.get(n.key);
      return v != nullptr && *v == n.values[0];
    }
    case Node::Op::kNe: {
      const std::string* v = lv.get(n.key);
      return v == nullptr || *v != n.values[0];
    }
    case Node::Op::kIn: {
      const std::string* v = lv.get(n.key);
      return v != nullptr && std::binary_search(n.values.begin(), n.values.end(), *v);
    }
    case Node::Op::kNotIn: {
      const std::string* v = lv.get(n.key);
      return v == nullptr || !std::binary_search(n.values.begin(), n.values.end(), *v);
    }
    case Node::Op::kContains: {
      const std::string* v = lv.get(n.key);
      return v != nullptr && v->find(n.values[0]) != std::string::npos;
    }
    case Node::Op::kStartsWith: {
      const std::string* v = lv.get(n.key);
      return v != nullptr && v->starts_with(n.values[0]);
    }
    case Node::Op::kEndsWith: {
      const std::string* v = lv.get(n.key);
      return v != nullptr && v->ends_with(n.values[0]);
    }
    case Node::Op::kNot:
      return !eval(*n.kids[0], lv);
    case Node::Op::kAnd:
      return std::all_of(n.kids.begin(), n.kids.end(),
                         [&](const NodePtr& k) { return eval(*k, lv); });
    case Node::Op::kOr:
      return std::any_of(n.kids.begin(), n.kids.end(),
                         [&](const NodePtr& k) { return eval(*k, lv); });
  }
  return false;
}

// Calico's tokenizer refuses longer label names (tokenizer.MaxLabelLength).
constexpr size_t kMaxLabelLength = 512;
// zonewall's bound on nested parentheses and negations (Calico's recursive parser has none,
// Go's stacks grow); no selector written by a person comes near it.
constexpr int kMaxNesting = 256;

// Recursive-descent parser over the raw text, accepting exactly what Calico's tokenizer and
// parser accept (libcalico-go/lib/selector); tracks the offset for error messages.
class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  NodePtr parse() {
    skipWs();
    if (pos_ == s_.size()) {
      return makeNode(Node::Op::kAll);
    }
    NodePtr n = parseOr();
    skipWs();
    if (!failed_ && pos_ != s_.size()) {
      fail(fmt::format("unexpected '{}'", s_.substr(pos_, 1)));
    }
    return failed_ ? nullptr : n;
  }
  const SelectorParseError& error() const { return error_; }

 private:
  void fail(std::string msg) {
    if (!failed_) {
      failed_ = true;
      error_ = SelectorParseError{pos_, std::move(msg)};
    }
  }
  // Calico's tokenizer skips spaces and tabs only: a newline is an unexpected character.
  void skipWs() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) {
      ++pos_;
    }
  }
  bool eat(std::string_view tok) {
    skipWs();
    if (s_.substr(pos_, tok.size()) == tok) {
      pos_ += tok.size();
      return true;
    }
    return false;
  }
  static bool isKeyChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '/' || c == '-';
  }
  // "all(", "has(" and "global(" are one token each in Calico: no space before the '(', and a
  // label may be called all, has or global.
  bool eatCall(std::string_view name) {
    skipWs();
    if (s_.substr(pos_, name.size()) == name && pos_ + name.size() < s_.size() &&
        s_[pos_ + name.size()] == '(') {
      pos_ += name.size() + 1;
      return true;
    }
    return false;
  }
  // A keyword is a whole word: "in" must not match the start of "index".
  bool eatWord(std::string_view word) {
    skipWs();
    if (s_.substr(pos_, word.size()) == word &&
        (pos_ + word.size() == s_.size() || !isKeyChar(s_[pos_ + word.size()]))) {
      pos_ += word.size();
      return true;
    }
    return false;
  }
  std::string key() {
    skipWs();
    size_t start = pos_;
    while (pos_ < s_.size() && isKeyChar(s_[pos_])) {
      ++pos_;
    }
    if (start == pos_) {
      fail("expected a label key");
    } else if (const size_t len = pos_ - start; len > kMaxLabelLength) {
      pos_ = start;
      fail(fmt::format("label too long ({} characters; Calico's limit is {})", len,
                       kMaxLabelLength));
    }
    return std::string(s_.substr(start, pos_ - start));
  }
  std::string str() {
    skipWs();
    if (pos_ >= s_.size() || (s_[pos_] != '"' && s_[pos_] != '\'')) {
      fail("expected a quoted string");
      return {};
    }
    char q = s_[pos_];
    size_t end = s_.find(q, pos_ + 1);
    if (end == std::string_view::npos) {
      fail("unterminated string");
      return {};
    }
    std::string v(s_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return v;
  }
  std::vector<std::string> set() {
    std::vector<std::string> vals;
    if (!eat("{")) {
      fail("expected '{'");
      return vals;
    }
    if (eat("}")) {
      return vals;
    }
    // Calico takes a trailing comma: {'a', 'b',}.
    do {
      skipWs();
      if (pos_ < s_.size() && s_[pos_] == '}') break;
      vals.push_back(str());
      if (failed_) {
        return vals;
      }
    } while (eat(","));
    if (!eat("}")) {
      fail("expected ',' or '}'");
    }
    std::sort(vals.begin(), vals.end());
    vals.erase(std::unique(vals.begin(), vals.end()), vals.end());
    return vals;
  }
  NodePtr parseOr() {
    std::vector<NodePtr> kids{parseAnd()};
    while (!failed_ && eat("||")) {
      kids.push_back(parseAnd());
    }
    return kids.size() == 1 ? kids[0] : makeNode(Node::Op::kOr, {}, {}, std::move(kids));
  }
  NodePtr parseAnd() {
    std::vector<NodePtr> kids{parseUnary()};
    while (!failed_ && eat("&&")) {
      kids.push_back(parseUnary());
    }
    return kids.size() == 1 ? kids[0] : makeNode(Node::Op::kAnd, {}, {}, std::move(kids));
  }
  NodePtr parseUnary() {
    if (failed_) {
      return makeNode(Node::Op::kAll);
    }
    // Parentheses and '!' nest by recursion (here, and when the selector is evaluated or
    // printed): bounded, so that no selector text can exhaust the stack.
    struct Nesting {
      int& depth;
      explicit Nesting(int& d) : depth(++d) {}
      ~Nesting() { --depth; }
    } nesting(depth_);
    if (depth_ > kMaxNesting) {
      fail(fmt::format("selector nested deeper than {} levels", kMaxNesting));
      return makeNode(Node::Op::kAll);
    }
    skipWs();
    if (pos_ >= s_.size()) {
      fail("unexpected end of selector");
      return makeNode(Node::Op::kAll);
    }
    if (s_[pos_] == '!' && (pos_ + 1 >= s_.size() || s_[pos_ + 1] != '=')) {
      ++pos_;
      return makeNode(Node::Op::kNot, {}, {}, {parseUnary()});
    }
    if (eat("(")) {
      NodePtr n = parseOr();
      if (!eat(")")) {
        fail("expected ')'");
      }
      return n;
    }
    if (eatCall("all")) {
      if (!eat(")")) {
        fail("expected 'all()'");
      }
      return makeNode(Node::Op::kAll);
    }
    if (eatCall("global")) {
      if (!eat(")")) {
        fail("expected 'global()'");
      }
      return makeNode(Node::Op::kGlobal);
    }
    if (eatCall("has")) {
      std::string k = key();
      if (!eat(")")) {
        fail("expected ')'");
      }
      return makeNode(Node::Op::kHas, std::move(k));
    }
    std::string k = key();
    if (failed_) {
      return makeNode(Node::Op::kAll);
    }
    if (eat("==")) {
      return makeNode(Node::Op::kEq, std::move(k), {str()});
    }
    if (eat("!=")) {
      return makeNode(Node::Op::kNe, std::move(k), {str()});
    }
    if (eatWord("in")) {
      return makeNode(Node::Op::kIn, std::move(k), set());
    }
    // Calico's tokenizer takes each two-word operator in one word too: notin, startswith,
    // endswith.
    if (eatWord("notin")) {
      return makeNode(Node::Op::kNotIn, std::move(k), set());
    }
    if (eatWord("not")) {
      if (!eatWord("in")) {
        fail("expected 'in' after 'not'");
      }
      return makeNode(Node::Op::kNotIn, std::move(k), set());
    }
    if (eatWord("contains")) {
      return makeNode(Node::Op::kContains, std::move(k), {str()});
    }
    if (eatWord("startswith")) {
      return makeNode(Node::Op::kStartsWith, std::move(k), {str()});
    }
    if (eatWord("endswith")) {
      return makeNode(Node::Op::kEndsWith, std::move(k), {str()});
    }
    if (eatWord("starts")) {
      if (!eatWord("with")) {
        fail("expected 'with' after 'starts'");
      }
      return makeNode(Node::Op::kStartsWith, std::move(k), {str()});
    }
    if (eatWord("ends")) {
      if (!eatWord("with")) {
        fail("expected 'with' after 'ends'");
      }
      return makeNode(Node::Op::kEndsWith, std::move(k), {str()});
    }
    fail(fmt::format("expected an operator after label '{}'", k));
    return makeNode(Node::Op::kAll);
  }

  std::string_view s_;
  size_t pos_ = 0;
  int depth_ = 0;
  bool failed_ = false;
  SelectorParseError error_;
};

}  // namespace

const std::string* MapLabelView::get(std::string_view key) const {
  auto it = labels_.find(key);
  return it == labels_.end() ? nullptr : &it->second;
}

Selector::Selector() : Selector(makeNode(Node::Op::kAll)) {}

Selector::Selector(std::shared_ptr<const SelectorNode> root)
    : root_(std::move(root)), text_(render(*root_, false)) {}

bool Selector::matches(const LabelView& labels) const { return eval(*root_, labels); }

Selector Selector::conjunction(std::vector<std::shared_ptr<const SelectorNode>> parts) {
  if (parts.empty()) {
    return Selector();
  }
  if (parts.size() == 1) {
    return Selector(parts[0]);
  }
  return Selector(makeNode(Node::Op::kAnd, {}, {}, std::move(parts)));
}

std::expected<Selector, SelectorParseError> parseSelector(std::string_view text) {
  Parser p(text);
  NodePtr n = p.parse();
  if (!n) {
    return std::unexpected(p.error());
  }
  return Selector(n);
}

bool namespaceSelectorPicksGlobal(const Selector& ns_selector) {
  // Over no labels at all, with all() false and global() true.
  auto pick = [](auto&& self, const Node& n) -> bool {
    switch (n.op) {
      case Node::Op::kAll:
        return false;
      case Node::Op::kGlobal:
        return true;
      case Node::Op::kNot:
        return !self(self, *n.kids[0]);
      case Node::Op::kAnd:
        return std::all_of(n.kids.begin(), n.kids.end(),
                           [&](const NodePtr& k) { return self(self, *k); });
      case Node::Op::kOr:
        return std::any_of(n.kids.begin(), n.kids.end(),
                           [&](const NodePtr& k) { return self(self, *k); });
      default: {
        static const Labels kNone;
        return eval(n, MapLabelView(kNone));
      }
    }
  };
  return pick(pick, ns_selector.root());
}

NodePtr selEq(std::string key, std::string value) {
  return makeNode(Node::Op::kEq, std::move(key), {std::move(value)});
}
NodePtr selIn(std::string key, std::vector<std::string> values) {
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  return makeNode(Node::Op::kIn, std::move(key), std::move(values));
}
NodePtr selNotIn(std::string key, std::vector<std::string> values) {
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  return makeNode(Node::Op::kNotIn, std::move(key), std::move(values));
}
NodePtr selHas(std::string key) { return makeNode(Node::Op::kHas, std::move(key)); }
NodePtr selNot(NodePtr kid) { return makeNode(Node::Op::kNot, {}, {}, {std::move(kid)}); }

}  // namespace zonewall::policy
