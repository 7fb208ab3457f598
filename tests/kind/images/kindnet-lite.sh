#!/bin/bash
# kindnet-lite: the CNI of the offline kind clusters (kindnetd's source is not
# on the Go module proxy). Writes a ptp + host-local + portmap conflist from
# the node's podCIDRs (one or two families), routes the other nodes'
# podCIDRs through their address of the same family, masquerades traffic
# leaving the pod network. No NetworkPolicy enforcement.
set -u
: "${NODE_NAME:?}" "${POD_SUBNET:?}"
CONF=/etc/cni/net.d/10-kindnet.conflist
# v6 NAME: true for an IPv6 address or prefix
v6() { case $1 in *:*) return 0 ;; esac; return 1; }
sysctl -qw net.ipv6.conf.all.forwarding=1 2>/dev/null || true
while true; do
  cidrs=$(kubectl get node "$NODE_NAME" -o jsonpath='{.spec.podCIDRs[*]}' 2>/dev/null)
  if [ -n "$cidrs" ]; then
    ranges="" routes=""
    for c in $cidrs; do
      ranges="$ranges${ranges:+,}[{\"subnet\":\"$c\"}]"
      if v6 "$c"; then dst="::/0"; else dst="0.0.0.0/0"; fi
      routes="$routes${routes:+,}{\"dst\":\"$dst\"}"
    done
    new=$(printf '{"cniVersion":"0.3.1","name":"kindnet","plugins":[{"type":"ptp","ipMasq":false,"ipam":{"type":"host-local","dataDir":"/run/cni-ipam-state","routes":[%s],"ranges":[%s]},"mtu":1500},{"type":"portmap","capabilities":{"portMappings":true}}]}' "$routes" "$ranges")
    if [ "$(cat $CONF 2>/dev/null)" != "$new" ]; then echo "$new" >$CONF.tmp && mv $CONF.tmp $CONF && echo "wrote $CONF for $cidrs"; fi
  fi
  kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name};{.spec.podCIDRs[*]};{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}' 2>/dev/null |
    while IFS=';' read -r n cs as; do
      { [ "$n" = "$NODE_NAME" ] || [ -z "$cs" ] || [ -z "$as" ]; } && continue
      for c in $cs; do
        for a in $as; do
          if v6 "$c" && v6 "$a"; then ip -6 route replace "$c" via "$a" 2>/dev/null || echo "route $c via $a failed"; fi
          if ! v6 "$c" && ! v6 "$a"; then ip route replace "$c" via "$a" 2>/dev/null || echo "route $c via $a failed"; fi
        done
      done
    done
  for s in ${POD_SUBNET//,/ }; do
    if v6 "$s"; then t=ip6tables; else t=iptables; fi
    $t -t nat -C POSTROUTING -s "$s" ! -d "$s" -j MASQUERADE 2>/dev/null ||
      $t -t nat -A POSTROUTING -s "$s" ! -d "$s" -j MASQUERADE
  done
  sleep 5
done
