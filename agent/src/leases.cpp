#include "zonewall/agent/leases.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "zonewall/base/json.h"

namespace zonewall::agent {
namespace {

using json = nlohmann::json;

// Flannel retries a lost claim race this many times (pkg/subnet/etcd/local_manager.go).
constexpr int kRaceRetries = 10;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Go's encoding/json matches field names case-insensitively.
const json* field(const json& obj, const char* name) {
  if (!obj.is_object()) return nullptr;
  const std::string want = lower(name);
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (lower(it.key()) == want) return &it.value();
  }
  return nullptr;
}

// The span of a /len of family f, as an offset in the 128-bit space.
U128 spanOf(Family f, int len) { return static_cast<U128>(1) << (familyBits(f) - len); }

Addr plus(Addr a, U128 d) { return Addr{a.v + d}; }

bool aligned(Addr a, Family f, int len) { return (a.v & (spanOf(f, len) - 1)) == 0; }

std::expected<Cidr, Error> cidrField(const json& obj, const char* name, Family fam) {
  const json* v = field(obj, name);
  if (v == nullptr || v->is_null()) return Cidr{};
  auto c = v->is_string() ? parseCidr(v->get<std::string>()) : std::nullopt;
  if (!c || c->cidr.family != fam) {
    return fail(Error::Code::kInvalidInput,
                fmt::format("{}: not an {} network: {}", name, fam == Family::kV4 ? "IPv4" : "IPv6",
                            v->dump()));
  }
  return c->cidr;
}

std::expected<std::optional<Addr>, Error> addrField(const json& obj, const char* name, Family fam) {
  const json* v = field(obj, name);
  if (v == nullptr || v->is_null()) return std::nullopt;
  auto a = v->is_string() ? parseAddr(v->get<std::string>()) : std::nullopt;
  if (!a || a->family() != fam) {
    return fail(Error::Code::kInvalidInput, fmt::format("{}: not an address: {}", name, v->dump()));
  }
  return a;
}

// CheckNetworkConfig for one family (pkg/subnet/config.go), with its wording.
std::expected<void, Error> checkFamily(Family f, const Cidr& network, int& len, Addr& min,
                                       Addr& max, bool min_set, bool max_set) {
  const bool v4 = f == Family::kV4;
  auto bad = [](std::string m) { return fail(Error::Code::kInvalidInput, std::move(m)); };
  if (network.prefix == 0 && network.base.v == 0) {
    return bad(v4 ? "please define a correct Network parameter in the flannel config"
                  : "please define a correct IPv6Network parameter in the flannel config");
  }
  if (len > 0) {
    if (len > (v4 ? 30 : 126))
      return bad(v4 ? "SubnetLen must be less than /31" : "SubnetLen must be less than /127");
    if (len < network.prefix + 2)
      return bad("network must be able to accommodate at least four subnets");
  } else if (network.prefix > (v4 ? 28 : 124)) {
    return bad(v4 ? "network is too small. Minimum useful network prefix is /28"
                  : "IPv6Network is too small. Minimum useful network prefix is /124");
  } else if (network.prefix <= (v4 ? 22 : 62)) {
    len = v4 ? 24 : 64;
  } else {
    len = network.prefix + 2;
  }
  const U128 size = spanOf(f, len);
  const U128 net_span = spanOf(f, network.prefix);
  const char* min_name = v4 ? "SubnetMin" : "IPv6SubnetMin";
  const char* max_name = v4 ? "SubnetMax" : "IPv6SubnetMax";
  const char* net_name = v4 ? "Network" : "IPv6Network";
  if (!min_set) {
    min = plus(network.base, size);  // the first subnet would hold the network address
  } else if (!network.contains(min)) {
    return bad(fmt::format("{} is not in the range of the {}", min_name, net_name));
  }
  if (!max_set) {
    max = Addr{network.base.v + net_span - size};
  } else if (!network.contains(max)) {
    return bad(fmt::format("{} is not in the range of the {}", max_name, net_name));
  }
  if (!aligned(min, f, len)) {
    return bad(fmt::format("{} is not on a SubnetLen boundary: {}", min_name, formatAddr(min)));
  }
  if (!aligned(max, f, len)) {
    return bad(fmt::format("{} is not on a SubnetLen boundary: {}", max_name, formatAddr(max)));
  }
  return {};
}

// Whether a lease's subnet fits the config (local_manager.go isSubnetConfigCompat).
bool compatible(const NetworkConfig& c, const SubnetLease& l) {
  if (c.enable_ipv4) {
    if (!l.subnet || l.subnet->prefix != c.subnet_len || l.subnet->base < c.subnet_min ||
        c.subnet_max < l.subnet->base) {
      return false;
    }
  }
  if (c.enable_ipv6) {
    if (!l.ipv6_subnet || l.ipv6_subnet->prefix != c.ipv6_subnet_len ||
        l.ipv6_subnet->base < c.ipv6_subnet_min || c.ipv6_subnet_max < l.ipv6_subnet->base) {
      return false;
    }
  }
  return true;
}

bool overlaps(const Cidr& a, const Cidr& b) { return a.contains(b.base) || b.contains(a.base); }

// Up to 100 free subnets from `min`, then one at random (local_manager.go allocateSubnet).
std::optional<Cidr> pickFree(Family f, Addr min, Addr max, int len,
                             const std::vector<const Cidr*>& taken) {
  std::vector<Addr> free;
  for (Addr a = min; !(max < a) && free.size() < 100; a = plus(a, spanOf(f, len))) {
    Cidr c{a, len, f};
    if (std::none_of(taken.begin(), taken.end(),
                     [&](const Cidr* t) { return t != nullptr && overlaps(c, *t); })) {
      free.push_back(a);
    }
    if (a.v + spanOf(f, len) < a.v) break;  // the top of the space
  }
  if (free.empty()) return std::nullopt;
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<size_t> pick(0, free.size() - 1);
  return Cidr{free[pick(rng)], len, f};
}

}  // namespace

