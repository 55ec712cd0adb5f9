#include "wire.h"

#include <arpa/inet.h>
#include <linux/netfilter.h>

#include <cstring>

namespace zonewall::dataplane {

size_t addrLen(Family f) { return f == Family::kV4 ? 4 : 16; }

void putAddr(std::vector<unsigned char>& out, Addr a, Family f) {
  const AddrBytes b = addrBytes(a, f);
  out.insert(out.end(), b.data(), b.data() + b.size);
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

std::uint32_t u32Host(const unsigned char* p) {
  std::uint32_t v = 0;
  std::memcpy(&v, p, 4);
  return v;
}

std::uint16_t portFrom(const unsigned char* p) {
  std::uint16_t be = 0;
  std::memcpy(&be, p, 2);
  return ntohs(be);
}

Verdict verdictOf(int code, std::string chain) {
  Verdict v;
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
  v.chain = std::move(chain);
  return v;
}

}  // namespace zonewall::dataplane
