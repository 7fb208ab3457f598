#!/usr/bin/env bash
# make demo: the 2-regions example (a core release and two region releases
# from per-region overlays) on its own kind cluster, an FRR router in each
# region, then the BGP sessions of every route reflector and what crossed
# the region boundaries. DEMO_TEARDOWN=1 deletes everything at the end.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$here/../.." && pwd)
export CLUSTER=${CLUSTER:-meshrr-demo}
export PATH=$KIND_WORK/bin:$PATH
"$here/cluster.sh" up
"$here/cluster.sh" load "${AGENT_IMAGE:-meshrr/agent:dev}" "${BIRD_IMAGE:-meshrr/bird:dev}"
export KUBECONFIG=$KIND_WORK/kubeconfig-$CLUSTER
routers=$(docker network inspect kind -f '{{range .IPAM.Config}}{{println .Subnet}}{{end}}' | grep -m1 -v :)
ex=$root/examples/2regions-hrr

log "installing core, lothlorien and mirkwood (routers connect from $routers)"
for ns in core lothlorien mirkwood; do kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null; done
helm upgrade --install core "$root/charts/meshrr" -n core -f "$ex/values-core.yaml" --wait --timeout 300s >/dev/null
for region in lothlorien mirkwood; do
  helm upgrade --install "$region" "$root/charts/meshrr" -n "$region" -f "$ex/values.yaml" -f "$ex/values-$region.yaml" \
    --set "groups.$region.clients.routers.ranges[0]=$routers" --wait --timeout 300s >/dev/null
done
log "all route reflectors ready"

first_pod_ip() { kubectl -n "$1" get pods -l app.kubernetes.io/name=meshrr -o jsonpath='{.items[0].status.podIP}'; }
conf=$(mktemp -d /tmp/meshrr-demo.XXXXXX)
cat >"$conf/lothlorien" <<FRR
route-map TAG101 permit 10
 set community 65000:101
route-map TAG102 permit 10
 set community 65000:102
router bgp 65000
 bgp router-id 10.255.1.1
 no bgp network import-check
 neighbor $(first_pod_ip lothlorien) remote-as 65000
 address-family ipv4 unicast
  network 10.100.0.0/24
  network 10.101.0.0/24 route-map TAG101
  network 10.102.0.0/24 route-map TAG102
 exit-address-family
FRR
cat >"$conf/mirkwood" <<FRR
router bgp 65000
 bgp router-id 10.255.2.1
 neighbor $(first_pod_ip mirkwood) remote-as 65000
FRR
docker ps -q --filter label=meshrr.router=1 --filter name=meshrr-frr-demo- | xargs -r docker rm -f >/dev/null
read -r rl _ < <("$here/router.sh" start demo-lothlorien "$conf/lothlorien")
read -r rm _ < <("$here/router.sh" start demo-mirkwood "$conf/mirkwood")
log "routers started: $rl announces 10.100.0.0/24 (untagged), 10.101.0.0/24 (65000:101), 10.102.0.0/24 (65000:102)"
for _ in $(seq 1 60); do
  "$here/router.sh" routes "$rm" | jq -e '.routes["10.102.0.0/24"]' >/dev/null 2>&1 && break
  sleep 1
done

echo
echo "== BGP sessions of every route reflector (meshrr-agent sessions)"
for ns in core lothlorien mirkwood; do
  for pod in $(kubectl -n "$ns" get pods -l app.kubernetes.io/name=meshrr -o jsonpath='{.items[*].metadata.name}'); do
    side=$(kubectl -n "$ns" get pod "$pod" -o jsonpath='{.metadata.labels.meshrr\.io/side}')
    echo "-- $ns/$pod ${side:+(side $side)}"
    kubectl -n "$ns" exec "$pod" -c agent -- /meshrr-agent sessions --config /etc/meshrr/config.yaml |
      jq -r '.[] | "   \(.group)\t\(.peer)\t\(.state)\tsince \(.since)\timported \(.imported)"' | column -t -s $'\t'
  done
done
echo
echo "== what the mirkwood router learned from the lothlorien router, through the core"
"$here/router.sh" routes "$rm" | jq -r '.routes | to_entries[] | .key as $p | .value[] | select(.bestpath) | "   \($p)\tlocal-pref \(.locPrf // 100)"' | column -t -s $'\t'
echo "   (10.101.0.0/24 is missing: 65000:101 never leaves its region; 10.102.0.0/24 arrives with local-pref 20)"
echo
echo "== every group at a glance (kubectl meshrr status -A; make status)"
"$root/bin/kubectl-meshrr" status -A || echo "   (a group is degraded: see the lines marked !)"
echo
svg=${DEMO_TOPOLOGY:-$root/e2e-logs/demo-topology.svg}
mkdir -p "$(dirname "$svg")"
"$root/bin/kubectl-meshrr" topology -A | dot -Tsvg -o "$svg"
echo "== the live topology (kubectl meshrr topology -A | dot -Tsvg; make topology): $svg"
echo
if [ "${DEMO_TEARDOWN:-0}" = 1 ]; then
  "$here/router.sh" stop "$rl" "$rm"
  "$here/cluster.sh" down
  log "demo torn down"
else
  echo "The demo keeps running. Explore it with:"
  echo "  export KUBECONFIG=$KUBECONFIG PATH=$KIND_WORK/bin:\$PATH"
  echo "  kubectl -n lothlorien exec deploy/lothlorien-meshrr-lothlorien -c bird -- birdc -s /run/bird/bird.ctl show route all"
  echo "  docker exec $rm vtysh -c 'show bgp ipv4 unicast'"
  echo "Remove it with: DEMO_TEARDOWN=1 make demo   (or: CLUSTER=$CLUSTER tests/kind/cluster.sh down)"
fi
rm -rf "$conf"
