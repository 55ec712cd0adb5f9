#!/usr/bin/env bash
# The live part of `make demo` (root): the bank example's two nodes as network namespaces,
# joined by an underlay veth, with etcd (Debian's etcd-server) on node-a as Flannel's datastore.
# zonewall-agent runs on each node: it leases the node's pod subnet in Flannel's etcd layout,
# brings up the vxlan overlay (flannel.1) to the other node, and enforces the policies of a
# watched copy of the example. Every pod gets its own namespace wired by zonewall-cni (a routed
# veth, DESIGN.md's CNI recipe); the reachability is measured with real TCP packets across the
# tunnel next to the compiler's matrix. Then a policy file changes, and the script measures how
# long it took until a packet was judged by the new policy, and shows the agent's log and metrics.
# Everything it creates is removed on exit, whatever happens.
set -euo pipefail
build=${1:-build}
zw="$build/tools/zonewall"
cni="$build/cni/zonewall-cni"
probe="$build/tests/zw_probe"
ex=examples/bank
tag="zwdemo$$"
work=$(mktemp -d)
created=()

cleanup() {
  for ns in "${created[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

nsadd() { ip netns add "$1"; created+=("$1"); ip -n "$1" link set lo up; }

# Nodes and the underlay between them (10.99.0.1 <-> 10.99.0.2).
declare -A node_ns=([node-a]="${tag}a" [node-b]="${tag}b")
declare -A underlay=([node-a]=10.99.0.1 [node-b]=10.99.0.2)
for node in node-a node-b; do
  nsadd "${node_ns[$node]}"
  ip netns exec "${node_ns[$node]}" sysctl -qw net.ipv4.ip_forward=1
done
ip -n "${node_ns[node-a]}" link add ul0 type veth peer name ul0 netns "${node_ns[node-b]}"
for node in node-a node-b; do
  ip -n "${node_ns[$node]}" addr add "${underlay[$node]}/24" dev ul0
  ip -n "${node_ns[$node]}" link set ul0 up
done
# A default route on each node (over the underlay): proxy ARP only answers for addresses the
# node can route, the pods' gateway 169.254.1.1 among them.
ip -n "${node_ns[node-a]}" route add default via "${underlay[node-b]}"
ip -n "${node_ns[node-b]}" route add default via "${underlay[node-a]}"

# Flannel's datastore: etcd on node-a's underlay address, the network config in it. The
# example's pods live in 10.244.0.0/24 (node-a) and 10.244.1.0/24 (node-b): the network has
# room for exactly those two subnets.
etcd_url="http://${underlay[node-a]}:2379"
ip netns exec "${node_ns[node-a]}" etcd --name demo --data-dir "$work/etcd" \
  --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
  --listen-peer-urls "http://127.0.0.1:2380" --initial-advertise-peer-urls "http://127.0.0.1:2380" \
  --initial-cluster "demo=http://127.0.0.1:2380" >"$work/etcd.log" 2>&1 &
etcdput() {  # key value, through etcd's v3 JSON gateway
  ip netns exec "${node_ns[node-a]}" curl -sf -X POST "$etcd_url/v3/kv/put" \
    -d "{\"key\":\"$(printf %s "$1" | base64 -w0)\",\"value\":\"$(printf %s "$2" | base64 -w0)\"}" >/dev/null
}
for _ in $(seq 1 100); do etcdput /coreos.com/network/config \
  '{"Network": "10.244.0.0/16", "SubnetMin": "10.244.0.0", "SubnetMax": "10.244.1.0", "Backend": {"Type": "vxlan"}}' \
  && break; sleep 0.1; done

# zonewall-agent on each node, as its DaemonSet runs it: the etcd subnet manager and the vxlan
# backend for the pod network, a directory source (a copy of the example) for the policies. Each
# node's old subnet.env names the subnet its pods were given, which its agent takes back.
printf '\n\033[1m== zonewall-agent on each node: subnet leases in etcd, vxlan overlay, policies from a watched directory\033[0m\n'
agent="$build/tools/zonewall-agent"
cp -r "$ex" "$work/bank"
declare -A agent_pid
declare -A node_subnet=([node-a]=10.244.0 [node-b]=10.244.1)
for node in node-a node-b; do
  mkdir -p "$work/endpoints-$node"
  echo "FLANNEL_SUBNET=${node_subnet[$node]}.1/24" > "$work/subnet-$node.env"
  ip netns exec "${node_ns[$node]}" "$agent" --node "$node" --policy-dir "$work/bank" \
    --endpoints-dir "$work/endpoints-$node" --policy-wait-socket "$work/agent-$node.sock" \
    --metrics 127.0.0.1:9402 --subnet-manager etcd --etcd-endpoints "$etcd_url" --iface ul0 \
    --subnet-file "$work/subnet-$node.env" >"$work/agent-$node.log" 2>&1 &
  agent_pid[$node]=$!
done
for node in node-a node-b; do
  other=node-b; [ "$node" = node-b ] && other=node-a
  for _ in $(seq 1 100); do
    grep -q "ready:" "$work/agent-$node.log" &&
      ip -n "${node_ns[$node]}" route show dev flannel.1 | grep -q "${node_subnet[$other]}.0/24" && break
    sleep 0.1
  done
  echo "--- $node"; sed 's/^/  /' "$work/agent-$node.log"
  echo "  subnet.env: $(paste -sd ' ' "$work/subnet-$node.env")"
  echo "  ip route show dev flannel.1: $(ip -n "${node_ns[$node]}" route show dev flannel.1 | paste -sd ';')"
done
echo "leases in etcd (Flannel's layout, one key per node, bound to an etcd lease):"
ip netns exec "${node_ns[node-a]}" curl -sf -X POST "$etcd_url/v3/kv/range" \
  -d "{\"key\":\"$(printf /coreos.com/network/subnets/ | base64 -w0)\",\"range_end\":\"$(printf /coreos.com/network/subnets0 | base64 -w0)\"}" |
  jq -r '.kvs[] | "  \(.key | @base64d) = \(.value | @base64d)"'

# Pods: "ns/name node ip", from the inventory.
mapfile -t pods < <("$zw" inventory "$ex")
i=0
for line in "${pods[@]}"; do
  read -r key node ip host <<< "$line"
  ip=${ip%%,*}
  pns="${tag}p$i"
  nsadd "$pns"
  nodens=${node_ns[$node]}
  # The CNI plugin wires the pod, as kubelet's runtime would call it. The inventory fixes each
  # pod's address, so each ADD gets a one-address subnet: the plugin hands out exactly that.
  conf="{\"cniVersion\":\"1.1.0\",\"name\":\"zwdemo\",\"type\":\"zonewall\",
         \"ipam\":{\"subnet\":\"$ip/32\",\"dataDir\":\"$work/ipam-$node\"},
         \"endpointsDir\":\"$work/endpoints-$node\",
         \"policyWaitSocket\":\"$work/agent-$node.sock\",\"policySetupTimeout\":10}"
  result=$(echo "$conf" | nsenter --net="/run/netns/$nodens" env CNI_COMMAND=ADD CNI_CONTAINERID="$pns" \
    CNI_NETNS="/run/netns/$pns" CNI_IFNAME=eth0 CNI_PATH="$(dirname "$cni")" \
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=${key%%/*};K8S_POD_NAME=${key#*/}" "$cni") \
    || { echo "zonewall-cni ADD $key failed: $result" >&2; exit 1; }
  # The host veth the plugin made is the one the dataplane's anti-spoofing expects.
  echo "$result" | grep -q "\"name\":\"$host\"" || { echo "unexpected host veth for $key: $result" >&2; exit 1; }
  ip netns exec "$pns" "$probe" serve 8080 5432 9090 >/dev/null &
  echo "$key $ip $pns" >> "$work/pods"
  i=$((i + 1))
done
sleep 0.4

measure() {  # port → prints "from to allowed" lines measured with real packets
  local port=$1
  while read -r key ip pns; do
    targets=()
    while read -r k2 ip2 _; do [ "$k2" != "$key" ] && targets+=("$ip2:$port/TCP"); done < "$work/pods"
    ip netns exec "$pns" "$probe" probe 400 "${targets[@]}" | while read -r t verdict; do
      to=$(awk -v ip="${t%%:*}" '$2 == ip {print $1}' "$work/pods")
      echo "$key $to $([ "$verdict" = ok ] && echo true || echo false)"
    done &
  done < "$work/pods"
  wait
}

compare() {  # dir port title
  local dir=$1 port=$2
  "$zw" matrix "$dir" --port "$port" --format json |
    jq -r '.results[] | select(.from != .to) | "\(.from) \(.to) \(.allowed)"' | sort > "$work/compiled"
  measure "$port" | sort > "$work/measured"
  printf '%-24s %-24s %-9s %-9s\n' from to compiled measured
  join -j1 <(awk '{print $1"->"$2, $3}' "$work/compiled") <(awk '{print $1"->"$2, $3}' "$work/measured") |
    awk '{split($1, p, "->"); printf "%-24s %-24s %-9s %-9s %s\n", p[1], p[2], $2 == "true" ? "allow" : "DENY", $3 == "true" ? "allow" : "DENY", $2 == $3 ? "" : "  <-- MISMATCH"}' |
    grep -v '^$' > "$work/table"
  grep -E 'DENY|allow' "$work/table" | awk '$3 != $4 || $3 == "allow"' | head -40
  if diff -q "$work/compiled" "$work/measured" >/dev/null; then
    echo "=> real packets agree with the compiler on all $(wc -l < "$work/compiled") pairs (port $port)"
  else
    echo "=> MISMATCH between compiler and kernel"; return 1
  fi
}

printf '\n\033[1m== live: two nodes, %d pods in network namespaces wired by zonewall-cni (each ADD waits for its node agent'"'"'s commit)\033[0m\n' "${#pods[@]}"
for node in node-a node-b; do
  printf '%s: ' "$node"
  jq -r '"\(.namespace)/\(.pod) \(.ips[0]) on \(.hostVeth)"' "$work/endpoints-$node"/*.json | paste -sd ',' | sed 's/,/, /g'
done
printf '\n\033[1m== allowed pairs on 5432/TCP, compiled vs measured with real packets (across the tunnel)\033[0m\n'
compare "$ex" 5432

printf '\n\033[1m== change: the ledger now also accepts batch jobs (security tier + admin policy + its NetworkPolicy)\033[0m\n'
batch_ns=$(awk '$1 == "internal/batch" {print $3}' "$work/pods")
ledger_ip=$(awk '$1 == "secure/ledger" {print $2}' "$work/pods")
before=$(ip netns exec "$batch_ns" "$probe" probe 300 "$ledger_ip:5432/TCP")
echo "before: batch -> ledger:5432 ${before##* }"
# The change is examples/bank-change (what `zonewall diff` reviews in the demo): the security
# tier's isolation and the AdminNetworkPolicy name batch beside the API, and the secure team's
# NetworkPolicy lets batch in.
cp examples/bank-change/kubernetes/ledger-batch.yaml "$work/ledger-batch.yaml"
cp examples/bank-change/calico/tiers.yaml "$work/tiers.yaml"
cp examples/bank-change/admin/cluster-admin.yaml "$work/cluster-admin.yaml"
# Three edits, as an operator's tool writes them (each file renamed into place).
t0=$(date +%s%N)
mv "$work/tiers.yaml" "$work/bank/calico/tiers.yaml"
mv "$work/cluster-admin.yaml" "$work/bank/admin/cluster-admin.yaml"
mv "$work/ledger-batch.yaml" "$work/bank/kubernetes/ledger-batch.yaml"
until ip netns exec "$batch_ns" "$probe" probe 20 "$ledger_ip:5432/TCP" | grep -q ' ok$'; do
  [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 5000 ] || { echo "not enforced after 5 s"; exit 1; }
done
t1=$(date +%s%N)
echo "after:  batch -> ledger:5432 ok, first passed $(( (t1 - t0) / 1000 )) us after the files were written"
echo "node-a's agent:"; tail -n +"$(grep -n 'ready:' "$work/agent-node-a.log" | cut -d: -f1)" \
  "$work/agent-node-a.log" | tail -n +2 | sed 's/^/  /'
compare "$work/bank" 5432

printf '\n\033[1m== node-a metrics (curl 127.0.0.1:9402/metrics, excerpt)\033[0m\n'
ip netns exec "${node_ns[node-a]}" curl -s 127.0.0.1:9402/metrics |
  grep -E '^zonewall_(commits_total|event_to_kernel_seconds_(sum|count)|table_entries|local_endpoints|objects_rejected)' |
  sed 's/^/  /'
echo "  readyz: $(ip netns exec "${node_ns[node-a]}" curl -s 127.0.0.1:9402/readyz)"
for node in node-a node-b; do kill "${agent_pid[$node]}" 2>/dev/null || true; done
wait "${agent_pid[node-a]}" "${agent_pid[node-b]}" 2>/dev/null || true
printf '\n(namespaces, links, servers and agents are removed on exit)\n'