std::expected<NetworkConfig, Error> parseNetworkConfig(const std::string& json_text) {
  auto parsed = parseJson(json_text);
  if (!parsed) {
    parsed.error().message = "network config is not JSON: " + parsed.error().message;
    return std::unexpected(std::move(parsed.error()));
  }
  const json& j = *parsed;
  if (!j.is_object()) {
    return fail(Error::Code::kInvalidInput, "network config is not a JSON object");
  }
  NetworkConfig c;
  if (const json* v = field(j, "EnableIPv4"); v != nullptr && v->is_boolean()) {
    c.enable_ipv4 = v->get<bool>();
  }
  if (const json* v = field(j, "EnableIPv6"); v != nullptr && v->is_boolean()) {
    c.enable_ipv6 = v->get<bool>();
  }
  auto net4 = cidrField(j, "Network", Family::kV4);
  if (!net4) return std::unexpected(net4.error());
  c.network = *net4;
  auto net6 = cidrField(j, "IPv6Network", Family::kV6);
  if (!net6) return std::unexpected(net6.error());
  c.ipv6_network = *net6;
  for (auto [name, out] :
       {std::pair{"SubnetLen", &c.subnet_len}, std::pair{"IPv6SubnetLen", &c.ipv6_subnet_len}}) {
    if (const json* v = field(j, name); v != nullptr && !v->is_null()) {
      if (!v->is_number_unsigned()) {
        return fail(Error::Code::kInvalidInput,
                    fmt::format("{}: not a length: {}", name, v->dump()));
      }
      *out = v->get<int>();
    }
  }
  auto min4 = addrField(j, "SubnetMin", Family::kV4);
  auto max4 = addrField(j, "SubnetMax", Family::kV4);
  auto min6 = addrField(j, "IPv6SubnetMin", Family::kV6);
  auto max6 = addrField(j, "IPv6SubnetMax", Family::kV6);
  for (const auto* r : {&min4, &max4, &min6, &max6}) {
    if (!*r) return std::unexpected(r->error());
  }
  if (c.enable_ipv4) {
    if (*min4) c.subnet_min = **min4;
    if (*max4) c.subnet_max = **max4;
    if (auto ok = checkFamily(Family::kV4, c.network, c.subnet_len, c.subnet_min, c.subnet_max,
                              min4->has_value(), max4->has_value());
        !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (c.enable_ipv6) {
    if (*min6) c.ipv6_subnet_min = **min6;
    if (*max6) c.ipv6_subnet_max = **max6;
    if (auto ok = checkFamily(Family::kV6, c.ipv6_network, c.ipv6_subnet_len, c.ipv6_subnet_min,
                              c.ipv6_subnet_max, min6->has_value(), max6->has_value());
        !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (const json* b = field(j, "Backend"); b != nullptr && !b->is_null()) {
    if (!b->is_object()) {
      return fail(Error::Code::kInvalidInput,
                  "error decoding Backend property of config: not an object");
    }
    c.backend_json = b->dump();
    c.backend_type = "";
    if (const json* t = field(*b, "Type"); t != nullptr && t->is_string()) {
      c.backend_type = t->get<std::string>();
    }
    if (const json* v = field(*b, "VNI"); v != nullptr && v->is_number_integer()) {
      c.vni = v->get<int>();
    }
    if (const json* v = field(*b, "Port"); v != nullptr && v->is_number_integer()) {
      c.port = v->get<int>();
    }
  }
  return c;
}

std::string LeaseAttrs::toJson() const {
  // Field for field as Flannel marshals lease.LeaseAttrs: PublicIPv6 is a pointer without
  // omitempty (null when absent), the rest omitempty.
  std::string out = fmt::format(R"({{"PublicIP":"{}","PublicIPv6":{})", formatAddr(public_ip),
                                public_ipv6 ? "\"" + formatAddr(*public_ipv6) + "\"" : "null");
  if (!backend_type.empty()) out += R"(,"BackendType":)" + json(backend_type).dump();
  if (!backend_data.empty()) out += R"(,"BackendData":)" + backend_data;
  if (!backend_v6_data.empty()) out += R"(,"BackendV6Data":)" + backend_v6_data;
  return out + "}";
}

std::expected<LeaseAttrs, Error> LeaseAttrs::fromJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return fail(Error::Code::kInvalidInput, "lease attributes are not a JSON object");
  }
  LeaseAttrs a;
  a.public_ip = Addr::fromV4(0);  // Go's zero ip.IP4, "0.0.0.0", when absent (an IPv6-only lease)
  auto ip = addrField(j, "PublicIP", Family::kV4);
  if (!ip) return std::unexpected(ip.error());
  if (*ip) a.public_ip = **ip;
  auto ip6 = addrField(j, "PublicIPv6", Family::kV6);
  if (!ip6) return std::unexpected(ip6.error());
  a.public_ipv6 = *ip6;
  if (const json* t = field(j, "BackendType"); t != nullptr && t->is_string()) {
    a.backend_type = t->get<std::string>();
  }
  if (const json* d = field(j, "BackendData"); d != nullptr && !d->is_null()) {
    a.backend_data = d->dump();
  }
  if (const json* d = field(j, "BackendV6Data"); d != nullptr && !d->is_null()) {
    a.backend_v6_data = d->dump();
  }
  return a;
}

std::string subnetKey(const std::optional<Cidr>& v4, const std::optional<Cidr>& v6) {
  std::string key = v4 ? fmt::format("{}-{}", formatAddr(v4->base), v4->prefix) : "0.0.0.0-0";
  if (v6) key += fmt::format("&{}-{}", formatAddr(v6->base), v6->prefix);
  return key;
}

std::string SubnetLease::key() const { return subnetKey(subnet, ipv6_subnet); }

bool parseSubnetKey(const std::string& key, std::optional<Cidr>& v4, std::optional<Cidr>& v6) {
  // (\d+\.\d+.\d+.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$ — the last path element.
  std::string name = key.substr(key.rfind('/') == std::string::npos ? 0 : key.rfind('/') + 1);
  std::string v6_part;
  if (auto amp = name.find('&'); amp != std::string::npos) {
    v6_part = name.substr(amp + 1);
    name.resize(amp);
  }
  auto one = [](const std::string& s, Family f) -> std::optional<Cidr> {
    auto dash = s.rfind('-');
    if (dash == std::string::npos) return std::nullopt;
    auto c = parseCidr(s.substr(0, dash) + "/" + s.substr(dash + 1));
    if (!c || c->cidr.family != f || c->host_bits_set) return std::nullopt;
    return c->cidr;
  };
  v4 = one(name, Family::kV4);
  if (!v4) return false;
  if (v4->prefix == 0 && v4->base == Addr::fromV4(0)) v4.reset();  // an IPv6-only lease
  v6.reset();
  if (!v6_part.empty()) {
    v6 = one(v6_part, Family::kV6);
    if (!v6) return false;
  }
  return v4 || v6;
}

EtcdSubnetManager::EtcdSubnetManager(EtcdEndpoint endpoint, std::string prefix,
                                     std::chrono::seconds ttl)
    : endpoint_(std::move(endpoint)), prefix_(std::move(prefix)), ttl_(ttl), etcd_(endpoint_) {
  while (prefix_.size() > 1 && prefix_.back() == '/') prefix_.pop_back();
}

std::expected<NetworkConfig, Error> EtcdSubnetManager::config() {
  auto kv = etcd_.get(prefix_ + "/config");
  if (!kv) return std::unexpected(kv.error());
  if (!*kv) {
    return fail(Error::Code::kNotFound, fmt::format("no network config at {}/config", prefix_));
  }
  auto c = parseNetworkConfig((*kv)->value);
  if (!c) {
    // Named by its etcd key as by a file: "/coreos.com/network/config:1:12: ...".
    Error err = c.error();
    if (err.loc.known()) {
      err.loc.file = prefix_ + "/config";
    } else {
      err.message = prefix_ + "/config: " + err.message;
    }
    return std::unexpected(std::move(err));
  }
  return c;
}

std::expected<std::pair<std::vector<SubnetLease>, std::int64_t>, Error>
EtcdSubnetManager::leases() {
  auto r = etcd_.range(prefix_ + "/subnets/");
  if (!r) return std::unexpected(r.error());
  std::vector<SubnetLease> out;
  for (const auto& kv : r->kvs) {
    SubnetLease l;
    auto attrs = LeaseAttrs::fromJson(kv.value);
    if (!parseSubnetKey(kv.key, l.subnet, l.ipv6_subnet) || !attrs) {
      spdlog::warn("ignoring bad subnet lease {}", kv.key);
      continue;
    }
    l.attrs = std::move(*attrs);
    l.etcd_lease = kv.lease;
    out.push_back(std::move(l));
  }
  return std::pair{std::move(out), r->revision};
}

std::expected<SubnetLease, Error> EtcdSubnetManager::write(const SubnetLease& lease, bool create) {
  auto granted = etcd_.grant(ttl_.count());
  if (!granted) return std::unexpected(granted.error());
  SubnetLease out = lease;
  out.etcd_lease = granted->id;
  out.expiration = std::chrono::system_clock::now() + std::chrono::seconds(granted->ttl);
  const std::string key = prefix_ + "/subnets/" + lease.key();
  if (create) {
    auto won = etcd_.createIfAbsent(key, lease.attrs.toJson(), granted->id);
    if (!won || !*won) {
      (void)etcd_.revoke(granted->id);
      if (!won) return std::unexpected(won.error());
      return fail(Error::Code::kConflict, fmt::format("{} is taken", lease.key()));
    }
  } else if (auto put = etcd_.put(key, lease.attrs.toJson(), granted->id); !put) {
    (void)etcd_.revoke(granted->id);
    return std::unexpected(put.error());
  }
  return out;
}

std::expected<SubnetLease, Error> EtcdSubnetManager::acquire(const NetworkConfig& config,
                                                             const LeaseAttrs& attrs,
                                                             const std::optional<Cidr>& previous) {
  for (int attempt = 0; attempt < kRaceRetries; ++attempt) {
    auto listed = leases();
    if (!listed) return std::unexpected(listed.error());
    std::vector<SubnetLease>& all = listed->first;
    // This node's own lease (same PublicIP): take it back.
    auto mine = std::find_if(all.begin(), all.end(), [&](const SubnetLease& l) {
      return l.attrs.public_ip == attrs.public_ip;
    });
    if (mine != all.end()) {
      if (compatible(config, *mine)) {
        SubnetLease want = *mine;
        want.attrs = attrs;
        auto renewed = write(want, false);
        if (renewed && mine->etcd_lease != 0) (void)etcd_.revoke(mine->etcd_lease);
        return renewed;
      }
      spdlog::info("lease {} of this node's address does not fit the network config: deleting",
                   mine->key());
      if (auto d = etcd_.del(prefix_ + "/subnets/" + mine->key()); !d) {
        return std::unexpected(d.error());
      }
      all.erase(mine);
    }
    SubnetLease want;
    want.attrs = attrs;
    std::vector<const Cidr*> taken4;
    std::vector<const Cidr*> taken6;
    for (const SubnetLease& l : all) {
      taken4.push_back(l.subnet ? &*l.subnet : nullptr);
      taken6.push_back(l.ipv6_subnet ? &*l.ipv6_subnet : nullptr);
    }
    if (previous && previous->family == Family::kV4 && config.enable_ipv4 &&
        std::none_of(taken4.begin(), taken4.end(),
                     [&](const Cidr* t) { return t != nullptr && *t == *previous; })) {
      SubnetLease probe;
      probe.subnet = previous;
      if (compatible(config, probe) || !config.enable_ipv6) {
        want.subnet = previous;
      }
    }
    if (config.enable_ipv4 && !want.subnet) {
      want.subnet =
          pickFree(Family::kV4, config.subnet_min, config.subnet_max, config.subnet_len, taken4);
      if (!want.subnet) return fail(Error::Code::kExhausted, "out of subnets");
    }
    if (config.enable_ipv6) {
      want.ipv6_subnet = pickFree(Family::kV6, config.ipv6_subnet_min, config.ipv6_subnet_max,
                                  config.ipv6_subnet_len, taken6);
      if (!want.ipv6_subnet) return fail(Error::Code::kExhausted, "out of subnets");
    }
    auto claimed = write(want, true);
    if (claimed) return claimed;
    if (claimed.error().code != Error::Code::kConflict) return claimed;
    // Another node won this subnet: list again and retry.
  }
  return fail(Error::Code::kConflict, "max retries reached trying to acquire a subnet");
}

std::expected<void, Error> EtcdSubnetManager::renew(SubnetLease& lease) {
  auto renewed = write(lease, false);
  if (!renewed) return std::unexpected(renewed.error());
  if (lease.etcd_lease != 0) (void)etcd_.revoke(lease.etcd_lease);  // the key moved off it
  lease = std::move(*renewed);
  return {};
}

std::expected<bool, Error> EtcdSubnetManager::stillHeld(const SubnetLease& lease) {
  auto kv = etcd_.get(prefix_ + "/subnets/" + lease.key());
  if (!kv) return std::unexpected(kv.error());
  return kv->has_value() && (*kv)->lease == lease.etcd_lease;
}

std::expected<void, Error> EtcdSubnetManager::release(const SubnetLease& lease) {
  if (auto d = etcd_.del(prefix_ + "/subnets/" + lease.key()); !d) return d;
  if (lease.etcd_lease != 0) (void)etcd_.revoke(lease.etcd_lease);
  return {};
}

std::expected<std::int64_t, Error> EtcdSubnetManager::watch(
    std::int64_t revision, const std::function<bool(const SubnetLease&, bool removed)>& on_change,
    const std::atomic<bool>& stop) {
  return etcd_.watch(
      prefix_ + "/subnets/", revision,
      [&](const EtcdClient::WatchEvent& ev) {
        SubnetLease l;
        if (!parseSubnetKey(ev.kv.key, l.subnet, l.ipv6_subnet)) return true;
        l.etcd_lease = ev.kv.lease;
        if (!ev.kv.value.empty()) {
          if (auto a = LeaseAttrs::fromJson(ev.kv.value)) l.attrs = std::move(*a);
        }
        return on_change(l, ev.deleted);
      },
      stop);
}

void EtcdSubnetManager::follow(
    const std::function<void(const std::vector<SubnetLease>&)>& on_leases,
    const std::atomic<bool>& stop) {
  using namespace std::chrono_literals;
  EtcdSubnetManager own(endpoint_, prefix_, ttl_);  // this thread's connection
  std::map<std::string, SubnetLease> known;
  auto deliver = [&] {
    std::vector<SubnetLease> all;
    all.reserve(known.size());
    for (const auto& [key, l] : known) all.push_back(l);
    on_leases(all);
  };
  auto pause = [&](std::chrono::milliseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (!stop && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(50ms);
  };
  std::int64_t revision = 0;
  while (!stop) {
    if (revision == 0) {
      // (Re)list: the whole set, then watch from just after it.
      auto listed = own.leases();
      if (!listed) {
        spdlog::warn("leases: {} (retrying)", listed.error().str());
        pause(2s);
        continue;
      }
      known.clear();
      for (SubnetLease& l : listed->first) known[l.key()] = std::move(l);
      deliver();
      revision = listed->second + 1;
    }
    auto next = own.watch(
        revision,
        [&](const SubnetLease& l, bool removed) {
          if (removed) {
            known.erase(l.key());
          } else {
            known[l.key()] = l;
          }
          deliver();
          return !stop;
        },
        stop);
    if (!next || *next == EtcdClient::kCompacted) {
      if (!next && !stop) spdlog::warn("lease watch: {} (retrying)", next.error().str());
      revision = 0;
      pause(2s);
      continue;
    }
    revision = *next;
  }
}

std::expected<void, Error> writeSubnetEnv(const std::string& path, const NetworkConfig& config,
                                          const SubnetLease& lease, int mtu, bool ip_masq) {
  std::string text;
  // FLANNEL_SUBNET is the subnet's first host address with its length (WriteSubnetFile).
  if (config.enable_ipv4 && lease.subnet) {
    text += fmt::format("FLANNEL_NETWORK={}\nFLANNEL_SUBNET={}/{}\n", config.network.str(),
                        formatAddr(plus(lease.subnet->base, 1)), lease.subnet->prefix);
  }
  if (config.enable_ipv6 && lease.ipv6_subnet) {
    text += fmt::format("FLANNEL_IPV6_NETWORK={}\nFLANNEL_IPV6_SUBNET={}/{}\n",
                        config.ipv6_network.str(), formatAddr(plus(lease.ipv6_subnet->base, 1)),
                        lease.ipv6_subnet->prefix);
  }
  text += fmt::format("FLANNEL_MTU={}\nFLANNEL_IPMASQ={}\n", mtu, ip_masq ? "true" : "false");
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return fail(Error::Code::kIo, fmt::format("cannot write {}", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return fail(Error::Code::kIo, fmt::format("cannot rename {} to {}", tmp, path));
  }
  return {};
}

std::optional<Cidr> previousSubnet(const std::string& subnet_env_path) {
  std::ifstream in(subnet_env_path);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("FLANNEL_SUBNET=")) {
      auto c = parseCidr(line.substr(std::string_view("FLANNEL_SUBNET=").size()));
      if (c) return c->cidr;  // masked: the subnet, not its first address
    }
  }
  return std::nullopt;
}

}  // namespace zonewall::agent
