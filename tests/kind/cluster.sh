#!/usr/bin/env bash
# Creates (or reuses) the e2e kind cluster and loads the project's images.
# Usage: cluster.sh up|down|load IMAGE...
# Environment: CLUSTER (default meshrr-e2e), CLUSTER_CONFIG (a file beside
# this script; default cluster.yaml, cluster-dual.yaml for dual stack), NODE_IMAGE (default: the locally
# built node image; set it to use a node image from a registry).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
CLUSTER=${CLUSTER:-meshrr-e2e}
NODE_IMAGE=${NODE_IMAGE:-$IMAGE_REPO/node:$K8S_VERSION}
KIND=$KIND_WORK/bin/kind
case "${1:-}" in
  up)
    if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
      log "cluster $CLUSTER exists; reusing it"
    else
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
    "$KIND" delete cluster --name "$CLUSTER"
    ;;
  *) echo "usage: cluster.sh up|down|load IMAGE..." >&2; exit 2 ;;
esac
