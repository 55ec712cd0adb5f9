// What bytes a set and its elements become, and back: the set definitions nft would send,
// one ruleset element as its netlink elements (an rbtree range is two), and the kernel's
// elements decoded into ruleset elements again.
#pragma once

#include <libmnl/libmnl.h>
#include <libnftnl/set.h>

#include <cstdint>
#include <string>
#include <vector>

#include "c_handle.h"
#include "zonewall/dataplane/ruleset.h"
#include "zonewall/dataplane/transport.h"

namespace zonewall::dataplane {

NftnlSetPtr makeSet(const std::string& table, const SetDef& s, std::uint32_t id);

/// The shape makeSet gives `s`, and the shape of a set the kernel holds.
SetShape shapeOf(const SetDef& s);
SetShape shapeOf(const nftnl_set* s);

struct RawElement {
  std::vector<unsigned char> key;
  std::vector<unsigned char> key_end;  ///< a pipapo range's last key
  std::uint32_t flags = 0;             ///< NFT_SET_ELEM_INTERVAL_END
  const Verdict* verdict = nullptr;    ///< maps, when adding
  bool open_interval = false;          ///< an rbtree range open to the top (nft's userdata)
};

/// The netlink elements of one ruleset element (a delete carries no verdict).
std::vector<RawElement> netlinkElements(const SetDef& s, const Element& el, bool for_delete);

/// Appends `e` to the element list being built at the tail of `nlh` (what libnftnl's
/// nftnl_set_elems_nlmsg_build_payload writes, without an object per element).
void putElement(nlmsghdr* nlh, const RawElement& e);

/// The elements libnftnl parsed into `set`, as plain data.
std::vector<ElementBytes> elementsOf(nftnl_set* set);

/// The kernel's elements of set `s` as ruleset elements (the inverse of netlinkElements),
/// sorted; elements whose key does not fit the set's kind are left out.
std::vector<Element> decodeElements(const SetDef& s, std::vector<ElementBytes> raws);

/// "element 10.0.0.1 . 0x00010000 . 6-6 . 80-80 of set ingress4_exact", for reports.
std::string describe(const SetDef& s, const Element& e);

}  // namespace zonewall::dataplane
