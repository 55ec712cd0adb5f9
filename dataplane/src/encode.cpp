// Which transaction carries what: the Encoder writes one batch (libnftnl objects, elements
// straight through libmnl); the functions below decide what goes into each transaction of a
// create, a replace and an update (diff.h draws the update's four steps).
#include <arpa/inet.h>
#include <fmt/format.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter_ipv4.h>
#include <sys/uio.h>

#include <algorithm>
#include <map>
#include <set>

#include "c_handle.h"
#include "rule_codec.h"
#include "set_codec.h"
#include "wire.h"
#include "zonewall/dataplane/batch.h"
#include "zonewall/dataplane/masquerade.h"

namespace zonewall::dataplane {
namespace {

using Op = BatchMessage::Op;

class Encoder {
 public:
  // A batch of ruleset `rs`, whose failures are explained from it.
  Encoder(const Ruleset& rs, std::uint32_t first_seq) : Encoder(rs.table, first_seq) {
    batch_.source = &rs;
  }
  Encoder(std::string table, std::uint32_t first_seq) : table_(std::move(table)), seq_(first_seq) {
    batch_.first_seq = first_seq;
    nb_.reset(nftnl_batch_alloc(kBatchPage, kBatchOverrun));
    nftnl_batch_begin(static_cast<char*>(nftnl_batch_buffer(nb_.get())), seq_++);
    batch_.contents.push_back({.op = Op::kBegin, .object = table_, .text = "batch begin"});
    nftnl_batch_update(nb_.get());
  }

  nlmsghdr* header(std::uint16_t type, std::uint16_t flags, BatchMessage what) {
    batch_.contents.push_back(std::move(what));
    return nftnl_nlmsg_build_hdr(static_cast<char*>(nftnl_batch_buffer(nb_.get())), type,
                                 NFPROTO_INET, flags | NLM_F_ACK, seq_++);
  }
  void done() { nftnl_batch_update(nb_.get()); }

  void deleteTable() { deleteTable(table_); }
  void deleteTable(const std::string& name) {
    NftnlTablePtr t(nftnl_table_alloc());
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name.c_str());
    nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
    nftnl_table_nlmsg_build_payload(
        header(NFT_MSG_DELTABLE, 0,
               {.op = Op::kDeleteTable, .object = name, .text = "delete table " + name}),
        t.get());
    done();
  }
  // "add table" first makes the delete valid when the table does not exist: the transaction
  // deletes it if it is there and fails on nothing else.
  void deleteTableIfExists(const std::string& name) {
    addTable(name);
    deleteTable(name);
  }

  void addTable() { addTable(table_); }
  void addTable(const std::string& name) {
    NftnlTablePtr t(nftnl_table_alloc());
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name.c_str());
    nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
    nftnl_table_nlmsg_build_payload(
        header(NFT_MSG_NEWTABLE, NLM_F_CREATE,
               {.op = Op::kAddTable, .object = name, .text = "table " + name}),
        t.get());
    done();
  }

  void flushChain(const std::string& name) {
    NftnlRulePtr flush(nftnl_rule_alloc());  // a rule delete without a handle flushes the chain
    nftnl_rule_set_str(flush.get(), NFTNL_RULE_TABLE, table_.c_str());
    nftnl_rule_set_str(flush.get(), NFTNL_RULE_CHAIN, name.c_str());
    nftnl_rule_set_u32(flush.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
    nftnl_rule_nlmsg_build_payload(
        header(NFT_MSG_DELRULE, 0,
               {.op = Op::kFlushChain, .object = name, .text = "flush chain " + name}),
        flush.get());
    done();
  }

  void deleteSet(const std::string& name) {
    NftnlSetPtr set(nftnl_set_alloc());
    nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, table_.c_str());
    nftnl_set_set_str(set.get(), NFTNL_SET_NAME, name.c_str());
    nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
    nftnl_set_nlmsg_build_payload(
        header(NFT_MSG_DELSET, 0,
               {.op = Op::kDeleteSet, .object = name, .text = "delete set " + name}),
        set.get());
    done();
  }

