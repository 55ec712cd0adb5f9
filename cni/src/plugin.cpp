#include "zonewall/cni/plugin.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "files.h"
#include "policy_wait.h"
#include "zonewall/base/host_veth.h"
#include "zonewall/cni/endpoint.h"
#include "zonewall/cni/ipam.h"
#include "zonewall/cni/veth.h"

namespace zonewall::cni {

using nlohmann::json;
using zonewall::Addr;

namespace {

constexpr int kDefaultMtu = 1500;

Reservation ownerOf(const Environment& env) {
  return Reservation{.container_id = env.container_id,
                     .ifname = env.ifname,
                     .pod_namespace = env.args.pod_namespace,
                     .pod_name = env.args.pod_name,
                     .host_veth = hostVethFor(env)};
}

Expected<json> cmdAdd(const Environment& env, const NetConf& conf) {
  auto serialized = AttachmentLock::take(conf.data_dir, conf.name, env.container_id, env.ifname);
  if (!serialized) return std::unexpected(serialized.error());
  auto netns = Netns::open(env.netns);
  if (!netns) return std::unexpected(netns.error());
  auto node = resolveSubnets(conf);
  if (!node) return std::unexpected(node.error());
  int mtu = conf.mtu > 0 ? conf.mtu : (node->mtu > 0 ? node->mtu : kDefaultMtu);

  Reservation owner = ownerOf(env);
  std::vector<Reservation> reserved;
  {
    auto pool = AddressPool::open(conf.data_dir, conf.name);
    if (!pool) return std::unexpected(pool.error());
    // Reads the reserved names only, never the files: ADD costs the same with 200 pods as
    // with one. A killed ADD's reservation is released by the DEL the runtime sends after it,
    // or by GC.
    auto got = pool->allocate(node->subnets, owner);
    if (!got) return std::unexpected(got.error());
    reserved = std::move(*got);
  }  // the lock is held for the allocation only; veths are made in parallel
  auto releaseAll = [&] {
    if (auto pool = AddressPool::open(conf.data_dir, conf.name)) {
      for (const Reservation& r : reserved) (void)pool->release(r.address);
    }
  };

  VethSpec spec{.network = conf.name,
                .container_id = env.container_id,
                .ifname = env.ifname,
                .host_veth = owner.host_veth,
                .mtu = mtu};
  for (const Reservation& r : reserved) spec.addresses.push_back(r.address);
  auto veth = setupVeth(*netns, spec);
  if (!veth) {
    releaseAll();
    return std::unexpected(veth.error());
  }
  EndpointRecord record{.network = conf.name,
                        .container_id = env.container_id,
                        .ifname = env.ifname,
                        .pod_namespace = env.args.pod_namespace,
                        .pod_name = env.args.pod_name,
                        .netns = env.netns,
                        .host_veth = owner.host_veth,
                        .ips = spec.addresses};
  if (auto ok = writeEndpoint(conf.endpoints_dir, record); !ok) {
    (void)removeVeth(spec.host_veth, hostVethAlias(conf.name, env.container_id, env.ifname));
    releaseAll();
    return std::unexpected(ok.error());
  }

  // The pod's first packet must find its rules: wait for the node agent's commit (bounded).
  // A wait that ends otherwise is not an error (Calico's policy_setup_timeout behaves so):
  // the pod is fail-closed until the agent catches up, never open.
  if (conf.policy_setup_timeout > 0) {
    PolicyWait w = waitForPolicy(conf.policy_wait_socket, spec.host_veth, spec.addresses,
                                 conf.policy_setup_timeout);
    if (w == PolicyWait::kTimedOut || w == PolicyWait::kFailed) {
      std::fprintf(stderr,
                   "zonewall-cni: the node agent did not confirm %s's rules within %.1f s "
                   "(%s); its traffic is dropped until it does\n",
                   spec.host_veth.c_str(), conf.policy_setup_timeout,
                   w == PolicyWait::kTimedOut ? "timed out" : "connection lost");
    }
  }

  Result result;
  result.interfaces.push_back({.name = spec.host_veth, .mac = veth->host_mac, .mtu = mtu});
  result.interfaces.push_back(
      {.name = env.ifname, .mac = veth->pod_mac, .sandbox = env.netns, .mtu = mtu});
  for (Addr a : spec.addresses) {
    bool v4 = a.family() == zonewall::Family::kV4;
    result.ips.push_back({.interface = 1, .address = a, .prefix = v4 ? 32 : 128});
    if (std::ranges::find(veth->default_routes, a.family()) != veth->default_routes.end()) {
      result.routes.push_back(
          {std::string(v4 ? "0.0.0.0/0" : "::/0"), std::string(v4 ? kGatewayV4 : kGatewayV6)});
    }
  }
  result.dns = conf.dns.is_object() ? conf.dns : json::object();
  json out = resultToJson(result, conf.cni_version);
  if (conf.prev_result) out = mergeResultJson(*conf.prev_result, std::move(out));
  return out;
}

Expected<void> cmdDel(const Environment& env, const NetConf& conf) {
  auto serialized = AttachmentLock::take(conf.data_dir, conf.name, env.container_id, env.ifname);
  if (!serialized) return std::unexpected(serialized.error());
  auto pool = AddressPool::open(conf.data_dir, conf.name);
  if (!pool) return std::unexpected(pool.error());
  std::vector<Reservation> owned = pool->ownedBy(env.container_id, env.ifname);

  // Every name this attachment's host veth may have; the alias check makes each safe to try.
  std::set<std::string> names{hostVethFor(env)};
  for (const Reservation& r : owned) {
    if (!r.host_veth.empty()) names.insert(r.host_veth);
  }
  if (conf.prev_result) {
    if (auto prev = resultFromJson(*conf.prev_result)) {
      for (const Interface& i : prev->interfaces) {
        if (i.sandbox.empty() && isValidIfname(i.name)) names.insert(i.name);
      }
    }
  }
  std::string alias = hostVethAlias(conf.name, env.container_id, env.ifname);
  for (const std::string& name : names) {
    if (auto ok = removeVeth(name, alias); !ok) return ok;
  }
  for (const Reservation& r : owned) {
    if (auto ok = pool->release(r.address); !ok) return ok;
  }
  return removeEndpoint(conf.endpoints_dir, conf.name, env.container_id, env.ifname);
}

Expected<void> cmdCheck(const Environment& env, const NetConf& conf) {
  if (conf.disable_check) return {};
  if (!conf.prev_result)
    return fail(ErrorCode::kInvalidConfig, "CHECK needs prevResult (the result of ADD)");
  auto prev = resultFromJson(*conf.prev_result);
  if (!prev) return std::unexpected(prev.error());
  auto serialized = AttachmentLock::take(conf.data_dir, conf.name, env.container_id, env.ifname);
  if (!serialized) return std::unexpected(serialized.error());
  auto netns = Netns::open(env.netns);
  if (!netns) return std::unexpected(netns.error());

  auto ours = std::ranges::find_if(prev->interfaces, [&](const Interface& i) {
    return !i.sandbox.empty() && i.name == env.ifname;
  });
  if (ours == prev->interfaces.end()) {
    return fail(ErrorCode::kCheckFailed,
                fmt::format("prevResult has no interface {} in a sandbox", env.ifname));
  }
  int index = static_cast<int>(ours - prev->interfaces.begin());
  VethSpec spec{.network = conf.name,
                .container_id = env.container_id,
                .ifname = env.ifname,
                .host_veth = hostVethFor(env)};
  for (const IpConfig& ip : prev->ips) {
    if (ip.interface == index) spec.addresses.push_back(ip.address);
  }
  if (spec.addresses.empty()) {
    return fail(ErrorCode::kCheckFailed,
                fmt::format("prevResult has no address on {}", env.ifname));
  }
  {
    auto pool = AddressPool::open(conf.data_dir, conf.name);
    if (!pool) return std::unexpected(pool.error());
    std::vector<Reservation> owned = pool->ownedBy(env.container_id, env.ifname);
    for (Addr a : spec.addresses) {
      if (std::ranges::find(owned, a, &Reservation::address) == owned.end()) {
        return fail(ErrorCode::kCheckFailed,
                    fmt::format("{} is not reserved for container {} {}", zonewall::formatAddr(a),
                                env.container_id, env.ifname));
      }
    }
  }
  return checkVeth(*netns, spec, *prev);
}

Expected<void> cmdGc(const NetConf& conf) {
  const std::vector<Attachment>& valid = *conf.attachments;
  auto isValid = [&](std::string_view cid, std::string_view ifname) {
    return std::ranges::binary_search(valid, Attachment{std::string(cid), std::string(ifname)});
  };
  auto pool = AddressPool::open(conf.data_dir, conf.name);
  if (!pool) return std::unexpected(pool.error());
  auto veths = listHostVeths(conf.name);
  if (!veths) return std::unexpected(veths.error());
  for (const auto& [name, alias] : *veths) {
    // alias: "zonewall <network> <containerID> <ifname>"
    auto last = alias.rfind(' ');
    auto mid = alias.rfind(' ', last - 1);
    if (isValid(alias.substr(mid + 1, last - mid - 1), alias.substr(last + 1))) continue;
    if (auto ok = removeVeth(name, alias); !ok) return ok;
  }
  for (const Reservation& r : pool->list()) {
    if (isValid(r.container_id, r.ifname)) continue;
    if (auto ok = pool->release(r.address); !ok) return ok;
  }
  for (const EndpointRecord& rec : readEndpoints(conf.endpoints_dir)) {
    if (rec.network != conf.name || isValid(rec.container_id, rec.ifname)) continue;
    if (auto ok = removeEndpoint(conf.endpoints_dir, rec.network, rec.container_id, rec.ifname);
        !ok)
      return ok;
  }
  removeStaleTemporaries(conf.endpoints_dir);
  return {};
}

Expected<void> cmdStatus(const NetConf& conf) {
  auto node = resolveSubnets(conf);
  if (!node) return fail(ErrorCode::kNotAvailable, node.error().msg, node.error().details);
  auto pool = AddressPool::open(conf.data_dir, conf.name);
  if (!pool) return fail(ErrorCode::kNotAvailable, pool.error().msg);
  for (const zonewall::Cidr& subnet : node->subnets) {
    if (pool->freeCount(subnet) == 0) {
      return fail(ErrorCode::kNotAvailable, fmt::format("no address left in {}", subnet.str()));
    }
  }
  return {};
}

Outcome errorOutcome(const Error& e, std::string_view stdin_bytes) {
  return {1, jsonText(errorToJson(e, versionForReply(stdin_bytes))) + "\n"};
}

}  // namespace

std::string hostVethFor(const Environment& env) {
  const CniArgs& a = env.args;
  if (!a.pod_namespace.empty() && !a.pod_name.empty()) {
    return env.ifname == "eth0"
               ? zonewall::hostVethName(a.pod_namespace, a.pod_name)
               : zonewall::hostVethName(a.pod_namespace, a.pod_name + "/" + env.ifname);
  }
  return zonewall::hostVethName(env.container_id, env.ifname);
}

Outcome runPlugin(const std::map<std::string, std::string>& env_vars,
                  std::string_view stdin_bytes) {
  auto env = parseEnvironment(env_vars);
  if (!env) return errorOutcome(env.error(), stdin_bytes);
  if (env->command == Command::kVersion) {
    return {0, jsonText(versionReply(versionForReply(stdin_bytes))) + "\n"};
  }
  auto conf = parseNetConf(stdin_bytes, env->command);
  if (!conf) return errorOutcome(conf.error(), stdin_bytes);

  Expected<void> done;
  switch (env->command) {
    case Command::kAdd: {
      auto result = cmdAdd(*env, *conf);
      if (!result) return errorOutcome(result.error(), stdin_bytes);
      return {0, jsonText(*result) + "\n"};
    }
    case Command::kDel:
      done = cmdDel(*env, *conf);
      break;
    case Command::kCheck:
      done = cmdCheck(*env, *conf);
      break;
    case Command::kGc:
      done = cmdGc(*conf);
      break;
    case Command::kStatus:
      done = cmdStatus(*conf);
      break;
    case Command::kVersion:
      break;
  }
  if (!done) return errorOutcome(done.error(), stdin_bytes);
  return {0, ""};
}

}  // namespace zonewall::cni
