// The node's nftables ruleset as plain data: what both the `nft -f` text renderer and the
// netlink encoder are generated from, so that the two paths cannot drift apart.
//
// table inet zonewall
//   base chains forward and input (filter hook, priority filter, policy accept):
//     ct state established,related accept; ct state invalid drop;
//     goto the family's chain (forward4, forward6, input4, input6): a packet walks the rules
//     of its own family only, and at their end the base chain's policy accepts it
//   family chains: (IPv6) NDP accept; a packet from a pod's host veth must carry that pod's
//   address; then, forward only (traffic between a pod and its own node is always allowed, as
//   Kubernetes NetworkPolicy says; no output chain at all):
//     local source      → jump egressN   (remote class from the destination address)
//     local destination → jump ingressN  (remote class from the source address)
//     (only local addresses the direction restricts or logs: egress_localN, ingress_localN)
//     clear the class bits of the mark
//   egressN / ingressN:
//     clear the class bits; set them from the remote address: remoteN_ranges (interval vmap)
//       then remoteN_exact (hash vmap, pod addresses, overriding), each a jump to the class's
//       own chain rc_<id>, which sets all 16 bits and returns (one lookup decides a class:
//       a commit between two lookups can never mix two classes into a third);
//     then the verdict: exact hash map, the any-protocol-any-port hash map, then (goto
//     egressN_rng, a chain a range map swap may rewrite) the interval map and the local
//     address's default. Entries are disjoint, so the order only saves lookups; but
//     the commonest entries (a peer allowed on everything) stay out of the interval map,
//     whose additions the kernel publishes a moment after the rest of a transaction.
//
//   verdict map key:  local addr . mark & class_mask . l4proto . port
//                     (port = th dport; for ICMP, th sport = type << 8 | code)
//   verdict map data: return (allowed: back to the base chain, which goes on to the other
//                     direction), continue (denied: the lookup rule goes on to its own
//                     "counter drop"), or goto a Log outcome's chain (log, counter, return/drop).
//
// Counters: the first rule of egressN/ingressN counts the packets a direction judges, every
// verdict map rule counts the denies it decides, a Log chain the packets of its outcome; a
// direction's allowed packets are what entered minus what was denied.
//
// Why no goto to per-verdict counting chains: the kernel validates the whole table (walks
// every element of every verdict map, ~20 ms per 100k elements and base chain here) in any
// transaction that adds a jump or goto element; with plain verdicts a policy change commits
// without that walk. Only the remote class maps (jumps to the class chains) and Log entries
// still trigger it. (Per-element counters would do too, but cost the kernel a per-CPU
// allocation per element: twice the cold load time.)
//
// The remote class rides in the packet mark (class_mask, 16 bits, 0xffff0000 by default):
// nft 1.0.6 cannot put a map lookup inside a concatenation. Every other mark bit is
// preserved (kube-proxy uses 0x4000 and 0x8000) and the class bits are cleared again.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "zonewall/compiler/table.h"

