// The kernel's dump answers as a TableSnapshot (transport.h): libnftnl parses each message,
// this keeps what belongs to our table in the terms the drift analysis compares.
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include "c_handle.h"
#include "rule_codec.h"
#include "set_codec.h"
#include "wire.h"
#include "zonewall/dataplane/batch.h"
#include "zonewall/dataplane/transport.h"

namespace zonewall::dataplane {

void DumpDecoder::add(const void* msg, std::size_t len) {
  const auto* nlh = static_cast<const nlmsghdr*>(msg);
  if (!messageFits(nlh, static_cast<int>(std::min<std::size_t>(len, INT32_MAX)))) return;
  if (!hasNfgenmsg(nlh)) return;
  if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_NFTABLES) return;
  switch (NFNL_MSG_TYPE(nlh->nlmsg_type)) {
    case NFT_MSG_NEWTABLE: {
      NftnlTablePtr t(nftnl_table_alloc());
      if (nftnl_table_nlmsg_parse(nlh, t.get()) == 0 &&
          nftnl_table_get_u32(t.get(), NFTNL_TABLE_FAMILY) == NFPROTO_INET &&
          nftString(nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME)) == asideTable(table_)) {
        snap_.aside_exists = true;
      }
      break;
    }
    case NFT_MSG_NEWCHAIN: {
      NftnlChainPtr c(nftnl_chain_alloc());
      if (nftnl_chain_nlmsg_parse(nlh, c.get()) == 0 &&
          nftString(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE)) == table_) {
        snap_.chains.emplace(nftString(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME)));
      }
      break;
    }
    case NFT_MSG_NEWRULE: {
      NftnlRulePtr r(nftnl_rule_alloc());
      if (nftnl_rule_nlmsg_parse(nlh, r.get()) == 0 &&
          nftString(nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE)) == table_) {
        snap_.rules[std::string(nftString(nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN)))]
            .push_back(exprsOf(r.get()));
      }
      break;
    }
    case NFT_MSG_NEWSET: {
      NftnlSetPtr set(nftnl_set_alloc());
      if (nftnl_set_nlmsg_parse(nlh, set.get()) == 0 &&
          nftString(nftnl_set_get_str(set.get(), NFTNL_SET_TABLE)) == table_) {
        snap_.sets[std::string(nftString(nftnl_set_get_str(set.get(), NFTNL_SET_NAME)))].shape =
            shapeOf(set.get());
      }
      break;
    }
    case NFT_MSG_NEWSETELEM: {
      // Elements only of a set the set dump showed (asked for by name, one set at a time).
      NftnlSetPtr holder(nftnl_set_alloc());
      if (nftnl_set_elems_nlmsg_parse(nlh, holder.get()) != 0 ||
          nftString(nftnl_set_get_str(holder.get(), NFTNL_SET_TABLE)) != table_) {
        break;
      }
      auto it =
          snap_.sets.find(std::string(nftString(nftnl_set_get_str(holder.get(), NFTNL_SET_NAME))));
      if (it == snap_.sets.end()) break;
      for (ElementBytes& e : elementsOf(holder.get())) {
        it->second.elements.push_back(std::move(e));
      }
      break;
    }
    default:
      break;
  }
}

void DumpDecoder::addAll(const void* bytes, std::size_t len) {
  const auto* nlh = static_cast<const nlmsghdr*>(bytes);
  int left = static_cast<int>(std::min<std::size_t>(len, INT32_MAX));
  for (; messageFits(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
    add(nlh, static_cast<std::size_t>(left));
  }
}

}  // namespace zonewall::dataplane
