#!/usr/bin/env bash
# make release VERSION=x.y.z REGISTRY=host[:port]/path: builds and pushes one
# versioned release of meshrr to an OCI registry.
#
#   REGISTRY/agent:VERSION  the agent, one image index for linux/amd64 and
#                           linux/arm64 (static binaries on an empty base)
#   REGISTRY/bird:VERSION   the BIRD 2 image (BIRD_IMAGE, built by make
#                           images; the build host's platform)
#   REGISTRY/bird3:VERSION  the BIRD 3 image (BIRD3_IMAGE, likewise)
#   oci://REGISTRY/meshrr   the chart, version and appVersion VERSION, its
#                           values pinning every image by digest
#
# and writes into RELEASE_DIR (default dist/VERSION): the chart package, a
# CycloneDX SBOM of each image (syft, read back from the registry) and of the
# chart (its images by digest), the agent binaries (agent-ARCH/) and
# release.env (every reference with its digest, the binaries' SHA-256).
# INSECURE_REGISTRY=1 talks plain HTTP (a local registry such as the e2e's).
# Reproducible: the same commit and VERSION give the same agent binaries and
# the same agent image digest (-trimpath, no build time, a layer tar with
# fixed owners and times).
set -euo pipefail
cd "$(dirname "$0")/../.."

# the pinned tools of make tools first (a system yq is another program)
PATH=${BIN:-${MESHRR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshrr}/bin}:$PATH
fail() { echo "make release: $*" >&2; exit 2; }
VERSION=${VERSION:-}
REGISTRY=${REGISTRY:-}
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
  fail "VERSION=${VERSION:-<unset>} is not a semantic version: give VERSION=x.y.z (e.g. VERSION=0.1.0, or 0.2.0-rc.1); it becomes the chart's version and appVersion and the images' tag"
[[ $REGISTRY =~ ^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*$ ]] ||
  fail "REGISTRY=${REGISTRY:-<unset>} is not a registry path: give REGISTRY=host[:port]/path without a scheme or a trailing slash (e.g. REGISTRY=<registry-host>/meshrr); images go to REGISTRY/agent, REGISTRY/bird and REGISTRY/bird3, the chart to oci://REGISTRY/meshrr"
[ "${1:-}" = check ] && exit 0 # make release: the inputs first, then the builds
BIRD_IMAGE=${BIRD_IMAGE:-meshrr/bird:dev}
BIRD3_IMAGE=${BIRD3_IMAGE:-meshrr/bird3:dev}
OUT=${RELEASE_DIR:-dist/$VERSION}
PLATFORMS=(linux/amd64 linux/arm64)
for tool in crane yq syft helm jq docker go; do
  command -v "$tool" >/dev/null || fail "$tool not found: run make tools (crane, yq, syft, helm) and make deps (jq, docker)"
done
for im in "$BIRD_IMAGE" "$BIRD3_IMAGE"; do
  docker image inspect "$im" >/dev/null 2>&1 || fail "no local image $im: run make images first"
done

crane_flags=()
helm_flags=()
if [ "${INSECURE_REGISTRY:-}" = 1 ]; then
  crane_flags=(--insecure)
  helm_flags=(--plain-http)
  export SYFT_REGISTRY_INSECURE_USE_HTTP=true
fi
export SYFT_CHECK_FOR_APP_UPDATE=false
start=$(date +%s)
step() { echo "release: $* ($(( $(date +%s) - start ))s)"; }

# a directory is replaced only when it holds an earlier release or nothing
if [ -d "$OUT" ] && [ ! -f "$OUT/release.env" ] && [ -n "$(ls -A "$OUT")" ]; then
  fail "RELEASE_DIR=$OUT holds files but no release.env: give an empty or new directory (default dist/VERSION)"
fi
rm -rf "$OUT"
mkdir -p "$OUT/sbom"
: >"$OUT/release.env"
record() { echo "$1=$2" >>"$OUT/release.env"; }
record VERSION "$VERSION"
record REGISTRY "$REGISTRY"

# OCI labels: what a registry UI and `crane config` show; from the commit
# and VERSION only, so they keep the build reproducible
revision=$(git rev-parse HEAD)
labels=(--label "org.opencontainers.image.version=$VERSION" --label "org.opencontainers.image.revision=$revision")