namespace zonewall::dataplane {

struct NftOptions {
  std::string table = "zonewall";
  /// Mark bits that carry the remote class: 16 contiguous bits.
  std::uint32_t class_mask = 0xffff0000U;
};

struct Verdict {
  enum class Kind : std::uint8_t { kAccept, kDrop, kReturn, kJump, kGoto, kContinue };
  Kind kind = Kind::kAccept;
  std::string chain;
  friend bool operator==(const Verdict&, const Verdict&) = default;
};

enum class SetKind : std::uint8_t {
  kAddrSet,             ///< local addresses
  kAddrVmap,            ///< exact address → verdict (hash)
  kAddrIntervalVmap,    ///< address range → verdict (rbtree)
  kConcatVmap,          ///< addr . mark . proto . port → verdict (hash)
  kConcatIntervalVmap,  ///< addr . mark . proto range . port range → verdict (pipapo)
  kIfaceAddrSet,        ///< host veth . pod address: who may send what (anti-spoofing)
  kAddrMarkVmap,        ///< addr . mark → verdict (hash): entries for every protocol and port
};

struct Element {
  std::string iface;  ///< kIfaceAddrSet
  Addr addr;
  Addr addr_hi;  ///< kAddrIntervalVmap: last address of the range
  std::uint32_t mark = 0;
  std::uint8_t proto_lo = 0;
  std::uint8_t proto_hi = 0;
  std::uint16_t port_lo = 0;
  std::uint16_t port_hi = 0;
  Verdict verdict;
  /// What decided this element: 1 + an index into Ruleset::origins (0: nothing to name). Not
  /// part of the element's identity (the kernel does not hold it).
  std::uint32_t origin = 0;
  friend bool operator==(const Element& a, const Element& b) {
    return a.iface == b.iface && a.addr == b.addr && a.addr_hi == b.addr_hi && a.mark == b.mark &&
           a.proto_lo == b.proto_lo && a.proto_hi == b.proto_hi && a.port_lo == b.port_lo &&
           a.port_hi == b.port_hi && a.verdict == b.verdict;
  }
};

struct SetDef {
  std::string name;
  SetKind kind = SetKind::kAddrSet;
  Family family = Family::kV4;
  std::vector<Element> elements;
};

/// The closed set of rule shapes zonewall uses.
struct Rule {
  enum class Kind : std::uint8_t {
    kMarkAnd,         ///< meta mark set meta mark & mark_mask
    kMarkAndOr,       ///< meta mark set meta mark & mark_mask | mark_bits
    kCtEstablished,   ///< ct state established,related accept
    kCounterVerdict,  ///< counter <verdict>
    kCtInvalid,       ///< ct state invalid drop
    kNdpAccept,       ///< icmpv6 type <icmp_type> accept
    kLocalJump,       ///< <fam> <saddr|daddr> @set jump chain
    kAddrVmap,        ///< <fam> <saddr|daddr> vmap @set
    /// meta l4proto [!=] icmp <fam> <local> . mark & mark_mask . l4proto . th <d|s>port
    /// vmap @set
    kVerdictMap,
    kLog,         ///< log prefix "<text>" group <log_group>
    kGoto,        ///< a bare verdict: goto chain, jump chain
    kAntiSpoof,   ///< iifname "zw*" iifname . <fam> saddr != @set drop
    kAnyMap,      ///< <fam> <local> . meta mark & mark_mask vmap @set
    kFamilyGoto,  ///< meta nfproto <ipv4|ipv6> goto chain
  };
  Kind kind = Kind::kMarkAnd;
  Family family = Family::kV4;
  bool source = false;  ///< saddr (true) or daddr (false)
  bool icmp =
      false;  ///< kVerdictMap: the ICMP rule (== icmp, th sport) or the other (!=, th dport)
  /// A verdict map rule whose `continue` elements go on to "counter drop" (the denies).
  bool counted_drop = false;
  /// kMarkAnd: "counter" after it (the packets that enter a direction's chain).
  bool count = false;
  /// The mark bits a rule keeps (kMarkAnd, kMarkAndOr) or looks up (kVerdictMap, kAnyMap).
  std::uint32_t mark_mask = 0;
  std::uint32_t mark_bits = 0;  ///< kMarkAndOr: the bits it sets (a class chain's class)
  std::uint8_t icmp_type = 0;   ///< kNdpAccept
  std::uint16_t log_group = 0;  ///< kLog: the nflog group
  std::string set;
  std::string text;
  Verdict verdict;
};

struct ChainDef {
  std::string name;
  std::string hook;  ///< "forward", "input" for base chains; empty otherwise
  std::vector<Rule> rules;
};

struct Ruleset {
  std::string table;
  std::uint32_t class_mask = 0;
  std::vector<ChainDef> chains;  ///< in creation order: every jump target before its users
  std::vector<SetDef> sets;
  /// The policy rules (or defaults) that verdict map elements come from, for error reports.
  std::vector<std::string> origins;

  const SetDef* findSet(const std::string& name) const;
  SetDef* findSet(const std::string& name) {
    return const_cast<SetDef*>(std::as_const(*this).findSet(name));
  }
  const ChainDef* findChain(const std::string& name) const;
};

/// A direction's range map (pipapo) and default map are never edited in place: a change builds
/// both anew under their alternate names and switches the lookups over, "egress4_ranges" <->
/// "egress4_ranges_b", "egress4_default" <-> "egress4_default_b". Their lookups live in a chain
/// of their own ("egress4_rng", reached by goto), rewritten by the switch. The kernel picks a
/// packet's rules once, from the generation it entered in, but reads sets live: a packet that
/// enters before a switch keeps the old chain, and with it old maps that nothing edits, so the
/// range entries and the default it sees always belong together. (Range map deletes would
/// also cost tens of ms each on this kernel, and pipapo publishes its edits a moment late.)
bool isRangeSet(const SetDef& s);
/// A set that is swapped whole, never edited (a range or default map), by name.
bool isSwappedSetName(const std::string& name);
/// A regular chain whose rules look nothing up (log and class chains).
bool needsNoSet(const ChainDef& c);
/// A range map's name, first or alternate: its lookups convert mark and port to network byte
/// order, as pipapo's range fields need.
bool isRangeSetName(const std::string& name);
std::string alternateSet(const std::string& name);
/// The chain that looks swapped set `set` up ("egress4_rng" for "egress4_default_b").
std::string swapChainName(const std::string& set);
/// Chain `c` with every swapped set it names renamed to its alternate.
ChainDef withAlternateSets(ChainDef c);
/// Renames `rs`'s swapped set `from` to `to`, in the set and in the rules of its lookup chain.
void renameSwappedSet(Ruleset& rs, const std::string& from, const std::string& to);

/// Builds the ruleset of a node's table (pure).
Ruleset buildRuleset(const compiler::NodeTable& table, const NftOptions& options = {});

/// The ruleset as an `nft -f` script.
std::string renderNft(const Ruleset& ruleset, const std::string& header = "");

/// Convenience: build + render.
std::string renderNft(const compiler::NodeTable& table, const NftOptions& options = {});

}  // namespace zonewall::dataplane
