#!/usr/bin/env bash
# Builds a local base image (Debian 13 trixie with BIRD: the bird2 package,
# or bird3) with debootstrap and `docker import`: no container registry is
# needed. Skips the build when an image built from this very script and
# these packages already exists (label meshrr.base-hash).
# Usage: make-base.sh IMAGE [bird2|bird3]
set -euo pipefail
image=${1:?usage: make-base.sh IMAGE [bird2|bird3]}
bird=${2:-bird2}
case $bird in bird2 | bird3) ;; *) echo "base: $bird: the BIRD package is bird2 or bird3" >&2; exit 2 ;; esac
suite=trixie
packages=$bird,iproute2,procps
hash=$( (cat "$0"; echo "$suite $packages") | sha256sum | cut -c1-16)

if [ "$(docker image inspect -f '{{ index .Config.Labels "meshrr.base-hash" }}' "$image" 2>/dev/null)" = "$hash" ]; then
  echo "base: $image is up to date"
  exit 0
fi

# The Debian mirror this machine's apt uses (no host name is hard-coded).
mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}
[ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || { echo "base: no Debian mirror found in apt sources; set DEBIAN_MIRROR" >&2; exit 1; }

root=$(mktemp -d /tmp/meshrr-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
start=$(date +%s)
echo "base: debootstrap $suite with $packages (about a minute)"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >/tmp/meshrr-debootstrap.log 2>&1 ||
  { tail -20 /tmp/meshrr-debootstrap.log >&2; exit 1; }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
  -c "LABEL meshrr.base-hash=$hash" \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$image" >/dev/null
echo "base: built $image in $(( $(date +%s) - start ))s"
