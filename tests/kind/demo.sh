#!/usr/bin/env bash
# make demo: the 2-regions example (a core release and two region releases
# from per-region overlays) on its own kind cluster with MetalLB, an FRR ToR
# and an FRR router in each region peering with the region's two side
# addresses, then the BGP sessions of every route reflector and what crossed
# the region boundaries, checked: each expectation of the example's boundary
# policy is read from the mirkwood router and marked OK or FAILED, then a
# lothlorien RR is deleted and the router must reach its successor at the
# same address with no route lost; the demo exits 1 when a check fails.
# DEMO_TEARDOWN=1 deletes everything at the end.
# REGISTRY=host[:port]/path VERSION=x.y.z installs a published release (make
# release) instead: the chart from oci://REGISTRY/meshrr, the images pulled
# by the nodes from the registry (INSECURE_REGISTRY=1: plain HTTP for the
# chart), nothing of meshrr's loaded into the nodes; NODE_IMAGE picks a
# published kind node image likewise (cluster.sh).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
root=$(cd "$here/../.." && pwd)
export CLUSTER=${CLUSTER:-meshrr-demo}
export REUSE_CLUSTER=${REUSE_CLUSTER:-1} # make demo again: the same cluster, releases upgraded
export PATH=$KIND_WORK/bin:$PATH
"$here/cluster.sh" up
chart=$root/charts/meshrr
chart_args=()
if [ -n "${REGISTRY:-}" ]; then
  [[ ${VERSION:-} =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
    { echo "demo: REGISTRY=$REGISTRY needs VERSION=x.y.z, the published release to install (make release VERSION=... REGISTRY=...)" >&2; exit 2; }
  chart=oci://$REGISTRY/meshrr
  chart_args=(--version "$VERSION")
  [ "${INSECURE_REGISTRY:-}" = 1 ] && chart_args+=(--plain-http)
  log "installing the published release: $chart $VERSION (the nodes pull its images from the registry)"
else
  "$here/cluster.sh" load "${AGENT_IMAGE:-meshrr/agent:dev}" "${BIRD_IMAGE:-meshrr/bird:dev}"
fi
export KUBECONFIG=$KIND_WORK/kubeconfig-$CLUSTER
routers=$(docker network inspect kind -f '{{range .IPAM.Config}}{{println .Subnet}}{{end}}' | grep -m1 -v :)
ex=$root/examples/2regions-hrr

# the region releases render their sides' MetalLB address pools
"$here/metallb.sh" install
log "installing core, lothlorien and mirkwood (routers connect from $routers)"
# every namespace enforces the Pod Security Standard "restricted", as the README's install does
for ns in core lothlorien mirkwood; do
  kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
done
helm upgrade --install core "$chart" "${chart_args[@]}" -n core -f "$ex/values-core.yaml" --wait --timeout 300s >/dev/null
for region in lothlorien mirkwood; do
  helm upgrade --install "$region" "$chart" "${chart_args[@]}" -n "$region" -f "$ex/values.yaml" -f "$ex/values-$region.yaml" \
    --set "groups.$region.clients.routers.ranges[0]=$routers" --wait --timeout 300s >/dev/null
done
log "all route reflectors ready"

# Routers reach the RRs at their sides' LoadBalancer addresses (the
# overlays' sides.a and sides.b), which MetalLB announces to a ToR router
# from the nodes running a pod of that side: a replaced RR pod is reached
# again at the same address.
docker ps -q --filter label=meshrr.router=1 --filter name=meshrr-frr-demo- | xargs -r docker rm -f >/dev/null
# the routers are started as the e2e suites start them (package
# tests/e2e/routers), through its command
routerctl=$KIND_WORK/bin/routerctl
(cd "$root/tests" && go build -o "$routerctl" ./e2e/routers/routerctl)
conf=$(mktemp -d /tmp/meshrr-demo.XXXXXX)
cat >"$conf/tor" <<FRR
router bgp 64513
 bgp router-id 10.255.0.1
 no bgp ebgp-requires-policy
 neighbor METALLB peer-group
 neighbor METALLB remote-as 64512
 bgp listen range $routers peer-group METALLB
FRR
read -r tor_name tor < <("$routerctl" start demo-tor "$conf/tor")
kubectl apply -f - >/dev/null <<YAML
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: demo-tor, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: $tor}
YAML
# the example's boundary policy as data (the hierarchy suite reads it too)
boundary=$root/examples/2regions-hrr/boundary.json
{
  echo "ip route 172.30.0.0/16 $tor"
  # a route-map per tagged route: its communities and large communities
  jq -r '.announced | to_entries[] | select(.value.communities or .value.large) |
    "route-map TAG\(.key) permit 10",
    (if .value.communities then " set community \(.value.communities)" else empty end),
    (if .value.large then " set large-community \(.value.large)" else empty end)' "$boundary"
  cat <<FRR
router bgp 65000
 bgp router-id 10.255.1.1
 no bgp network import-check
 neighbor RR peer-group
 neighbor RR remote-as 65000
 neighbor RR timers connect 5
 neighbor 172.30.1.1 peer-group RR
 neighbor 172.30.1.2 peer-group RR
 address-family ipv4 unicast
FRR
  jq -r '.announced | to_entries[] |
    "  network \(.value.prefix)" + (if .value.communities or .value.large then " route-map TAG\(.key)" else "" end)' "$boundary"
  echo " exit-address-family"
} >"$conf/lothlorien"
cat >"$conf/mirkwood" <<FRR
ip route 172.30.0.0/16 $tor
router bgp 65000
 bgp router-id 10.255.2.1
 neighbor RR peer-group
 neighbor RR remote-as 65000
 neighbor RR timers connect 5
 neighbor 172.30.2.1 peer-group RR
 neighbor 172.30.2.2 peer-group RR
FRR
read -r rl _ < <("$routerctl" start demo-lothlorien "$conf/lothlorien")
read -r rm _ < <("$routerctl" start demo-mirkwood "$conf/mirkwood")
log "routers started: ToR $tor_name ($tor) learns the side addresses from MetalLB; $rl peers with lothlorien's 172.30.1.1 (side a) and 172.30.1.2 (side b) and announces $(jq -r '[.announced[] | .prefix + " (" + ([.communities, (.large // empty | "large " + .)] | map(select(.)) | join(", ") | if . == "" then "untagged" else . end) + ")"] | join(", ")' "$boundary"); $rm peers with mirkwood's 172.30.2.1 and 172.30.2.2"

# what the mirkwood router holds, read from it (FRR's JSON)
table=
read_table() { table=$("$routerctl" routes "$rm" 2>/dev/null || echo '{}'); }
has() { jq -e --arg p "$1" '.routes[$p]' <<<"$table" >/dev/null 2>&1; }
local_pref() { jq -r --arg p "$1" '[.routes[$p][]? | select(.bestpath) | (.locPrf // 100)][0] // "none"' <<<"$table"; }
communities() {
  docker exec "$rm" vtysh -c "show bgp ipv4 unicast $1 json" 2>/dev/null |
    jq -r '[.paths[]? | select(.bestpath.overall) | "\(.community.string // "none") / large \(.largeCommunity.string // "none")"][0] // "no route"'
}
# each expectation outside the region (boundary.json): "ok", or what was read instead
expectations=$(jq -c '.outside[]' "$boundary")
expect() { # expect JSON
  local prefix present lp comm large v
  prefix=$(jq -r .prefix <<<"$1"); present=$(jq -r .present <<<"$1")
  lp=$(jq -r '.localPref // empty' <<<"$1"); comm=$(jq -r '.communities // empty' <<<"$1"); large=$(jq -r '.large // empty' <<<"$1")
  if [ "$present" = false ]; then
    if has "$prefix"; then echo present; else echo ok; fi
    return
  fi
  if ! has "$prefix"; then echo missing; return; fi
  if [ -n "$lp" ]; then v=$(local_pref "$prefix"); [ "$v" = "$lp" ] || { echo "local-pref $v"; return; }; fi
  if [ -n "$comm$large" ]; then
    v=$(communities "$prefix")
    [ "$v" = "${comm:-none} / large ${large:-none}" ] || { echo "$v"; return; }
  fi
  echo ok
}
all_ok() {
  local e
  while read -r e; do [ "$(expect "$e")" = ok ] || return 1; done <<<"$expectations"
}
for _ in $(seq 1 90); do
  read_table
  if all_ok; then break; fi
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
read_table
jq -r '.routes | to_entries[] | .key as $p | .value[] | select(.bestpath) | "   \($p)\tlocal-pref \(.locPrf // 100)"' <<<"$table" | column -t -s $'\t'
echo "   10.103.0.0/24 communities: $(communities 10.103.0.0/24)"
echo "== the boundary policy of examples/2regions-hrr, checked at the mirkwood router"
failed=0
check() { # check RESULT EXPECTATION
  if [ "$1" = ok ]; then printf '   OK      %s\n' "$2"; else printf '   FAILED  %s (read: %s)\n' "$2" "$1"; failed=$((failed + 1)); fi
}
while read -r e; do check "$(expect "$e")" "$(jq -r .says <<<"$e")"; done <<<"$expectations"

# self-healing as a user would try it: delete the side-a lothlorien RR. The
# DaemonSet replaces it on the same node with a new pod address; the router
# reaches the successor at 172.30.1.1 again, and meanwhile side b carries
# the routes (the mirkwood router's table is sampled throughout).
echo
echo "== a lothlorien RR deleted: its successor is reached at the same address, no route lost"
state_of() { docker exec "$rl" vtysh -c "show bgp neighbor $1 json" 2>/dev/null | jq -r --arg n "$1" '.[$n].bgpState // "none"'; }
for _ in $(seq 1 90); do
  [ "$(state_of 172.30.1.1)" = Established ] && [ "$(state_of 172.30.1.2)" = Established ] && break
  sleep 1
done
side_a() { kubectl -n lothlorien get pods -l app.kubernetes.io/name=meshrr,meshrr.io/side=a -o jsonpath='{range .items[*]}{.metadata.name} {.status.podIP}{"\n"}{end}'; }
read -r old_pod old_ip < <(side_a) || true
kubectl -n lothlorien delete pod "$old_pod" --wait=false >/dev/null
t0=$(date +%s); samples=0; missed=0; down=; back=; new_pod=; new_ip=
while [ $(($(date +%s) - t0)) -lt 240 ]; do
  read_table
  samples=$((samples + 1))
  has 10.100.0.0/24 || missed=$((missed + 1))
  st=$(state_of 172.30.1.1)
  if [ -z "$down" ] && [ "$st" != Established ]; then down=$(($(date +%s) - t0)); fi
  if [ -n "$down" ] && [ "$st" = Established ]; then
    read -r new_pod new_ip < <(side_a | grep -v "^$old_pod ") || true
    if [ -n "$new_pod" ]; then back=$(($(date +%s) - t0)); break; fi
  fi
  sleep 0.5
done
if [ -n "$back" ]; then
  echo "   $old_pod ($old_ip) deleted; session to 172.30.1.1 down after ${down}s, Established again with $new_pod ($new_ip) after ${back}s"
  check ok "the lothlorien router re-established at 172.30.1.1 with the replaced RR"
else
  check "session to 172.30.1.1: $(state_of 172.30.1.1) after 240 s" "the lothlorien router re-established at 172.30.1.1 with the replaced RR"
fi
if [ "$missed" = 0 ]; then
  check ok "the mirkwood router kept 10.100.0.0/24 in all $samples samples (side b carried it)"
else
  check "missing in $missed of $samples samples" "the mirkwood router kept 10.100.0.0/24 throughout"
fi
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
  "$routerctl" stop "$rl" "$rm" "$tor_name"
  "$here/cluster.sh" down
  log "demo torn down"
else
  echo "The demo keeps running. Explore it with:"
  echo "  export KUBECONFIG=$KUBECONFIG PATH=$KIND_WORK/bin:\$PATH"
  echo "  kubectl -n lothlorien exec ds/lothlorien-meshrr-lothlorien-a -c bird -- birdc -s /run/bird/bird.ctl show route all"
  echo "  docker exec $rm vtysh -c 'show bgp ipv4 unicast'"
  echo "Remove it with: DEMO_TEARDOWN=1 make demo   (or: CLUSTER=$CLUSTER tests/kind/cluster.sh down)"
fi
rm -rf "$conf"
if [ "$failed" -gt 0 ]; then
  echo "demo: $failed expectation(s) of the boundary policy FAILED (see above)" >&2
  exit 1
fi