# the agent: one image per platform, then the index over them
manifests=()
for platform in "${PLATFORMS[@]}"; do
  arch=${platform#linux/}
  root="$OUT/agent-$arch"
  mkdir -p "$root"
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath \
    -ldflags "-s -w -X github.com/meshrr/meshrr/agent/internal/app.Version=$VERSION" \
    -o "$root/meshrr-agent" ./agent/cmd/meshrr-agent
  chmod 0755 "$root/meshrr-agent"
  record "AGENT_BINARY_SHA256_${arch}" "$(sha256sum "$root/meshrr-agent" | cut -d' ' -f1)"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$root.tar" meshrr-agent
  ref=$(crane append "${crane_flags[@]}" --oci-empty-base -f "$root.tar" \
    -t "$REGISTRY/agent:$VERSION-$arch")
  # the same user, entrypoint and command as the Dockerfile's agent target
  ref=$(crane mutate "${crane_flags[@]}" --set-platform "$platform" --user 65532:65532 --entrypoint /meshrr-agent --cmd run \
    "${labels[@]}" --label org.opencontainers.image.title=meshrr-agent -t "$REGISTRY/agent:$VERSION-$arch" "$ref")
  rm -f "$root.tar" # the binary stays beside release.env; the layer is in the registry
  manifests+=(-m "$ref")
  step "agent $platform: $ref"
done
agent_ref=$(crane index append "${crane_flags[@]}" "${manifests[@]}" -t "$REGISTRY/agent:$VERSION")
agent_digest=${agent_ref##*@}
record AGENT_IMAGE "$REGISTRY/agent:$VERSION@$agent_digest"
step "agent index: $REGISTRY/agent:$VERSION@$agent_digest"

# BIRD 2 and BIRD 3: the images make images built, with the release's
# labels; push_bird REPO IMAGE prints the digest
push_bird() {
  docker save "$2" -o "$OUT/$1.tar"
  crane push "${crane_flags[@]}" "$OUT/$1.tar" "$REGISTRY/$1:$VERSION" >/dev/null
  rm -f "$OUT/$1.tar"
  ref=$(crane mutate "${crane_flags[@]}" "${labels[@]}" --label "org.opencontainers.image.title=meshrr-$1" \
    -t "$REGISTRY/$1:$VERSION" "$REGISTRY/$1:$VERSION")
  echo "${ref##*@}"
}
bird_digest=$(push_bird bird "$BIRD_IMAGE")
record BIRD_IMAGE "$REGISTRY/bird:$VERSION@$bird_digest"
step "bird: $REGISTRY/bird:$VERSION@$bird_digest"
bird3_digest=$(push_bird bird3 "$BIRD3_IMAGE")
record BIRD3_IMAGE "$REGISTRY/bird3:$VERSION@$bird3_digest"
step "bird3: $REGISTRY/bird3:$VERSION@$bird3_digest"

# image sizes as a registry serves them (compressed layers and config)
size() { crane manifest "${crane_flags[@]}" "$1" | jq '[.config.size] + [.layers[].size] | add'; }
for platform in "${PLATFORMS[@]}"; do
  record "AGENT_SIZE_${platform#linux/}" "$(size "$REGISTRY/agent:$VERSION-${platform#linux/}")"
done
record BIRD_SIZE "$(size "$REGISTRY/bird@$bird_digest")"
record BIRD3_SIZE "$(size "$REGISTRY/bird3@$bird3_digest")"

# the chart: values pin every image by digest
mkdir -p "$OUT/chart"
cp -r charts/meshrr "$OUT/chart/"
A="$REGISTRY/agent" B="$REGISTRY/bird" B3="$REGISTRY/bird3" V="$VERSION" AD="$agent_digest" BD="$bird_digest" B3D="$bird3_digest" yq -i '
  .images.agent.repository = strenv(A) | .images.agent.tag = strenv(V) | .images.agent.digest = strenv(AD) |
  .images.bird.repository = strenv(B) | .images.bird.tag = strenv(V) | .images.bird.digest = strenv(BD) |
  .images.bird3.repository = strenv(B3) | .images.bird3.tag = strenv(V) | .images.bird3.digest = strenv(B3D)' \
  "$OUT/chart/meshrr/values.yaml"
helm package "$OUT/chart/meshrr" --version "$VERSION" --app-version "$VERSION" -d "$OUT" >/dev/null
rm -rf "$OUT/chart"
pkg="$OUT/meshrr-$VERSION.tgz"
# every container of the packaged chart runs a pinned image, with BIRD 2
# and with BIRD 3
refs=$( (helm template x "$pkg" -f examples/route-servers/values.yaml
  helm template x "$pkg" -f examples/route-servers/values.yaml --set defaults.backend.bird.version=3) |
  sed -n 's/^ *image: //p' | sort -u)
while read -r r; do
  [[ $r == "$REGISTRY/agent:$VERSION@$agent_digest" || $r == "$REGISTRY/bird:$VERSION@$bird_digest" ||
    $r == "$REGISTRY/bird3:$VERSION@$bird3_digest" ]] ||
    fail "the packaged chart renders image $r, not one of the pushed digests"
done <<<"$refs"
grep -qx "$REGISTRY/bird3:$VERSION@$bird3_digest" <<<"$refs" || fail "the packaged chart never renders the BIRD 3 image"
chart_digest=$(helm push "$pkg" "oci://$REGISTRY" "${helm_flags[@]}" 2>&1 | tee "$OUT/helm-push.log" | sed -n 's/^Digest: //p')
[ -n "$chart_digest" ] || fail "helm push printed no digest: $(cat "$OUT/helm-push.log")"
rm -f "$OUT/helm-push.log"
record CHART "oci://$REGISTRY/meshrr"
record CHART_DIGEST "$chart_digest"
record CHART_SHA256 "$(sha256sum "$pkg" | cut -d' ' -f1)"
step "chart: oci://$REGISTRY/meshrr:$VERSION@$chart_digest"

# SBOMs of what the registry serves
for platform in "${PLATFORMS[@]}"; do
  syft scan -q "registry:$REGISTRY/agent:$VERSION@$agent_digest" --platform "$platform" \
    -o "cyclonedx-json=$OUT/sbom/agent-$VERSION-${platform#linux/}.cdx.json"
done
syft scan -q "registry:$REGISTRY/bird:$VERSION@$bird_digest" -o "cyclonedx-json=$OUT/sbom/bird-$VERSION.cdx.json"
syft scan -q "registry:$REGISTRY/bird3:$VERSION@$bird3_digest" -o "cyclonedx-json=$OUT/sbom/bird3-$VERSION.cdx.json"
# the chart holds no software of its own (syft finds nothing in it): its
# SBOM names the chart package and the three images it deploys, by digest
# (package URLs of type oci), and syft must read it back as CycloneDX
purl() { printf 'pkg:oci/%s@%s?repository_url=%s' "$1" "${2/:/%3A}" "$3"; }
jq -n --arg v "$VERSION" --arg chart "$(purl meshrr "$chart_digest" "$REGISTRY/meshrr")" \
  --arg sha "$(sha256sum "$pkg" | cut -d' ' -f1)" \
  --arg agent "$(purl agent "$agent_digest" "$REGISTRY/agent")" --arg bird "$(purl bird "$bird_digest" "$REGISTRY/bird")" \
  --arg bird3 "$(purl bird3 "$bird3_digest" "$REGISTRY/bird3")" '{
  bomFormat: "CycloneDX", specVersion: "1.6", version: 1,
  metadata: {component: {type: "application", "bom-ref": $chart, name: "meshrr", version: $v, purl: $chart,
    description: "the meshrr Helm chart", hashes: [{alg: "SHA-256", content: $sha}]}},
  components: [
    {type: "container", "bom-ref": $agent, name: "meshrr-agent", version: $v, purl: $agent},
    {type: "container", "bom-ref": $bird, name: "meshrr-bird", version: $v, purl: $bird},
    {type: "container", "bom-ref": $bird3, name: "meshrr-bird3", version: $v, purl: $bird3}],
  dependencies: [{ref: $chart, dependsOn: [$agent, $bird, $bird3]}]}' >"$OUT/sbom/chart-$VERSION.cdx.json"
syft convert -q "$OUT/sbom/chart-$VERSION.cdx.json" -o spdx-json >/dev/null ||
  fail "syft cannot read the chart's SBOM $OUT/sbom/chart-$VERSION.cdx.json as CycloneDX"
step "SBOMs: $(cd "$OUT/sbom" && echo *)"

echo "release $VERSION in $(( $(date +%s) - start ))s; written to $OUT:"
sed 's/^/  /' "$OUT/release.env"
