#!/usr/bin/env bash
# Measures what an idle 4-node test cluster (tests/kind/cluster.yaml, no
# workload) costs the host: CPU seconds used by each node container over
# IDLE_SECONDS (default 60) after SETTLE_SECONDS (default 60) of quiet, and
# the processes the host forked meanwhile. `make idle-cpu` prints it; the
# cluster (CLUSTER, default meshrr-idle) is removed afterwards unless
# KEEP_CLUSTER=1.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
export CLUSTER=${CLUSTER:-meshrr-idle}
SETTLE=${SETTLE_SECONDS:-60}
IDLE=${IDLE_SECONDS:-60}
bash "$here/cluster.sh" up >/dev/null
[ "${KEEP_CLUSTER:-0}" = 1 ] || trap 'bash "$here/cluster.sh" down >/dev/null 2>&1' EXIT
"$KIND_WORK/bin/kubectl" --kubeconfig "$KIND_WORK/kubeconfig-$CLUSTER" wait --for=condition=Ready nodes --all --timeout=180s >/dev/null
sleep "$SETTLE"

# usage NAME: nanoseconds of CPU the container has used (cgroup v1 or v2)
usage() {
  local id f
  id=$(docker inspect -f '{{.Id}}' "$1")
  for f in /sys/fs/cgroup/cpuacct/docker/$id/cpuacct.usage /sys/fs/cgroup/cpuacct/system.slice/docker-$id.scope/cpuacct.usage; do
    [ -r "$f" ] && { cat "$f"; return; }
  done
  for f in /sys/fs/cgroup/system.slice/docker-$id.scope/cpu.stat /sys/fs/cgroup/docker/$id/cpu.stat; do
    [ -r "$f" ] && { awk '/^usage_usec/ {print $2 * 1000}' "$f"; return; }
  done
  echo "idle-cpu: no CPU accounting found for container $1" >&2
  exit 1
}
forks() { awk '/^processes/ {print $2}' /proc/stat; }

nodes=$(docker ps --filter "label=io.x-k8s.kind.cluster=$CLUSTER" --format '{{.Names}}' | sort)
declare -A before
for n in $nodes; do before[$n]=$(usage "$n"); done
f0=$(forks)
t0=$(date +%s%N)
sleep "$IDLE"
t1=$(date +%s%N)
f1=$(forks)
total=0
echo "idle-cpu: cluster $CLUSTER, $(echo "$nodes" | wc -w) nodes, idle for $(( (t1 - t0) / 1000000000 ))s after ${SETTLE}s settling; host load average $(cut -d' ' -f1-3 /proc/loadavg)"
for n in $nodes; do
  used=$(( $(usage "$n") - before[$n] ))
  total=$(( total + used ))
  awk -v n="$n" -v u="$used" -v t=$((t1 - t0)) 'BEGIN { printf "  %-28s %6.2f CPU-s  (%5.1f%% of one core)\n", n, u / 1e9, 100 * u / t }'
done
awk -v u="$total" -v t=$((t1 - t0)) -v f=$((f1 - f0)) 'BEGIN { printf "  %-28s %6.2f CPU-s  (%5.1f%% of one core); host forked %d processes (%.1f/s)\n", "total", u / 1e9, 100 * u / t, f, f / (t / 1e9) }'