  void deleteChain(const std::string& name) {
    flushChain(name);
    NftnlChainPtr ch(nftnl_chain_alloc());
    nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_TABLE, table_.c_str());
    nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_NAME, name.c_str());
    nftnl_chain_set_u32(ch.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
    nftnl_chain_nlmsg_build_payload(
        header(NFT_MSG_DELCHAIN, 0,
               {.op = Op::kDeleteChain, .object = name, .text = "delete chain " + name}),
        ch.get());
    done();
  }

  void addChain(const ChainDef& c) {
    NftnlChainPtr ch(nftnl_chain_alloc());
    nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_TABLE, table_.c_str());
    nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_NAME, c.name.c_str());
    nftnl_chain_set_u32(ch.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
    if (!c.hook.empty()) {
      std::uint32_t hook = c.hook == "forward" ? std::uint32_t{NF_INET_FORWARD}
                           : c.hook == "input" ? std::uint32_t{NF_INET_LOCAL_IN}
                                               : std::uint32_t{NF_INET_LOCAL_OUT};
      nftnl_chain_set_u32(ch.get(), NFTNL_CHAIN_HOOKNUM, hook);
      nftnl_chain_set_s32(ch.get(), NFTNL_CHAIN_PRIO, 0);  // priority filter
      nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_TYPE, "filter");
      nftnl_chain_set_u32(ch.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
    }
    nftnl_chain_nlmsg_build_payload(
        header(NFT_MSG_NEWCHAIN, NLM_F_CREATE,
               {.op = Op::kAddChain, .object = c.name, .text = "chain " + c.name}),
        ch.get());
    done();
  }

  // A base chain of type nat (the masquerade table's).
  void addNatChain(const std::string& name, std::uint32_t hook, std::int32_t priority) {
    NftnlChainPtr ch(nftnl_chain_alloc());
    nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_TABLE, table_.c_str());
    nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_NAME, name.c_str());
    nftnl_chain_set_u32(ch.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
    nftnl_chain_set_u32(ch.get(), NFTNL_CHAIN_HOOKNUM, hook);
    nftnl_chain_set_s32(ch.get(), NFTNL_CHAIN_PRIO, priority);
    nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_TYPE, "nat");
    nftnl_chain_set_u32(ch.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
    nftnl_chain_nlmsg_build_payload(
        header(NFT_MSG_NEWCHAIN, NLM_F_CREATE,
               {.op = Op::kAddChain, .object = name, .text = "chain " + name}),
        ch.get());
    done();
  }

  // A rule built by the caller (its expressions already in `rule`).
  void addBuiltRule(const std::string& chain, nftnl_rule* rule, size_t index,
                    const std::string& text) {
    nftnl_rule_set_str(rule, NFTNL_RULE_TABLE, table_.c_str());
    nftnl_rule_set_str(rule, NFTNL_RULE_CHAIN, chain.c_str());
    nftnl_rule_set_u32(rule, NFTNL_RULE_FAMILY, NFPROTO_INET);
    nftnl_rule_nlmsg_build_payload(
        header(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND,
               {.op = Op::kAddRule, .object = chain, .rule = index, .text = text}),
        rule);
    done();
  }

  void addSet(const SetDef& s) {
    std::uint32_t id = next_set_id_++;
    set_ids_[s.name] = id;
    NftnlSetPtr set = makeSet(table_, s, id);
    nftnl_set_nlmsg_build_payload(
        header(NFT_MSG_NEWSET, NLM_F_CREATE,
               {.op = Op::kAddSet, .object = s.name, .text = "set " + s.name}),
        set.get());
    done();
  }

  void elements(const SetDef& s, const std::vector<Element>& els, bool remove) {
    // An rbtree interval set gets a leading interval end at 0 when its first range starts
    // above it, as nft sends it.
    bool leading_end = !remove && s.kind == SetKind::kAddrIntervalVmap && !els.empty() &&
                       els.front().addr.v != (s.family == Family::kV4 ? kV4MappedBase : 0);
    for (size_t i = 0; i < els.size() || leading_end; i += kElementsPerMessage) {
      size_t end = std::min(els.size(), i + kElementsPerMessage);
      std::string what = i < els.size() ? describe(s, els[i]) : "elements of set " + s.name;
      if (end - i > 1) what += fmt::format(" (and {} more)", end - i - 1);
      BatchMessage m{.op = remove ? Op::kDeleteElements : Op::kAddElements,
                     .object = s.name,
                     .elements = end - i,
                     .text = (remove ? "delete " : "add ") + what};
      if (i < els.size()) {
        m.first = els[i];
      }
      nlmsghdr* nlh = header(remove ? NFT_MSG_DELSETELEM : NFT_MSG_NEWSETELEM,
                             remove ? 0 : NLM_F_CREATE, std::move(m));
      mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table_.c_str());
      mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, s.name.c_str());
      if (auto it = set_ids_.find(s.name); it != set_ids_.end()) {
        mnl_attr_put_u32(nlh, NFTA_SET_ELEM_LIST_SET_ID, htonl(it->second));
      }
      nlattr* list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
      if (leading_end) {
        RawElement zero{.flags = NFT_SET_ELEM_INTERVAL_END};
        putAddr(zero.key, Addr{s.family == Family::kV4 ? kV4MappedBase : 0}, s.family);
        putElement(nlh, zero);
        leading_end = false;
      }
      for (size_t k = i; k < end; ++k) {
        for (const RawElement& e : netlinkElements(s, els[k], remove)) putElement(nlh, e);
      }
      mnl_attr_nest_end(nlh, list);
      done();
    }
  }

  void addRule(const ChainDef& c, const Rule& r, size_t index) {
    NftnlRulePtr rule(nftnl_rule_alloc());
    nftnl_rule_set_str(rule.get(), NFTNL_RULE_TABLE, table_.c_str());
    nftnl_rule_set_str(rule.get(), NFTNL_RULE_CHAIN, c.name.c_str());
    nftnl_rule_set_u32(rule.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
    encodeRule(rule.get(), r, set_ids_);
    nftnl_rule_nlmsg_build_payload(
        header(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND,
               {.op = Op::kAddRule,
                .object = c.name,
                .rule = index,
                .text = fmt::format("rule {} of chain {}", index, c.name)}),
        rule.get());
    done();
  }

  Batch finish() {
    nftnl_batch_end(static_cast<char*>(nftnl_batch_buffer(nb_.get())), seq_++);
    batch_.contents.push_back({.op = Op::kEnd, .object = table_, .text = "batch end"});
    nftnl_batch_update(nb_.get());
    int n = nftnl_batch_iovec_len(nb_.get());
    std::vector<iovec> iov(static_cast<size_t>(n));
    nftnl_batch_iovec(nb_.get(), iov.data(), static_cast<std::uint32_t>(n));
    for (const iovec& v : iov) {
      const char* p = static_cast<const char*>(v.iov_base);
      batch_.bytes.insert(batch_.bytes.end(), p, p + v.iov_len);
    }
    return std::move(batch_);
  }

 private:
  std::string table_;
  std::uint32_t seq_;
  std::uint32_t next_set_id_ = 1;
  std::map<std::string, std::uint32_t> set_ids_;
  NftnlBatchPtr nb_;
  Batch batch_;
};

}  // namespace

