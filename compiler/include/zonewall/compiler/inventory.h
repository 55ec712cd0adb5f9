// The inventory indexed for selector evaluation: pod addresses sorted, labels inverted.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "zonewall/compiler/address_set.h"
#include "zonewall/compiler/program.h"
#include "zonewall/policy/model.h"

namespace zonewall::compiler {

/// Labels of a pod as a selector sees them: Calico adds its namespace and orchestrator labels.
class PodLabelView final : public policy::LabelView {
 public:
  PodLabelView(const policy::Pod& pod, bool calico) : pod_(pod), calico_(calico) {}
  const std::string* get(std::string_view key) const override;

 private:
  const policy::Pod& pod_;
  bool calico_;
};

class Inventory {
 public:
  /// label value -> the sorted indices into addrs() of the addresses that carry it
  using Postings = std::unordered_map<std::string, std::vector<std::uint32_t>>;

  struct PodAddr {
    Addr addr;
    std::uint32_t pod = 0;  ///< index into store().pods
  };

  explicit Inventory(const policy::Store& store);

  const policy::Store& store() const { return store_; }
  /// Every pod address by slot: what Bitsets and postings index. A fresh inventory's slots
  /// are sorted by address (addresses are unique: validateStore); a pod removed leaves dead
  /// slots (live() false), a pod added takes recycled ones or new ones at the end: no live
  /// slot ever moves.
  const std::vector<PodAddr>& addrs() const { return addrs_; }
  bool live(size_t slot) const { return live_.test(slot); }
  /// The live slots, sorted by address.
  const std::vector<std::uint32_t>& byAddress() const { return order_; }
  /// The live slot of address `a`.
  std::optional<size_t> findAddr(Addr a) const;
  const policy::Pod* podAt(Addr a) const;
  /// Every namespace the input knows of (Namespace objects and pods' namespaces), sorted.
  const std::vector<std::string>& namespaces() const { return namespaces_; }

  /// The set of addresses `e` matches (bulk: bitsets over the label index).
  AddrSet evaluate(const AddrExpr& e) const;
  /// Whether `e` matches address `a` (direct: labels of the one endpoint).
  bool contains(const AddrExpr& e, Addr a) const;

  bool namespaceMatches(const policy::Selector& sel, const std::string& ns, bool calico) const;

  /// Pod `pod` of the store now has new labels (the caller changed store().pods[pod]);
  /// `old_labels` are the ones it had. Updates the index in place.
  void relabel(std::uint32_t pod, const policy::Labels& old_labels);
  /// The live slots of a pod's addresses.
  std::vector<size_t> addrsOf(std::uint32_t pod) const;
  /// Pod `pod` of the store is new, or has new addresses, labels or ports (after
  /// removePod): its addresses get slots of their own, returned. An address another pod's
  /// live slot holds is skipped (the caller resolves such conflicts first).
  std::vector<size_t> addPod(std::uint32_t pod);
  /// Pod `pod` is going, or about to change (call before the store's pod changes): its
  /// slots die, returned. addPod reuses them only after recycle().
  std::vector<size_t> removePod(std::uint32_t pod);
  /// The store's Namespace `ns` changed (its labels; or it came or went): selectors see it as
  /// it is now. Its pods' memberships change with it: the caller re-adds them (removePod,
  /// addPod); its NetworkSets' ranges may too (a fresh inventory is the way then).
  void namespaceChanged(const std::string& ns);
  /// The slots removed so far may be reused: call once whoever indexes by slot (the node
  /// compilers) has been told of their removal.
  void recycle();

 private:
  Bitset selectPods(const policy::SelectorNode& n, bool calico) const;
  Bitset scopePods(const Scope& s, bool calico) const;
  bool netsetInScope(const policy::NetworkSet& set, const Scope& s, bool calico) const;
  bool podInScope(const policy::Pod& pod, const Scope& s, bool calico) const;
  const Postings* postings(const std::string& key, bool calico) const;
  AddrSet evaluateSlots(const AddrExpr& e) const;
  /// Where address `a` is, or would go, in order_.
  std::vector<std::uint32_t>::const_iterator orderAt(Addr a) const;
  void addNamespace(const std::string& ns);

  const policy::Store& store_;
  std::vector<PodAddr> addrs_;
  Bitset live_;
  size_t dead_ = 0;
  std::vector<std::uint32_t> released_;  ///< dead, not yet reusable
  std::vector<std::uint32_t> free_;      ///< dead, reusable
  std::vector<std::uint32_t> order_;     ///< live slots, sorted by address
  bool sorted_ = true;                   ///< slots are order_ (every slot live, by address)
  std::vector<std::string> namespaces_;
  std::unordered_map<std::string, Postings> label_postings_;
  Postings ns_postings_;
  Postings orchestrator_postings_;
  std::map<std::string, policy::Labels, std::less<>> ns_labels_;
};

}  // namespace zonewall::compiler
