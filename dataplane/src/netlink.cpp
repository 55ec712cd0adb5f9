// Ruleset → libnftnl objects → one nf_tables batch; and the libmnl transport.
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
#include "zonewall/dataplane/netlink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <libnftnl/common.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <tuple>

#include "c_handle.h"
#include "zonewall/base/netns.h"
#include "zonewall/compiler/program.h"

namespace zonewall::dataplane {
namespace {

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
const std::vector<unsigned char> kUdataAddrSet = {0x00, 0x04, 0x02, 0x00, 0x00, 0x00};
const std::vector<unsigned char> kUdataAddrMap = {0x00, 0x04, 0x02, 0x00, 0x00, 0x00,
                                                  0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
                                                  0x06, 0x04, 0x00, 0x00, 0x00, 0x00};
const std::vector<unsigned char> kUdataConcatMap = {
    0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x03, 0x08,
    0x00, 0x04, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00};
const std::vector<unsigned char> kUdataIfaceSet = {0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x03, 0x08,
                                                   0x00, 0x04, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x00};
// Element userdata on the start of an interval that runs to the top of the space (open).
const std::vector<unsigned char> kUdataOpenInterval = {0x01, 0x04, 0x01, 0x00, 0x00, 0x00};

size_t addrLen(Family f) { return f == Family::kV4 ? 4 : 16; }

// The family is the set's, not the value's: an IPv6 range can end just below the IPv4-mapped
// block, whose first address (its interval end) would otherwise read as IPv4.
void putAddr(std::vector<unsigned char>& out, Addr a, Family f) {
  if (f == Family::kV4) {
    std::uint32_t be = htonl(a.v4());
    const auto* p = reinterpret_cast<const unsigned char*>(&be);
    out.insert(out.end(), p, p + 4);
    return;
  }
  for (int i = 15; i >= 0; --i) out.push_back(static_cast<unsigned char>(a.v >> (i * 8)));
}

void putU32Host(std::vector<unsigned char>& out, std::uint32_t v) {
  const auto* p = reinterpret_cast<const unsigned char*>(&v);
  out.insert(out.end(), p, p + 4);
}

void putU32Be(std::vector<unsigned char>& out, std::uint32_t v) { putU32Host(out, htonl(v)); }

void putPort(std::vector<unsigned char>& out, std::uint16_t port) {
  std::uint16_t be = htons(port);
  const auto* p = reinterpret_cast<const unsigned char*>(&be);
  out.insert(out.end(), p, p + 2);
  out.push_back(0);
  out.push_back(0);
}

void putProto(std::vector<unsigned char>& out, std::uint8_t proto) {
  out.push_back(proto);
  out.push_back(0);
  out.push_back(0);
  out.push_back(0);
}

std::vector<unsigned char> concatKey(Addr a, std::uint32_t mark, std::uint8_t proto,
                                     std::uint16_t port, bool big_endian_mark) {
  std::vector<unsigned char> k;
  putAddr(k, a, a.family());
  big_endian_mark ? putU32Be(k, mark) : putU32Host(k, mark);
  putProto(k, proto);
  putPort(k, port);
  return k;
}

int verdictCode(const Verdict& v) {
  switch (v.kind) {
    case Verdict::Kind::kAccept:
      return NF_ACCEPT;
    case Verdict::Kind::kDrop:
      return NF_DROP;
    case Verdict::Kind::kReturn:
      return NFT_RETURN;
    case Verdict::Kind::kJump:
      return NFT_JUMP;
    case Verdict::Kind::kGoto:
      return NFT_GOTO;
    case Verdict::Kind::kContinue:
      return NFT_CONTINUE;
  }
  return NF_ACCEPT;
}

// ---- expressions ----

class RuleBuilder {
 public:
  explicit RuleBuilder(nftnl_rule* r) : r_(r) {}

  void meta(std::uint32_t key, std::uint32_t dreg) {
    NftnlExprPtr e(nftnl_expr_alloc("meta"));
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_DREG, dreg);
    add(std::move(e));
  }
  void metaSet(std::uint32_t key, std::uint32_t sreg) {
    NftnlExprPtr e(nftnl_expr_alloc("meta"));
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_SREG, sreg);
    add(std::move(e));
  }
  void bitwise(std::uint32_t reg, std::uint32_t mask, std::uint32_t xor_value) {
    NftnlExprPtr e(nftnl_expr_alloc("bitwise"));
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_SREG, reg);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_DREG, reg);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_LEN, 4);
    nftnl_expr_set_data(e.get(), NFTNL_EXPR_BITWISE_MASK, &mask, 4);
    nftnl_expr_set_data(e.get(), NFTNL_EXPR_BITWISE_XOR, &xor_value, 4);
    add(std::move(e));
  }
  void cmp(std::uint32_t op, std::uint32_t reg, const void* data, std::uint32_t len) {
    NftnlExprPtr e(nftnl_expr_alloc("cmp"));
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_SREG, reg);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_OP, op);
    nftnl_expr_set_data(e.get(), NFTNL_EXPR_CMP_DATA, data, len);
    add(std::move(e));
  }
  void cmpU8(std::uint32_t op, std::uint8_t v) { cmp(op, kReg1, &v, 1); }
  void payload(std::uint32_t base, std::uint32_t offset, std::uint32_t len, std::uint32_t dreg) {
    NftnlExprPtr e(nftnl_expr_alloc("payload"));
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_BASE, base);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_OFFSET, offset);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_LEN, len);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_DREG, dreg);
    add(std::move(e));
  }
  void byteorderHton(std::uint32_t reg, std::uint32_t len, std::uint32_t size) {
    NftnlExprPtr e(nftnl_expr_alloc("byteorder"));
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BYTEORDER_SREG, reg);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BYTEORDER_DREG, reg);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BYTEORDER_OP, NFT_BYTEORDER_HTON);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BYTEORDER_LEN, len);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BYTEORDER_SIZE, size);
    add(std::move(e));
  }
  void lookup(const std::string& set, std::uint32_t set_id, bool verdict_map) {
    NftnlExprPtr e(nftnl_expr_alloc("lookup"));
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SREG, kReg1);
    if (verdict_map) nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_DREG, kRegVerdict);
    nftnl_expr_set_str(e.get(), NFTNL_EXPR_LOOKUP_SET, set.c_str());
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SET_ID, set_id);
    add(std::move(e));
  }
  void lookupInv(const std::string& set, std::uint32_t set_id) {
    NftnlExprPtr e(nftnl_expr_alloc("lookup"));
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SREG, kReg1);
    nftnl_expr_set_str(e.get(), NFTNL_EXPR_LOOKUP_SET, set.c_str());
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SET_ID, set_id);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
    add(std::move(e));
  }
  void ctState() {
    NftnlExprPtr e(nftnl_expr_alloc("ct"));
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CT_DREG, kReg1);
    add(std::move(e));
  }
  void counter() { add(NftnlExprPtr(nftnl_expr_alloc("counter"))); }
  void log(const std::string& prefix, std::uint16_t group) {
    NftnlExprPtr e(nftnl_expr_alloc("log"));
    nftnl_expr_set_str(e.get(), NFTNL_EXPR_LOG_PREFIX, prefix.c_str());
    nftnl_expr_set_u16(e.get(), NFTNL_EXPR_LOG_GROUP, group);
    add(std::move(e));
  }
  void verdict(const Verdict& v) {
    NftnlExprPtr e(nftnl_expr_alloc("immediate"));
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_DREG, kRegVerdict);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_VERDICT, static_cast<std::uint32_t>(verdictCode(v)));
    if (!v.chain.empty()) nftnl_expr_set_str(e.get(), NFTNL_EXPR_IMM_CHAIN, v.chain.c_str());
    add(std::move(e));
  }
  // `ip`/`ip6` in an inet table: nft guards the payload with the family.
  void nfproto(Family f) {
    meta(NFT_META_NFPROTO, kReg1);
    cmpU8(NFT_CMP_EQ, f == Family::kV4 ? NFPROTO_IPV4 : NFPROTO_IPV6);
  }
  void addr(Family f, bool source, std::uint32_t dreg) {
    if (f == Family::kV4) {
      payload(NFT_PAYLOAD_NETWORK_HEADER, source ? 12 : 16, 4, dreg);
    } else {
      payload(NFT_PAYLOAD_NETWORK_HEADER, source ? 8 : 24, 16, dreg);
    }
  }

 private:
  void add(NftnlExprPtr e) { nftnl_rule_add_expr(r_, e.release()); }  // rule owns expr now
  nftnl_rule* r_;
};

