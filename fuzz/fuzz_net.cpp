// Addresses, CIDRs, ports and port ranges as policy text carries them. The parsers alone: what
// they accept prints back to text that parses to the same value. Then the same text where a
// policy carries it (Calico `nets` and `ports`, Kubernetes `ipBlock` and `port`), through the
// loader: it loads, or it is refused with an error located in the file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "zonewall/base/ip.h"
#include "zonewall/compiler/program.h"
#include "zonewall/policy/loader.h"

namespace zw = zonewall;

namespace {

// `text` as a YAML double-quoted scalar.
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

void load(const std::string& yaml) {
  zw::policy::Store store;
  zw::Diagnostics diags;
  zw::policy::loadSources({{"net.yaml", yaml}}, store, diags);
  for (const auto& d : diags.all()) {
    if (d.severity == zw::Severity::kError && !d.loc.known()) std::abort();
  }
  if (!diags.hasErrors()) (void)zw::compiler::lower(store);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto a = zw::parseAddr(text)) {
    auto back = zw::parseAddr(zw::formatAddr(*a));
    if (!back || !(*back == *a)) std::abort();
  }
  for (bool bare : {false, true}) {
    if (auto c = zw::parseCidr(text, bare)) {
      auto back = zw::parseCidr(c->cidr.str());
      if (!back || !(back->cidr == c->cidr) || back->host_bits_set) std::abort();
    }
  }
  // A port as a number when the text is one, so that numeric paths are reached too.
  const std::string value = quoted(text);
  const bool numeric = !text.empty() && text.size() < 12 &&
                       text.find_first_not_of("-0123456789") == std::string_view::npos;
  const std::string port = numeric ? std::string(text) : value;
  load(
      "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: g}\n"
      "spec:\n  ingress:\n  - action: Allow\n    protocol: TCP\n    source: {nets: [" +
      value + "], notNets: [" + value + "]}\n    destination: {ports: [" + port + "], notPorts: [" +
      port + ", 80]}\n");
  load(
      "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: k, namespace: "
      "n}\nspec:\n  podSelector: {}\n  egress:\n  - to: [{ipBlock: {cidr: " +
      value + ", except: [" + value + "]}}]\n    ports: [{port: " + port + ", endPort: " + port +
      "}]\n");
  return 0;
}
