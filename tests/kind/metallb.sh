#!/usr/bin/env bash
# Installs MetalLB in BGP mode (native speaker) into the kind cluster: the
# manifest shipped in the MetalLB module at the pinned version, with the
# locally built images (build-binaries.sh and build-images.sh make them).
# Idempotent. Usage: metallb.sh install
# Environment: CLUSTER (default meshrr-e2e).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
CLUSTER=${CLUSTER:-meshrr-e2e}
KUBECTL=("$KIND_WORK/bin/kubectl" --kubeconfig "$KIND_WORK/kubeconfig-$CLUSTER")
manifest=$KIND_WORK/src/metallb/config/manifests/metallb-native.yaml
[ -f "$manifest" ] || { echo "metallb.sh: $manifest is missing: run tests/kind/build-binaries.sh" >&2; exit 1; }
case "${1:-}" in
  install)
    for name in controller speaker; do
      "$KIND_WORK/bin/kind" load docker-image --name "$CLUSTER" "$IMAGE_REPO/metallb-$name:$METALLB_VERSION" >/dev/null
    done
    log "images loaded"
    # the images are the local ones, never pulled
    sed -E "s#^( *)image: .*/metallb/(controller|speaker):.*#\1image: $IMAGE_REPO/metallb-\2:$METALLB_VERSION\n\1imagePullPolicy: Never#" "$manifest" |
      "${KUBECTL[@]}" apply --server-side -f - >/dev/null
    "${KUBECTL[@]}" -n metallb-system rollout status deploy/controller --timeout=180s >/dev/null
    "${KUBECTL[@]}" -n metallb-system rollout status ds/speaker --timeout=180s >/dev/null
    log "controller and speakers ready"
    # the validating webhook serves once its certificate is injected
    probe='{"apiVersion":"metallb.io/v1beta1","kind":"IPAddressPool","metadata":{"name":"probe","namespace":"metallb-system"},"spec":{"addresses":["192.0.2.1/32"],"autoAssign":false}}'
    for _ in $(seq 1 90); do
      if echo "$probe" | "${KUBECTL[@]}" apply --dry-run=server -f - >/dev/null 2>&1; then
        log "webhook answering; MetalLB $METALLB_VERSION installed"
        exit 0
      fi
      sleep 1
    done
    echo "$probe" | "${KUBECTL[@]}" apply --dry-run=server -f - >&2 || true
    echo "metallb.sh: MetalLB's webhook did not answer within 90 s" >&2
    exit 1
    ;;
  *) echo "usage: metallb.sh install" >&2; exit 2 ;;
esac
