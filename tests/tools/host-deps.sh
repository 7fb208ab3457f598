#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine. Idempotent: it
# only installs what is missing, so warm runs cost a few milliseconds.
set -euo pipefail

need_pkgs=()
command -v bird >/dev/null 2>&1 || need_pkgs+=(bird2)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "host-deps: installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
# The Debian package enables a system BIRD; tests run their own instances.
echo "host-deps: bird $(bird --version 2>&1 | awk '{print $NF}')"