void encodeRuleBody(RuleBuilder& b, const Rule& rule,
                    const std::map<std::string, std::uint32_t>& set_ids);

void encodeRule(nftnl_rule* r, const Rule& rule,
                const std::map<std::string, std::uint32_t>& set_ids) {
  RuleBuilder b(r);
  encodeRuleBody(b, rule, set_ids);
  if (rule.count) b.counter();
  if (rule.counted_drop) {
    b.counter();
    b.verdict({Verdict::Kind::kDrop, {}});
  }
}

void encodeRuleBody(RuleBuilder& b, const Rule& rule,
                    const std::map<std::string, std::uint32_t>& set_ids) {
  auto setId = [&](const std::string& name) {
    auto it = set_ids.find(name);
    return it == set_ids.end() ? 0u : it->second;
  };
  switch (rule.kind) {
    case Rule::Kind::kMarkAnd:
    case Rule::Kind::kMarkAndOr:
      b.meta(NFT_META_MARK, kReg1);
      b.bitwise(kReg1, rule.mark_mask, rule.kind == Rule::Kind::kMarkAndOr ? rule.mark_bits : 0);
      b.metaSet(NFT_META_MARK, kReg1);
      return;
    case Rule::Kind::kCtEstablished:
    case Rule::Kind::kCtInvalid: {
      // ct state bits (nf_conntrack_common.h): invalid 1, established 2, related 4.
      std::uint32_t bits = rule.kind == Rule::Kind::kCtEstablished ? 0x2 | 0x4 : 0x1;
      std::uint32_t zero = 0;
      b.ctState();
      b.bitwise(kReg1, bits, 0);
      b.cmp(NFT_CMP_NEQ, kReg1, &zero, 4);
      b.verdict(
          {rule.kind == Rule::Kind::kCtEstablished ? Verdict::Kind::kAccept : Verdict::Kind::kDrop,
           {}});
      return;
    }
    case Rule::Kind::kNdpAccept:
      b.nfproto(Family::kV6);
      b.meta(NFT_META_L4PROTO, kReg1);
      b.cmpU8(NFT_CMP_EQ, IPPROTO_ICMPV6);
      b.payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, kReg1);
      b.cmpU8(NFT_CMP_EQ, rule.icmp_type);
      b.verdict({Verdict::Kind::kAccept, {}});
      return;
    case Rule::Kind::kLocalJump:
      b.nfproto(rule.family);
      b.addr(rule.family, rule.source, kReg1);
      b.lookup(rule.set, setId(rule.set), false);
      b.verdict(rule.verdict);
      return;
    case Rule::Kind::kAddrVmap:
      b.nfproto(rule.family);
      b.addr(rule.family, rule.source, kReg1);
      b.lookup(rule.set, setId(rule.set), true);
      return;
    case Rule::Kind::kVerdictMap: {
      bool v4 = rule.family == Family::kV4;
      bool ranges = isRangeSetName(rule.set);
      // The kernel dumps a 32-bit register that starts a 16-byte one under the 16-byte name
      // (reg32 4 is reg 2): name it so here too, so that read-back compares equal.
      std::uint32_t mark_reg = v4 ? kReg32_00 + 1 : std::uint32_t{NFT_REG_2};
      std::uint32_t proto_reg = kReg32_00 + (v4 ? 2 : 5);
      b.meta(NFT_META_L4PROTO, kReg1);
      b.cmpU8(rule.icmp ? NFT_CMP_EQ : NFT_CMP_NEQ,
              static_cast<std::uint8_t>(v4 ? int{IPPROTO_ICMP} : int{IPPROTO_ICMPV6}));
      b.nfproto(rule.family);
      b.addr(rule.family, rule.source, kReg1);
      b.meta(NFT_META_MARK, mark_reg);
      b.bitwise(mark_reg, rule.mark_mask, 0);
      // pipapo compares big-endian: convert the host-order fields first, as nft does.
      if (ranges) b.byteorderHton(mark_reg, /*len=*/4, /*size=*/4);
      b.meta(NFT_META_L4PROTO, proto_reg);
      if (ranges) b.byteorderHton(proto_reg, /*len=*/1, /*size=*/2);
      b.payload(NFT_PAYLOAD_TRANSPORT_HEADER, rule.icmp ? 0 : 2, 2, proto_reg + 1);
      b.lookup(rule.set, setId(rule.set), true);
      return;
    }
    case Rule::Kind::kCounterVerdict:
      b.counter();
      b.verdict(rule.verdict);
      return;
    case Rule::Kind::kLog:
      b.log(rule.text, rule.log_group);
      return;
    case Rule::Kind::kGoto:
      b.verdict(rule.verdict);
      return;
    case Rule::Kind::kAnyMap: {
      std::uint32_t mark_reg =
          rule.family == Family::kV4 ? kReg32_00 + 1 : std::uint32_t{NFT_REG_2};
      b.nfproto(rule.family);
      b.addr(rule.family, rule.source, kReg1);
      b.meta(NFT_META_MARK, mark_reg);
      b.bitwise(mark_reg, rule.mark_mask, 0);
      b.lookup(rule.set, setId(rule.set), true);
      return;
    }
    case Rule::Kind::kAntiSpoof:
      // iifname "zw*": a prefix compare of the name's first bytes.
      b.meta(NFT_META_IIFNAME, kReg1);
      b.cmp(NFT_CMP_EQ, kReg1, rule.text.data(), static_cast<std::uint32_t>(rule.text.size()));
      b.nfproto(rule.family);
      b.meta(NFT_META_IIFNAME, kReg1);
      b.addr(rule.family, true, std::uint32_t{NFT_REG_2});
      b.lookupInv(rule.set, setId(rule.set));
      b.verdict({Verdict::Kind::kDrop, {}});
      return;
  }
}

// ---- sets and elements ----