Batch encodeRuleset(const Ruleset& rs, TableMode mode, std::uint32_t first_seq) {
  Encoder enc(rs, first_seq);
  if (mode == TableMode::kReplace) enc.deleteTableIfExists(rs.table);  // all of it, or nothing
  enc.addTable();
  for (const ChainDef& c : rs.chains) enc.addChain(c);
  for (const SetDef& s : rs.sets) enc.addSet(s);
  for (const SetDef& s : rs.sets) enc.elements(s, s.elements, false);
  for (const ChainDef& c : rs.chains) {
    for (size_t i = 0; i < c.rules.size(); ++i) enc.addRule(c, c.rules[i], i);
  }
  return enc.finish();
}

namespace {
void addChains(Encoder& enc, const std::vector<ChainDef>& chains) {
  for (const ChainDef& c : chains) enc.addChain(c);
  for (const ChainDef& c : chains) {
    for (size_t i = 0; i < c.rules.size(); ++i) enc.addRule(c, c.rules[i], i);
  }
}
}  // namespace

namespace {
// The elements a new table's second transaction adds: those of every set the local address
// sets gate (the local sets themselves, the verdict maps and, where they name no chain, the
// remote class maps). Range maps and the anti-spoofing set are filled in the first.
bool gatedByLocalSets(const SetDef& s) {
  if (isRangeSet(s) || s.kind == SetKind::kIfaceAddrSet) return false;
  return std::ranges::none_of(s.elements, [](const Element& e) {
    return e.verdict.kind == Verdict::Kind::kJump || e.verdict.kind == Verdict::Kind::kGoto;
  });
}
}  // namespace

