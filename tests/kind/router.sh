#!/usr/bin/env bash
# FRR routers outside the cluster, on the kind Docker network, for the e2e
# tests and the demo (BIRD ones for the scale suites).
#   router.sh start NAME FRR_CONF_BODY_FILE   prints "CONTAINER ADDRESS"
#   router.sh start-bird NAME DIR             a BIRD router: DIR is its /etc/bird
#                                             (bird.conf; setup.sh, when present, runs
#                                             first, e.g. to add addresses); prints
#                                             "CONTAINER ADDRESS"
#   router.sh birdc CONTAINER COMMAND...      a birdc command on a BIRD router
#   router.sh routes CONTAINER [ipv4|ipv6]    the BGP table of a family as JSON (default ipv4)
#   router.sh stop CONTAINER...
#   router.sh steer PREFIX ADDRESS            every kind node routes PREFIX via ADDRESS
#                                             (e.g. to a router's anycast loopback)
# start routes the pod networks through the nodes (KUBECONFIG selects the
# cluster) so the router can reach RR pods, enables forwarding, and runs
# zebra, staticd, bgpd and bfdd.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
FRR_IMAGE=${FRR_IMAGE:-meshrr/frr:dev}
BIRD_IMAGE=${BIRD_IMAGE:-meshrr/bird:dev}
CLUSTER=${CLUSTER:-meshrr-e2e}

# pod_routes: shell commands routing each pod CIDR through its node's
# address of the same family (dual stack too)
pod_routes() {
  "$KIND_WORK/bin/kubectl" get nodes -o jsonpath='{range .items[*]}{.spec.podCIDRs[*]};{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}' |
    awk -F';' '{ n = split($1, c, " "); m = split($2, a, " ");
      for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) {
        if ((index(c[i], ":") > 0) == (index(a[j], ":") > 0)) printf "ip %s route replace %s via %s && ", (index(c[i], ":") > 0 ? "-6" : ""), c[i], a[j] } }'
}

address() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }

case "${1:-}" in
  start)
    name=${2:?name}; body=${3:?frr.conf body file}
    dir=$(mktemp -d /tmp/meshrr-frr.XXXXXX)
    printf 'bgpd=yes\nzebra=yes\nstaticd=yes\nbfdd=yes\nvtysh_enable=yes\nzebra_options=" -A 127.0.0.1"\nbgpd_options=" -A 127.0.0.1"\nstaticd_options="-A 127.0.0.1"\nbfdd_options=" -A 127.0.0.1"\n' >"$dir/daemons"
    { printf 'frr defaults traditional\nhostname %s\nlog stdout\n' "$name"; cat "$body"; } >"$dir/frr.conf"
    : >"$dir/vtysh.conf"
    routes=$(pod_routes)
    container="meshrr-frr-$name-$$-$RANDOM"
    docker run -d --name "$container" --network kind --cap-add NET_ADMIN --cap-add NET_RAW --cap-add SYS_ADMIN \
      --sysctl net.ipv4.ip_forward=1 \
      -v "$dir:/etc/frr" --label meshrr.router=1 --label meshrr.cluster="$CLUSTER" --entrypoint bash "$FRR_IMAGE" \
      -c "${routes}chown -R frr:frr /etc/frr && /usr/lib/frr/frrinit.sh start && exec sleep infinity" >/dev/null
    echo "$container $(address "$container")"
    ;;
  start-bird)
    name=${2:?name}; dir=${3:?directory with bird.conf}
    routes=$(pod_routes)
    container="meshrr-bird-$name-$$-$RANDOM"
    docker run -d --name "$container" --network kind --user 0 --cap-add NET_ADMIN --cap-add NET_RAW \
      --sysctl net.ipv4.ip_forward=1 \
      -v "$dir:/etc/bird:ro" --label meshrr.router=1 --label meshrr.cluster="$CLUSTER" --entrypoint bash "$BIRD_IMAGE" \
      -c "${routes}{ [ ! -f /etc/bird/setup.sh ] || bash /etc/bird/setup.sh; } && exec bird -f -c /etc/bird/bird.conf -s /run/bird.ctl" >/dev/null
    echo "$container $(address "$container")"
    ;;
  birdc)
    container=${2:?container}; shift 2
    docker exec "$container" birdc -s /run/bird.ctl "$@"
    ;;
  routes)
    docker exec "${2:?container}" vtysh -c "show bgp ${3:-ipv4} unicast json"
    ;;
  steer)
    prefix=${2:?prefix}; via=${3:?address}
    for n in $("$KIND_WORK/bin/kind" get nodes --name "$CLUSTER"); do
      docker exec "$n" ip route replace "$prefix" via "$via"
    done
    ;;
  stop)
    shift
    for c in "$@"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
    ;;
  *) echo "usage: router.sh start NAME CONF | start-bird NAME DIR | birdc CONTAINER COMMAND... | routes CONTAINER | steer PREFIX ADDRESS | stop CONTAINER..." >&2; exit 2 ;;
esac
