#include "rule_codec.h"

#include <arpa/inet.h>  // before <linux/netfilter.h>: glibc's in.h must come first
#include <libnftnl/expr.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <cstring>

#include "c_handle.h"
#include "wire.h"
#include "zonewall/dataplane/batch.h"

namespace zonewall::dataplane {
namespace {

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
    case Rule::Kind::kFamilyGoto:
      b.nfproto(rule.family);
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

}  // namespace

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

std::vector<std::string> exprsOf(const nftnl_rule* r) {
  std::vector<std::string> out;
  NftnlExprIterPtr it(nftnl_expr_iter_create(r));
  for (nftnl_expr* e = nftnl_expr_iter_next(it.get()); e != nullptr;
       e = nftnl_expr_iter_next(it.get())) {
    out.push_back(exprText(e));
  }
  return out;
}

std::vector<std::string> ruleExpressions(const Rule& rule) {
  NftnlRulePtr r(nftnl_rule_alloc());
  encodeRule(r.get(), rule, {});
  return exprsOf(r.get());
}

}  // namespace zonewall::dataplane
