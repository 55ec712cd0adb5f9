#!/usr/bin/env bash
# `make demo`: the main job on the embedded example, a small bank cluster (examples/bank):
# lint it, print its reachability matrix, explain connections denied and allowed by Calico's
# security tier, a NetworkPolicy, the AdminNetworkPolicy and the baseline; review a policy
# change (diff), check the bank's zone contract, walk the lateral paths to the vault and draw
# the zone graph; then,
# as root, build its two nodes in network namespaces, where zonewall-agent leases each node's
# subnet in etcd, runs the vxlan overlay between them and enforces the policies, and show the
# matrix measured with real packets across the tunnel next to the compiler's, before and after
# a policy change (scripts/live-demo.sh; it removes everything it creates).
set -euo pipefail
build=${1:-build}
zw="$build/tools/zonewall"
ex=examples/bank

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "zonewall lint $ex"
"$zw" lint "$ex"

for port in 8080 5432; do
  step "zonewall matrix $ex --port $port"
  "$zw" matrix "$ex" --port "$port"
done

step "why can batch not reach the ledger's database?"
"$zw" explain "$ex" --from internal/batch --to secure/ledger --port 5432/TCP

step "and why can the API?"
"$zw" explain "$ex" --from internal/api-1 --to secure/ledger --port 5432/TCP

step "the security tier lets the API through to the secure zone; why can it not reach the vault?"
"$zw" explain "$ex" --from internal/api-1 --to secure/vault --port 8200/TCP

step "batch has no NetworkPolicy of its own: the cluster baseline decides"
"$zw" explain "$ex" --from internal/api-1 --to internal/batch --port 8081/TCP

step "review a pull request: what does the ledger-batch change (examples/bank-change) do?"
"$zw" diff "$ex" --to "$ex/inventory" "$ex/kubernetes" examples/bank-change \
  --contract examples/contracts/bank.yaml

step "does the bank keep the promises its security team made? (examples/contracts/bank.yaml)"
"$zw" check "$ex" --contract examples/contracts/bank.yaml

step "how could an attacker who owns the web tier walk to the vault? (lateral paths, smallest cut)"
"$zw" paths "$ex" --contract examples/contracts/bank.yaml --from public --to vault

"$zw" graph "$ex" --group zone --contract examples/contracts/bank.yaml --format svg > "$build/bank-zones.svg"
"$zw" graph "$ex" --format svg > "$build/bank-classes.svg"
step "the zone graph: $build/bank-zones.svg, by class: $build/bank-classes.svg"
"$zw" graph "$ex" --group namespace

step "node-a's table: $("$zw" compile "$ex" --node node-a --format json | jq -c .counts)"
if command -v nft >/dev/null && [ "$(id -u)" -eq 0 ]; then
  "$zw" compile "$ex" --node node-a > "$build/node-a.nft"
  nft -c -f "$build/node-a.nft" && echo "nft -c accepts node-a's ruleset ($(wc -l < "$build/node-a.nft") lines, $build/node-a.nft)"
fi

if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null && [ -x "$build/tests/zw_probe" ]; then
  ./scripts/live-demo.sh "$build"
else
  echo
  echo "(the live part needs root, iproute2 and the test build: skipped)"
fi