namespace {
// encodeCreate's two transactions; the first deletes `drop_before` (if it exists) before it
// creates anything, the second deletes `drop_after` once the table is complete.
std::vector<Batch> createInTwo(const Ruleset& rs, std::uint32_t first_seq,
                               const std::string& drop_before, const std::string& drop_after) {
  // First: the whole skeleton, every set, and the elements of the range maps, of the
  // anti-spoofing set and of any set whose elements jump (the remote class maps); the local
  // address sets are left empty, so no packet enters a direction chain yet: until the second
  // transaction the table judges nothing but spoofed sources (as before it existed). The
  // kernel validates this transaction's jumps by walking every verdict map reachable from a
  // base chain; the big ones are still empty, so the walk is short.
  // Second: the local sets and the verdict maps, filled at once. Their elements are plain
  // verdicts (no jump), so the kernel does not walk the table again; the range maps, published
  // when the first transaction completed, are complete before any lookup reaches them.
  Encoder one(rs, first_seq);
  if (!drop_before.empty()) one.deleteTableIfExists(drop_before);
  one.addTable();
  std::vector<ChainDef> early;
  for (const ChainDef& c : rs.chains) {
    if (needsNoSet(c)) early.push_back(c);
  }
  addChains(one, early);
  for (const ChainDef& c : rs.chains) {
    if (!needsNoSet(c)) one.addChain(c);
  }
  for (const SetDef& s : rs.sets) {
    one.addSet(s);
    if (!gatedByLocalSets(s)) one.elements(s, s.elements, false);
  }
  for (const ChainDef& c : rs.chains) {
    if (needsNoSet(c)) continue;
    for (size_t i = 0; i < c.rules.size(); ++i) one.addRule(c, c.rules[i], i);
  }
  Batch first = one.finish();
  Encoder two(rs, first_seq + static_cast<std::uint32_t>(first.messages()));
  for (const SetDef& s : rs.sets) {
    if (gatedByLocalSets(s)) two.elements(s, s.elements, false);
  }
  if (!drop_after.empty()) two.deleteTable(drop_after);
  // Neither changes anything a packet in flight runs unless it deletes a table: before the
  // first, the base chains did not exist (a packet of that generation that meets one finds it
  // empty, as if it were not there).
  first.additive = drop_before.empty();
  Batch second = two.finish();
  second.additive = drop_after.empty();
  std::vector<Batch> out;
  out.push_back(std::move(first));
  out.push_back(std::move(second));
  return out;
}
}  // namespace

std::vector<Batch> encodeCreate(const Ruleset& rs, std::uint32_t first_seq) {
  return createInTwo(rs, first_seq, "", "");
}

std::string asideTable(const std::string& table) { return table + "_aside"; }

std::vector<Batch> encodeReplace(const Ruleset& rs, std::uint32_t first_seq) {
  // The new table is built complete under the aside name while the old one still judges
  // (both judge for a moment: a packet passes only if both accept it), then again under its
  // own name in place of the old one while the aside copy judges, which goes last.
  Ruleset aside = rs;
  aside.table = asideTable(rs.table);
  std::vector<Batch> out = createInTwo(aside, first_seq, aside.table, "");
  for (Batch& b : out) b.source = &rs;  // `aside` is gone when they are committed; same elements
  std::vector<Batch> in_place =
      createInTwo(rs, out.back().first_seq + static_cast<std::uint32_t>(out.back().messages()),
                  rs.table, aside.table);
  for (Batch& b : in_place) out.push_back(std::move(b));
  return out;
}

Batch encodeMasquerade(const MasqueradeSpec& spec, std::uint32_t first_seq) {
  Encoder enc(spec.table, first_seq);
  enc.deleteTableIfExists(spec.table);
  enc.addTable(spec.table);
  const std::string chain = "postrouting";
  enc.addNatChain(chain, NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC);
  std::vector<MasqueradeRule> rules = masqueradeRules(spec);
  for (size_t i = 0; i < rules.size(); ++i) {
    enc.addBuiltRule(chain, rules[i].rule.get(), i,
                     fmt::format("rule {} of chain {}: {}", i, chain, rules[i].text));
  }
  return enc.finish();
}

Batch encodeDropTable(const std::string& table, std::uint32_t first_seq) {
  Encoder enc(table, first_seq);
  enc.deleteTableIfExists(table);
  return enc.finish();
}

