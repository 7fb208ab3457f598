#!/usr/bin/env bash
# Creates the e2e kind cluster and loads the project's images.
# Usage: cluster.sh up|down|load IMAGE...
# up starts from a new cluster: one of the same name left by a run that did
# not finish (killed, out of time) still holds its releases, MetalLB pools
# and routers, which would fail the next run's suites; it is deleted first,
# with the routers started for it. KEEP_CLUSTER=1 or REUSE_CLUSTER=1 reuses
# it instead (a kept cluster, the demo).
# Environment: CLUSTER (default meshrr-e2e), CLUSTER_CONFIG (a file beside
# this script; default cluster.yaml, cluster-dual.yaml for dual stack), NODE_IMAGE (default: the locally
# built node image; set it to use a node image from a registry).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
CLUSTER=${CLUSTER:-meshrr-e2e}
NODE_IMAGE=${NODE_IMAGE:-$IMAGE_REPO/node:$K8S_VERSION}
KIND=$KIND_WORK/bin/kind

# remove_routers: the router containers package tests/e2e/routers started for
# this cluster
remove_routers() {
  docker ps -aq --filter "label=meshrr.cluster=$CLUSTER" | xargs -r docker rm -f >/dev/null
}
case "${1:-}" in
  up)
    if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
      if [ "${KEEP_CLUSTER:-0}" = 1 ] || [ "${REUSE_CLUSTER:-0}" = 1 ]; then
        log "cluster $CLUSTER exists; reusing it"
      else
        log "cluster $CLUSTER exists, left by a run that did not finish; deleting it and its routers for a fresh start"
        remove_routers
        "$KIND" delete cluster --name "$CLUSTER"
      fi
    fi
    if ! "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
      log "creating cluster $CLUSTER from $NODE_IMAGE"
      "$KIND" create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --config "$here/${CLUSTER_CONFIG:-cluster.yaml}" --wait 180s
    fi
    "$KIND" get kubeconfig --name "$CLUSTER" >"$KIND_WORK/kubeconfig-$CLUSTER"
    log "kubeconfig: $KIND_WORK/kubeconfig-$CLUSTER"
    ;;
  load)
    shift
    for im in "$@"; do log "loading $im"; "$KIND" load docker-image --name "$CLUSTER" "$im" >/dev/null; done
    ;;
  down)
    remove_routers
    "$KIND" delete cluster --name "$CLUSTER"
    ;;
  *) echo "usage: cluster.sh up|down|load IMAGE..." >&2; exit 2 ;;
esac