NftnlSetPtr makeSet(const std::string& table, const SetDef& s, std::uint32_t id) {
  NftnlSetPtr set(nftnl_set_alloc());
  nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(set.get(), NFTNL_SET_NAME, s.name.c_str());
  nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
  nftnl_set_set_u32(set.get(), NFTNL_SET_ID, id);
  std::uint32_t addr_type = s.family == Family::kV4 ? kTypeIpv4 : kTypeIpv6;
  auto alen = static_cast<std::uint32_t>(addrLen(s.family));
  const std::vector<unsigned char>* udata = &kUdataAddrMap;
  std::uint32_t flags = NFT_SET_MAP;
  std::uint32_t key_type = addr_type;
  std::uint32_t key_len = alen;
  switch (s.kind) {
    case SetKind::kAddrSet:
      flags = 0;
      udata = &kUdataAddrSet;
      break;
    case SetKind::kAddrVmap:
      break;
    case SetKind::kAddrIntervalVmap:
      flags |= NFT_SET_INTERVAL;
      break;
    case SetKind::kAddrMarkVmap:
      key_type = addr_type << kTypeBits | kTypeMark;
      key_len = alen + 4;
      udata = &kUdataConcatMap;
      break;
    case SetKind::kIfaceAddrSet:
      flags = 0;
      key_type = kTypeIfname << kTypeBits | addr_type;
      key_len = static_cast<std::uint32_t>(kIfnameLen) + alen;
      udata = &kUdataIfaceSet;
      break;
    case SetKind::kConcatVmap:
    case SetKind::kConcatIntervalVmap:
      key_type =
          (((addr_type << kTypeBits | kTypeMark) << kTypeBits | kTypeInetProto) << kTypeBits) |
          kTypeInetService;
      key_len = alen + 12;
      udata = &kUdataConcatMap;
      if (s.kind == SetKind::kConcatIntervalVmap) {
        flags |= NFT_SET_INTERVAL | NFT_SET_CONCAT;
        std::uint8_t fields[NFT_REG32_COUNT] = {static_cast<std::uint8_t>(alen), 4, 1, 2};
        nftnl_set_set_data(set.get(), NFTNL_SET_DESC_CONCAT, fields, 4);
      }
      break;
  }
  nftnl_set_set_u32(set.get(), NFTNL_SET_FLAGS, flags);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, key_type);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, key_len);
  if (flags & NFT_SET_MAP) {
    nftnl_set_set_u32(set.get(), NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
    nftnl_set_set_u32(set.get(), NFTNL_SET_DATA_LEN, 16);
  }
  nftnl_set_set_data(set.get(), NFTNL_SET_USERDATA, udata->data(),
                     static_cast<std::uint32_t>(udata->size()));
  return set;
}

// What makes two sets of the same name the same kind of set.
struct SetShape {
  std::uint32_t flags = 0;  ///< map, interval, concatenation
  std::uint32_t key_len = 0;
  std::uint32_t data_type = 0;  ///< maps
  friend bool operator==(const SetShape&, const SetShape&) = default;
};

SetShape shapeOf(const nftnl_set* s) {
  SetShape out;
  if (nftnl_set_is_set(s, NFTNL_SET_FLAGS)) {
    out.flags =
        nftnl_set_get_u32(s, NFTNL_SET_FLAGS) & (NFT_SET_MAP | NFT_SET_INTERVAL | NFT_SET_CONCAT);
  }
  if (nftnl_set_is_set(s, NFTNL_SET_KEY_LEN)) out.key_len = nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN);
  if (nftnl_set_is_set(s, NFTNL_SET_DATA_TYPE))
    out.data_type = nftnl_set_get_u32(s, NFTNL_SET_DATA_TYPE);
  return out;
}

// One netlink set element, as plain data (an rbtree range is two of them).
struct RawElement {
  std::vector<unsigned char> key;
  std::vector<unsigned char> key_end;  ///< a pipapo range's last key
  std::uint32_t flags = 0;             ///< NFT_SET_ELEM_INTERVAL_END
  const Verdict* verdict = nullptr;    ///< maps, when adding
  bool open_interval = false;          ///< an rbtree range open to the top (nft's userdata)
};

// The netlink elements of one ruleset element.
std::vector<RawElement> netlinkElements(const SetDef& s, const Element& el, bool for_delete) {
  std::vector<RawElement> out(1);
  RawElement& first = out.front();
  std::vector<unsigned char>& key = first.key;
  bool map = true;
  switch (s.kind) {
    case SetKind::kAddrSet:
      putAddr(key, el.addr, s.family);
      map = false;
      break;
    case SetKind::kAddrVmap:
      putAddr(key, el.addr, s.family);
      break;
    case SetKind::kAddrIntervalVmap: {
      putAddr(key, el.addr, s.family);
      bool top = el.addr_hi.v == (s.family == Family::kV4 ? kV4MappedLast : kU128Max);
      if (top) {
        first.open_interval = true;
      } else {
        RawElement end{.flags = NFT_SET_ELEM_INTERVAL_END};
        putAddr(end.key, Addr{el.addr_hi.v + 1}, s.family);
        out.push_back(std::move(end));
      }
      break;
    }
    case SetKind::kAddrMarkVmap:
      putAddr(key, el.addr, s.family);
      putU32Host(key, el.mark);
      break;
    case SetKind::kIfaceAddrSet:
      key.assign(kIfnameLen, 0);
      std::memcpy(key.data(), el.iface.data(), std::min(el.iface.size(), kIfnameLen - 1));
      putAddr(key, el.addr, s.family);
      map = false;
      break;
    case SetKind::kConcatVmap:
      key = concatKey(el.addr, el.mark, el.proto_lo, el.port_lo, false);
      break;
    case SetKind::kConcatIntervalVmap:
      key = concatKey(el.addr, el.mark, el.proto_lo, el.port_lo, true);
      first.key_end = concatKey(el.addr, el.mark, el.proto_hi, el.port_hi, true);
      break;
  }
  if (map && !for_delete) out.front().verdict = &el.verdict;
  return out;
}

// Appends `e` to the element list being built at the tail of `nlh` (what libnftnl's
// nftnl_set_elems_nlmsg_build_payload writes, without an object per element).
void putElement(nlmsghdr* nlh, const RawElement& e) {
  nlattr* nest = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
  if (e.flags != 0) mnl_attr_put_u32(nlh, NFTA_SET_ELEM_FLAGS, htonl(e.flags));
  auto putData = [&](std::uint16_t type, const std::vector<unsigned char>& bytes) {
    nlattr* d = mnl_attr_nest_start(nlh, type);
    mnl_attr_put(nlh, NFTA_DATA_VALUE, bytes.size(), bytes.data());
    mnl_attr_nest_end(nlh, d);
  };
  putData(NFTA_SET_ELEM_KEY, e.key);
  if (!e.key_end.empty()) putData(NFTA_SET_ELEM_KEY_END, e.key_end);
  if (e.verdict != nullptr) {
    nlattr* data = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_DATA);
    nlattr* verdict = mnl_attr_nest_start(nlh, NFTA_DATA_VERDICT);
    mnl_attr_put_u32(nlh, NFTA_VERDICT_CODE,
                     htonl(static_cast<std::uint32_t>(verdictCode(*e.verdict))));
    if (!e.verdict->chain.empty())
      mnl_attr_put_strz(nlh, NFTA_VERDICT_CHAIN, e.verdict->chain.c_str());
    mnl_attr_nest_end(nlh, verdict);
    mnl_attr_nest_end(nlh, data);
  }
  if (e.open_interval)
    mnl_attr_put(nlh, NFTA_SET_ELEM_USERDATA, kUdataOpenInterval.size(), kUdataOpenInterval.data());
  mnl_attr_nest_end(nlh, nest);
}

std::string describe(const SetDef& s, const Element& e) {
  return fmt::format("element {}{} of set {}", formatAddr(e.addr),
                     s.kind == SetKind::kConcatVmap || s.kind == SetKind::kConcatIntervalVmap
                         ? fmt::format(" . 0x{:08x} . {}-{} . {}-{}", e.mark, e.proto_lo,
                                       e.proto_hi, e.port_lo, e.port_hi)
                         : "",
                     s.name);
}

// Calls f(attribute) for each netlink attribute in [begin, end).
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
template <class F>
void forEachNested(nlattr* nest, F f) {
  void* payload = mnl_attr_get_payload(nest);
  forEachAttr(payload, static_cast<char*>(payload) + mnl_attr_get_payload_len(nest), f);
}

