#!/usr/bin/env bash
# make daemons: the BIRD releases the images ship, runnable on the host for
# the tests (the real-BIRD integration tests, `bird -p` of every golden
# file, the loopback scale suites): BIRD 2 from the base image
# meshrr/base:trixie and BIRD 3 from meshrr/base:trixie-bird3 (both built
# by make-base.sh), each unpacked from its image into $MESHRR_CACHE/daemons
# and run with that root's own loader and libraries, so that the host's
# Debian release does not matter. Wrappers in $MESHRR_CACHE/daemons/bin:
# bird and birdc (BIRD 2, first on make's PATH), bird3 and birdc3 (BIRD 3).
# Skips what is up to date (the image's id).
# Usage: host-daemons.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${MESHRR_CACHE:?MESHRR_CACHE is set by the Makefile}/daemons
mkdir -p "$cache/bin"

# unpack IMAGE PACKAGE SUFFIX: the image's /usr into $cache/PACKAGE, and
# wrappers bird$SUFFIX and birdc$SUFFIX
unpack() {
  local image=$1 pkg=$2 suffix=$3 id dir ld c
  "$here/make-base.sh" "$image" "$pkg"
  id=$(docker image inspect -f '{{.Id}}' "$image")
  dir=$cache/$pkg
  if [ "$(cat "$dir/.image-id" 2>/dev/null)" != "$id" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    c=$(docker create "$image" /bin/true)
    docker export "$c" | tar -x -C "$dir" usr
    docker rm "$c" >/dev/null
    echo "$id" >"$dir/.image-id"
  fi
  ld=$(find "$dir/usr/lib" -maxdepth 2 -name 'ld-linux*.so.*' -type f | head -1)
  [ -n "$ld" ] || { echo "daemons: no dynamic loader in $image" >&2; exit 1; }
  for b in bird birdc; do
    printf '#!/bin/sh\n# %s of %s (tests/tools/host-daemons.sh)\nexec "%s" --library-path "%s" "%s" "$@"\n' \
      "$b" "$image" "$ld" "$(dirname "$ld")" "$dir/usr/sbin/$b" >"$cache/bin/$b$suffix"
    chmod +x "$cache/bin/$b$suffix"
  done
  echo "daemons: $("$cache/bin/bird$suffix" --version 2>&1) as bird$suffix"
}
unpack meshrr/base:trixie bird2 ""
unpack meshrr/base:trixie-bird3 bird3 3
