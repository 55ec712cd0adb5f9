// Batches read back: parsed with libnftnl (tests compare what a batch would create), the
// element a kernel's extended ack points at, and changes as `nft` would print them.
#include <fmt/format.h>
#include <libnftnl/chain.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <algorithm>
#include <cerrno>
#include <string_view>

#include "c_handle.h"
#include "rule_codec.h"
#include "set_codec.h"
#include "wire.h"
#include "zonewall/dataplane/batch.h"

namespace zonewall::dataplane {

// The element at `offset` of message `index` of `b` (the attribute a kernel's extended ack
// names) as "element … of set …, decided by <policy rule>"; nothing when it cannot be told.
std::optional<std::string> explainElement(const Batch& b, std::uint32_t index,
                                          std::uint32_t offset) {
  if (b.source == nullptr) return std::nullopt;
  nlmsghdr* msg = nullptr;
  int left = static_cast<int>(b.bytes.size());
  auto* nlh = reinterpret_cast<nlmsghdr*>(const_cast<char*>(b.bytes.data()));
  for (std::uint32_t i = 0; messageFits(nlh, left); nlh = mnl_nlmsg_next(nlh, &left), ++i) {
    if (i == index) {
      msg = nlh;
      break;
    }
  }
  int type = msg == nullptr ? -1 : msg->nlmsg_type & 0xff;
  if (type != NFT_MSG_NEWSETELEM && type != NFT_MSG_DELSETELEM) return std::nullopt;
  std::string set_name;
  nlattr* bad = nullptr;
  forEachAttr(mnl_nlmsg_get_payload_offset(msg, sizeof(nfgenmsg)), mnl_nlmsg_get_payload_tail(msg),
              [&](nlattr* a) {
                if (mnl_attr_get_type(a) == NFTA_SET_ELEM_LIST_SET) set_name = mnl_attr_get_str(a);
                if (mnl_attr_get_type(a) != NFTA_SET_ELEM_LIST_ELEMENTS) return;
                forEachNested(a, [&](nlattr* el) {
                  if (reinterpret_cast<char*>(el) - reinterpret_cast<char*>(msg) ==
                      static_cast<std::ptrdiff_t>(offset))
                    bad = el;
                });
              });
  if (bad == nullptr) return std::nullopt;
  std::string_view key;
  forEachNested(bad, [&](nlattr* k) {
    if (mnl_attr_get_type(k) != NFTA_SET_ELEM_KEY) return;
    forEachNested(k, [&](nlattr* v) {
      if (mnl_attr_get_type(v) == NFTA_DATA_VALUE) {
        key = {static_cast<const char*>(mnl_attr_get_payload(v)), mnl_attr_get_payload_len(v)};
      }
    });
  });
  // The ruleset names a rebuilt range map by its other name.
  const SetDef* def = b.source->findSet(set_name);
  if (def == nullptr && isSwappedSetName(set_name)) def = b.source->findSet(alternateSet(set_name));
  if (def == nullptr) return std::nullopt;
  for (const Element& e : def->elements) {
    for (const RawElement& ne : netlinkElements(*def, e, false)) {
      if (std::string_view(reinterpret_cast<const char*>(ne.key.data()), ne.key.size()) != key)
        continue;
      std::string out = describe(*def, e);
      if (e.origin != 0 && e.origin <= b.source->origins.size())
        out += ", decided by " + b.source->origins[e.origin - 1];
      return out;
    }
  }
  return std::nullopt;
}

std::expected<DecodedBatch, Error> decodeBatch(const Batch& batch, const Ruleset& like) {
  DecodedBatch out;
  std::map<std::string, NftnlSetPtr> holders;
  std::vector<std::string> set_order;
  int left = static_cast<int>(batch.bytes.size());
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(batch.bytes.data()); messageFits(nlh, left);
       nlh = mnl_nlmsg_next(nlh, &left)) {
    if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES) continue;  // batch begin/end
    if (!hasNfgenmsg(nlh)) return fail(Error::Code::kInternal, "message shorter than its header");
    switch (nlh->nlmsg_type & 0xff) {
      case NFT_MSG_NEWTABLE: {
        NftnlTablePtr t(nftnl_table_alloc());
        if (nftnl_table_nlmsg_parse(nlh, t.get()) < 0)
          return fail(Error::Code::kInternal, "table message", errno);
        out.tables.emplace_back(nftString(nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME)));
        break;
      }
      case NFT_MSG_NEWCHAIN: {
        NftnlChainPtr c(nftnl_chain_alloc());
        if (nftnl_chain_nlmsg_parse(nlh, c.get()) < 0)
          return fail(Error::Code::kInternal, "chain message", errno);
        out.chains.emplace_back(nftString(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME)));
        break;
      }
      case NFT_MSG_NEWSET: {
        NftnlSetPtr set(nftnl_set_alloc());
        if (nftnl_set_nlmsg_parse(nlh, set.get()) < 0)
          return fail(Error::Code::kInternal, "set message", errno);
        std::string name(nftString(nftnl_set_get_str(set.get(), NFTNL_SET_NAME)));
        set_order.push_back(name);
        holders[name].reset(nftnl_set_alloc());
        break;
      }
      case NFT_MSG_NEWSETELEM: {
        NftnlSetPtr tmp(nftnl_set_alloc());
        if (nftnl_set_elems_nlmsg_parse(nlh, tmp.get()) < 0) {
          return fail(Error::Code::kInternal, "set element message", errno);
        }
        std::string name(nftString(nftnl_set_get_str(tmp.get(), NFTNL_SET_NAME)));
        auto& holder = holders[name];
        if (std::ranges::find(set_order, name) == set_order.end())
          set_order.push_back(name);  // an existing set's
        if (!holder) holder.reset(nftnl_set_alloc());
        nftnl_set_elems_nlmsg_parse(nlh, holder.get());
        break;
      }
      case NFT_MSG_NEWRULE: {
        NftnlRulePtr r(nftnl_rule_alloc());
        if (nftnl_rule_nlmsg_parse(nlh, r.get()) < 0)
          return fail(Error::Code::kInternal, "rule message", errno);
        out.rules[std::string(nftString(nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN)))].push_back(
            exprsOf(r.get()));
        break;
      }
      default:
        break;
    }
  }
  for (const std::string& name : set_order) {
    const SetDef* def = like.findSet(name);
    if (def == nullptr) continue;
    SetDef s{def->name, def->kind, def->family, {}};
    s.elements = decodeElements(*def, elementsOf(holders[name].get()));
    out.sets.push_back(std::move(s));
  }
  return out;
}

std::vector<std::string> describeChanges(const Ruleset& rs, const std::vector<SetChange>& changes) {
  std::vector<std::string> out;
  for (const SetChange& c : changes) {
    const SetDef* s = rs.findSet(c.set);
    if (s == nullptr) continue;
    SetDef one{s->name, s->kind, s->family, {}};
    for (const auto* list : {&c.remove, &c.add}) {
      for (const Element& e : *list) {
        one.elements = {e};
        std::string text = renderNft(Ruleset{"", 0, {}, {one}});
        auto open = text.find("elements = { ");
        auto close = text.rfind(" }");
        std::string el =
            open == std::string::npos ? "?" : text.substr(open + 13, close - open - 13);
        out.push_back(fmt::format("{} {} {}", list == &c.add ? "+" : "-", c.set, el));
      }
    }
  }
  return out;
}

}  // namespace zonewall::dataplane
