#!/bin/bash
# kindnet-lite: the CNI of the offline kind clusters (kindnetd's source is not
# on the Go module proxy). Writes a ptp + host-local + portmap conflist from
# the node's podCIDR, routes the other nodes' podCIDRs, masquerades traffic
# leaving the pod network. No NetworkPolicy enforcement.
set -u
: "${NODE_NAME:?}" "${POD_SUBNET:?}"
CONF=/etc/cni/net.d/10-kindnet.conflist
while true; do
  cidr=$(kubectl get node "$NODE_NAME" -o jsonpath='{.spec.podCIDR}' 2>/dev/null)
  if [ -n "$cidr" ]; then
    new=$(printf '{"cniVersion":"0.3.1","name":"kindnet","plugins":[{"type":"ptp","ipMasq":false,"ipam":{"type":"host-local","dataDir":"/run/cni-ipam-state","routes":[{"dst":"0.0.0.0/0"}],"ranges":[[{"subnet":"%s"}]]},"mtu":1500},{"type":"portmap","capabilities":{"portMappings":true}}]}' "$cidr")
    if [ "$(cat $CONF 2>/dev/null)" != "$new" ]; then echo "$new" >$CONF.tmp && mv $CONF.tmp $CONF && echo "wrote $CONF for $cidr"; fi
  fi
  kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}' 2>/dev/null |
    while read -r n c a; do
      { [ "$n" = "$NODE_NAME" ] || [ -z "$c" ] || [ -z "$a" ]; } && continue
      ip route replace "$c" via "$a" 2>/dev/null || echo "route $c via $a failed"
    done
  iptables -t nat -C POSTROUTING -s "$POD_SUBNET" ! -d "$POD_SUBNET" -j MASQUERADE 2>/dev/null ||
    iptables -t nat -A POSTROUTING -s "$POD_SUBNET" ! -d "$POD_SUBNET" -j MASQUERADE
  sleep 5
done
