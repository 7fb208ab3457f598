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
# BIRD makes its control socket mode 0660; -g hands it to the agent's group
# (the agent container runs as 65532:65532) and BIRD runs with that group.
exec bird -f -c "$conf" -s "$sock" -g "${BIRD_SOCKET_GROUP:-65532}" "$@"
