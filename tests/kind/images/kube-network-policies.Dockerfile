ARG BASE
FROM ${BASE}
# kube-network-policies (built from the module proxy by build-binaries.sh)
# behind netpol-steer.sh, which queues new pod connections to it with the
# xtables NFQUEUE target (iptables comes with the base)
COPY netpol netpol-steer.sh /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/netpol-steer.sh"]