// The element at `offset` of message `index` of `b` (the attribute a kernel's extended ack
// names) as "element … of set …, decided by <policy rule>"; nothing when it cannot be told.
std::optional<std::string> explainElement(const Batch& b, std::uint32_t index,
                                          std::uint32_t offset) {
  if (b.source == nullptr) return std::nullopt;
  nlmsghdr* msg = nullptr;
  int left = static_cast<int>(b.bytes.size());
  auto* nlh = reinterpret_cast<nlmsghdr*>(const_cast<char*>(b.bytes.data()));
  for (std::uint32_t i = 0; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left), ++i) {
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
    batch_.what.push_back("batch begin");
    nftnl_batch_update(nb_.get());
  }

  nlmsghdr* header(std::uint16_t type, std::uint16_t flags, std::string what) {
    batch_.what.push_back(std::move(what));
    return nftnl_nlmsg_build_hdr(static_cast<char*>(nftnl_batch_buffer(nb_.get())), type,
                                 NFPROTO_INET, flags | NLM_F_ACK, seq_++);
  }
  void done() { nftnl_batch_update(nb_.get()); }

  void deleteTable() { deleteTable(table_); }
  void deleteTable(const std::string& name) {
    NftnlTablePtr t(nftnl_table_alloc());
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name.c_str());
    nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
    nftnl_table_nlmsg_build_payload(header(NFT_MSG_DELTABLE, 0, "delete table " + name), t.get());
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
    nftnl_table_nlmsg_build_payload(header(NFT_MSG_NEWTABLE, NLM_F_CREATE, "table " + name),
                                    t.get());
    done();
  }

  void flushChain(const std::string& name) {
    NftnlRulePtr flush(nftnl_rule_alloc());  // a rule delete without a handle flushes the chain
    nftnl_rule_set_str(flush.get(), NFTNL_RULE_TABLE, table_.c_str());
    nftnl_rule_set_str(flush.get(), NFTNL_RULE_CHAIN, name.c_str());
    nftnl_rule_set_u32(flush.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
    nftnl_rule_nlmsg_build_payload(header(NFT_MSG_DELRULE, 0, "flush chain " + name), flush.get());
    done();
  }

  void deleteSet(const std::string& name) {
    NftnlSetPtr set(nftnl_set_alloc());
    nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, table_.c_str());
    nftnl_set_set_str(set.get(), NFTNL_SET_NAME, name.c_str());
    nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
    nftnl_set_nlmsg_build_payload(header(NFT_MSG_DELSET, 0, "delete set " + name), set.get());
    done();
  }

  void deleteChain(const std::string& name) {
    flushChain(name);
    NftnlChainPtr ch(nftnl_chain_alloc());
    nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_TABLE, table_.c_str());
    nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_NAME, name.c_str());
    nftnl_chain_set_u32(ch.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
    nftnl_chain_nlmsg_build_payload(header(NFT_MSG_DELCHAIN, 0, "delete chain " + name), ch.get());
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
    nftnl_chain_nlmsg_build_payload(header(NFT_MSG_NEWCHAIN, NLM_F_CREATE, "chain " + c.name),
                                    ch.get());
    done();
  }

  void addSet(const SetDef& s) {
    std::uint32_t id = next_set_id_++;
    set_ids_[s.name] = id;
    NftnlSetPtr set = makeSet(table_, s, id);
    nftnl_set_nlmsg_build_payload(header(NFT_MSG_NEWSET, NLM_F_CREATE, "set " + s.name), set.get());
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
      nlmsghdr* nlh = header(remove ? NFT_MSG_DELSETELEM : NFT_MSG_NEWSETELEM,
                             remove ? 0 : NLM_F_CREATE, (remove ? "delete " : "add ") + what);
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
    nftnl_rule_nlmsg_build_payload(header(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND,
                                          fmt::format("rule {} of chain {}", index, c.name)),
                                   rule.get());
    done();
  }

  Batch finish() {
    nftnl_batch_end(static_cast<char*>(nftnl_batch_buffer(nb_.get())), seq_++);
    batch_.what.push_back("batch end");
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

Batch encodeDropTable(const std::string& table, std::uint32_t first_seq) {
  Encoder enc(table, first_seq);
  enc.deleteTableIfExists(table);
  return enc.finish();
}

bool isLogChain(const std::string& name) { return name.starts_with("log_"); }
bool isDynamicChain(const std::string& name) { return isLogChain(name) || name.starts_with("rc_"); }

namespace {
// Maps whose entries may be added before and removed after the rest of an update: looked up
// after the remote class is known, their keys carry it. (The class maps, local sets and the
// anti-spoofing set are selectors: changed at the switch, whole.)
bool growsAndPrunes(const SetDef& s) {
  return s.kind == SetKind::kConcatVmap || s.kind == SetKind::kAddrMarkVmap;
}

auto elementKey(const Element& e) {
  return std::make_tuple(e.iface, e.addr, e.addr_hi, e.mark, e.proto_lo, e.proto_hi, e.port_lo,
                         e.port_hi);
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

std::vector<Batch> encodeUpdate(const Ruleset& rs, const std::vector<SetChange>& changes,
                                const ChainChanges& chains,
                                const std::vector<std::string>& stale_sets,
                                std::uint32_t first_seq) {
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

void alignSwappedSets(const Ruleset& have, Ruleset& want) {
  for (const SetDef& h : have.sets) {
    if (!isSwappedSetName(h.name)) continue;
    std::string alt = alternateSet(h.name);
    if (want.findSet(alt) != nullptr && want.findSet(h.name) == nullptr)
      renameSwappedSet(want, alt, h.name);
  }
}

// ---- diff ----

namespace {

std::vector<const ChainDef*> fixedChains(const Ruleset& r) {
  std::vector<const ChainDef*> out;
  for (const ChainDef& c : r.chains) {
    if (!isDynamicChain(c.name)) out.push_back(&c);
  }
  return out;
}

// The first difference between two rulesets' skeletons (chains, rules, set definitions), or
// nothing.
std::optional<std::string> skeletonDifference(const Ruleset& a, const Ruleset& b) {
  auto ca = fixedChains(a);
  auto cb = fixedChains(b);
  if (a.table != b.table || a.class_mask != b.class_mask) return "another table or class mark mask";
  if (ca.size() != cb.size()) return fmt::format("{} chains instead of {}", cb.size(), ca.size());
  if (a.sets.size() != b.sets.size())
    return fmt::format("{} sets instead of {}", b.sets.size(), a.sets.size());
  for (size_t i = 0; i < ca.size(); ++i) {
    const ChainDef& x = *ca[i];
    const ChainDef& y = *cb[i];
    if (x.name != y.name || x.hook != y.hook || x.rules.size() != y.rules.size()) {
      return fmt::format("chain {} instead of {}", y.name, x.name);
    }
    for (size_t r = 0; r < x.rules.size(); ++r) {
      const Rule& p = x.rules[r];
      const Rule& q = y.rules[r];
      if (p.kind != q.kind || p.family != q.family || p.source != q.source || p.icmp != q.icmp ||
          p.mark_mask != q.mark_mask || p.mark_bits != q.mark_bits || p.icmp_type != q.icmp_type ||
          p.log_group != q.log_group || p.set != q.set || p.text != q.text ||
          !(p.verdict == q.verdict)) {
        return fmt::format("rule {} of chain {} differs", r, x.name);
      }
    }
  }
  for (size_t i = 0; i < a.sets.size(); ++i) {
    if (a.sets[i].name != b.sets[i].name || a.sets[i].kind != b.sets[i].kind ||
        a.sets[i].family != b.sets[i].family) {
      return fmt::format("set {} instead of {}", b.sets[i].name, a.sets[i].name);
    }
  }
  return std::nullopt;
}

// The (protocol, port) boxes that `taken` (disjoint boxes) leaves free: the protocol axis cut
// where a taken box starts or ends, then in each band the ports its boxes leave out.
std::vector<Element> complementBoxes(std::vector<Element> taken) {
  std::vector<unsigned> cuts{0, 256};
  for (const Element& e : taken) {
    cuts.push_back(e.proto_lo);
    cuts.push_back(e.proto_hi + 1U);
  }
  std::ranges::sort(cuts);
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  std::ranges::sort(taken, {}, [](const Element& e) { return e.port_lo; });
  std::vector<Element> out;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    auto lo = static_cast<std::uint8_t>(cuts[i]);
    auto hi = static_cast<std::uint8_t>(cuts[i + 1] - 1);
    std::vector<compiler::PortRange> used;  // a box never straddles a cut: it spans the band
    for (const Element& e : taken) {
      if (e.proto_lo <= hi && e.proto_hi >= lo) used.push_back({e.port_lo, e.port_hi});
    }
    for (compiler::PortRange free : compiler::complementPorts(used)) {
      out.push_back(
          Element{.proto_lo = lo, .proto_hi = hi, .port_lo = free.lo, .port_hi = free.hi});
    }
  }
  return out;
}

// The class mark a remote class chain sets.
std::uint32_t classMarkOf(const ChainDef& rc) {
  return rc.rules.empty() ? 0 : rc.rules.front().mark_bits;
}

// Fills sw.bridges (see MapSwap::bridges) for a swap of a lookup chain's maps.
void bridgeOldMaps(const Ruleset& from, const Ruleset& to, const std::vector<ChainDef>& new_chains,
                   MapSwap& sw) {
  const SetDef* ranges_old = nullptr;
  const SetDef* ranges_new = nullptr;
  const SetDef* default_old = nullptr;
  const SetDef* default_new = nullptr;
  for (const std::string& name : sw.old_sets) {
    (isRangeSetName(name) ? ranges_old : default_old) = from.findSet(name);
    (isRangeSetName(name) ? ranges_new : default_new) = to.findSet(name);
  }
  if (ranges_old == nullptr || ranges_new == nullptr || default_old == nullptr ||
      default_new == nullptr)
    return;
  std::set<std::uint32_t> marks;  // the new classes this family's class maps give
  if (std::ranges::any_of(new_chains, [](const ChainDef& c) { return !isLogChain(c.name); })) {
    std::set<std::string> classes;  // the class chains this family's class maps jump to
    for (const SetDef& s : to.sets) {
      if (s.family != ranges_new->family ||
          (s.kind != SetKind::kAddrIntervalVmap && s.kind != SetKind::kAddrVmap))
        continue;
      for (const Element& e : s.elements) {
        if (e.verdict.kind == Verdict::Kind::kJump) classes.insert(e.verdict.chain);
      }
    }
    for (const ChainDef& c : new_chains) {
      if (classes.contains(c.name)) marks.insert(classMarkOf(c));
    }
  }
  std::map<Addr, const Verdict*> was;  // the old defaults: every old local address
  for (const Element& e : default_old->elements) was[e.addr] = &e.verdict;

  SetDef ranges{ranges_old->name, ranges_old->kind, ranges_old->family, {}};
  SetDef defaults{default_old->name, default_old->kind, default_old->family, {}};
  // Entries of a new class or of a new local address: keys the old maps do not have.
  std::map<std::pair<Addr, std::uint32_t>, std::vector<Element>> taken;
  for (const Element& e : ranges_new->elements) {
    if (!marks.contains(e.mark) && was.contains(e.addr)) continue;
    ranges.elements.push_back(e);
    taken[{e.addr, e.mark}].push_back(e);
  }
  for (const Element& d : default_new->elements) {
    auto it = was.find(d.addr);
    if (it == was.end()) {
      defaults.elements.push_back(d);  // a new local address: its default, as the new table has it
      continue;
    }
    if (*it->second == d.verdict) continue;
    // A default that changes: the old default map answers for the old classes, so the new
    // classes get the rest of the space from the range map, with the new default.
    for (std::uint32_t mark : marks) {
      for (Element box : complementBoxes(taken[{d.addr, mark}])) {
        box.addr = d.addr;
        box.mark = mark;
        box.verdict = d.verdict;
        box.origin = d.origin;
        ranges.elements.push_back(box);
      }
    }
  }
  for (SetDef* b : {&ranges, &defaults}) {
    if (!b->elements.empty()) sw.bridges.push_back(std::move(*b));
  }
}
}  // namespace

bool diffRulesets(const Ruleset& from, const Ruleset& to, std::vector<SetChange>& changes,
                  ChainChanges* chains, std::string* why) {
  changes.clear();
  if (auto difference = skeletonDifference(from, to)) {
    if (why != nullptr) *why = std::move(*difference);
    return false;
  }
  // Dynamic chains are named by what they do, so a name present on both sides is the same chain.
  ChainChanges cc;
  std::set<std::string> have;
  std::set<std::string> want;
  for (const ChainDef& c : from.chains) {
    if (isDynamicChain(c.name)) have.insert(c.name);
  }
  for (const ChainDef& c : to.chains) {
    if (!isDynamicChain(c.name)) continue;
    want.insert(c.name);
    if (!have.contains(c.name)) cc.add.push_back(c);
  }
  for (const std::string& n : have) {
    if (!want.contains(n)) cc.remove.push_back(n);
  }
  std::map<std::string, std::vector<SetChange>> swapped;  // lookup chains whose maps are rebuilt
  for (size_t i = 0; i < from.sets.size(); ++i) {
    const SetDef& a = from.sets[i];
    const SetDef& b = to.sets[i];
    std::map<decltype(elementKey(Element{})), const Element*> old_by_key;
    for (const Element& e : a.elements) old_by_key[elementKey(e)] = &e;
    SetChange c{a.name, {}, {}};
    std::set<decltype(elementKey(Element{}))> seen;
    for (const Element& e : b.elements) {
      auto k = elementKey(e);
      seen.insert(k);
      auto it = old_by_key.find(k);
      if (it == old_by_key.end()) {
        c.add.push_back(e);
      } else if (!(it->second->verdict == e.verdict)) {
        c.remove.push_back(*it->second);  // a changed verdict: delete and add in one batch
        c.add.push_back(e);
      }
    }
    for (const Element& e : a.elements) {
      if (!seen.contains(elementKey(e))) c.remove.push_back(e);
    }
    // A range or default map is never edited in place (see isSwappedSetName): the maps of
    // its lookup chain are rebuilt under their other names, and the chain rewritten.
    if (isSwappedSetName(b.name) && (!c.add.empty() || !c.remove.empty())) {
      swapped[swapChainName(b.name)].push_back(std::move(c));
      continue;
    }
    if (!c.add.empty() || !c.remove.empty()) changes.push_back(std::move(c));
  }
  for (auto& [name, edits] : swapped) {
    const ChainDef* chain = to.findChain(name);
    if (chain == nullptr) {
      if (why != nullptr) *why = "no lookup chain " + name;
      return false;
    }
    MapSwap sw{.old_sets = {},
               .replacements = {},
               .chain = withAlternateSets(*chain),
               .edits = std::move(edits)};
    for (const Rule& r : chain->rules) {
      const SetDef* s = isSwappedSetName(r.set) ? to.findSet(r.set) : nullptr;
      if (s == nullptr || std::ranges::find(sw.old_sets, s->name) != sw.old_sets.end()) continue;
      sw.old_sets.push_back(s->name);
      sw.replacements.push_back(*s);
      sw.replacements.back().name = alternateSet(s->name);
    }
    bridgeOldMaps(from, to, cc.add, sw);
    cc.swaps.push_back(std::move(sw));
  }
  if (!cc.empty()) {
    if (chains == nullptr) {
      changes.clear();
      return false;
    }
    *chains = std::move(cc);
  } else if (chains != nullptr) {
    *chains = {};
  }
  return true;
}

// ---- reading back ----

namespace {

// One expression as libnftnl prints it, normalized where a kernel dump differs from what we
// build: counters carry live values, lookups print their (zero) flags.
std::string exprText(const nftnl_expr* e) {
  const char* name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
  if (name != nullptr && std::strcmp(name, "counter") == 0) return "counter";
  char buf[1024] = {};
  nftnl_expr_snprintf(buf, sizeof buf, e, NFTNL_OUTPUT_DEFAULT, 0);
  std::string s = buf;
  while (!s.empty() && s.back() == ' ') s.pop_back();
  if (s.ends_with(" 0x0")) s.resize(s.size() - 4);
  return s;
}

std::vector<std::string> exprsOf(const nftnl_rule* r) {
  std::vector<std::string> out;
  nftnl_expr_iter* it = nftnl_expr_iter_create(r);
  for (nftnl_expr* e = nftnl_expr_iter_next(it); e != nullptr; e = nftnl_expr_iter_next(it))
    out.push_back(exprText(e));
  nftnl_expr_iter_destroy(it);
  return out;
}

std::uint32_t u32Host(const unsigned char* p) {
  std::uint32_t v = 0;
  std::memcpy(&v, p, 4);
  return v;
}

Addr addrFrom(const unsigned char* p, Family f) {
  if (f == Family::kV4) {
    std::uint32_t be = u32Host(p);
    return Addr::fromV4(ntohl(be));
  }
  U128 v = 0;
  for (int i = 0; i < 16; ++i) v = (v << 8) | p[i];
  return Addr{v};
}

std::uint16_t portFrom(const unsigned char* p) {
  std::uint16_t be = 0;
  std::memcpy(&be, p, 2);
  return ntohs(be);
}

Verdict verdictFrom(nftnl_set_elem* e) {
  Verdict v;
  if (!nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_VERDICT)) return v;
  auto code = static_cast<int>(nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_VERDICT));
  switch (code) {
    case NF_ACCEPT:
      v.kind = Verdict::Kind::kAccept;
      break;
    case NF_DROP:
      v.kind = Verdict::Kind::kDrop;
      break;
    case NFT_RETURN:
      v.kind = Verdict::Kind::kReturn;
      break;
    case NFT_JUMP:
      v.kind = Verdict::Kind::kJump;
      break;
    case NFT_GOTO:
      v.kind = Verdict::Kind::kGoto;
      break;
    case NFT_CONTINUE:
      v.kind = Verdict::Kind::kContinue;
      break;
    default:
      break;
  }
  if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_CHAIN))
    v.chain = nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN);
  return v;
}