namespace {
// Maps whose entries may be added before and removed after the rest of an update: looked up
// after the remote class is known, their keys carry it. (The class maps, local sets and the
// anti-spoofing set are selectors: changed at the switch, whole.)
bool growsAndPrunes(const SetDef& s) {
  return s.kind == SetKind::kConcatVmap || s.kind == SetKind::kAddrMarkVmap;
}

// A set's changes split by when they are made: entries under keys only one side has, and
// entries whose verdict changes (removed and added under the same key).
struct Split {
  std::vector<Element> add_only, remove_only, replaced_old, replaced_new;
};
Split split(const SetChange& c) {
  std::set<decltype(elementKey(Element{}))> removed, added;
  for (const Element& e : c.remove) removed.insert(elementKey(e));
  for (const Element& e : c.add) added.insert(elementKey(e));
  Split out;
  for (const Element& e : c.add)
    (removed.contains(elementKey(e)) ? out.replaced_new : out.add_only).push_back(e);
  for (const Element& e : c.remove)
    (added.contains(elementKey(e)) ? out.replaced_old : out.remove_only).push_back(e);
  return out;
}
}  // namespace

std::vector<Batch> encodeUpdate(const Ruleset& rs, const RulesetDiff& diff,
                                const std::vector<std::string>& stale_sets,
                                std::uint32_t first_seq) {
  const std::vector<SetChange>& changes = diff.sets;
  const ChainChanges& chains = diff.chains;
  std::vector<Batch> out;
  auto keep = [&](Batch b, bool additive) {
    first_seq = b.first_seq + static_cast<std::uint32_t>(b.messages());
    b.additive = additive;
    if (b.messages() > 2) out.push_back(std::move(b));  // more than begin and end
  };
  std::vector<std::pair<const SetDef*, Split>> splits;
  for (const SetChange& c : changes) {
    if (const SetDef* s = rs.findSet(c.set)) splits.emplace_back(s, split(c));
  }

  // New chains (a Log outcome's, a remote class's) come a transaction before anything names
  // them: the kernel creates a chain with an empty rule blob for both generations and commits
  // its rules into the next generation's only, so a packet still judged by the previous
  // generation that jumped into a chain created in the latest transaction would run no rule.
  Encoder chain_adds(rs, first_seq);
  addChains(chain_adds, chains.add);
  keep(chain_adds.finish(), true);

  Encoder grow(rs, first_seq);
  for (const MapSwap& sw : chains.swaps) {
    for (const SetDef& r : sw.replacements) {
      if (std::ranges::find(stale_sets, r.name) != stale_sets.end()) grow.deleteSet(r.name);
      grow.addSet(r);
      grow.elements(r, r.elements, false);
    }
    for (const SetDef& b : sw.bridges) grow.elements(b, b.elements, false);
  }
  for (const auto& [s, sp] : splits) {
    if (growsAndPrunes(*s)) grow.elements(*s, sp.add_only, false);
  }
  keep(grow.finish(), true);

  Encoder sw(rs, first_seq);
  for (const auto& [s, sp] : splits) {
    if (growsAndPrunes(*s)) {
      sw.elements(*s, sp.replaced_old, true);
      sw.elements(*s, sp.replaced_new, false);
    } else {
      sw.elements(*s, sp.replaced_old, true);
      sw.elements(*s, sp.remove_only, true);
      sw.elements(*s, sp.replaced_new, false);
      sw.elements(*s, sp.add_only, false);
    }
  }
  for (const MapSwap& m : chains.swaps) {
    sw.flushChain(m.chain.name);
    for (size_t i = 0; i < m.chain.rules.size(); ++i) sw.addRule(m.chain, m.chain.rules[i], i);
  }
  keep(sw.finish(), false);

  Encoder prune(rs, first_seq);
  for (const auto& [s, sp] : splits) {
    if (growsAndPrunes(*s)) prune.elements(*s, sp.remove_only, true);
  }
  for (const MapSwap& m : chains.swaps) {
    for (const std::string& old : m.old_sets) prune.deleteSet(old);
  }
  for (const std::string& name : chains.drop_sets) prune.deleteSet(name);
  for (const std::string& name : chains.remove) prune.deleteChain(name);
  keep(prune.finish(), false);
  return out;
}

}  // namespace zonewall::dataplane
