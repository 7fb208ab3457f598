#!/usr/bin/env bash
# Builds the Kubernetes node and control-plane binaries, etcd, CoreDNS, crictl,
# the kind CLI, MetalLB and kube-network-policies from the Go module proxy, at the pinned versions, into
# $KIND_WORK/bin. Each part is skipped when already built at its version.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
export GOFLAGS=-mod=mod CGO_ENABLED=0
progress_ticker build-binaries
trap progress_stop EXIT

# Kubernetes: k8s.io/kubernetes requires its staging modules at v0.0.0 with
# local replaces; a wrapper module replaces them with the published versions.
if ! done_already k8s "$K8S_VERSION"; then
  log "building Kubernetes $K8S_VERSION (about 10 minutes on 2 cores, 30 s warm)"
  d=$KIND_WORK/src/k8s
  go_module "$d" k8s.io/kubernetes "$K8S_VERSION"
  for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
           cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api \
           cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms \
           kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics \
           mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller; do
    (cd "$d" && go mod edit -replace="k8s.io/$m=k8s.io/$m@$K8S_STAGING_VERSION")
  done
  cmds="kubelet kubeadm kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl"
  { echo "//go:build tools"; echo "package tools"; for c in $cmds; do echo "import _ \"k8s.io/kubernetes/cmd/$c\""; done; } >"$d/tools.go"
  (cd "$d" && go mod tidy >/dev/null 2>&1)
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.buildDate=2025-12-01T00:00:00Z"
  done
  pkgs=""; for c in $cmds; do pkgs="$pkgs k8s.io/kubernetes/cmd/$c"; done
  # kubelet needs cgo-free builds to run in the node image's libc too; all are static
  # shellcheck disable=SC2086 # pkgs: package paths, split on purpose
  (cd "$d" && go build -trimpath -ldflags "$ld" -o "$KIND_WORK/bin/" $pkgs)
  mark_done k8s "$K8S_VERSION"
fi

if ! done_already etcd "$ETCD_VERSION"; then
  log "building etcd $ETCD_VERSION"
  d=$KIND_WORK/src/etcd
  go_module "$d" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
  sed '/^\/\/go:build ignore/d' "$here/src/etcd.go" >"$d/main.go"
  (cd "$d" && go mod tidy >/dev/null 2>&1 && go build -trimpath -ldflags "-s -w" -o "$KIND_WORK/bin/etcd" .)
  mark_done etcd "$ETCD_VERSION"
fi

if ! done_already coredns "$COREDNS_VERSION"; then
  log "building CoreDNS $COREDNS_VERSION"
  d=$KIND_WORK/src/coredns
  go_module "$d" github.com/coredns/coredns "$COREDNS_VERSION"
  printf '//go:build tools\npackage tools\nimport _ "github.com/coredns/coredns"\n' >"$d/tools.go"
  (cd "$d" && go mod tidy >/dev/null 2>&1 && go build -trimpath -ldflags "-s -w" -o "$KIND_WORK/bin/coredns" github.com/coredns/coredns)
  mark_done coredns "$COREDNS_VERSION"
fi

if ! done_already crictl "$CRICTL_VERSION"; then
  log "building crictl $CRICTL_VERSION"
  d=$KIND_WORK/src/crictl
  go_module "$d" sigs.k8s.io/cri-tools "$CRICTL_VERSION"
  # cri-tools pins pre-release Kubernetes modules; use the published ones
  for m in api apimachinery client-go component-base cri-api cri-client kubelet; do
    (cd "$d" && go mod edit -replace="k8s.io/$m=k8s.io/$m@$K8S_STAGING_VERSION")
  done
  printf '//go:build tools\npackage tools\nimport _ "sigs.k8s.io/cri-tools/cmd/crictl"\n' >"$d/tools.go"
  (cd "$d" && GONOSUMDB=sigs.k8s.io/cri-tools go mod tidy >/dev/null 2>&1 && go build -trimpath -ldflags "-s -w" -o "$KIND_WORK/bin/crictl" sigs.k8s.io/cri-tools/cmd/crictl)
  mark_done crictl "$CRICTL_VERSION"
fi

if ! done_already pause "$PAUSE_TAG-$(sha256sum "$here/src/pause.go" | cut -c1-12)"; then
  log "building pause"
  d=$KIND_WORK/src/pause
  rm -rf "$d" && mkdir -p "$d" && sed '/^\/\/go:build ignore/d' "$here/src/pause.go" >"$d/main.go"
  (cd "$d" && go mod init local/pause >/dev/null 2>&1 && go build -trimpath -ldflags "-s -w" -o "$KIND_WORK/bin/pause" .)
  mark_done pause "$PAUSE_TAG-$(sha256sum "$here/src/pause.go" | cut -c1-12)"
fi

if ! done_already kind "$KIND_VERSION"; then
  log "building kind $KIND_VERSION"
  d=$KIND_WORK/src/kind
  go_module "$d" sigs.k8s.io/kind "$KIND_VERSION"
  printf '//go:build tools\npackage tools\nimport _ "sigs.k8s.io/kind"\n' >"$d/tools.go"
  (cd "$d" && go mod tidy >/dev/null 2>&1 && go build -trimpath -ldflags "-s -w" -o "$KIND_WORK/bin/kind" sigs.k8s.io/kind)
  mark_done kind "$KIND_VERSION"
fi
if ! done_already metallb "$METALLB_VERSION"; then
  log "building MetalLB $METALLB_VERSION controller and speaker"
  d=$KIND_WORK/src/metallb
  src=$(go mod download -json "go.universe.tf/metallb@$METALLB_VERSION" | jq -r .Dir)
  # the module's own go.mod and go.sum pin its dependencies; build in a
  # writable copy of it
  rm -rf "$d" && cp -r "$src" "$d" && chmod -R u+w "$d"
  (cd "$d" && go build -trimpath -ldflags "-s -w" -o "$KIND_WORK/bin/metallb-controller" ./controller &&
    go build -trimpath -ldflags "-s -w" -o "$KIND_WORK/bin/metallb-speaker" ./speaker)
  mark_done metallb "$METALLB_VERSION"
fi
if ! done_already kube-network-policies "$KNP_VERSION"; then
  log "building kube-network-policies $KNP_VERSION"
  d=$KIND_WORK/src/kube-network-policies
  src=$(go mod download -json "sigs.k8s.io/kube-network-policies@$KNP_VERSION" | jq -r .Dir)
  rm -rf "$d" && cp -r "$src" "$d" && chmod -R u+w "$d"
  (cd "$d" && go build -trimpath -ldflags "-s -w" -o "$KIND_WORK/bin/netpol" ./cmd)
  mark_done kube-network-policies "$KNP_VERSION"
fi
log "binaries ready in $KIND_WORK/bin"