// Decodes the kernel's elements of one set into ruleset elements (the inverse of
// netlinkElements).
std::vector<Element> decodeElements(const SetDef& s, nftnl_set* set) {
  struct Raw {  // NOLINT: local aggregate for the callback
    std::vector<unsigned char> key;
    std::vector<unsigned char> key_end;
    std::uint32_t flags = 0;
    Verdict verdict;
  };
  std::vector<Raw> raws;
  nftnl_set_elem_foreach(
      set,
      [](nftnl_set_elem* e, void* data) -> int {
        Raw r;
        std::uint32_t len = 0;
        const auto* k =
            static_cast<const unsigned char*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len));
        if (k != nullptr) r.key.assign(k, k + len);
        if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_KEY_END)) {
          const auto* ke = static_cast<const unsigned char*>(
              nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY_END, &len));
          r.key_end.assign(ke, ke + len);
        }
        if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS))
          r.flags = nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS);
        r.verdict = verdictFrom(e);
        static_cast<std::vector<Raw>*>(data)->push_back(std::move(r));
        return 0;
      },
      &raws);
  const size_t alen = addrLen(s.family);
  std::vector<Element> out;
  if (s.kind == SetKind::kAddrIntervalVmap) {
    // Starts and interval ends, in key order: each start runs to the next end (or the top).
    std::sort(raws.begin(), raws.end(), [&](const Raw& a, const Raw& b) {
      if (a.key != b.key) return a.key < b.key;
      return (a.flags & NFT_SET_ELEM_INTERVAL_END) >
             (b.flags & NFT_SET_ELEM_INTERVAL_END);  // end before start
    });
    U128 top = s.family == Family::kV4 ? kV4MappedLast : kU128Max;
    for (size_t i = 0; i < raws.size(); ++i) {
      if (raws[i].key.size() != alen || (raws[i].flags & NFT_SET_ELEM_INTERVAL_END)) continue;
      Element el;
      el.addr = addrFrom(raws[i].key.data(), s.family);
      el.addr_hi = Addr{top};
      for (size_t j = i + 1; j < raws.size(); ++j) {
        if (raws[j].flags & NFT_SET_ELEM_INTERVAL_END) {
          el.addr_hi = Addr{addrFrom(raws[j].key.data(), s.family).v - 1};
          break;
        }
      }
      el.verdict = raws[i].verdict;
      out.push_back(el);
    }
    return out;
  }
  for (const Raw& r : raws) {
    Element el;
    el.verdict = r.verdict;
    switch (s.kind) {
      case SetKind::kAddrSet:
      case SetKind::kAddrVmap:
        if (r.key.size() != alen) continue;
        el.addr = addrFrom(r.key.data(), s.family);
        break;
      case SetKind::kAddrMarkVmap:
        if (r.key.size() != alen + 4) continue;
        el.addr = addrFrom(r.key.data(), s.family);
        el.mark = u32Host(r.key.data() + alen);
        el.proto_hi = 255;
        el.port_hi = 65535;
        break;
      case SetKind::kIfaceAddrSet:
        if (r.key.size() != kIfnameLen + alen) continue;
        el.iface.assign(reinterpret_cast<const char*>(r.key.data()),
                        strnlen(reinterpret_cast<const char*>(r.key.data()), kIfnameLen));
        el.addr = addrFrom(r.key.data() + kIfnameLen, s.family);
        break;
      case SetKind::kConcatVmap:
      case SetKind::kConcatIntervalVmap: {
        if (r.key.size() != alen + 12) continue;
        bool be = s.kind == SetKind::kConcatIntervalVmap;
        const unsigned char* k = r.key.data();
        el.addr = addrFrom(k, s.family);
        std::uint32_t mark = u32Host(k + alen);
        el.mark = be ? ntohl(mark) : mark;
        el.proto_lo = el.proto_hi = k[alen + 4];
        el.port_lo = el.port_hi = portFrom(k + alen + 8);
        if (be && r.key_end.size() == r.key.size()) {
          el.proto_hi = r.key_end[alen + 4];
          el.port_hi = portFrom(r.key_end.data() + alen + 8);
        }
        break;
      }
      case SetKind::kAddrIntervalVmap:
        break;
    }
    out.push_back(el);
  }
  std::sort(out.begin(), out.end(), [](const Element& a, const Element& b) {
    return std::tie(a.iface, a.addr, a.mark, a.proto_lo, a.port_lo) <
           std::tie(b.iface, b.addr, b.mark, b.proto_lo, b.port_lo);
  });
  return out;
}

}  // namespace

