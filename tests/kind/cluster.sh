#!/usr/bin/env bash
# Creates the e2e kind cluster and loads the project's images.
# Usage: cluster.sh up|down|load IMAGE...|registry PORT
# up starts from a new cluster: one of the same name left by a run that did
# not finish (killed, out of time) still holds its releases, MetalLB pools
# and routers, which would fail the next run's suites; it is deleted first,
# with the routers started for it. KEEP_CLUSTER=1 or REUSE_CLUSTER=1 reuses
# it instead (a kept cluster, the demo).
# registry PORT starts a local OCI registry (the CNCF distribution registry,
# built from its Go module by make tools) in a container on the kind network,
# published on 127.0.0.1:PORT only, and makes every node's containerd pull
# localhost:PORT/... from it over plain HTTP; down removes it with the
# routers.
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
  registry)
    port=${2:?usage: cluster.sh registry PORT}
    bin=${BIN:-${MESHRR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshrr}/bin}/registry
    [ -x "$bin" ] || { echo "no $bin: run make tools" >&2; exit 1; }
    image=meshrr/registry:$("$bin" --version | awk '{print $NF}')
    if ! docker image inspect "$image" >/dev/null 2>&1; then
      log "building $image from $bin"
      ctx=$(mktemp -d)
      cp "$bin" "$ctx/registry"
      cat >"$ctx/config.yml" <<'CONF'
version: 0.1
storage:
  filesystem: {rootdirectory: /var/lib/registry}
http:
  addr: ":5000"
log:
  level: info
CONF
      printf 'FROM scratch\nCOPY registry /registry\nCOPY config.yml /etc/distribution/config.yml\nUSER 65532:65532\nENTRYPOINT ["/registry"]\nCMD ["serve", "/etc/distribution/config.yml"]\n' >"$ctx/Dockerfile"
      DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null
      rm -rf "$ctx"
    fi
    name=$CLUSTER-registry
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker run -d --name "$name" --label "meshrr.cluster=$CLUSTER" --network kind \
      --tmpfs /var/lib/registry:rw,mode=1777 -p "127.0.0.1:$port:5000" "$image" >/dev/null
    for node in $("$KIND" get nodes --name "$CLUSTER"); do
      docker exec "$node" mkdir -p "/etc/containerd/certs.d/localhost:$port"
      printf 'server = "http://%s:5000"\n\n[host."http://%s:5000"]\n  capabilities = ["pull", "resolve"]\n' "$name" "$name" |
        docker exec -i "$node" tee "/etc/containerd/certs.d/localhost:$port/hosts.toml" >/dev/null
    done
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:$port/v2/" >/dev/null || { docker logs "$name" >&2; exit 1; }
    log "registry $image at localhost:$port (container $name; the nodes pull from it)"
    ;;
  down)
    remove_routers
    "$KIND" delete cluster --name "$CLUSTER"
    ;;
  *) echo "usage: cluster.sh up|down|load IMAGE...|registry PORT" >&2; exit 2 ;;
esac
