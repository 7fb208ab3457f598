#!/bin/sh
# BIRD container of a meshrr pod. The agent's init step (meshrr-agent init)
# writes the startup configuration into the shared volume before this
# container starts; the agent owns that file from then on.
set -eu
conf=${BIRD_CONFIG:-/run/meshrr/bird.conf}
sock=${BIRD_SOCKET:-/run/bird/bird.ctl}
waited=0
while [ ! -s "$conf" ]; do
  if [ "$waited" -ge "${BIRD_CONFIG_WAIT:-60}" ]; then
    echo "meshrr-bird: $conf missing after ${waited}s: run 'meshrr-agent init' first (the chart does it in an init container)" >&2
    exit 1
  fi
  sleep 1
  waited=$((waited + 1))
done
# BIRD makes its control socket mode 0660. Run as the agent's user (the
# image's default, 65532:65532), the socket is the agent's; run as root (the
# chart does so only for BFD, which needs NET_ADMIN), -g hands it to the
# agent's group and BIRD runs with that group.
if [ "$(id -u)" = 0 ]; then
  set -- -g "${BIRD_SOCKET_GROUP:-65532}" "$@"
fi
exec bird -f -c "$conf" -s "$sock" "$@"