std::expected<DecodedBatch, Error> decodeBatch(const Batch& batch, const Ruleset& like) {
  DecodedBatch out;
  std::map<std::string, NftnlSetPtr> holders;
  std::vector<std::string> set_order;
  int left = static_cast<int>(batch.bytes.size());
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(batch.bytes.data()); mnl_nlmsg_ok(nlh, left);
       nlh = mnl_nlmsg_next(nlh, &left)) {
    if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES) continue;  // batch begin/end
    switch (nlh->nlmsg_type & 0xff) {
      case NFT_MSG_NEWTABLE: {
        NftnlTablePtr t(nftnl_table_alloc());
        if (nftnl_table_nlmsg_parse(nlh, t.get()) < 0)
          return fail(Error::Code::kInternal, "table message", errno);
        out.tables.push_back(nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME));
        break;
      }
      case NFT_MSG_NEWCHAIN: {
        NftnlChainPtr c(nftnl_chain_alloc());
        if (nftnl_chain_nlmsg_parse(nlh, c.get()) < 0)
          return fail(Error::Code::kInternal, "chain message", errno);
        out.chains.push_back(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME));
        break;
      }
      case NFT_MSG_NEWSET: {
        NftnlSetPtr set(nftnl_set_alloc());
        if (nftnl_set_nlmsg_parse(nlh, set.get()) < 0)
          return fail(Error::Code::kInternal, "set message", errno);
        std::string name = nftnl_set_get_str(set.get(), NFTNL_SET_NAME);
        set_order.push_back(name);
        holders[name].reset(nftnl_set_alloc());
        break;
      }
      case NFT_MSG_NEWSETELEM: {
        NftnlSetPtr tmp(nftnl_set_alloc());
        if (nftnl_set_elems_nlmsg_parse(nlh, tmp.get()) < 0) {
          return fail(Error::Code::kInternal, "set element message", errno);
        }
        std::string name = nftnl_set_get_str(tmp.get(), NFTNL_SET_NAME);
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
        out.rules[nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN)].push_back(exprsOf(r.get()));
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
    s.elements = decodeElements(*def, holders[name].get());
    out.sets.push_back(std::move(s));
  }
  return out;
}

