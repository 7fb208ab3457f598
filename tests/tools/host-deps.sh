#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine and starts the
# Docker daemon when it is not running. Idempotent: it only installs what is
# missing, so warm runs cost milliseconds.
set -euo pipefail

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
# debootstrap checks Release signatures with the archive keyring (only a recommendation of the package)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap debian-archive-keyring ca-certificates)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v column >/dev/null 2>&1 || need+=(bsdextrautils)
command -v dot >/dev/null 2>&1 || need+=(graphviz)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
if [ ${#need[@]} -gt 0 ]; then
  echo "host-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "host-deps: starting dockerd"
  nohup dockerd >/var/log/meshrr-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 /var/log/meshrr-dockerd.log >&2; echo "host-deps: dockerd did not start" >&2; exit 1; }
fi
echo "host-deps: docker $(docker version -f '{{.Server.Version}}') (the tests' BIRD comes from the images: make daemons)"
