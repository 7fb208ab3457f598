#!/bin/sh
# Entry point of the kube-network-policies image of the offline kind harness.
#
# kube-network-policies (sigs.k8s.io/kube-network-policies, the reference
# NetworkPolicy implementation kind's own kindnetd embeds) decides every new
# connection in userspace: the first packet of a connection to or from a
# pod is queued to it over NFQUEUE and it answers accept or drop. It queues
# with the nftables `queue` statement, which needs a kernel built with
# CONFIG_NFT_QUEUE; the kernels of these build hosts are not (nfnetlink_queue
# and the xtables NFQUEUE target are). So this script installs the same
# steering with the xtables target through iptables (the rules of its
# syncNFTablesRules, v0.8.0, pod CIDRs instead of its set of policy-selected
# pod IPs), then runs kube-network-policies, whose own nftables table then
# fails to load (logged, harmless): every decision stays its own.
#
# The rules, in the mangle table's POSTROUTING (before SNAT, as upstream):
# established and related connections pass; packets of the node's root
# processes pass (kubelet probes); DNS passes (upstream handles it
# separately); ICMPv6 passes (neighbour discovery); the first packet of
# any other connection from or to a pod CIDR is queued. --queue-bypass:
# without a reader the packet passes, so a test proving a refusal can only
# fail, never pass, when kube-network-policies is not running.
# Environment: POD_SUBNET (comma-separated CIDRs), NFQUEUE_ID.
set -eu
queue=${NFQUEUE_ID:-100}
chain=MESHRR-NETPOL

steer() { # IPTABLES CIDR...
  ipt=$1; shift
  $ipt -w -t mangle -N "$chain" 2>/dev/null || $ipt -w -t mangle -F "$chain"
  $ipt -w -t mangle -C POSTROUTING -j "$chain" 2>/dev/null || $ipt -w -t mangle -A POSTROUTING -j "$chain"
  $ipt -w -t mangle -A "$chain" -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
  $ipt -w -t mangle -A "$chain" -m owner --uid-owner 0 -j RETURN
  $ipt -w -t mangle -A "$chain" -p udp --dport 53 -j RETURN
  if [ "$ipt" = ip6tables ]; then $ipt -w -t mangle -A "$chain" -p 58 -j RETURN; fi
  for cidr in "$@"; do
    $ipt -w -t mangle -A "$chain" -s "$cidr" -j NFQUEUE --queue-num "$queue" --queue-bypass
    $ipt -w -t mangle -A "$chain" -d "$cidr" -j NFQUEUE --queue-num "$queue" --queue-bypass
  done
}

v4=""; v6=""
for cidr in $(echo "${POD_SUBNET:?POD_SUBNET: the pod CIDRs of the cluster, comma-separated}" | tr ',' ' '); do
  case $cidr in
    *:*) v6="$v6 $cidr" ;;
    *) v4="$v4 $cidr" ;;
  esac
done
# shellcheck disable=SC2086
[ -z "$v4" ] || steer iptables $v4
# shellcheck disable=SC2086
[ -z "$v6" ] || steer ip6tables $v6
echo "netpol-steer: new connections of pods in$v4$v6 queued to NFQUEUE $queue"
exec /usr/local/bin/netpol "$@" --nfqueue-id="$queue"