std::vector<std::string> ruleExpressions(const Rule& rule) {
  NftnlRulePtr r(nftnl_rule_alloc());
  encodeRule(r.get(), rule, {});
  return exprsOf(r.get());
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

// ---- transport ----

namespace {

class NetlinkTransport final : public Transport {
 public:
  explicit NetlinkTransport(MnlSocketPtr sock) : sock_(std::move(sock)) {}

  std::expected<void, Error> commit(const Batch& batch) override {
    int fd = mnl_socket_get_fd(sock_.get());
    // The whole batch in one sendmsg: the kernel needs a send buffer that large.
    int size = static_cast<int>(std::min<size_t>(batch.bytes.size() + 65536, 1u << 30));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size);
    int rcv = 16 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv);
    ssize_t sent = mnl_socket_sendto(sock_.get(), batch.bytes.data(), batch.bytes.size());
    if (sent < 0) {
      int err = errno;
      return fail(Error::Code::kKernel, "sending the netlink batch", err);
    }
    // The kernel processes the batch within sendmsg: every ack is queued when it returns.
    std::vector<char> buf(1 << 20);
    std::uint32_t port = mnl_socket_get_portid(sock_.get());
    std::optional<Error> first_error;
    size_t acks = 0;
    const size_t expected = batch.messages() - 2;  // begin and end are not acknowledged
    while (acks < expected && !first_error) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 5000) <= 0) {
        return fail(Error::Code::kKernel,
                    fmt::format("no answer from the kernel after {} of {} acks", acks, expected),
                    ETIMEDOUT);
      }
      ssize_t n = mnl_socket_recvfrom(sock_.get(), buf.data(), buf.size());
      if (n < 0) {
        int err = errno;
        return fail(Error::Code::kKernel, "reading netlink acks", err);
      }
      for (auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data());
           mnl_nlmsg_ok(nlh, static_cast<int>(n));
           nlh = mnl_nlmsg_next(nlh, reinterpret_cast<int*>(&n))) {
        if (nlh->nlmsg_pid != port || nlh->nlmsg_type != NLMSG_ERROR) continue;
        auto* e = static_cast<nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        ++acks;
        if (e->error != 0 && !first_error) {
          // seq → the message's description
          std::uint32_t idx = nlh->nlmsg_seq - batch.first_seq;
          std::string what =
              idx < batch.what.size() ? batch.what[idx] : fmt::format("message {}", nlh->nlmsg_seq);
          // The extended ack: the kernel's own words, and which attribute (element) it refused.
          std::string said;
          if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
            size_t tlvs =
                sizeof(nlmsgerr) +
                ((nlh->nlmsg_flags & NLM_F_CAPPED) ? 0 : e->msg.nlmsg_len - sizeof(nlmsghdr));
            forEachAttr(mnl_nlmsg_get_payload_offset(nlh, tlvs), mnl_nlmsg_get_payload_tail(nlh),
                        [&](nlattr* a) {
                          if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG) said = mnl_attr_get_str(a);
                          if (mnl_attr_get_type(a) == NLMSGERR_ATTR_OFFS) {
                            if (auto el = explainElement(batch, idx, mnl_attr_get_u32(a)))
                              what = *el;
                          }
                        });
          }
          first_error = Error{Error::Code::kKernel,
                              "the kernel rejected " + what +
                                  (said.empty() ? "" : " (" + said + ")") + "; nothing was changed",
                              {},
                              -e->error};
        }
      }
    }
    // Drain what is left (acks after an error), so the socket is clean for the next batch.
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 0) <= 0) break;
      if (mnl_socket_recvfrom(sock_.get(), buf.data(), buf.size()) <= 0) break;
    }
    if (first_error) return std::unexpected(*first_error);
    return {};
  }

  std::expected<KernelState, Error> read(const Ruleset& expected) override {
    KernelState st;
    st.ruleset.table = expected.table;
    st.ruleset.class_mask = expected.class_mask;
    // A left-over aside table of an interrupted replace judges packets too.
    auto table_dump = dump(NFT_MSG_GETTABLE, "", "", [&](const nlmsghdr* nlh) {
      NftnlTablePtr t(nftnl_table_alloc());
      if (nftnl_table_nlmsg_parse(nlh, t.get()) == 0 &&
          nftnl_table_get_u32(t.get(), NFTNL_TABLE_FAMILY) == NFPROTO_INET &&
          asideTable(expected.table) == nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME)) {
        st.aside_exists = true;
      }
    });
    if (!table_dump) return std::unexpected(table_dump.error());
    if (st.aside_exists)
      st.drift.push_back("table inet " + asideTable(expected.table) +
                         " is left from an interrupted replace");
    // Chains and their rules.
    std::map<std::string, std::vector<std::vector<std::string>>> rules;
    std::set<std::string> chains;
    bool table_missing = false;
    auto chain_dump = dump(NFT_MSG_GETCHAIN, expected.table, "", [&](const nlmsghdr* nlh) {
      NftnlChainPtr c(nftnl_chain_alloc());
      if (nftnl_chain_nlmsg_parse(nlh, c.get()) == 0 &&
          expected.table == nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE)) {
        chains.insert(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME));
      }
    });
    if (!chain_dump) {
      if (chain_dump.error().sys_errno != ENOENT) return std::unexpected(chain_dump.error());
      table_missing = true;
    }
    if (table_missing) return st;  // exists = false
    st.exists = true;
    auto rule_dump = dump(NFT_MSG_GETRULE, expected.table, "", [&](const nlmsghdr* nlh) {
      NftnlRulePtr r(nftnl_rule_alloc());
      if (nftnl_rule_nlmsg_parse(nlh, r.get()) == 0 &&
          expected.table == nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE)) {
        rules[nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN)].push_back(exprsOf(r.get()));
      }
    });
    if (!rule_dump) {
      if (rule_dump.error().sys_errno == ENOENT) {  // the table vanished, or never was
        st.exists = false;
        return st;
      }
      return std::unexpected(rule_dump.error());
    }
    // Sets: which exist, then each expected one's elements.
    std::map<std::string, SetShape> sets;
    auto set_dump = dump(NFT_MSG_GETSET, expected.table, "", [&](const nlmsghdr* nlh) {
      NftnlSetPtr set(nftnl_set_alloc());
      if (nftnl_set_nlmsg_parse(nlh, set.get()) == 0)
        sets[nftnl_set_get_str(set.get(), NFTNL_SET_NAME)] = shapeOf(set.get());
    });
    if (!set_dump) {
      if (set_dump.error().sys_errno == ENOENT) {
        st.exists = false;
        return st;
      }
      return std::unexpected(set_dump.error());
    }
    // Swapped maps may live under their alternate names: follow what the kernel's lookup
    // chain references, and note a map that nothing references (a swap whose switch never
    // came) so that the next swap can clear it.
    Ruleset aligned_expected = expected;
    for (const ChainDef& c : expected.chains) {
      if (std::ranges::none_of(c.rules, [](const Rule& r) { return isSwappedSetName(r.set); }))
        continue;
      ChainDef alt = withAlternateSets(c);
      const auto& have = rules[c.name];
      bool alt_referenced =
          have.size() == alt.rules.size() &&
          std::equal(alt.rules.begin(), alt.rules.end(), have.begin(),
                     [](const Rule& r, const auto& h) { return ruleExpressions(r) == h; });
      for (size_t i = 0; i < c.rules.size(); ++i) {
        const std::string& first = c.rules[i].set;
        if (first == alt.rules[i].set) continue;
        const std::string& second = alt.rules[i].set;
        const std::string& unused = alt_referenced ? first : second;
        if (sets.contains(unused) &&
            std::ranges::find(st.stale_sets, unused) == st.stale_sets.end()) {
          st.stale_sets.push_back(unused);
        }
        if (alt_referenced) renameSwappedSet(aligned_expected, first, second);
      }
    }
    const Ruleset& want = aligned_expected;

    st.skeleton_matches = true;
    for (const ChainDef& c : want.chains) {
      if (isDynamicChain(c.name) && !chains.contains(c.name)) continue;  // an update adds it
      if (!chains.contains(c.name)) {
        st.drift.push_back("chain " + c.name + " is missing");
        st.skeleton_matches = false;
        continue;
      }
      const auto& have = rules[c.name];
      if (have.size() != c.rules.size()) {
        st.drift.push_back(
            fmt::format("chain {} has {} rules, expected {}", c.name, have.size(), c.rules.size()));
        st.skeleton_matches = false;
        continue;
      }
      for (size_t i = 0; i < c.rules.size(); ++i) {
        if (have[i] != ruleExpressions(c.rules[i])) {
          st.drift.push_back(fmt::format("rule {} of chain {} differs", i, c.name));
          st.skeleton_matches = false;
        }
      }
    }
    for (const std::string& c : chains) {
      if (isDynamicChain(c)) continue;  // an update removes it
      if (std::none_of(want.chains.begin(), want.chains.end(),
                       [&](const ChainDef& d) { return d.name == c; })) {
        st.drift.push_back("unexpected chain " + c);
        st.skeleton_matches = false;
      }
    }
    for (const SetDef& s : want.sets) {
      SetDef got{s.name, s.kind, s.family, {}};
      if (!sets.contains(s.name)) {
        st.drift.push_back("set " + s.name + " is missing");
        st.skeleton_matches = false;
        st.ruleset.sets.push_back(std::move(got));
        continue;
      }
      // Same name, another kind of set (someone's, an older zonewall's): its elements would not
      // decode, and element changes would be refused.
      if (SetShape want_shape = shapeOf(makeSet(want.table, s, 0).get());
          sets.at(s.name) != want_shape) {
        const SetShape& have_shape = sets.at(s.name);
        st.drift.push_back(fmt::format(
            "set {} is defined differently (flags {:#x}, key {} bytes; expected {:#x}, {} bytes)",
            s.name, have_shape.flags, have_shape.key_len, want_shape.flags, want_shape.key_len));
        st.skeleton_matches = false;
        st.ruleset.sets.push_back(std::move(got));
        continue;
      }
      NftnlSetPtr holder(nftnl_set_alloc());
      auto el_dump = dump(NFT_MSG_GETSETELEM, want.table, s.name, [&](const nlmsghdr* nlh) {
        nftnl_set_elems_nlmsg_parse(nlh, holder.get());
      });
      if (!el_dump) return std::unexpected(el_dump.error());
      got.elements = decodeElements(s, holder.get());
      st.ruleset.sets.push_back(std::move(got));
    }
    if (st.skeleton_matches) {
      // The fixed chains as expected; the log chains as the kernel has them.
      for (const ChainDef& c : want.chains) {
        if (!isDynamicChain(c.name)) st.ruleset.chains.push_back(c);
      }
      for (const std::string& c : chains) {
        if (isDynamicChain(c)) st.ruleset.chains.push_back(ChainDef{c, {}, {}});
      }
    }
    return st;
  }

 private:
  // One dump request (table-scoped; for set elements, the set too), every answer to `each`.
  template <class F>
  std::expected<void, Error> dump(std::uint16_t type, const std::string& table,
                                  const std::string& set, F&& each) {
    std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE * 8);
    std::uint32_t seq = ++dump_seq_;
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), type, NFPROTO_INET,
                                          static_cast<std::uint16_t>(NLM_F_DUMP | NLM_F_ACK), seq);
    if (type == NFT_MSG_GETSETELEM) {
      NftnlSetPtr s(nftnl_set_alloc());
      nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
      nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set.c_str());
      nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
    } else if (type == NFT_MSG_GETSET) {
      NftnlSetPtr s(nftnl_set_alloc());
      nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
      nftnl_set_nlmsg_build_payload(nlh, s.get());
    } else if (type == NFT_MSG_GETRULE) {
      NftnlRulePtr r(nftnl_rule_alloc());
      nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
      nftnl_rule_nlmsg_build_payload(nlh, r.get());
    } else if (type == NFT_MSG_GETCHAIN) {
      NftnlChainPtr c(nftnl_chain_alloc());
      nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
      nftnl_chain_nlmsg_build_payload(nlh, c.get());
    }
    if (mnl_socket_sendto(sock_.get(), nlh, nlh->nlmsg_len) < 0) {
      int err = errno;
      return fail(Error::Code::kKernel, "sending a dump request", err);
    }
    struct Ctx {
      F* each;
    } ctx{&each};
    auto cb = [](const nlmsghdr* h, void* data) -> int {
      (*static_cast<Ctx*>(data)->each)(h);
      return MNL_CB_OK;
    };
    std::uint32_t port = mnl_socket_get_portid(sock_.get());
    for (;;) {
      ssize_t n = mnl_socket_recvfrom(sock_.get(), buf.data(), buf.size());
      if (n < 0) {
        int err = errno;
        return fail(Error::Code::kKernel, "reading a dump", err);
      }
      int rc = mnl_cb_run(buf.data(), static_cast<size_t>(n), seq, port, cb, &ctx);
      if (rc == MNL_CB_STOP) return {};
      if (rc < 0) {
        int err = errno;
        return fail(Error::Code::kKernel, "dumping table " + table, err);
      }
    }
  }

  MnlSocketPtr sock_;
  std::uint32_t dump_seq_ = 0x40000000;
};

}  // namespace

