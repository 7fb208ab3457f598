#!/usr/bin/env bash
# Host preparation for kind on machines whose capability bounding set lacks
# some capabilities (seen here: CAP_SYS_RESOURCE). There `docker run
# --privileged` (which kind's nodes need) fails in runc with "unable to apply
# caps". The workaround is applied only when that failure is detected: a
# runtime wrapper that removes the capabilities the host cannot grant from
# each OCI spec and then runs the real runc, registered as Docker's default
# runtime. Nodes then cannot lower oom_score_adj, so the node image sets
# containerd's restrict_oom_score_adj (build-images.sh).
# Usage: host-prep.sh IMAGE (any local image, used for the probe)
set -euo pipefail
probe_image=${1:?usage: host-prep.sh IMAGE}
# Two kind clusters at once (the e2e cluster and the dual-stack one) run
# eight nodes: Debian's inotify limits (128 instances) make kube-proxy fail
# with "too many open files" (kind's known issue); raise them when lower.
for kv in fs.inotify.max_user_instances=512 fs.inotify.max_user_watches=524288; do
  k=${kv%=*} v=${kv#*=}
  if [ "$(sysctl -n "$k")" -lt "$v" ]; then sysctl -qw "$kv" && echo "host-prep: $kv"; fi
done
if docker run --rm --privileged --entrypoint true "$probe_image" 2>/dev/null; then
  echo "host-prep: docker run --privileged works; no workaround needed"
  exit 0
fi

names=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE
  NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT
  SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE
  AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ
  PERFMON BPF CHECKPOINT_RESTORE)
bnd=$((16#$(awk '/^CapBnd/ {print $2}' /proc/self/status)))
missing=()
for i in "${!names[@]}"; do (( (bnd >> i) & 1 )) || missing+=("\"CAP_${names[$i]}\""); done
[ ${#missing[@]} -gt 0 ] || { echo "host-prep: --privileged fails but no capability is missing; see dockerd's log" >&2; exit 1; }
list=$(IFS=,; echo "${missing[*]}")
echo "host-prep: docker run --privileged fails: the host cannot grant ${missing[*]}; installing the runtime wrapper"

command -v jq >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; }
runc=$(command -v runc)
install -d /usr/local/lib/meshrr
cat >/usr/local/lib/meshrr/runc-capfix <<WRAP
#!/bin/bash
# Written by meshrr's tests/kind/host-prep.sh: drops capabilities this host
# cannot grant ($list) from OCI specs, then runs runc.
args=("\$@"); bundle=""; proc=""
for ((i=0; i<\${#args[@]}; i++)); do
  case "\${args[\$i]}" in
    --bundle|-b) bundle="\${args[\$((i+1))]}" ;;
    --bundle=*) bundle="\${args[\$i]#--bundle=}" ;;
    --process|-p) proc="\${args[\$((i+1))]}" ;;
    --process=*) proc="\${args[\$i]#--process=}" ;;
  esac
done
drop='[$list]'
fix() { local f=\$1 p=\$2; [ -f "\$f" ] || return 0
  jq -c --argjson drop "\$drop" "if \$p.capabilities then \$p.capabilities |= with_entries(.value |= (if type==\"array\" then map(select(. as \\\$c | \\\$drop | index(\\\$c) | not)) else . end)) else . end" "\$f" >"\$f.capfix" && mv "\$f.capfix" "\$f"; }
case " \$* " in
  *" create "*|*" run "*) fix "\${bundle:-.}/config.json" ".process" ;;
  *" exec "*) [ -n "\$proc" ] && fix "\$proc" "" ;;
esac
exec $runc "\$@"
WRAP
chmod 0755 /usr/local/lib/meshrr/runc-capfix

conf=/etc/docker/daemon.json
[ -s "$conf" ] || echo '{}' >"$conf"
jq '.runtimes.capfix.path = "/usr/local/lib/meshrr/runc-capfix" | ."default-runtime" = "capfix"' "$conf" >"$conf.new" && mv "$conf.new" "$conf"
pkill -HUP -x dockerd
for _ in $(seq 1 20); do
  if docker run --rm --privileged --entrypoint true "$probe_image" 2>/dev/null; then
    echo "host-prep: docker run --privileged works with the capfix runtime"
    exit 0
  fi
  sleep 0.5
done
echo "host-prep: docker run --privileged still fails after installing the wrapper" >&2
exit 1
