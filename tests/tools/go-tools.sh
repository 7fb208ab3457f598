#!/usr/bin/env bash
# Builds the pinned Go tools the tests use into BIN (default ~/.cache/meshrr/bin) from
# the Go module proxy. Each tool is rebuilt only when its pinned version
# changes (a stamp file records what was built).
set -euo pipefail
BIN=${BIN:-${MESHRR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshrr}/bin}
mkdir -p "$BIN"
# shellcheck source=progress.sh
. "$(dirname "$0")/progress.sh"
progress_ticker go-tools
trap progress_stop EXIT

HELM_VERSION=v3.19.2          # Kubernetes 1.34 client libraries
HELM_DOCS_VERSION=v1.14.2
CT_VERSION=v3.14.0
ACTIONLINT_VERSION=v1.7.12    # checks .github/workflows in make lint
# make release and its e2e: image assembly and push, the chart's pinned
# values, the SBOMs, and the local OCI registry the e2e pulls from
CRANE_VERSION=v0.22.1
YQ_VERSION=v4.54.3
SYFT_VERSION=v1.57.2
REGISTRY_VERSION=v3.1.2

fresh() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" >"$BIN/.$1.version"; echo "go-tools: built $1 $2 in $3s"; }

# build_in_module NAME VERSION MODULE PACKAGE [LDFLAGS]: builds from a
# throwaway module that requires MODULE@VERSION. Unlike `go install pkg@v`
# this never asks the proxy for the module's version list.
build_in_module() {
  local name=$1 version=$2 module=$3 pkg=$4 ldflags=${5:-}
  fresh "$name" "$version" && return 0
  progress_step "building $name $version"
  local start dir
  start=$(date +%s)
  dir=$(mktemp -d /tmp/meshrr-tool.XXXXXX)
  (
    cd "$dir"
    go mod init local/tools >/dev/null 2>&1
    printf '//go:build tools\npackage tools\nimport _ "%s"\n' "$pkg" >tools.go
    go get "$module@$version" >/dev/null 2>&1
    go mod tidy >/dev/null 2>&1
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$BIN/$name" "$pkg"
  ) || { rm -rf "$dir"; echo "go-tools: building $name $version failed" >&2; return 1; }
  rm -rf "$dir"
  stamp "$name" "$version" $(( $(date +%s) - start ))
}

# Helm's Makefile stamps its version and the Kubernetes version of its
# client libraries (1.34 for 3.19); without them helm assumes Kubernetes 1.20.
helm_ld="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ld="$helm_ld -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=34"
done
build_in_module helm "$HELM_VERSION" helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm "$helm_ld"
build_in_module helm-docs "$HELM_DOCS_VERSION" github.com/norwoodj/helm-docs github.com/norwoodj/helm-docs/cmd/helm-docs
build_in_module ct "$CT_VERSION" github.com/helm/chart-testing/v3 github.com/helm/chart-testing/v3/ct \
  "-X github.com/helm/chart-testing/v3/ct/cmd.Version=$CT_VERSION"
build_in_module actionlint "$ACTIONLINT_VERSION" github.com/rhysd/actionlint github.com/rhysd/actionlint/cmd/actionlint \
  "-X main.version=$ACTIONLINT_VERSION"
build_in_module crane "$CRANE_VERSION" github.com/google/go-containerregistry github.com/google/go-containerregistry/cmd/crane \
  "-X github.com/google/go-containerregistry/cmd/crane/cmd.Version=$CRANE_VERSION"
build_in_module yq "$YQ_VERSION" github.com/mikefarah/yq/v4 github.com/mikefarah/yq/v4
build_in_module syft "$SYFT_VERSION" github.com/anchore/syft github.com/anchore/syft/cmd/syft \
  "-X main.version=$SYFT_VERSION"
build_in_module registry "$REGISTRY_VERSION" github.com/distribution/distribution/v3 github.com/distribution/distribution/v3/cmd/registry \
  "-X github.com/distribution/distribution/v3/version.version=$REGISTRY_VERSION"