std::expected<std::unique_ptr<Transport>, Error> openNetlink(const std::string& netns_path) {
  // A socket belongs to the namespace it was created in: enter the target, open, come back.
  std::optional<NetnsGuard> inside;
  if (!netns_path.empty()) {
    auto entered = NetnsGuard::enter(netns_path);
    if (!entered) {
      return std::unexpected(entered.error());
    }
    inside.emplace(std::move(*entered));
  }
  MnlSocketPtr sock(mnl_socket_open(NETLINK_NETFILTER));
  int open_err = errno;
  bool bound = sock && mnl_socket_bind(sock.get(), 0, MNL_SOCKET_AUTOPID) == 0;
  int bind_err = errno;
  inside.reset();
  if (!sock) {
    return fail(Error::Code::kIo, "opening the netfilter netlink socket", open_err);
  }
  if (!bound) {
    return fail(Error::Code::kIo, "binding the netfilter netlink socket", bind_err);
  }
  // Extended acks name the attribute (the set element) the kernel refused; capped acks do not
  // echo the refused message back.
  int on = 1;
  setsockopt(mnl_socket_get_fd(sock.get()), SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof on);
  setsockopt(mnl_socket_get_fd(sock.get()), SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof on);
  return std::unique_ptr<Transport>(new NetlinkTransport(std::move(sock)));
}

}  // namespace zonewall::dataplane
