// The nf_tables wire layout zonewall writes and reads: registers, nft's datatype ids and set
// userdata, key encodings, batch paging, netlink attribute walking.
//
// The encodings mirror what nft 1.0.6 sends for the same script (checked with
// `nft --debug=netlink`), so that `nft list` shows the same table whichever path installed it:
//
//   concatenated key, 32-bit registers (v4: addr in reg 8, mark 9, l4proto 10, port 11;
//   v6: addr in 8..11, mark 12 (= 16-byte reg 2), l4proto 13, port 14), each field padded
//   to 4 bytes:
//     hash map:    addr (BE) | mark (host order) | proto, 3 pad | port (BE), 2 pad
//     pipapo map:  the same, but the rule converts mark and l4proto to big endian first, so
//                  elements carry them big-endian (and a key_end)
//   rbtree interval map: a start element per range, an interval-end element at hi + 1
//                  (none at the top of the space, which is flagged open); a leading end
//                  element at 0 when the first range does not start there
#pragma once

#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "zonewall/base/ip.h"
#include "zonewall/dataplane/ruleset.h"

namespace zonewall::dataplane {

// Element messages carry this many elements each: ~100 bytes per concatenated element keeps a
// message well under a page pair, so that a huge load is many small messages, not one giant.
constexpr size_t kElementsPerMessage = 128;
// Batch pages of 2 MiB, as nft uses for large rulesets. A message is written where the last
// one ended and the page is only switched afterwards, so every page needs room past its end
// for the largest message: 128 elements of at most ~200 bytes (a concatenated IPv6 key and
// key_end, a verdict with a chain name) is ~25 KiB; 256 KiB leaves ample margin.
constexpr std::uint32_t kBatchPage = 2u << 20;
constexpr std::uint32_t kBatchOverrun = 256u << 10;

constexpr std::uint32_t kRegVerdict = NFT_REG_VERDICT;
constexpr std::uint32_t kReg1 = NFT_REG_1;
constexpr std::uint32_t kReg32_00 = NFT_REG32_00;

// nft's datatype ids and the set userdata nft writes for each kind of set (verbatim).
constexpr std::uint32_t kTypeIpv4 = 7;
constexpr std::uint32_t kTypeIpv6 = 8;
constexpr std::uint32_t kTypeInetProto = 12;
constexpr std::uint32_t kTypeInetService = 13;
constexpr std::uint32_t kTypeMark = 19;
constexpr std::uint32_t kTypeIfname = 41;
constexpr size_t kIfnameLen = 16;  // IFNAMSIZ
constexpr std::uint32_t kTypeBits = 6;
inline const std::vector<unsigned char> kUdataAddrSet = {0x00, 0x04, 0x02, 0x00, 0x00, 0x00};
inline const std::vector<unsigned char> kUdataAddrMap = {0x00, 0x04, 0x02, 0x00, 0x00, 0x00,
                                                         0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
                                                         0x06, 0x04, 0x00, 0x00, 0x00, 0x00};
inline const std::vector<unsigned char> kUdataConcatMap = {
    0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x03, 0x08,
    0x00, 0x04, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00};
inline const std::vector<unsigned char> kUdataIfaceSet = {
    0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x03, 0x08, 0x00, 0x04, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x00};
// Element userdata on the start of an interval that runs to the top of the space (open).
inline const std::vector<unsigned char> kUdataOpenInterval = {0x01, 0x04, 0x01, 0x00, 0x00, 0x00};

size_t addrLen(Family f);

/// Appends `a` in network byte order, as an address of family `f`. The family is the set's,
/// not the value's: an IPv6 range can end just below the IPv4-mapped block, whose first
/// address (its interval end) would otherwise read as IPv4.
void putAddr(std::vector<unsigned char>& out, Addr a, Family f);
void putU32Host(std::vector<unsigned char>& out, std::uint32_t v);
void putU32Be(std::vector<unsigned char>& out, std::uint32_t v);
/// A port in a 4-byte register field: big-endian, 2 bytes of padding.
void putPort(std::vector<unsigned char>& out, std::uint16_t port);
/// A protocol in a 4-byte register field: the byte, 3 bytes of padding.
void putProto(std::vector<unsigned char>& out, std::uint8_t proto);
/// addr . mark . proto . port; the mark big-endian for pipapo maps.
std::vector<unsigned char> concatKey(Addr a, std::uint32_t mark, std::uint8_t proto,
                                     std::uint16_t port, bool big_endian_mark);

std::uint32_t u32Host(const unsigned char* p);
std::uint16_t portFrom(const unsigned char* p);

int verdictCode(const Verdict& v);
/// The verdict of a kernel verdict code (NF_ACCEPT, NFT_JUMP, ...) and chain name.
Verdict verdictOf(int code, std::string chain);

/// mnl_nlmsg_ok, minus its hole: it compares (int)nlmsg_len, so a length past 2^31 passes,
/// and one within 3 of 2^32 aligns to 0 and mnl_nlmsg_next never moves on.
inline bool messageFits(const nlmsghdr* nlh, int left) {
  return left >= static_cast<int>(sizeof(nlmsghdr)) && nlh->nlmsg_len >= sizeof(nlmsghdr) &&
         nlh->nlmsg_len <= static_cast<unsigned>(left);
}

/// A string attribute libnftnl parsed: its getters return NULL for one the message lacked.
inline std::string_view nftString(const char* s) { return s == nullptr ? std::string_view() : s; }
/// Whether an nf_tables message holds the nfgenmsg libnftnl reads after the header unchecked.
inline bool hasNfgenmsg(const nlmsghdr* nlh) {
  return nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(nfgenmsg));
}

/// Calls f(attribute) for each netlink attribute in [begin, end).
template <class F>
void forEachAttr(void* begin, const void* end, F f) {
  auto* a = static_cast<nlattr*>(begin);
  auto left = static_cast<int>(static_cast<const char*>(end) - static_cast<const char*>(begin));
  while (mnl_attr_ok(a, left)) {
    f(a);
    left -= static_cast<int>(NLA_ALIGN(a->nla_len));
    a = mnl_attr_next(a);
  }
}
/// Calls f(attribute) for each attribute nested in `nest`.
template <class F>
void forEachNested(nlattr* nest, F f) {
  void* payload = mnl_attr_get_payload(nest);
  forEachAttr(payload, static_cast<char*>(payload) + mnl_attr_get_payload_len(nest), f);
}

}  // namespace zonewall::dataplane
