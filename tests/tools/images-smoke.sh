#!/usr/bin/env bash
# Smoke test of the images, the way a pod uses them: the agent image writes
# BIRD's startup configuration into a shared volume (as uid 65532), the BIRD
# image starts from it, and a non-root process reaches the control socket.
# Usage: images-smoke.sh AGENT_IMAGE BIRD_IMAGE
set -euo pipefail
agent=${1:?agent image}; bird=${2:?bird image}
work=$(mktemp -d /tmp/meshrr-smoke.XXXXXX)
name=meshrr-smoke-$$
cleanup() { docker rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/meshrr" "$work/bird" "$work/etc"
chmod 0777 "$work/meshrr" "$work/bird"   # emptyDir volumes are world-writable too
cat >"$work/etc/config.yaml" <<'YAML'
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: smoke.core}
YAML

echo "smoke: agent version $(docker run --rm "$agent" version)"
docker run --rm -v "$work/etc:/etc/meshrr:ro" "$agent" check --config /etc/meshrr/config.yaml
docker run --rm -v "$work/etc:/etc/meshrr:ro" -v "$work/meshrr:/run/meshrr" \
  -e POD_NAME=core-0 -e POD_NAMESPACE=smoke -e POD_IPS=10.244.9.9 "$agent" init --config /etc/meshrr/config.yaml
grep -q 'router id 10.244.9.9;' "$work/meshrr/bird.conf" || { echo "smoke: init wrote no router id" >&2; exit 1; }

# the pod's security context (Pod Security "restricted"): the image's own
# non-root user, no capability at all, read-only root; the pod's sysctl makes
# TCP 179 unprivileged. An operator's addition listens for BGP on 179.
mkdir -p "$work/conf.d"
cat >"$work/conf.d/listen.conf" <<'BIRD'
protocol bgp smoke { local as 65000; neighbor range 127.0.0.0/8 as 65000; ipv4 { import none; export none; }; }
BIRD
docker run -d --name "$name" --read-only --cap-drop ALL --security-opt no-new-privileges \
  --sysctl net.ipv4.ip_unprivileged_port_start=179 \
  -v "$work/meshrr:/run/meshrr:ro" -v "$work/bird:/run/bird" -v "$work/conf.d:/etc/bird/conf.d:ro" "$bird" >/dev/null
for _ in $(seq 1 50); do [ -S "$work/bird/bird.ctl" ] && break; sleep 0.2; done
out=$(docker run --rm --user 65532:65532 --entrypoint birdc -v "$work/bird:/run/bird" "$bird" -s /run/bird/bird.ctl show status) || {
  docker logs "$name" >&2; echo "smoke: a non-root client cannot use the control socket" >&2; exit 1; }
echo "$out" | grep -q 'Daemon is up and running' || { echo "$out" >&2; exit 1; }
echo "$out" | grep -q 'Router ID is 10.244.9.9' || { echo "$out" >&2; exit 1; }
user=$(docker exec "$name" sh -c 'id -u; grep ^CapEff /proc/1/status')
[ "$(echo "$user" | head -1)" = 65532 ] || { echo "smoke: BIRD runs as $user, not 65532" >&2; exit 1; }
echo "$user" | grep -q 'CapEff:[[:space:]]*0000000000000000' || { echo "smoke: BIRD has capabilities: $user" >&2; exit 1; }
docker run --rm --network "container:$name" --entrypoint bash "$bird" -c 'timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/179"' || {
  docker logs "$name" >&2; echo "smoke: BIRD does not listen on TCP 179 as a non-root user" >&2; exit 1; }
echo "smoke: bird image runs the agent's startup configuration as uid 65532 with no capability, listens on TCP 179; control socket reachable as uid 65532"
